// Adj-RIB-In per peer and the Loc-RIB with best path and multipath; pure, changes come out as values.
import type { PathAttributes, Prefix } from '../codec/types.js';

export interface PeerInfo {
  id: string;
  address: string;
  asn: number;
  routerId: string;
  ebgp: boolean;
  rrClient: boolean;
}

export const LOCAL = 'local';

/**
 * A route as one source gave it, for any number of prefixes: all the prefixes of one UPDATE share a
 * single Route (its attributes were parsed once), so holding a full table costs a table entry per
 * prefix rather than an object per prefix.
 */
export interface Route {
  attrs: PathAttributes;
  nextHop: string;
  /** The peer it came from, or LOCAL for our own prefixes. */
  source: PeerInfo | typeof LOCAL;
  /** Graceful restart: kept from before the peer restarted, until it sends the route again. */
  stale?: boolean;
}

/** A route for one prefix (one source's candidate for it, as tests and our own prefixes give them). */
export interface Path extends Route {
  prefix: Prefix;
}

/** A prefix's best route and multipath as the decision process left them. */
export interface Selection {
  best: Route;
  multipath: Route[];
}

/**
 * A change of a prefix's selection; no best when the prefix is gone. It is also the change the
 * agent installs (the speaker's RouteChange): `nextHops` are the multipath's, none when gone or our
 * own, shared by the changes of one UPDATE (read them, never modify them). One object per prefix
 * from the RIB to the kernel side, not one per layer.
 */
export interface BestChange {
  prefix: Prefix;
  best?: Route;
  multipath: Route[];
  nextHops: string[];
  /** The prefix's slot (RibSlots): the record a consumer sharing the RIB's table reaches it by. */
  slot?: RibSlot;
}

/**
 * A BestChange as the RIB makes them, one per prefix changed: made by a class, not an object
 * literal, because V8 keeps an allocation site per literal and pretenures it for good (allocates
 * its objects in the old generation from then on) when one scavenge finds most of its first
 * hundred objects alive. With the agent's 1 MB young generation a scavenge comes about every ten
 * UPDATEs, so one coming while the first UPDATE to use a site is handled did that: measured through
 * the whole agent (a sampling heap profile of a withdrawal of 100,000 routes), every change of the
 * withdrawal went to the old generation, 5-6 MB of garbage that only a full collection takes back.
 * Objects made by `new` have no allocation site; the same loop in a micro-benchmark promoted
 * 0.2-1.5 MB instead of 76-100 MB and ran 3.5x faster.
 */
class Change implements BestChange {
  /**
   * One change that lives for good, so the hidden class (V8's map) of changes does too. V8 reaches
   * the map of a constructor's objects through transitions it holds weakly, so once every object of
   * the map is dead a full collection frees the map; under --optimize-for-size every full
   * collection is a memory-reducing one, which does not keep unused maps for a few collections as
   * the others do. Optimised code that embeds a freed map is thrown away ("weak objects" in
   * --trace-deopt) and compiled again. Changes live from one UPDATE to the route programmer, so at
   * every full collection between UPDATEs none was alive: through a load, withdrawal and reload of
   * 100,000 routes, optimised code was thrown away so 21 times (advertise, select, learn,
   * onBestRoutes...), and not once with one object of each such class kept. The other classes of
   * short-lived objects on that path (the speaker's ExportCache and ChangeList) keep one the same
   * way; bgp/speaker/optimised-code.test.ts checks it.
   */
  static readonly shapeKeeper = new Change('0.0.0.0/0', undefined, [], [], undefined);

  constructor(
    readonly prefix: Prefix,
    readonly best: Route | undefined,
    readonly multipath: Route[],
    readonly nextHops: string[],
    readonly slot: RibSlot | undefined,
  ) {}
}

/** No next hops (withdrawn, or our own): one frozen array for all of them, a withdrawn table makes no garbage of it. */
export const NO_NEXT_HOPS = Object.freeze([]) as unknown as string[];

/**
 * The next hops of a selection, as BestChange carries them. The prefixes of one UPDATE come one
 * after another with the same lone route and share the array made for the first of them.
 */
export class NextHopLists {
  private lastRoute?: Route;
  private lastHops: string[] = NO_NEXT_HOPS;

