import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AsPathSegmentType, Origin, type AsPathSegment, type PathAttributes, type Prefix } from '../codec/types.js';
import { type BestChange, LOCAL, type Path, type PeerInfo, Rib, type Route, asPathLength, comparePaths } from './rib.js';

// ---- helpers ----

const PREFIX: Prefix = '10.1.0.0/24';
/** A change without the slot it carries (the record a route sink sharing the RIB's table reaches it by). */
const bare = (c: BestChange | undefined): Omit<BestChange, 'slot'> | undefined => {
  if (!c) return c;
  const { slot: _slot, ...rest } = c;
  return rest;
};
const LOCAL_NEXT_HOP = '192.0.2.254';

const seq = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AS_SEQUENCE, asns });
const set = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AS_SET, asns });

/** Peer n: id pn, address 192.0.2.n, router id 10.0.0.n, AS 65000+n, eBGP unless told. */
function peer(n: number, over: Partial<PeerInfo> = {}): PeerInfo {
  return { id: `p${n}`, address: `192.0.2.${n}`, asn: 65000 + n, routerId: `10.0.0.${n}`, ebgp: true, rrClient: false, ...over };
}

/** A path from `source` with IGP origin and, for eBGP, an AS path of the peer's AS; `attrs` override. */
function path(source: PeerInfo | typeof LOCAL, attrs: PathAttributes = {}, over: Partial<Path> = {}): Path {
  const asPath = source !== LOCAL && source.ebgp ? [seq(source.asn)] : [];
  return {
    prefix: PREFIX,
    nextHop: source === LOCAL ? LOCAL_NEXT_HOP : source.address,
    source,
    attrs: { origin: Origin.IGP, asPath, ...attrs },
    ...over,
  };
}

const idOf = (p: Route | undefined): string | undefined => (p === undefined ? undefined : p.source === LOCAL ? LOCAL : p.source.id);

/** Asserts `better` beats `worse` both ways round, and that a Rib picks it whichever comes first. */
function expectPreferred(better: Path, worse: Path): void {
  expect(comparePaths(better, worse)).toBeLessThan(0);
  expect(comparePaths(worse, better)).toBeGreaterThan(0);
  for (const order of [[better, worse], [worse, better]]) {
    const rib = new Rib();
    for (const p of order) rib.upsert(p);
    expect(idOf(rib.bestOf(better.prefix)?.best)).toBe(idOf(better));
  }
}

function ribWith(...paths: Path[]): Rib {
  const rib = new Rib();
  for (const p of paths) rib.upsert(p);
  return rib;
}

const multipathIds = (rib: Rib, prefix = PREFIX) => rib.bestOf(prefix)?.multipath.map(idOf);

// ---- tests ----

describe('asPathLength', () => {
  it('counts each AS of an AS_SEQUENCE, an AS_SET as one, and confederation segments as none', () => {
    expect(asPathLength({ asPath: [seq(1, 2, 3)] })).toBe(3);
    expect(asPathLength({ asPath: [seq(1, 2), set(3, 4, 5)] })).toBe(3);
    expect(asPathLength({ asPath: [{ type: AsPathSegmentType.AS_CONFED_SEQUENCE, asns: [7, 8] }, { type: AsPathSegmentType.AS_CONFED_SET, asns: [9] }, seq(1)] })).toBe(1);
    expect(asPathLength({ asPath: [] })).toBe(0);
    expect(asPathLength({})).toBe(0);
  });
});

describe('decision: LOCAL_PREF', () => {
  it('higher LOCAL_PREF wins even over a shorter AS path and a lower router id', () => {
    expectPreferred(path(peer(9), { localPref: 200, asPath: [seq(1, 2, 3)] }), path(peer(1), { localPref: 100 }));
  });

  it('a missing LOCAL_PREF counts as 100', () => {
    expectPreferred(path(peer(9), { localPref: 101 }), path(peer(1)));
    expectPreferred(path(peer(9)), path(peer(1), { localPref: 99 }));
  });
});

describe('decision: locally originated', () => {
  it('our own path beats a learned one at equal LOCAL_PREF, even with a longer AS path', () => {
    expectPreferred(path(LOCAL, { asPath: [seq(1, 2)] }), path(peer(1)));
  });

  it('a learned path with higher LOCAL_PREF still beats our own', () => {
    expectPreferred(path(peer(1), { localPref: 200 }), path(LOCAL));
  });
});

