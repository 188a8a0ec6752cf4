// The long runs outside the default suite: the codec's 1,000,000-message fuzz and the whole-agent
// fuzz at 100,000 messages (npm run test:long). One file at a time: the agent fuzz needs the CPU it measures against.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.long.test.ts'],
    exclude: ['**/node_modules/**', 'dist/**'],
    testTimeout: 3_600_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
