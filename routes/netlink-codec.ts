// rtnetlink route messages as bytes, pure: RTM_NEWROUTE/RTM_DELROUTE of protocol 201 encoded the way
// `ip route add|replace|del` encodes them (iproute2 ip/iproute.c), and the kernel's NLMSG_ERROR replies
// decoded back to sequence numbers. Layouts: <linux/netlink.h>, <linux/rtnetlink.h>, host byte order.
import { constants } from 'node:os';
import { Address6 } from 'ip-address';
import { type RouteTarget, familyOf } from './desired.js';
import { ROUTE_PROTOCOL } from './protocol-number.js';

export const NLMSG_ERROR = 2;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** On an error reply: the echoed request is cut to its header (NETLINK_CAP_ACK); extended-ack attributes follow. */
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

const AF_INET = 2;
const AF_INET6 = 10;
const RT_TABLE_MAIN = 254;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
/** On a delete: any scope. */
const RT_SCOPE_NOWHERE = 255;
const RTN_UNSPEC = 0;
const RTN_UNICAST = 1;
const RTN_BLACKHOLE = 6;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_MULTIPATH = 9;

const NLMSGHDR = 16;
const RTMSG = 12;
const RTNEXTHOP = 8;

export class NetlinkEncodeError extends Error {
  override name = 'NetlinkEncodeError';
}

/** A link's index by name in the socket's namespace; 0 when there is no such link. */
export type IfIndexOf = (dev: string) => number;

/**
 * Messages appended to one growing buffer. `add`/`replace`/`delete` each write one message with the
 * given sequence number; `ack` asks for an acknowledgement of the last one (the writer's pieces end there).
 */
export class RouteMessageWriter {
  private buf: Buffer;
  private at = 0;
  private last = -1;

