// Path attributes: one descriptor each (flags, decode, encode, what to do when malformed, RFC 7606).
import { addressBytes, decodePrefixes, encodePrefixes, formatAddress, isUnicastAddress, parseAddress } from './prefix.js';
import {
  AFI,
  type Afi,
  AS_TRANS,
  type AsPathSegment,
  AsPathSegmentType,
  AttrFlag,
  AttrType,
  BgpError,
  type CodecContext,
  type MpReach,
  type MpUnreach,
  type PathAttributes,
  SAFI_UNICAST,
  UpdateSubcode,
} from './types.js';

/** RFC 7606 §2: the least drastic action that is still safe for a malformed attribute. */
export type ErrorAction = 'withdraw' | 'discard' | 'reset';

class Malformed extends Error {}

interface Decoded {
  attrs: PathAttributes;
  /** NEXT_HOP was present but malformed: fatal for classic NLRI only (RFC 4760 §3, RFC 7606 §7.3). */
  badNextHop?: boolean;
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  as4Path?: AsPathSegment[];
  as4Aggregator?: { asn: number; address: string };
}

interface Descriptor {
  type: number;
  optional: boolean;
  transitive: boolean;
  onError: ErrorAction;
  decode(value: Buffer, out: Decoded, ctx: CodecContext): void;
}

function u32(v: Buffer): number {
  if (v.length !== 4) throw new Malformed('length must be 4');
  return v.readUInt32BE(0);
}

function ipv4(v: Buffer): string {
  if (v.length !== 4) throw new Malformed('length must be 4');
  return formatAddress(AFI.IPv4, v);
}

export function decodeAsPath(v: Buffer, fourOctet: boolean): AsPathSegment[] {
  const size = fourOctet ? 4 : 2;
  const segments: AsPathSegment[] = [];
  for (let i = 0; i < v.length; ) {
    if (i + 2 > v.length) throw new Malformed('truncated AS_PATH segment');
    const type = v[i]!;
    const count = v[i + 1]!;
    if (type < 1 || type > 4 || count === 0) throw new Malformed(`bad AS_PATH segment type ${type} / count ${count}`);
    if (i + 2 + count * size > v.length) throw new Malformed('AS_PATH segment overruns');
    const asns: number[] = [];
    for (let k = 0; k < count; k++) asns.push(fourOctet ? v.readUInt32BE(i + 2 + k * 4) : v.readUInt16BE(i + 2 + k * 2));
    // RFC 7607 §2: AS 0 makes the attribute malformed (AS_PATH: treat-as-withdraw; AS4_PATH: discarded).
    if (asns.includes(0)) throw new Malformed('AS 0 in an AS path');
    segments.push({ type, asns });
    i += 2 + count * size;
  }
  return segments;
}

export function encodeAsPath(segments: AsPathSegment[], fourOctet: boolean): Buffer {
  const parts: Buffer[] = [];
  for (const seg of segments) {
    // A segment holds at most 255 ASNs; longer sequences are split.
    for (let start = 0; start < seg.asns.length || (start === 0 && seg.asns.length === 0); start += 255) {
      const chunk = seg.asns.slice(start, start + 255);
      if (chunk.length === 0) break;
      const b = Buffer.alloc(2 + chunk.length * (fourOctet ? 4 : 2));
      b[0] = seg.type;
      b[1] = chunk.length;
      chunk.forEach((asn, k) => {
        if (fourOctet) b.writeUInt32BE(asn >>> 0, 2 + k * 4);
        else b.writeUInt16BE(asn > 0xffff ? AS_TRANS : asn, 2 + k * 2);
      });
      parts.push(b);
    }
  }
  return Buffer.concat(parts);
}

