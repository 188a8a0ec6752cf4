// Keeps the kernel's routes of protocol lightly equal to a desired set, incrementally: a change queues
// its prefix, a pass programs only queued prefixes, in chunks of `ip -batch` lines that run while the
// agent goes on working. The whole kernel table is compared only at start (adopt), after an error and
// on a slow timer: the slow safety net, never the hot path (like BIRD's kernel scan).
import { type KernelRoute, type KernelTarget, type Route, type RouteTarget, type RouteWrite, familyOf, normalisePrefix, normaliseRoute, renderWrite, routeWith, satisfies } from './desired.js';
import { type BatchFailure, Ip } from './ip.js';
import { Fifo } from './fifo.js';
import { PrefixTable } from './prefix-table.js';
import { type NetlinkSocketApi, NetlinkRouteShell } from './netlink.js';

/** What the reconciler needs of `ip`; routes/ip.ts in production, a map in unit tests. */
export interface RouteShell {
  readRoutes(): Promise<KernelRoute[]>;
  /**
   * The same routes a slice at a time, when the shell can hand them over so (routes/netlink.ts, the
   * addon's dump): a comparison then keeps none of them beyond its slice, where a million Routes
   * held at once made the collector pause the agent for 200-300 ms.
   */
  readRouteSlices?(): AsyncIterable<KernelRoute[]>;
  /** Calls may overlap; they reach the kernel in call order. */
  batch(lines: string[]): Promise<BatchFailure[]>;
  /**
   * The same changes as values, for a shell that does not speak `ip` lines (routes/netlink.ts); when
   * present it is used instead of batch(), and failures name changes by 1-based position as lines.
   */
  write?(changes: readonly RouteWrite[]): Promise<BatchFailure[]>;
  /**
   * The netlink port ids of the sockets the shell writes with (the kernel's notifications of our
   * changes carry them: routes/drift-watch.ts). None for `ip`, a process with a port of its own per batch.
   */
  portIds?(): number[];
  close?(): void;
}

export interface ReconcilerOptions {
  /** Run `ip` inside this named namespace (labs, tests); default: our own. */
  netns?: string;
  /** Changes within this window after the first go out together. Default 10 ms. */
  debounceMs?: number;
  /** First retry after refused lines or a failed `ip`; doubles up to a minute. Default 1 s. */
  retryMs?: number;
  /**
   * Lines per chunk: the unit of pipelining (one chunk at the kernel, the next queued behind it)
   * and of the answers we wait for. Default 2048.
   */
  chunkLines?: number;
  /** Full comparison with the kernel this often, repairing drift (someone else's `ip route del`). Default 5 min; 0: never. */
  resyncMs?: number;
  /** How long a record nobody needs stays in the table before a sweep drops it (ms; default 30 s). */
  sweepMs?: number;
  /** Records the table may grow by past twice its size at the last sweep before one runs at once (default SWEEP_SLACK). */
  sweepSlack?: number;
  /** suspectDrift() compares this long after the first suspicion, so a burst costs one comparison. Default 200 ms. */
  driftSettleMs?: number;
  /** At least this long between comparisons suspectDrift() asks for (a script deleting our routes in a loop). Default 5 s. */
  driftIntervalMs?: number;
  /** A comparison suspectDrift() asked for and the pass after it are done: `differed` prefixes were set right, `ms` after the first suspicion. */
  onDriftChecked?(check: { differed: number; ms: number }): void;
  /** At least this many removals through one gateway go as one flush (see FLUSH_MIN, the default). */
  flushMin?: number;
  onError?(err: Error): void;
  /**
   * Loads the native addon (`nativeAddon` of native/native.ts): changes then reach the kernel as
   * rtnetlink messages. Without it, or when it cannot be loaded, through `ip -batch`. Reads are `ip -json` either way.
   */
  netlink?: () => NetlinkSocketApi;
  /** The netlink writer was asked for but could not be had (addon not built or not loadable): changes go through `ip -batch`. */
  onWriterFallback?(err: Error): void;
  /** The netlink shell's dump of our routes failed: this comparison reads them through `ip -json`. */
  onDumpFailed?(err: Error): void;
  /** Replaces `ip` (unit tests). */
  shell?: RouteShell;
}

export class RouteProgrammingError extends Error {
  override name = 'RouteProgrammingError';
  constructor(readonly failures: BatchFailure[]) {
    const first = failures[0];
    super(`${failures.length} route change(s) refused; line ${first?.line} "${first?.command}": ${first?.error}`);
  }
}

export interface ReconcileResult {
  /** Lines the kernel took. */
  applied: number;
  failures: BatchFailure[];
}

/** For metrics and `lightlyctl routes`. */
export interface RouteStats {
  installed: number;
  unicast: number;
  ecmp: number;
  blackhole: number;
  desired: number;
  /** Prefixes waiting for a pass (changed, or refused and waiting for a retry). */
  pending: number;
  batches: number;
  changesApplied: number;
  changesFailed: number;
  /** Full comparisons with the kernel. */
  resyncs: number;
}

const MAX_RETRY_MS = 60_000;
/**
 * A record nobody needs any more stays in the table this long before a sweep drops it: a withdrawn
 * table costs no map delete per prefix while it is withdrawn, and prefixes back within it (a session
 * flap, a peer's restart, a reload) find their record again instead of a new one. Measured at
 * 100,000 routes (docs/concepts.md, the seventh round): the withdrawal's CPU 290-300 -> 260 ms; and,
 * without --optimize-for-size, the agent's peak RSS through withdrawal, reload and flap 124-159 ->
 * 113-120 MB (the reload and the flap made a second table's worth of records while the first was
 * still garbage).
 */
const SWEEP_MS = 30_000;
/**
 * A table grown past twice its size at the last sweep, plus this, while records are idle, is swept
 * at once: prefixes that come and go, each one new (a peer cycling through a range), would otherwise
 * pile up idle records for SWEEP_MS. A withdrawn table and its return grow nothing.
 */
