// Service advertisement's shell in Kubernetes mode: reflectors on Services, EndpointSlices and
// LoadBalancerIPPools; the allocator runs on the agent that holds the Lease and writes Service status;
// every agent turns status and endpoints into its own announcements (announce.ts) for the speaker.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.js';
import { EventReporter } from '../kube/events.js';
import type { Checked } from '../kube/objects.js';
import { Reflector, namespacedKey } from '../kube/reflector.js';
import { inAnyCidr, canonicalAddress } from './addresses.js';
import { type Allocation, type LbRequest, LoadBalancerAllocator } from './allocator.js';
import { type ServiceAdvertisement, type ServiceAnnouncement, readyNodesByService, serviceAnnouncements } from './announce.js';
import { LeaseElector } from './lease.js';
import { type PoolSpec, type SlimEndpointSlice, type SlimService, checkPool, slimEndpointSlice, slimService, wantsLoadBalancerIP } from './objects.js';

export const SERVICES_PATH = '/api/v1/services';
export const ENDPOINT_SLICES_PATH = '/apis/discovery.k8s.io/v1/endpointslices';
export const POOLS_PATH = '/apis/lightly.dev/v1alpha1/loadbalancerippools';
export const ALLOCATOR_LEASE = 'lightly-lb-allocator';

export interface ServiceAdvertiserOptions {
  client: KubeClient;
  nodeName: string;
  log: Pick<Logger, 'info' | 'warn'>;
  /** The Lease (kube-system/lightly-lb-allocator by default) and its timing. */
  lease?: { namespace?: string; durationMs?: number; retryMs?: number };
  backoff?: { baseMs: number; capMs: number };
  random?: () => number;
  /** Status writes in flight at once (a thousand new Services are not a thousand sockets). */
  writeConcurrency?: number;
}

const NONE: ServiceAdvertisement = { clusterIPs: [], externalIPs: [], loadBalancerIPs: [] };
const sameSet = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));

const requestOf = (s: SlimService): LbRequest => ({
  key: s.key, created: s.created, labels: s.labels, families: s.families, requested: s.requested, ports: s.ports, current: s.ingress,
  externalTrafficPolicy: s.externalTrafficPolicy, selector: s.selector,
  ...(s.sharingKey ? { sharingKey: s.sharingKey } : {}),
});

/** Emits 'announcements' with this node's Service prefixes whenever they change (after the first listing). */
export class ServiceAdvertiser extends EventEmitter<{ announcements: [ServiceAnnouncement[]] }> {
  private readonly services: Reflector<SlimService>;
  private readonly slices: Reflector<SlimEndpointSlice>;
  private readonly pools: Reflector<Checked<PoolSpec>>;
  readonly elector: LeaseElector;
  private readonly events: EventReporter;
  private readonly allocator = new LoadBalancerAllocator();
  private config: ServiceAdvertisement = NONE;
  /** Services as the allocator last saw them (by identity: the reflector replaces an object that changed). */
  private seen = new Map<string, SlimService>();
  /** Services whose stale addresses we asked to clear, as they were then. */
  private readonly cleared = new Map<string, SlimService>();
  private poolsKey = '';
  private rebuild = true;
  private announced?: ServiceAnnouncement[];
  private lastKey = '';
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** Status writes wanted, latest per Service, and how many are on the wire. */
  private readonly writes = new Map<string, { service: SlimService; addresses: string[] }>();
  private inFlight = 0;

  constructor(readonly options: ServiceAdvertiserOptions) {
    super();
    const { client, log } = options;
    this.events = new EventReporter(client, options.nodeName, log);
    const common = { client, log, onChange: () => this.schedule(), backoff: options.backoff, random: options.random };
    this.services = new Reflector({ ...common, path: SERVICES_PATH, key: namespacedKey, transform: (raw) => slimService(raw) });
    this.slices = new Reflector({ ...common, path: ENDPOINT_SLICES_PATH, key: namespacedKey, transform: (raw) => slimEndpointSlice(raw) });
    this.pools = new Reflector({ ...common, optional: true, path: POOLS_PATH, transform: (raw) => checkPool(raw) });
    this.elector = new LeaseElector({
      client, log, identity: options.nodeName, name: ALLOCATOR_LEASE, namespace: options.lease?.namespace ?? 'kube-system',
      ...(options.lease?.durationMs ? { durationMs: options.lease.durationMs } : {}), ...(options.lease?.retryMs ? { retryMs: options.lease.retryMs } : {}),
    });
    this.elector.on('leading', () => {
      this.rebuild = true; // a new leader starts from what the API holds, never from memory
      this.schedule();
    });
  }

  start(): void {
    for (const r of [this.services, this.slices, this.pools]) r.start();
    this.elector.start();
  }

  /** Services and EndpointSlices listed: all that announcements need. */
  private listed(): boolean {
    return this.services.synced && this.slices.synced;
  }

  /** This node's Service prefixes; undefined until Services and EndpointSlices are listed. */
  current(): ServiceAnnouncement[] | undefined {
    return this.announced;
  }

