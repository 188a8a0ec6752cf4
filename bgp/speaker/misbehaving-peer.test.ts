// Our Speaker against raw peers (bare sockets, hand-built bytes) on loopback: what a real peer can send
// or fail to read must end at most its own session, never the process (RFC 4271, 4486, 2918, 9687).
import { afterEach, describe, expect, it } from 'vitest';
import { type BgpMessage, type UpdateMessage } from '../codec/index.js';
import { RawPeer, type RawPeerOptions, rawUpdate } from '../../test/support/raw-peer.js';
import { Speaker, type SpeakerConfig } from './speaker.js';

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
  return p;
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
    // ORIGIN 4 + AS_PATH 9 + NEXT_HOP 7 + COMMUNITIES (4 + 4 × 1011) + NLRI 4, behind 23 bytes: 4095.
    const communities = Array.from({ length: 1011 }, (_, i) => (65000 * 65536 + i) >>> 0);
    const big = Buffer.concat([Buffer.from([0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8, 0x40, 3, 4, 127, 0, 0, 2, 0xd0, 8, 0x0f, 0xcc]), ...communities.map((c) => Buffer.from([c >>> 24, (c >>> 16) & 255, (c >>> 8) & 255, c & 255]))]);
    const frame = rawUpdate(big, Buffer.from([24, 10, 9, 0]));
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
    const communities = Array.from({ length: 90 }, (_, i) => (65000 * 65536 + i) >>> 0);
    const prefixes = Array.from({ length: 300 }, (_, i) => `fd00:1::${(i + 1).toString(16)}/128`);
    for (let i = 0; i < prefixes.length; i += 100) {
      ebgp.send({ type: 2, withdrawn: [], nlri: [], attributes: attrs(65000, { communities }), mpReach: { family: { afi: 2, safi: 1 }, nextHops: ['fd00::2'], nlri: prefixes.slice(i, i + 100) } });
    }
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