describe('decision: AS path length', () => {
  it('the shorter AS path wins even with a worse ORIGIN', () => {
    expectPreferred(path(peer(9), { asPath: [seq(1, 2)], origin: Origin.INCOMPLETE }), path(peer(1), { asPath: [seq(1, 2, 3)] }));
  });

  it('an AS_SET counts as one hop', () => {
    expectPreferred(path(peer(9), { asPath: [seq(1), set(2, 3, 4)] }), path(peer(1), { asPath: [seq(1, 2, 3)] }));
  });
});

describe('decision: ORIGIN', () => {
  it('IGP beats EGP beats INCOMPLETE', () => {
    expectPreferred(path(peer(9), { origin: Origin.IGP }), path(peer(1), { origin: Origin.EGP }));
    expectPreferred(path(peer(9), { origin: Origin.EGP }), path(peer(1), { origin: Origin.INCOMPLETE }));
  });

  it('a missing ORIGIN ranks as INCOMPLETE', () => {
    const noOrigin = path(peer(1));
    delete noOrigin.attrs.origin;
    expectPreferred(path(peer(9), { origin: Origin.EGP }), noOrigin);
    expect(comparePaths(path(peer(9), { origin: Origin.INCOMPLETE }), noOrigin)).toBeGreaterThan(0); // tie, then router id
  });
});

describe('decision: MED', () => {
  it('between paths from the same neighbouring AS, the lower MED wins', () => {
    expectPreferred(path(peer(9), { asPath: [seq(65100)], med: 10 }), path(peer(1), { asPath: [seq(65100)], med: 20 }));
  });

  it('a missing MED counts as 0 (best)', () => {
    expectPreferred(path(peer(9), { asPath: [seq(65100)] }), path(peer(1), { asPath: [seq(65100)], med: 1 }));
  });

  it('is ignored between different neighbouring ASes (the router id decides)', () => {
    expectPreferred(path(peer(1), { asPath: [seq(65101)], med: 500 }), path(peer(9), { asPath: [seq(65102)], med: 0 }));
  });

  it('applies between iBGP paths with empty AS paths (both from our own AS)', () => {
    expectPreferred(path(peer(9, { ebgp: false }), { med: 5 }), path(peer(1, { ebgp: false }), { med: 6 }));
  });
});

describe('decision: eBGP over iBGP', () => {
  it('an eBGP path beats an iBGP one with a lower router id', () => {
    const ibgp = path(peer(1, { ebgp: false, asn: 65200 }), { asPath: [seq(65300)] });
    const ebgp = path(peer(9, { asn: 65300 }), { asPath: [seq(65300)] });
    expectPreferred(ebgp, ibgp);
  });
});

describe('decision: router id, cluster list, peer address', () => {
  it('the lower router id wins, compared numerically', () => {
    expectPreferred(path(peer(2, { routerId: '10.0.0.9' })), path(peer(1, { routerId: '10.0.0.10' })));
  });

  it('ORIGINATOR_ID stands in for the router id of reflected paths', () => {
    const reflected = path(peer(9, { ebgp: false, routerId: '10.0.0.9' }), { originatorId: '10.0.0.1' });
    expectPreferred(reflected, path(peer(2, { ebgp: false, routerId: '10.0.0.2' })));
  });

  it('at equal router id, the shorter CLUSTER_LIST wins', () => {
    const a = path(peer(9, { ebgp: false }), { originatorId: '10.9.9.9', clusterList: ['1.1.1.1'] });
    const b = path(peer(1, { ebgp: false }), { originatorId: '10.9.9.9', clusterList: ['2.2.2.2', '1.1.1.1'] });
    expectPreferred(a, b);
  });

  it('at equal router id, the lower peer address wins (IPv4)', () => {
    expectPreferred(path(peer(9, { routerId: '10.9.9.9', address: '192.0.2.9' })), path(peer(1, { routerId: '10.9.9.9', address: '192.0.2.10' })));
  });

  it('at equal router id, the lower peer address wins (IPv6, compared numerically)', () => {
    expectPreferred(path(peer(9, { routerId: '10.9.9.9', address: 'fd00::2' })), path(peer(1, { routerId: '10.9.9.9', address: 'fd00::10' })));
    expectPreferred(path(peer(9, { routerId: '10.9.9.9', address: 'fd00::ffff' })), path(peer(1, { routerId: '10.9.9.9', address: 'fd00:0:0:1::1' })));
  });

  it('two paths equal in every step compare 0', () => {
    expect(comparePaths(path(peer(1)), path(peer(1, { id: 'other' })))).toBe(0);
  });
});

