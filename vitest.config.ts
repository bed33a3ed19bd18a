import { defineConfig } from "vitest/config";

// One root config: unit tests sit next to the code (packages/*/src, services/*/src,
// infra/local/src), whole-stack tests in test/. Files run one at a time: they share one
// Redis, one clamd and one RGW on a 2-core machine, and each test file starts its own
// fauxqs and database, so running them side by side buys little and adds noise.
export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "services/*/src/**/*.test.ts", "infra/local/src/**/*.test.ts", "infra/aws/src/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "test/bench/**"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: "forks",
  },
});