function decodeMpReach(v: Buffer): MpReach {
  if (v.length < 5) throw new Malformed('MP_REACH_NLRI too short');
  const afi = v.readUInt16BE(0);
  const safi = v[2]!;
  const nhLen = v[3]!;
  if (4 + nhLen + 1 > v.length) throw new Malformed('MP_REACH_NLRI next hop overruns');
  if (afi !== AFI.IPv4 && afi !== AFI.IPv6) return { family: { afi: afi as Afi, safi }, nextHops: [], nlri: [] };
  const size = addressBytes(afi);
  if (nhLen !== size && !(afi === AFI.IPv6 && nhLen === 32)) throw new Malformed(`bad next hop length ${nhLen}`);
  const nextHops: string[] = [];
  for (let o = 0; o < nhLen; o += size) nextHops.push(formatAddress(afi, v.subarray(4 + o, 4 + o + size)));
  // One reserved octet (RFC 4760: SNPA count, must be zero) sits between next hop and NLRI.
  const nlri = safi === SAFI_UNICAST ? decodePrefixes(afi, v.subarray(4 + nhLen + 1), UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR) : [];
  // A next hop (the global one, first, when a link-local follows: RFC 2545 §3) that is unspecified or
  // multicast is semantically incorrect (RFC 4271 §6.3): no next hop, so these routes are ignored
  // (withdrawn if held), without a NOTIFICATION, like a bad NEXT_HOP for classic NLRI.
  if (!isUnicastAddress(afi, v.subarray(4, 4 + size))) return { family: { afi, safi }, nextHops: [], nlri };
  return { family: { afi, safi }, nextHops, nlri };
}

function decodeMpUnreach(v: Buffer): MpUnreach {
  if (v.length < 3) throw new Malformed('MP_UNREACH_NLRI too short');
  const afi = v.readUInt16BE(0);
  const safi = v[2]!;
  if (afi !== AFI.IPv4 && afi !== AFI.IPv6) return { family: { afi: afi as Afi, safi }, withdrawn: [] };
  const withdrawn = safi === SAFI_UNICAST ? decodePrefixes(afi, v.subarray(3), UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR) : [];
  return { family: { afi, safi }, withdrawn };
}