describe('Rib: best path and BestChange events', () => {
  it('the first path becomes best and is reported with itself as multipath', () => {
    const rib = new Rib();
    const p = path(peer(1));
    expect(bare(rib.upsert(p))).toEqual({ prefix: PREFIX, best: p, multipath: [p], nextHops: [p.nextHop] });
    expect(rib.bestOf(PREFIX)).toEqual({ best: p, multipath: [p] });
  });

  it('a worse path that changes neither best nor multipath emits nothing', () => {
    const rib = ribWith(path(peer(1), { localPref: 200 }));
    expect(rib.upsert(path(peer(2)))).toBeUndefined();
    expect(rib.has('p2', PREFIX)).toBe(true);
  });

  it('a better path replaces the best and is reported', () => {
    const rib = ribWith(path(peer(1)));
    const better = path(peer(2), { localPref: 200 });
    expect(bare(rib.upsert(better))).toEqual({ prefix: PREFIX, best: better, multipath: [better], nextHops: [better.nextHop] });
  });

  it('withdrawing the best falls back to the runner-up', () => {
    const runnerUp = path(peer(2));
    const rib = ribWith(path(peer(1), { localPref: 200 }), runnerUp);
    expect(bare(rib.withdraw('p1', PREFIX))).toEqual({ prefix: PREFIX, best: runnerUp, multipath: [runnerUp], nextHops: [runnerUp.nextHop] });
    expect(rib.has('p1', PREFIX)).toBe(false);
  });

  it('withdrawing a losing path emits nothing', () => {
    const rib = ribWith(path(peer(1), { localPref: 200 }), path(peer(2)));
    expect(rib.withdraw('p2', PREFIX)).toBeUndefined();
    expect(idOf(rib.bestOf(PREFIX)?.best)).toBe('p1');
  });

  it('withdrawing the last path reports no best and an empty multipath', () => {
    const rib = ribWith(path(peer(1)));
    expect(bare(rib.withdraw('p1', PREFIX))).toEqual({ prefix: PREFIX, best: undefined, multipath: [], nextHops: [] });
    expect(rib.bestOf(PREFIX)).toBeUndefined();
    expect([...rib.bestPaths()]).toEqual([]);
    expect(rib.count('p1')).toBe(0);
  });

  it('withdrawing something never announced emits nothing', () => {
    const rib = ribWith(path(peer(1)));
    expect(rib.withdraw('p2', PREFIX)).toBeUndefined();
    expect(rib.withdraw('p1', '10.9.0.0/24')).toBeUndefined();
  });

  it('a re-announcement from the same peer replaces its previous path', () => {
    const rib = ribWith(path(peer(1), { localPref: 200 }), path(peer(2)));
    const downgraded = path(peer(1), { localPref: 50 });
    expect(idOf(rib.upsert(downgraded)?.best)).toBe('p2');
    expect(rib.count('p1')).toBe(1);
  });

  it('prefixes are independent', () => {
    const rib = ribWith(path(peer(1)), path(peer(2), {}, { prefix: '10.2.0.0/24' }));
    expect(idOf(rib.bestOf(PREFIX)?.best)).toBe('p1');
    expect(idOf(rib.bestOf('10.2.0.0/24')?.best)).toBe('p2');
    expect([...rib.bestPaths()].map(([p]) => p).sort()).toEqual([PREFIX, '10.2.0.0/24']);
  });
});