const SWEEP_SLACK = 65_536;
/** Map entries handled between yields to the event loop in a full comparison. */
const RESYNC_SLICE = 20_000;
/**
 * Removing at least this many routes, all of ours through one IPv4 gateway (a peer's full table
 * withdrawn), goes as one `ip route flush proto 201 via GW`: iproute2 sends a flush's deletes
 * without waiting for each answer, 100k in 0.27-0.29 s against 0.74-0.79 s as `del` lines.
 */
const FLUSH_MIN = 4096;

/** A change sent: a flush is a plain RouteWrite, every other change its prefix's PrefixRecord. */
type Line = RouteWrite;

/** PrefixRecord's state: its flags, and above them the comparison that last found its route. */
const LIVE = 1;
const QUEUED = 2;
const AT_KERNEL = 4;
const FLAGS = 7;
const SEEN_SHIFT = 3;
/** The largest comparison number (27 bits above the flags: the state stays a small integer, a V8 Smi); then they start again at 1. */
const LAST_COMPARISON = 0x7ffffff;

/**
 * One prefix, from the first time anyone needs it until a sweep finds nobody does (SWEEP_MS): what
 * we want, what the kernel has of ours (as far as we know), the change at the kernel, and the RIB's
 * candidates when the RIB keeps them here (ribSlots(): bgp/rib's RibSlot). One record and one map
 * entry per prefix from the wire to the kernel: a withdrawn table costs a look-up in the RIB, where
 * two tables cost five map operations per prefix (the largest part of the agent's CPU in a
 * withdrawal); the map delete comes later, in the sweep. While its change is at the kernel the
 * record is also that change (the RouteWrite the writer encodes): route and have stay as sent until
 * settled; a newer change only sets `want` and queues it again.
 */
class PrefixRecord implements RouteWrite {
  /** What the change at the kernel (or the next one) asks for: undefined, a delete. */
  route: RouteTarget | undefined = undefined;
  /**
   * LIVE, QUEUED and AT_KERNEL, and above them the number of the last comparison with the kernel
   * that found a route of ours for the prefix (seenBy): one small integer rather than four fields,
   * 24 bytes less for each prefix of a full table, for the collector to copy and mark too.
   */
  private state = LIVE;
  /** The RIB's, when it keeps its candidates here; never read by the reconciler but to know the record is in use. */
  candidates: unknown = undefined;

  constructor(
    readonly prefix: string,
    /** The kernel's route of ours for the prefix, as far as we know (while a change is out: before it). */
    public have: KernelTarget | undefined,
    /**
     * What we want for the prefix (undefined: no route of ours). Targets, not Routes: the prefixes
     * of one UPDATE share one (a full table held as a record per prefix, not a record and a route).
     */
    public want: RouteTarget | undefined,
  ) {}

  /** In the queue for a look (once at most; a stale slot of a record not queued is passed over). */
  get queued(): boolean {
    return (this.state & QUEUED) !== 0;
  }

  set queued(on: boolean) {
    this.state = on ? this.state | QUEUED : this.state & ~QUEUED;
  }

  /** Its change is at the kernel: sent in a chunk, not yet answered. */
  get atKernel(): boolean {
    return (this.state & AT_KERNEL) !== 0;
  }

  set atKernel(on: boolean) {
    this.state = on ? this.state | AT_KERNEL : this.state & ~AT_KERNEL;
  }

  /** Still the prefix's entry in the table (idle or not: a sweep takes idle ones out). */
  get live(): boolean {
    return (this.state & LIVE) !== 0;
  }

  set live(on: boolean) {
    this.state = on ? this.state | LIVE : this.state & ~LIVE;
  }

  /** Whether comparison number `epoch` (RouteReconciler.comparisons) found a route of ours for the prefix. */
  seenBy(epoch: number): boolean {
    return this.state >>> SEEN_SHIFT === epoch;
  }

  /** `epoch`: 0 (none) to LAST_COMPARISON. */
  markSeenBy(epoch: number): void {
    this.state = (this.state & FLAGS) | (epoch << SEEN_SHIFT);
  }

  /** The change this record asks of the kernel (meaningful while it is at the kernel). */
  get op(): 'add' | 'replace' | 'delete' {
    return this.route === undefined ? 'delete' : this.have === undefined ? 'add' : 'replace';
  }
}

/** What is wanted, by prefix, read from the reconciler's one table (read only). */
class Wanted implements ReadonlyMap<string, RouteTarget> {
  constructor(
    private readonly table: PrefixTable<PrefixRecord>,
    private readonly count: () => number,
  ) {}

  get size(): number {
    return this.count();
  }

  get(prefix: string): RouteTarget | undefined {
    return this.table.get(prefix)?.want;
  }

  has(prefix: string): boolean {
    return this.get(prefix) !== undefined;
  }

  *entries(): MapIterator<[string, RouteTarget]> {
    for (const rec of this.table.values()) if (rec.want) yield [rec.prefix, rec.want];
  }

  *keys(): MapIterator<string> {
    for (const [prefix] of this.entries()) yield prefix;
  }

  *values(): MapIterator<RouteTarget> {
    for (const [, route] of this.entries()) yield route;
  }

  [Symbol.iterator](): MapIterator<[string, RouteTarget]> {
    return this.entries();
  }

  forEach(fn: (route: RouteTarget, prefix: string, map: ReadonlyMap<string, RouteTarget>) => void): void {
    for (const [prefix, route] of this.entries()) fn(route, prefix, this);
  }
}

/** The reconciler's table as the RIB sees it (structurally bgp/rib's RibSlots: routes/ does not import bgp/). */
export interface PrefixSlots {
  get(prefix: string): { readonly prefix: string; candidates: unknown } | undefined;
  add(prefix: string): { readonly prefix: string; candidates: unknown };
  release(slot: { readonly prefix: string; candidates: unknown }): void;
  values(): IterableIterator<{ readonly prefix: string; candidates: unknown }>;
}

