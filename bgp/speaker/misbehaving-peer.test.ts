// Our Speaker against raw peers (bare sockets, hand-built bytes) on loopback: what a real peer can send
// or fail to read must end at most its own session, never the process (RFC 4271, 4486, 2918, 9687).
import { spawn } from 'node:child_process';
import { type AddressInfo, type Socket, connect as connectTcp, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type BgpMessage, type UpdateMessage } from '../codec/index.js';
import { until as waitUntil } from '../../test/support/wait.js';
import { RawPeer, type RawPeerOptions, rawUpdate, update4095, v6With90Communities } from './raw-peer.js';
import { type RouteChange, Speaker, type SpeakerConfig } from './speaker.js';

const speakers: Speaker[] = [];
const peers: RawPeer[] = [];
afterEach(async () => {
  for (const p of peers.splice(0)) p.close();
  for (const s of speakers.splice(0)) await s.stop({ graceful: false });
});

const V4V6 = [{ afi: 1 as const, safi: 1 }, { afi: 2 as const, safi: 1 }];
const logged: { level: string; message: string; fields: Record<string, unknown> }[] = [];

async function speaker(extra: Partial<SpeakerConfig> = {}): Promise<Speaker> {
  logged.length = 0;
  const s = new Speaker({
    asn: 64512, routerId: '10.0.0.1', listenAddress: '127.0.0.1', listenPort: 0, holdTime: 9, connectRetrySeconds: 0.2,
    gracefulRestart: { enabled: false, restartTime: 5, restarting: false }, importCIDRs: ['10.0.0.0/8', 'fd00::/8'], allowDefaultRoute: false, maxPrefixes: 100_000,
    log: {
      warn: (fields, message) => void logged.push({ level: 'warn', message, fields: fields as Record<string, unknown> }),
      error: (fields, message) => void logged.push({ level: 'error', message, fields: fields as Record<string, unknown> }),
    },
    ...extra,
  });
  await s.start();
  speakers.push(s);
  return s;
}

async function raw(s: Speaker, address: string, asn: number, extra: Partial<RawPeerOptions> = {}): Promise<RawPeer> {
  const p = await RawPeer.establish({ host: '127.0.0.1', port: s.port, localAddress: address, asn, routerId: address, holdTime: 9, families: V4V6, ...extra });
  peers.push(p);
  await until('Established on our side', () => stateOf(s, address) === 'Established');
  return p;
}

const until = (what: string, check: () => boolean, ms = 10_000) => waitUntil(what, async () => check(), ms);

const stateOf = (s: Speaker, address: string) => s.snapshot().find((p) => p.address === address)?.state;
const routes = (s: Speaker) => Object.fromEntries(s.bestRoutes().map((r) => [r.prefix, r.nextHops.join(',')]));
const updates = (p: RawPeer) => p.received.filter((m): m is UpdateMessage => m.type === 2);
const attrs = (asn: number, extra: Partial<UpdateMessage['attributes']> = {}): UpdateMessage['attributes'] => ({ origin: 0, asPath: [{ type: 2, asns: [asn] }], ...extra });
const announce = (nlri: string[], nextHop: string, extra: Partial<UpdateMessage['attributes']> = {}): BgpMessage => ({ type: 2, withdrawn: [], attributes: attrs(65000, { nextHop, ...extra }), nlri });