describe('Rib: multipath (ECMP)', () => {
  it('paths tying up to eBGP-vs-iBGP share traffic, best (lowest router id) first', () => {
    const rib = ribWith(path(peer(3)), path(peer(1)), path(peer(2)));
    expect(idOf(rib.bestOf(PREFIX)?.best)).toBe('p1');
    expect(multipathIds(rib)).toEqual(['p1', 'p2', 'p3']);
  });

  it('equal AS path length is enough: the ASes themselves may differ', () => {
    const rib = ribWith(path(peer(1), { asPath: [seq(65001, 65100)] }), path(peer(2), { asPath: [seq(65002, 65200)] }));
    expect(multipathIds(rib)).toEqual(['p1', 'p2']);
  });

  it('MED from different neighbouring ASes does not split the set', () => {
    const rib = ribWith(path(peer(1), { med: 100 }), path(peer(2), { med: 0 }));
    expect(multipathIds(rib)).toEqual(['p1', 'p2']);
  });

  it.each<[string, PathAttributes]>([
    ['lower LOCAL_PREF', { localPref: 50 }],
    ['longer AS path', { asPath: [seq(65002, 65002)] }],
    ['worse ORIGIN', { origin: Origin.EGP }],
  ])('a path with a %s is left out', (_, attrs) => {
    const rib = ribWith(path(peer(1)), path(peer(2), attrs), path(peer(3)));
    expect(multipathIds(rib)).toEqual(['p1', 'p3']);
  });

  it('a higher MED from the same neighbouring AS is left out', () => {
    const rib = ribWith(path(peer(1), { asPath: [seq(65100)], med: 5 }), path(peer(2), { asPath: [seq(65100)], med: 6 }), path(peer(3), { asPath: [seq(65100)], med: 5 }));
    expect(multipathIds(rib)).toEqual(['p1', 'p3']);
  });

  it('iBGP paths are left out when the best is eBGP', () => {
    const rib = ribWith(path(peer(2)), path(peer(1, { ebgp: false }), { asPath: [seq(65002)] }));
    expect(multipathIds(rib)).toEqual(['p2']);
  });

  it('iBGP paths tie with each other', () => {
    const rib = ribWith(path(peer(1, { ebgp: false })), path(peer(2, { ebgp: false })));
    expect(multipathIds(rib)).toEqual(['p1', 'p2']);
  });

  it('keeps one path per next hop', () => {
    const rib = ribWith(path(peer(1)), path(peer(2), {}, { nextHop: '192.0.2.1' }), path(peer(3)));
    expect(multipathIds(rib)).toEqual(['p1', 'p3']);
  });

  it('is limited to maxPaths', () => {
    const rib = new Rib(2);
    for (const n of [4, 3, 2, 1]) rib.upsert(path(peer(n)));
    expect(multipathIds(rib)).toEqual(['p1', 'p2']);
  });

  it('is empty when our own path is best', () => {
    const rib = ribWith(path(peer(1)), path(LOCAL));
    expect(rib.bestOf(PREFIX)).toEqual({ best: expect.objectContaining({ source: LOCAL }), multipath: [] });
  });

  it('withdrawing a member reports the smaller set with the same best', () => {
    const p1 = path(peer(1));
    const rib = ribWith(p1, path(peer(2)));
    expect(bare(rib.withdraw('p2', PREFIX))).toEqual({ prefix: PREFIX, best: p1, multipath: [p1], nextHops: [p1.nextHop] });
  });

  it('a newly tying path is reported even though the best is unchanged', () => {
    const p1 = path(peer(1));
    const p2 = path(peer(2));
    const rib = ribWith(p1);
    expect(bare(rib.upsert(p2))).toEqual({ prefix: PREFIX, best: p1, multipath: [p1, p2], nextHops: [p1.nextHop, p2.nextHop] });
  });
});

describe('Rib: dropping a peer', () => {
  it('removes all its paths and reports each prefix whose best changed', () => {
    const other = '10.2.0.0/24';
    const rib = ribWith(path(peer(1)), path(peer(1), {}, { prefix: other }), path(peer(2), { localPref: 50 }));
    expect(rib.count('p1')).toBe(2);
    const changes = rib.dropSource('p1');
    expect(changes.map((c) => [c.prefix, idOf(c.best)])).toEqual([[PREFIX, 'p2'], [other, undefined]]);
    expect(rib.count('p1')).toBe(0);
    expect(rib.has('p1', PREFIX)).toBe(false);
    expect(rib.bestOf(other)).toBeUndefined();
  });

  it('dropping an unknown peer changes nothing', () => {
    const rib = ribWith(path(peer(1)));
    expect(rib.dropSource('p9')).toEqual([]);
    expect(idOf(rib.bestOf(PREFIX)?.best)).toBe('p1');
  });
});

