import { defineConfig } from "vitest/config";

// The soak runs apart from `npm test`: `npm run soak` (SOAK_SECONDS, default 120).
export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    include: ["bench/soak.test.ts"],
    // Set per test from SOAK_SECONDS.
    testTimeout: 3_600_000,
    hookTimeout: 120_000,
    reporters: ["default"],
  },
});
