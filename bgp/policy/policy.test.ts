import { describe, expect, it } from 'vitest';
import { AsPathSegmentType, Origin, type AsPathSegment, type PathAttributes, type Prefix } from '../codec/types.js';
import { LOCAL, type Path, type PeerInfo } from '../rib/rib.js';
import { type ImportPolicy, type LocalSpeaker, contains, exportAttributes, importAllowed, loopReason } from './policy.js';

// ---- helpers ----

const OUR_ASN = 64512;
const ROUTER_ID = '10.0.0.1';
const CLUSTER_ID = '10.255.0.1';
const NEXT_HOP_SELF = '192.0.2.254';
const PREFIX: Prefix = '10.244.1.0/24';

const seq = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AS_SEQUENCE, asns });
const set = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AS_SET, asns });

const speaker = (over: Partial<LocalSpeaker> = {}): LocalSpeaker => ({ asn: OUR_ASN, routerId: ROUTER_ID, ...over });
const reflector = speaker({ clusterId: CLUSTER_ID });

/** An eBGP peer in AS 65000+n, address 192.0.2.n, router id 10.0.1.n. */
const ebgpPeer = (n: number, over: Partial<PeerInfo> = {}): PeerInfo =>
  ({ id: `e${n}`, address: `192.0.2.${n}`, asn: 65000 + n, routerId: `10.0.1.${n}`, ebgp: true, rrClient: false, ...over });
/** An iBGP peer (our AS), address 192.0.2.(100+n), router id 10.0.2.n. */
const ibgpPeer = (n: number, over: Partial<PeerInfo> = {}): PeerInfo =>
  ({ id: `i${n}`, address: `192.0.2.${100 + n}`, asn: OUR_ASN, routerId: `10.0.2.${n}`, ebgp: false, rrClient: false, ...over });
const client = (n: number): PeerInfo => ibgpPeer(n, { rrClient: true });

function path(source: PeerInfo | typeof LOCAL, attrs: PathAttributes = {}, nextHop = source === LOCAL ? NEXT_HOP_SELF : source.address): Path {
  return { prefix: PREFIX, attrs, nextHop, source };
}

const policy = (importCIDRs: Prefix[], allowDefaultRoute = false): ImportPolicy => ({ importCIDRs, allowDefaultRoute });

// ---- tests ----

describe('contains', () => {
  it.each([
    ['10.0.0.0/8', '10.1.2.0/24', true],
    ['10.0.0.0/8', '10.0.0.0/8', true],
    ['10.0.0.0/8', '11.0.0.0/24', false],
    ['10.1.0.0/16', '10.0.0.0/8', false], // the inner one is shorter
    ['10.0.0.0/9', '10.128.0.0/9', false],
    ['10.128.0.0/9', '10.200.0.0/16', true],
    ['192.0.2.1/32', '192.0.2.1/32', true],
    ['192.0.2.1/32', '192.0.2.2/32', false],
    ['0.0.0.0/0', '203.0.113.0/24', true],
    ['fd00::/8', 'fd12:3456::/48', true],
    ['fd00::/16', 'fd01::/64', false],
    ['2001:db8::/32', '2001:db8:ffff:ffff::/64', true],
    ['::/0', '2001:db8::/32', true],
    ['0.0.0.0/0', 'fd00::/64', false], // different families never contain each other
    ['::/0', '10.0.0.0/8', false],
  ])('%s contains %s: %s', (outer, inner, expected) => {
    expect(contains(outer, inner)).toBe(expected);
  });
});

describe('importAllowed: rejectCIDRs (Service ranges each node announces itself)', () => {
  it('refuses prefixes inside rejectCIDRs even where importCIDRs (or none) would accept them; others pass', () => {
    const reject = { importCIDRs: [], allowDefaultRoute: false, rejectCIDRs: ['203.0.113.0/24', '10.96.0.0/12', '2001:db8:5::/64'] };
    for (const prefix of ['203.0.113.10/32', '10.96.0.0/12', '2001:db8:5::10/128']) expect(importAllowed(prefix, reject), prefix).toBe(false);
    for (const prefix of ['10.244.2.0/24', '203.0.112.0/23', '2001:db8:6::/64']) expect(importAllowed(prefix, reject), prefix).toBe(true);
    expect(importAllowed('203.0.113.10/32', { ...reject, importCIDRs: ['203.0.0.0/16'] })).toBe(false);
  });
});

