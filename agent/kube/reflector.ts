// List-then-watch of one collection into a map of slim objects (transformed as they arrive), with
// paginated lists, resourceVersion resumption, relisting on 410 Gone, and capped exponential back-off
// with jitter while the API server is away: the cache is kept meanwhile, so nothing changes for the node.
import type { Logger } from 'pino';
import { KubeApiError, type KubeClient, type WatchHandle } from './client.js';

/**
 * Capped exponential back-off with "equal jitter": half the step fixed, half random. A thousand
 * agents that lost the API server together come back spread out, and none retries in a tight loop.
 */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const step = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}

export interface ReflectorOptions<T> {
  client: KubeClient;
  /** The collection, e.g. /api/v1/nodes. */
  path: string;
  /** Makes the kept form of an object; `previous` is what was kept under that name before. Throwing skips the object. */
  transform(raw: unknown, previous: T | undefined): T;
  /** Called after the first list and after every change of the kept map. */
  onChange(): void;
  log: Pick<Logger, 'info' | 'warn'>;
  pageSize?: number;
  backoff?: { baseMs: number; capMs: number };
  random?: () => number;
  /**
   * A collection whose CRD may not be installed yet: a 404 before its first listing counts as an
   * empty collection (synced, so the rest can start), and the list is tried again with the back-off
   * until the CRD appears. After a listing a 404 is an outage like any other: the cache stays.
   */
  optional?: boolean;
  /** The key an object is kept under (default its name; namespaced kinds use namespace/name). */
  key?: (raw: unknown) => string;
}

const nameOf = (raw: unknown): string => String((raw as { metadata?: { name?: unknown } } | null)?.metadata?.name ?? '');
/** namespace/name, the key of namespaced kinds (Services, EndpointSlices). */
export const namespacedKey = (raw: unknown): string => `${String((raw as { metadata?: { namespace?: unknown } } | null)?.metadata?.namespace ?? '')}/${nameOf(raw)}`;

export class Reflector<T> {
  readonly items = new Map<string, T>();
  /** True once a full list has arrived; stays true through later outages (the cache is still the cluster's last word). */
  synced = false;
  /** A listing has arrived: the collection exists (false while an optional one's CRD is missing). */
  present = false;
  private resourceVersion = '';
  private stopped = false;
  private watchHandle?: WatchHandle;
  private sleeper?: { timer: NodeJS.Timeout; wake(): void };
  private failures = 0;
  private running?: Promise<void>;

  private readonly keyOf: (raw: unknown) => string;

  constructor(private readonly options: ReflectorOptions<T>) {
    this.keyOf = options.key ?? nameOf;
  }

  /** The resourceVersion the cache is at (the last list's or watch event's). */
  get version(): string {
    return this.resourceVersion;
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watchHandle?.abort();
    if (this.sleeper) {
      clearTimeout(this.sleeper.timer);
      this.sleeper.wake();
    }
    await this.running;
  }

  private async loop(): Promise<void> {
    const { log, path } = this.options;
    while (!this.stopped) {
      const began = Date.now();
      try {
        if (!this.resourceVersion) await this.list();
        await this.watch();
        // A watch the server ends at once is as good as a failure: back off rather than spin.
        if (Date.now() - began < 1_000) this.failures++;
        else this.failures = 0;
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof KubeApiError && err.code === 410) {
          this.resourceVersion = ''; // our version is too old: list again, without waiting
          continue;
        }
        this.failures++;
        const delay = this.delay();
        if (err instanceof KubeApiError && err.code === 404 && this.options.optional && !this.present) {
          if (!this.synced) {
            log.info({ path, retryMs: delay }, 'collection not installed (its CRD is missing): taken as empty until it appears');
            this.synced = true;
            this.options.onChange();
          }
          await this.sleep(delay);
          continue;
        }
        log.warn({ path, err: (err as Error).message, attempt: this.failures, retryMs: delay }, 'kubernetes API call failed; keeping the last known state and retrying');
        await this.sleep(delay);
        continue;
      }
      if (this.failures > 0) await this.sleep(this.delay());
    }
  }

  private delay(): number {
    const { baseMs, capMs } = this.options.backoff ?? { baseMs: 1_000, capMs: 30_000 };
    return backoffDelay(this.failures - 1, baseMs, capMs, this.options.random);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeper = undefined;
        resolve();
      }, ms);
      this.sleeper = { timer, wake: resolve };
    });
  }

  /**
   * Pages of pageSize items (100: a 1.2 MB body of Nodes), so that a 5,000-node list is never one
   * 58 MB body and its parsed objects at once: the heap grown for them is not given back soon.
   */
  private async list(): Promise<void> {
    const { client, path, pageSize = 100 } = this.options;
    const fresh = new Map<string, T>();
    let continueToken = '';
    let version = '';
    do {
      const query = new URLSearchParams({ limit: String(pageSize), ...(continueToken ? { continue: continueToken } : {}) });
      const page = await client.call('GET', `${path}?${query}`);
      for (const raw of (page?.items ?? []) as unknown[]) {
        const name = this.keyOf(raw);
        const kept = this.keep(raw, this.items.get(name));
        if (kept !== undefined) fresh.set(name, kept);
      }
      continueToken = page?.metadata?.continue ?? '';
      version = page?.metadata?.resourceVersion ?? '';
    } while (continueToken && !this.stopped);
    this.items.clear();
    for (const [name, item] of fresh) this.items.set(name, item);
    this.resourceVersion = version;
    this.synced = true;
    this.present = true;
    this.options.onChange();
  }

  private async watch(): Promise<void> {
    const { client, path } = this.options;
    // Spread the servers' watch ends over a minute, so that relists do not come in waves.
    const timeoutSeconds = String(240 + Math.floor((this.options.random ?? Math.random)() * 60));
    let gone = false;
    this.watchHandle = await client.watch(path, { resourceVersion: this.resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds }, (event) => {
      const version = event.object?.metadata?.resourceVersion;
      switch (event.type) {
        case 'ADDED':
        case 'MODIFIED': {
          const name = this.keyOf(event.object);
          const kept = this.keep(event.object, this.items.get(name));
          if (kept === undefined) break;
          const before = this.items.get(name);
          this.items.set(name, kept);
          if (before === undefined || JSON.stringify(before) !== JSON.stringify(kept)) this.options.onChange();
          break;
        }
        case 'DELETED':
          if (this.items.delete(this.keyOf(event.object))) this.options.onChange();
          break;
        case 'ERROR':
          if (event.object?.code === 410) gone = true;
          throw new KubeApiError(`watch ${path}: ${event.object?.message ?? 'error event'}`, Number(event.object?.code ?? 0));
        default: // BOOKMARK: only the version moves
      }
      if (typeof version === 'string' && version) this.resourceVersion = version;
    });
    if (this.stopped) this.watchHandle.abort();
    try {
      await this.watchHandle.done;
    } catch (err) {
      if (gone) throw new KubeApiError(`watch ${path}: resource version too old`, 410);
      throw err;
    }
  }

  /** The transform, with a bad object logged and skipped rather than failing the whole list. */
  private keep(raw: unknown, previous: T | undefined): T | undefined {
    try {
      return this.options.transform(raw, previous);
    } catch (err) {
      this.options.log.warn({ path: this.options.path, name: nameOf(raw), err: (err as Error).message }, 'skipping an object that cannot be read');
      return undefined;
    }
  }
}
