// Two and three of our speakers peering over loopback (127.0.0.x, ephemeral ports): iBGP, eBGP, RR, GR.
import { afterEach, describe, expect, it } from 'vitest';
import { Speaker, type SpeakerConfig } from './speaker.js';

const speakers: Speaker[] = [];
afterEach(async () => {
  for (const s of speakers.splice(0)) await s.stop({ graceful: false });
});

function speaker(address: string, asn: number, extra: Partial<SpeakerConfig> = {}): Speaker {
  const s = new Speaker({
    asn, routerId: address, listenAddress: address, listenPort: 0, holdTime: 9, connectRetrySeconds: 0.2,
    gracefulRestart: { enabled: true, restartTime: 5, restarting: false }, importCIDRs: [], allowDefaultRoute: false, maxPrefixes: 1000, ...extra,
  });
  speakers.push(s);
  return s;
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts both speakers and peers each with the other, by its listen address, AS and port. */
async function peered(a: Speaker, b: Speaker): Promise<void> {
  await a.start();
  await b.start();
  a.setPeers([{ address: b.config.listenAddress, asn: b.config.asn, port: b.port }]);
  b.setPeers([{ address: a.config.listenAddress, asn: a.config.asn, port: a.port }]);
}

const routes = (s: Speaker) => Object.fromEntries(s.bestRoutes().map((r) => [r.prefix, r.nextHops.join(',')]));

describe('Speaker', () => {
  it('two iBGP speakers exchange, withdraw, and report peers', async () => {
    const a = speaker('127.0.0.1', 64512);
    const b = speaker('127.0.0.2', 64512);
    await a.start();
    await b.start();
    a.setOriginated(['10.244.1.0/24']);
    b.setOriginated(['10.244.2.0/24']);
    a.setPeers([{ address: '127.0.0.2', asn: 64512, port: b.port, type: 'node-mesh' }]);
    b.setPeers([{ address: '127.0.0.1', asn: 64512, port: a.port, type: 'node-mesh' }]);
    await until('routes both ways', () => routes(a)['10.244.2.0/24'] === '127.0.0.2' && routes(b)['10.244.1.0/24'] === '127.0.0.1');
    expect(a.snapshot()).toEqual([expect.objectContaining({ address: '127.0.0.2', state: 'Established', prefixesReceived: 1, prefixesAdvertised: 1, type: 'node-mesh' })]);
    b.setOriginated([]);
    await until('withdrawal', () => routes(a)['10.244.2.0/24'] === undefined);
  });

  it('eBGP prepends our AS, and max-prefix tears the session down with Cease 6/1', async () => {
    const a = speaker('127.0.0.1', 64512, { maxPrefixes: 2 });
    const b = speaker('127.0.0.2', 65000);
    await peered(a, b);
    b.setOriginated(['10.1.0.0/24', '10.2.0.0/24']);
    await until('two prefixes', () => Object.keys(routes(a)).length === 2);
    b.setOriginated(['10.1.0.0/24', '10.2.0.0/24', '10.3.0.0/24']);
    await until('max-prefix teardown', () => a.snapshot()[0]!.state !== 'Established' && Object.keys(routes(a)).length === 0);
    expect(b.snapshot()[0]!.info ?? '').toMatch(/NOTIFICATION 6\/1|connection lost/);
  });

  it('three speakers with a route reflector: clients learn each other through it', async () => {
    const rr = speaker('127.0.0.1', 64512, { clusterId: '127.0.0.1' });
    const c1 = speaker('127.0.0.2', 64512);
    const c2 = speaker('127.0.0.3', 64512);
    for (const s of [rr, c1, c2]) await s.start();
    rr.setPeers([{ address: '127.0.0.2', asn: 64512, port: c1.port, routeReflectorClient: true }, { address: '127.0.0.3', asn: 64512, port: c2.port, routeReflectorClient: true }]);
    c1.setPeers([{ address: '127.0.0.1', asn: 64512, port: rr.port }]);
    c2.setPeers([{ address: '127.0.0.1', asn: 64512, port: rr.port }]);
    c1.setOriginated(['10.244.2.0/24']);
    c2.setOriginated(['10.244.3.0/24']);
    await until('reflected routes', () => routes(c1)['10.244.3.0/24'] === '127.0.0.3' && routes(c2)['10.244.2.0/24'] === '127.0.0.2');
  });

  it('graceful restart: a peer that drops without NOTIFICATION keeps its routes until its restart time, then they go', async () => {
    const a = speaker('127.0.0.1', 64512);
    const b = speaker('127.0.0.2', 64512, { gracefulRestart: { enabled: true, restartTime: 1, restarting: false } });
    await peered(a, b);
    b.setOriginated(['10.244.2.0/24']);
    await until('learned', () => routes(a)['10.244.2.0/24'] === '127.0.0.2');
    await b.stop({ graceful: true });
    await new Promise((r) => setTimeout(r, 400));
    expect(routes(a)['10.244.2.0/24']).toBe('127.0.0.2'); // held, stale
    await until('stale routes swept after the restart time', () => routes(a)['10.244.2.0/24'] === undefined, 5_000);
  });

  it('a clean stop sends Cease and the peer drops our routes at once', async () => {
    const a = speaker('127.0.0.1', 64512);
    const b = speaker('127.0.0.2', 64512);
    await peered(a, b);
    b.setOriginated(['10.244.2.0/24']);
    await until('learned', () => routes(a)['10.244.2.0/24'] === '127.0.0.2');
    await b.stop({ graceful: false });
    await until('dropped', () => routes(a)['10.244.2.0/24'] === undefined, 3_000);
    expect(a.snapshot()[0]!.info).toContain('6/2');
  });

  it('a dropped peer\'s full table goes in slices of at most 2,048 prefixes, one per event-loop turn', async () => {
    const a = speaker('127.0.0.1', 64512, { maxPrefixes: 10_000 });
    const b = speaker('127.0.0.2', 64512);
    await peered(a, b);
    b.setOriginated(Array.from({ length: 5000 }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`));
    await until('learned', () => Object.keys(routes(a)).length === 5000);
    const withdrawals: number[] = [];
    a.on('routes', (changes: { nextHops: string[] }[]) => withdrawals.push(changes.filter((c) => c.nextHops.length === 0).length));
    await b.stop({ graceful: false });
    await until('dropped', () => Object.keys(routes(a)).length === 0, 3_000);
    expect(withdrawals.reduce((x, y) => x + y, 0)).toBe(5000);
    expect(Math.max(...withdrawals)).toBeLessThanOrEqual(2048);
  });
});

describe('Speaker import policy, live', () => {
  it('narrowing drops refused prefixes at once; widening asks the peer to resend (ROUTE-REFRESH)', async () => {
    const a = speaker('127.0.0.1', 64512, { importCIDRs: ['10.244.0.0/16'] });
    const b = speaker('127.0.0.2', 64512);
    await a.start();
    await b.start();
    b.setOriginated(['10.244.2.0/24', '10.99.0.0/24']);
    a.setPeers([{ address: '127.0.0.2', asn: 64512, port: b.port, type: 'node-mesh' }]);
    b.setPeers([{ address: '127.0.0.1', asn: 64512, port: a.port, type: 'node-mesh' }]);
    await until('the allowed prefix', () => routes(a)['10.244.2.0/24'] === '127.0.0.2');
    expect(routes(a)['10.99.0.0/24']).toBeUndefined();
    a.setImportPolicy({ importCIDRs: ['10.0.0.0/8'], allowDefaultRoute: false, maxPrefixes: 1000 });
    await until('the newly allowed prefix, resent on request', () => routes(a)['10.99.0.0/24'] === '127.0.0.2');
    a.setImportPolicy({ importCIDRs: ['10.99.0.0/16'], allowDefaultRoute: false, maxPrefixes: 1000 });
    expect(routes(a)['10.244.2.0/24']).toBeUndefined();
    expect(routes(a)['10.99.0.0/24']).toBe('127.0.0.2');
    expect(a.snapshot()[0]).toMatchObject({ state: 'Established', prefixesReceived: 1 });
  });
});

describe('Speaker lookup (lightlyctl doctor)', () => {
  it('the Loc-RIB longest match for an address, its peer and next hop, and whether import policy takes it', async () => {
    const a = speaker('127.0.0.1', 64512, { importCIDRs: ['10.244.0.0/16'] });
    const b = speaker('127.0.0.2', 64512);
    await peered(a, b);
    a.setOriginated(['10.244.1.0/24']);
    b.setOriginated(['10.244.0.0/16', '10.244.2.0/24']);
    await until('both prefixes', () => Object.keys(routes(a)).length === 3);
    expect(a.lookup('10.244.2.7')).toEqual({ prefix: '10.244.2.0/24', importAllowed: true, best: { peer: '127.0.0.2', nextHop: '127.0.0.2', stale: false } });
    expect(a.lookup('10.244.9.1')).toMatchObject({ prefix: '10.244.0.0/16', best: { peer: '127.0.0.2' } });
    expect(a.lookup('10.244.1.3')).toMatchObject({ prefix: '10.244.1.0/24', best: { peer: 'local' } });
    expect(a.lookup('10.9.9.9')).toEqual({ importAllowed: false });
    expect(b.lookup('10.9.9.9')).toEqual({ importAllowed: true });
  });
});