const DESCRIPTORS: Descriptor[] = [
  { type: AttrType.ORIGIN, optional: false, transitive: true, onError: 'withdraw', decode(v, out) {
    if (v.length !== 1 || v[0]! > 2) throw new Malformed('bad ORIGIN');
    out.attrs.origin = v[0] as 0 | 1 | 2;
  } },
  { type: AttrType.AS_PATH, optional: false, transitive: true, onError: 'withdraw', decode(v, out, ctx) {
    const path = decodeAsPath(v, ctx.fourOctetAs);
    // RFC 5065 §5: confederation segments from a peer outside our confederation (we are in none, so
    // any external peer) make AS_PATH malformed: treat-as-withdraw (RFC 7606 §7.2), never passed on.
    if (ctx.ebgp && path.some((s) => s.type === AsPathSegmentType.AS_CONFED_SEQUENCE || s.type === AsPathSegmentType.AS_CONFED_SET)) {
      throw new Malformed('AS_CONFED segment from an external peer');
    }
    out.attrs.asPath = path;
  } },
  { type: AttrType.NEXT_HOP, optional: false, transitive: true, onError: 'withdraw', decode(v, out) {
    const nh = ipv4(v);
    if (!isUnicastAddress(AFI.IPv4, v)) throw new Malformed(`invalid NEXT_HOP ${nh}`);
    out.attrs.nextHop = nh;
  } },
  { type: AttrType.MULTI_EXIT_DISC, optional: true, transitive: false, onError: 'withdraw', decode(v, out) {
    out.attrs.med = u32(v);
  } },
  { type: AttrType.LOCAL_PREF, optional: false, transitive: true, onError: 'withdraw', decode(v, out, ctx) {
    if (ctx.ebgp) return; // RFC 7606 §7.5: from an external peer, discarded whatever its length
    out.attrs.localPref = u32(v);
  } },
  { type: AttrType.ATOMIC_AGGREGATE, optional: false, transitive: true, onError: 'discard', decode(v, out) {
    if (v.length !== 0) throw new Malformed('ATOMIC_AGGREGATE must be empty');
    out.attrs.atomicAggregate = true;
  } },
  { type: AttrType.AGGREGATOR, optional: true, transitive: true, onError: 'discard', decode(v, out, ctx) {
    const size = ctx.fourOctetAs ? 8 : 6;
    if (v.length !== size) throw new Malformed('bad AGGREGATOR length');
    const asn = ctx.fourOctetAs ? v.readUInt32BE(0) : v.readUInt16BE(0);
    if (asn === 0) throw new Malformed('AGGREGATOR of AS 0'); // RFC 7607 §2
    out.attrs.aggregator = { asn, address: formatAddress(AFI.IPv4, v.subarray(size - 4)) };
  } },
  { type: AttrType.COMMUNITIES, optional: true, transitive: true, onError: 'withdraw', decode(v, out) {
    if (v.length % 4 !== 0) throw new Malformed('COMMUNITIES length not a multiple of 4');
    const list: number[] = [];
    for (let i = 0; i < v.length; i += 4) list.push(v.readUInt32BE(i));
    out.attrs.communities = list;
  } },
  { type: AttrType.ORIGINATOR_ID, optional: true, transitive: false, onError: 'withdraw', decode(v, out, ctx) {
    if (ctx.ebgp) return; // RFC 7606 §7.9: from an external peer, discarded
    out.attrs.originatorId = ipv4(v);
  } },
  { type: AttrType.CLUSTER_LIST, optional: true, transitive: false, onError: 'withdraw', decode(v, out, ctx) {
    if (ctx.ebgp) return; // RFC 7606 §7.10: from an external peer, discarded
    if (v.length === 0 || v.length % 4 !== 0) throw new Malformed('CLUSTER_LIST length not a non-zero multiple of 4');
    const list: string[] = [];
    for (let i = 0; i < v.length; i += 4) list.push(formatAddress(AFI.IPv4, v.subarray(i, i + 4)));
    out.attrs.clusterList = list;
  } },
  { type: AttrType.MP_REACH_NLRI, optional: true, transitive: false, onError: 'reset', decode(v, out) {
    out.mpReach = decodeMpReach(v);
  } },
  { type: AttrType.MP_UNREACH_NLRI, optional: true, transitive: false, onError: 'reset', decode(v, out) {
    out.mpUnreach = decodeMpUnreach(v);
  } },
  { type: AttrType.AS4_PATH, optional: true, transitive: true, onError: 'discard', decode(v, out) {
    // RFC 6793 §3: confederation segments are invalid in AS4_PATH; they are dropped, the rest is used.
    out.as4Path = decodeAsPath(v, true).filter((s) => s.type === AsPathSegmentType.AS_SEQUENCE || s.type === AsPathSegmentType.AS_SET);
  } },
  { type: AttrType.AS4_AGGREGATOR, optional: true, transitive: true, onError: 'discard', decode(v, out) {
    if (v.length !== 8) throw new Malformed('bad AS4_AGGREGATOR length');
    if (v.readUInt32BE(0) === 0) throw new Malformed('AS4_AGGREGATOR of AS 0'); // RFC 7607 §2
    out.as4Aggregator = { asn: v.readUInt32BE(0), address: formatAddress(AFI.IPv4, v.subarray(4)) };
  } },
];
const BY_TYPE = new Map(DESCRIPTORS.map((d) => [d.type, d]));

/** RFC 6793 §4.2.3: rebuild the real path from AS_PATH (with AS_TRANS) and AS4_PATH. */
export function mergeAs4Path(asPath: AsPathSegment[], as4Path: AsPathSegment[]): AsPathSegment[] {
  const count = (segs: AsPathSegment[]): number => segs.reduce((n, s) => n + (s.type === AsPathSegmentType.AS_SET ? 1 : s.type >= 3 ? 0 : s.asns.length), 0);
  const extra = count(asPath) - count(as4Path);
  if (extra < 0) return asPath; // AS4_PATH longer than AS_PATH: ignore it
  const head: AsPathSegment[] = [];
  let left = extra;
  for (const seg of asPath) {
    if (left <= 0) break;
    if (seg.type === AsPathSegmentType.AS_SEQUENCE) {
      const take = seg.asns.slice(0, left);
      head.push({ type: seg.type, asns: take });
      left -= take.length;
    } else {
      head.push(seg);
      left -= seg.type === AsPathSegmentType.AS_SET ? 1 : 0;
    }
  }
  return [...head, ...as4Path];
}

