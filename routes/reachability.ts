// Next-hop reachability as the kernel sees it (RFC 4271 §9.1.2.1): pure, built from `ip -json` output.
import { Address4, Address6 } from 'ip-address';
import { isLinkLocal } from './desired.js';
import { isLightlyProtocol } from './protocol-number.js';

/** How a BGP next hop resolves: by a connected subnet or a specific route, not at all, or it is ours. */
export type Reachability = 'reachable' | 'unreachable' | 'local';

/** The fields of an `ip -json route show` row that matter here. */
export interface IpRouteRow {
  dst: string;
  type?: string;
  protocol?: string;
  dev?: string;
  flags?: string[];
}

/** The fields of an `ip -json addr show` row that matter here. */
export interface IpAddressRow {
  ifname?: string;
  /** UP once the link carries traffic: the kernel sets it up to a second after `ip link set up`. */
  operstate?: string;
  addr_info?: { local?: string }[];
}

interface Net {
  v6: boolean;
  value: bigint;
  length: number;
}

function addressValue(address: string): { v6: boolean; value: bigint } | undefined {
  if (Address4.isValid(address) && !address.includes('/')) return { v6: false, value: new Address4(address).bigInt() };
  if (Address6.isValid(address) && !address.includes('/') && !address.includes('%')) return { v6: true, value: new Address6(address).bigInt() };
  return undefined;
}

/** How an address is told apart: by value, and for a link-local one by its link too (`fe80::1%eth0`). */
function addressKey(address: string): string | undefined {
  const zone = address.indexOf('%');
  const a = addressValue(zone < 0 ? address : address.slice(0, zone));
  return a && `${a.v6}:${a.value}${zone < 0 ? '' : address.slice(zone)}`;
}

function net(dst: string): Net | undefined {
  const [address = '', lengthText] = dst.split('/');
  const a = addressValue(address);
  if (!a) return undefined;
  const length = lengthText === undefined ? (a.v6 ? 128 : 32) : Number(lengthText);
  return { ...a, length };
}

const width = (v6: boolean): bigint => (v6 ? 128n : 32n);

/**
 * Which routes make a next hop resolvable: unicast routes of the main table other than a default
 * route, a route of ours (a next hop resolved through a BGP route would be recursive, and could
 * resolve through itself), or one whose link is down. Connected subnets are routes of the table
 * (proto kernel, scope link), so they count like any other.
 */
export function resolvingRoute(row: IpRouteRow): boolean {
  if (row.dst === 'default' || row.dst.endsWith('/0')) return false;
  if (row.type !== undefined && row.type !== 'unicast') return false;
  if (row.protocol !== undefined && isLightlyProtocol(row.protocol)) return false;
  return !(row.flags ?? []).includes('linkdown');
}

export class ReachabilityTable {
  private readonly nets: Net[];
  private readonly locals: Set<string>;
  private readonly links: Set<string>;
  /** Identifies what the table decides from, to tell whether a re-read changed anything. */
  readonly key: string;

  /**
   * `localAddresses`: link-local ones zoned with their link (`fe80::1%eth0`). `linkLocalLinks`: the
   * links with a usable fe80::/64 route, where a zoned link-local next hop resolves.
   */
  constructor(routePrefixes: string[], localAddresses: string[], linkLocalLinks: string[] = [], linkStates: string[] = []) {
    this.nets = routePrefixes.map(net).filter((n): n is Net => n !== undefined);
    this.locals = new Set(localAddresses.map(addressKey).filter((k): k is string => k !== undefined));
    this.links = new Set(linkLocalLinks);
    // Links' states count as a change too: the speaker learns the addresses of a session's link,
    // the ones it sends as next hops, only from links that are up (Node's networkInterfaces), and is
    // told to look again when this table changes (a link up a moment after its session: RFC 2545 §3).
    this.key = JSON.stringify([[...routePrefixes].sort(), [...this.locals].sort(), [...this.links].sort(), [...linkStates].sort()]);
  }

  /** From `ip -json route show table main` (each family's text) and `ip -json addr show`. */
  static fromIpJson(routeTexts: string[], addressText: string): ReachabilityTable {
    return ReachabilityTable.fromRows(routeTexts.flatMap((t) => (t.trim() ? (JSON.parse(t) as IpRouteRow[]) : [])), addressText);
  }

  /** From route rows already parsed (streamed, see routes/ip.ts streamIpJson) and the `ip -json addr show` text. */
  static fromRows(routeRows: IpRouteRow[], addressText: string): ReachabilityTable {
    const rows = routeRows.filter(resolvingRoute);
    const linkRows = addressText.trim() ? (JSON.parse(addressText) as IpAddressRow[]) : [];
    const addresses = linkRows.flatMap((l) =>
      (l.addr_info ?? []).flatMap((i) => (!i.local ? [] : isLinkLocal(i.local) ? (l.ifname ? [`${i.local}%${l.ifname}`] : []) : [i.local])));
    const links = rows.flatMap((r) => (isLinkLocal(r.dst) && r.dev ? [r.dev] : []));
    const states = linkRows.map((l) => `${l.ifname}:${l.operstate}`);
    return new ReachabilityTable(rows.map((r) => r.dst), addresses, links, states);
  }

  resolve(address: string): Reachability {
    const zone = address.indexOf('%');
    const a = addressValue(zone < 0 ? address : address.slice(0, zone));
    if (!a) return 'unreachable';
    if (this.locals.has(addressKey(address)!)) return 'local';
    // A link-local next hop resolves on its own link only, never through some other link's fe80::/64:
    // without a link it is unreachable (RFC 2545 §3, RFC 4291 §2.5.6).
    if (a.v6 && isLinkLocal(address)) return zone > 0 && this.links.has(address.slice(zone + 1)) ? 'reachable' : 'unreachable';
    if (zone >= 0) return 'unreachable';
    for (const n of this.nets) {
      if (n.v6 !== a.v6 || n.length === 0) continue;
      const shift = width(n.v6) - BigInt(n.length);
      if (a.value >> shift === n.value >> shift) return 'reachable';
    }
    return 'unreachable';
  }
}
