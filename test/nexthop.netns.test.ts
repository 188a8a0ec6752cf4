// NEXT_HOP resolvability end to end (RFC 4271 §9.1.2.1): a whole agent, raw iBGP and eBGP peers, the kernel's routes.
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPool, addConnectedLink, ipIn, requireNetworkTools } from './support/netns.js';
import { type AgentUnderTest, AGENT, startAgent } from './support/agent-harness.js';
import { until } from './support/lab.js';

const pool = new NetnsPool();
let t: AgentUnderTest;
const IBGP = '10.0.1.2';
const EBGP = '10.0.1.3';
const PREFIX = '10.5.0.0/24';

/** Waits (bounded); on a time-out, says what the kernel and the agent had. */
const waitFor = (what: string, check: () => Promise<boolean>): Promise<unknown> =>
  until(what, check, 20_000).catch(async (err: Error) => {
    throw new Error(`${err.message}; kernel has:\n${(await t.routes()).join('\n')}\n${t.log().slice(-3000)}`);
  });
const routeOf = async (prefix: string) => (await t.routes()).find((l) => l.startsWith(`${prefix} `));

beforeAll(async () => {
  await requireNetworkTools(['ip', 'ps']);
  t = await startAgent(pool, [{ address: IBGP, asn: 64512 }, { address: EBGP, asn: 65003 }]);
  await t.driver.run({ op: 'connect', name: 'ibgp', options: { host: AGENT, port: 179, localAddress: IBGP, asn: 64512 }, timeoutMs: 15_000 });
  await t.driver.run({ op: 'connect', name: 'ebgp', options: { host: AGENT, port: 179, localAddress: EBGP, asn: 65003 }, timeoutMs: 15_000 });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await pool.cleanup();
}, 30_000);

describe('NEXT_HOP resolvability in the kernel (RFC 4271 §9.1.2.1)', () => {
  it('an unreachable iBGP next hop loses to a valid eBGP path: the kernel ends with the eBGP route', async () => {
    // The iBGP path is preferred by LOCAL_PREF, but 10.9.9.9 is on no connected subnet of the agent.
    await t.driver.run({ op: 'announce', name: 'ibgp', prefixes: [PREFIX], nextHop: '10.9.9.9', localPref: 500 });
    await t.driver.run({ op: 'announce', name: 'ebgp', prefixes: [PREFIX], nextHop: EBGP });
    await waitFor('the eBGP route in the kernel', async () => (await routeOf(PREFIX))?.includes(`via ${EBGP}`) ?? false);
  }, 60_000);

  it('a route to the next hop appearing re-evaluates: the iBGP path wins; the link going down brings the eBGP path back', async () => {
    await addConnectedLink(t.ns, 'nh0', 'nh1', ['10.9.9.1/24']); // a new link with 10.9.9.0/24 on it
    await waitFor('the iBGP route in the kernel', async () => (await routeOf(PREFIX))?.includes('via 10.9.9.9') ?? false);
    await ipIn(t.ns, ['link', 'set', 'nh0', 'down']);
    await waitFor('the eBGP route back', async () => (await routeOf(PREFIX))?.includes(`via ${EBGP}`) ?? false);
  }, 60_000);

  it('a NEXT_HOP that is one of our own addresses is ignored (RFC 4271 §6.3)', async () => {
    await t.driver.run({ op: 'announce', name: 'ibgp', prefixes: ['10.6.0.0/24'], nextHop: AGENT });
    await t.driver.run({ op: 'announce', name: 'ibgp', prefixes: ['10.7.0.0/24'], nextHop: IBGP });
    await waitFor('the valid route', async () => (await routeOf('10.7.0.0/24')) !== undefined);
    expect(await routeOf('10.6.0.0/24')).toBeUndefined();
    const status = await t.status();
    expect(status.peers.find((p) => p.address === IBGP)?.state).toBe('Established');
  }, 60_000);

  it('learns kernel changes through the addon’s rtnetlink watcher: no ip monitor child reading our own route churn', async () => {
    // `ip netns exec` execs the agent in place: this pid is the agent itself.
    expect((await execa('ps', ['-p', String(t.agent.pid), '-o', 'args='])).stdout).toContain('lightly-agent');
    const children = await execa('ps', ['--ppid', String(t.agent.pid), '-o', 'args='], { reject: false }); // exit 1: no children at all
    expect(children.stdout.split('\n').filter((l) => /\bip\b.*\bmonitor\b/.test(l))).toEqual([]);
    expect(t.log()).not.toContain('netlink route watcher unavailable');
  });
});
