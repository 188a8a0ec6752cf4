// Kubernetes mode end to end: three lab nodes whose agents run `--kubernetes` against a fake API
// server in the fabric namespace (real list/watch, resourceVersions, status patches). Peers and pod
// CIDRs come from the Node objects only. The API server also goes away for 30 s, and bad objects
// are applied live: the nodes must not notice either.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { down, restartAgent, status as labStatus, stopAgent, up } from '../deploy/lab/lab.js';
import type { LabNode } from '../deploy/lab/topology.js';
import { BGP_CONFIGURATIONS, BGP_PEERS, NODES } from './support/fake-kube.js';
import { FabricApi } from './support/lab-kube.js';
import { requireNetworkTools } from './support/netns.js';
import { expectMeshReachable, pingOnce, routesOf, until } from './support/lab.js';

const prefix = `lt-${randomBytes(2).toString('hex')}-`;
const dir = mkdtempSync(join(tmpdir(), 'lt-labk8s-'));
const stateDir = join(dir, 'state');
const api = new FabricApi(dir);
let nodes: LabNode[] = [];

const kube = (method: string, path: string, body?: unknown) => api.kube(method, path, body);
const EVENTS = '/api/v1/namespaces/default/events';
const agentsRunning = (): boolean => labStatus(stateDir)!.health.every((h) => h.agentRunning);
const condition = async (name: string) =>
  ((await kube('GET', `${NODES}/${name}`)).body.status.conditions as { type: string; status: string; reason: string }[]).find((c) => c.type === 'NetworkUnavailable');

/** Every node still routes to every other node's pod CIDR via that node (nothing withdrawn). */
async function expectAllRoutes(): Promise<void> {
  for (const node of nodes) {
    const routes = await routesOf(node);
    for (const other of nodes.filter((n) => n !== node)) expect(routes, `${node.name} → ${other.podCIDR}`).toContain(`${other.podCIDR} via ${other.address}`);
    expect(routes).toContain(`blackhole ${node.podCIDR}`);
  }
}

async function expectPodsReachEachOther(): Promise<void> {
  const pods = nodes.flatMap((n) => n.pods);
  for (const from of pods) for (const to of pods.filter((p) => p !== from)) expect(await pingOnce(from.netns, to.ip!), `${from.name} → ${to.name}`).toBe(true);
}

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nsenter', 'ping']);
  if (!existsSync('dist/bin/lightly-agent.js')) throw new Error('dist/bin/lightly-agent.js is missing: run npm run build (scripts/test.sh does)');
  const state = await up({ nodes: 3, pods: 1, prefix, stateDir, holdTime: 3, tor: 'mesh', kubeconfig: api.kubeconfig }, () => undefined, { afterFabric: (plan) => api.start(plan) });
  nodes = state.plan.nodes;
}, 120_000);