describe('Rib: dropping a peer in slices', () => {
  const prefixes = Array.from({ length: 10 }, (_, i) => `10.9.${i}.0/24`);

  it('gives the changes a slice at a time and ends with the source gone', () => {
    const before = peer(1);
    const rib = ribWith(...prefixes.map((prefix) => path(before, {}, { prefix })));
    const slices = [...rib.dropSourceInSlices('p1', (r) => r.source === before, 4)];
    expect(slices.map((s) => s.length)).toEqual([4, 4, 2]);
    expect(slices.flat().map((c) => c.prefix)).toEqual(prefixes);
    expect(rib.count('p1')).toBe(0);
  });

  it('a peer back mid-drop keeps what it sent since (its routes carry a new PeerInfo)', () => {
    const before = peer(1);
    const rib = ribWith(...prefixes.map((prefix) => path(before, {}, { prefix })));
    const slices = rib.dropSourceInSlices('p1', (r) => r.source === before, 4);
    expect(slices.next().value).toHaveLength(4);
    // The session is back: it resends one prefix already dropped, one not yet dropped, and a new one.
    const after = peer(1);
    for (const prefix of [prefixes[0]!, prefixes[7]!, '10.10.0.0/24']) rib.upsert(path(after, {}, { prefix }));
    for (const rest of slices) expect(rest.map((c) => c.prefix)).not.toContain(prefixes[7]);
    expect([prefixes[0], prefixes[7], '10.10.0.0/24'].map((p) => rib.bestOf(p!)?.best.source)).toEqual([after, after, after]);
    expect(prefixes.filter((p) => rib.bestOf(p) !== undefined)).toEqual([prefixes[0], prefixes[7]]);
    expect(rib.count('p1')).toBe(3);
  });
});

describe('Rib: graceful restart stale paths', () => {
  const V6: Prefix = 'fd00:1::/64';

  function restarting(): Rib {
    return ribWith(path(peer(1)), path(peer(1), {}, { prefix: '10.2.0.0/24' }), path(peer(1), {}, { prefix: V6, nextHop: 'fd00::1' }), path(peer(2), { localPref: 50 }));
  }

  it('markStale keeps the paths in use, flagged stale', () => {
    const rib = restarting();
    rib.markStale('p1');
    expect(rib.bestOf(PREFIX)?.best).toMatchObject({ stale: true, source: { id: 'p1' } });
    expect(rib.bestOf('10.2.0.0/24')?.best.stale).toBe(true);
    expect(rib.bestOf(V6)?.best.stale).toBe(true);
    expect(rib.count('p1')).toBe(3);
    expect(rib.has('p2', PREFIX) && rib.bestOf(PREFIX)?.multipath.map(idOf)).toEqual(['p1']);
  });

  it('sweepStale withdraws only paths not re-sent since, reporting the changes', () => {
    const rib = restarting();
    rib.markStale('p1');
    rib.upsert(path(peer(1), {}, { prefix: '10.2.0.0/24' })); // re-sent: fresh again
    const changes = rib.sweepStale('p1');
    expect(changes.map((c) => [c.prefix, idOf(c.best)])).toEqual([[PREFIX, 'p2'], [V6, undefined]]);
    expect(rib.has('p1', '10.2.0.0/24')).toBe(true);
    expect(rib.bestOf('10.2.0.0/24')?.best.stale).toBeUndefined();
    expect(rib.count('p1')).toBe(1);
  });

  it.each([
    [4, ['10.1.0.0/24', '10.2.0.0/24'], [V6]],
    [6, [V6], ['10.1.0.0/24', '10.2.0.0/24']],
  ] as const)('sweepStale for IPv%i withdraws only that family', (family, swept, kept) => {
    const rib = restarting();
    rib.markStale('p1');
    expect(rib.sweepStale('p1', family).map((c) => c.prefix)).toEqual(swept);
    for (const p of kept) expect(rib.has('p1', p)).toBe(true);
    for (const p of swept) expect(rib.has('p1', p)).toBe(false);
  });

  it('without markStale, sweepStale removes nothing', () => {
    const rib = restarting();
    expect(rib.sweepStale('p1')).toEqual([]);
    expect(rib.count('p1')).toBe(3);
  });

  it('only the restarting peer is marked', () => {
    const rib = restarting();
    rib.markStale('p1');
    rib.sweepStale('p1');
    expect(rib.has('p2', PREFIX)).toBe(true);
    expect(rib.sweepStale('p2')).toEqual([]);
  });
});

