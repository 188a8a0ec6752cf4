// LoadBalancer address allocation, pure: pools (LoadBalancerIPPool) and Services in, an address per
// family out, or a reason why not. No address is held by two Services unless both carry the same
// sharing key, their ports are disjoint and their traffic policies are compatible (MetalLB's rule: both
// Cluster, or both Local with identical pod selectors): one /32 is announced from one set of nodes,
// which must be right for every Service behind it. The truth is Service status: after a
// restart the allocator is rebuilt from it (`restore`), oldest Service first, so that nothing moves.
import type { Requirement } from '../kube/selector.js';
import { matchesSelector } from '../kube/selector.js';
import { addressAt, addressValue, canonicalAddress, cidrRange, inCidr } from './addresses.js';
import { type Family, type PoolSpec, type ServicePort, familyOf } from './objects.js';

/** What the allocator needs of a Service. */
export interface LbRequest {
  key: string;
  /** creationTimestamp: the older Service keeps a contested address on restore. */
  created: string;
  labels: Record<string, string>;
  families: Family[];
  requested: string[];
  sharingKey?: string;
  ports: ServicePort[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  /** spec.selector: for Local, sharers must select the very same pods. */
  selector: Record<string, string>;
  /** What its status holds now. */
  current: string[];
}

export type AllocationFailure = 'NoMatchingPool' | 'AddressNotInPool' | 'AddressInUse' | 'PoolExhausted';
/** An address under the Service's own sharing key that it could not share for the traffic policy: why. */
export interface RefusedShare {
  address: string;
  holder: string;
  message: string;
}
export type Allocation = ({ addresses: string[] } | { reason: AllocationFailure; message: string }) & { refused?: RefusedShare[] };

interface Holder {
  key: string;
  sharingKey?: string;
  ports: ServicePort[];
  /** Where its traffic may land, as sharing compares it (see backendOf). */
  backend: string | undefined;
  policy: string;
}

interface PreparedPool {
  name: string;
  selector?: Requirement[];
  ranges: { cidr: string; v6: boolean; first: bigint; last: bigint }[];
}

const portsOverlap = (a: ServicePort[], b: ServicePort[]): boolean => a.some((p) => b.some((q) => p.port === q.port && p.protocol === q.protocol));

/**
 * The nodes a Service's address must be announced from, as a value two sharers must agree on: every
 * node for Cluster; for Local the nodes of its endpoints, which are the same for two Services only
 * when they select the same pods (identical selectors, MetalLB's rule). A Local Service without a
 * selector (hand-made EndpointSlices) has no such value and shares with nobody.
 */
function backendOf(r: Pick<LbRequest, 'externalTrafficPolicy' | 'selector'>): string | undefined {
  if (r.externalTrafficPolicy === 'Cluster') return 'Cluster';
  const labels = Object.entries(r.selector).sort(([a], [b]) => a.localeCompare(b));
  return labels.length ? `Local:${labels.map(([k, v]) => `${k}=${v}`).join(',')}` : undefined;
}

const describePolicy = (r: Pick<LbRequest, 'externalTrafficPolicy' | 'selector'>): string => {
  const labels = Object.entries(r.selector).map(([k, v]) => `${k}=${v}`).sort().join(',');
  return r.externalTrafficPolicy === 'Cluster' ? 'externalTrafficPolicy Cluster' : `externalTrafficPolicy Local with selector {${labels}}`;
};

/** Why `r` may not share with holder `h` although key and ports agree; undefined when it may. */
function policyConflict(h: Holder, r: LbRequest): string | undefined {
  const backend = backendOf(r);
  if (backend !== undefined && backend === h.backend) return undefined;
  return `${h.key} has ${h.policy}, this Service ${describePolicy(r)}: one announcement cannot serve both (sharing needs both Cluster, or both Local selecting the same pods)`;
}

export class LoadBalancerAllocator {
  private pools: PreparedPool[] = [];
  /** Address → the Services holding it (one, or several sharing it). */
  private readonly holders = new Map<string, Holder[]>();
  private readonly assigned = new Map<string, string[]>();
  /** Per range, where the first free address may be: everything before it is held (reset on release). */
  private readonly cursor = new Map<string, bigint>();

  /** Replaces the pools; callers assign every Service again (addresses outside the new pools go). */
  setPools(pools: PoolSpec[]): void {
    this.cursor.clear();
    this.pools = [...pools]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => ({
        name: p.name,
        ...(p.serviceSelector ? { selector: p.serviceSelector } : {}),
        ranges: p.cidrs.map((cidr) => {
          const r = cidrRange(cidr);
          // The network and broadcast addresses of a subnet (RFC 919/922) are skipped unless allowed;
          // a /31 or /32 (RFC 3021) and the IPv6 ranges' ends are usable whatever the flag.
          const trim = !p.allowFirstLastIPs && !r.v6 && r.last - r.first >= 3n;
          return { cidr, v6: r.v6, first: trim ? r.first + 1n : r.first, last: trim ? r.last - 1n : r.last };
        }),
      }));
  }

  addressesOf(key: string): string[] {
    return this.assigned.get(key) ?? [];
  }

