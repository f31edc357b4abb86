// `npm run test:native`: the addon's own tests only, without the suite's global setup (which
// probes FFmpeg and Chromium, binaries the preloaded sanitizer runtime must not be loaded into).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    include: ["test/sfu/native.test.ts"],
    testTimeout: 120_000,
    pool: "forks",
    reporters: ["default"],
  },
});
