// Keeps the kernel's routes of protocol lightly equal to a desired set: adopt, diff, one batch per burst.
import { type Route, diffRoutes, normalisePrefix, normaliseRoute, renderChanges } from './desired.js';
import { type BatchFailure, Ip } from './ip.js';

/** What the reconciler needs of `ip`; routes/ip.ts in production, a map in unit tests. */
export interface RouteShell {
  readRoutes(): Promise<Route[]>;
  batch(lines: string[]): Promise<BatchFailure[]>;
}

export interface ReconcilerOptions {
  /** Run `ip` inside this named namespace (labs, tests); default: our own. */
  netns?: string;
  /** Changes within this window after the first go out in one batch. Default 10 ms. */
  debounceMs?: number;
  /** First retry after refused lines or a failed `ip`; doubles up to a minute. Default 1 s. */
  retryMs?: number;
  onError?(err: Error): void;
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
  batches: number;
  changesApplied: number;
  changesFailed: number;
}

const MAX_RETRY_MS = 60_000;

export class RouteReconciler {
  /** Undefined until start() adopts the kernel's routes or setDesired() says otherwise. */
  private desired?: Map<string, Route>;
  private actual = new Map<string, Route>();
  /**
   * Device routes (no gateway) with proto 201 are the CNI plugin's pod routes unless this
   * reconciler was asked for that prefix as a device route: only those are ours to change or remove.
   */
  private ownedDevices = new Set<string>();
  private readonly shell: RouteShell;
  private timer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private retryDelay: number;
  private running?: Promise<ReconcileResult>;
  private again = false;
  private counters = { batches: 0, changesApplied: 0, changesFailed: 0 };

  constructor(private readonly options: ReconcilerOptions = {}) {
    this.shell = options.shell ?? new Ip({ netns: options.netns });
    this.retryDelay = options.retryMs ?? 1000;
  }

  /** Adopts what the kernel already has with our protocol as the desired set: nothing changes until told. */
  async start(): Promise<void> {
    const actual = await this.readActual();
    this.actual = actual;
    this.desired ??= new Map(actual);
  }

  /** The whole desired set; invalid routes throw InvalidRouteError before anything changes. */
  setDesired(routes: Iterable<Route>): void {
    const desired = new Map<string, Route>();
    for (const route of routes) {
      const r = normaliseRoute(route);
      desired.set(r.prefix, r);
    }
    this.desired = desired;
    for (const r of desired.values()) if (isDeviceRoute(r)) this.ownedDevices.add(r.prefix);
    this.schedule();
  }

  upsert(route: Route): void {
    const r = normaliseRoute(route);
    this.started().set(r.prefix, r);
    if (isDeviceRoute(r)) this.ownedDevices.add(r.prefix);
    this.schedule();
  }

  remove(prefix: string): void {
    if (this.started().delete(normalisePrefix(prefix))) this.schedule();
  }

  /** What the kernel has of ours, as of the last pass, sorted by prefix. */
  installed(): Route[] {
    return [...this.actual.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  }

  stats(): RouteStats {
    let unicast = 0;
    let ecmp = 0;
    let blackhole = 0;
    for (const r of this.actual.values()) {
      if (r.type === 'blackhole') blackhole++;
      else unicast++;
      if (r.nextHops.length > 1) ecmp++;
    }
    return { installed: this.actual.size, unicast, ecmp, blackhole, desired: this.desired?.size ?? this.actual.size, ...this.counters };
  }

  /**
   * Reads the kernel, applies the difference in one batch, and repeats while changes arrived during
   * the pass. Concurrent calls share the running pass. Refused lines are in the result (and onError).
   */
  async reconcile(): Promise<ReconcileResult> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      const total: ReconcileResult = { applied: 0, failures: [] };
      do {
        this.again = false;
        const result = await this.pass();
        total.applied += result.applied;
        total.failures = result.failures;
      } while (this.again);
      return total;
    })();
    try {
      return await this.running;
    } finally {
      this.running = undefined;
    }
  }

  /** Sends pending changes now and waits for them. Routes stay installed. */
  async flush(): Promise<ReconcileResult> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    return this.reconcile();
  }

  /** Cancels pending passes and retries; the kernel keeps its routes (forwarding goes on across restarts). */
  stop(): void {
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
    this.timer = this.retryTimer = undefined;
  }

  private started(): Map<string, Route> {
    if (!this.desired) throw new Error('RouteReconciler: call start() (adopt) or setDesired() before upsert() or remove()');
    return this.desired;
  }

  private async readActual(): Promise<Map<string, Route>> {
    const ours = (await this.shell.readRoutes()).filter((r) => !isDeviceRoute(r) || this.ownedDevices.has(r.prefix));
    return new Map(ours.map((r) => [r.prefix, r]));
  }

  private async pass(): Promise<ReconcileResult> {
    const actual = await this.readActual();
    this.desired ??= new Map(actual);
    const changes = renderChanges(diffRoutes(this.desired.values(), actual.values()));
    let failures: BatchFailure[] = [];
    if (changes.length > 0) {
      failures = await this.shell.batch(changes.map((c) => c.line));
      this.counters.batches++;
      const refused = new Set(failures.map((f) => f.line - 1));
      changes.forEach((change, i) => {
        if (refused.has(i)) return;
        if (change.op === 'remove') actual.delete(change.route.prefix);
        else actual.set(change.route.prefix, change.route);
      });
      this.counters.changesApplied += changes.length - refused.size;
      this.counters.changesFailed += refused.size;
    }
    this.actual = actual;
    this.ownedDevices = new Set([...this.desired.values(), ...actual.values()].filter(isDeviceRoute).map((r) => r.prefix));
    if (failures.length > 0) {
      this.options.onError?.(new RouteProgrammingError(failures));
      this.scheduleRetry();
    } else {
      this.retryDelay = this.options.retryMs ?? 1000;
    }
    return { applied: changes.length - failures.length, failures };
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, this.options.debounceMs ?? 10);
  }

  private kick(): void {
    this.reconcile().catch((err: Error) => {
      this.options.onError?.(err);
      this.scheduleRetry();
    });
  }

  /** A refused line may succeed later (a gateway's subnet appears, a conflicting route goes). */
  private scheduleRetry(): void {
    if (this.retryTimer) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(delay * 2, MAX_RETRY_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, delay);
    this.retryTimer.unref();
  }
}

function isDeviceRoute(r: Route): boolean {
  return r.type === 'unicast' && r.nextHops.length === 0;
}
