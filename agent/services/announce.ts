// Which Service prefixes this node announces, pure: the BGPConfiguration's ranges, the Services and
// where their ready endpoints are in; prefixes with the Services that cause them out, and the
// addresses left out (outside every configured range) with why. Nothing outside the ranges is announced.
import { canonicalCidr, inAnyCidr } from './addresses.js';
import { type SlimEndpointSlice, type SlimService, hostPrefix, wantsLoadBalancerIP } from './objects.js';

/** BGPConfiguration spec.serviceClusterIPs / serviceExternalIPs / serviceLoadBalancerIPs: CIDRs. */
export interface ServiceAdvertisement {
  clusterIPs: string[];
  externalIPs: string[];
  loadBalancerIPs: string[];
}

/** The BGPConfiguration's Service ranges, as DesiredBgp carries them (absent when none is set). */
export function serviceAdvertisement(spec: { serviceClusterIPs?: { cidr: string }[]; serviceExternalIPs?: { cidr: string }[]; serviceLoadBalancerIPs?: { cidr: string }[] }): { services?: ServiceAdvertisement } {
  const cidrs = (list?: { cidr: string }[]): string[] => (list ?? []).map((c) => c.cidr);
  const services = { clusterIPs: cidrs(spec.serviceClusterIPs), externalIPs: cidrs(spec.serviceExternalIPs), loadBalancerIPs: cidrs(spec.serviceLoadBalancerIPs) };
  return services.clusterIPs.length + services.externalIPs.length + services.loadBalancerIPs.length ? { services } : {};
}

/** Every CIDR of the advertisement: never imported from peers (each node decides its own announcements). */
export const advertisedRanges = (a: ServiceAdvertisement | undefined): string[] => (a ? [...a.clusterIPs, ...a.externalIPs, ...a.loadBalancerIPs] : []);

export type AnnouncementOrigin = 'service-cluster-ip-range' | 'service-external-ip' | 'service-load-balancer-ip';

export interface ServiceAnnouncement {
  prefix: string;
  origin: AnnouncementOrigin;
  /** namespace/name of each Service that makes us announce it (none for the cluster IP range). */
  services: string[];
}

export interface IgnoredAddress {
  service: string;
  address: string;
  reason: 'ExternalIPNotAdvertised' | 'LoadBalancerIPNotAdvertised';
  message: string;
}

/** Service key → the nodes with at least one ready endpoint of it. */
export function readyNodesByService(slices: Iterable<SlimEndpointSlice>): Map<string, Set<string>> {
  const nodes = new Map<string, Set<string>>();
  for (const slice of slices) {
    if (!slice.service) continue;
    for (const e of slice.endpoints) {
      if (!e.ready || !e.nodeName) continue;
      let set = nodes.get(slice.service);
      if (!set) nodes.set(slice.service, (set = new Set()));
      set.add(e.nodeName);
    }
  }
  return nodes;
}

/**
 * The cluster IP ranges from every node, as aggregates. External and LoadBalancer addresses as host
 * prefixes: from every node for externalTrafficPolicy Cluster; for Local only from a node with a
 * ready endpoint of the Service (traffic must not land where kube-proxy would drop it).
 */
export function serviceAnnouncements(
  node: string,
  config: ServiceAdvertisement,
  services: Iterable<SlimService>,
  readyNodes: ReadonlyMap<string, ReadonlySet<string>>,
): { announcements: ServiceAnnouncement[]; ignored: IgnoredAddress[] } {
  const byPrefix = new Map<string, ServiceAnnouncement>();
  for (const cidr of config.clusterIPs) {
    const prefix = canonicalCidr(cidr);
    byPrefix.set(prefix, { prefix, origin: 'service-cluster-ip-range', services: [] });
  }
  const ignored: IgnoredAddress[] = [];
  const add = (address: string, origin: AnnouncementOrigin, service: string): void => {
    const prefix = hostPrefix(address);
    const entry = byPrefix.get(prefix);
    if (!entry) byPrefix.set(prefix, { prefix, origin, services: [service] });
    else if (!entry.services.includes(service)) entry.services.push(service);
  };
  for (const s of services) {
    // Another class's addresses are its implementation's to announce.
    const lb = wantsLoadBalancerIP(s) ? s.ingress : [];
    const candidates: [string, AnnouncementOrigin, string[], IgnoredAddress['reason'], string][] = [
      ...s.externalIPs.map((a): [string, AnnouncementOrigin, string[], IgnoredAddress['reason'], string] => [a, 'service-external-ip', config.externalIPs, 'ExternalIPNotAdvertised', 'serviceExternalIPs']),
      ...lb.map((a): [string, AnnouncementOrigin, string[], IgnoredAddress['reason'], string] => [a, 'service-load-balancer-ip', config.loadBalancerIPs, 'LoadBalancerIPNotAdvertised', 'serviceLoadBalancerIPs']),
    ];
    if (candidates.length === 0) continue;
    const here = s.externalTrafficPolicy === 'Cluster' || (readyNodes.get(s.key)?.has(node) ?? false);
    for (const [address, origin, ranges, reason, field] of candidates) {
      if (!inAnyCidr(address, ranges)) {
        ignored.push({ service: s.key, address, reason, message: `${address} is not announced over BGP: it is outside the BGPConfiguration's ${field} (${ranges.join(', ') || 'none'})` });
        continue;
      }
      if (here) add(address, origin, s.key);
    }
  }
  const announcements = [...byPrefix.values()].sort((a, b) => a.prefix.localeCompare(b.prefix));
  for (const a of announcements) a.services.sort();
  return { announcements, ignored };
}