  of(best: Route | undefined, multipath: Route[]): string[] {
    if (!best || best.source === LOCAL) return NO_NEXT_HOPS;
    if (multipath.length === 1 && multipath[0] === this.lastRoute) return this.lastHops;
    // The RIB keeps one route per next hop in a multipath: no de-duplication here.
    const hops = multipath.map((p) => p.nextHop);
    if (multipath.length === 1) {
      this.lastRoute = multipath[0];
      this.lastHops = hops;
    }
    return hops;
  }

  /** The change reporting where `prefix` stands now (its selection, or none). */
  change(prefix: Prefix, selection: Selection | undefined): BestChange {
    if (!selection) return new Change(prefix, undefined, NO_ROUTES, NO_NEXT_HOPS, undefined);
    return new Change(prefix, selection.best, selection.multipath, this.of(selection.best, selection.multipath), undefined);
  }
}

const DEFAULT_LOCAL_PREF = 100;

function ipNumber(address: string): bigint {
  if (!address.includes(':')) return BigInt(address.split('.').reduce((x, o) => x * 256 + Number(o), 0));
  const [h, t = ''] = address.split('::');
  const parts = (s: string): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const head = parts(h!);
  const tail = parts(t);
  const groups = address.includes('::') ? [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail] : head;
  return groups.reduce((x, g) => (x << 16n) | BigInt(g), 0n);
}

export function asPathLength(attrs: PathAttributes): number {
  return (attrs.asPath ?? []).reduce((n, s) => n + (s.type === 1 ? 1 : s.type === 2 ? s.asns.length : 0), 0);
}

function neighbourAs(p: Route): number | undefined {
  const first = p.attrs.asPath?.find((s) => s.type === 2 && s.asns.length);
  return first?.asns[0];
}

const isLocal = (p: Route): boolean => p.source === LOCAL;
const localPref = (p: Route): number => p.attrs.localPref ?? DEFAULT_LOCAL_PREF;

/**
 * Decision steps up to (and including) eBGP over iBGP: the paths that tie here may share traffic
 * (multipath). Negative: a is better.
 */
function compareForMultipath(a: Route, b: Route): number {
  if (localPref(a) !== localPref(b)) return localPref(b) - localPref(a);
  if (isLocal(a) !== isLocal(b)) return isLocal(a) ? -1 : 1;
  const la = asPathLength(a.attrs);
  const lb = asPathLength(b.attrs);
  if (la !== lb) return la - lb;
  const oa = a.attrs.origin ?? 2;
  const ob = b.attrs.origin ?? 2;
  if (oa !== ob) return oa - ob;
  if (neighbourAs(a) === neighbourAs(b)) {
    const ma = a.attrs.med ?? 0;
    const mb = b.attrs.med ?? 0;
    if (ma !== mb) return ma - mb;
  }
  const ea = a.source !== LOCAL && a.source.ebgp;
  const eb = b.source !== LOCAL && b.source.ebgp;
  if (ea !== eb) return ea ? -1 : 1;
  return 0;
}

/** The full decision process (RFC 4271 §9.1.2.2, RFC 4456 §9). Negative: a is better. */
export function comparePaths(a: Route, b: Route): number {
  const c = compareForMultipath(a, b);
  if (c !== 0) return c;
  if (a.source === LOCAL || b.source === LOCAL) return 0;
  const ida = ipNumber(a.attrs.originatorId ?? a.source.routerId);
  const idb = ipNumber(b.attrs.originatorId ?? b.source.routerId);
  if (ida !== idb) return ida < idb ? -1 : 1;
  const ca = a.attrs.clusterList?.length ?? 0;
  const cb = b.attrs.clusterList?.length ?? 0;
  if (ca !== cb) return ca - cb;
  const pa = ipNumber(a.source.address);
  const pb = ipNumber(b.source.address);
  return pa === pb ? 0 : pa < pb ? -1 : 1;
}

/** Keeps the paths with the lowest key; the same array when all of them tie (the usual case). */
function keepLowest<R extends Route>(paths: R[], key: (p: R) => number): R[] {
  let min = Infinity;
  let ties = 0;
  for (const p of paths) {
    const k = key(p);
    if (k < min) {
      min = k;
      ties = 1;
    } else if (k === min) ties++;
  }
  return ties === paths.length ? paths : paths.filter((p) => key(p) === min);
}

