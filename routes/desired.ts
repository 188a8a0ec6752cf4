// Kernel routes as values, pure: normalise, diff desired against actual, render `ip -batch` lines, parse `ip -json`.
import { Address6 } from 'ip-address';
import { ROUTE_PROTOCOL, isLightlyProtocol } from './protocol-number.js';

export type RouteType = 'unicast' | 'blackhole';
/**
 * A route of ours (our protocol) as the kernel has it, also of a type we never write: unreachable,
 * prohibit, throw… (an operator's `ip route add unreachable … proto lightly`, another tool's). Read
 * as 'other', only so a comparison replaces it with what we want or removes it: unseen, it made every
 * add for its prefix fail ("File exists") for good, and stayed.
 */
export type KernelRouteType = RouteType | 'other';

/** What a route of ours in the kernel does (RouteTarget, or of a type we never write). */
export interface KernelTarget {
  type: KernelRouteType;
  nextHops: string[];
  dev?: string;
}

export interface KernelRoute extends KernelTarget {
  prefix: string;
}

/**
 * What a route does, whichever prefix it is for: the prefixes of one UPDATE share one (the
 * reconciler keeps it per prefix), so a full table is not a route object per prefix. A Route is one
 * too; held for another prefix, its own `prefix` is not read.
 */
export interface RouteTarget {
  type: RouteType;
  /** Gateways; more than one is ECMP. Empty for blackholes and for device routes. */
  nextHops: string[];
  /** The link: alone it makes a device route (`dev lxc… scope link`); with gateways it pins them to it. */
  dev?: string;
}

export interface Route extends RouteTarget {
  /** `10.244.2.0/24`, `fd00:244:2::/64`; a bare address is a /32 or /128. */
  prefix: string;
}

/** The route for `prefix` that `target` describes: the target itself when it is that prefix's Route already. */
export function routeWith(prefix: string, target: RouteTarget): Route {
  if ((target as Partial<Route>).prefix === prefix) return target as Route;
  return target.dev === undefined ? { prefix, type: target.type, nextHops: target.nextHops } : { prefix, type: target.type, nextHops: target.nextHops, dev: target.dev };
}

export interface RouteDiff {
  /** Prefixes the kernel has no route of ours for. */
  add: Route[];
  /** Prefixes whose route of ours differs (next hops, type or link). */
  replace: Route[];
  /** Routes of ours for prefixes no longer desired. */
  remove: Route[];
}

export interface RouteChange {
  op: 'add' | 'replace' | 'remove';
  route: Route;
  /** The `ip -batch` line. */
  line: string;
}

export class InvalidRouteError extends Error {
  override name = 'InvalidRouteError';
}

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

export function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

/** A link name as `ip` takes it. */
const LINK_NAME = /^[^\s/%]{1,15}$/;

/** fe80::/10: a next hop there means something only with its link (RFC 4291 §2.5.6, RFC 2545 §3). */
export function isLinkLocal(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address);
}

/**
 * The address as the kernel prints it (IPv6 compressed, lower case). A link-local next hop carries
 * its link as a zone, `fe80::1%eth0` (RFC 4007 §11): `ip` gets it as `via fe80::1 dev eth0`.
 */
export function normaliseAddress(text: string): string {
  if (IPV4.test(text)) return text;
  const zone = text.indexOf('%');
  const address = zone < 0 ? text : text.slice(0, zone);
  if (address.includes(':') && !address.includes('/') && Address6.isValid(address)) {
    const canonical = new Address6(address).correctForm();
    if (zone < 0) return canonical;
    const link = text.slice(zone + 1);
    if (isLinkLocal(canonical) && LINK_NAME.test(link)) return `${canonical}%${link}`;
  }
  throw new InvalidRouteError(`not an IP address: ${JSON.stringify(text)}`);
}

/** An IPv4 prefix's address (as a signed 32-bit integer) and length, as parseIpv4Prefix writes them. */
export interface Ipv4PrefixParts {
  address: number;
  length: number;
}

/**
 * Reads `text` into `into` when it is an IPv4 prefix in canonical decimal (no leading zeros, a
 * length of 0-32; host bits may be set): exactly one text per address and length. A character loop
 * rather than regular expressions, substrings and arrays, and the caller's object rather than a new
 * one: it runs for every prefix of a full table (the kernel's form, the route programmer's table).
 */
