// Keeps the kernel's view of BGP next hops current: `ip -json` reads, re-read when the kernel reports a
// change (routes/route-watch.ts: the addon's rtnetlink watcher, or `ip monitor` without it).
import { execa } from 'execa';
import type { Logger } from 'pino';
import { type IpRouteRow, ReachabilityTable, type Reachability } from '../routes/reachability.js';
import { streamIpJson } from '../routes/ip.js';
import { ROUTE_PROTOCOL, ROUTE_PROTOCOL_NAME } from '../routes/protocol-number.js';
import { type KernelWatch, type KernelWatchOptions, watchKernelChanges } from '../routes/route-watch.js';
import { type RouteDumpApi, dumpRoutes } from '../routes/route-dump.js';
import type { NextHopWatchPort } from './ports.js';

/** Changes come in bursts (a link going down takes its routes with it): one re-read for a burst. */
const SETTLE_MS = 100;
/**
 * A read dumps the whole main table, our routes included (the addon's dump: ~17 ms with 100,000 of
 * ours, ~150 ms with a million; through `ip` ten to twenty times that), and pods coming and going
 * keep changing links and addresses: reads take at most a tenth of the time, so a full table under
 * pod churn costs a bounded share of a core, not all of it.
 */
const READ_SHARE = 0.1;
/** However long reads take, a change is read within this long. */
const MAX_READ_DELAY_MS = 10_000;

/**
 * When to read after a change seen at `now` (pure): at least SETTLE_MS later, and no sooner than a
 * tenth of the time spent reading allows after the last read (which ended at `lastEnd` and took `lastMs`).
 */
export function readDelay(now: number, lastEnd: number, lastMs: number): number {
  const spaced = lastEnd + lastMs * (1 / READ_SHARE - 1) - now;
  return Math.min(MAX_READ_DELAY_MS, Math.max(SETTLE_MS, spaced));
}
/** How often the slow safety net looks whether a read is due (pollDue). */
const POLL_MS = 30_000;
/** With the addon's watcher, a read at least this often. */
const NETLINK_POLL_MS = 300_000;

/**
 * Whether the safety net reads now (pure): every poll while nothing was read yet (the first read
 * failed) or changes come through `ip monitor`, which drops lines unseen when it falls behind; with
 * the addon's watcher, which reports an overrun (a re-read follows) and its own failure (it falls
 * back to `ip monitor`), every 5 minutes. Each read through `ip` streams the whole main table (with
 * a full table of ours, 0.3-0.5 s of CPU per 100,000 routes): every 30 s was ~1-2% of a core at
 * 100,000 routes and ~10% at a million, for nothing.
 */
export function pollDue(via: KernelWatch['via'] | undefined, haveTable: boolean, sinceLastReadMs: number): boolean {
  return !haveTable || via !== 'netlink' || sinceLastReadMs >= NETLINK_POLL_MS - POLL_MS / 2;
}
const READ_TIMEOUT_MS = 10_000;

/** A row of `ip -json route show` that is not one of our own routes (as ip prints the protocol, by name or number). */
const notOurs = (row: string): boolean => !row.includes(`"protocol":"${ROUTE_PROTOCOL_NAME}"`) && !row.includes(`"protocol":"${ROUTE_PROTOCOL}"`);

export interface NextHopWatchOptions extends Pick<KernelWatchOptions, 'addon' | 'receiveBuffer'> {
  /** Read and watch inside this named namespace (tests); default: our own. */
  netns?: string;
  /**
   * The addon's route dump (`nativeAddon` of native/native.ts): routes are read through it, ours
   * dropped in C; without it, or when it cannot be loaded or fails, through `ip -json`.
   */
  dump?: () => RouteDumpApi;
}

export class NextHopWatch implements NextHopWatchPort {
  /** Undefined until the kernel has been read once: until then every next hop counts as reachable, as before. */
  private table?: ReachabilityTable;
  private readonly listeners: (() => void)[] = [];
  private watch?: KernelWatch;
  private poll?: NodeJS.Timeout;
  private settle?: NodeJS.Timeout;
  private reading?: Promise<void>;
  private again = false;
  private stopped = false;
  /** The last read: when it ended and how long it took (performance.now() ms). */
  private lastRead = { end: -Infinity, ms: 0 };
  /** The addon's dump once loaded; null when it cannot be had (reads go through `ip`). */
  private dumper?: RouteDumpApi | null;
  /** Reads done and the time they took in all (tests: what a burst of changes costs). */
  reads = 0;
  readingMs = 0;