  /** Rebuilds from Service status: Services that hold addresses first, oldest first, then the rest. */
  restore(requests: LbRequest[]): Map<string, Allocation> {
    this.holders.clear();
    this.assigned.clear();
    this.cursor.clear();
    const order = [...requests].sort((a, b) => Number(b.current.length > 0) - Number(a.current.length > 0) || a.created.localeCompare(b.created) || a.key.localeCompare(b.key));
    return new Map(order.map((r) => [r.key, this.assign(r)]));
  }

  release(key: string): void {
    if (this.assigned.has(key)) this.cursor.clear();
    for (const address of this.assigned.get(key) ?? []) {
      const left = (this.holders.get(address) ?? []).filter((h) => h.key !== key);
      if (left.length) this.holders.set(address, left);
      else this.holders.delete(address);
    }
    this.assigned.delete(key);
  }

  /**
   * The Service's addresses: what it requested when that is free (or shareable) and in one of its
   * pools; else what it holds when still valid; else the first free address per family. All or
   * nothing: a failure leaves the Service with no address.
   */
  assign(request: LbRequest): Allocation {
    const previous = [...(this.assigned.get(request.key) ?? request.current)].map(canonicalAddress);
    this.release(request.key);
    const pools = this.pools.filter((p) => !p.selector || matchesSelector(p.selector, request.labels));
    if (pools.length === 0) return { reason: 'NoMatchingPool', message: `no LoadBalancerIPPool selects this Service (${this.pools.length} pools)` };
    const picked: string[] = [];
    const refused: RefusedShare[] = [];
    const withRefused = <T extends object>(a: T): T & { refused?: RefusedShare[] } => (refused.length ? { ...a, refused } : a);
    if (request.requested.length) {
      for (const raw of request.requested) {
        const address = canonicalAddress(raw);
        if (!pools.some((p) => this.usable(p, address))) return { reason: 'AddressNotInPool', message: `${address} is in no LoadBalancerIPPool that selects this Service` };
        const blocker = this.blocker(address, request);
        if (blocker) {
          const why = blocker.policy ?? `share it with the same ${'lightly.dev/allow-shared-ip'} and disjoint ports`;
          return { reason: 'AddressInUse', message: `${address} is in use by ${blocker.key} (${why})` };
        }
        picked.push(address);
      }
    } else {
      for (const family of [...new Set(request.families)]) {
        const address = this.choose(pools, family, request, previous, refused);
        if (!address) {
          this.cursor.clear(); // an address chosen for another family stays free
          return withRefused({ reason: 'PoolExhausted' as const, message: `no free ${family} address in pools ${pools.map((p) => p.name).join(', ')}` });
        }
        picked.push(address);
      }
    }
    const holder: Holder = { key: request.key, ports: request.ports, backend: backendOf(request), policy: describePolicy(request), ...(request.sharingKey ? { sharingKey: request.sharingKey } : {}) };
    for (const address of picked) this.holders.set(address, [...(this.holders.get(address) ?? []), holder]);
    this.assigned.set(request.key, picked);
    return withRefused({ addresses: picked });
  }

  private usable(pool: PreparedPool, address: string): boolean {
    const v6 = address.includes(':');
    const value = addressValue(address);
    return pool.ranges.some((r) => r.v6 === v6 && inCidr(address, r.cidr) && value >= r.first && value <= r.last);
  }

  /** Who keeps `address` from this request, if anyone; `policy` says why when only the traffic policies disagree. */
  private blocker(address: string, request: LbRequest): { key: string; policy?: string } | undefined {
    for (const h of this.holders.get(address) ?? []) {
      if (!request.sharingKey || h.sharingKey !== request.sharingKey || portsOverlap(h.ports, request.ports)) return { key: h.key };
      const policy = policyConflict(h, request);
      if (policy) return { key: h.key, policy };
    }
    return undefined;
  }

  private choose(pools: PreparedPool[], family: Family, request: LbRequest, previous: string[], refused: RefusedShare[]): string | undefined {
    const v6 = family === 'IPv6';
    for (const a of previous) {
      if (familyOf(a) !== family || !pools.some((p) => this.usable(p, a))) continue;
      const blocker = this.blocker(a, request);
      if (!blocker) return a;
      // Its policy changed under a share: it leaves the address to the others, and says why.
      if (blocker.policy) refused.push({ address: a, holder: blocker.key, message: blocker.policy });
    }
    if (request.sharingKey) {
      // An address already shared under this key, when the ports allow: Services meant to share, do.
      for (const [address, hs] of this.holders) {
        if (familyOf(address) !== family || !hs.some((h) => h.sharingKey === request.sharingKey) || refused.some((r) => r.address === address) || !pools.some((p) => this.usable(p, address))) continue;
        const blocker = this.blocker(address, request);
        if (!blocker) return address;
        // Meant to share, kept apart by the traffic policy only: say so, or the operator wonders why.
        if (blocker.policy) refused.push({ address, holder: blocker.key, message: blocker.policy });
      }
    }
    for (const pool of pools) {
      for (const range of pool.ranges) {
        if (range.v6 !== v6) continue;
        // Bounded by the number of held addresses: each step past the first skips one of them.
        for (let n = this.cursor.get(range.cidr) ?? range.first; n <= range.last; n++) {
          const address = addressAt(v6, n);
          if (this.holders.has(address)) continue;
          this.cursor.set(range.cidr, n + 1n);
          return address;
        }
      }
    }
    return undefined;
  }
}
