// The daemon's wiring with fake speaker and route sink: restart keeps routes, changes reach the kernel.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AgentDaemon, UnicastTargets, routeFor } from './daemon.js';
import { parseAgentConfig } from './config.js';
import type { BestRouteChange, DesiredRoute, DesiredTarget, RouteSinkPort, SpeakerPeer, SpeakerPort, SpeakerSettings } from './ports.js';
import type { InstalledRoute } from './status.js';
import { RouteReconciler, type RouteShell } from '../routes/reconciler.js';
import type { Route } from '../routes/desired.js';

class FakeSpeaker implements SpeakerPort {
  peers: SpeakerPeer[] = [];
  originated: string[] = [];
  listener: (c: BestRouteChange[]) => void = () => undefined;
  stopped?: { graceful: boolean };
  constructor(readonly settings: SpeakerSettings) {}
  /** What it originated when it started: what its first announcements carry. */
  originatedAtStart?: string[];
  async start() { this.originatedAtStart = this.originated; }
  setPeers(p: SpeakerPeer[]) { this.peers = p; }
  setOriginated(p: string[]) { this.originated = p; }
  policy?: Pick<SpeakerSettings, 'importCIDRs' | 'allowDefaultRoute' | 'maxPrefixes'>;
  setImportPolicy(p: Pick<SpeakerSettings, 'importCIDRs' | 'allowDefaultRoute' | 'maxPrefixes'>) { this.policy = p; }
  onBestRoutes(l: (c: BestRouteChange[]) => void) { this.listener = l; }
  nextHopsChanged() {}
  selectionDone: () => void = () => undefined;
  onSelectionDone(l: () => void) { this.selectionDone = l; }
  peerStatus() { return this.peers.map((p) => ({ address: p.address, asn: p.asn, type: p.type, state: 'Established' as const, uptimeSeconds: 1, prefixesReceived: 0, prefixesAdvertised: 1 })); }
  async stop(o: { graceful: boolean }) { this.stopped = o; }
}

/** Adopts `initial` at start, as the reconciler does, and counts the calls it gets. */
class FakeRoutes implements RouteSinkPort {
  private readonly wantedMap: Map<string, DesiredRoute>;
  calls = 0;
  constructor(initial: InstalledRoute[] = []) { this.wantedMap = new Map(initial.map((r) => [r.prefix, r])); }
  async start() {}
  upsert(prefix: string, r: DesiredTarget) { this.calls++; this.wantedMap.set(prefix, { prefix, type: r.type, nextHops: r.nextHops }); }
  remove(prefix: string) { this.calls++; this.wantedMap.delete(prefix); }
  get desired(): DesiredRoute[] { return [...this.wantedMap.values()].sort((a, b) => a.prefix.localeCompare(b.prefix)); }
  wanted() { return this.wantedMap; }
  installed() { return this.desired; }
  installedRoute(prefix: string) { return this.wantedMap.get(prefix); }
  counts() { return { unicast: 0, blackhole: 0, pending: 0 }; }
  async stop() {}
}

const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(initial: InstalledRoute[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'lt-daemon-'));
  dirs.push(dir);
  const config = parseAgentConfig({
    nodeName: 'node-1', routerId: '192.0.2.1', podCIDRs: ['10.244.1.0/24'], statusSocket: join(dir, 'agent.sock'),
    peers: [{ address: '192.0.2.2', asn: 64512 }, { address: '192.0.2.254', asn: 65000 }],
    gracefulRestart: { enabled: true, restartTime: 30 }, cniServer: { enabled: false },
  });
  const speakers: FakeSpeaker[] = [];
  const routes = new FakeRoutes(initial);
  const daemon = new AgentDaemon(config, { log: pino({ level: 'silent' }), routes, makeSpeaker: (s) => { const f = new FakeSpeaker(s); speakers.push(f); return f; } });
  return { daemon, routes, speakers, config };
}

describe('routeFor', () => {
  it('blackholes our CIDRs whoever announces them, installs learned ECMP routes, falls back to a kept route, else none', () => {
    const own = new Set(['10.244.1.0/24']);
    const kept = new Map([['10.244.3.0/24', { prefix: '10.244.3.0/24', type: 'unicast' as const, nextHops: ['192.0.2.4'] }], ['10.244.2.0/24', { prefix: '10.244.2.0/24', type: 'unicast' as const, nextHops: ['192.0.2.8'] }]]);
    expect(routeFor('10.244.1.0/24', own, ['192.0.2.9'], kept)).toEqual({ type: 'blackhole', nextHops: [] });
    expect(routeFor('10.244.2.0/24', own, ['192.0.2.3', '192.0.2.2'], kept)).toEqual({ type: 'unicast', nextHops: ['192.0.2.3', '192.0.2.2'] });
    expect(routeFor('10.244.3.0/24', own, undefined, kept)?.nextHops).toEqual(['192.0.2.4']);
    expect(routeFor('10.244.3.0/24', own, [], kept)?.nextHops).toEqual(['192.0.2.4']);
    expect(routeFor('10.244.4.0/24', own, undefined, kept)).toBeUndefined();
  });

  it('gives the prefixes of one next-hop list one target, a new list a new one', () => {
    const own = new Set<string>();
    const kept = new Map();
    const targets = new UnicastTargets();
    const update = ['192.0.2.2'];
    const first = routeFor('10.0.0.0/27', own, update, kept, targets);
    expect(routeFor('10.0.0.32/27', own, update, kept, targets)).toBe(first);
    const next = routeFor('10.0.0.64/27', own, ['192.0.2.2'], kept, targets);
    expect(next).not.toBe(first);
    expect(next).toEqual(first);
  });
});

