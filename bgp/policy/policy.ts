// Import and export policy, pure: which prefixes we accept, and what we tell each peer about a route.
import { parseIpv4Prefix, parsePrefix } from '../codec/prefix.js';
import { AFI, AsPathSegmentType, type PathAttributes, type Prefix } from '../codec/types.js';
import { LOCAL, type PeerInfo, type Route } from '../rib/rib.js';

function bits(prefix: Prefix): { afi: number; value: bigint; length: number } {
  const { afi, bytes, length } = parsePrefix(prefix);
  return { afi, value: bytes.reduce((x, b) => (x << 8n) | BigInt(b), 0n), length };
}

/** Whether `inner` lies inside `outer` (same family, at least as long, same leading bits). */
export function contains(outer: Prefix, inner: Prefix): boolean {
  const o = bits(outer);
  const i = bits(inner);
  if (o.afi !== i.afi || i.length < o.length) return false;
  const width = BigInt(o.afi === 1 ? 32 : 128);
  const shift = width - BigInt(o.length);
  return o.value >> shift === i.value >> shift;
}

export interface ImportPolicy {
  importCIDRs: Prefix[];
  allowDefaultRoute: boolean;
  /** Never accepted, whatever importCIDRs say (the Service ranges each node announces for itself). */
  rejectCIDRs?: Prefix[];
}

/** Accepts a prefix inside importCIDRs (any, when empty), and a default route only when allowed. */
export function importAllowed(prefix: Prefix, policy: ImportPolicy): boolean {
  return new ImportFilter(policy).allows(prefix);
}

/** The top `length` bits of an IPv4 address (unsigned). */
function ipv4Network(address: number, length: number): number {
  return length === 0 ? 0 : (address & (-1 << (32 - length))) >>> 0;
}

/**
 * An import policy prepared once for checking every prefix of a full table: the IPv4 CIDRs are
 * parsed up front into numbers, so a check costs one scan of the prefix text and no BigInt.
 */
export class ImportFilter {
  private readonly allowDefaultRoute: boolean;
  /** No importCIDRs: every prefix is in range. */
  private readonly anyRange: boolean;
  private readonly v4: { network: number; length: number }[] = [];
  private readonly v6: Prefix[] = [];
  private readonly reject: Prefix[];

  constructor(policy: ImportPolicy) {
    this.allowDefaultRoute = policy.allowDefaultRoute;
    this.reject = policy.rejectCIDRs ?? [];
    this.anyRange = policy.importCIDRs.length === 0;
    for (const cidr of policy.importCIDRs) {
      const { afi, bytes, length } = parsePrefix(cidr);
      if (afi !== AFI.IPv4) this.v6.push(cidr);
      else this.v4.push({ network: ipv4Network(((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0, length), length });
    }
  }

  allows(prefix: Prefix): boolean {
    if (!this.allowDefaultRoute && prefix.endsWith('/0')) return false;
    if (this.reject.length && this.reject.some((cidr) => contains(cidr, prefix))) return false;
    if (this.anyRange) return true;
    if (prefix.includes(':')) return this.v6.some((cidr) => contains(cidr, prefix));
    const { address, length } = parseIpv4Prefix(prefix);
    return this.v4.some((r) => length >= r.length && ipv4Network(address, r.length) === r.network);
  }
}

export interface LocalSpeaker {
  asn: number;
  routerId: string;
  /** Set when we reflect routes (RFC 4456). */
  clusterId?: string;
}

/** Why a path learned from a peer must not be used: our AS in its path, or a reflection loop. */
export function loopReason(attrs: PathAttributes, from: PeerInfo, local: LocalSpeaker): string | undefined {
  if (from.ebgp && attrs.asPath?.some((s) => s.asns.includes(local.asn))) return 'our AS in AS_PATH';
  if (attrs.originatorId === local.routerId) return 'ORIGINATOR_ID is ours';
  if (local.clusterId && attrs.clusterList?.includes(local.clusterId)) return 'CLUSTER_LIST has our cluster id';
  return undefined;
}

/**
 * What we advertise for `path` to `to`, or undefined for nothing. iBGP split horizon unless we
 * reflect; never back to where it came from; never from one eBGP peer to another (RFC 8212: a node
 * is not transit between its top-of-rack routers); eBGP gets our AS prepended and next hop self.
 */
export function exportAttributes(path: Route, to: PeerInfo, local: LocalSpeaker, nextHopSelf: string): { attrs: PathAttributes; nextHop: string } | undefined {
  const from = path.source;
  if (from !== LOCAL) {
    if (from.id === to.id) return undefined;
    if (from.ebgp && to.ebgp) return undefined;
    if (!from.ebgp && !to.ebgp) {
      // iBGP to iBGP only as a route reflector: client routes to all, non-client routes to clients.
      if (!local.clusterId || (!from.rrClient && !to.rrClient)) return undefined;
    }
  }
  const a = path.attrs;
  if (to.ebgp) {
    const asPath = a.asPath ?? [];
    const first = asPath[0];
    const prepended = first && first.type === AsPathSegmentType.AS_SEQUENCE && first.asns.length < 255
      ? [{ type: first.type, asns: [local.asn, ...first.asns] }, ...asPath.slice(1)]
      : [{ type: AsPathSegmentType.AS_SEQUENCE, asns: [local.asn] }, ...asPath];
    const attrs: PathAttributes = { origin: a.origin ?? 0, asPath: prepended };
    if (a.communities) attrs.communities = a.communities;
    if (a.atomicAggregate) attrs.atomicAggregate = true;
    if (a.aggregator) attrs.aggregator = a.aggregator;
    if (a.unknown) attrs.unknown = a.unknown;
    return { attrs, nextHop: nextHopSelf };
  }
  const attrs: PathAttributes = { ...a, origin: a.origin ?? 0, asPath: a.asPath ?? [], localPref: a.localPref ?? 100 };
  if (from === LOCAL) return { attrs, nextHop: nextHopSelf };
  if (!from.ebgp && local.clusterId) {
    attrs.originatorId = a.originatorId ?? from.routerId;
    attrs.clusterList = [local.clusterId, ...(a.clusterList ?? [])];
  }
  // eBGP-learned routes keep their next hop on iBGP (RFC 4271); reflected ones too (RFC 4456).
  return { attrs, nextHop: path.nextHop };
}
