// The main table's routes through the addon's rtnetlink dump (native/route_dump.c), where `ip -json
// route show` prints every route as JSON, a full table of ours included:
// - all but ours, for next-hop resolution: the addon drops ours in C and returns the few left;
// - only ours, for the reconciler's comparison with the kernel: the kernel filters them, and each
//   comes back as a compact record (at 1,000,000 routes `ip -json` and its parsing cost ~7 s of CPU).
import { SocketAddress } from 'node:net';
import { Address6 } from 'ip-address';
import { InvalidRouteError, type KernelRoute, isLinkLocal, normaliseRoute } from './desired.js';
import type { IpRouteRow } from './reachability.js';

/** route_dump.c's part of the addon. */
export interface RouteDumpApi {
  /**
   * The main table's IPv4 and IPv6 routes but those of protocol `skipProtocol`, on the thread pool:
   * ROUTE_RECORD bytes each (decodeRouteRecords). Rejects when the kernel cannot be read.
   */
  routeDump(netnsPath: string | null, skipProtocol: number): Promise<Buffer>;
  /** Only `protocol`'s routes of the main table, with their next hops (decodeOwnRoutes). */
  routeDump(netnsPath: string | null, protocol: number, only: true): Promise<Buffer>;
}

/**
 * The addon's bytes as a Buffer made in JS, over the same memory. A Buffer made in C++ (N-API's:
 * node::Buffer::New sets Buffer.prototype on a Uint8Array) has a hidden class of its own, which V8
 * holds only weakly: Buffer's methods it goes through (toString, subarray, readUInt16BE…) are the
 * ones the BGP codec runs on every UPDATE, their optimised code then checks for both classes, and
 * a full collection with no such Buffer left alive throws that code away ("weak objects" in
 * --trace-deopt; bgp/speaker/optimised-code.test.ts).
 */
export function madeInJs(bytes: Buffer): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The path the addon enters for a named namespace (`ip netns add` makes it); null: our own. */
const pathOf = (netns?: string): string | null => (netns ? `/var/run/netns/${netns}` : null);

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
    const address = v4 ? addressAt(bytes, at + 24, true) : ipv6Text(bytes, at + 24);
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
  return decodeRouteRecords(madeInJs(await api.routeDump(pathOf(netns), skipProtocol)));
}

/**
 * Records decoded between yields to the event loop: a million take seconds, sessions and the status
 * socket must not wait. Small, so a slice's routes die young: slices of 10,000 (~0.7 MB) outlived
 * the agent's 1 MB young generation, ~70 MB per million went to the old one, and the collector's
 * memory-reducing mark-compacts (--optimize-for-size) then held the event loop 200-350 ms each.
 */
const DECODE_SLICE = 1_000;

/**
 * `protocol`'s routes in the main table as Routes (what Ip.readRoutes reads through `ip -json`), a
 * slice at a time, the event loop served between slices. The dump itself is one call: it fails
 * before the first slice or not at all.
 */