export function parseIpv4Prefix(text: string, into: Ipv4PrefixParts): boolean {
  let address = 0;
  let octets = 0;
  let n = -1;
  let i = 0;
  const end = text.length;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (n === 0) return false; // a leading zero
      n = n < 0 ? c - 48 : n * 10 + (c - 48);
      if (n > 255) return false;
    } else if ((c === 46 && octets < 3) || (c === 47 && octets === 3)) {
      if (n < 0) return false;
      address = (address << 8) | n;
      octets++;
      n = -1;
      if (c === 47) break;
    } else return false;
  }
  if (octets !== 4 || i + 1 >= end || end - i > 3) return false;
  let length = 0;
  for (let j = i + 1; j < end; j++) {
    const c = text.charCodeAt(j);
    if (c < 48 || c > 57 || (j === i + 1 && c === 48 && end > j + 1)) return false;
    length = length * 10 + (c - 48);
  }
  if (length > 32) return false;
  into.address = address;
  into.length = length;
  return true;
}

const parsed: Ipv4PrefixParts = { address: 0, length: 0 };

/** Whether `text` is already an IPv4 prefix in the kernel's form: canonical decimal, host bits clear. */
function isCanonicalIpv4Prefix(text: string): boolean {
  // Host bits clear: the low 32 - length bits, shifted out to the left (a shift by 32 is none in JS).
  return parseIpv4Prefix(text, parsed) && (parsed.length === 32 || parsed.address << parsed.length === 0);
}

/** `address/length` as the kernel prints it; a bare address gets /32 or /128; host bits are refused (so would `ip` be). */
export function normalisePrefix(text: string): string {
  if (isCanonicalIpv4Prefix(text)) return text;
  if (text.includes('%')) throw new InvalidRouteError(`a prefix has no zone: ${JSON.stringify(text)}`);
  const slash = text.indexOf('/');
  const address = normaliseAddress(slash < 0 ? text : text.slice(0, slash));
  const max = familyOf(address) === 4 ? 32 : 128;
  const lengthText = slash < 0 ? String(max) : text.slice(slash + 1);
  const length = Number(lengthText);
  if (!/^\d{1,3}$/.test(lengthText) || length > max) throw new InvalidRouteError(`bad prefix length in ${JSON.stringify(text)}`);
  if (max === 32) {
    const value = address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
    const hostBits = length === 32 ? 0 : value % 2 ** (32 - length);
    if (hostBits !== 0) throw new InvalidRouteError(`${text} has host bits set`);
  } else if (new Address6(`${address}/${length}`).startAddress().correctForm() !== address) {
    throw new InvalidRouteError(`${text} has host bits set`);
  }
  return `${address}/${length}`;
}

/**
 * The one form routes are compared and rendered in: canonical prefix and gateways, gateways sorted
 * and unique, nothing but the prefix on a blackhole. Throws InvalidRouteError for what `ip` would refuse.
 */
export function normaliseRoute(route: Route): Route {
  const prefix = normalisePrefix(route.prefix);
  if (route.type === 'blackhole') return { prefix, type: 'blackhole', nextHops: [] };
  if (route.type !== 'unicast') throw new InvalidRouteError(`${prefix}: unknown route type ${JSON.stringify(route.type)}`);
  const nextHops = [...new Set(route.nextHops.map(normaliseAddress))].sort();
  for (const hop of nextHops) {
    if (familyOf(hop) !== familyOf(prefix)) throw new InvalidRouteError(`${prefix}: next hop ${hop} is of the other family`);
  }
  if (route.dev !== undefined && !LINK_NAME.test(route.dev)) throw new InvalidRouteError(`${prefix}: bad link name ${JSON.stringify(route.dev)}`);
  if (nextHops.length === 0 && route.dev === undefined) throw new InvalidRouteError(`${prefix}: a unicast route needs next hops or a link`);
  return route.dev === undefined ? { prefix, type: 'unicast', nextHops } : { prefix, type: 'unicast', nextHops, dev: route.dev };
}

