// The whole-agent fuzz at 100,000 messages, outside the default suite: npm run test:long
process.env.AGENT_FUZZ_MESSAGES ??= '100000';
await import('./agent-fuzz.netns.test.js');