  /** The BGPConfiguration's ranges (none: nothing announced, allocation still runs). */
  setConfig(config: ServiceAdvertisement | undefined): void {
    const next = config ?? NONE;
    if (JSON.stringify(next) === JSON.stringify(this.config)) return;
    this.config = next;
    // At once, not after the coalescing delay (that is for bursts of API events): the agent starts
    // its speaker with current() as soon as the cluster's configuration is in, and an answer made
    // with the ranges before (none, at start) left a Service prefix out of its first announcement;
    // peers holding our routes under graceful restart then dropped it at our End-of-RIB.
    clearTimeout(this.timer);
    this.timer = undefined;
    this.recompute();
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.recompute(), 20); // coalesce bursts of events
  }

  private recompute(): void {
    if (this.stopped || !this.listed()) return;
    this.announce();
    // The pools are the allocator's alone: a list of them refused (a ClusterRole from before them, a
    // failing CRD handler) holds back allocation, never the announcements. Gated on them, current()
    // stayed undefined and a restarted agent started its speaker without the Service prefixes.
    if (this.elector.leading && this.pools.synced) this.allocate();
  }

  private announce(): void {
    const { announcements, ignored } = serviceAnnouncements(this.options.nodeName, this.config, this.services.items.values(), readyNodesByService(this.slices.items.values()));
    for (const i of ignored) {
      const service = this.services.items.get(i.service);
      // One Event per Service version and address (EventReporter dedups); every agent sends the same name.
      if (service) this.events.report(service.ref, i.reason, i.message);
    }
    const key = JSON.stringify(announcements);
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.announced = announcements;
    this.emit('announcements', announcements);
  }

  /** Leader only: gives addresses to what changed since the last pass (all of it after a rebuild). */
  private allocate(): void {
    const pools = [...this.pools.items.values()].flatMap((p) => (p.spec ? [p.spec] : []));
    const poolsKey = JSON.stringify(pools);
    if (poolsKey !== this.poolsKey) {
      this.poolsKey = poolsKey;
      this.allocator.setPools(pools);
      this.rebuild = true;
    }
    const all = [...this.services.items.values()];
    const eligible = all.filter((s) => wantsLoadBalancerIP(s) && !s.requestError);
    // Releases first, so that an address freed in this burst can go to a Service of the same burst.
    const live = new Set(eligible.map((s) => s.key));
    for (const key of this.seen.keys()) {
      if (!live.has(key)) {
        this.allocator.release(key); // deleted, or no longer a LoadBalancer of ours
        this.seen.delete(key);
      }
    }
    if (this.rebuild) {
      this.rebuild = false;
      this.seen = new Map();
      this.cleared.clear();
      const results = this.allocator.restore(eligible.map(requestOf));
      for (const s of eligible) this.settle(s, results.get(s.key)!);
    } else {
      for (const s of eligible) if (this.seen.get(s.key) !== s) this.settle(s, this.allocator.assign(requestOf(s)));
    }
    for (const key of this.cleared.keys()) if (!this.services.items.has(key)) this.cleared.delete(key);
    for (const s of all) {
      if (live.has(s.key)) continue;
      if (s.requestError && wantsLoadBalancerIP(s)) this.events.report(s.ref, 'InvalidLoadBalancerIPs', s.requestError);
      // Changed type (or class, or a bad request): the addresses we gave go back to the pools.
      const ours = s.ingress.filter((a) => pools.some((p) => inAnyCidr(a, p.cidrs)));
      if (!ours.length || this.cleared.get(s.key) === s || !(wantsLoadBalancerIP(s) || s.loadBalancerClass === undefined)) continue;
      this.cleared.set(s.key, s); // once per version of the Service, not at every pass until the watch shows it
      this.write(s, []);
    }
  }

  private settle(s: SlimService, result: Allocation): void {
    this.seen.set(s.key, s);
    const addresses = 'addresses' in result ? result.addresses : [];
    if ('reason' in result) {
      this.options.log.warn({ service: s.key, reason: result.reason, err: result.message }, 'no LoadBalancer address for this Service');
      this.events.report(s.ref, 'AllocationFailed', `${result.reason}: ${result.message}`);
    }
    for (const r of result.refused ?? []) this.events.report(s.ref, 'SharedIPRefused', `not sharing ${r.address}: ${r.message}`);
    if (!sameSet(addresses, s.ingress.map(canonicalAddress))) this.write(s, addresses);
  }

  /** status.loadBalancer.ingress, written in the background with a bounded number in flight. */
  private write(service: SlimService, addresses: string[]): void {
    this.writes.set(service.key, { service, addresses });
    this.pump();
  }

  private pump(): void {
    const limit = this.options.writeConcurrency ?? 16;
    while (this.inFlight < limit && this.writes.size && !this.stopped) {
      const [key, { service, addresses }] = this.writes.entries().next().value!;
      this.writes.delete(key);
      this.inFlight++;
      const path = `/api/v1/namespaces/${encodeURIComponent(service.ref.namespace)}/services/${encodeURIComponent(service.ref.name)}/status`;
      const body = { status: { loadBalancer: { ingress: addresses.map((ip) => ({ ip })) } } };
      this.options.client
        .call('PATCH', path, body, 'application/merge-patch+json')
        .then(
          () => this.options.log.info({ service: key, addresses }, addresses.length ? 'LoadBalancer address assigned' : 'LoadBalancer address released'),
          (err: Error) => {
            // The next pass tries again: the Service's status still differs from the allocation.
            this.options.log.warn({ service: key, err: err.message }, 'cannot write the Service status');
            this.seen.delete(key);
            this.cleared.delete(key);
            setTimeout(() => this.schedule(), 1_000).unref();
          },
        )
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }

  /** `handBack: false` leaves the Lease to expire, as a crashed agent does (tests). */
  async stop(options: { handBack?: boolean } = {}): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.elector.stop(options.handBack ?? true);
    await Promise.all([this.services, this.slices, this.pools].map((r) => r.stop()));
  }
}
