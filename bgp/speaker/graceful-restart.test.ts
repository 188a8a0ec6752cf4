// Graceful restart (RFC 4724) and hard failures, against our Speaker with scripted raw peers on loopback.
import { afterEach, describe, expect, it } from 'vitest';
import { Speaker, type SpeakerConfig } from './speaker.js';
import { endOfRibFamily } from '../codec/index.js';
import { type RawPeer, type RawPeerOptions, grCapability, unicast } from './raw-peer.js';
import { ASN, Loopback, routesOf, sleep, until } from './loopback.js';

const loopback = new Loopback();
afterEach(() => loopback.cleanup());

const PEER = '127.0.0.2';
const speaker = (extra: Partial<SpeakerConfig> = {}): Promise<Speaker> => loopback.speaker(extra, [{ address: PEER, asn: ASN }]);
const rawPeer = (_s: Speaker, options: Partial<RawPeerOptions> = {}): Promise<RawPeer> => loopback.connect(_s, { localAddress: PEER, asn: ASN, ...options });
const routes = routesOf;
const V4 = '10.1.0.0/24';
const V6 = 'fd00:1::/64';
const bothFamilies = [{ afi: 1 as const }, { afi: 2 as const }];

/** A session with graceful restart, routes of both families learned, then lost without a NOTIFICATION. */
async function learnThenDrop(s: Speaker, restartTime: number, families: { afi: 1 | 2; forwarding?: boolean }[] = bothFamilies): Promise<void> {
  const p = await rawPeer(s, { capabilities: [{ code: 1, family: unicast(1) }, { code: 1, family: unicast(2) }, { code: 65, asn: ASN }, grCapability(restartTime, families)] });
  p.announce([V4], PEER);
  p.announce([V6], 'fd00::2');
  await until('both routes learned', () => routes(s)[V4] === PEER && routes(s)[V6] === 'fd00::2');
  p.drop();
  await until('the session down', () => s.snapshot()[0]!.state !== 'Established');
}

const withGr = (restartTime: number, families: { afi: 1 | 2; safi?: number; forwarding?: boolean }[] = bothFamilies, asn = ASN) => ({
  capabilities: [{ code: 1 as const, family: unicast(1) }, { code: 1 as const, family: unicast(2) }, { code: 65 as const, asn }, grCapability(restartTime, families)],
});

describe('graceful restart, receiving speaker (RFC 4724 §4.2)', () => {
  it('keeps stale routes across the loss, and drops them at once when the peer comes back without the capability', async () => {
    const s = await speaker();
    await learnThenDrop(s, 60);
    await sleep(200);
    expect(routes(s)[V4]).toBe(PEER); // held, stale
    await rawPeer(s); // no graceful restart capability this time
    await until('stale routes gone at once', () => routes(s)[V4] === undefined && routes(s)[V6] === undefined, 3_000);
  });

  it('drops a family at once when the peer comes back without its F bit; keeps the other until End-of-RIB', async () => {
    const s = await speaker();
    await learnThenDrop(s, 60);
    const p = await rawPeer(s, withGr(60, [{ afi: 1, forwarding: false }, { afi: 2, forwarding: true }]));
    await until('IPv4 stale routes gone (no F bit)', () => routes(s)[V4] === undefined, 3_000);
    expect(routes(s)[V6]).toBe('fd00::2');
    // End-of-RIB is matched on AFI and SAFI: IPv6 multicast (SAFI 2) is not IPv6 unicast.
    p.endOfRib({ afi: 2, safi: 2 });
    await sleep(300);
    expect(routes(s)[V6]).toBe('fd00::2');
    p.endOfRib(unicast(2));
    await until('IPv6 stale routes gone at End-of-RIB', () => routes(s)[V6] === undefined, 3_000);
  });

  it('stale routes go when the restart time (counted from the loss) runs out, even though the session came back', async () => {
    const s = await speaker();
    await learnThenDrop(s, 2);
    const lostAt = Date.now();
    await rawPeer(s, withGr(60)); // back, with the capability and F bits, but no End-of-RIB ever
    await until('stale routes swept by the restart timer', () => routes(s)[V4] === undefined && routes(s)[V6] === undefined, 6_000);
    expect(Date.now() - lostAt).toBeGreaterThan(1_500);
  });

  it('a route resent before End-of-RIB is fresh and stays; the rest goes at End-of-RIB', async () => {
    const s = await speaker();
    await learnThenDrop(s, 60);
    const p = await rawPeer(s, withGr(60));
    p.announce(['10.2.0.0/24'], PEER);
    p.announce([V6], 'fd00::2');
    p.endOfRib(unicast(1));
    p.endOfRib(unicast(2));
    await until('only the resent routes', () => routes(s)[V4] === undefined && routes(s)['10.2.0.0/24'] === PEER && routes(s)[V6] === 'fd00::2', 3_000);
  });

  it('stale routes of an earlier session go with the peer: removed from the configuration, or lost hard, before its End-of-RIB', async () => {
    for (const end of ['deconfigured', 'lost without graceful restart'] as const) {
      const s = await speaker();
      await learnThenDrop(s, 60);
      const p = await rawPeer(s, withGr(60)); // back, stale routes kept until End-of-RIB, which never comes
      await until('back', () => s.snapshot()[0]?.state === 'Established');
      expect(routes(s)[V4]).toBe(PEER);
      if (end === 'deconfigured') s.setPeers([]);
      else p.sendBytes(Buffer.from([...Array(16).fill(0xff), 0, 21, 3, 6, 2])); // NOTIFICATION Cease 6/2: not graceful
      await until(`stale routes gone once the peer is ${end}`, () => routes(s)[V4] === undefined && routes(s)[V6] === undefined, 3_000);
    }
  });

  it('retains only the families the peer listed in its capability', async () => {
    const s = await speaker();
    await learnThenDrop(s, 60, [{ afi: 1 }]);
    await until('IPv6 routes gone at once (family not listed)', () => routes(s)[V6] === undefined, 3_000);
    expect(routes(s)[V4]).toBe(PEER);
  });

  it('a session that did not negotiate graceful restart is never graceful, whatever an earlier session had', async () => {
    const s = await speaker();
    await learnThenDrop(s, 60);
    const p = await rawPeer(s); // no capability: the stale routes go, and this session is not graceful
    await until('stale routes gone', () => routes(s)[V4] === undefined, 3_000);
    p.announce([V4], PEER);
    await until('learned again', () => routes(s)[V4] === PEER);
    p.drop();
    await until('dropped at once on the loss', () => routes(s)[V4] === undefined, 3_000);
  });

  it('is not graceful when we do not do graceful restart ourselves', async () => {
    const s = await speaker({ gracefulRestart: { enabled: false, restartTime: 5, restarting: false } });
    const p = await rawPeer(s, withGr(60));
    p.announce([V4], PEER);
    await until('learned', () => routes(s)[V4] === PEER);
    p.drop();
    await until('dropped at once', () => routes(s)[V4] === undefined, 3_000);
  });

  it('a hold timer expiry we detect is a hard failure: routes go at once (RFC 4724 §4.2, no RFC 8538 N bit)', async () => {
    const s = await speaker({ holdTime: 3 });
    const p = await rawPeer(s, { ...withGr(60), holdTime: 3, keepalives: false });
    p.announce([V4], PEER);
    await until('learned', () => routes(s)[V4] === PEER);
    await until('hold timer expired', () => s.snapshot()[0]!.state !== 'Established', 8_000);
    await sleep(200);
    expect(routes(s)[V4]).toBeUndefined();
  });
});