export class RouteReconciler {
  /**
   * Every prefix we want, the kernel (as far as we know) has of ours, or the RIB has candidates for:
   * the one full-size table, a record per prefix (PrefixRecord; routes/prefix-table.ts).
   */
  private readonly table = new PrefixTable<PrefixRecord>();
  /** start() adopted the kernel's routes, or setDesired() was called: upsert() and remove() may be. */
  private adopted = false;
  /** Prefixes with a route wanted: wanted().size. */
  private wantedCount = 0;
  private readonly wantedView = new Wanted(this.table, () => this.wantedCount);
  /** Prefixes to look at, in order of change (routes/fifo.ts: an array kept between bursts, not regrown for each). */
  private readonly queue = new Fifo<PrefixRecord>();
  /** Records queued (PrefixRecord.queued): the queue's size counts places passed over as well. */
  private queuedCount = 0;
  /** Refused records not queued (waiting for the retry): with queuedCount, what is pending. */
  private refusedWaiting = 0;
  /** Prefixes the kernel refused; they are queued again on the retry timer. */
  private refused = new Set<PrefixRecord>();
  private resyncWanted = false;
  /**
   * Device routes (no gateway) with proto 201 are the CNI plugin's pod routes unless this
   * reconciler was asked for that prefix as a device route: only those are ours to change or remove.
   */
  private readonly ownedDevices = new Set<string>();
  private readonly shell: RouteShell;
  private readonly normalise = new SharingNormaliser();
  /**
   * Our single-next-hop IPv4 routes by gateway, as the kernel will have them once the lines at `ip`
   * are done: when every one of a gateway's is a queued removal, they go as one flush. Undefined
   * after `ip` failed (unknown until the next comparison with the kernel).
   */
  private viaGateway?: Map<string, number>;
  /**
   * Whether whole-gateway removals go as one flush: only through `ip`, which waits for each `del`'s
   * answer but not for a flush's. Netlink messages are sent without waiting either way, so the
   * bookkeeping for flushes would only cost CPU.
   */
  private readonly flushes: boolean;
  /**
   * Queued removals, roughly (a hint for when to look for a flush; the look itself is exact): kept
   * as one number because it is counted on every removal, the hot path of a withdrawn table.
   */
  private removals = 0;
  /** Changes marked so far, and how many there must be before the queue is scanned for a flush again. */
  private marks = 0;
  private flushScanAt = 0;
  private timer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private resyncTimer?: NodeJS.Timeout;
  private driftTimer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  /** Records released (left in the table, needed by nobody) since the last sweep: whether one is due. */
  private releasedSinceSweep = 0;
  private sweeping = false;
  /** The pending sweep timer is the at-once one (scheduleSweep(0)): later adds leave it be. */
  private sweepAtOnce = false;
  /** The table's size when the last sweep ended. */
  private sweptSize = 0;
  /** When the comparison suspectDrift() asked for last started (performance.now()). */
  private lastDriftCheck = -Infinity;
  /** Since when drift is suspected: set as the comparison is asked for, taken by it, reported after its pass. */
  private driftWanted?: number;
  private driftFound?: { since: number; differed: number };
  private stopped = false;
  private retryDelay: number;
  private running?: Promise<ReconcileResult>;
  private counters = { batches: 0, changesApplied: 0, changesFailed: 0, resyncs: 0 };
  /** Numbers the comparisons with the kernel: a record's seenBy() says whether the current one found the kernel's route for it. */
  private comparisons = 0;
  /**
   * Our routes in the kernel as far as we know (what kernelRoutes() yields), counted as they change:
   * stats() answers every metrics scrape and status call, and walking a million routes for it held
   * the event loop ~0.3 s.
   */
  private tally = { unicast: 0, blackhole: 0, ecmp: 0 };

  constructor(private readonly options: ReconcilerOptions = {}) {
    this.shell = options.shell ?? kernelShell(options);
    this.flushes = !this.shell.write;
    if (this.flushes) this.viaGateway = new Map();
    this.retryDelay = options.retryMs ?? 1000;
  }

  /** Adopts what the kernel already has with our protocol as the desired set: nothing changes until told. */
  async start(): Promise<void> {
    this.resyncWanted = true;
    await this.reconcile();
    const every = this.options.resyncMs ?? 300_000;
    // Not once stopped (meanwhile: the adopt reads a while): nothing would clear it.
    if (every > 0 && !this.resyncTimer && !this.stopped) {
      this.resyncTimer = setInterval(() => {
        this.resyncWanted = true;
        this.kick();
      }, every);
      this.resyncTimer.unref();
    }
  }

  /**
   * The kernel's routes of ours may have been changed behind our back (routes/drift-watch.ts saw
   * someone else's change): a full comparison soon, one for a burst, at most one per driftIntervalMs,
   * and, as every comparison, only once our own changes at the kernel are answered.
   */
  suspectDrift(): void {
    if (this.driftTimer || this.stopped) return;
    const since = performance.now();
    const delay = Math.max(this.options.driftSettleMs ?? 200, this.lastDriftCheck + (this.options.driftIntervalMs ?? 5000) - since);
    this.driftTimer = setTimeout(() => {
      this.driftTimer = undefined;
      this.lastDriftCheck = performance.now();
      this.driftWanted = since;
      this.resyncWanted = true;
      this.kick();
    }, delay);
    this.driftTimer.unref();
  }