/**
 * The decision process as RFC 4271 §9.1.2.2 states it: successive eliminations over the whole set.
 * Pairwise sorting is not enough because MED only compares paths from the same neighbouring AS, which
 * makes "better than" intransitive (A beats C on MED, B beats A, C beats B) and the sort's result
 * order-dependent. `tied` are the survivors up to eBGP over iBGP: the multipath candidates.
 */
export function decide<R extends Route>(paths: R[]): { best: R; tied: R[] } {
  // A lone candidate survives every elimination: the usual case for a full table from one peer.
  if (paths.length === 1) return { best: paths[0]!, tied: paths };
  let s = keepLowest(paths, (p) => -localPref(p));
  s = keepLowest(s, (p) => (isLocal(p) ? 0 : 1));
  s = keepLowest(s, (p) => asPathLength(p.attrs));
  s = keepLowest(s, (p) => p.attrs.origin ?? 2);
  const lowestMed = new Map<number | undefined, number>();
  for (const p of s) {
    const as = neighbourAs(p);
    lowestMed.set(as, Math.min(lowestMed.get(as) ?? Infinity, p.attrs.med ?? 0));
  }
  s = s.filter((p) => (p.attrs.med ?? 0) === lowestMed.get(neighbourAs(p)));
  s = keepLowest(s, (p) => (p.source !== LOCAL && p.source.ebgp ? 0 : 1));
  const tied = [...s].sort(comparePaths);
  return { best: tied[0]!, tied };
}

/** Whether tied[i] carries traffic: learned, not ours, and the first tied route with its next hop. */
function inMultipath(tied: Route[], i: number): boolean {
  const p = tied[i]!;
  if (p.source === LOCAL) return false;
  for (let j = 0; j < i; j++) if (tied[j]!.source !== LOCAL && tied[j]!.nextHop === p.nextHop) return false;
  return true;
}

/**
 * The tied routes that carry traffic, at most `maxPaths`. When that is all of `tied` (nearly always:
 * one route), `tied` itself is the answer; the RIB never changes an array in place, so sharing is safe.
 */
function multipathOf(tied: Route[], maxPaths: number): Route[] {
  let all = tied.length <= maxPaths;
  for (let i = 0; all && i < tied.length; i++) all = inMultipath(tied, i);
  if (all) return tied;
  const out: Route[] = [];
  for (let i = 0; i < tied.length && out.length < maxPaths; i++) if (inMultipath(tied, i)) out.push(tied[i]!);
  return out;
}

function sameRoutes(a: Route[], b: Route[]): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/** Whether `multipath` is the one held (`other`, or `[best]` when none is stored), without making that list per prefix. */
function sameMultipath(other: Route[] | undefined, best: Route, multipath: Route[]): boolean {
  return other ? sameRoutes(other, multipath) : multipath.length === 1 && multipath[0] === best;
}

const familyOfPrefix = (prefix: Prefix): 4 | 6 => (prefix.includes(':') ? 6 : 4);

const sourceIdOf = (p: Route): string => (p.source === LOCAL ? LOCAL : p.source.id);

/**
 * One prefix's candidate routes (at most one per source: the Adj-RIBs-In after policy, and ours),
 * ranked: the best first, then the rest of the multipath candidates, then the others. A prefix with
 * a single candidate, as nearly every prefix of a full table from one peer, holds the route itself:
 * an array per prefix would cost more memory than the shared route does.
 */
type Candidates = Route | Route[];

/** Shared and frozen (a full table withdrawn is a million of them): never pushed to. */
const NO_ROUTES = Object.freeze([]) as unknown as Route[];
const candidateList = (c: Candidates): Route[] => (Array.isArray(c) ? c : [c]);
const bestOfCandidates = (c: Candidates): Route => (Array.isArray(c) ? c[0]! : c);

/**
 * Where the RIB keeps one prefix's candidates. The agent hands the RIB the route programmer's table
 * (routes/reconciler.ts), so a prefix has one record and one map entry from the wire to the kernel:
 * a withdrawal looks its prefix up once, and the kernel side reaches the record through the change
 * (BestChange.slot) instead of looking the prefix up in a table of its own.
 */