describe('Rib: order independence', () => {
  // Peers with distinct addresses so no two paths compare equal; MED in play across two neighbouring ASes.
  const candidate = fc.record({
    n: fc.integer({ min: 1, max: 200 }),
    ebgp: fc.boolean(),
    localPref: fc.constantFrom(undefined, 100, 200),
    asLen: fc.integer({ min: 0, max: 3 }),
    asSet: fc.boolean(),
    origin: fc.constantFrom(Origin.IGP, Origin.EGP, Origin.INCOMPLETE),
    routerId: fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.3'),
    originatorId: fc.constantFrom(undefined, '10.0.0.1', '10.0.0.3'),
    clusterLen: fc.integer({ min: 0, max: 2 }),
    nextHop: fc.constantFrom('192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'),
    med: fc.constantFrom(undefined, 0, 10, 20),
    firstAs: fc.constantFrom(65100, 65200),
  });

  const toPath = (c: typeof candidate extends fc.Arbitrary<infer T> ? T : never): Path => {
    const src = peer(c.n, { ebgp: c.ebgp, routerId: c.routerId });
    const asns = Array.from({ length: c.asLen }, (_, i) => (i === 0 ? c.firstAs : 65000 + i));
    const attrs: PathAttributes = { origin: c.origin, asPath: c.asSet && c.asLen > 0 ? [set(...asns)] : [seq(...asns)] };
    if (c.localPref !== undefined) attrs.localPref = c.localPref;
    if (c.med !== undefined) attrs.med = c.med;
    if (c.originatorId !== undefined) attrs.originatorId = c.originatorId;
    if (c.clusterLen) attrs.clusterList = Array.from({ length: c.clusterLen }, (_, i) => `1.1.1.${i}`);
    return { prefix: PREFIX, attrs, nextHop: c.nextHop, source: src };
  };

  const scenario = fc
    .record({ peers: fc.uniqueArray(candidate, { minLength: 1, maxLength: 8, selector: (c) => c.n }), withLocal: fc.boolean() })
    .map(({ peers, withLocal }) => [...peers.map(toPath), ...(withLocal ? [path(LOCAL, { localPref: 150 })] : [])])
    .chain((paths) => fc.tuple(fc.constant(paths), fc.shuffledSubarray(paths, { minLength: paths.length, maxLength: paths.length })));

  it('best path and multipath do not depend on the order paths were added', () => {
    fc.assert(
      fc.property(scenario, ([inOrder, shuffled]) => {
        const a = ribWith(...inOrder).bestOf(PREFIX)!;
        const b = ribWith(...shuffled).bestOf(PREFIX)!;
        expect(idOf(b.best)).toBe(idOf(a.best));
        expect(b.multipath.map(idOf)).toEqual(a.multipath.map(idOf));
      }),
      { numRuns: 500 },
    );
  });

  // A (AS 65100, MED 0, rid .3) beats C (AS 65100, MED 10, rid .1) on MED, B (AS 65200, rid .2) beats
  // A on router id, and C beats B on router id: pairwise "better" is not transitive. RFC 4271
  // §9.1.2.2 (c) first removes C (worse MED than A from the same AS), then B beats A in every order.
  it('with MED in play, the best path is still the same in every insertion order (RFC 4271 §9.1.2.2)', () => {
    const a = path(peer(3), { asPath: [seq(65100)], med: 0 });
    const b = path(peer(2), { asPath: [seq(65200)] });
    const c = path(peer(1), { asPath: [seq(65100)], med: 10 });
    const orders = [[a, b, c], [a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]];
    expect(orders.map((o) => idOf(ribWith(...o).bestOf(PREFIX)?.best))).toEqual(['p2', 'p2', 'p2', 'p2', 'p2', 'p2']);
  });
});