export interface AttributeDecodeResult {
  attrs: PathAttributes;
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  treatAsWithdraw: boolean;
  badNextHop: boolean;
}

export function decodeAttributes(data: Buffer, ctx: CodecContext): AttributeDecodeResult {
  const out: Decoded = { attrs: {} };
  const seen = new Set<number>();
  let treatAsWithdraw = false;
  for (let i = 0; i < data.length; ) {
    const flags = data[i]!;
    const type = i + 1 < data.length ? data[i + 1]! : -1;
    const extended = (flags & AttrFlag.EXTENDED_LENGTH) !== 0;
    const start = i + (extended ? 4 : 3);
    const length = start > data.length ? 0 : extended ? data.readUInt16BE(i + 2) : data[i + 2]!;
    if (start + length > data.length) {
      // RFC 7606 §4: a truncated attribute header or an attribute overrunning the attribute list is
      // treat-as-withdraw, the NLRI found through the total length. Not when the attribute cut short
      // is MP_REACH/MP_UNREACH itself: its NLRI cannot be located then (§5.3), so the session resets.
      if (type === AttrType.MP_REACH_NLRI || type === AttrType.MP_UNREACH_NLRI) {
        throw new BgpError(3, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, `attribute ${type} overruns the attribute list`);
      }
      treatAsWithdraw = true;
      break;
    }
    const value = data.subarray(start, start + length);
    i = start + length;
    if (seen.has(type)) {
      if (type === AttrType.MP_REACH_NLRI || type === AttrType.MP_UNREACH_NLRI) throw new BgpError(3, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, `duplicate attribute ${type}`);
      continue; // RFC 7606 §3(g): keep the first, discard the rest
    }
    seen.add(type);
    const d = BY_TYPE.get(type);
    if (!d) {
      if (!(flags & AttrFlag.OPTIONAL)) throw new BgpError(3, UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, `unrecognized well-known attribute ${type}`, data.subarray(start - (extended ? 4 : 3), i));
      if (flags & AttrFlag.TRANSITIVE) (out.attrs.unknown ??= []).push({ flags: flags | AttrFlag.PARTIAL, type, value: new Uint8Array(value) });
      continue;
    }
    const flagsOk = ((flags & AttrFlag.OPTIONAL) !== 0) === d.optional && (!d.optional || ((flags & AttrFlag.TRANSITIVE) !== 0) === d.transitive);
    try {
      if (!flagsOk) throw new Malformed(`attribute ${type} has flags 0x${flags.toString(16)}`);
      d.decode(value, out, ctx);
    } catch (err) {
      if (!(err instanceof Malformed) && !(err instanceof BgpError)) throw err;
      if (d.onError === 'reset') throw new BgpError(3, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, `malformed attribute ${type}: ${(err as Error).message}`);
      // A bad NEXT_HOP withdraws classic NLRI only (RFC 7606 §7.3); the UPDATE decides (RFC 4760 §3).
      if (d.type === AttrType.NEXT_HOP) out.badNextHop = true;
      else if (d.onError === 'withdraw') treatAsWithdraw = true;
      // 'discard': as if the attribute had not been there
    }
  }
  if (!ctx.fourOctetAs && out.as4Path && out.attrs.asPath) out.attrs.asPath = mergeAs4Path(out.attrs.asPath, out.as4Path);
  if (!ctx.fourOctetAs && out.as4Aggregator && out.attrs.aggregator?.asn === AS_TRANS) out.attrs.aggregator = out.as4Aggregator;
  return { attrs: out.attrs, mpReach: out.mpReach, mpUnreach: out.mpUnreach, treatAsWithdraw, badNextHop: out.badNextHop ?? false };
}

function attr(flags: number, type: number, value: Uint8Array): Buffer {
  const extended = value.length > 255;
  const head = Buffer.alloc(extended ? 4 : 3);
  head[0] = flags | (extended ? AttrFlag.EXTENDED_LENGTH : 0);
  head[1] = type;
  if (extended) head.writeUInt16BE(value.length, 2);
  else head[2] = value.length;
  return Buffer.concat([head, value]);
}

const WELL_KNOWN = AttrFlag.TRANSITIVE;
const OPT_TRANS = AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE;
const OPT = AttrFlag.OPTIONAL;