  /** The whole desired set at once (tests, tools); invalid routes throw InvalidRouteError before anything changes. */
  setDesired(routes: Iterable<Route>): void {
    const desired = new Map<string, RouteTarget>();
    for (const route of routes) {
      const prefix = this.normalise.prefix(route.prefix);
      desired.set(prefix, this.normalise.target(prefix, route));
    }
    this.adopted = true;
    for (const rec of this.table.values()) if (!desired.has(rec.prefix)) this.setWant(rec, undefined);
    for (const [prefix, target] of desired) {
      if (isDeviceRoute(target)) this.ownedDevices.add(prefix);
      this.setWant(this.table.get(prefix) ?? this.add(prefix), target);
    }
    this.schedule();
  }

  /** Wants `route` for its prefix: upsertFor(route.prefix, route). */
  upsert(route: Route, slot?: unknown): void {
    this.upsertFor(route.prefix, route, slot);
  }

  /**
   * Wants `target` for `prefix`, replacing what we wanted before. Throws InvalidRouteError. A target
   * already in canonical form is kept as given, and may be shared by any number of prefixes (one
   * per UPDATE, not one per prefix): do not modify it afterwards. `slot`: the prefix's record as the
   * RIB's change carried it (ribSlots()), so the prefix is not looked up again.
   */
  upsertFor(prefix: string, target: RouteTarget, slot?: unknown): void {
    this.started();
    const p = this.normalise.prefix(prefix);
    const t = this.normalise.target(p, target);
    const rec = this.recordFor(p, slot) ?? this.add(p);
    if (this.removals > 0 && rec.want === undefined && rec.queued) this.removals--;
    this.setWant(rec, t);
    if (isDeviceRoute(t)) this.ownedDevices.add(p);
    this.schedule();
  }

  /** Wants no route of ours for the prefix. `slot`: as for upsert(). */
  remove(prefix: string, slot?: unknown): void {
    this.started();
    // A withdrawn full table comes here once per prefix: the record handed over, or one look-up
    // (a prefix we hold is canonical already).
    let rec = this.recordFor(prefix, slot);
    // None, or the RIB's record under a prefix text not canonical (IPv6 in upper case): the route is the canonical one's.
    if (rec?.want === undefined) rec = this.table.get(normalisePrefix(prefix));
    if (rec === undefined || rec.want === undefined) return;
    if (this.flushes) this.removals++;
    this.setWant(rec, undefined);
    this.schedule();
  }

  /**
   * The table as the RIB's slot store (bgp/rib's RibSlots): the RIB keeps each prefix's candidates
   * in its record here, and its changes carry the record back to upsert() and remove().
   */
  ribSlots(): PrefixSlots {
    return {
      get: (prefix) => this.table.get(prefix),
      add: (prefix) => this.add(prefix),
      release: (slot) => this.release(slot as PrefixRecord),
      values: () => this.table.values(),
    };
  }

  /** The record `slot` when it is the prefix's own and still in the table; else the table's, if any. */
  private recordFor(prefix: string, slot: unknown): PrefixRecord | undefined {
    if (slot instanceof PrefixRecord && slot.live && slot.prefix === prefix) return slot;
    return this.table.get(prefix);
  }

  /** A record for a prefix new to the table: nothing wanted, nothing in the kernel. */
  private add(prefix: string): PrefixRecord {
    const rec = new PrefixRecord(prefix, undefined, undefined);
    this.table.add(rec);
    if (this.releasedSinceSweep > 0 && this.table.size > 2 * this.sweptSize + (this.options.sweepSlack ?? SWEEP_SLACK)) this.scheduleSweep(0);
    return rec;
  }

  /** We now want `want` for the record's prefix (undefined: nothing): queued for the next pass. */
  private setWant(rec: PrefixRecord, want: RouteTarget | undefined): void {
    const before = rec.want;
    if (before === want) return; // undefined both, or the very route wanted
    if (before === undefined) this.wantedCount++;
    else if (want === undefined) this.wantedCount--;
    rec.want = want;
    this.enqueue(rec);
    this.marks++;
  }

  private enqueue(rec: PrefixRecord): void {
    if (rec.queued) return;
    rec.queued = true;
    this.queuedCount++;
    if (this.refused.size > 0 && this.refused.has(rec)) this.refusedWaiting--;
    this.queue.push(rec);
  }

  /** The record is not queued any more; its place in the queue, if still there, is passed over. */
  private unqueue(rec: PrefixRecord): void {
    if (!rec.queued) return;
    rec.queued = false;
    this.queuedCount--;
    if (this.refused.size > 0 && this.refused.has(rec)) this.refusedWaiting++;
  }

  /** The kernel refused the record's change (or `ip` failed): it waits for the retry, counted as pending. */
  private refuse(rec: PrefixRecord): void {
    if (this.refused.has(rec)) return;
    this.refused.add(rec);
    if (!rec.queued) this.refusedWaiting++;
  }

  /** The record no longer waits for a retry (changed again, released, swept, or made by a flush). */
  private unrefuse(rec: PrefixRecord): void {
    if (this.refused.size > 0 && this.refused.delete(rec) && !rec.queued) this.refusedWaiting--;
  }

  /**
   * Nobody needs the record now: nothing wanted, nothing of ours in the kernel, no change out, no
   * candidates of the RIB's. It stays in the table, idle, until a sweep (SWEEP_MS): whoever needs the
   * prefix again before then takes it up as it is. The queue passes over it (not queued).
   */
  private release(rec: PrefixRecord): void {
    if (!isIdle(rec)) return;
    this.unqueue(rec);
    this.unrefuse(rec);
    // A device route for the prefix is ours no more: one the CNI plugin adds for it (a pod's) is left alone.
    if (this.ownedDevices.size > 0) this.ownedDevices.delete(rec.prefix);
    this.releasedSinceSweep++;
    this.scheduleSweep(this.options.sweepMs ?? SWEEP_MS);
  }