describe('Rib: one route shared by the prefixes of an UPDATE', () => {
  const route = (source: PeerInfo, attrs: PathAttributes = {}): Route => ({ nextHop: source.address, source, attrs: { origin: Origin.IGP, asPath: [seq(source.asn)], ...attrs } });
  const prefixes = ['10.1.0.0/24', '10.2.0.0/24', '10.3.0.0/24'];

  it('each prefix gets its own best and change, and a later candidate for one leaves the others alone', () => {
    const rib = new Rib();
    const shared = route(peer(1));
    expect(prefixes.map((p) => bare(rib.announce(p, shared)))).toEqual(prefixes.map((prefix) => ({ prefix, best: shared, multipath: [shared], nextHops: [shared.nextHop] })));
    const better = route(peer(2), { localPref: 200 });
    expect(bare(rib.announce('10.2.0.0/24', better))).toEqual({ prefix: '10.2.0.0/24', best: better, multipath: [better], nextHops: [better.nextHop] });
    expect(prefixes.map((p) => idOf(rib.bestOf(p)?.best))).toEqual(['p1', 'p2', 'p1']);
    expect(rib.bestOf('10.1.0.0/24')?.multipath).toEqual([shared]);
    expect(rib.count('p1')).toBe(3);
    expect(bare(rib.withdraw('p2', '10.2.0.0/24'))).toEqual({ prefix: '10.2.0.0/24', best: shared, multipath: [shared], nextHops: [shared.nextHop] });
  });

  it('the changes of one UPDATE share one next-hop list, and a withdrawn table shares one empty one (one object per prefix to the kernel side)', () => {
    const rib = new Rib();
    const shared = route(peer(1));
    const announced = prefixes.map((p) => rib.announce(p, shared)!);
    expect(new Set(announced.map((c) => c.nextHops)).size).toBe(1);
    const withdrawn = prefixes.map((p) => rib.withdraw('p1', p)!);
    expect(withdrawn.every((c) => c.nextHops.length === 0 && c.nextHops === withdrawn[0]!.nextHops && Object.isFrozen(c.nextHops))).toBe(true);
  });

  it('graceful restart: a shared route goes stale for all its prefixes; those re-sent are fresh', () => {
    const rib = new Rib();
    const shared = route(peer(1));
    for (const p of prefixes) rib.announce(p, shared);
    rib.markStale('p1');
    rib.announce('10.3.0.0/24', route(peer(1)));
    expect(rib.sweepStale('p1').map((c) => c.prefix)).toEqual(['10.1.0.0/24', '10.2.0.0/24']);
    expect(rib.count('p1')).toBe(1);
  });
});

describe('Rib: NEXT_HOP resolvability (RFC 4271 §9.1.2.1)', () => {
  const unreachable = new Set<string>();
  const eligible = (r: Route): boolean => !unreachable.has(r.nextHop);
  const ibgp = peer(1, { ebgp: false, asn: 64512 });

  it('an iBGP path with an unreachable next hop does not beat a valid eBGP path, however preferred', () => {
    unreachable.clear();
    unreachable.add('198.18.9.9');
    const rib = new Rib(8, eligible);
    rib.upsert(path(ibgp, { localPref: 500 }, { nextHop: '198.18.9.9' }));
    rib.upsert(path(peer(2)));
    expect(idOf(rib.bestOf(PREFIX)?.best)).toBe('p2');
    expect(rib.count('p1')).toBe(1); // still held in its Adj-RIB-In
  });

  it('a prefix whose only path is unresolvable has no best route, and gets one when the next hop becomes reachable', () => {
    unreachable.clear();
    unreachable.add('192.0.2.1');
    const rib = new Rib(8, eligible);
    expect(rib.upsert(path(peer(1)))).toBeUndefined();
    expect(rib.bestOf(PREFIX)).toBeUndefined();
    expect([...rib.bestPaths()]).toEqual([]);
    unreachable.clear();
    const changes = rib.revalidate(new Set(['192.0.2.1']));
    expect(changes.map((c) => [c.prefix, idOf(c.best)])).toEqual([[PREFIX, 'p1']]);
    unreachable.add('192.0.2.1');
    expect(rib.revalidate(new Set(['192.0.2.1'])).map(bare)).toEqual([{ prefix: PREFIX, best: undefined, multipath: [], nextHops: [] }]);
    expect(rib.revalidate(new Set(['192.0.2.77']))).toEqual([]); // no route uses it
  });

  it('an ECMP group drops only the unreachable member', () => {
    unreachable.clear();
    const rib = new Rib(8, eligible);
    const a = peer(1, { asn: 65000 });
    const b = peer(2, { asn: 65000 });
    rib.upsert(path(a, { asPath: [seq(65000)] }));
    rib.upsert(path(b, { asPath: [seq(65000)] }));
    expect(multipathIds(rib)).toEqual(['p1', 'p2']);
    unreachable.add('192.0.2.1');
    const [change] = rib.revalidate(new Set(['192.0.2.1']));
    expect(change?.multipath.map(idOf)).toEqual(['p2']);
    expect(multipathIds(rib)).toEqual(['p2']);
  });
});
