// Property tests: valid messages round-trip; random and mutated bytes never throw anything but a BgpError.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BgpError, decodeMessage, encodeMessage } from './index.js';
import { arbitraryMessage, mutation } from './fuzz.js';

export const RUNS = Number(process.env.BGP_FUZZ_RUNS ?? 10_000);
const ctx = { fourOctetAs: true };

function decodeOrBgpError(bytes: Uint8Array): void {
  try {
    decodeMessage(bytes, ctx);
  } catch (err) {
    if (!(err instanceof BgpError)) throw err;
    expect(err.code).toBeGreaterThanOrEqual(1);
    expect(err.code).toBeLessThanOrEqual(7);
  }
}

/**
 * fc.assert in slices, yielding to the event loop between them: a million runs in one go block the
 * test worker for minutes, and its RPC to the runner times out (npm run test:long).
 */
async function check<Ts extends [unknown, ...unknown[]]>(property: fc.IProperty<Ts>, numRuns: number): Promise<void> {
  const SLICE = 20_000;
  for (let done = 0; done < numRuns; done += SLICE) {
    fc.assert(property, { numRuns: Math.min(SLICE, numRuns - done) });
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe(`codec properties (${RUNS} runs each)`, () => {
  it('valid messages round-trip', async () => {
    await check(fc.property(arbitraryMessage, (m) => {
      expect(decodeMessage(encodeMessage(m, ctx), ctx)).toEqual(m);
    }), Math.min(RUNS, 10_000));
  });
  it('mutated valid messages decode or fail with a NOTIFICATION code', async () => {
    await check(fc.property(arbitraryMessage, mutation, (m, mut) => {
      let bytes = Buffer.from(encodeMessage(m, ctx));
      for (const [at, value] of mut.flips) bytes[19 + (at % Math.max(1, bytes.length - 19))] = value;
      if (mut.truncate !== undefined) bytes = bytes.subarray(0, 19 + (mut.truncate % Math.max(1, bytes.length - 18)));
      if (mut.fixLength) bytes.writeUInt16BE(bytes.length, 16);
      decodeOrBgpError(bytes);
    }), RUNS);
  });
  it('random bytes behind a valid header decode or fail with a NOTIFICATION code', async () => {
    await check(fc.property(fc.integer({ min: 1, max: 5 }), fc.uint8Array({ maxLength: 200 }), (type, body) => {
      const head = Buffer.alloc(19, 0xff);
      head.writeUInt16BE(19 + body.length, 16);
      head[18] = type;
      decodeOrBgpError(Buffer.concat([head, body]));
    }), RUNS);
  });
});
