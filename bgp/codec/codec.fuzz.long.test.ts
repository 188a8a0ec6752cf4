// The long fuzz run (1,000,000 per property), outside the default suite: BGP_FUZZ_RUNS=1000000 npx vitest run --config vitest.long.config.ts
import './codec.fuzz.test.js';
