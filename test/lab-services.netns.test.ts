// Service advertisement end to end (issue 15): three Kubernetes-mode lab nodes against the fake API,
// a BIRD top-of-rack that merges what they announce into ECMP routes in its kernel, and a client
// behind it. The ToR must hold a LoadBalancer /32 with exactly the nodes that should announce it as
// next hops, follow endpoint moves and policy changes, drop it with the Service, never see an address
// outside the configured ranges, and carry the client's traffic to a pod through the address. The lab
// is dual stack: a dual-stack Service's /128 reaches the ToR beside its /32, via the nodes' IPv6 addresses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { down, restartAgent, stopAgent, up } from '../deploy/lab/lab.js';
import type { LabNode, LabPlan } from '../deploy/lab/topology.js';
import { BGP_CONFIGURATIONS, BGP_PEERS, EVENTS_PATH_DEFAULT, LOAD_BALANCER_IP_POOLS } from './support/fake-kube.js';
import { fabricApi } from './support/lab-kube.js';
import { NetnsPool, ipIn, requireNetworkTools } from './support/netns.js';
import { until } from './support/lab.js';
import { applyDnat, attachClient, dnatScript, podServer, startTor, tcpHello, torNextHops } from './support/service-path.js';

const prefix = `lt-${randomBytes(2).toString('hex')}-`;
const dir = mkdtempSync(join(tmpdir(), 'lt-labsvc-'));
const stateDir = join(dir, 'state');
const api = fabricApi(dir);
const pool = new NetnsPool();
const TOR_ASN = 65000;
const NODE_ASN = 64512;
/** A correctness bound, generous for a loaded 2-core machine; the measured times are printed. */
const FOLLOW_MS = 5_000;
/** LoadBalancer addresses of the IPv6 family (documentation space, RFC 3849). */
const V6_POOL = '2001:db8:5::/112';
let plan: LabPlan;
let nodes: LabNode[] = [];
let torPid: number | undefined;
let client = '';
const servers: ReturnType<typeof podServer>[] = [];

const kube = (method: string, path: string, body?: unknown) => api.kube(method, path, body);
const SVC = (name: string) => `/api/v1/namespaces/default/services/${name}`;
const hops = (prefix: string) => torNextHops(plan.fabricNetns, prefix);
const addressesOf = (...picked: LabNode[]) => picked.map((n) => n.address).sort();
const addresses6Of = (...picked: LabNode[]) => picked.map((n) => n.address6!).sort();

async function cluster(plan_: LabPlan): Promise<void> {
  plan = plan_;
  await api.afterFabric(plan);
  const created = await Promise.all([
    kube('POST', BGP_CONFIGURATIONS, {
      apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPConfiguration', metadata: { name: 'default' },
      spec: { asn: NODE_ASN, nodeToNodeMesh: true, serviceClusterIPs: [{ cidr: '10.96.0.0/12' }], serviceExternalIPs: [{ cidr: '198.51.100.0/24' }], serviceLoadBalancerIPs: [{ cidr: '203.0.113.0/24' }, { cidr: V6_POOL }] },
    }),
    kube('POST', BGP_PEERS, { apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: plan.fabricAddress, asn: TOR_ASN } }),
    // 100.100.0.0/24 is allocatable but outside serviceLoadBalancerIPs: such addresses are never announced.
    kube('POST', LOAD_BALANCER_IP_POOLS, { apiVersion: 'lightly.dev/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'public' }, spec: { cidrs: ['203.0.113.0/24', '100.100.0.0/24', V6_POOL] } }),
  ]);
  for (const c of created) expect(c.status).toBe(201);
  torPid = await startTor(plan, TOR_ASN, NODE_ASN, dir);
}

function serviceObject(name: string, spec: Record<string, unknown>, annotations: Record<string, string> = {}) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default', annotations, creationTimestamp: new Date().toISOString() }, spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], clusterIP: '10.96.0.20', ...spec } };
}

