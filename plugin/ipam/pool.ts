// Address pools, pure: parse ranges into numeric bounds and choose the order in which to try addresses.
import { Address4, Address6 } from 'ip-address';
import { CniCode, CniError } from '../errors.js';
import type { IpamRange } from '../spec.js';

export interface AddressRange {
  family: 4 | 6;
  /** The subnet as written canonically, e.g. 10.244.1.0/24. */
  subnet: string;
  prefixLength: number;
  /** First and last assignable address, inclusive. */
  first: bigint;
  last: bigint;
  gateway?: string;
}

/** One range set: one address is allocated from it per attachment (first range with room wins). */
export type RangeSet = AddressRange[];

function invalid(msg: string): CniError {
  return new CniError(CniCode.INVALID_CONFIG, msg);
}

export function parseAddress(text: string): { family: 4 | 6; value: bigint } {
  if (Address4.isValid(text) && !text.includes('/')) return { family: 4, value: new Address4(text).bigInt() };
  if (Address6.isValid(text) && !text.includes('/')) return { family: 6, value: new Address6(text).bigInt() };
  throw invalid(`invalid IP address ${JSON.stringify(text)}`);
}

export function formatAddress(family: 4 | 6, value: bigint): string {
  return family === 4 ? Address4.fromBigInt(value).correctForm() : Address6.fromBigInt(value).correctForm();
}

/**
 * Parses one range. Like host-local, the network address is never handed out, nor the broadcast
 * address of an IPv4 subnet (/31 and /32 have neither), nor the gateway (by default the first host).
 */
export function parseRange(range: IpamRange): AddressRange {
  const { subnet } = range;
  const slash = subnet.indexOf('/');
  if (slash < 0) throw invalid(`ipam subnet ${JSON.stringify(subnet)} needs a prefix length`);
  let family: 4 | 6;
  let network: bigint;
  let broadcast: bigint;
  let prefixLength: number;
  if (Address4.isValid(subnet)) {
    const a = new Address4(subnet);
    family = 4;
    prefixLength = a.subnetMask;
    network = a.startAddress().bigInt();
    broadcast = a.endAddress().bigInt();
  } else if (Address6.isValid(subnet)) {
    const a = new Address6(subnet);
    family = 6;
    prefixLength = a.subnetMask;
    network = a.startAddress().bigInt();
    broadcast = a.endAddress().bigInt();
  } else {
    throw invalid(`invalid ipam subnet ${JSON.stringify(subnet)}`);
  }
  rejectUnusable(subnet, family, prefixLength, network, broadcast);
  const reservesEnds = family === 6 ? prefixLength < 127 : prefixLength < 31;
  let first = reservesEnds ? network + 1n : network;
  let last = family === 4 && reservesEnds ? broadcast - 1n : broadcast;
  const inSubnet = (text: string, what: string): bigint => {
    const addr = parseAddress(text);
    if (addr.family !== family || addr.value < network || addr.value > broadcast) {
      throw invalid(`ipam ${what} ${text} is not inside ${subnet}`);
    }
    return addr.value;
  };
  if (range.rangeStart) first = inSubnet(range.rangeStart, 'rangeStart');
  if (range.rangeEnd) last = inSubnet(range.rangeEnd, 'rangeEnd');
  if (range.gateway) inSubnet(range.gateway, 'gateway');
  // As host-local does, the first address is the subnet's gateway by default and is not handed out.
  const gateway = range.gateway ?? (reservesEnds ? formatAddress(family, network + 1n) : undefined);
  if (first > last) throw invalid(`ipam range of ${subnet} is empty`);
  const canonical = `${formatAddress(family, network)}/${prefixLength}`;
  return { family, subnet: canonical, prefixLength, first, last, gateway };
}

/** Blocks no pod address may come from: [family, first, last, why]. */
const UNUSABLE: [4 | 6, bigint, bigint, string][] = [
  [4, 0xe0000000n, 0xefffffffn, 'multicast (224.0.0.0/4)'],
  [4, 0xa9fe0000n, 0xa9feffffn, 'link-local (169.254.0.0/16)'],
  [6, 0xffn << 120n, (1n << 128n) - 1n, 'multicast (ff00::/8)'],
  [6, 0xfe80n << 112n, (0xfec0n << 112n) - 1n, 'link-local (fe80::/10)'],
  [6, 0xffffn << 32n, (0xffffn << 32n) + 0xffffffffn, 'IPv4-mapped (::ffff:0:0/96)'],
];

/**
 * host-local's checks and more: the subnet must be its own network address (no host bits set),
 * not everything (/0), and share no address with multicast, link-local or IPv4-mapped blocks.
 */
function rejectUnusable(subnet: string, family: 4 | 6, prefixLength: number, network: bigint, broadcast: bigint): void {
  const written = parseAddress(subnet.slice(0, subnet.indexOf('/'))).value;
  if (written !== network) {
    throw invalid(`ipam subnet ${subnet} has host bits set: for a /${prefixLength} the network address is ${formatAddress(family, network)}`);
  }
  if (prefixLength === 0) throw invalid(`ipam subnet ${subnet} is every address`);
  for (const [f, first, last, why] of UNUSABLE) {
    if (f === family && network <= last && first <= broadcast) throw invalid(`ipam subnet ${subnet} overlaps ${why}`);
  }
}

/** `ipam.subnet` is shorthand for a single range set with one range. */
export function parseRangeSets(ipam: { subnet?: string; ranges?: IpamRange[][] } | undefined): RangeSet[] {
  if (ipam?.ranges) {
    return ipam.ranges.map((set) => {
      const parsed = set.map(parseRange);
      if (new Set(parsed.map((r) => r.family)).size > 1) throw invalid('a range set mixes IPv4 and IPv6');
      return parsed;
    });
  }
  if (ipam?.subnet) return [[parseRange({ subnet: ipam.subnet })]];
  throw invalid('ipam needs subnet or ranges');
}

export function rangeSize(range: AddressRange): bigint {
  return range.last - range.first + 1n;
}

/**
 * The order in which to try a range's addresses: starting just after the last one handed out
 * (like host-local, so a freed address is not reused at once) and wrapping around. Lazy, so a
 * /16 costs nothing until addresses are actually tried.
 */
export function* candidates(range: AddressRange, lastAllocated?: bigint, gateway?: bigint): Generator<bigint> {
  const size = rangeSize(range);
  const inRange = lastAllocated !== undefined && lastAllocated >= range.first && lastAllocated <= range.last;
  const start = inRange ? lastAllocated + 1n : range.first;
  for (let i = 0n; i < size; i++) {
    let value = start + i;
    if (value > range.last) value -= size;
    if (value === gateway) continue;
    yield value;
  }
}
