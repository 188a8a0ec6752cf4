// What a broken or hostile top-of-rack router can send, against our Speaker on loopback with raw peers:
// End-of-RIB for families never negotiated, restarts faster than the restart time, garbage next hops.
import { afterEach, describe, expect, it } from 'vitest';
import { type Afi, type Family } from '../codec/index.js';
import { type RawPeerOptions, grCapability, unicast } from './raw-peer.js';
import { ASN, Loopback, routesOf, sleep, until } from './loopback.js';
import type { Speaker, SpeakerConfig } from './speaker.js';
import { deviceHolding } from '../session/session.js';

const loopback = new Loopback();
afterEach(() => loopback.cleanup());

const PEER = '127.0.0.2';
const V4 = '10.1.0.0/24';
const V6 = 'fd00:1::/64';
const speaker = (extra: Partial<SpeakerConfig> = {}): Promise<Speaker> => loopback.speaker(extra, [{ address: PEER, asn: ASN }]);
const withGr = (restartTime: number, families: Family[] = [unicast(1), unicast(2)]): Partial<RawPeerOptions> => ({
  capabilities: [...families.map((family) => ({ code: 1 as const, family })), { code: 65 as const, asn: ASN }, grCapability(restartTime, families.map((f) => ({ afi: f.afi as 1 | 2 })))],
});
const rawPeer = (s: Speaker, options: Partial<RawPeerOptions> = {}) => loopback.connect(s, { localAddress: PEER, asn: ASN, ...options });

/** A session with graceful restart whose routes are learned, then lost without a NOTIFICATION; resolves at the loss. */
async function learnThenLose(s: Speaker, restartTime: number, withV6 = false): Promise<void> {
  const p = await rawPeer(s, withGr(restartTime));
  p.announce([V4], PEER);
  if (withV6) p.announce([V6], 'fd00::2');
  await until('learned', () => routesOf(s)[V4] === PEER && (!withV6 || routesOf(s)[V6] === 'fd00::2'));
  p.drop();
}

describe('End-of-RIB for a family that was not negotiated (RFC 4724 §2, RFC 4760 §7)', () => {
  it('an End-of-RIB for an unknown AFI is not IPv4 unicast\'s: stale IPv4 routes stay until the real one', async () => {
    const s = await speaker();
    await learnThenLose(s, 60);
    const back = await rawPeer(s, withGr(60));
    back.endOfRib({ afi: 25 as Afi, safi: 1 }); // L2VPN AFI, unicast SAFI: not a family of ours
    back.endOfRib(unicast(2));
    await sleep(400);
    expect(routesOf(s)[V4]).toBe(PEER); // still stale, awaiting IPv4's own End-of-RIB
    back.endOfRib(unicast(1));
    await until('stale IPv4 route gone at its End-of-RIB', () => routesOf(s)[V4] === undefined, 3_000);
  });

  it('after our restart, an End-of-RIB for a family not negotiated does not end the selection deferral', async () => {
    const s = await speaker({ gracefulRestart: { enabled: true, restartTime: 60, restarting: true } });
    const emitted: string[] = [];
    s.on('routes', (changes) => emitted.push(...changes.map((c) => c.prefix)));
    const p = await rawPeer(s, withGr(60, [unicast(1)])); // IPv4 unicast only
    p.announce([V4], PEER);
    p.endOfRib({ afi: 25 as Afi, safi: 1 });
    p.endOfRib(unicast(2)); // IPv6 was not negotiated on this session
    await sleep(400);
    expect(emitted).toEqual([]);
    p.endOfRib(unicast(1));
    await until('selection done at IPv4\'s End-of-RIB', () => emitted.includes(V4), 3_000);
  });
});

describe('graceful restart, receiving speaker: a family listed but not negotiated (RFC 4724 §4.2, RFC 4760 §8)', () => {
  it('stale routes of a family the new session did not negotiate go at once, though its capability lists the family', async () => {
    const s = await speaker();
    await learnThenLose(s, 60, true);
    // Back with IPv4 unicast only in its Multiprotocol capabilities, but IPv6 still in its graceful restart one.
    await rawPeer(s, { capabilities: [{ code: 1, family: unicast(1) }, { code: 65, asn: ASN }, grCapability(60, [{ afi: 1 }, { afi: 2 }])] });
    await until('the IPv6 stale route gone at once', () => routesOf(s)[V6] === undefined, 3_000);
    expect(routesOf(s)[V4]).toBe(PEER); // IPv4 waits for its End-of-RIB
  });
});