/**
 * Whether the kernel's route for a prefix fulfils the one desired for it; next-hop order does not
 * matter, an unset link is any link. Targets: the caller pairs them by prefix.
 */
export function satisfies(actual: KernelTarget, desired: RouteTarget): boolean {
  if (actual.type !== desired.type) return false;
  if (desired.type === 'blackhole') return true;
  if (!sameHops(actual.nextHops, desired.nextHops)) return false;
  return desired.dev === undefined || actual.dev === desired.dev;
}

function sameHops(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  if (a.length === 1) return a[0] === b[0];
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.every((hop, i) => hop === sb[i]);
}

/** Both sides keyed by normalised prefix (as normaliseRoute and parseIpRoutes give them). */
export function diffRoutes(desired: Iterable<Route>, actual: Iterable<Route>): RouteDiff {
  const actualByPrefix = new Map<string, Route>();
  for (const r of actual) actualByPrefix.set(r.prefix, r);
  const wanted = new Set<string>();
  const add: Route[] = [];
  const replace: Route[] = [];
  for (const r of desired) {
    wanted.add(r.prefix);
    const current = actualByPrefix.get(r.prefix);
    if (!current) add.push(r);
    else if (!satisfies(current, r)) replace.push(r);
  }
  const remove: Route[] = [];
  for (const r of actualByPrefix.values()) if (!wanted.has(r.prefix)) remove.push(r);
  return { add, replace, remove };
}

function target(r: RouteTarget): string {
  const dev = r.dev === undefined ? '' : ` dev ${r.dev}`;
  if (r.type === 'blackhole') return '';
  if (r.nextHops.length === 0) return `${dev} scope link`;
  // A zoned (link-local) gateway names its own link; the kernel refuses fe80::/10 without one.
  const via = (hop: string): string => {
    const zone = hop.indexOf('%');
    return zone < 0 ? ` via ${hop}${dev}` : ` via ${hop.slice(0, zone)} dev ${hop.slice(zone + 1)}`;
  };
  if (r.nextHops.length === 1) return via(r.nextHops[0]!);
  return r.nextHops.map((hop) => ` nexthop${via(hop)}`).join('');
}

/** A line's head; a delete names no type but a blackhole's, so any route of ours for the prefix goes ('other' too). */
function head(verb: string, prefix: string, r: KernelTarget): string {
  return `route ${verb} ${r.type === 'blackhole' ? 'blackhole ' : ''}${prefix} proto ${ROUTE_PROTOCOL}`;
}

/**
 * New prefixes are `add`ed, not `replace`d: replace matches on prefix and metric only, so it would
 * silently take over another protocol's route for the prefix (seen on Linux 6.x with a proto static
 * route); add fails with "File exists" instead, and the conflict is reported.
 */
export function renderAdd(r: Route): string {
  return head('add', r.prefix, r) + target(r);
}

/** For a prefix that already has our route: the kernel swaps it in place, type changes included. */
export function renderReplace(r: Route): string {
  return head('replace', r.prefix, r) + target(r);
}

/** `proto 201` makes the kernel match only our route, whatever else holds the prefix. */
export function renderDelete(r: Route): string {
  return head('del', r.prefix, r);
}

/**
 * Removes every route of ours through one next hop alone (not one through it among others, nor
 * another protocol's), in the main table. IPv4 only: `ip route flush` reads an IPv6 gateway but
 * lists IPv4 routes unless run as `ip -6`.
 */
export function renderFlushVia(gateway: string): string {
  return `route flush proto ${ROUTE_PROTOCOL} via ${gateway} table main`;
}

/** One change for the kernel: what an `ip -batch` line says, as a value. */
export interface RouteWrite {
  op: 'add' | 'replace' | 'delete' | 'flush';
  prefix: string;
  /** What the kernel has for the prefix once the change succeeds; undefined for a delete or flush. */
  route: RouteTarget | undefined;
  /** What it had before. */
  have: KernelTarget | undefined;
  /** A flush: the gateway, and every prefix it removes (`prefix` is the first). */
  gateway?: string;
  covers?: string[];
}

