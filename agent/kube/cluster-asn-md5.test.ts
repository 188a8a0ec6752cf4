// Kubernetes mode against the in-process fake API: per-node AS from the Node label, the ToR-only layout
// (mesh off), and BGPPeer passwords from a Secret of the agent's namespace, all followed live.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { BGP_CONFIGURATIONS, BGP_PEERS, FakeKube, NODES, SECRETS, nodeObject, secretObject } from '../../test/support/fake-kube.js';
import { until as waitUntil } from '../../test/support/wait.js';
import { ClusterWatch } from './cluster.js';
import type { DesiredBgp } from './desired.js';
import { EVENTS_PATH } from './events.js';

const quiet = pino({ level: 'silent' });
let api: FakeKube;
let watch: ClusterWatch;
let latest: DesiredBgp | undefined;
const until = (what: string, check: () => boolean) => waitUntil(what, check, 5_000, { pollMs: 20, context: () => `last desired: ${JSON.stringify(latest)}` });
const tor = (address: string) => latest?.peers.find((p) => p.address === address);

beforeEach(async () => {
  api = new FakeKube();
  await api.start();
  api.upsert(NODES, nodeObject('node-1', '192.0.2.1', '10.244.1.0/24', { rack: 'r1', 'lightly.dev/asn': '65101' }));
  api.upsert(NODES, nodeObject('node-2', '192.0.2.2', '10.244.2.0/24', { rack: 'r1', 'lightly.dev/asn': '65101' }));
  api.upsert(NODES, nodeObject('node-3', '192.0.2.3', '10.244.3.0/24', { rack: 'r2', 'lightly.dev/asn': '65102' }));
  watch = new ClusterWatch(api.apiEndpoint(), 'node-1', quiet, { backoff: { baseMs: 100, capMs: 800 }, random: () => 0.5, requestIdleMs: 1_000, secretsNamespace: 'kube-system' });
  latest = undefined;
  watch.on('desired', (d: DesiredBgp) => (latest = d));
  watch.start();
});
afterEach(async () => {
  await watch.stop();
  await api.stop();
});

describe('Kubernetes mode: per-node AS and BGPPeer passwords', () => {
  it('the node AS comes from its label, the mesh joins its own AS only, and follows a label change live', async () => {
    await until('first state', () => latest !== undefined);
    expect(latest).toMatchObject({ asn: 65101 });
    expect(latest!.peers.map((p) => [p.address, p.asn])).toEqual([['192.0.2.2', 65101]]);
    api.upsert(NODES, nodeObject('node-3', '192.0.2.3', '10.244.3.0/24', { rack: 'r1', 'lightly.dev/asn': '65101' }));
    await until('node-3 moved into our AS joins the mesh', () => latest!.peers.some((p) => p.address === '192.0.2.3' && p.asn === 65101));
    api.upsert(BGP_CONFIGURATIONS, { metadata: { name: 'default' }, spec: { ebgpNodeMesh: true } });
    api.upsert(NODES, nodeObject('node-2', '192.0.2.2', '10.244.2.0/24', { rack: 'r1', 'lightly.dev/asn': '65109' }));
    await until('node-2, now AS 65109, meshed over eBGP', () => tor('192.0.2.2')?.asn === 65109);
    // no BGPPeer has a password: Secrets are never read
    expect(api.requests.filter((r) => r.path.includes('/secrets'))).toEqual([]);
  });

  it('mesh off with per-rack ToR BGPPeers: each node peers with its ToR alone, using the password from the Secret, changed live', async () => {
    api.upsert(BGP_CONFIGURATIONS, { metadata: { name: 'default' }, spec: { nodeToNodeMesh: false } });
    const password = { secretKeyRef: { name: 'bgp-passwords', key: 'tor-r1' } };
    api.upsert(BGP_PEERS, { metadata: { name: 'tor-r1' }, spec: { peerIP: '192.0.2.251', asn: 65001, nodeSelector: 'rack=r1', password } });
    api.upsert(BGP_PEERS, { metadata: { name: 'tor-r2' }, spec: { peerIP: '192.0.2.252', asn: 65002, nodeSelector: 'rack=r2' } });
    // The Secret is not there yet: the ToR is left out, and the BGPPeer gets an Event naming the Secret.
    await until('the BGPPeer reported', () => latest?.peerProblems?.length === 1);
    expect(api.requests.some((r) => r.path === SECRETS)).toBe(true);
    expect(latest!.peers).toEqual([]);
    await until('an Event on the BGPPeer', () => api.list(EVENTS_PATH).some((e) => e.reason === 'PasswordUnavailable' && e.involvedObject?.name === 'tor-r1'));

    api.upsert(SECRETS, secretObject('bgp-passwords', { 'tor-r1': 'first-secret' }));
    await until('the ToR with its password', () => tor('192.0.2.251')?.password === 'first-secret');
    expect(latest!.peers.map((p) => [p.address, p.asn])).toEqual([['192.0.2.251', 65001]]);
    expect(latest!.peerProblems).toBeUndefined();

    api.upsert(SECRETS, secretObject('bgp-passwords', { 'tor-r1': 'second-secret' }));
    await until('the new password', () => tor('192.0.2.251')?.password === 'second-secret');
    const events = JSON.stringify(api.list(EVENTS_PATH));
    expect(events).not.toContain('first-secret');
    expect(events).not.toContain('second-secret');
  });

  it('a BGPPeer with peerSelector peers with the selected Nodes, each with the AS of its label', async () => {
    api.upsert(BGP_CONFIGURATIONS, { metadata: { name: 'default' }, spec: { nodeToNodeMesh: false } });
    api.upsert(NODES, nodeObject('edge-1', '192.0.2.9', '10.244.9.0/24', { edge: 'true', 'lightly.dev/asn': '65200' }));
    api.upsert(BGP_PEERS, { metadata: { name: 'edges' }, spec: { peerSelector: 'edge', nodeSelector: 'rack=r1' } });
    await until('the edge node as an eBGP peer', () => tor('192.0.2.9')?.asn === 65200);
    expect(latest!.peers.map((p) => p.address)).toEqual(['192.0.2.9']);
  });
});