describe('graceful restart, receiving speaker: a peer that restarts again and again (RFC 4724 §4.2)', () => {
  it('the restart timer runs from the first loss: a second loss before End-of-RIB does not start it again', async () => {
    const s = await speaker();
    await learnThenLose(s, 4);
    const lostAt = Date.now();
    const second = await rawPeer(s, withGr(4));
    await sleep(Math.max(0, lostAt + 2_500 - Date.now()));
    second.drop(); // lost again, no End-of-RIB ever: the routes of the first session are still stale
    const third = await rawPeer(s, withGr(4));
    await until('stale route swept', () => routesOf(s)[V4] === undefined, 10_000);
    // Restarted from the second loss, the timer would end at 6.5 s or later.
    expect(Date.now() - lostAt).toBeLessThan(6_000);
    third.drop();
  });
});

describe('routes of an address family the session did not negotiate (RFC 4760 §6, §7)', () => {
  it('MP_REACH_NLRI for IPv6 on an IPv4-only session is ignored (logged once): nothing installed, the session and its IPv4 routes stay', async () => {
    const warned: object[] = [];
    const s = await speaker({ log: { warn: (fields) => void warned.push(fields), error: () => undefined } });
    const p = await rawPeer(s, { capabilities: [{ code: 1, family: unicast(1) }, { code: 65, asn: ASN }] });
    p.announce([V6], 'fd00::2');
    p.announce(['fd00:5::/64'], 'fd00::2');
    p.announce([V4], PEER);
    await until('the IPv4 route learned', () => routesOf(s)[V4] === PEER);
    await sleep(100);
    expect(routesOf(s)).toEqual({ [V4]: PEER });
    expect(warned).toEqual([expect.objectContaining({ peer: PEER, afi: 2, safi: 1 })]);
    expect(p.received.filter((m) => m.type === 3)).toEqual([]);
    expect(s.snapshot()[0]?.state).toBe('Established');
  });

  it('IPv4 NLRI on a session that negotiated only IPv6 unicast is ignored; its IPv6 routes are learned', async () => {
    const s = await speaker();
    const p = await rawPeer(s, { capabilities: [{ code: 1, family: unicast(2) }, { code: 65, asn: ASN }] });
    p.announce([V4], PEER);
    p.announce([V6], 'fd00::2');
    await until('the IPv6 route learned', () => routesOf(s)[V6] === 'fd00::2');
    await sleep(100);
    expect(routesOf(s)).toEqual({ [V6]: 'fd00::2' });
    expect(s.snapshot()[0]?.state).toBe('Established');
  });
});

describe('next hops that are not unicast addresses (RFC 4271 §6.3, RFC 4760 §3): the route is ignored, no NOTIFICATION', () => {
  it('MP_REACH_NLRI next hops ::, ff02::1, 0.0.0.0 and 224.0.0.5 install nothing and are not passed on', async () => {
    const s = await loopback.speaker({ clusterId: '127.0.0.1' }, [{ address: PEER, asn: ASN, routeReflectorClient: true }, { address: '127.0.0.3', asn: ASN, routeReflectorClient: true }]);
    await until('the other peer configured', () => s.snapshot().length === 2);
    const client = await loopback.connect(s, { localAddress: '127.0.0.3', asn: ASN });
    const p = await rawPeer(s, { capabilities: [{ code: 1, family: unicast(1) }, { code: 1, family: unicast(2) }, { code: 65, asn: ASN }] });
    const attributes = { origin: 0 as const, asPath: [] };
    p.send({ type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: unicast(2), nextHops: ['::'], nlri: ['fd00:2::/64'] } });
    p.send({ type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: unicast(2), nextHops: ['ff02::1', 'fe80::1'], nlri: ['fd00:3::/64'] } });
    p.send({ type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: unicast(1), nextHops: ['0.0.0.0'], nlri: ['10.2.0.0/24'] } });
    p.send({ type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: unicast(1), nextHops: ['224.0.0.5'], nlri: ['10.3.0.0/24'] } });
    // The control: a global and a link-local next hop (32 bytes, RFC 2545 §3), the global one used.
    p.send({ type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: unicast(2), nextHops: ['fd00::2', 'fe80::2'], nlri: [V6] } });
    await until('the control route learned', () => routesOf(s)[V6] === 'fd00::2');
    expect(routesOf(s)).toEqual({ [V6]: 'fd00::2' });
    await client.waitFor('the control route reflected', () => client.received.some((m) => m.type === 2 && m.mpReach?.nlri.includes(V6)));
    const reflected = client.received.flatMap((m) => (m.type === 2 ? [...m.nlri, ...(m.mpReach?.nlri ?? [])] : []));
    expect(reflected).toEqual([V6]);
    expect(p.received.filter((m) => m.type === 3)).toEqual([]);
    expect(s.snapshot().find((x) => x.address === PEER)?.state).toBe('Established');
  });
});

