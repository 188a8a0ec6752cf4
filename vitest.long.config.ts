// The long runs outside the default suite (e.g. the codec's 1,000,000-message fuzz): npm run test:long
import { defineConfig } from 'vitest/config';

export default defineConfig({ test: { include: ['**/*.long.test.ts'], exclude: ['**/node_modules/**'], testTimeout: 3_600_000 } });