describe('RFC 4271 §4.3: no UPDATE we send passes 4096 bytes, and nothing a peer sends ends the process', () => {
  it('a legal 4095-byte UPDATE from eBGP, too big once LOCAL_PREF is added for iBGP, is not sent there and is logged; the sessions stay up', async () => {
    const s = await speaker();
    s.setPeers([{ address: '127.0.0.2', asn: 65000, passive: true }, { address: '127.0.0.3', asn: 64512, passive: true }]);
    const ibgp = await raw(s, '127.0.0.3', 64512);
    const ebgp = await raw(s, '127.0.0.2', 65000);
    const frame = update4095('127.0.0.2');
    expect(frame.length).toBe(4095);
    ebgp.sendBytes(frame);
    ebgp.send(announce(['10.8.0.0/24'], '127.0.0.2'));
    await until('the small route at the iBGP peer', () => ibgp.announced().includes('10.8.0.0/24'));
    expect(routes(s)['10.9.0.0/24']).toBe('127.0.0.2'); // learned and used here
    expect(ibgp.announced()).not.toContain('10.9.0.0/24');
    expect(ibgp.received.filter((m) => m.type === 'error')).toEqual([]);
    expect(logged).toContainEqual(expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ peer: '127.0.0.3', prefix: '10.9.0.0/24' }) }));
    expect([ibgp.notifications(), ebgp.notifications()]).toEqual([[], []]);
    expect([stateOf(s, '127.0.0.2'), stateOf(s, '127.0.0.3')]).toEqual(['Established', 'Established']);
  });

  it('300 IPv6 /128s with 90 communities for a newly connected peer are packed by their real size', async () => {
    const s = await speaker();
    s.setPeers([{ address: '127.0.0.2', asn: 65000, passive: true }, { address: '127.0.0.3', asn: 64512, passive: true }]);
    const ebgp = await raw(s, '127.0.0.2', 65000);
    for (const u of v6With90Communities('fd00::2')) ebgp.send(u);
    await until('all 300 learned', () => Object.keys(routes(s)).length === 300);
    const ibgp = await raw(s, '127.0.0.3', 64512);
    await until('all 300 at the new peer', () => new Set(ibgp.announced()).size === 300);
    expect(ibgp.received.filter((m) => m.type === 'error')).toEqual([]);
    expect(updates(ibgp).filter((u) => u.mpReach).length).toBeLessThanOrEqual(2); // packed full, not one by one
    expect(stateOf(s, '127.0.0.3')).toBe('Established');
  });

  it('an exception of ours while handling one peer resets that session only (Cease), the process and the other sessions go on', async () => {
    const s = await speaker();
    s.setPeers([{ address: '127.0.0.2', asn: 65000, passive: true }, { address: '127.0.0.3', asn: 64512, passive: true }]);
    const ibgp = await raw(s, '127.0.0.3', 64512);
    const ebgp = await raw(s, '127.0.0.2', 65000);
    s.once('routes', () => {
      throw new Error('a bug of ours');
    });
    ebgp.send(announce(['10.8.0.0/24'], '127.0.0.2'));
    await until('the faulty session reset with a NOTIFICATION', () => ebgp.notifications().length > 0);
    expect(ebgp.notifications()).toEqual(['6/0']);
    expect(logged).toContainEqual(expect.objectContaining({ level: 'error', fields: expect.objectContaining({ peer: '127.0.0.2' }) }));
    expect(stateOf(s, '127.0.0.3')).toBe('Established');
    expect(ibgp.notifications()).toEqual([]);
  });
});

/** What a peer holds from us now: every UPDATE replayed in order. */
function view(p: RawPeer): Set<string> {
  const held = new Set<string>();
  for (const u of updates(p)) {
    for (const w of [...u.withdrawn, ...(u.mpUnreach?.withdrawn ?? [])]) held.delete(w);
    for (const a of [...u.nlri, ...(u.mpReach?.nlri ?? [])]) held.add(a);
  }
  return held;
}

/** What the agent would have installed: every `routes` event replayed in order. */
function installed(s: Speaker): Map<string, string[]> {
  const kernel = new Map<string, string[]>();
  s.on('routes', (changes) => {
    for (const c of changes) {
      if (c.nextHops.length) kernel.set(c.prefix, c.nextHops);
      else kernel.delete(c.prefix);
    }
  });
  return kernel;
}

describe('RFC 4486 §4 max-prefix: a peer closed for too many prefixes leaves nothing behind', () => {
  it('the UPDATE that passes the limit is not applied: nothing of the peer stays installed or advertised', async () => {
    const s = await speaker({ maxPrefixes: 2 });
    const kernel = installed(s);
    s.setPeers([{ address: '127.0.0.2', asn: 65000, passive: true }, { address: '127.0.0.3', asn: 64512, passive: true }]);
    const ibgp = await raw(s, '127.0.0.3', 64512);
    const ebgp = await raw(s, '127.0.0.2', 65000);
    ebgp.send(announce(['10.1.0.0/24'], '127.0.0.2'));
    await until('the first prefix at the iBGP peer', () => view(ibgp).has('10.1.0.0/24'));
    ebgp.send(announce(['10.2.0.0/24', '10.3.0.0/24'], '127.0.0.2'));
    await until('Cease 6/1', () => ebgp.notifications().length > 0);
    expect(ebgp.notifications()).toEqual(['6/1']);
    await new Promise((r) => setTimeout(r, 200));
    expect(routes(s)).toEqual({});
    expect([...kernel.keys()]).toEqual([]);
    expect([...view(ibgp)]).toEqual([]);
    expect(stateOf(s, '127.0.0.3')).toBe('Established');
  });
});