describe('link-local next hops (RFC 2545 §3, RFC 4760 §3)', () => {
  it('one alone in MP_REACH_NLRI is not used on a session over global addresses (issue 14: the peer\'s global address on the link); the global one of a pair is, and no link-local is passed on', async () => {
    const asked: string[] = [];
    const s = await loopback.speaker({ clusterId: '127.0.0.1', nextHops: { resolve: (nh) => (asked.push(nh), 'reachable') } }, [{ address: PEER, asn: ASN, routeReflectorClient: true }, { address: '127.0.0.3', asn: ASN, routeReflectorClient: true }]);
    await until('the other peer configured', () => s.snapshot().length === 2);
    const client = await loopback.connect(s, { localAddress: '127.0.0.3', asn: ASN });
    const p = await rawPeer(s);
    const attributes = { origin: 0 as const, asPath: [] };
    p.send({ type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: unicast(2), nextHops: ['fe80::2'], nlri: [V6] } });
    // The 32-byte form (global, then link-local): the global one, as before.
    p.send({ type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: unicast(2), nextHops: ['fd00::2', 'fe80::2'], nlri: ['fd00:4::/64'] } });
    p.announce([V4], PEER); // the control, reflected
    await until('all learned', () => Object.keys(routesOf(s)).length === 2);
    await sleep(100);
    expect(routesOf(s)).toEqual({ 'fd00:4::/64': 'fd00::2', [V4]: PEER });
    expect(asked.filter((h) => h.startsWith('fe80'))).toEqual([]); // never resolved, bare or zoned
    await client.waitFor('the control reflected', () => client.received.some((m) => m.type === 2 && m.nlri.includes(V4)));
    await sleep(100);
    const hops = client.received.flatMap((m) => (m.type === 2 ? (m.mpReach?.nextHops ?? []) : []));
    expect(hops.filter((h) => h.startsWith('fe80'))).toEqual([]);
    expect(p.received.filter((m) => m.type === 3)).toEqual([]);
  });

  it('the link is the interface holding the session\'s local address; none when no interface holds it', () => {
    const interfaces = { lo: [{ address: '127.0.0.1' }], eth0: [{ address: '192.0.2.1' }, { address: 'fd00::1' }] } as unknown as Parameters<typeof deviceHolding>[1];
    expect(deviceHolding('192.0.2.1', interfaces)).toBe('eth0');
    expect(deviceHolding('fd00::1', interfaces)).toBe('eth0');
    expect(deviceHolding('fe80::1%eth1', interfaces)).toBe('eth1');
    expect(deviceHolding('198.51.100.1', interfaces)).toBeUndefined();
  });
});

describe('the listener (RFC 4271 §8: connections are accepted for configured peers)', () => {
  it('an accept that fails (ENOBUFS, EPERM: Node reports it as an error event on the server) is logged, again and again, never thrown', async () => {
    const logged: string[] = [];
    const log = { warn: () => undefined, error: (_fields: object, message: string) => void logged.push(message) };
    const s = await speaker({ log });
    // What node:net does when accept(2) fails: an 'error' event on the listening server.
    const server = (s as unknown as { server: import('node:net').Server }).server;
    for (let i = 0; i < 3; i++) server.emit('error', Object.assign(new Error('accept ENOBUFS'), { code: 'ENOBUFS', syscall: 'accept' }));
    expect(logged).toHaveLength(3);
    const p = await rawPeer(s); // and it still accepts
    p.announce([V4], PEER);
    await until('learned', () => routesOf(s)[V4] === PEER);
  });
});

describe('a peer that keeps ending its session with a Cease (RFC 4271 §8.1.1 DampPeerOscillations, RFC 4486)', () => {
  it('is accepted back at once twice, then refused for the idle hold back-off, then accepted again', async () => {
    const s = await speaker({ connectRetrySeconds: 2 }); // a damped Cease holds it off 4 s
    const state = () => s.snapshot()[0]?.state;
    let ups = 0;
    s.on('peerState', (_peer, _from, to) => void (to === 'Established' && ups++));
    for (let i = 0; i < 3; i++) {
      const p = await rawPeer(s); // waits for Active: the peer's next connection is accepted
      await until('Established', () => state() === 'Established');
      p.notify(6, 4); // Cease, administrative reset
      await until('the session down', () => state() !== 'Established');
    }
    expect(state()).toBe('Idle');
    await sleep(1000);
    expect(state()).toBe('Idle');
    await until('accepting the peer again after the hold-off', () => state() === 'Active', 10_000);
    await rawPeer(s);
    await until('Established once more', () => state() === 'Established');
    expect(ups).toBe(4);
  }, 20_000);
});