describe('importAllowed: importCIDRs', () => {
  const p = policy(['10.244.0.0/16', 'fd00:244::/48']);

  it.each(['10.244.0.0/16', '10.244.1.0/24', '10.244.255.7/32', 'fd00:244::/48', 'fd00:244:0:1::/64'])('accepts %s inside the ranges', (prefix) => {
    expect(importAllowed(prefix, p)).toBe(true);
  });

  it.each(['10.245.0.0/24', '10.0.0.0/8', '192.168.0.0/16', 'fd00:245::/64', 'fd00::/8'])('refuses %s outside the ranges (or less specific)', (prefix) => {
    expect(importAllowed(prefix, p)).toBe(false);
  });

  it('accepts any non-default prefix when importCIDRs is empty', () => {
    for (const prefix of ['10.0.0.0/8', '192.0.2.0/24', '2001:db8::/32', 'fd00::1/128']) expect(importAllowed(prefix, policy([]))).toBe(true);
  });
});

describe('importAllowed: default routes', () => {
  it.each(['0.0.0.0/0', '::/0'])('refuses %s unless allowed', (prefix) => {
    expect(importAllowed(prefix, policy([]))).toBe(false);
    expect(importAllowed(prefix, policy([], true))).toBe(true);
  });

  it.each(['10.0.0.0/10', '10.0.0.0/20', '10.0.0.0/30', 'fd00::/100'])('does not mistake %s (length ending in 0) for a default route', (prefix) => {
    expect(importAllowed(prefix, policy([]))).toBe(true);
  });

  it('a default route must also pass importCIDRs: allowed only when a /0 is listed', () => {
    // As coded: allowDefaultRoute lifts the ban; the route must still lie inside importCIDRs.
    expect(importAllowed('0.0.0.0/0', policy(['10.244.0.0/16'], true))).toBe(false);
    expect(importAllowed('0.0.0.0/0', policy(['0.0.0.0/0'], true))).toBe(true);
    expect(importAllowed('::/0', policy(['::/0'], false))).toBe(false);
  });
});

describe('loopReason', () => {
  it('refuses an eBGP path with our AS anywhere in AS_PATH (sequence or set)', () => {
    expect(loopReason({ asPath: [seq(65001, OUR_ASN, 65003)] }, ebgpPeer(1), speaker())).toBe('our AS in AS_PATH');
    expect(loopReason({ asPath: [seq(65001), set(65002, OUR_ASN)] }, ebgpPeer(1), speaker())).toBe('our AS in AS_PATH');
  });

  it('accepts an eBGP path without our AS', () => {
    expect(loopReason({ asPath: [seq(65001, 65002)] }, ebgpPeer(1), speaker())).toBeUndefined();
    expect(loopReason({}, ebgpPeer(1), speaker())).toBeUndefined();
  });

  it('does not apply the AS check to iBGP paths', () => {
    expect(loopReason({ asPath: [seq(OUR_ASN)] }, ibgpPeer(1), speaker())).toBeUndefined();
  });

  it('refuses a path whose ORIGINATOR_ID is our router id', () => {
    expect(loopReason({ originatorId: ROUTER_ID }, ibgpPeer(1), speaker())).toBe('ORIGINATOR_ID is ours');
    expect(loopReason({ originatorId: '10.0.2.9' }, ibgpPeer(1), speaker())).toBeUndefined();
  });

  it('refuses a path whose CLUSTER_LIST holds our cluster id, when we reflect', () => {
    const attrs = { clusterList: ['10.255.0.9', CLUSTER_ID] };
    expect(loopReason(attrs, ibgpPeer(1), reflector)).toBe('CLUSTER_LIST has our cluster id');
    expect(loopReason({ clusterList: ['10.255.0.9'] }, ibgpPeer(1), reflector)).toBeUndefined();
    expect(loopReason(attrs, ibgpPeer(1), speaker())).toBeUndefined(); // not a reflector: no cluster id of ours
  });
});

