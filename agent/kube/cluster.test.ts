// ClusterWatch against the in-process fake API: real list/watch, resourceVersions and status patches.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BGP_CONFIGURATIONS, BGP_PEERS, FakeKube, NODES, nodeObject } from '../../test/support/fake-kube.js';
import { ClusterWatch } from './cluster.js';
import type { DesiredBgp } from './desired.js';

const quiet = { info: () => undefined, warn: () => undefined };
let api: FakeKube;
let watch: ClusterWatch;
let latest: DesiredBgp | undefined;

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last desired: ${JSON.stringify(latest)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeEach(async () => {
  api = new FakeKube();
  await api.start();
  api.upsert(NODES, nodeObject('node-1', '192.0.2.1', '10.244.1.0/24'));
  api.upsert(NODES, nodeObject('node-2', '192.0.2.2', '10.244.2.0/24'));
  watch = new ClusterWatch(api.kubeConfig(), 'node-1', quiet);
  latest = undefined;
  watch.on('desired', (d: DesiredBgp) => (latest = d));
  await watch.start();
});
afterEach(async () => {
  watch.stop();
  await api.stop();
});

describe('ClusterWatch', () => {
  it('lists the cluster and follows node join, podCIDR assignment and node removal live', async () => {
    await until('initial mesh', () => latest?.peers.length === 1);
    expect(latest).toMatchObject({ routerId: '192.0.2.1', podCIDRs: ['10.244.1.0/24'], asn: 64512 });

    api.upsert(NODES, nodeObject('node-3', '192.0.2.3'));
    await until('node-3 joins the mesh', () => latest?.peers.some((p) => p.address === '192.0.2.3') === true);

    api.upsert(NODES, nodeObject('node-1', '192.0.2.1', '10.244.7.0/24'));
    await until('our new pod CIDR', () => latest?.podCIDRs[0] === '10.244.7.0/24');

    api.remove(NODES, 'node-2');
    await until('node-2 leaves', () => latest?.peers.map((p) => p.address).join() === '192.0.2.3');
  });

  it('applies BGPConfiguration and BGPPeers (nodeSelector) live', async () => {
    await until('initial', () => latest !== undefined);
    api.upsert(BGP_CONFIGURATIONS, { metadata: { name: 'default' }, spec: { asn: 64600, importCIDRs: ['10.244.0.0/16'], holdTime: 9 } });
    await until('asn from BGPConfiguration', () => latest?.asn === 64600 && latest.holdTime === 9);
    api.upsert(BGP_PEERS, { metadata: { name: 'tor-r1' }, spec: { peerIP: '192.0.2.254', asn: 65000, nodeSelector: 'rack=r1' } });
    await new Promise((r) => setTimeout(r, 200));
    expect(latest!.peers.some((p) => p.address === '192.0.2.254')).toBe(false); // node-1 is not in rack r1
    api.upsert(NODES, nodeObject('node-1', '192.0.2.1', '10.244.1.0/24', { rack: 'r1' }));
    await until('ToR peer after labelling', () => latest?.peers.some((p) => p.address === '192.0.2.254' && p.type === 'node-specific') === true);
  });

  it('creates the default BGPConfiguration once when there is none, and leaves an existing one alone', async () => {
    await until('default created', () => api.get(BGP_CONFIGURATIONS, 'default') !== undefined);
    expect(api.get(BGP_CONFIGURATIONS, 'default')!.spec).toEqual({ asn: 64512, nodeToNodeMesh: true, holdTime: 90, maxPrefixes: 10000, natOutgoing: false });
    expect(api.creates).toHaveLength(1);
    const second = new ClusterWatch(api.kubeConfig(), 'node-2', quiet);
    await second.start();
    second.stop();
    expect(api.creates).toHaveLength(1); // it saw the default in its listing
  });

  it('patches the NetworkUnavailable condition by strategic merge', async () => {
    await watch.setNetworkUnavailable(false, 'routes programmed');
    const node = api.get(NODES, 'node-1')!;
    expect(node.status.conditions).toEqual([expect.objectContaining({ type: 'NetworkUnavailable', status: 'False', reason: 'LightlyIsUp' })]);
    expect(api.patches.at(-1)).toMatchObject({ path: '/api/v1/nodes/node-1/status', contentType: 'application/strategic-merge-patch+json' });
    await watch.setNetworkUnavailable(true, 'agent failed');
    expect(api.get(NODES, 'node-1')!.status.conditions).toHaveLength(1);
    expect(api.get(NODES, 'node-1')!.status.conditions[0]).toMatchObject({ status: 'True' });
  });
});