  /** A sweep in `ms`, or sooner if one is already due sooner; none while one runs (it schedules the next). */
  private scheduleSweep(ms: number): void {
    if (this.sweeping || this.stopped || (this.sweepTimer !== undefined && (ms > 0 || this.sweepAtOnce))) return;
    clearTimeout(this.sweepTimer);
    this.sweepAtOnce = ms === 0;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweepAtOnce = false;
      void this.sweep();
    }, ms);
    this.sweepTimer.unref();
  }

  /**
   * Drops the records still idle from the table, a slice at a time: the event loop is served
   * between slices, and whatever takes a record up meanwhile keeps it. Map iteration is safe
   * against the deletes, and against those of anyone else iterating (a comparison, the RIB's drop of
   * a peer): a deleted record is not live, and an iterator does not visit it again.
   */
  private async sweep(): Promise<void> {
    if (this.releasedSinceSweep === 0) return;
    this.releasedSinceSweep = 0;
    this.sweeping = true;
    let n = 0;
    try {
      for (const rec of this.table.values()) {
        if (isIdle(rec)) {
          // Idle may still be queued (wanted and unwanted again before a pass): not pending any more.
          this.unqueue(rec);
          rec.live = false;
          this.table.delete(rec.prefix);
          this.unrefuse(rec);
        }
        if (++n % RESYNC_SLICE === 0) await yieldToEventLoop();
        if (this.stopped) return;
      }
    } finally {
      this.sweeping = false;
      this.sweptSize = this.table.size;
    }
    // Released while this walked: the next sweep is theirs.
    if (this.releasedSinceSweep > 0) this.scheduleSweep(this.options.sweepMs ?? SWEEP_MS);
  }

  /** Our routes in the kernel, as far as we know. */
  private *kernelRoutes(): Generator<Route> {
    for (const rec of this.table.values()) if (rec.have && rec.have.type !== 'other') yield routeWith(rec.prefix, rec.have as RouteTarget);
  }

  /** What is wanted, by prefix (read only; empty before start): targets, routeWith() makes them routes. */
  wanted(): ReadonlyMap<string, RouteTarget> {
    return this.wantedView;
  }

  /** The kernel's route of ours for one canonical prefix, as of the last pass. */
  installedRoute(prefix: string): Route | undefined {
    const have = this.table.get(prefix)?.have;
    return have && have.type !== 'other' ? routeWith(prefix, have as RouteTarget) : undefined;
  }

  /** What the kernel has of ours, as of the last pass, sorted by prefix. */
  installed(): Route[] {
    return [...this.kernelRoutes()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  }

  stats(): RouteStats {
    const { unicast, ecmp, blackhole } = this.tally;
    const desired = this.wantedCount;
    // Records, not places in the queue: a record released, or whose change a flush made, leaves its
    // place behind, and a refused one waiting for its retry may be queued as well. Both counted as
    // they change: a refused flush puts a whole table in the refused set, and stats() answers every
    // metrics scrape and status call.
    const pending = this.queuedCount + this.refusedWaiting;
    return { installed: unicast + blackhole, unicast, ecmp, blackhole, desired, pending, ...this.counters };
  }

  /**
   * Works until nothing is dirty: a full comparison first when one is due, then chunks of lines. The
   * next chunk goes to `ip` while the previous one is still in the kernel, so the kernel never waits
   * for us; a prefix is never in two chunks at once. Concurrent calls share the running work.
   * Refused lines are in the result (and onError).
   */
  async reconcile(): Promise<ReconcileResult> {
    if (this.running) return this.running;
    this.running = (async () => {
      const total: ReconcileResult = { applied: 0, failures: [] };
      const add = (r: ReconcileResult): void => {
        total.applied += r.applied;
        total.failures.push(...r.failures);
      };
      let previous: Promise<ReconcileResult> | undefined;
      try {
        for (;;) {
          if (this.resyncWanted && !this.stopped) {
            if (previous) add(await previous);
            previous = undefined;
            await this.resync();
          }
          const places = this.queue.size;
          // Stopped meanwhile: the chunks sent are waited for, nothing more is sent (see schedule()).
          const lines = this.stopped ? [] : this.takeChunk();
          if (lines.length === 0) {
            if (!previous) {
              // A chunk looks at 8 x chunkLines places at most: all passed over (released, or a flush's)
              // with records still queued behind them, look on while the queue shrinks (nothing is out).
              if (this.stopped || this.queuedCount === 0 || this.queue.size >= places) break;
              await yieldToEventLoop();
              continue;
            }
            add(await previous); // frees its prefixes for the next chunk
            previous = undefined;
            continue;
          }
          const current = this.send(lines);
          const sent = previous;
          previous = current; // before awaiting `sent`: if that throws, the finally below still waits for this one
          if (sent) add(await sent);
        }
      } finally {
        if (previous) await previous.catch(() => undefined);
      }
      return total;
    })();
    try {
      return await this.running;
    } finally {
      this.running = undefined;
      const drift = this.driftFound;
      this.driftFound = undefined;
      if (drift) this.options.onDriftChecked?.({ differed: drift.differed, ms: Math.round(performance.now() - drift.since) });
      if (this.queue.size > 0) this.schedule(); // changes that came after the last look
    }
  }

  /** Sends pending changes now and waits for them. Routes stay installed. */
  async flush(): Promise<ReconcileResult> {
    clearTimeout(this.timer);
    this.timer = undefined;
    return this.reconcile();
  }

  /** Cancels pending passes, retries and comparisons; the kernel keeps its routes (forwarding goes on across restarts). */
  stop(): void {
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    clearTimeout(this.driftTimer);
    clearTimeout(this.sweepTimer);
    this.timer = this.retryTimer = this.resyncTimer = this.driftTimer = this.sweepTimer = undefined;
    this.stopped = true;
    this.shell.close?.();
  }

  private started(): void {
    if (!this.adopted) throw new Error('RouteReconciler: call start() (adopt) or setDesired() before upsert() or remove()');
  }

  /**
   * Reads the kernel's routes of ours and queues every prefix where they differ from the desired set.
   * The first one adopts them as the desired set. Works in slices, so a million routes do not stall
   * sessions and the status socket: each slice of the kernel's routes is compared as it comes and
   * dropped (no map of the kernel's table), then the table is walked for prefixes the kernel has
   * nothing of ours for. Nothing is at the kernel meanwhile (a comparison waits for the changes out);
   * a record changed while this yields is queued by that change, and compared with what the kernel
   * was found to have.
   */
  private async resync(): Promise<void> {
    this.resyncWanted = false;
    const driftSince = this.driftWanted;
    this.driftWanted = undefined;
    this.counters.resyncs++;
    const epoch = this.nextComparison();
    this.viaGateway = this.flushes ? new Map() : undefined;
    this.removals = 0;
    // Counted afresh as the kernel's routes come, and swapped in once they are all read: stats()
    // (every metrics scrape and status call) meanwhile answers what was known before.
    const tally = { unicast: 0, blackhole: 0, ecmp: 0 };
    this.refused.clear();
    this.refusedWaiting = 0;
    let differed = 0;
    const read = new ReadTargets();
    const slices = this.shell.readRouteSlices ? this.shell.readRouteSlices() : oneSlice(this.shell.readRoutes());
    let n = 0;
    try {
      for await (const slice of slices) {
        for (const route of slice) {
          // A shell that reads all at once hands over one slice of a million.
          if (++n % RESYNC_SLICE === 0) await yieldToEventLoop();
          if (isDeviceRoute(route) && !this.ownedDevices.has(route.prefix)) continue;
          // Until setDesired() says what is wanted, which it may while this yields.
          const adopting = !this.adopted;
          const rec = this.table.get(route.prefix) ?? this.add(route.prefix);
          const have = read.target(route);
          if (rec.seenBy(epoch)) {
            // Two routes of ours for one prefix (another metric): the last one read counts, as a map's would.
            this.countGateway(rec.have, -1);
            count(tally, rec.have, -1);
            if (rec.have !== rec.want) differed--; // counted as differing when the first was read
            if (adopting && rec.want === rec.have) {
              rec.want = undefined;
              this.wantedCount--;
            }
          }
          rec.markSeenBy(epoch);
          this.countGateway(have, 1);
          count(tally, have, 1);
          if (adopting && rec.want === undefined && have.type !== 'other') {
            // Adopted: what the kernel has of ours is what we want, until told otherwise, and nothing
            // is queued (a restart with a full table would otherwise start with a pass over every
            // route of ours, each already right).
            rec.have = rec.want = have as RouteTarget; // not 'other' (above)
            this.wantedCount++;
          } else if (rec.want !== undefined && satisfies(have, rec.want)) {
            rec.have = rec.want;
          } else {
            rec.have = have;
            this.enqueue(rec);
            differed++;
          }
        }
        await yieldToEventLoop();
      }
    } catch (err) {
      // Known afresh only for the prefixes compared before the read failed: the rest count as they
      // did, and flushes wait for the next comparison (the retry's), as after a failed `ip`.
      this.viaGateway = undefined;
      const known = { unicast: 0, blackhole: 0, ecmp: 0 };
      for (const rec of this.table.values()) count(known, rec.have, 1);
      this.tally = known;
      throw err;
    }
    this.tally = tally;
    if (!this.adopted) {
      this.adopted = true;
      return;
    }
    for (const rec of this.table.values()) {
      if (!rec.seenBy(epoch) && rec.live && (rec.have !== undefined || rec.want !== undefined)) {
        rec.have = undefined;
        if (rec.want !== undefined) {
          this.enqueue(rec);
          differed++;
        } else this.release(rec);
      }
      if (++n % RESYNC_SLICE === 0) await yieldToEventLoop();
    }
    if (driftSince !== undefined) this.driftFound = { since: driftSince, differed };
  }

  /**
   * The next comparison's number, 1 to LAST_COMPARISON. Past the last, every record's is cleared
   * before they start again: else the next would take each record no comparison found (0), or last
   * found that many comparisons before, as found by it, leaving a route deleted behind our back
   * unrepaired and the counts wrong until the comparison after. (Years of comparisons at the rates
   * the agent makes them, but a walk of the table once in 2^27 comparisons costs nothing.)
   */
  private nextComparison(): number {
    if (this.comparisons >= LAST_COMPARISON) {
      for (const rec of this.table.values()) rec.markSeenBy(0);
      this.comparisons = 0;
    }
    return ++this.comparisons;
  }

  /** One chunk of lines to `ip`; the kernel's answer updates what we know it has. */
  private async send(lines: Line[]): Promise<ReconcileResult> {
    let failures: BatchFailure[];
    try {
      failures = this.shell.write ? await this.shell.write(lines) : await this.shell.batch(lines.map(renderWrite));
    } catch (err) {
      // `ip` itself failed: what the kernel took is unknown, so compare everything on the retry.
      this.viaGateway = undefined;
      for (const l of lines) {
        for (const rec of this.recordsOf(l)) {
          rec.atKernel = false;
          this.refuse(rec);
        }
      }
      this.scheduleRetry();
      throw err;
    }
    this.counters.batches++;
    const refusedLines = new Set(failures.map((f) => f.line - 1));
    let applied = 0;
    let done = 0;
    // Once per change of a full table: no array or iterator per line (they are what GC then spends its time on).
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      const refused = refusedLines.size > 0 && refusedLines.has(i);
      const covers = l.covers;
      const n = covers ? covers.length : 1;
      if (refused) {
        this.countGateway(l.route, -n);
        this.countGateway(l.have, n);
      } else {
        applied += n;
      }
      if (!covers) {
        if (++done % RESYNC_SLICE === 0) await yieldToEventLoop();
        this.settle(l as PrefixRecord, refused);
        continue;
      }
      for (const rec of this.recordsOf(l)) {
        // A flush answers for a whole table's worth: its bookkeeping must not hold the event loop either.
        if (++done % RESYNC_SLICE === 0) await yieldToEventLoop();
        rec.route = undefined;
        this.settle(rec, refused);
      }
    }
    this.counters.changesApplied += applied;
    this.counters.changesFailed += refusedLines.size;
    if (failures.length > 0) {
      this.options.onError?.(new RouteProgrammingError(failures));
      this.scheduleRetry();
    } else if (this.refused.size === 0) {
      this.retryDelay = this.options.retryMs ?? 1000;
    }
    return { applied: lines.length - failures.length, failures };
  }

  /** The records a line answers for: the line itself, or each prefix a flush covers. */
  private recordsOf(l: Line): PrefixRecord[] {
    if (!l.covers) return [l as PrefixRecord];
    const out: PrefixRecord[] = [];
    for (const prefix of l.covers) {
      const rec = this.table.get(prefix);
      if (rec !== undefined && rec.atKernel) out.push(rec);
    }
    return out;
  }

  /**
   * What the kernel's answer to the prefix's change from `have` to `route` (undefined: removed)
   * means for our bookkeeping. While its change is out the record stays in the table (nothing
   * releases it, and a full comparison waits for the changes out).
   */
  private settle(rec: PrefixRecord, refused: boolean): void {
    rec.atKernel = false;
    if (refused) {
      this.refuse(rec);
      return;
    }
    const route = rec.route;
    this.count(rec.have, -1);
    this.count(route, 1);
    rec.have = route;
    rec.route = undefined;
    // Else changed again meanwhile, and queued again.
    if (route === undefined && rec.want === undefined) this.release(rec);
  }

  /** Renders queued prefixes into at most chunkLines lines; prefixes already right cost nothing. */
  private takeChunk(): Line[] {
    const flush = this.takeFlush();
    if (flush) return [flush];
    const max = this.options.chunkLines ?? 2048;
    // Made at the most it can hold, and cut to what it got: grown by push, it made three times its size in arrays thrown away.
    const lines = new Array<Line>(Math.min(max, this.queue.size));
    let taken = 0;
    const later: PrefixRecord[] = [];
    let visited = 0;
    // Bounded also by prefixes visited, so a chunk of no-ops does not hold the event loop either.
    while (this.queue.size > 0 && taken < lines.length && visited < max * 8) {
      const rec = this.queue.shift()!;
      visited++;
      // Released, or a place in the queue passed over (a flush was its change; queued again after a resync).
      if (!rec.queued || !rec.live) continue;
      if (rec.atKernel) {
        // Its change is still at the kernel: looked at again once that is answered.
        later.push(rec);
        continue;
      }
      this.unqueue(rec);
      this.unrefuse(rec);
      const { want, have } = rec;
      if (want && have && satisfies(have, want)) {
        if (have !== want) {
          this.count(have, -1);
          this.count(want, 1);
          rec.have = want;
        }
        continue;
      }
      if (want) {
        rec.route = want;
      } else if (have) {
        rec.route = undefined;
        if (this.removals > 0) this.removals--;
      } else {
        this.release(rec);
        continue;
      }
      this.countGateway(have, -1);
      this.countGateway(rec.route, 1);
      rec.atKernel = true;
      lines[taken++] = rec;
    }
    for (const rec of later) this.queue.push(rec);
    lines.length = taken;
    return lines;
  }

  /**
   * One flush line, when every route of ours through some gateway (as the kernel will have them
   * after the lines already at `ip`, which runs lines in order) is a queued removal, at least
   * FLUSH_MIN of them. A scan that finds none waits for FLUSH_MIN more changes before the next.
   */
  private takeFlush(): Line | undefined {
    const counts = this.viaGateway;
    const min = this.options.flushMin ?? FLUSH_MIN;
    if (!counts || this.marks < this.flushScanAt) return undefined;
    let fewest = Infinity;
    for (const n of counts.values()) if (n >= min) fewest = Math.min(fewest, n);
    if (this.removals < fewest) return undefined; // also when no gateway has enough
    // Sets: a record changed while its change was out may have two places in the queue.
    const removals = new Map<string, Set<PrefixRecord>>();
    for (let i = 0; i < this.queue.size; i++) {
      const rec = this.queue.at(i)!;
      if (!rec.queued || !rec.live || rec.want !== undefined || rec.atKernel || !rec.have) continue;
      const gateway = soleGateway(rec.have);
      if (gateway === undefined || (counts.get(gateway) ?? 0) < min) continue;
      let list = removals.get(gateway);
      if (!list) removals.set(gateway, (list = new Set()));
      list.add(rec);
    }
    for (const [gateway, set] of removals) {
      if (set.size !== counts.get(gateway)) continue;
      const records = [...set];
      for (const rec of records) {
        this.unrefuse(rec);
        rec.atKernel = true;
        this.unqueue(rec); // its place in the queue is passed over: the flush is its change
      }
      const covers = records.map((rec) => rec.prefix);
      counts.delete(gateway);
      this.removals = Math.max(0, this.removals - covers.length);
      return { op: 'flush', prefix: covers[0]!, route: undefined, have: records[0]!.have, gateway, covers };
    }
    this.flushScanAt = this.marks + min;
    return undefined;
  }

  private count(r: KernelTarget | null | undefined, n: 1 | -1): void {
    count(this.tally, r, n);
  }

  /** Adds `n` to the count of the route's gateway, when it is a single IPv4 one. */
  private countGateway(route: KernelTarget | undefined, n: number): void {
    const gateway = route && this.viaGateway ? soleGateway(route) : undefined;
    if (gateway === undefined) return;
    const next = (this.viaGateway!.get(gateway) ?? 0) + n;
    if (next > 0) this.viaGateway!.set(gateway, next);
    else this.viaGateway!.delete(gateway);
  }

  private schedule(): void {
    // Stopped: the kernel keeps what it has, for the next agent to adopt (a pass or a retry after
    // stop() would change it under a successor, or write through a closed shell).
    if (this.timer || this.running || this.stopped) return; // a running pass picks up what is dirty when it is done
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, this.options.debounceMs ?? 10);
  }

  private kick(): void {
    if (this.stopped) return;
    this.reconcile().catch((err: Error) => {
      this.options.onError?.(err);
      this.scheduleRetry();
    });
  }

  /** A refused line may succeed later (a gateway's subnet appears, a conflicting route goes). */
  private scheduleRetry(): void {
    if (this.retryTimer || this.stopped) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(delay * 2, MAX_RETRY_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const rec of this.refused) if (rec.live) this.enqueue(rec);
      this.refused.clear();
      this.refusedWaiting = 0;
      // A refusal may mean we were wrong about the kernel ("File exists" for a route of ours): compare first.
      this.resyncWanted = true;
      this.kick();
    }, delay);
    this.retryTimer.unref();
  }
}