describe('exportAttributes: iBGP split horizon and route reflection rules', () => {
  it('never sends a path back to the peer it came from', () => {
    expect(exportAttributes(path(ebgpPeer(1)), ebgpPeer(1), speaker(), NEXT_HOP_SELF)).toBeUndefined();
    expect(exportAttributes(path(client(1)), client(1), reflector, NEXT_HOP_SELF)).toBeUndefined();
  });

  it('without route reflection, an iBGP path is not sent to another iBGP peer', () => {
    expect(exportAttributes(path(ibgpPeer(1)), ibgpPeer(2), speaker(), NEXT_HOP_SELF)).toBeUndefined();
    // the rrClient flag alone does nothing without a cluster id
    expect(exportAttributes(path(client(1)), client(2), speaker(), NEXT_HOP_SELF)).toBeUndefined();
  });

  it.each([
    ['client', 'client', client(1), client(2), true],
    ['client', 'non-client', client(1), ibgpPeer(2), true],
    ['non-client', 'client', ibgpPeer(1), client(2), true],
    ['non-client', 'non-client', ibgpPeer(1), ibgpPeer(2), false],
  ])('as a route reflector, from a %s to a %s: sent = %s (RFC 4456 §6)', (_f, _t, from, to, sent) => {
    expect(exportAttributes(path(from), to, reflector, NEXT_HOP_SELF) !== undefined).toBe(sent);
  });

  it('RFC 8212: an eBGP-learned path never goes to another eBGP peer (no transit between top-of-rack routers)', () => {
    expect(exportAttributes(path(ebgpPeer(2), { asPath: [seq(65002)] }), ebgpPeer(1), speaker(), NEXT_HOP_SELF)).toBeUndefined();
    expect(exportAttributes(path(ebgpPeer(2), { asPath: [seq(65002)] }), ebgpPeer(1), reflector, NEXT_HOP_SELF)).toBeUndefined();
  });

  it('eBGP-learned paths go to iBGP peers, and iBGP-learned ones to eBGP peers', () => {
    expect(exportAttributes(path(ebgpPeer(1), { asPath: [seq(65001)] }), ibgpPeer(2), speaker(), NEXT_HOP_SELF)).toBeDefined();
    expect(exportAttributes(path(ibgpPeer(1)), ebgpPeer(2), speaker(), NEXT_HOP_SELF)).toBeDefined();
  });

  it('our own paths go to everyone', () => {
    for (const to of [ebgpPeer(1), ibgpPeer(1), client(2)]) expect(exportAttributes(path(LOCAL), to, speaker(), NEXT_HOP_SELF)).toBeDefined();
  });
});

describe('exportAttributes: route reflector attributes', () => {
  it('adds ORIGINATOR_ID (the source router id) and CLUSTER_LIST, keeping next hop and LOCAL_PREF', () => {
    const attrs: PathAttributes = { origin: Origin.IGP, asPath: [], localPref: 150, med: 7 };
    expect(exportAttributes(path(client(1), attrs, '10.0.9.9'), client(2), reflector, NEXT_HOP_SELF)).toEqual({
      attrs: { origin: Origin.IGP, asPath: [], localPref: 150, med: 7, originatorId: '10.0.2.1', clusterList: [CLUSTER_ID] },
      nextHop: '10.0.9.9',
    });
  });

  it('keeps an existing ORIGINATOR_ID and prepends our cluster id to CLUSTER_LIST', () => {
    const attrs: PathAttributes = { origin: Origin.IGP, asPath: [], originatorId: '10.0.3.3', clusterList: ['10.255.0.7'] };
    const out = exportAttributes(path(ibgpPeer(1), attrs), client(2), reflector, NEXT_HOP_SELF);
    expect(out?.attrs).toMatchObject({ originatorId: '10.0.3.3', clusterList: [CLUSTER_ID, '10.255.0.7'] });
    expect(attrs.clusterList).toEqual(['10.255.0.7']); // input untouched
  });

  it('does not add them to eBGP-learned or own paths', () => {
    const fromEbgp = exportAttributes(path(ebgpPeer(1), { asPath: [seq(65001)] }), client(2), reflector, NEXT_HOP_SELF);
    const own = exportAttributes(path(LOCAL), client(2), reflector, NEXT_HOP_SELF);
    for (const out of [fromEbgp, own]) {
      expect(out?.attrs.originatorId).toBeUndefined();
      expect(out?.attrs.clusterList).toBeUndefined();
    }
  });
});

