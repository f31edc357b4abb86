import { defineConfig } from "vitest/config";

// Benchmarks run apart from `npm test`: `npm run bench`.
export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    // core.bench.test.ts (one node) and cascade.bench.test.ts (origin + two edges on one Redis).
    include: ["bench/**/*.bench.test.ts"],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    reporters: ["default"],
  },
});