describe('RFC 4486 §3, §4: Cease subcodes', () => {
  it('a connection refused while Idle gets 6/5 Connection Rejected', async () => {
    const s = await speaker({ connectRetrySeconds: 5 });
    s.setPeers([{ address: '127.0.0.2', asn: 65000, passive: true }]);
    const first = await raw(s, '127.0.0.2', 65000);
    first.sendBytes(Buffer.alloc(19)); // a bad marker: we answer 1/1 and wait in Idle (idle hold 5 s)
    await until('our 1/1', () => first.notifications().length > 0);
    expect(first.notifications()).toEqual(['1/1']);
    await until('Idle', () => stateOf(s, '127.0.0.2') === 'Idle');
    const second = await RawPeer.connect({ host: '127.0.0.1', port: s.port, localAddress: '127.0.0.2', asn: 65000, routerId: '127.0.0.2' });
    peers.push(second);
    await until('refused', () => second.notifications().length > 0);
    expect(second.notifications()).toEqual(['6/5']);
  });

  it('a peer reset by a configuration change gets 6/6 Other Configuration Change; one removed gets 6/3 Peer De-configured', async () => {
    const s = await speaker();
    s.setPeers([{ address: '127.0.0.2', asn: 65000, passive: true }, { address: '127.0.0.3', asn: 64512, passive: true }]);
    const changed = await raw(s, '127.0.0.2', 65000);
    const removed = await raw(s, '127.0.0.3', 64512);
    s.setPeers([{ address: '127.0.0.2', asn: 65000, passive: true, holdTime: 30 }]);
    await until('both told', () => changed.notifications().length > 0 && removed.notifications().length > 0);
    expect([changed.notifications(), removed.notifications()]).toEqual([['6/6'], ['6/3']]);
  });
});

describe('RFC 2918 §4 and RFC 4760 §3', () => {
  it('a ROUTE-REFRESH for an AFI/SAFI not negotiated is ignored; one for a negotiated family is answered', async () => {
    const s = await speaker();
    s.setOriginated(['10.244.1.0/24']);
    s.setPeers([{ address: '127.0.0.3', asn: 64512, passive: true }]);
    const p = await raw(s, '127.0.0.3', 64512, { families: [{ afi: 1, safi: 1 }] });
    await until('our route', () => p.announced().length === 1);
    p.send({ type: 5, family: { afi: 1, safi: 2 }, subtype: 0 }); // IPv4 multicast
    p.send({ type: 5, family: { afi: 2, safi: 1 }, subtype: 0 }); // IPv6: only IPv4 was negotiated
    await new Promise((r) => setTimeout(r, 1500));
    expect(p.announced()).toEqual(['10.244.1.0/24']);
    p.send({ type: 5, family: { afi: 1, safi: 1 }, subtype: 0 });
    await until('the answer', () => p.announced().length === 2);
    expect(stateOf(s, '127.0.0.3')).toBe('Established');
  });

  it('a malformed NEXT_HOP in an UPDATE that announces only through MP_REACH_NLRI is ignored, the routes kept', async () => {
    const s = await speaker();
    s.setPeers([{ address: '127.0.0.2', asn: 65000, passive: true }]);
    const p = await raw(s, '127.0.0.2', 65000);
    const fd00_2 = [0xfd, 0, ...Array(13).fill(0), 2];
    const attributes = Buffer.from([
      0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8, 0x40, 3, 3, 192, 0, 2, // NEXT_HOP of 3 bytes
      0x80, 14, 30, 0, 2, 1, 16, ...fd00_2, 0, 64, 0xfd, 0, 0, 1, 0, 0, 0, 0, // fd00:1::/64 via fd00::2
    ]);
    p.sendBytes(rawUpdate(attributes, Buffer.alloc(0)));
    await until('the IPv6 route', () => routes(s)['fd00:1::/64'] === 'fd00::2');
    expect(p.notifications()).toEqual([]);
  });
});

