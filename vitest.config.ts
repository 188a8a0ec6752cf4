// Test runner settings: network tests run one file at a time so namespaces and timings do not fight.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{bgp,routes,plugin,agent,deploy,test}/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'dist/**', '**/*.long.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    reporters: ['default'],
  },
});
