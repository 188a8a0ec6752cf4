// The daemon's wiring with fake speaker and route sink: restart keeps routes, changes reach the kernel.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AgentDaemon, desiredRoutes } from './daemon.js';
import { parseAgentConfig } from './config.js';
import type { BestRouteChange, DesiredRoute, RouteSinkPort, SpeakerPeer, SpeakerPort, SpeakerSettings } from './ports.js';
import type { InstalledRoute } from './status.js';

class FakeSpeaker implements SpeakerPort {
  peers: SpeakerPeer[] = [];
  originated: string[] = [];
  listener: (c: BestRouteChange[]) => void = () => undefined;
  stopped?: { graceful: boolean };
  constructor(readonly settings: SpeakerSettings) {}
  async start() {}
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

class FakeRoutes implements RouteSinkPort {
  desired: DesiredRoute[] = [];
  constructor(private readonly initial: InstalledRoute[] = []) {}
  async start() {}
  setDesired(r: DesiredRoute[]) { this.desired = r; }
  installed() { return this.desired.length ? this.desired : this.initial; }
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

describe('desiredRoutes', () => {
  it('blackholes our CIDRs, installs learned ECMP routes sorted, never a learned route for our own CIDR', () => {
    const learned = new Map([['10.244.2.0/24', ['192.0.2.3', '192.0.2.2']], ['10.244.1.0/24', ['192.0.2.9']]]);
    expect(desiredRoutes(['10.244.1.0/24'], learned, [])).toEqual([
      { prefix: '10.244.1.0/24', type: 'blackhole', nextHops: [] },
      { prefix: '10.244.2.0/24', type: 'unicast', nextHops: ['192.0.2.2', '192.0.2.3'] },
    ]);
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
    const { daemon, speakers, config } = setup();
    await daemon.start();
    await daemon.reload({ ...config, peers: [...config.peers, { address: '192.0.2.3', asn: 64512, port: 179, passive: false, routeReflectorClient: false }] });
    expect(speakers).toHaveLength(1);
    expect(speakers[0]!.peers.map((p) => p.address)).toContain('192.0.2.3');
    await daemon.reload({ ...config, importCIDRs: ['10.244.0.0/16'], maxPrefixes: 50 });
    expect(speakers).toHaveLength(1);
    expect(speakers[0]!.policy).toEqual({ importCIDRs: ['10.244.0.0/16'], allowDefaultRoute: false, maxPrefixes: 50 });
    await daemon.reload({ ...config, routerId: '192.0.2.100' });
    expect(speakers).toHaveLength(2);
    expect(speakers[0]!.stopped).toEqual({ graceful: false });
    await daemon.stop(true);
  });
});