export interface RibSlot {
  readonly prefix: Prefix;
  /** The RIB's alone: nobody else reads or writes it. */
  candidates: unknown;
}

export interface RibSlots {
  get(prefix: Prefix): RibSlot | undefined;
  /** A slot for a prefix that has none, added. */
  add(prefix: Prefix): RibSlot;
  /**
   * Its candidates are gone: the store drops the slot unless the store's other user still needs it,
   * at once or later (the route programmer's keeps it idle a while: get() may still find it, without
   * candidates, and the RIB takes it up again as it is).
   */
  release(slot: RibSlot): void;
  /** Every slot, some without candidates (skipped); releasing the current one while iterating is safe. */
  values(): IterableIterator<RibSlot>;
}

/** The RIB's own slots, when it shares no table (tests, tools). */
class OwnSlots implements RibSlots {
  private readonly map = new Map<Prefix, RibSlot>();
  get(prefix: Prefix): RibSlot | undefined {
    return this.map.get(prefix);
  }
  add(prefix: Prefix): RibSlot {
    const slot: RibSlot = { prefix, candidates: undefined };
    this.map.set(prefix, slot);
    return slot;
  }
  release(slot: RibSlot): void {
    this.map.delete(slot.prefix);
  }
  values(): IterableIterator<RibSlot> {
    return this.map.values();
  }
}

const candidatesOf = (slot: RibSlot): Candidates | undefined => slot.candidates as Candidates | undefined;

/**
 * Adj-RIBs-In and Loc-RIB in one table; announce, upsert and withdraw return the best-route change,
 * if any. Arrays held are never changed in place, so they can be shared.
 *
 * `eligible` says whether a route may be selected at all: RFC 4271 §9.1.2.1, a route whose NEXT_HOP
 * cannot be resolved is kept in its Adj-RIB-In but takes no part in the decision (nor in ECMP).
 * When it changes, `revalidate` re-runs the decision for the prefixes using the next hops concerned.
 */
export class Rib {
  /** Prefixes with candidates but none eligible: no best route. */
  private readonly unresolved = new Set<Prefix>();
  /**
   * The multipath of the few prefixes where it is not just the best route: ECMP, or our own best
   * (which is never in a multipath). For every other prefix it is `[best]`, so not stored.
   */
  private readonly otherMultipath = new Map<Prefix, Route[]>();
  /** source id → how many prefixes it has a route for, and how many of them IPv6 (max-prefix checks, snapshots); updated in place. */
  private readonly counts = new Map<string, { n: number; v6: number }>();

  private lastAlone?: Route[];
  /** The next hops of the changes reported (shared along an UPDATE's prefixes). */
  readonly nextHops = new NextHopLists();

  constructor(
    private readonly maxPaths = 8,
    private readonly eligible?: (route: Route) => boolean,
    private readonly slots: RibSlots = new OwnSlots(),
  ) {}

  /** `route` becomes its source's candidate for `prefix`, replacing the source's previous one. */
  announce(prefix: Prefix, route: Route): BestChange | undefined {
    const id = sourceIdOf(route);
    const slot = this.slots.get(prefix);
    const held = slot && candidatesOf(slot);
    if (held === undefined) {
      this.addCount(id, 1, prefix);
      return this.select(slot ?? this.slots.add(prefix), held, this.aloneList(route));
    }
    const routes = candidateList(held);
    const at = routes.findIndex((p) => sourceIdOf(p) === id);
    if (at < 0) this.addCount(id, 1, prefix);
    return this.select(slot!, held, at < 0 ? [...routes, route] : routes.map((p, i) => (i === at ? route : p)));
  }

  /**
   * `[route]`, as the candidate list of a prefix new to the table: the prefixes of one UPDATE come
   * one after another with the same route, and share this one list (and multipath) rather than
   * making one each. Safe because lists are never changed in place.
   */
  private aloneList(route: Route): Route[] {
    if (this.lastAlone?.[0] !== route) this.lastAlone = [route];
    return this.lastAlone;
  }

  upsert(path: Path): BestChange | undefined {
    return this.announce(path.prefix, path);
  }

