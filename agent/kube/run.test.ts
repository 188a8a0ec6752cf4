// Kubernetes mode against the in-process fake API, with a fake daemon: start-up without the API,
// readiness and NetworkUnavailable from one rule, shutdown, and the NAT cluster set.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { BGP_CONFIGURATIONS, FakeKube, LOAD_BALANCER_IP_POOLS, NODES, SERVICES, nodeObject } from '../../test/support/fake-kube.js';
import { until as waitUntil } from '../../test/support/wait.js';
import type { AgentConfig } from '../config.js';
import { natRuleset } from '../nat.js';
import type { ServiceAnnouncement } from '../services/announce.js';
import type { AnnouncedPrefix, PeerState } from '../status.js';
import { desiredBgp } from './desired.js';
import { EVENTS_PATH } from './events.js';
import { KubernetesMode, type NodeDaemon, kubeAgentConfig } from './run.js';

class FakeDaemon implements NodeDaemon {
  static peerState: PeerState = 'Established';
  configs: AgentConfig[] = [];
  stopped?: boolean;
  announced: AnnouncedPrefix[] = [];
  /** The Service prefixes it was started with: its speaker's first announcement. */
  startedWith?: AnnouncedPrefix[];
  constructor(config: AgentConfig) {
    this.configs.push(config);
  }
  get config(): AgentConfig {
    return this.configs.at(-1)!;
  }
  async reload(config: AgentConfig) {
    this.configs.push(config);
  }
  async stop(graceful: boolean) {
    this.stopped = graceful;
  }
  setServiceAnnouncements(announced: AnnouncedPrefix[]) {
    this.announced = announced;
  }
  bgpStatus() {
    const peers = this.config.peers.map((p) => ({ address: p.address, asn: p.asn, type: 'node-mesh' as const, state: FakeDaemon.peerState, uptimeSeconds: 0, prefixesReceived: 0, prefixesAdvertised: 0 }));
    return { node: this.config.nodeName, routerId: this.config.routerId, asn: this.config.asn, peers };
  }
  routes() {
    return this.config.podCIDRs.map((prefix) => ({ prefix, type: 'blackhole' as const, nextHops: [] }));
  }
  node() {
    return { nodeName: this.config.nodeName, podCIDRs: this.config.podCIDRs };
  }
  cniStats() {
    return { le: [0.1], verbs: { ADD: { buckets: [1], count: 1, sum: 0.02 } }, errors: {} };
  }
}

let api: FakeKube;
let mode: KubernetesMode | undefined;
let daemons: FakeDaemon[];