describe('session start and collisions (RFC 4271 §6.8, §8)', () => {
  it.each([
    ['closes the TCP connection', (sock: Socket) => sock.destroy()],
    ['answers Cease 6/5, not ready yet', (sock: Socket) => sock.end(Buffer.from([...Array(16).fill(0xff), 0, 21, 3, 6, 5]))],
  ])('after the peer refuses our first connection (it %s), its own connection is accepted at once, as BIRD does', async (_how, refuse) => {
    const refuser = createServer(refuse);
    await new Promise<void>((r) => refuser.listen(0, '127.0.0.2', r));
    try {
      const s = await speaker({ connectRetrySeconds: 5 });
      let refused = false;
      refuser.once('connection', () => void (refused = true));
      s.setPeers([{ address: '127.0.0.2', asn: 65000, port: (refuser.address() as AddressInfo).port }]);
      await until('our connection refused', () => refused && stateOf(s, '127.0.0.2') !== 'Connect' && stateOf(s, '127.0.0.2') !== 'OpenSent');
      const started = Date.now();
      await raw(s, '127.0.0.2', 65000); // its own connection, well inside our 5 s connect retry
      expect(Date.now() - started).toBeLessThan(4000); // Idle would refuse it for 5 s
      expect(stateOf(s, '127.0.0.2')).toBe('Established');
    } finally {
      refuser.close();
    }
  });

  it('a Cease on our connection while the peer\'s is held (it settled the collision first) goes on over the peer\'s', async () => {
    let ours: Socket | undefined;
    const server = createServer((sock) => void (ours = sock.on('error', () => undefined)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.2', r));
    try {
      const s = await speaker({ connectRetrySeconds: 5 });
      s.setPeers([{ address: '127.0.0.2', asn: 65000, port: (server.address() as AddressInfo).port }]);
      await until('our connection, in OpenSent', () => ours !== undefined && stateOf(s, '127.0.0.2') === 'OpenSent');
      // The peer's own connection, its OPEN not sent yet: we hold it until an OPEN settles the collision.
      const theirs = connectTcp({ host: '127.0.0.1', port: s.port, localAddress: '127.0.0.2' }).on('error', () => undefined);
      const got: Buffer[] = [];
      theirs.on('data', (d: Buffer) => got.push(d));
      await new Promise((r) => setTimeout(r, 200));
      ours!.end(Buffer.from([...Array(16).fill(0xff), 0, 21, 3, 6, 7])); // Cease 6/7 on ours
      await until('our OPEN on the peer\'s connection', () => Buffer.concat(got)[18] === 1, 3000);
      theirs.destroy();
    } finally {
      server.close();
    }
  });

  it('while our SYN gets no answer (Connect), the peer connection is taken, not refused with 6/7', async () => {
    // A listener that never accepts, its small queue filled: further SYNs to it are dropped.
    const blocker = spawn(process.execPath, ['-e', `const s = require('net').createServer();
      s.listen({ port: 0, host: '127.0.0.2', backlog: 1 }, () => { console.log(s.address().port);
        setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000), 100); });`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const fillers: Socket[] = [];
    try {
      const port = await new Promise<number>((resolve) => blocker.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 5; i++) fillers.push(connectTcp({ host: '127.0.0.2', port, localAddress: '127.0.0.9' }).on('error', () => undefined));
      await new Promise((r) => setTimeout(r, 200));
      // Our router id 10.0.0.1 is the higher: with ours past Connect, ours would be kept.
      const s = await speaker({ connectRetrySeconds: 10 });
      s.setPeers([{ address: '127.0.0.2', asn: 65000, port }]);
      await new Promise((r) => setTimeout(r, 300));
      expect(stateOf(s, '127.0.0.2')).toBe('Connect');
      const p = await raw(s, '127.0.0.2', 65000, { routerId: '9.9.9.9' });
      expect(p.notifications()).toEqual([]);
      expect(stateOf(s, '127.0.0.2')).toBe('Established');
    } finally {
      for (const f of fillers) f.destroy();
      blocker.kill('SIGKILL');
    }
  });
});

describe('a peer that stops reading (RFC 9687) or floods us with ROUTE-REFRESH (RFC 2918 §4)', () => {
  it('the queue to a peer that stops reading stays bounded, and the session closes with 8/0 after the hold time (RFC 9687)', async () => {
    const s = await speaker();
    s.setPeers([{ address: '127.0.0.3', asn: 64512, passive: true }]);
    const p = await raw(s, '127.0.0.3', 64512, { holdTime: 3, families: [{ afi: 1, safi: 1 }] });
    p.socket.pause(); // reads nothing more, still sends its KEEPALIVEs
    const session = (s as unknown as { peers: Map<string, { session: { socket?: Socket } }> }).peers.get('127.0.0.3')!.session;
    const queued = (): number => session.socket?.writableLength ?? 0;
    const table = Array.from({ length: 20_000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.1/32`);
    let maxQueued = 0;
    const deadline = Date.now() + 40_000;
    for (let round = 0; round < 200 && stateOf(s, '127.0.0.3') === 'Established' && Date.now() < deadline; round++) {
      s.setOriginated(round % 2 ? [] : table);
      maxQueued = Math.max(maxQueued, queued());
      await new Promise((r) => setTimeout(r, round % 10 ? 0 : 100));
    }
    expect(maxQueued).toBeLessThanOrEqual(1024 * 1024 + 4096);
    await until('the send hold timer', () => stateOf(s, '127.0.0.3') !== 'Established', 10_000);
    expect(s.snapshot()[0]!.info).toContain('8/0');
  }, 60_000);

  it('a flood of ROUTE-REFRESH requests is answered a few times, not once each, and the speaker stays responsive', async () => {
    const s = await speaker();
    const table = Array.from({ length: 2000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.1/32`);
    s.setOriginated(table);
    s.setPeers([{ address: '127.0.0.3', asn: 64512, passive: true }]);
    const p = await raw(s, '127.0.0.3', 64512, { families: [{ afi: 1, safi: 1 }] });
    await until('the table', () => p.announced().length === 2000);
    const refresh = Buffer.from([...Array(16).fill(0xff), 0, 23, 5, 0, 1, 0, 1]);
    p.sendBytes(Buffer.concat(Array(3000).fill(refresh)));
    await new Promise((r) => setTimeout(r, 2500));
    const answered = p.announced().length / 2000 - 1;
    expect(answered).toBeGreaterThanOrEqual(1);
    expect(answered).toBeLessThanOrEqual(4);
    const before = p.announced().length;
    s.setOriginated([...table, '10.250.0.0/24']);
    await until('a new route, promptly', () => p.announced().slice(before).includes('10.250.0.0/24'), 5000);
  });
});

describe("one UPDATE's changes (RFC 4271 §4.3, RFC 4760 §3-§4): every way a prefix comes, in one list with no gaps", () => {
  it('withdrawn, NLRI, MP_UNREACH and MP_REACH together, with prefixes never learned and one twice: each change reported once, nothing missing or undefined', async () => {
    const s = await speaker();
    const events: RouteChange[][] = [];
    s.on('routes', (changes) => void events.push(changes));
    s.setPeers([{ address: '127.0.0.2', asn: 65000, passive: true }]);
    const ebgp = await raw(s, '127.0.0.2', 65000);
    const v6 = { afi: 2 as const, safi: 1 };
    const learn: UpdateMessage = { type: 2, withdrawn: [], attributes: attrs(65000, { nextHop: '127.0.0.2' }), nlri: ['10.1.0.0/24', '10.2.0.0/24'], mpReach: { family: v6, nextHops: ['fd00::2'], nlri: ['fd00:1::/64'] } };
    ebgp.send(learn);
    await until('both families learned', () => routes(s)['fd00:1::/64'] !== undefined && routes(s)['10.2.0.0/24'] !== undefined);
    events.length = 0;
    // Prefixes never learned change nothing, and one twice changes once: the list is shorter than the
    // UPDATE's prefixes, and what ChangeList made at that size must be cut, not left with gaps.
    ebgp.send({
      type: 2,
      withdrawn: ['10.1.0.0/24', '10.9.0.0/24'],
      attributes: attrs(65000, { nextHop: '127.0.0.2' }),
      nlri: ['10.3.0.0/24', '10.3.0.0/24'],
      mpUnreach: { family: v6, withdrawn: ['fd00:1::/64', 'fd00:9::/64'] },
    });
    await until('the UPDATE applied', () => routes(s)['10.3.0.0/24'] !== undefined && routes(s)['fd00:1::/64'] === undefined);
    const changes = events.flat();
    for (const list of events) for (let i = 0; i < list.length; i++) expect(i in list && typeof list[i]?.prefix === 'string').toBe(true);
    expect(changes.map((c) => c.prefix).sort()).toEqual(['10.1.0.0/24', '10.3.0.0/24', 'fd00:1::/64']);
    expect(routes(s)).toEqual({ '10.2.0.0/24': '127.0.0.2', '10.3.0.0/24': '127.0.0.2' });
  });
});
