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

export interface Path {
  prefix: Prefix;
  attrs: PathAttributes;
  nextHop: string;
  /** The peer it came from, or LOCAL for our own prefixes. */
  source: PeerInfo | typeof LOCAL;
  stale?: boolean;
}

export interface BestChange {
  prefix: Prefix;
  best?: Path;
  multipath: Path[];
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

function neighbourAs(p: Path): number | undefined {
  const first = p.attrs.asPath?.find((s) => s.type === 2 && s.asns.length);
  return first?.asns[0];
}

const isLocal = (p: Path): boolean => p.source === LOCAL;
const localPref = (p: Path): number => p.attrs.localPref ?? DEFAULT_LOCAL_PREF;

/**
 * Decision steps up to (and including) eBGP over iBGP: the paths that tie here may share traffic
 * (multipath). Negative: a is better.
 */
function compareForMultipath(a: Path, b: Path): number {
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
export function comparePaths(a: Path, b: Path): number {
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

/** Keeps the paths with the lowest key. */
function keepLowest(paths: Path[], key: (p: Path) => number): Path[] {
  let min = Infinity;
  for (const p of paths) min = Math.min(min, key(p));
  return paths.filter((p) => key(p) === min);
}

/**
 * The decision process as RFC 4271 §9.1.2.2 states it: successive eliminations over the whole set.
 * Pairwise sorting is not enough because MED only compares paths from the same neighbouring AS, which
 * makes "better than" intransitive (A beats C on MED, B beats A, C beats B) and the sort's result
 * order-dependent. `tied` are the survivors up to eBGP over iBGP: the multipath candidates.
 */
export function decide(paths: Path[]): { best: Path; tied: Path[] } {
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

function samePaths(a: Path[], b: Path[]): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

export class Rib {
  /** prefix → source id → path: the candidates for each prefix (Adj-RIBs-In after policy, and ours). */
  private readonly candidates = new Map<Prefix, Map<string, Path>>();
  private readonly best = new Map<Prefix, { best: Path; multipath: Path[] }>();
  /** source id → its prefixes, for counting and dropping a peer. */
  private readonly bySource = new Map<string, Set<Prefix>>();

  constructor(private readonly maxPaths = 8) {}

  private static sourceId(p: Path): string {
    return p.source === LOCAL ? LOCAL : p.source.id;
  }

  upsert(path: Path): BestChange | undefined {
    const id = Rib.sourceId(path);
    let forPrefix = this.candidates.get(path.prefix);
    if (!forPrefix) this.candidates.set(path.prefix, (forPrefix = new Map()));
    forPrefix.set(id, path);
    let prefixes = this.bySource.get(id);
    if (!prefixes) this.bySource.set(id, (prefixes = new Set()));
    prefixes.add(path.prefix);
    return this.select(path.prefix);
  }

  withdraw(sourceId: string, prefix: Prefix): BestChange | undefined {
    const forPrefix = this.candidates.get(prefix);
    if (!forPrefix?.delete(sourceId)) return undefined;
    if (forPrefix.size === 0) this.candidates.delete(prefix);
    this.bySource.get(sourceId)?.delete(prefix);
    return this.select(prefix);
  }

  dropSource(sourceId: string): BestChange[] {
    const changes: BestChange[] = [];
    for (const prefix of [...(this.bySource.get(sourceId) ?? [])]) {
      const c = this.withdraw(sourceId, prefix);
      if (c) changes.push(c);
    }
    this.bySource.delete(sourceId);
    return changes;
  }

  /** Graceful restart: the peer's paths are kept but marked stale until it resends them. */
  markStale(sourceId: string): void {
    for (const prefix of this.bySource.get(sourceId) ?? []) {
      const p = this.candidates.get(prefix)?.get(sourceId);
      if (p) p.stale = true;
    }
  }

  sweepStale(sourceId: string, family?: 4 | 6): BestChange[] {
    const changes: BestChange[] = [];
    for (const prefix of [...(this.bySource.get(sourceId) ?? [])]) {
      if (family && (prefix.includes(':') ? 6 : 4) !== family) continue;
      if (this.candidates.get(prefix)?.get(sourceId)?.stale) {
        const c = this.withdraw(sourceId, prefix);
        if (c) changes.push(c);
      }
    }
    return changes;
  }

  count(sourceId: string): number {
    return this.bySource.get(sourceId)?.size ?? 0;
  }

  has(sourceId: string, prefix: Prefix): boolean {
    return this.candidates.get(prefix)?.has(sourceId) ?? false;
  }

  bestOf(prefix: Prefix): { best: Path; multipath: Path[] } | undefined {
    return this.best.get(prefix);
  }

  bestPaths(): IterableIterator<[Prefix, { best: Path; multipath: Path[] }]> {
    return this.best.entries();
  }

  private select(prefix: Prefix): BestChange | undefined {
    const paths = [...(this.candidates.get(prefix)?.values() ?? [])];
    const previous = this.best.get(prefix);
    if (paths.length === 0) {
      if (!previous) return undefined;
      this.best.delete(prefix);
      return { prefix, multipath: [] };
    }
    const { best, tied } = decide(paths);
    const seen = new Set<string>();
    const multipath = tied.filter((p) => {
      if (p.source === LOCAL || seen.has(p.nextHop)) return false;
      seen.add(p.nextHop);
      return true;
    }).slice(0, this.maxPaths);
    if (previous && previous.best === best && samePaths(previous.multipath, multipath)) return undefined;
    this.best.set(prefix, { best, multipath });
    return { prefix, best, multipath };
  }
}
