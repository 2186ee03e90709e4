import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Each test file starts its own ctxmesh server (test/server.ts).
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: files run one at a time, so that timing-sensitive tests
    // (leases, watches across restarts) are not starved.
    fileParallelism: false,
  },
});
