// The main table's routes other than ours, through the addon's rtnetlink dump (native/route_dump.c),
// for next-hop resolution: `ip -json route show` prints every route, a full table of ours included
// (0.3-0.5 s of CPU per 100,000 routes, mostly `ip`'s), where the addon drops ours in C as the
// kernel hands them over and returns the few left.
import { SocketAddress } from 'node:net';
import type { IpRouteRow } from './reachability.js';
import { netnsPath } from './netlink.js';

/** route_dump.c's part of the addon. */
export interface RouteDumpApi {
  /**
   * The main table's IPv4 and IPv6 routes but those of protocol `skipProtocol`, on the thread pool:
   * ROUTE_RECORD bytes each (decodeRouteRecords). Rejects when the kernel cannot be read.
   */
  routeDump(netnsPath: string | null, skipProtocol: number): Promise<Buffer>;
}

/** Family, prefix length, type, protocol (a byte each), rtm_flags (4), link name (16), destination (16). */
export const ROUTE_RECORD = 40;
const RTN_UNICAST = 1;
const RTNH_F_LINKDOWN = 16;
/** As `ip` names route types (rtnetlink.h RTN_*). */
const TYPE_NAMES: Record<number, string> = { 2: 'local', 3: 'broadcast', 4: 'anycast', 5: 'multicast', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit', 9: 'throw', 10: 'nat', 11: 'xresolve' };

/** The records as rows of `ip -json route show`, with the fields reachability reads (pure). */
export function decodeRouteRecords(bytes: Buffer): IpRouteRow[] {
  const rows: IpRouteRow[] = [];
  for (let at = 0; at + ROUTE_RECORD <= bytes.length; at += ROUTE_RECORD) {
    const v4 = bytes[at] === 4;
    const length = bytes[at + 1]!;
    const type = bytes[at + 2]!;
    const flags = bytes.readUInt32LE(at + 4);
    const nameEnd = bytes.subarray(at + 8, at + 24).indexOf(0);
    // UTF-8, as ip's JSON gives a link name: the kernel takes any bytes but '/', ':' and spaces.
    const dev = bytes.toString('utf8', at + 8, nameEnd < 0 ? at + 24 : at + 8 + nameEnd);
    const address = v4
      ? `${bytes[at + 24]}.${bytes[at + 25]}.${bytes[at + 26]}.${bytes[at + 27]}`
      : ipv6Text(bytes, at + 24);
    // A host route without its length, as ip prints it: rows spelt alike whichever way the table was
    // read, so a read through ip after a failed dump is no change (ReachabilityTable.key).
    const dst = length === 0 ? 'default' : length === (v4 ? 32 : 128) ? address : `${address}/${length}`;
    const row: IpRouteRow = { dst, protocol: String(bytes[at + 3]) };
    if (type !== RTN_UNICAST) row.type = TYPE_NAMES[type] ?? String(type);
    if (dev) row.dev = dev;
    if (flags & RTNH_F_LINKDOWN) row.flags = ['linkdown'];
    rows.push(row);
  }
  return rows;
}

/**
 * An IPv6 address as ip prints it, by inet_ntop (libuv's, behind SocketAddress, is the same code):
 * an IPv4-mapped or -compatible one with its last 32 bits dotted (`::ffff:192.0.2.1`), not as
 * ip-address's correctForm (`::ffff:c000:201`), so the rows are spelt alike whichever way they were read.
 */
function ipv6Text(bytes: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(at + i).toString(16));
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

/** The main table's routes but `skipProtocol`'s, in the named namespace (default: our own). */
export async function dumpRoutes(api: RouteDumpApi, skipProtocol: number, netns?: string): Promise<IpRouteRow[]> {
  return decodeRouteRecords(await api.routeDump(netnsPath(netns) ?? null, skipProtocol));
}