  withdraw(sourceId: string, prefix: Prefix, which?: (route: Route) => boolean): BestChange | undefined {
    const slot = this.slots.get(prefix);
    return slot && this.withdrawFrom(slot, sourceId, which);
  }

  private withdrawFrom(slot: RibSlot, sourceId: string, which?: (route: Route) => boolean): BestChange | undefined {
    const held = candidatesOf(slot);
    if (held === undefined) return undefined;
    if (!Array.isArray(held)) {
      // The common case, one path and it goes (a full table withdrawn): no lists made and dropped per prefix.
      if (sourceIdOf(held) !== sourceId || (which !== undefined && !which(held))) return undefined;
      this.addCount(sourceId, -1, slot.prefix);
      return this.select(slot, held, NO_ROUTES);
    }
    const routes = held;
    const at = routes.findIndex((p) => sourceIdOf(p) === sourceId && (which === undefined || which(p)));
    if (at < 0) return undefined;
    this.addCount(sourceId, -1, slot.prefix);
    return this.select(slot, held, routes.filter((_, i) => i !== at));
  }

  /**
   * Withdraws everything the source gave (of one family, when given). Walks the whole table:
   * dropping a peer is rare, and a per-source index would cost memory per prefix.
   */
  dropSource(sourceId: string, family?: 4 | 6): BestChange[] {
    const changes: BestChange[] = [];
    if (!this.counts.has(sourceId)) return changes;
    for (const slot of this.slots.values()) {
      if (family && familyOfPrefix(slot.prefix) !== family) continue;
      const c = this.withdrawFrom(slot, sourceId);
      if (c) changes.push(c);
    }
    return changes;
  }

  /**
   * dropSource a slice at a time, for a caller that yields to the event loop between slices: each
   * step visits at most `slice` prefixes and gives their changes. Only routes `which` accepts go, so
   * routes the source sends while the drop is under way (a peer back at once) are left alone.
   * Prefixes added meanwhile are visited too (Map iteration sees them) and pass `which` untouched.
   */
  *dropSourceInSlices(sourceId: string, which: (route: Route) => boolean, slice: number): Generator<BestChange[], void, void> {
    let changes: BestChange[] = [];
    let visited = 0;
    for (const slot of this.slots.values()) {
      if (!this.counts.has(sourceId)) break;
      const c = this.withdrawFrom(slot, sourceId, which);
      if (c) changes.push(c);
      if (++visited % slice === 0) {
        yield changes;
        changes = [];
      }
    }
    yield changes;
  }

  /**
   * Graceful restart: the peer's routes are kept but marked stale until it resends them. A route
   * shared by many prefixes is marked once for all: they all came from this peer.
   */
  markStale(sourceId: string, families?: ReadonlySet<4 | 6>): void {
    if (!this.counts.has(sourceId)) return;
    for (const slot of this.slots.values()) {
      const held = candidatesOf(slot);
      if (held === undefined || (families && !families.has(familyOfPrefix(slot.prefix)))) continue;
      for (const p of candidateList(held)) if (sourceIdOf(p) === sourceId) p.stale = true;
    }
  }

  sweepStale(sourceId: string, family?: 4 | 6): BestChange[] {
    const changes: BestChange[] = [];
    if (!this.counts.has(sourceId)) return changes;
    for (const slot of this.slots.values()) {
      const held = candidatesOf(slot);
      if (held === undefined || (family && familyOfPrefix(slot.prefix) !== family)) continue;
      if (candidateList(held).some((p) => p.stale && sourceIdOf(p) === sourceId)) {
        const c = this.withdrawFrom(slot, sourceId);
        if (c) changes.push(c);
      }
    }
    return changes;
  }

  /** Prefixes the source has a route for: all of them, or those of one family. */
  count(sourceId: string, family?: 4 | 6): number {
    const counter = this.counts.get(sourceId);
    if (!counter) return 0;
    return family === undefined ? counter.n : family === 6 ? counter.v6 : counter.n - counter.v6;
  }

  has(sourceId: string, prefix: Prefix): boolean {
    const slot = this.slots.get(prefix);
    const held = slot && candidatesOf(slot);
    return held !== undefined && candidateList(held).some((p) => sourceIdOf(p) === sourceId);
  }