/** The Service's EndpointSlice of one family with one ready endpoint per given node (its first pod). */
async function setEndpoints(service: string, on: LabNode[], family: 'IPv4' | 'IPv6' = 'IPv4'): Promise<void> {
  const name = family === 'IPv4' ? `${service}-lab` : `${service}-lab6`;
  const slice = {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: family,
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    endpoints: on.map((n) => ({ addresses: [family === 'IPv4' ? n.pods[0]!.ip : n.pods[0]!.ip6], nodeName: n.name, conditions: { ready: true } })),
    ports: [{ port: 80, protocol: 'TCP' }],
  };
  const existing = await kube('GET', `/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/${name}`);
  const res = existing.status === 200 ? await kube('PUT', `/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/${name}`, slice) : await kube('POST', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', slice);
  expect(res.status).toBeLessThan(300);
}

async function patchService(name: string, spec: Record<string, unknown>): Promise<void> {
  const current = (await kube('GET', SVC(name))).body;
  expect((await kube('PUT', SVC(name), { ...current, spec: { ...current.spec, ...spec } })).status).toBe(200);
}

async function ingressOf(name: string): Promise<string[]> {
  const got = await kube('GET', SVC(name));
  return ((got.body?.status?.loadBalancer?.ingress ?? []) as { ip: string }[]).map((i) => i.ip);
}

/** Waits for the ToR's next hops for `prefix` to be `want`; returns how long that took. */
async function torFollows(prefix: string, want: string[], what: string): Promise<number> {
  let last: string[] = [];
  const took = await until(what, async () => JSON.stringify((last = await hops(prefix))) === JSON.stringify(want), FOLLOW_MS, { pollMs: 50, context: () => `the ToR has ${JSON.stringify(last)}` });
  console.log(`${what}: ${took} ms`);
  return took;
}

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nsenter', 'bird', 'birdc', 'nft']);
  nodes = (await up({ nodes: 3, pods: 1, prefix, stateDir, holdTime: 3, tor: 'mesh', stack: 'dual', kubeconfig: api.kubeconfig }, () => undefined, { afterFabric: cluster })).plan.nodes;
  client = await pool.create('client');
  await attachClient(plan.fabricNetns, client);
  await until('every node announces the cluster IP range to the ToR', async () => (await hops('10.96.0.0/12')).length === 3, 30_000);
}, 150_000);