/** The change as an `ip -batch` line. */
export function renderWrite(w: RouteWrite): string {
  if (w.op === 'flush') return renderFlushVia(w.gateway!);
  if (w.op === 'delete') return head('del', w.prefix, w.have!);
  return head(w.op, w.prefix, w.route!) + target(w.route!);
}

/** Removes first (they free the prefixes), then adds, then replaces; one line per change. */
export function renderChanges(diff: RouteDiff): RouteChange[] {
  return [
    ...diff.remove.map((route) => ({ op: 'remove' as const, route, line: renderDelete(route) })),
    ...diff.add.map((route) => ({ op: 'add' as const, route, line: renderAdd(route) })),
    ...diff.replace.map((route) => ({ op: 'replace' as const, route, line: renderReplace(route) })),
  ];
}

export function renderBatch(diff: RouteDiff): string[] {
  return renderChanges(diff).map((change) => change.line);
}

/** The CNI plugin's host route to a pod: `route replace 10.244.1.2/32 dev lxc… scope link proto 201`. */
export function podRouteLine(ip: string, dev: string): string {
  return `route replace ${normalisePrefix(ip)} dev ${dev} scope link proto ${ROUTE_PROTOCOL}`;
}

interface IpJsonHop {
  gateway?: string;
  dev?: string;
}

interface IpJsonRoute extends IpJsonHop {
  dst: string;
  type?: string;
  protocol?: string;
  table?: string;
  nexthops?: IpJsonHop[];
}

/**
 * Parses `ip -json route show` of one family into routes of ours: rows of another protocol or
 * table (when the output was not filtered) or that do not parse are left out; rows of a type we
 * never write (unreachable, prohibit…) come as type 'other'. `protocol` reads `lightly` or `201`
 * depending on rt_protos.d.
 */
export function parseIpRoutes(text: string, family?: 4 | 6): KernelRoute[] {
  return routesFromRows(text.trim() ? (JSON.parse(text) as unknown[]) : [], family);
}

/** parseIpRoutes for rows already split out of the array (a table read as it streams). */
export function routesFromRows(parsed: unknown[], family?: 4 | 6): KernelRoute[] {
  const rows = parsed as IpJsonRoute[];
  const routes: KernelRoute[] = [];
  for (const row of rows) {
    if (row.protocol !== undefined && !isLightlyProtocol(row.protocol)) continue;
    if (row.table !== undefined && row.table !== 'main') continue;
    if (typeof row?.dst !== 'string') continue;
    const rowFamily = family ?? (row.dst.includes(':') || row.gateway?.includes(':') || row.nexthops?.[0]?.gateway?.includes(':') ? 6 : 4);
    const prefix = row.dst === 'default' ? (rowFamily === 6 ? '::/0' : '0.0.0.0/0') : row.dst;
    const route = rowToRoute(row, prefix);
    if (!route) continue;
    try {
      routes.push(route.type === 'other' ? { prefix: normalisePrefix(prefix), type: 'other', nextHops: [] } : normaliseRoute(route as Route));
    } catch (err) {
      if (!(err instanceof InvalidRouteError)) throw err;
    }
  }
  return routes;
}

function rowToRoute(row: IpJsonRoute, prefix: string): KernelRoute | undefined {
  if (row.type === 'blackhole') return { prefix, type: 'blackhole', nextHops: [] };
  if (row.type !== undefined && row.type !== 'unicast') return { prefix, type: 'other', nextHops: [] };
  const hops = row.nexthops ?? [row];
  // A link-local gateway is read back zoned with its link, the form the speaker hands it over in.
  const gateways = hops.map((h) => (h.gateway !== undefined && h.dev !== undefined && isLinkLocal(h.gateway) ? `${h.gateway}%${h.dev}` : h.gateway)).filter((g): g is string => g !== undefined);
  if (gateways.length !== hops.length && gateways.length > 0) return undefined; // a hop without gateway inside ECMP: not a shape we write
  const devs = new Set(hops.map((h) => h.dev));
  const dev = devs.size === 1 ? [...devs][0] : undefined;
  if (gateways.length === 0 && dev === undefined) return undefined;
  return dev === undefined ? { prefix, type: 'unicast', nextHops: gateways } : { prefix, type: 'unicast', nextHops: gateways, dev };
}
