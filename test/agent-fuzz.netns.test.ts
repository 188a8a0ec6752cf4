// A whole agent fuzzed by two raw peers at once (5,000 messages; 100,000 in npm run test:long).
import { afterAll, describe, expect, it } from 'vitest';
import { NetnsPool, requireNetworkTools } from './support/netns.js';
import { fuzzAgent } from './support/agent-fuzz.js';

export const MESSAGES = Number(process.env.AGENT_FUZZ_MESSAGES ?? 5_000);
const pool = new NetnsPool();
afterAll(() => pool.cleanup(), 30_000);

describe(`the agent under random and mutated UPDATE streams from two peers (${MESSAGES} messages)`, () => {
  it('never dies, never installs a route no live or retained path supports, keeps answering on its status socket', async () => {
    await requireNetworkTools(['ip']);
    const seed = Number(process.env.AGENT_FUZZ_SEED ?? Date.now() % 100_000);
    const perRound = Math.min(1_000, Math.ceil(MESSAGES / 8));
    const result = await fuzzAgent(pool, { messages: MESSAGES, perRound, closeEvery: MESSAGES > 20_000 ? 5 : 1, seed, badRate: 0.03 });
    console.log(`agent fuzz (seed ${seed}): ${JSON.stringify(result)}`);
    expect(result.messages).toBeGreaterThanOrEqual(MESSAGES);
  }, 3_600_000);
});
