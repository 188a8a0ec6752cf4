// A full table through the whole agent: 20,000 prefixes from a BIRD sender reach our namespace's
// kernel within a bound set by a BIRD receiver fed the same way in the same run (a ratio, so a loaded
// machine slows both), and `lightlyctl bgp status` answers all the while.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { FullTableLab } from './support/fulltable.js';
import { requireNetworkTools } from './support/netns.js';

const PREFIXES = 20_000;
/**
 * Ours may take this many times BIRD's time to have all the prefixes in the kernel, both timed from
 * the moment the table is announced over sessions already up (~100-120 ms for BIRD here). The BIRD
 * senders are kept awake (SenderWake in support/fulltable.ts): before, one sometimes held its last
 * UPDATE back for ~3 s, for either receiver, so the test timed 99% of them. Measured 1.17-1.68x on a
 * quiet machine (5 runs) and 1.89x in a CI run (other test files running beside it): at this size
 * most of it is what a session's first table costs the agent (not the number of functions V8
 * compiles: docs/concepts.md, issue 10's twelfth round), which a loaded machine delays more than
 * BIRD's. Timed from the senders' start, as before, ~0.9 s of connect delay was common to both
 * sides: a 2.5x bound then let ~1.6 s pass, and the agent from before incremental route programming
 * (8.4-8.9 s against 3.7-4.1 s; roughly 7.5 s against 0.1 s had it been timed this way) stayed within it.
 */
const MAX_RATIO = 3;
const lab = new FullTableLab({ prefixes: PREFIXES });

beforeAll(async () => {
  await requireNetworkTools(['ip', 'bird', 'birdc']);
  await lab.setUp();
}, 60_000);

afterAll(async () => {
  await lab.tearDown();
}, 30_000);

/** `lightlyctl bgp status` in a loop until stopped: every answer's time, and what failed. */
function pollCtl(): { stop(): Promise<{ answers: number; slowestMs: number; failures: string[] }> } {
  let running = true;
  const result = { answers: 0, slowestMs: 0, failures: [] as string[] };
  const done = (async () => {
    while (running) {
      const start = Date.now();
      const out = await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', lab.socket, 'bgp', 'status', '--json'], { reject: false, timeout: 5_000 });
      if (out.exitCode === 0 && JSON.parse(out.stdout).peers.length === 1) {
        result.answers++;
        result.slowestMs = Math.max(result.slowestMs, Date.now() - start);
      } else {
        result.failures.push(`${out.exitCode ?? 'timeout'} ${out.stderr}`.trim());
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return result;
    },
  };
}

describe('a full table through the whole agent', () => {
  it(`installs ${PREFIXES} prefixes from a BIRD sender within ${MAX_RATIO}x a BIRD receiver's time, answering status throughout`, async () => {
    await lab.startSessions();
    const ctl = pollCtl();
    const t0 = await lab.announce();
    let seen;
    try {
      seen = await lab.progressBoth(PREFIXES, 120_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}; agent log: ${lab.agentLog()}`);
    }
    const status = await ctl.stop();
    const times = { ours: seen.ours.last - t0, bird: seen.bird.last - t0 };
    console.log(`${PREFIXES} prefixes in the kernel: ours ${times.ours} ms, BIRD ${times.bird} ms (${(times.ours / times.bird).toFixed(2)}x); 99%: ours ${seen.ours.p99 - t0}, BIRD ${seen.bird.p99 - t0}; lightlyctl: ${status.answers} answers, slowest ${status.slowestMs} ms`);
    expect(times.ours).toBeLessThanOrEqual(MAX_RATIO * times.bird);
    expect(status.failures).toEqual([]);
    expect(status.answers).toBeGreaterThan(0);
    const final = JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', lab.socket, 'bgp', 'status', '--json'])).stdout);
    expect(final.peers[0]).toMatchObject({ state: 'Established', prefixesReceived: PREFIXES });
  }, 180_000);
});