const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5_000) => waitUntil(what, check, timeoutMs, { pollMs: 20 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startMode(local: Record<string, unknown> = {}, beforeStart?: (m: KubernetesMode) => void): Promise<KubernetesMode> {
  daemons = [];
  mode = new KubernetesMode({
    api: api.apiEndpoint(),
    nodeName: 'node-1',
    local: { metricsPort: 0, ...local },
    log: pino({ level: 'silent' }),
    startDaemon: async (config, services) => {
      const d = new FakeDaemon(config);
      d.startedWith = services;
      daemons.push(d);
      return d;
    },
    conditionIntervalMs: 50,
    watch: { backoff: { baseMs: 100, capMs: 800 }, random: () => 0.5, requestIdleMs: 1_000 },
  });
  beforeStart?.(mode);
  await mode.start();
  return mode;
}

const readyz = async () => {
  const res = await fetch(`http://127.0.0.1:${mode!.metricsPort()}/readyz`);
  return { status: res.status, text: await res.text() };
};
const condition = () => api.get(NODES, 'node-1')?.status.conditions.find((c: { type: string }) => c.type === 'NetworkUnavailable');

beforeEach(async () => {
  FakeDaemon.peerState = 'Established';
  api = new FakeKube();
  await api.start();
  api.upsert(NODES, nodeObject('node-1', '192.0.2.1', '10.244.1.0/24'));
  api.upsert(NODES, nodeObject('node-2', '192.0.2.2', '10.244.2.0/24'));
});
afterEach(async () => {
  await mode?.stop(true);
  mode = undefined;
  await api.stop();
});

describe('Kubernetes mode', () => {
  it("serves the daemon's CNI server counters on its /metrics", async () => {
    await startMode();
    await until('the daemon', () => daemons.length === 1);
    const text = await (await fetch(`http://127.0.0.1:${mode!.metricsPort()}/metrics`)).text();
    expect(text).toContain('lightly_cni_request_duration_seconds_count{verb="ADD"} 1');
  });

  it('API unreachable at start (item 4): live, not ready, no BGP and no kernel change until the Node is known; then starts with its router id', async () => {
    await api.setMode('refuse');
    await startMode();
    expect((await fetch(`http://127.0.0.1:${mode!.metricsPort()}/healthz`)).status).toBe(200);
    await sleep(1_500);
    expect(daemons).toHaveLength(0); // no speaker with router id 0.0.0.0, no route sink touching the kernel
    const r = await readyz();
    expect(r.status).toBe(503);
    expect(r.text).toMatch(/^WaitingForKubernetesAPI/);
    await api.setMode('up');
    await until('the daemon', () => daemons.length === 1);
    expect(daemons[0]!.config).toMatchObject({ routerId: '192.0.2.1', podCIDRs: ['10.244.1.0/24'] });
    await until('ready', async () => (await readyz()).status === 200);
    await until('NetworkUnavailable=False', () => condition()?.status === 'False');
  });

  it('NetworkUnavailable (item 7): True while no session is Established, False once one is; a node joining patches nothing; LightlyIsDown on stop', async () => {
    FakeDaemon.peerState = 'Active';
    await startMode();
    await until('NoBGPSessionEstablished', () => condition()?.reason === 'NoBGPSessionEstablished');
    expect(condition().status).toBe('True');
    FakeDaemon.peerState = 'Established';
    await until('LightlyIsUp', () => condition()?.reason === 'LightlyIsUp');
    expect(condition().status).toBe('False');
    const patches = api.patches.length;
    const since = condition().lastTransitionTime;
    for (let i = 3; i <= 6; i++) api.upsert(NODES, nodeObject(`node-${i}`, `192.0.2.${i}`, `10.244.${i}.0/24`));
    await until('the joins applied', () => daemons[0]!.config.peers.length === 5);
    await sleep(300);
    expect(api.patches.length).toBe(patches);
    expect(condition().lastTransitionTime).toBe(since);

    await mode!.stop(true);
    mode = undefined;
    expect(condition()).toMatchObject({ status: 'True', reason: 'LightlyIsDown' });
    expect(daemons[0]!.stopped).toBe(true);
  });

  it('a Node without a pod CIDR (item 6): NetworkUnavailable=True NoPodCIDR, an Event, not ready; ready once the CIDR is assigned', async () => {
    api.upsert(NODES, nodeObject('node-1', '192.0.2.1'));
    await startMode();
    await until('NoPodCIDR', () => condition()?.reason === 'NoPodCIDR');
    expect(condition().status).toBe('True');
    expect((await readyz()).text).toMatch(/^NoPodCIDR: .*allocate-node-cidrs/);
    await until('an Event', () => api.list(EVENTS_PATH).some((e) => e.reason === 'NoPodCIDR' && e.involvedObject.name === 'node-1'));
    api.upsert(NODES, nodeObject('node-1', '192.0.2.1', '10.244.1.0/24'));
    await until('LightlyIsUp', () => condition()?.reason === 'LightlyIsUp');
    expect((await readyz()).status).toBe(200);
  });

  it('a Node without an IPv4 InternalIP and no annotation (item 6): no BGP, NoRouterID', async () => {
    api.upsert(NODES, nodeObject('node-1', 'fd00::1', '10.244.1.0/24'));
    await startMode();
    await until('NoRouterID', () => condition()?.reason === 'NoRouterID');
    expect(daemons).toHaveLength(0);
    api.upsert(NODES, { ...nodeObject('node-1', 'fd00::1', '10.244.1.0/24'), metadata: { name: 'node-1', annotations: { 'lightly.dev/router-id': '10.255.0.1' } } });
    await until('the daemon', () => daemons.length === 1);
    expect(daemons[0]!.config.routerId).toBe('10.255.0.1');
  });

  it("the node-local file's routerId stands in when the Node has no IPv4 InternalIP and no annotation", async () => {
    api.upsert(NODES, nodeObject('node-1', 'fd00::1', '10.244.1.0/24'));
    await startMode({ routerId: '10.255.0.9' });
    await until('the daemon', () => daemons.length === 1);
    expect(daemons[0]!.config.routerId).toBe('10.255.0.9');
  });

  it('an API outage mid-run changes nothing for the daemon (item 4)', async () => {
    await startMode();
    await until('LightlyIsUp', () => condition()?.reason === 'LightlyIsUp');
    const applied = daemons[0]!.configs.length;
    await api.setMode('hang');
    await sleep(1_500);
    await api.setMode('refuse');
    await sleep(1_000);
    expect(daemons).toHaveLength(1);
    expect(daemons[0]!.configs.length).toBe(applied);
    expect((await readyz()).status).toBe(200);
    await api.setMode('up');
    api.upsert(NODES, nodeObject('node-3', '192.0.2.3', '10.244.3.0/24'));
    await until('node-3 applied', () => daemons[0]!.config.peers.length === 2, 8_000);
  });
});

describe('Service advertisement (issue 15)', () => {
  it('the daemon gets the Service prefixes with their Services, live, and never imports the Service ranges', async () => {
    api.upsert(BGP_CONFIGURATIONS, { metadata: { name: 'default' }, spec: { serviceClusterIPs: [{ cidr: '10.96.0.0/12' }], serviceLoadBalancerIPs: [{ cidr: '203.0.113.0/24' }] } });
    api.upsert(LOAD_BALANCER_IP_POOLS, { metadata: { name: 'p' }, spec: { cidrs: ['203.0.113.0/24'] } });
    await startMode();
    await until('the daemon', () => daemons.length === 1);
    expect(daemons[0]!.config.rejectCIDRs).toEqual(['10.96.0.0/12', '203.0.113.0/24']);
    await until('the cluster range announced', () => daemons[0]!.announced.some((a) => a.prefix === '10.96.0.0/12'));
    api.upsert(SERVICES, { metadata: { name: 'web', namespace: 'default' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } });
    await until('the /32 announced for default/web', () => daemons[0]!.announced.some((a) => a.prefix === '203.0.113.1/32' && a.services?.join() === 'default/web'), 10_000);
    api.remove(SERVICES, 'default/web');
    await until('withdrawn with the Service', () => !daemons[0]!.announced.some((a) => a.prefix === '203.0.113.1/32'));
  });

  it('starts the daemon with the Service prefixes listed, so its first announcement after a restart has them (peers under graceful restart keep them)', async () => {
    const listed: ServiceAnnouncement[] = [{ prefix: '198.51.100.7/32', origin: 'service-external-ip', services: ['default/web'] }];
    await startMode({}, (m) => {
      m.services.current = () => listed; // as the advertiser lists them when the daemon starts
    });
    await until('the daemon', () => daemons.length === 1);
    expect(daemons[0]!.startedWith).toEqual(listed);
  });
});

describe('natOutgoing cluster set (item 8)', () => {
  it("holds every node's pod CIDRs even with no cluster or import CIDRs configured: pod to pod across nodes is not masqueraded", () => {
    const nodes = [1, 2, 3].map((i) => ({ name: `node-${i}`, labels: {}, internalIPs: [`192.0.2.${i}`], podCIDRs: [`10.244.${i}.0/24`] }));
    const config = kubeAgentConfig({}, 'node-1', desiredBgp('node-1', nodes, { natOutgoing: true }, []));
    expect(config.clusterCIDRs).toEqual(expect.arrayContaining(['10.244.2.0/24', '10.244.3.0/24']));
    const ruleset = natRuleset(config.podCIDRs, config.clusterCIDRs ?? config.importCIDRs);
    expect(ruleset).toMatch(/set cluster_cidrs \{[^}]*10\.244\.2\.0\/24[^}]*10\.244\.3\.0\/24/);
    expect(config.natOutgoingV6).toBe(false); // IPv4 only unless asked (issue 14)
    expect(kubeAgentConfig({}, 'node-1', desiredBgp('node-1', nodes, { natOutgoing: true, natOutgoingV6: true }, [])).natOutgoingV6).toBe(true);
    const withConfigured = kubeAgentConfig({ clusterCIDRs: ['10.96.0.0/12'] }, 'node-1', desiredBgp('node-1', nodes, { natOutgoing: true }, []));
    expect(withConfigured.clusterCIDRs).toEqual(expect.arrayContaining(['10.96.0.0/12', '10.244.2.0/24']));
  });
});