describe('exportAttributes: to an eBGP peer', () => {
  it('prepends our AS, sets next hop self, and drops LOCAL_PREF, MED and the reflection attributes', () => {
    const attrs: PathAttributes = {
      origin: Origin.EGP, asPath: [seq(65002, 65003)], nextHop: '192.0.2.102', med: 20, localPref: 300,
      originatorId: '10.0.2.2', clusterList: [CLUSTER_ID],
      communities: [0xfde80001], atomicAggregate: true, aggregator: { asn: 65003, address: '10.0.3.3' },
      unknown: [{ flags: 0xc0, type: 99, value: Uint8Array.of(1) }],
    };
    expect(exportAttributes(path(ibgpPeer(2), attrs), ebgpPeer(1), speaker(), NEXT_HOP_SELF)).toEqual({
      attrs: {
        origin: Origin.EGP, asPath: [seq(OUR_ASN, 65002, 65003)],
        communities: [0xfde80001], atomicAggregate: true, aggregator: { asn: 65003, address: '10.0.3.3' },
        unknown: [{ flags: 0xc0, type: 99, value: Uint8Array.of(1) }],
      },
      nextHop: NEXT_HOP_SELF,
    });
    expect(attrs.asPath).toEqual([seq(65002, 65003)]); // input untouched
  });

  it('own path with no AS_PATH or ORIGIN: AS path is just our AS, origin IGP', () => {
    expect(exportAttributes(path(LOCAL, { med: 5, localPref: 200 }), ebgpPeer(1), speaker(), NEXT_HOP_SELF)).toEqual({
      attrs: { origin: Origin.IGP, asPath: [seq(OUR_ASN)] },
      nextHop: NEXT_HOP_SELF,
    });
  });

  it('a path starting with an AS_SET gets a new AS_SEQUENCE in front', () => {
    const out = exportAttributes(path(ibgpPeer(2), { asPath: [set(65010, 65011), seq(65012)] }), ebgpPeer(1), speaker(), NEXT_HOP_SELF);
    expect(out?.attrs.asPath).toEqual([seq(OUR_ASN), set(65010, 65011), seq(65012)]);
  });

  it('a full (255 AS) leading AS_SEQUENCE gets a new segment in front', () => {
    const full = seq(...Array.from({ length: 255 }, (_, i) => 65100 + i));
    const out = exportAttributes(path(ibgpPeer(2), { asPath: [full] }), ebgpPeer(1), speaker(), NEXT_HOP_SELF);
    expect(out?.attrs.asPath).toEqual([seq(OUR_ASN), full]);
  });

  it('a 254 AS leading AS_SEQUENCE is extended in place', () => {
    const asns = Array.from({ length: 254 }, (_, i) => 65100 + i);
    const out = exportAttributes(path(ibgpPeer(2), { asPath: [seq(...asns)] }), ebgpPeer(1), speaker(), NEXT_HOP_SELF);
    expect(out?.attrs.asPath).toEqual([seq(OUR_ASN, ...asns)]);
  });
});

describe('exportAttributes: to an iBGP peer', () => {
  it('own path: next hop self, LOCAL_PREF defaulted to 100, empty AS path, origin IGP', () => {
    expect(exportAttributes(path(LOCAL), ibgpPeer(1), speaker(), NEXT_HOP_SELF)).toEqual({
      attrs: { origin: Origin.IGP, asPath: [], localPref: 100 },
      nextHop: NEXT_HOP_SELF,
    });
  });

  it('own path keeps its LOCAL_PREF, MED and origin', () => {
    const out = exportAttributes(path(LOCAL, { localPref: 250, med: 3, origin: Origin.INCOMPLETE }), ibgpPeer(1), speaker(), NEXT_HOP_SELF);
    expect(out?.attrs).toEqual({ origin: Origin.INCOMPLETE, asPath: [], localPref: 250, med: 3 });
  });

  it('eBGP-learned path keeps its AS path and next hop, and gets LOCAL_PREF 100', () => {
    const out = exportAttributes(path(ebgpPeer(1), { origin: Origin.IGP, asPath: [seq(65001, 65005)], med: 9 }), ibgpPeer(2), speaker(), NEXT_HOP_SELF);
    expect(out).toEqual({
      attrs: { origin: Origin.IGP, asPath: [seq(65001, 65005)], med: 9, localPref: 100 },
      nextHop: '192.0.2.1',
    });
  });
});