function u32buf(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function ipv4buf(address: string): Buffer {
  return Buffer.from(parseAddress(address).bytes);
}

export function encodeMpReach(mp: MpReach): Buffer {
  const hops = Buffer.concat(mp.nextHops.map((h) => Buffer.from(parseAddress(h).bytes)));
  const head = Buffer.alloc(4);
  head.writeUInt16BE(mp.family.afi, 0);
  head[2] = mp.family.safi;
  head[3] = hops.length;
  return Buffer.concat([head, hops, Buffer.from([0]), encodePrefixes(mp.family.afi, mp.nlri)]);
}

export function encodeMpUnreach(mp: MpUnreach): Buffer {
  const head = Buffer.alloc(3);
  head.writeUInt16BE(mp.family.afi, 0);
  head[2] = mp.family.safi;
  return Buffer.concat([head, encodePrefixes(mp.family.afi, mp.withdrawn)]);
}

/** Encodes in type order, as most speakers do; AS4_PATH is added for 2-octet peers when needed. */
export function encodeAttributes(a: PathAttributes, ctx: CodecContext, mpReach?: MpReach, mpUnreach?: MpUnreach): Buffer {
  const parts: [number, Buffer][] = [];
  const add = (flags: number, type: number, value: Uint8Array): void => void parts.push([type, attr(flags, type, value)]);
  if (a.origin !== undefined) add(WELL_KNOWN, AttrType.ORIGIN, Buffer.from([a.origin]));
  if (a.asPath !== undefined) {
    add(WELL_KNOWN, AttrType.AS_PATH, encodeAsPath(a.asPath, ctx.fourOctetAs));
    if (!ctx.fourOctetAs && a.asPath.some((s) => s.asns.some((n) => n > 0xffff))) add(OPT_TRANS, AttrType.AS4_PATH, encodeAsPath(a.asPath, true));
  }
  if (a.nextHop !== undefined) add(WELL_KNOWN, AttrType.NEXT_HOP, ipv4buf(a.nextHop));
  if (a.med !== undefined) add(OPT, AttrType.MULTI_EXIT_DISC, u32buf(a.med));
  if (a.localPref !== undefined) add(WELL_KNOWN, AttrType.LOCAL_PREF, u32buf(a.localPref));
  if (a.atomicAggregate) add(WELL_KNOWN, AttrType.ATOMIC_AGGREGATE, Buffer.alloc(0));
  if (a.aggregator) {
    const big = a.aggregator.asn > 0xffff;
    const v = Buffer.alloc(ctx.fourOctetAs ? 8 : 6);
    if (ctx.fourOctetAs) v.writeUInt32BE(a.aggregator.asn >>> 0, 0);
    else v.writeUInt16BE(big ? AS_TRANS : a.aggregator.asn, 0);
    v.set(ipv4buf(a.aggregator.address), ctx.fourOctetAs ? 4 : 2);
    add(OPT_TRANS, AttrType.AGGREGATOR, v);
    if (!ctx.fourOctetAs && big) add(OPT_TRANS, AttrType.AS4_AGGREGATOR, Buffer.concat([u32buf(a.aggregator.asn), ipv4buf(a.aggregator.address)]));
  }
  if (a.communities?.length) add(OPT_TRANS, AttrType.COMMUNITIES, Buffer.concat(a.communities.map(u32buf)));
  if (a.originatorId) add(OPT, AttrType.ORIGINATOR_ID, ipv4buf(a.originatorId));
  if (a.clusterList?.length) add(OPT, AttrType.CLUSTER_LIST, Buffer.concat(a.clusterList.map(ipv4buf)));
  if (mpReach) add(OPT, AttrType.MP_REACH_NLRI, encodeMpReach(mpReach));
  if (mpUnreach) add(OPT, AttrType.MP_UNREACH_NLRI, encodeMpUnreach(mpUnreach));
  for (const u of a.unknown ?? []) parts.push([u.type, attr(u.flags & ~AttrFlag.EXTENDED_LENGTH, u.type, u.value)]);
  parts.sort((x, y) => x[0] - y[0]);
  return Buffer.concat(parts.map(([, b]) => b));
}