afterAll(async () => {
  await down(stateDir, prefix, () => undefined);
  await api.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('lab in Kubernetes mode (fake API in the fabric)', () => {
  it('builds the mesh from Node objects: every pod reaches every other pod', async () => {
    await expectMeshReachable(nodes);
  });

  it('reports NetworkUnavailable=False (LightlyIsUp) on every Node, and created the default BGPConfiguration', async () => {
    for (const node of nodes) {
      await until(`${node.name}'s condition`, async () => {
        const got = await kube('GET', `${NODES}/${node.name}`);
        return got.body.status.conditions.some((c: { type: string; status: string; reason: string }) => c.type === 'NetworkUnavailable' && c.status === 'False' && c.reason === 'LightlyIsUp');
      }, 10_000);
    }
    const config = await kube('GET', `${BGP_CONFIGURATIONS}/default`);
    expect(config.body.spec).toMatchObject({ asn: 64512, nodeToNodeMesh: true });
  });

  it('a BGPPeer for one node only reaches that node, live', async () => {
    const status = async (node: LabNode) =>
      JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', node.statusSocket, 'bgp', 'status', '--json'])).stdout) as { peers: { address: string; type: string }[] };
    expect((await kube('POST', BGP_PEERS, { apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: '192.0.2.200', asn: 65000, node: 'node-2' } })).status).toBe(201);
    await until('node-2 peers with the ToR', async () => (await status(nodes[1]!)).peers.some((p) => p.address === '192.0.2.200' && p.type === 'node-specific'), 10_000);
    expect((await status(nodes[0]!)).peers.map((p) => p.address)).not.toContain('192.0.2.200');
  });

  it('bad BGPPeers applied live (a short peerIP, a selector that does not parse): every agent stays up, each is reported, good peers still work', async () => {
    const peer = (name: string, spec: Record<string, unknown>) => kube('POST', BGP_PEERS, { apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPPeer', metadata: { name }, spec });
    expect((await peer('bad-ip', { peerIP: '10.0.0', asn: 65000 })).status).toBe(201);
    expect((await peer('bad-selector', { peerIP: '192.0.2.201', asn: 65000, nodeSelector: 'rack in (r1' })).status).toBe(201);
    expect((await peer('proto-key', { peerIP: '192.0.2.202', asn: 65000, nodeSelector: 'constructor' })).status).toBe(201);
    await until('Events for both bad peers', async () => {
      const events = (await kube('GET', EVENTS)).body.items as { involvedObject: { name: string } }[];
      return ['bad-ip', 'bad-selector'].every((n) => events.some((e) => e.involvedObject.name === n));
    }, 15_000);
    // A good peer added after them is still applied: the bad ones stopped nothing.
    expect((await peer('tor-1', { peerIP: '192.0.2.203', asn: 65000, node: 'node-1' })).status).toBe(201);
    const status = async (node: LabNode) =>
      JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', node.statusSocket, 'bgp', 'status', '--json'])).stdout) as { peers: { address: string }[] };
    await until('node-1 peers with tor-1', async () => (await status(nodes[0]!)).peers.some((p) => p.address === '192.0.2.203'), 15_000);
    for (const node of nodes) expect((await status(node)).peers.map((p) => p.address)).not.toContain('192.0.2.202'); // no node has the label `constructor`
    await new Promise((r) => setTimeout(r, 3_000)); // longer than any timer the agents run for a change
    expect(agentsRunning()).toBe(true);
    await expectAllRoutes();
    await expectPodsReachEachOther();
  }, 60_000);

  it('the API server away for 30 s mid-run (hanging, then refusing): pods keep reaching each other, no route is withdrawn, agents recover', async () => {
    await expectAllRoutes();
    const setMode = async (mode: string) => expect((await kube('POST', '/fake/mode', { mode })).status).toBe(200);
    await setMode('hang');
    const end = Date.now() + 30_000;
    let switched = false;
    while (Date.now() < end) {
      if (!switched && Date.now() > end - 15_000) {
        await setMode('refuse');
        switched = true;
      }
      await expectAllRoutes();
      await expectPodsReachEachOther();
      expect(agentsRunning()).toBe(true);
      await new Promise((r) => setTimeout(r, 2_000));
    }
    await setMode('up');
    // Recovered: a change made after the outage reaches every agent (their back-off is capped at 30 s).
    const current = (await kube('GET', `${NODES}/${nodes[2]!.name}`)).body;
    expect((await kube('PUT', `${NODES}/${nodes[2]!.name}`, { ...current, metadata: { ...current.metadata, labels: { ...current.metadata.labels, rack: 'r9' } } })).status).toBe(200);
    expect((await kube('POST', BGP_PEERS, { apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPPeer', metadata: { name: 'after-outage' }, spec: { peerIP: '192.0.2.204', asn: 65000, nodeSelector: 'rack=r9' } })).status).toBe(201);
    await until('node-3 applies a peer created after the outage', async () => {
      const out = await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', nodes[2]!.statusSocket, 'bgp', 'status', '--json'], { reject: false });
      return out.exitCode === 0 && (JSON.parse(out.stdout) as { peers: { address: string }[] }).peers.some((p) => p.address === '192.0.2.204');
    }, 60_000);
    await expectAllRoutes();
    for (const node of nodes) expect((await condition(node.name))?.status).toBe('False');
  }, 150_000);

  it("a pod CIDR assigned to a Node changes what its agent advertises and blackholes, live", async () => {
    const node = nodes[1]!;
    const current = (await kube('GET', `${NODES}/${node.name}`)).body;
    const cidrs = [node.podCIDR, '10.244.200.0/24'];
    expect((await kube('PUT', `${NODES}/${node.name}`, { ...current, spec: { podCIDR: cidrs[0], podCIDRs: cidrs } })).status).toBe(200);
    await until('the new CIDR on node-1 via node-2', async () => (await routesOf(nodes[0]!)).includes(`10.244.200.0/24 via ${node.address}`), 10_000);
    expect(await routesOf(node)).toContain('blackhole 10.244.200.0/24');
  });

  it('an agent stopped with SIGTERM sets NetworkUnavailable=True (LightlyIsDown), its routes stay; its successor is taken back by the peers and reports LightlyIsUp', async () => {
    const node = nodes[2]!;
    await stopAgent(stateDir, node.name, 'SIGTERM');
    expect(await condition(node.name)).toMatchObject({ status: 'True', reason: 'LightlyIsDown' });
    await expectAllRoutes();
    await restartAgent(stateDir, node.name);
    // The peers take the restarted speaker back (graceful restart) and it reports the network up again.
    await until(`${node.name}'s new agent up again`, async () => (await condition(node.name))?.reason === 'LightlyIsUp', 60_000);
    await expectAllRoutes();
  }, 90_000);

  it('a Node deleted from the API leaves the mesh: its routes go from the others, without restarts', async () => {
    const gone = nodes[2]!;
    expect((await kube('DELETE', `${NODES}/${gone.name}`)).status).toBe(200);
    await until(`${gone.podCIDR} withdrawn on node-1 and node-2`, async () => (await Promise.all(nodes.slice(0, 2).map(routesOf))).every((r) => !r.includes(gone.podCIDR)), 15_000);
    expect(await routesOf(nodes[0]!)).toContain(`${nodes[1]!.podCIDR} via ${nodes[1]!.address}`);
  });
});
