// ClusterWatch against the in-process fake API: real list/watch, resourceVersions, status patches,
// Events, and an API server that goes away and comes back.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { BGP_CONFIGURATIONS, BGP_PEERS, FakeKube, NODES, nodeObject } from '../../test/support/fake-kube.js';
import { until as waitUntil } from '../../test/support/wait.js';
import { ClusterWatch } from './cluster.js';
import type { DesiredBgp } from './desired.js';
import { EVENTS_PATH } from './events.js';

const quiet = pino({ level: 'silent' });
const fast = { backoff: { baseMs: 100, capMs: 800 }, random: () => 0.5, requestIdleMs: 1_000 };
let api: FakeKube;
let watch: ClusterWatch;
let latest: DesiredBgp | undefined;
let emitted = 0;

const until = (what: string, check: () => boolean, timeoutMs = 5_000) => waitUntil(what, check, timeoutMs, { pollMs: 20, context: () => `last desired: ${JSON.stringify(latest)}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startWatch(name = 'node-1'): ClusterWatch {
  watch = new ClusterWatch(api.apiEndpoint(), name, quiet, fast);
  latest = undefined;
  emitted = 0;
  watch.on('desired', (d: DesiredBgp) => {
    latest = d;
    emitted++;
  });
  watch.start();
  return watch;
}

beforeEach(async () => {
  api = new FakeKube();
  await api.start();
  api.upsert(NODES, nodeObject('node-1', '192.0.2.1', '10.244.1.0/24'));
  api.upsert(NODES, nodeObject('node-2', '192.0.2.2', '10.244.2.0/24'));
});
afterEach(async () => {
  await watch?.stop();
  await api.stop();
});

describe('ClusterWatch', () => {
  it('lists the cluster and follows node join, podCIDR assignment and node removal live', async () => {
    startWatch();
    await until('initial mesh', () => latest?.peers.length === 1);
    expect(latest).toMatchObject({ routerId: '192.0.2.1', podCIDRs: ['10.244.1.0/24'], asn: 64512 });

    api.upsert(NODES, nodeObject('node-3', '192.0.2.3'));
    await until('node-3 joins the mesh', () => latest?.peers.some((p) => p.address === '192.0.2.3') === true);

    api.upsert(NODES, nodeObject('node-1', '192.0.2.1', '10.244.7.0/24'));
    await until('our new pod CIDR', () => latest?.podCIDRs[0] === '10.244.7.0/24');

    api.remove(NODES, 'node-2');
    await until('node-2 leaves', () => latest?.peers.map((p) => p.address).join() === '192.0.2.3');
  });

  it('lists in pages: a cluster larger than one page arrives whole', async () => {
    for (let i = 3; i <= 1200; i++) api.upsert(NODES, nodeObject(`node-${i}`, `10.1.${i >> 8}.${i & 255}`, `10.${100 + (i >> 8)}.${i & 255}.0/24`));
    startWatch();
    await until('all 1,199 peers', () => latest?.peers.length === 1199, 15_000);
    expect(api.requests.filter((r) => r.path === NODES).length).toBeGreaterThanOrEqual(3); // 100 a page, then the watch
  });

  it('applies BGPConfiguration and BGPPeers (nodeSelector) live', async () => {
    startWatch();
    await until('initial', () => latest !== undefined);
    api.upsert(BGP_CONFIGURATIONS, { metadata: { name: 'default' }, spec: { asn: 64600, importCIDRs: ['10.244.0.0/16'], holdTime: 9 } });
    await until('asn from BGPConfiguration', () => latest?.asn === 64600 && latest.holdTime === 9);
    api.upsert(BGP_PEERS, { metadata: { name: 'tor-r1' }, spec: { peerIP: '192.0.2.254', asn: 65000, nodeSelector: 'rack=r1' } });
    await sleep(200);
    expect(latest!.peers.some((p) => p.address === '192.0.2.254')).toBe(false); // node-1 is not in rack r1
    api.upsert(NODES, nodeObject('node-1', '192.0.2.1', '10.244.1.0/24', { rack: 'r1' }));
    await until('ToR peer after labelling', () => latest?.peers.some((p) => p.address === '192.0.2.254' && p.type === 'node-specific') === true);
  });

  it('creates the default BGPConfiguration once when there is none, and leaves an existing one alone', async () => {
    startWatch();
    await until('default created', () => api.get(BGP_CONFIGURATIONS, 'default') !== undefined);
    expect(api.get(BGP_CONFIGURATIONS, 'default')!.spec).toEqual({ asn: 64512, nodeToNodeMesh: true, holdTime: 90, maxPrefixes: 10000, natOutgoing: false });
    expect(api.creates).toHaveLength(1);
    const second = new ClusterWatch(api.apiEndpoint(), 'node-2', quiet, fast);
    let seen = false;
    second.on('desired', () => (seen = true));
    second.start();
    await until('second watch listed', () => seen);
    await sleep(100);
    await second.stop();
    expect(api.creates).toHaveLength(1); // it saw the default in its listing
  });

  it('CRDs not installed at start (issue 13, item 10): BGP from the Nodes alone; the CRDs are picked up when they appear, the default BGPConfiguration created then', async () => {
    api.setInstalled(BGP_PEERS, false);
    api.setInstalled(BGP_CONFIGURATIONS, false);
    startWatch();
    await until('the mesh from Nodes alone', () => latest?.peers.length === 1);
    expect(latest).toMatchObject({ routerId: '192.0.2.1', podCIDRs: ['10.244.1.0/24'], asn: 64512 });
    await sleep(2_000);
    expect(api.creates).toEqual([]); // nowhere to create it yet
    // Checked again with back-off (100 ms doubling to 800 ms here): a few times in 2 s, not in a loop.
    const tries = api.requests.filter((r) => r.path === BGP_PEERS && r.method === 'GET').length;
    expect(tries).toBeGreaterThanOrEqual(3);
    expect(tries).toBeLessThanOrEqual(8);

    api.setInstalled(BGP_PEERS, true);
    api.setInstalled(BGP_CONFIGURATIONS, true);
    api.upsert(BGP_PEERS, { metadata: { name: 'tor' }, spec: { peerIP: '192.0.2.254', asn: 65000 } });
    await until('the BGPPeer once its CRD is there', () => latest?.peers.some((p) => p.address === '192.0.2.254') === true, 5_000);
    await until('the default BGPConfiguration created', () => api.get(BGP_CONFIGURATIONS, 'default') !== undefined, 5_000);
    expect(api.creates).toHaveLength(1);
    // Followed live from then on.
    api.upsert(BGP_CONFIGURATIONS, { metadata: { name: 'default' }, spec: { asn: 64700 } });
    await until('the edited configuration', () => latest?.asn === 64700);
  });

  it('a CRD that goes away while running changes nothing: the last peers stay', async () => {
    api.upsert(BGP_PEERS, { metadata: { name: 'tor' }, spec: { peerIP: '192.0.2.254', asn: 65000 } });
    startWatch();
    await until('the BGPPeer', () => latest?.peers.some((p) => p.address === '192.0.2.254') === true);
    api.setInstalled(BGP_PEERS, false);
    await sleep(1_500);
    expect(latest!.peers.some((p) => p.address === '192.0.2.254')).toBe(true);
  });

  describe('bad objects never take the node down (issue 13, item 5)', () => {
    const events = () => api.list(EVENTS_PATH);

    it('skips a BGPPeer with a malformed peerIP or selector, reports each once (log and Event), applies the rest', async () => {
      // Present before the agent starts: the list must not fail with them.
      api.upsert(BGP_PEERS, { metadata: { name: 'short-ip' }, spec: { peerIP: '10.0.0', asn: 65000 } });
      api.upsert(BGP_PEERS, { metadata: { name: 'bad-selector' }, spec: { peerIP: '192.0.2.250', asn: 65000, nodeSelector: 'rack in (r1' } });
      api.upsert(BGP_PEERS, { metadata: { name: 'good' }, spec: { peerIP: '192.0.2.254', asn: 65000 } });
      startWatch();
      await until('the good peer', () => latest?.peers.some((p) => p.address === '192.0.2.254') === true);
      expect(latest!.peers.map((p) => p.address)).not.toContain('10.0.0');
      expect(latest!.peers.map((p) => p.address)).not.toContain('192.0.2.250');
      await until('two Events', () => events().length === 2);
      expect(events().map((e) => [e.involvedObject.kind, e.involvedObject.name, e.reason]).sort()).toEqual([['BGPPeer', 'bad-selector', 'InvalidSpec'], ['BGPPeer', 'short-ip', 'InvalidSpec']]);
      expect(events().find((e) => e.involvedObject.name === 'short-ip')!.message).toMatch(/spec\.peerIP/);

      // Applied live, and edits of other objects: still skipped, reported once, nothing stops.
      api.upsert(BGP_PEERS, { metadata: { name: 'asn-zero' }, spec: { peerIP: '192.0.2.251', asn: 0 } });
      api.upsert(NODES, nodeObject('node-3', '192.0.2.3', '10.244.3.0/24'));
      await until('node-3 joins', () => latest?.peers.some((p) => p.address === '192.0.2.3') === true);
      await until('three Events', () => events().length === 3);
      await sleep(200);
      expect(events()).toHaveLength(3);
      expect(latest!.peers.map((p) => p.address).sort()).toEqual(['192.0.2.2', '192.0.2.254', '192.0.2.3']);

      // Fixed: applies.
      api.upsert(BGP_PEERS, { metadata: { name: 'short-ip' }, spec: { peerIP: '10.0.0.9', asn: 65000 } });
      await until('the fixed peer', () => latest?.peers.some((p) => p.address === '10.0.0.9') === true);
    });

    it('a selector on keys such as constructor or toString matches only nodes with that label', async () => {
      api.upsert(BGP_PEERS, { metadata: { name: 'proto' }, spec: { peerIP: '192.0.2.249', asn: 65000, nodeSelector: 'constructor' } });
      api.upsert(BGP_PEERS, { metadata: { name: 'proto2' }, spec: { peerIP: '192.0.2.248', asn: 65000, nodeSelector: 'toString in (x)' } });
      startWatch();
      await until('initial', () => latest !== undefined);
      expect(latest!.peers.map((p) => p.address)).toEqual(['192.0.2.2']);
    });

    it('an invalid BGPConfiguration keeps its last valid spec (the ASN does not fall back under every session)', async () => {
      api.upsert(BGP_CONFIGURATIONS, { metadata: { name: 'default' }, spec: { asn: 64600 } });
      startWatch();
      await until('asn 64600', () => latest?.asn === 64600);
      api.upsert(BGP_CONFIGURATIONS, { metadata: { name: 'default' }, spec: { asn: 64600, importCIDRs: ['10.244.0.0'] } });
      await until('an Event', () => events().some((e) => e.involvedObject.kind === 'BGPConfiguration'));
      expect(latest!.asn).toBe(64600);
      expect(latest!.importCIDRs).toEqual([]);
    });
  });

  describe('node problems (issue 13, item 6)', () => {
    it('a Node without a pod CIDR or IPv4 InternalIP: a named problem and an Event on the Node; the router-id annotation fixes the second', async () => {
      api.upsert(NODES, nodeObject('node-1', 'fd00::1'));
      startWatch();
      await until('a problem', () => latest?.problem !== undefined);
      expect(latest!.problem!.reason).toBe('NoRouterID');
      expect(latest!.routerId).toBeUndefined();
      await until('an Event on node-1', () => api.list(EVENTS_PATH).some((e) => e.involvedObject.kind === 'Node' && e.reason === 'NoRouterID'));

      api.upsert(NODES, { ...nodeObject('node-1', 'fd00::1'), metadata: { name: 'node-1', annotations: { 'lightly.dev/router-id': '10.255.0.1' } } });
      await until('the annotated router id', () => latest?.routerId === '10.255.0.1');
      expect(latest!.problem!.reason).toBe('NoPodCIDR');
      await until('an Event for the pod CIDR', () => api.list(EVENTS_PATH).some((e) => e.reason === 'NoPodCIDR'));

      api.upsert(NODES, { ...nodeObject('node-1', 'fd00::1', 'fd00:244:1::/64'), metadata: { name: 'node-1', annotations: { 'lightly.dev/router-id': 'not-an-ip' } } });
      await until('InvalidRouterID', () => latest?.problem?.reason === 'InvalidRouterID');
    });

    it('an IPv6-only node is peered with at its IPv6 InternalIP', async () => {
      api.upsert(NODES, { ...nodeObject('node-2', 'fd00::2', '10.244.2.0/24'), metadata: { name: 'node-2', annotations: { 'lightly.dev/router-id': '10.255.0.2' } } });
      startWatch();
      await until('mesh', () => latest?.peers.length === 1);
      expect(latest!.peers[0]!.address).toBe('fd00::2');
    });
  });

  describe('the API server goes away (issue 13, item 4)', () => {
    it('keeps the last state through an outage, retries with growing delays, and follows changes once back', async () => {
      startWatch();
      await until('initial', () => latest?.peers.length === 1);
      const before = emitted;
      const cut = Date.now();
      await api.setMode('refuse');
      await sleep(2_500);
      expect(emitted).toBe(before); // nothing emitted: nothing dropped
      await api.setMode('up');
      api.upsert(NODES, nodeObject('node-3', '192.0.2.3', '10.244.3.0/24'));
      await until('node-3 after the outage', () => latest?.peers.length === 2, 5_000);
      // While refused no request arrives; growing delays show in the attempts after: none in a tight loop.
      const attempts = api.requests.filter((r) => r.path === NODES && r.at > cut).length;
      expect(attempts).toBeLessThanOrEqual(4);
    });

    it('retries with capped exponential back-off: the gaps between attempts grow to the cap, never a fixed beat', async () => {
      startWatch();
      await until('initial', () => latest?.peers.length === 1);
      const cut = Date.now();
      await api.setMode('fail');
      await sleep(4_000);
      await api.setMode('up');
      const times = api.requests.filter((r) => r.path === NODES && r.at > cut).map((r) => r.at);
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      // base 100 ms, cap 800 ms, jitter at its middle: 75, 150, 300, 600, 600... (plus scheduling slack)
      expect(gaps.length).toBeGreaterThanOrEqual(4);
      expect(gaps.at(-1)!).toBeGreaterThan(3 * gaps[0]!);
      expect(Math.max(...gaps)).toBeLessThan(800 + 400);
    });

    it('requests that hang end at their deadline and are retried', async () => {
      startWatch();
      await until('initial', () => latest?.peers.length === 1);
      await api.setMode('hang');
      await until('a hung request', () => api.requests.filter((r) => r.path === NODES).length >= 3);
      await api.setMode('up');
      api.upsert(NODES, nodeObject('node-3', '192.0.2.3', '10.244.3.0/24'));
      await until('node-3 after the hang', () => latest?.peers.length === 2, 5_000);
    });
  });

  describe('NetworkUnavailable (issue 13, item 7)', () => {
    it('patches by strategic merge only when status or reason changes; lastTransitionTime moves with the status only', async () => {
      startWatch();
      await until('initial', () => latest !== undefined);
      expect(await watch.setNetworkCondition({ unavailable: true, reason: 'NoBGPSessionEstablished', message: 'x' })).toBe(true);
      const first = api.get(NODES, 'node-1')!.status.conditions[0];
      expect(first).toMatchObject({ type: 'NetworkUnavailable', status: 'True', reason: 'NoBGPSessionEstablished' });
      expect(api.patches.at(-1)).toMatchObject({ path: '/api/v1/nodes/node-1/status', contentType: 'application/strategic-merge-patch+json' });
      await until('the watch sees it', () => watch.self()?.networkUnavailable?.reason === 'NoBGPSessionEstablished');

      expect(await watch.setNetworkCondition({ unavailable: true, reason: 'NoBGPSessionEstablished', message: 'y' })).toBe(false);
      await sleep(20);
      expect(await watch.setNetworkCondition({ unavailable: true, reason: 'RoutesNotProgrammed', message: 'z' })).toBe(true);
      const second = api.get(NODES, 'node-1')!.status.conditions[0];
      expect(second.lastTransitionTime).toBe(first.lastTransitionTime);
      expect(second.reason).toBe('RoutesNotProgrammed');
      await until('the watch sees it', () => watch.self()?.networkUnavailable?.reason === 'RoutesNotProgrammed');

      expect(await watch.setNetworkCondition({ unavailable: false, reason: 'LightlyIsUp', message: 'up' })).toBe(true);
      const third = api.get(NODES, 'node-1')!.status.conditions;
      expect(third).toHaveLength(1);
      expect(third[0]).toMatchObject({ status: 'False', reason: 'LightlyIsUp' });
      expect(third[0].lastTransitionTime >= first.lastTransitionTime).toBe(true);
      expect(api.patches).toHaveLength(3);
    });
  });
});
