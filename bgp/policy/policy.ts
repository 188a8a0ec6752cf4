// Import and export policy, pure: which prefixes we accept, and what we tell each peer about a route.
import { parsePrefix } from '../codec/prefix.js';
import { AsPathSegmentType, type PathAttributes, type Prefix } from '../codec/types.js';
import { LOCAL, type Path, type PeerInfo } from '../rib/rib.js';

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
}

/** Accepts a prefix inside importCIDRs (any, when empty), and a default route only when allowed. */
export function importAllowed(prefix: Prefix, policy: ImportPolicy): boolean {
  if (prefix.endsWith('/0') && !policy.allowDefaultRoute) return false;
  if (policy.importCIDRs.length === 0) return true;
  return policy.importCIDRs.some((cidr) => contains(cidr, prefix));
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
 * reflect; never back to where it came from; eBGP gets our AS prepended and next hop self.
 */
export function exportAttributes(path: Path, to: PeerInfo, local: LocalSpeaker, nextHopSelf: string): { attrs: PathAttributes; nextHop: string } | undefined {
  const from = path.source;
  if (from !== LOCAL) {
    if (from.id === to.id) return undefined;
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