  constructor(
    private readonly log: Logger,
    private readonly options: NextHopWatchOptions = {},
  ) {}

  /** How changes are learnt: 'netlink', or 'ip monitor' when the addon's watcher could not be had. */
  get via(): KernelWatch['via'] | undefined {
    return this.watch?.via;
  }

  async start(): Promise<void> {
    await this.read().catch((err: Error) => this.log.warn({ err: err.message }, 'cannot read routes for next-hop reachability; retrying every 30 s'));
    this.poll = setInterval(() => {
      if (pollDue(this.watch?.via, this.table !== undefined, performance.now() - this.lastRead.end)) this.refresh();
    }, POLL_MS);
    this.poll.unref();
    if (this.stopped) return;
    this.watch = watchKernelChanges({
      ...this.options,
      onChange: (change) => {
        if (change === 'lost') this.log.warn({}, 'kernel change notifications were lost: reading routes and addresses again');
        this.refreshSoon();
      },
      onFallback: (err) => this.log.warn({ err: err.message }, 'netlink route watcher unavailable: watching kernel changes through ip monitor'),
      onEnded: (exitCode) => {
        if (!this.stopped) this.log.warn({ exitCode }, 'ip monitor ended; next hops are re-read every 30 s only');
      },
    });
  }

  resolve(nextHop: string): Reachability {
    return this.table?.resolve(nextHop) ?? 'reachable';
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.poll);
    clearTimeout(this.settle);
    this.watch?.close();
  }

  private refreshSoon(): void {
    if (this.settle || this.stopped) return;
    // During a read: once it is done, spaced after it (a delay worked out now would count from the read before).
    if (this.reading) {
      this.again = true;
      return;
    }
    this.settle = setTimeout(() => {
      this.settle = undefined;
      this.refresh();
    }, readDelay(performance.now(), this.lastRead.end, this.lastRead.ms));
  }

  /** Re-reads, one read at a time; a change seen during a read causes one more, spaced like any other. */
  private refresh(): void {
    if (this.reading) {
      this.again = true;
      return;
    }
    const start = performance.now();
    this.reading = this.read()
      .catch((err: Error) => this.log.warn({ err: err.message }, 'cannot read routes for next-hop reachability'))
      .finally(() => {
        this.reading = undefined;
        const ms = performance.now() - start;
        this.reads++;
        this.readingMs += ms;
        this.lastRead = { end: performance.now(), ms };
        if (this.again && !this.stopped) {
          this.again = false;
          this.refreshSoon();
        }
      });
  }

  private async read(): Promise<void> {
    const ns = this.options.netns ? ['-n', this.options.netns] : [];
    const [addresses, routes] = await Promise.all([execa('ip', [...ns, '-json', 'addr', 'show'], { timeout: READ_TIMEOUT_MS }), this.readRoutes()]);
    const next = ReachabilityTable.fromRows(routes, addresses.stdout);
    if (next.key === this.table?.key) return;
    this.table = next;
    if (this.stopped) return;
    this.log.info({}, 'kernel routes or addresses changed: resolving next hops again');
    for (const listener of this.listeners) listener();
  }

  /**
   * The main table but our routes (a full table: a million of them): through the addon's dump,
   * which drops them in C; else through `ip -json`, whose rows of ours are dropped unparsed as the
   * text streams, so a read costs neither a whole-table JSON.parse nor its memory.
   */
  private async readRoutes(): Promise<IpRouteRow[]> {
    if (this.dumper === undefined && this.options.dump) {
      try {
        this.dumper = this.options.dump();
      } catch (err) {
        this.dumper = null;
        this.log.warn({ err: (err as Error).message }, 'native route dump unavailable: next hops are resolved from ip -json reads');
      }
    }
    if (this.dumper) {
      try {
        return await dumpRoutes(this.dumper, ROUTE_PROTOCOL, this.options.netns);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'native route dump failed: reading routes through ip -json this time');
      }
    }
    const routes: IpRouteRow[] = [];
    const ns = this.options.netns ? ['-n', this.options.netns] : [];
    const read = (family: 4 | 6) => streamIpJson([...ns, '-json', `-${family}`, 'route', 'show', 'table', 'main'], (rows) => routes.push(...(rows as IpRouteRow[])), { keep: notOurs, timeout: READ_TIMEOUT_MS });
    await Promise.all([read(4), read(6)]);
    return routes;
  }
}