/**
 * The netlink writer when the addon is handed in. Without it the agent still works, deliberately on
 * `ip -batch` (tested, ~1.4-2.5x slower to write a full table), and says so through onWriterFallback.
 */
export function kernelShell(options: Pick<ReconcilerOptions, 'netns' | 'netlink' | 'onWriterFallback' | 'onDumpFailed'>): RouteShell {
  if (options.netlink) {
    try {
      return new NetlinkRouteShell({ netns: options.netns, addon: options.netlink(), onDumpFailed: options.onDumpFailed });
    } catch (err) {
      options.onWriterFallback?.(err as Error);
    }
  }
  return new Ip({ netns: options.netns });
}

/**
 * The gateway of a unicast route through one IPv4 next hop: what `ip route flush … via` matches,
 * whatever the link (the kernel's routes, as a comparison reads them, each name theirs).
 */
function soleGateway(r: KernelTarget): string | undefined {
  if (r.type !== 'unicast' || r.nextHops.length !== 1) return undefined;
  const gateway = r.nextHops[0]!;
  return familyOf(gateway) === 4 ? gateway : undefined;
}

function isDeviceRoute(r: KernelTarget): boolean {
  return r.type === 'unicast' && r.nextHops.length === 0;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Counts a route of ours in the kernel (n = 1) or one gone (n = -1) in `tally`. */
function count(tally: { unicast: number; blackhole: number; ecmp: number }, r: KernelTarget | null | undefined, n: 1 | -1): void {
  // Of a type we never write: not counted as installed; the comparison that read it replaces or removes it.
  if (!r || r.type === 'other') return;
  if (r.type === 'blackhole') tally.blackhole += n;
  else tally.unicast += n;
  if (r.nextHops.length > 1) tally.ecmp += n;
}

/**
 * The targets of the routes one comparison reads, one per distinct target: the records keep what the
 * kernel has (and, adopting, what is wanted) as a target shared by every prefix through the same
 * gateway and link, not the Route read for each. An agent restarting over a full table otherwise
 * kept a million Routes until the speaker's targets replaced them, for the collector to mark on
 * every major collection. ECMP routes, rare, are kept as read (their lists are not shared).
 */
class ReadTargets {
  /** By the lone gateway ('' for none), then the link ('' for none). */
  private readonly byGateway = new Map<string, Map<string, KernelTarget>>();

  target(route: KernelRoute): KernelTarget {
    if (route.nextHops.length > 1) return route;
    const gateway = route.nextHops[0] ?? '';
    let byLink = this.byGateway.get(gateway);
    if (byLink === undefined) this.byGateway.set(gateway, (byLink = new Map()));
    const link = route.dev ?? '';
    const known = byLink.get(link);
    if (known !== undefined && known.type === route.type) return known;
    const target: KernelTarget = route.dev === undefined ? { type: route.type, nextHops: route.nextHops } : { type: route.type, nextHops: route.nextHops, dev: route.dev };
    byLink.set(link, target);
    return target;
  }
}

/** Needed by nobody: nothing wanted or of ours in the kernel, no change out, no candidates of the RIB's (and still in the table). */
function isIdle(rec: PrefixRecord): boolean {
  return rec.want === undefined && rec.have === undefined && !rec.atKernel && rec.candidates === undefined && rec.live;
}

/** A shell's whole read as one slice (a shell without readRouteSlices). */
async function* oneSlice(routes: Promise<KernelRoute[]>): AsyncIterable<KernelRoute[]> {
  yield await routes;
}

/**
 * normaliseRoute, keeping the caller's objects where they are already canonical: the daemon hands
 * every prefix of one UPDATE the same target, so a full table holds one target per UPDATE and the
 * RIB's prefix strings rather than copies of each.
 */
class SharingNormaliser {
  private lastIn?: RouteTarget;
  private lastOut?: RouteTarget;
  private lastFamily: 4 | 6 = 4;

  prefix(text: string): string {
    const p = normalisePrefix(text);
    return p === text ? text : p;
  }

  /** `target` for the canonical `prefix`, checked and canonical; the same object when it is already. */
  target(prefix: string, target: RouteTarget): RouteTarget {
    const family = familyOf(prefix);
    // The family is all of the prefix a target's validity depends on (next hops of the other family).
    if (target === this.lastIn && family === this.lastFamily) return this.lastOut!;
    const r = normaliseRoute({ prefix, type: target.type, nextHops: target.nextHops, dev: target.dev });
    let out: RouteTarget = r;
    if (sameList(r.nextHops, target.nextHops)) {
      if (r.dev === target.dev) out = target;
      else r.nextHops = target.nextHops;
    }
    this.lastIn = target;
    this.lastOut = out;
    this.lastFamily = family;
    return out;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