  constructor(capacity = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  get length(): number {
    return this.at;
  }

  /** The messages written (a view; the writer must not be used afterwards). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.at);
  }

  /**
   * `ip route add` (NLM_F_CREATE|NLM_F_EXCL: another protocol's route for the prefix makes it fail
   * with EEXIST rather than be taken over) or `ip route replace` (NLM_F_CREATE|NLM_F_REPLACE).
   */
  route(op: 'add' | 'replace', prefix: string, r: RouteTarget, seq: number, ifIndexOf: IfIndexOf): void {
    const flags = NLM_F_REQUEST | NLM_F_CREATE | (op === 'add' ? NLM_F_EXCL : NLM_F_REPLACE);
    const family = familyOf(prefix);
    const device = r.type === 'unicast' && r.nextHops.length === 0;
    const type = r.type === 'blackhole' ? RTN_BLACKHOLE : RTN_UNICAST;
    // Links are looked up before anything is written: an unknown one refuses the route, leaving no half message.
    const pinned = r.type === 'unicast' && r.dev !== undefined ? linkIndex(r.dev, ifIndexOf) : 0;
    const sole = r.type === 'unicast' && r.nextHops.length === 1 ? r.nextHops[0]! : undefined;
    if (sole !== undefined && sole.indexOf('%') < 0) {
      // One gateway on no link of its own: nearly every route of a full table, written without the
      // list of hops below (an array and an object per route, a third of what a load allocates here).
      this.begin(RTM_NEWROUTE, flags, seq, prefix, family, RT_SCOPE_UNIVERSE, type);
      this.address(RTA_GATEWAY, sole);
      if (pinned > 0) this.u32Attribute(RTA_OIF, pinned);
      return this.end();
    }
    const hops = r.type === 'blackhole' ? [] : r.nextHops.map((hop) => splitHop(hop, pinned, ifIndexOf));
    this.begin(RTM_NEWROUTE, flags, seq, prefix, family, device ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE, type);
    if (r.type === 'blackhole') return this.end();
    if (hops.length <= 1) {
      const hop = hops[0];
      if (hop) this.address(RTA_GATEWAY, hop.address);
      const index = hop ? hop.index : pinned;
      if (index > 0) this.u32Attribute(RTA_OIF, index);
      return this.end();
    }
    // ECMP: RTA_MULTIPATH holds one rtnexthop per hop, each with its gateway nested.
    const multipath = this.openAttribute(RTA_MULTIPATH);
    for (const { address, index } of hops) {
      const start = this.reserve(RTNEXTHOP);
      this.buf.writeUInt8(0, start + 2); // rtnh_flags
      this.buf.writeUInt8(0, start + 3); // rtnh_hops: weight 1
      this.buf.writeInt32LE(index, start + 4);
      this.address(RTA_GATEWAY, address);
      this.buf.writeUInt16LE(this.at - start, start);
    }
    this.closeAttribute(multipath);
    this.end();
  }

  /** `ip route del PREFIX proto 201`: the kernel removes our route for the prefix whatever its type, scope or next hops. */
  delete(prefix: string, seq: number): void {
    this.begin(RTM_DELROUTE, NLM_F_REQUEST, seq, prefix, familyOf(prefix), RT_SCOPE_NOWHERE, RTN_UNSPEC);
    this.end();
  }

  /** Asks for an acknowledgement of the last message written. */
  ack(): void {
    if (this.last < 0) return;
    this.buf.writeUInt16LE(this.buf.readUInt16LE(this.last + 6) | NLM_F_ACK, this.last + 6);
  }

  /**
   * The header, rtmsg and RTA_DST. Bytes are stored one by one (little-endian, as x86-64 and arm64
   * hosts are): a full table is a million of these, and Buffer's checked writers cost a third more.
   */
  private begin(type: number, flags: number, seq: number, prefix: string, family: 4 | 6, scope: number, routeType: number): void {
    const slash = prefix.indexOf('/');
    const start = this.reserve(NLMSGHDR + RTMSG);
    this.last = start;
    const b = this.buf;
    b[start + 4] = type;
    b[start + 5] = type >> 8;
    b[start + 6] = flags;
    b[start + 7] = flags >> 8;
    b[start + 8] = seq;
    b[start + 9] = seq >>> 8;
    b[start + 10] = seq >>> 16;
    b[start + 11] = seq >>> 24;
    // nlmsg_pid (the kernel) and rtm_flags: byte stores, as Buffer.fill for 4 bytes costs a call into
    // C++ (~2.5% of the agent's CPU in a withdrawn table).
    b[start + 12] = b[start + 13] = b[start + 14] = b[start + 15] = 0;
    const r = start + NLMSGHDR;
    b[r] = family === 4 ? AF_INET : AF_INET6;
    let length = 0;
    for (let i = slash + 1; i < prefix.length; i++) length = length * 10 + prefix.charCodeAt(i) - 48;
    b[r + 1] = length;
    b[r + 2] = 0; // rtm_src_len
    b[r + 3] = 0; // rtm_tos
    b[r + 4] = RT_TABLE_MAIN;
    b[r + 5] = ROUTE_PROTOCOL;
    b[r + 6] = scope;
    b[r + 7] = routeType;
    b[r + 8] = b[r + 9] = b[r + 10] = b[r + 11] = 0; // rtm_flags
    if (family === 4) {
      const at = this.attributeHeader(RTA_DST, 4); // may grow the buffer: this.buf, not b
      writeIpv4(this.buf, at, prefix, slash);
    }
    else this.address(RTA_DST, prefix.slice(0, slash));
  }

  private end(): void {
    const length = this.at - this.last;
    const b = this.buf;
    b[this.last] = length;
    b[this.last + 1] = length >> 8;
    b[this.last + 2] = length >> 16;
    b[this.last + 3] = 0;
  }

  private address(type: number, address: string): void {
    if (familyOf(address) === 4) {
      const at = this.attributeHeader(type, 4);
      writeIpv4(this.buf, at, address, address.length);
    } else {
      const start = this.attributeHeader(type, 16);
      const bytes = new Address6(address).toUnsignedByteArray();
      for (let i = 0; i < 16; i++) this.buf[start + i] = bytes[bytes.length - 16 + i] ?? 0;
    }
  }

  private u32Attribute(type: number, value: number): void {
    this.buf.writeUInt32LE(value, this.attributeHeader(type, 4));
  }

  /** Writes an rtattr header for `size` bytes of data; returns where the data goes. */
  private attributeHeader(type: number, size: number): number {
    const start = this.reserve(4 + align4(size));
    const b = this.buf;
    b[start] = 4 + size;
    b[start + 1] = (4 + size) >> 8;
    b[start + 2] = type;
    b[start + 3] = type >> 8;
    for (let i = start + 4 + size; i < start + 4 + align4(size); i++) b[i] = 0;
    return start + 4;
  }

  private openAttribute(type: number): number {
    const start = this.reserve(4);
    this.buf.writeUInt16LE(type, start + 2);
    return start;
  }

  private closeAttribute(start: number): void {
    this.buf.writeUInt16LE(this.at - start, start);
  }

  private reserve(n: number): number {
    if (this.at + n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
      this.buf.copy(grown, 0, 0, this.at);
      this.buf = grown;
    }
    const start = this.at;
    this.at += n;
    return start;
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** The dotted quad in `text` before `end` into 4 bytes, by characters (no slice, split or array per address: a full table's worth). */
function writeIpv4(b: Buffer, at: number, text: string, end: number): void {
  let octet = 0;
  let i = 0;
  for (let k = 0; k < end; k++) {
    const c = text.charCodeAt(k);
    if (c === 46) {
      b[at + i++] = octet;
      octet = 0;
    } else octet = octet * 10 + (c - 48);
  }
  b[at + i] = octet;
}

/** A next hop's gateway and link index: `fe80::1%eth0` names its own link, else the route's pinned one. */
function splitHop(hop: string, pinned: number, ifIndexOf: IfIndexOf): { address: string; index: number } {
  const zone = hop.indexOf('%');
  if (zone < 0) return { address: hop, index: pinned };
  return { address: hop.slice(0, zone), index: linkIndex(hop.slice(zone + 1), ifIndexOf) };
}

function linkIndex(dev: string, ifIndexOf: IfIndexOf): number {
  const index = ifIndexOf(dev);
  if (index <= 0) throw new NetlinkEncodeError(`Cannot find device "${dev}"`);
  return index;
}

/** One refused request, as the kernel answered it. */
export interface NetlinkError {
  seq: number;
  /** Positive errno (EEXIST, ESRCH, ENETUNREACH…). */
  errno: number;
  /** The kernel's extended-ack text, when it gave one. */
  message?: string;
}

/** NLMSG_ERROR messages with a non-zero error, back to the sequence number of the request they refuse. */
export function decodeErrors(bytes: Buffer): NetlinkError[] {
  const errors: NetlinkError[] = [];
  let at = 0;
  while (at + NLMSGHDR <= bytes.length) {
    const length = bytes.readUInt32LE(at);
    if (length < NLMSGHDR || at + length > bytes.length) break;
    const type = bytes.readUInt16LE(at + 4);
    const flags = bytes.readUInt16LE(at + 6);
    if (type === NLMSG_ERROR && length >= NLMSGHDR + 4) {
      const error = bytes.readInt32LE(at + NLMSGHDR);
      if (error !== 0) {
        const e: NetlinkError = { seq: bytes.readUInt32LE(at + 8), errno: -error };
        if (flags & NLM_F_ACK_TLVS) {
          // The echoed request: its header only when capped, else all of it.
          const echoed = at + NLMSGHDR + 4;
          let tlv = echoed + (flags & NLM_F_CAPPED ? NLMSGHDR : align4(bytes.readUInt32LE(echoed)));
          while (tlv + 4 <= at + length) {
            const size = bytes.readUInt16LE(tlv);
            if (size < 4) break;
            if (bytes.readUInt16LE(tlv + 2) === NLMSGERR_ATTR_MSG) e.message = bytes.toString('utf8', tlv + 4, tlv + size).replace(/\0+$/, '');
            tlv += align4(size);
          }
        }
        errors.push(e);
      }
    }
    at += align4(length);
  }
  return errors;
}

const ERRNO_TEXT: Record<string, string> = {
  EEXIST: 'File exists',
  ESRCH: 'No such process',
  ENOENT: 'No such file or directory',
  ENETUNREACH: 'Network is unreachable',
  EHOSTUNREACH: 'No route to host',
  ENODEV: 'No such device',
  EINVAL: 'Invalid argument',
  EPERM: 'Operation not permitted',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  ENOBUFS: 'No buffer space available',
  ENOMEM: 'Cannot allocate memory',
};

const ERRNO_NAME = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** The text `ip` prints for a refused request ("RTNETLINK answers: File exists"), with the kernel's own reason if any. */
export function describeError(e: NetlinkError): string {
  const name = ERRNO_NAME.get(e.errno);
  const text = (name && ERRNO_TEXT[name]) ?? (name ? `${name} (errno ${e.errno})` : `errno ${e.errno}`);
  return `RTNETLINK answers: ${text}${e.message ? ` (${e.message})` : ''}`;
}
