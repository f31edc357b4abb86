import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // e2e suites start real peers, FFmpeg and servers on UDP ports: keep files apart
    // so two suites never fight for the 2 cores of a CI machine at once.
    fileParallelism: false,
    pool: "forks",
    reporters: ["default"],
    globalSetup: ["test/setup/global.ts"],
  },
});