  bestOf(prefix: Prefix): Selection | undefined {
    const slot = this.slots.get(prefix);
    const held = slot && candidatesOf(slot);
    return held && !this.unresolved.has(prefix) ? this.selection(prefix, held) : undefined;
  }

  *bestPaths(): IterableIterator<[Prefix, Selection]> {
    const skip = this.unresolved.size > 0;
    for (const slot of this.slots.values()) {
      const held = candidatesOf(slot);
      if (held !== undefined && (!skip || !this.unresolved.has(slot.prefix))) yield [slot.prefix, this.selection(slot.prefix, held)];
    }
  }

  /**
   * Runs the decision again for every prefix with a candidate via one of `nextHops` (their
   * eligibility changed), or for every prefix when none are given.
   */
  revalidate(nextHops?: ReadonlySet<string>): BestChange[] {
    const changes: BestChange[] = [];
    if (nextHops?.size === 0) return changes;
    for (const slot of this.slots.values()) {
      const held = candidatesOf(slot);
      if (held === undefined) continue;
      const routes = candidateList(held);
      if (nextHops && !routes.some((p) => nextHops.has(p.nextHop))) continue;
      const c = this.select(slot, held, routes);
      if (c) changes.push(c);
    }
    return changes;
  }

  /**
   * Forgets every candidate, reporting nothing: the speaker stops, and a table shared with the route
   * programmer outlives it (the next speaker starts from none).
   */
  clear(): void {
    for (const slot of this.slots.values()) {
      if (slot.candidates === undefined) continue;
      slot.candidates = undefined;
      this.slots.release(slot);
    }
    this.unresolved.clear();
    this.otherMultipath.clear();
    this.counts.clear();
  }

  private selection(prefix: Prefix, held: Candidates): Selection {
    const best = bestOfCandidates(held);
    return { best, multipath: this.otherMultipath.get(prefix) ?? [best] };
  }

  private addCount(sourceId: string, delta: number, prefix: Prefix): void {
    const v6 = familyOfPrefix(prefix) === 6 ? delta : 0;
    const counter = this.counts.get(sourceId);
    if (!counter) this.counts.set(sourceId, { n: delta, v6 });
    else {
      counter.v6 += v6;
      if ((counter.n += delta) === 0) this.counts.delete(sourceId);
    }
  }

  /** Runs the decision process over the prefix's new candidates, stores them ranked, reports a change. */
  private select(slot: RibSlot, held: Candidates | undefined, routes: Route[]): BestChange | undefined {
    const prefix = slot.prefix;
    const hadBest = held !== undefined && (this.unresolved.size === 0 || !this.unresolved.has(prefix));
    const usable = this.eligible === undefined || routes.every(this.eligible) ? routes : routes.filter(this.eligible);
    if (usable.length === 0) {
      if (routes.length === 0) {
        slot.candidates = undefined;
        this.slots.release(slot);
        if (this.unresolved.size > 0) this.unresolved.delete(prefix);
      } else {
        slot.candidates = routes.length === 1 ? routes[0]! : routes;
        this.unresolved.add(prefix);
      }
      if (this.otherMultipath.size > 0) this.otherMultipath.delete(prefix);
      return hadBest ? new Change(prefix, undefined, NO_ROUTES, NO_NEXT_HOPS, slot) : undefined;
    }
    if (this.unresolved.size > 0) this.unresolved.delete(prefix);
    // A lone candidate (nearly every prefix of a full table) needs no decision, nor its result object.
    const { best, tied } = usable.length === 1 ? { best: usable[0]!, tied: usable } : decide(usable);
    const multipath = multipathOf(tied, this.maxPaths);
    const unchanged = hadBest && bestOfCandidates(held!) === best && sameMultipath(this.otherMultipath.get(prefix), best, multipath);
    const ranked = tied.length === routes.length ? tied : [...tied, ...routes.filter((p) => !tied.includes(p))];
    slot.candidates = ranked.length === 1 ? ranked[0]! : ranked;
    if (multipath.length !== 1 || multipath[0] !== best) this.otherMultipath.set(prefix, multipath);
    else if (this.otherMultipath.size > 0) this.otherMultipath.delete(prefix);
    return unchanged ? undefined : new Change(prefix, best, multipath, this.nextHops.of(best, multipath), slot);
  }
}