describe('AgentDaemon', () => {
  it('starts the speaker with types, originates pod CIDRs, installs what it learns and drops what is withdrawn', async () => {
    const { daemon, routes, speakers } = setup();
    await daemon.start();
    const speaker = speakers[0]!;
    expect(speaker.settings.gracefulRestart.restarting).toBe(false);
    expect(speaker.originated).toEqual(['10.244.1.0/24']);
    expect(speaker.peers.map((p) => [p.address, p.type])).toEqual([['192.0.2.2', 'node-mesh'], ['192.0.2.254', 'global']]);
    speaker.listener([{ prefix: '10.244.2.0/24', nextHops: ['192.0.2.2'] }]);
    expect(routes.desired).toContainEqual({ prefix: '10.244.2.0/24', type: 'unicast', nextHops: ['192.0.2.2'] });
    speaker.listener([{ prefix: '10.244.2.0/24', nextHops: [] }]);
    expect(routes.desired).toEqual([{ prefix: '10.244.1.0/24', type: 'blackhole', nextHops: [] }]);
    expect(daemon.bgpStatus()).toMatchObject({ node: 'node-1', routerId: '192.0.2.1', asn: 64512 });
    await daemon.stop(true);
    expect(speaker.stopped).toEqual({ graceful: true });
  });

  it('announces the Service prefixes it is given before it starts from its first announcement (graceful restart peers keep them)', async () => {
    const { daemon, speakers } = setup();
    daemon.setServiceAnnouncements([{ prefix: '198.51.100.7/32', origin: 'service-external-ip', services: ['default/web'] }]);
    await daemon.start();
    expect(speakers[0]!.originatedAtStart).toEqual(['10.244.1.0/24', '198.51.100.7/32']);
    await daemon.stop(true);
  });

  it('after a restart keeps the kernel routes until relearned or the restart time is over', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { daemon, routes, speakers } = setup([
      { prefix: '10.244.2.0/24', type: 'unicast', nextHops: ['192.0.2.2'] },
      { prefix: '10.244.3.0/24', type: 'unicast', nextHops: ['192.0.2.3'] },
    ]);
    await daemon.start();
    expect(speakers[0]!.settings.gracefulRestart.restarting).toBe(true);
    expect(routes.desired.map((r) => r.prefix)).toEqual(['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
    speakers[0]!.listener([{ prefix: '10.244.2.0/24', nextHops: ['192.0.2.2'] }]);
    expect(routes.desired.map((r) => r.prefix)).toEqual(['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
    vi.advanceTimersByTime(30_000);
    expect(routes.desired.map((r) => r.prefix)).toEqual(['10.244.1.0/24', '10.244.2.0/24']);
    await daemon.stop(true);
  });

  it('after a restart keeps the kernel routes as the route programmer holds them: one target per gateway, not a route per prefix', async () => {
    // A full table found at start is kept for the restart time: a Route per prefix there would be
    // the million objects the comparison's shared targets (routes/reconciler.ts ReadTargets) avoid.
    const kernel: Route[] = Array.from({ length: 100 }, (_, i) => ({ prefix: `10.9.${i}.0/24`, type: 'unicast', nextHops: ['192.0.2.2'], dev: 'eth0' }));
    const shell: RouteShell = { readRoutes: async () => kernel.map((r) => ({ ...r, nextHops: [...r.nextHops] })), batch: async () => [] };
    const reconciler = new RouteReconciler({ shell, resyncMs: 0 });
    const routes: RouteSinkPort = {
      start: () => reconciler.start(),
      upsert: (prefix, route, slot) => reconciler.upsertFor(prefix, route, slot),
      remove: (prefix, slot) => reconciler.remove(prefix, slot),
      wanted: () => reconciler.wanted(),
      installed: () => reconciler.installed(),
      installedRoute: (prefix) => reconciler.installedRoute(prefix),
      counts: () => ({ unicast: 0, blackhole: 0, pending: 0 }),
      stop: async () => reconciler.stop(),
    };
    const { config } = setup();
    const daemon = new AgentDaemon(config, { log: pino({ level: 'silent' }), routes, makeSpeaker: (s) => new FakeSpeaker(s) });
    await daemon.start();
    const kept = (daemon as unknown as { kept: Map<string, DesiredTarget> }).kept;
    expect(kept.size).toBe(100);
    expect(new Set(kept.values()).size).toBe(1);
    await daemon.stop(true);
  });

  it('after a restart drops the kernel routes that selection did not confirm once it is done (RFC 4724 §4.1)', async () => {
    const { daemon, routes, speakers } = setup([
      { prefix: '10.244.2.0/24', type: 'unicast', nextHops: ['192.0.2.2'] },
      { prefix: '10.244.3.0/24', type: 'unicast', nextHops: ['192.0.2.3'] },
    ]);
    await daemon.start();
    speakers[0]!.listener([{ prefix: '10.244.2.0/24', nextHops: ['192.0.2.2'] }]);
    speakers[0]!.selectionDone();
    expect(routes.desired.map((r) => r.prefix)).toEqual(['10.244.1.0/24', '10.244.2.0/24']);
    await daemon.stop(true);
  });

  it('reload applies peers live and restarts the speaker only for a new router id', async () => {
    const { daemon, routes, speakers, config } = setup();
    await daemon.start();
    await daemon.reload({ ...config, peers: [...config.peers, { address: '192.0.2.3', asn: 64512, port: 179, passive: false, routeReflectorClient: false }] });
    expect(speakers).toHaveLength(1);
    expect(speakers[0]!.peers.map((p) => p.address)).toContain('192.0.2.3');
    await daemon.reload({ ...config, importCIDRs: ['10.244.0.0/16'], maxPrefixes: 50 });
    expect(speakers).toHaveLength(1);
    expect(speakers[0]!.policy).toEqual({ importCIDRs: ['10.244.0.0/16'], allowDefaultRoute: false, maxPrefixes: 50 });
    speakers[0]!.listener([{ prefix: '10.244.5.0/24', nextHops: ['192.0.2.2'] }]);
    await daemon.reload({ ...config, routerId: '192.0.2.100' });
    expect(speakers).toHaveLength(2);
    expect(routes.desired.map((r) => r.prefix)).toEqual(['10.244.1.0/24']); // the old speaker's routes went with it
    expect(speakers[0]!.stopped).toEqual({ graceful: false });
    await daemon.stop(true);
  });

  it('hands each best-route change to the kernel side as one call, whatever the size of the table', async () => {
    const { daemon, routes, speakers } = setup();
    await daemon.start();
    const table = Array.from({ length: 20_000 }, (_, i) => ({ prefix: `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`, nextHops: ['192.0.2.2'] }));
    speakers[0]!.listener(table);
    const before = routes.calls;
    speakers[0]!.listener([{ prefix: '10.99.0.0/24', nextHops: ['192.0.2.2'] }]);
    speakers[0]!.listener([{ prefix: '10.64.0.7/32', nextHops: [] }]);
    expect(routes.calls - before).toBe(2);
    expect(routes.desired).toHaveLength(20_001);
    speakers[0]!.listener([{ prefix: '10.244.1.0/24', nextHops: ['192.0.2.9'] }]); // our CIDR: stays a blackhole
    expect(routes.desired.find((r) => r.prefix === '10.244.1.0/24')?.type).toBe('blackhole');
    await daemon.stop(true);
  });

  it('Service prefixes are originated with the pod CIDRs (one set for graceful restart), live, and shown in bgp status with their Services', async () => {
    const { daemon, speakers } = setup();
    await daemon.start();
    daemon.setServiceAnnouncements([{ prefix: '203.0.113.10/32', origin: 'service-load-balancer-ip', services: ['default/web'] }]);
    expect(speakers[0]!.originated).toEqual(['10.244.1.0/24', '203.0.113.10/32']);
    expect(daemon.bgpStatus().announced).toEqual([
      { prefix: '10.244.1.0/24', origin: 'pod-cidr' },
      { prefix: '203.0.113.10/32', origin: 'service-load-balancer-ip', services: ['default/web'] },
    ]);
    await daemon.reload(parseAgentConfig({ ...setup().config, routerId: '192.0.2.9' }));
    expect(speakers.at(-1)!.originated).toEqual(['10.244.1.0/24', '203.0.113.10/32']); // a new speaker announces them too
    daemon.setServiceAnnouncements([]);
    expect(speakers.at(-1)!.originated).toEqual(['10.244.1.0/24']);
    await daemon.stop(true);
  });

  it('a new pod CIDR becomes a blackhole; one given up gets the learned route back, or goes', async () => {
    const { daemon, routes, speakers, config } = setup([{ prefix: '10.244.9.0/24', type: 'blackhole', nextHops: [] }]);
    await daemon.start();
    expect(routes.desired.map((r) => `${r.type} ${r.prefix}`)).toEqual(['blackhole 10.244.1.0/24']); // a blackhole of a CIDR no longer ours goes
    speakers[0]!.listener([{ prefix: '10.244.2.0/24', nextHops: ['192.0.2.2'] }]);
    await daemon.reload({ ...config, podCIDRs: ['10.244.2.0/24'] });
    expect(routes.desired.map((r) => `${r.type} ${r.prefix}`)).toEqual(['blackhole 10.244.2.0/24']);
    await daemon.reload({ ...config, podCIDRs: ['10.244.1.0/24'] });
    expect(routes.desired.map((r) => `${r.type} ${r.prefix}`)).toEqual(['blackhole 10.244.1.0/24', 'unicast 10.244.2.0/24']);
    await daemon.stop(true);
  });
});