export async function* dumpOwnRouteSlices(api: RouteDumpApi, protocol: number, netns?: string): AsyncGenerator<KernelRoute[], void, void> {
  const bytes = madeInJs(await api.routeDump(pathOf(netns), protocol, true));
  for (const slice of ownRouteSlices(bytes, DECODE_SLICE)) {
    yield slice;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** dumpOwnRouteSlices, all of them in one list (tests, tools). */
export async function dumpOwnRoutes(api: RouteDumpApi, protocol: number, netns?: string): Promise<KernelRoute[]> {
  const routes: KernelRoute[] = [];
  for await (const slice of dumpOwnRouteSlices(api, protocol, netns)) for (const r of slice) routes.push(r);
  return routes;
}

const RTN_BLACKHOLE = 6;
/** An only-mode record's head: family, prefix length, type, 0, hop count (2, little-endian as the host writes it). */
const OWN_HEAD = 6;

/**
 * An address of our routes as the reconciler keys them (normalisePrefix, normaliseAddress: IPv6 in
 * ip-address's correct form), not as ip prints it (ipv6Text): the comparison looks our records up by it.
 */
function addressAt(bytes: Buffer, at: number, v4: boolean): string {
  return v4 ? `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}` : Address6.fromUnsignedByteArray([...bytes.subarray(at, at + 16)]).correctForm();
}

/**
 * An only-mode dump (native/route_dump.c take_own_route) as Routes, read as routes/desired.ts
 * routesFromRows reads `ip -json` rows (pure): blackholes, unicast routes through gateways (a
 * link-local one zoned with its link) or a link, and routes of other types as 'other'; ECMP with a
 * hop without gateway left out. A route through one gateway, nearly every route of a full table, is made as the
 * normalised Route directly, its next-hop list shared with every other route through that gateway.
 */
export function decodeOwnRoutes(bytes: Buffer): KernelRoute[] {
  return [...ownRouteSlices(bytes, Infinity)].flat();
}

/** decodeOwnRoutes a slice of at most `slice` records at a time. */
export function* ownRouteSlices(bytes: Buffer, slice: number): Generator<KernelRoute[], void, void> {
  if (bytes.length < 4) return;
  const linkCount = bytes.readUInt32LE(bytes.length - 4);
  const end = bytes.length - 4 - linkCount * 20;
  const links = new Map<number, string>();
  for (let at = end; at < bytes.length - 4; at += 20) {
    const name = bytes.subarray(at + 4, at + 20);
    const zero = name.indexOf(0);
    links.set(bytes.readUInt32LE(at), name.toString('utf8', 0, zero < 0 ? 16 : zero));
  }
  // The next-hop list of the routes through one gateway alone, by the gateway's bytes (an IPv4 one
  // as a number): a million routes through a peer make no string and no list each.
  const sole = new Map<number | string, string[]>();
  let routes: KernelRoute[] = [];
  let records = 0;
  for (let at = 0; at + OWN_HEAD <= end; ) {
    if (records++ === slice) {
      yield routes;
      routes = [];
      records = 1;
    }
    const v4 = bytes[at] === 4;
    const size = v4 ? 4 : 16;
    const length = bytes[at + 1]!;
    const type = bytes[at + 2]!;
    const hopCount = bytes.readUInt16LE(at + 4);
    const prefix = `${addressAt(bytes, at + OWN_HEAD, v4)}/${length}`;
    const hops = at + OWN_HEAD + size;
    at = hops + hopCount * (8 + size);
    if (type === RTN_BLACKHOLE) {
      routes.push({ prefix, type: 'blackhole', nextHops: [] });
      continue;
    }
    if (type !== RTN_UNICAST) {
      // Of a type we never write (unreachable, prohibit, throw…): read so a comparison replaces or removes it.
      routes.push({ prefix, type: 'other', nextHops: [] });
      continue;
    }
    if (hopCount === 1 && bytes[hops + 4] !== 0 && (v4 || bytes[hops + 8] !== 0xfe || (bytes[hops + 9]! & 0xc0) !== 0x80)) {
      // One gateway, not link-local: nearly every route of a full table.
      const key = v4 ? bytes.readUInt32BE(hops + 8) : addressAt(bytes, hops + 8, false);
      let nextHops = sole.get(key);
      if (!nextHops) sole.set(key, (nextHops = [typeof key === 'string' ? key : addressAt(bytes, hops + 8, true)]));
      const dev = links.get(bytes.readUInt32LE(hops));
      routes.push(dev === undefined ? { prefix, type: 'unicast', nextHops } : { prefix, type: 'unicast', nextHops, dev });
      continue;
    }
    const gateways: string[] = [];
    const devs = new Set<string | undefined>();
    for (let h = hops; h < at; h += 8 + size) {
      const dev = links.get(bytes.readUInt32LE(h));
      devs.add(dev);
      if (bytes[h + 4] === 0) continue;
      const gateway = addressAt(bytes, h + 8, v4);
      gateways.push(dev !== undefined && isLinkLocal(gateway) ? `${gateway}%${dev}` : gateway);
    }
    if (gateways.length !== hopCount && gateways.length > 0) continue;
    const dev = devs.size === 1 ? [...devs][0] : undefined;
    if (gateways.length === 0 && dev === undefined) continue;
    try {
      routes.push(normaliseRoute(dev === undefined ? { prefix, type: 'unicast', nextHops: gateways } : { prefix, type: 'unicast', nextHops: gateways, dev }));
    } catch (err) {
      if (!(err instanceof InvalidRouteError)) throw err;
    }
  }
  yield routes;
}
