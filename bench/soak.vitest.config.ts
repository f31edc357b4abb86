import { defineConfig } from "vitest/config";

// The soak: the second half of `npm test` (2 minutes, after the suite, so nothing else loads the
// machine while it measures), and `npm run soak` for longer runs (SOAK_SECONDS).
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
