// The enforcer shell against the fake API in a throwaway namespace: it waits for all three listings,
// applies one table, follows changes, keeps the table on a plain stop and removes it with removeOnStop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { FakeKube, NAMESPACES, NETWORK_POLICIES, PODS } from '../../test/support/fake-kube.js';
import { NetnsPool, execIn, requireNetworkTools } from '../../test/support/netns.js';
import { until } from '../../test/support/wait.js';
import { PolicyEnforcer } from './enforcer.js';

const pool = new NetnsPool();
const api = new FakeKube();
let netns = '';
const log = pino({ level: process.env.LT_DEBUG ? 'info' : 'silent' });
const table = async () => (await execIn(netns, 'nft', ['list', 'table', 'inet', 'lightly-policy'])).stdout as string;

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nft']);
  netns = await pool.create('policy');
  await api.start();
  api.upsert(NAMESPACES, { metadata: { name: 'x' } });
  api.upsert(PODS, { metadata: { namespace: 'x', name: 'a', labels: { pod: 'a' } }, spec: { nodeName: 'n1' }, status: { podIP: '10.244.1.2', podIPs: [{ ip: '10.244.1.2' }, { ip: 'fd00:10:244:1::2' }] } });
});
afterAll(async () => {
  await api.stop();
  await pool.cleanup();
});

describe('PolicyEnforcer (nft in a test namespace, fake API)', () => {
  it('applies, follows a new policy and a pod going, and stop() keeps or removes the table as configured', async () => {
    const make = () => new PolicyEnforcer({ api: api.apiEndpoint(), nodeName: 'n1', log, netns, backoff: { baseMs: 50, capMs: 200 } });
    const first = make();
    first.start();
    await until('the table', async () => (await table()).includes('set local_pods'), 10_000);
    expect(await table()).toContain('10.244.1.2');
    api.upsert(NETWORK_POLICIES, { metadata: { namespace: 'x', name: 'deny' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } });
    // The kernel takes every kind of match the renderer writes (SCTP included, with or without the module).
    api.upsert(NETWORK_POLICIES, {
      metadata: { namespace: 'x', name: 'all-kinds' },
      spec: { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: {} }, { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }, { ipBlock: { cidr: 'fd00::/8', except: ['fd00:10:244:2::/64'] } }], ports: [{ protocol: 'SCTP', port: 80 }, { protocol: 'UDP', port: 80, endPort: 90 }, { port: 'http' }] }], egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'dns', protocol: 'UDP' }] }] },
    });
    await until('every kind of match in the kernel', async () => (await table()).includes('x/all-kinds egress[0]'), 10_000);
    expect(await table()).toMatch(/sctp dport 80 accept comment "x\/all-kinds ingress\[0\]"/); // nft lists `meta l4proto sctp th dport` so
    expect(first.status().lastError).toBeUndefined();
    await until('x/a isolated', async () => /ingress_isolated \{[^}]*10\.244\.1\.2/.test((await table()).replace(/\s+/g, ' ')), 10_000);
    // Its IPv6 address too, and the IPv6 twins of the sets and rules load (ipv6_addr sets, ip6 matches).
    expect((await table()).replace(/\s+/g, ' ')).toMatch(/set ingress_isolated6 \{ type ipv6_addr[^}]*fd00:10:244:1::2/);
    expect(await table()).toMatch(/ip6 saddr @p\w+_i0_cidr6 .*accept comment "x\/all-kinds ingress\[0\]"/);
    expect(first.pod('x/a')).toMatchObject({ isolated: { ingress: true, egress: false }, policies: [{ name: 'x/deny', ingress: [] }] });
    api.remove(PODS, 'x/a');
    await until('the pod gone from the sets', async () => !/10\.244\.1\.2|fd00:10:244:1::2/.test(await table()), 10_000);
    await first.stop(false);
    expect(await table()).toContain('set local_pods');
    const second = make();
    second.start();
    await until('the second enforcer synced', async () => second.status().synced && second.status().lastError === undefined, 10_000);
    await second.stop(true);
    expect((await execIn(netns, 'nft', ['list', 'tables'])).stdout).not.toContain('lightly-policy');
  }, 30_000);
});