describe('graceful restart, restarting speaker (RFC 4724 §4.1)', () => {
  const EBGP = '127.0.0.3';
  let current: Speaker;
  const restarting = async (extra: Partial<SpeakerConfig['gracefulRestart']> = {}) => {
    const s = await loopback.speaker({ gracefulRestart: { enabled: true, restartTime: 60, restarting: true, ...extra } }, [{ address: PEER, asn: ASN }, { address: EBGP, asn: 65003 }]);
    const emitted: string[] = [];
    s.on('routes', (changes) => emitted.push(...changes.map((c) => c.prefix)));
    s.setOriginated(['10.244.1.0/24']);
    current = s;
    return { s, emitted };
  };
  const connectAs = (address: string, asn: number, options: Partial<RawPeerOptions> = {}) => loopback.connect(current, { localAddress: address, asn, ...options });
  const nlriOf = (p: RawPeer) => p.received.flatMap((m) => (m.type === 2 ? m.nlri : []));
  const endOfRibAt = (p: RawPeer) => p.received.findIndex((m) => m.type === 2 && endOfRibFamily(m)?.afi === 1);
  const restartBit = (p: RawPeer) => p.peerOpen?.capabilities.find((c): c is Extract<typeof c, { code: 64 }> => c.code === 64)?.restarting;

  it('defers selection and our End-of-RIB until every graceful restart peer has sent its End-of-RIB', async () => {
    const { emitted } = await restarting();
    const a = await connectAs(PEER, ASN, withGr(60));
    expect(restartBit(a)).toBe(true);
    a.announce([V4], PEER);
    a.endOfRib(unicast(1));
    a.endOfRib(unicast(2));
    await sleep(400);
    expect(emitted).toEqual([]); // nothing to the kernel yet
    expect(a.received.filter((m) => m.type === 2)).toEqual([]); // nor to the peer: no routes, no End-of-RIB
    const b = await connectAs(EBGP, 65003, withGr(60, bothFamilies, 65003));
    b.announce(['10.3.0.0/24'], EBGP);
    b.endOfRib(unicast(1));
    b.endOfRib(unicast(2));
    await until('selection done: the kernel gets both peers\' routes', () => emitted.includes(V4) && emitted.includes('10.3.0.0/24'));
    await a.waitFor('our End-of-RIB to the client', () => endOfRibAt(a) >= 0);
    // Everything we know first, then "that is all".
    const carrying = a.received.map((m, i) => (m.type === 2 && (m.nlri.includes('10.3.0.0/24') || m.nlri.includes('10.244.1.0/24')) ? i : -1));
    const last = Math.max(...carrying);
    expect(nlriOf(a)).toEqual(expect.arrayContaining(['10.3.0.0/24', '10.244.1.0/24']));
    expect(last).toBeLessThan(endOfRibAt(a));
  });

  it('the Restart State bit is set only on the first session after the restart', async () => {
    await restarting({ selectionDeferralTime: 1 });
    const a = await connectAs(PEER, ASN, withGr(60));
    expect(restartBit(a)).toBe(true);
    await a.waitFor('End-of-RIB after the deferral timer', () => endOfRibAt(a) >= 0, 5_000);
    a.drop();
    const again = await connectAs(PEER, ASN, withGr(60));
    expect(restartBit(again)).toBe(false);
  });

  it('the selection deferral timer ends the wait for a peer that never sends End-of-RIB', async () => {
    const { emitted } = await restarting({ selectionDeferralTime: 1 });
    const a = await connectAs(PEER, ASN, withGr(60));
    const started = Date.now();
    a.announce([V4], PEER);
    await a.waitFor('our routes and End-of-RIB', () => endOfRibAt(a) >= 0 && nlriOf(a).includes('10.244.1.0/24'), 5_000);
    expect(Date.now() - started).toBeGreaterThan(500);
    expect(emitted).toContain(V4);
  });
});