afterAll(async () => {
  for (const s of servers) s.kill('SIGKILL');
  if (torPid) {
    try {
      process.kill(torPid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  await down(stateDir, prefix, () => undefined);
  await pool.cleanup();
  await api.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('Service advertisement in the lab (BIRD top-of-rack, Kubernetes mode)', () => {
  it('the cluster IP range reaches the ToR as one aggregate with every node as an ECMP next hop', async () => {
    expect(await hops('10.96.0.0/12')).toEqual(addressesOf(...nodes));
  });

  it('a LoadBalancer Service (policy Cluster) gets an address from the pool; the ToR holds its /32 via all three nodes; bgp status says which Service', async () => {
    expect((await kube('POST', '/api/v1/namespaces/default/services', serviceObject('web', { externalTrafficPolicy: 'Cluster' }))).status).toBe(201);
    await until('an address in status', async () => (await ingressOf('web')).length === 1, 15_000);
    expect(await ingressOf('web')).toEqual(['203.0.113.1']);
    await torFollows('203.0.113.1/32', addressesOf(...nodes), 'the /32 at the ToR via every node');
    const status = JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', nodes[0]!.statusSocket, 'bgp', 'status', '--json'])).stdout);
    expect(status.announced).toContainEqual({ prefix: '203.0.113.1/32', origin: 'service-load-balancer-ip', services: ['default/web'] });
    const routes = (await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', nodes[0]!.statusSocket, 'routes'])).stdout;
    expect(routes).toMatch(/203\.0\.113\.1\/32 +\| service-load-balancer-ip +\| default\/web/);
  }, 60_000);

  it('policy Local: next hops are exactly the nodes with a ready endpoint; an endpoint move and a policy change reach the ToR within the bound', async () => {
    const [n1, n2, n3] = nodes as [LabNode, LabNode, LabNode];
    await setEndpoints('web', [n1, n2]);
    await patchService('web', { externalTrafficPolicy: 'Local' });
    await torFollows('203.0.113.1/32', addressesOf(n1, n2), 'policy Cluster → Local (endpoints on node-1, node-2)');
    await setEndpoints('web', [n2, n3]);
    await torFollows('203.0.113.1/32', addressesOf(n2, n3), 'endpoint moved from node-1 to node-3');
    await patchService('web', { externalTrafficPolicy: 'Cluster' });
    await torFollows('203.0.113.1/32', addressesOf(n1, n2, n3), 'policy Local → Cluster');
    await patchService('web', { externalTrafficPolicy: 'Local' });
    await torFollows('203.0.113.1/32', addressesOf(n2, n3), 'policy Cluster → Local again');
  }, 60_000);

  it('data path: a client behind the ToR reaches a pod through the LoadBalancer address (DNAT on each announcing node to its local pods)', async () => {
    const [, n2, n3] = nodes as [LabNode, LabNode, LabNode];
    for (const n of [n2, n3]) {
      servers.push(podServer(n.pods[0]!.netns, 80, n.pods[0]!.name));
      await applyDnat(n.netns, dnatScript('203.0.113.1', 80, [n.pods[0]!.ip!]));
    }
    const answers = new Set<string>();
    await until('a pod answers through 203.0.113.1', async () => {
      const said = await tcpHello(client, '203.0.113.1', 80);
      if (said) answers.add(said);
      return answers.size > 0;
    }, 15_000, { pollMs: 200 });
    for (let i = 0; i < 4; i++) {
      const said = await tcpHello(client, '203.0.113.1', 80);
      expect(said, 'every connection through the LoadBalancer address is answered').toBeDefined();
      answers.add(said!);
    }
    for (const a of answers) expect([n2.pods[0]!.name, n3.pods[0]!.name]).toContain(a);
  }, 60_000);

  it('addresses outside the configured ranges never reach the ToR, and an Event says why', async () => {
    // In range and out of range side by side: the in-range one arriving proves the ToR was listening.
    expect((await kube('POST', '/api/v1/namespaces/default/services', serviceObject('outside', { externalTrafficPolicy: 'Cluster', externalIPs: ['198.51.100.7', '192.168.77.7'] }, { 'lightly.dev/load-balancer-ips': '100.100.0.5' }))).status).toBe(201);
    await until('the allocation outside serviceLoadBalancerIPs', async () => (await ingressOf('outside'))[0] === '100.100.0.5', 15_000);
    await torFollows('198.51.100.7/32', addressesOf(...nodes), 'the in-range external IP at the ToR');
    await until('Events for both ignored addresses', async () => {
      const events = ((await kube('GET', EVENTS_PATH_DEFAULT)).body.items ?? []) as { reason: string; involvedObject: { name: string } }[];
      return ['ExternalIPNotAdvertised', 'LoadBalancerIPNotAdvertised'].every((r) => events.some((e) => e.reason === r && e.involvedObject.name === 'outside'));
    }, 15_000);
    await new Promise((r) => setTimeout(r, 1_000));
    for (const p of ['192.168.77.7/32', '100.100.0.5/32']) expect(await hops(p), p).toEqual([]);
    const birdc = await execa('birdc', ['-s', join(dir, 'tor.ctl'), 'show', 'route', 'all'], { reject: false });
    expect(birdc.stdout).toContain('198.51.100.7/32');
    expect(birdc.stdout).not.toContain('192.168.77.7');
    expect(birdc.stdout).not.toContain('100.100.0.5');
  }, 60_000);

  it('graceful restart keeps Service prefixes like pod CIDRs: an agent restarted (SIGTERM) never leaves the ToR without its /32 and /24', async () => {
    const node = nodes[0]!;
    const watched = ['198.51.100.7/32', node.podCIDR];
    let gaps = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const p of watched) if (!(await hops(p)).includes(node.address)) gaps++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await stopAgent(stateDir, node.name, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 1_000));
      await restartAgent(stateDir, node.name);
      // Back and announcing again from the restarted agent (its status says so), still without a gap.
      await until('the restarted agent announces the Service again', async () => {
        const out = await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', node.statusSocket, 'bgp', 'status', '--json'], { reject: false });
        return out.exitCode === 0 && JSON.parse(out.stdout).announced?.some((a: { prefix: string }) => a.prefix === '198.51.100.7/32') && JSON.parse(out.stdout).peers.some((p: { address: string; state: string }) => p.address === plan.fabricAddress && p.state === 'Established');
      }, 30_000);
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      watching = false;
      await watcher;
    }
    expect(gaps, 'polls where the ToR had lost the node as a next hop').toBe(0);
    for (const p of watched) expect(await hops(p)).toContain(node.address);
  }, 90_000);

  it('the Service deleted: its /32 leaves the ToR', async () => {
    expect((await kube('DELETE', SVC('web'))).status).toBe(200);
    await torFollows('203.0.113.1/32', [], 'withdrawn after the Service is deleted');
    expect(await hops('10.96.0.0/12')).toEqual(addressesOf(...nodes)); // the rest stays
  }, 30_000);

  it('dual stack (RequireDualStack): an address of each family in status; the ToR holds the /32 and the /128 via exactly the announcing nodes (IPv6 via their global addresses); Local follows endpoints for both; both go with the Service', async () => {
    const [n1, n2, n3] = nodes as [LabNode, LabNode, LabNode];
    await setEndpoints('dual', [n1, n3]);
    await setEndpoints('dual', [n1, n3], 'IPv6');
    const spec = { externalTrafficPolicy: 'Local', ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], clusterIP: '10.96.0.21', clusterIPs: ['10.96.0.21', 'fd00:96::21'] };
    expect((await kube('POST', '/api/v1/namespaces/default/services', serviceObject('dual', spec))).status).toBe(201);
    await until('an address of each family in status', async () => (await ingressOf('dual')).length === 2, 15_000);
    const [v4, v6] = await ingressOf('dual');
    expect(v4).toMatch(/^203\.0\.113\.\d+$/);
    expect(v6).toMatch(/^2001:db8:5::[0-9a-f]*$/);
    const p4 = `${v4}/32`;
    const p6 = `${v6}/128`;
    await torFollows(p4, addressesOf(n1, n3), 'dual stack, Local: the /32 via node-1, node-3');
    await torFollows(p6, addresses6Of(n1, n3), 'dual stack, Local: the /128 via node-1, node-3 (IPv6 next hops)');
    await setEndpoints('dual', [n2]);
    await setEndpoints('dual', [n2], 'IPv6');
    await torFollows(p4, addressesOf(n2), 'dual stack: endpoints moved to node-2 (/32)');
    await torFollows(p6, addresses6Of(n2), 'dual stack: endpoints moved to node-2 (/128)');
    await patchService('dual', { externalTrafficPolicy: 'Cluster' });
    await torFollows(p4, addressesOf(n1, n2, n3), 'dual stack, Cluster: the /32 via every node');
    await torFollows(p6, addresses6Of(n1, n2, n3), 'dual stack, Cluster: the /128 via every node');
    // The ToR's view, as docs/services.md shows it.
    console.log(`${await ipIn(plan.fabricNetns, ['-4', 'route', 'show', 'exact', p4])}\n${await ipIn(plan.fabricNetns, ['-6', 'route', 'show', 'exact', p6])}`);
    expect((await kube('DELETE', SVC('dual'))).status).toBe(200);
    await torFollows(p4, [], 'dual stack: the /32 withdrawn with the Service');
    await torFollows(p6, [], 'dual stack: the /128 withdrawn with the Service');
  }, 60_000);

  it('failover: the allocating agent killed (SIGKILL), another takes the Lease within its time and allocates', async () => {
    const lease = async () => (await kube('GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lightly-lb-allocator')).body?.spec?.holderIdentity as string | undefined;
    const holder = await lease();
    expect(nodes.map((n) => n.name)).toContain(holder);
    const killedAt = Date.now();
    await stopAgent(stateDir, holder!, 'SIGKILL');
    expect((await kube('POST', '/api/v1/namespaces/default/services', serviceObject('after-failover', {}))).status).toBe(201);
    // Lease 15 s, looked at every 2 s: the bound adds those and a margin for a loaded machine.
    await until('an address from the new holder', async () => (await ingressOf('after-failover')).length === 1, 15_000 + 2 * 2_000 + 10_000);
    const took = Date.now() - killedAt;
    console.log(`failover: allocation ${took} ms after the holder was killed`);
    const next = await lease();
    expect(next).toBeDefined();
    expect(next).not.toBe(holder);
    expect(took).toBeGreaterThanOrEqual(13_000); // not before the Lease ran out (15 s, less a retry of slack)
  }, 60_000);
});
