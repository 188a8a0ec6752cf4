// BGP messages on the wire: header, OPEN (with capabilities), UPDATE, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH.
import { decodeAttributes, encodeAttributes } from './attributes.js';
import { decodePrefixes, encodePrefixes, formatAddress, parseAddress } from './prefix.js';
import {
  AFI,
  type Afi,
  AS_TRANS,
  BGP_HEADER_LENGTH,
  BGP_MAX_MESSAGE_LENGTH,
  type BgpMessage,
  BgpError,
  type Capability,
  CapabilityCode,
  type CodecContext,
  type Family,
  HeaderSubcode,
  MessageType,
  type NotificationMessage,
  type OpenMessage,
  OpenSubcode,
  SAFI_UNICAST,
  type UpdateMessage,
  UpdateSubcode,
} from './types.js';

function header(type: number, body: Uint8Array): Buffer {
  const length = BGP_HEADER_LENGTH + body.length;
  if (length > BGP_MAX_MESSAGE_LENGTH) throw new RangeError(`message of ${length} bytes exceeds ${BGP_MAX_MESSAGE_LENGTH}`);
  const b = Buffer.alloc(BGP_HEADER_LENGTH);
  b.fill(0xff, 0, 16);
  b.writeUInt16BE(length, 16);
  b[18] = type;
  return Buffer.concat([b, body]);
}

// ---- capabilities ----
function encodeCapability(c: Capability): Buffer {
  let value: Buffer;
  if ('raw' in c) value = Buffer.from(c.raw);
  else if (c.code === CapabilityCode.MULTIPROTOCOL) {
    value = Buffer.alloc(4);
    value.writeUInt16BE(c.family.afi, 0);
    value[3] = c.family.safi;
  } else if (c.code === CapabilityCode.ROUTE_REFRESH) value = Buffer.alloc(0);
  else if (c.code === CapabilityCode.FOUR_OCTET_AS) {
    value = Buffer.alloc(4);
    value.writeUInt32BE(c.asn >>> 0);
  } else {
    value = Buffer.alloc(2 + c.families.length * 4);
    value.writeUInt16BE((c.restarting ? 0x8000 : 0) | (c.notification ? 0x4000 : 0) | (c.restartTime & 0x0fff), 0);
    c.families.forEach((f, i) => {
      value.writeUInt16BE(f.afi, 2 + i * 4);
      value[4 + i * 4] = f.safi;
      value[5 + i * 4] = f.forwardingPreserved ? 0x80 : 0;
    });
  }
  return Buffer.concat([Buffer.from([c.code, value.length]), value]);
}

function decodeCapabilities(data: Buffer): Capability[] {
  const caps: Capability[] = [];
  for (let i = 0; i < data.length; ) {
    if (i + 2 > data.length) throw new BgpError(2, 0, 'truncated capability');
    const code = data[i]!;
    const len = data[i + 1]!;
    const v = data.subarray(i + 2, i + 2 + len);
    if (v.length !== len) throw new BgpError(2, 0, 'capability overruns its parameter');
    i += 2 + len;
    if (code === CapabilityCode.MULTIPROTOCOL && len === 4) caps.push({ code, family: { afi: v.readUInt16BE(0) as Afi, safi: v[3]! } });
    else if (code === CapabilityCode.ROUTE_REFRESH && len === 0) caps.push({ code });
    else if (code === CapabilityCode.FOUR_OCTET_AS) {
      if (len !== 4) throw new BgpError(2, 0, '4-octet AS capability must be 4 bytes');
      caps.push({ code, asn: v.readUInt32BE(0) });
    } else if (code === CapabilityCode.GRACEFUL_RESTART && len >= 2 && (len - 2) % 4 === 0) {
      const head = v.readUInt16BE(0);
      const families = [];
      for (let o = 2; o < len; o += 4) families.push({ afi: v.readUInt16BE(o) as Afi, safi: v[o + 2]!, forwardingPreserved: (v[o + 3]! & 0x80) !== 0 });
      caps.push({ code, restarting: (head & 0x8000) !== 0, notification: (head & 0x4000) !== 0, restartTime: head & 0x0fff, families });
    } else caps.push({ code, raw: new Uint8Array(v) });
  }
  return caps;
}

// ---- OPEN ----
export function encodeOpen(m: OpenMessage): Buffer {
  const caps = Buffer.concat(m.capabilities.map(encodeCapability));
  // One optional parameter of type 2 holding every capability, as BIRD and GoBGP send them.
  const params = caps.length ? Buffer.concat([Buffer.from([2, caps.length]), caps]) : Buffer.alloc(0);
  const body = Buffer.alloc(10);
  body[0] = m.version;
  body.writeUInt16BE(m.asn > 0xffff ? AS_TRANS : m.asn, 1);
  body.writeUInt16BE(m.holdTime, 3);
  body.set(parseAddress(m.routerId).bytes, 5);
  body[9] = params.length;
  return header(MessageType.OPEN, Buffer.concat([body, params]));
}

export function decodeOpen(body: Buffer): OpenMessage {
  if (body.length < 10) throw new BgpError(1, HeaderSubcode.BAD_MESSAGE_LENGTH, 'OPEN too short');
  const version = body[0]!;
  if (version !== 4) throw new BgpError(2, OpenSubcode.UNSUPPORTED_VERSION, `unsupported BGP version ${version}`, Buffer.from([0, 4]));
  const myAs = body.readUInt16BE(1);
  const holdTime = body.readUInt16BE(3);
  if (holdTime === 1 || holdTime === 2) throw new BgpError(2, OpenSubcode.UNACCEPTABLE_HOLD_TIME, `hold time ${holdTime}`);
  const routerId = formatAddress(AFI.IPv4, body.subarray(5, 9));
  if (routerId === '0.0.0.0') throw new BgpError(2, OpenSubcode.BAD_BGP_IDENTIFIER, 'BGP identifier 0.0.0.0');
  const paramsLength = body[9]!;
  if (10 + paramsLength !== body.length) throw new BgpError(2, 0, 'optional parameters length does not match');
  const capabilities: Capability[] = [];
  for (let i = 10; i < body.length; ) {
    if (i + 2 > body.length) throw new BgpError(2, 0, 'truncated optional parameter');
    const type = body[i]!;
    const len = body[i + 1]!;
    if (i + 2 + len > body.length) throw new BgpError(2, 0, 'optional parameter overruns');
    if (type !== 2) throw new BgpError(2, OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER, `optional parameter type ${type}`);
    capabilities.push(...decodeCapabilities(body.subarray(i + 2, i + 2 + len)));
    i += 2 + len;
  }
  const four = capabilities.find((c): c is Extract<Capability, { code: 65 }> => c.code === CapabilityCode.FOUR_OCTET_AS && 'asn' in c);
  return { type: 1, version, asn: four ? four.asn : myAs, holdTime, routerId, capabilities };
}

// ---- UPDATE ----
export function encodeUpdate(m: UpdateMessage, ctx: CodecContext): Buffer {
  const withdrawn = encodePrefixes(AFI.IPv4, m.withdrawn);
  const attrs = m.nlri.length || m.mpReach || m.mpUnreach || Object.keys(m.attributes).length ? encodeAttributes(m.attributes, ctx, m.mpReach, m.mpUnreach) : Buffer.alloc(0);
  const nlri = encodePrefixes(AFI.IPv4, m.nlri);
  const wl = Buffer.alloc(2);
  wl.writeUInt16BE(withdrawn.length);
  const al = Buffer.alloc(2);
  al.writeUInt16BE(attrs.length);
  return header(MessageType.UPDATE, Buffer.concat([wl, withdrawn, al, attrs, nlri]));
}

export function decodeUpdate(body: Buffer, ctx: CodecContext): UpdateMessage {
  if (body.length < 4) throw new BgpError(3, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, 'UPDATE too short');
  const wl = body.readUInt16BE(0);
  if (2 + wl + 2 > body.length) throw new BgpError(3, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, 'withdrawn routes overrun the message');
  const withdrawn = decodePrefixes(AFI.IPv4, body.subarray(2, 2 + wl), UpdateSubcode.INVALID_NETWORK_FIELD);
  const al = body.readUInt16BE(2 + wl);
  const attrStart = 4 + wl;
  if (attrStart + al > body.length) throw new BgpError(3, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, 'path attributes overrun the message');
  const nlri = decodePrefixes(AFI.IPv4, body.subarray(attrStart + al), UpdateSubcode.INVALID_NETWORK_FIELD);
  const decoded = decodeAttributes(body.subarray(attrStart, attrStart + al), ctx);
  let treatAsWithdraw = decoded.treatAsWithdraw;
  const a = decoded.attrs;
  // RFC 4760 §3: without classic NLRI, NEXT_HOP means nothing and is ignored, malformed or not.
  if (nlri.length === 0) delete a.nextHop;
  else if (decoded.badNextHop) treatAsWithdraw = true;
  // RFC 7606 §3(d): a missing well-known mandatory attribute is treat-as-withdraw.
  if (nlri.length && (a.origin === undefined || a.asPath === undefined || a.nextHop === undefined)) treatAsWithdraw = true;
  if (decoded.mpReach?.nlri.length && (a.origin === undefined || a.asPath === undefined)) treatAsWithdraw = true;
  const msg: UpdateMessage = { type: 2, withdrawn, attributes: a, nlri };
  if (decoded.mpReach) msg.mpReach = decoded.mpReach;
  if (decoded.mpUnreach) msg.mpUnreach = decoded.mpUnreach;
  if (treatAsWithdraw) msg.treatAsWithdraw = true;
  return msg;
}

// ---- the rest ----
export function encodeMessage(msg: BgpMessage, ctx: CodecContext): Buffer {
  switch (msg.type) {
    case 1:
      return encodeOpen(msg);
    case 2:
      return encodeUpdate(msg, ctx);
    case 3:
      return header(MessageType.NOTIFICATION, Buffer.concat([Buffer.from([msg.code, msg.subcode]), msg.data]));
    case 4:
      return header(MessageType.KEEPALIVE, Buffer.alloc(0));
    case 5: {
      const b = Buffer.alloc(4);
      b.writeUInt16BE(msg.family.afi, 0);
      b[2] = msg.subtype;
      b[3] = msg.family.safi;
      return header(MessageType.ROUTE_REFRESH, b);
    }
  }
}

/** Decodes one whole frame (header included). Throws only BgpError, whatever the bytes. */
export function decodeMessage(frame: Uint8Array, ctx: CodecContext): BgpMessage {
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  checkHeader(buf);
  const type = buf[18]!;
  const body = buf.subarray(BGP_HEADER_LENGTH, buf.readUInt16BE(16));
  try {
    switch (type) {
      case MessageType.OPEN:
        return decodeOpen(body);
      case MessageType.UPDATE:
        return decodeUpdate(body, ctx);
      case MessageType.NOTIFICATION:
        if (body.length < 2) throw new BgpError(1, HeaderSubcode.BAD_MESSAGE_LENGTH, 'NOTIFICATION too short', buf.subarray(16, 18));
        return { type: 3, code: body[0]!, subcode: body[1]!, data: new Uint8Array(body.subarray(2)) } satisfies NotificationMessage;
      case MessageType.KEEPALIVE:
        if (body.length !== 0) throw new BgpError(1, HeaderSubcode.BAD_MESSAGE_LENGTH, 'KEEPALIVE with a body', buf.subarray(16, 18));
        return { type: 4 };
      case MessageType.ROUTE_REFRESH:
        if (body.length !== 4) throw new BgpError(1, HeaderSubcode.BAD_MESSAGE_LENGTH, 'ROUTE-REFRESH must be 4 bytes', buf.subarray(16, 18));
        return { type: 5, family: { afi: body.readUInt16BE(0) as Afi, safi: body[3]! }, subtype: body[2]! };
      default:
        throw new BgpError(1, HeaderSubcode.BAD_MESSAGE_TYPE, `message type ${type}`, Buffer.from([type]));
    }
  } catch (err) {
    if (err instanceof BgpError) throw err;
    // A bug of ours, not the peer's: still answered with a NOTIFICATION rather than a crash.
    throw new BgpError(3, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, `cannot decode message: ${(err as Error).message}`);
  }
}

/** The smallest valid length of each message type (RFC 4271 §4, RFC 2918). */
const MIN_LENGTH: Record<number, number> = { 1: 29, 2: 23, 3: 21, 4: 19, 5: 23 };

/**
 * Marker, type and length bounds (RFC 4271 §6.1) from the 19 header bytes alone: the reader checks
 * a header before its body has arrived.
 */
export function checkHeaderFields(buf: Buffer): void {
  if (buf.length < BGP_HEADER_LENGTH) throw new BgpError(1, HeaderSubcode.BAD_MESSAGE_LENGTH, 'short header');
  for (let i = 0; i < 16; i++) if (buf[i] !== 0xff) throw new BgpError(1, HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, 'bad marker');
  const length = buf.readUInt16BE(16);
  const type = buf[18]!;
  const min = MIN_LENGTH[type];
  if (min === undefined) throw new BgpError(1, HeaderSubcode.BAD_MESSAGE_TYPE, `message type ${type}`, Buffer.from([type]));
  if (length < min || length > BGP_MAX_MESSAGE_LENGTH) {
    throw new BgpError(1, HeaderSubcode.BAD_MESSAGE_LENGTH, `bad length ${length} for type ${type}`, buf.subarray(16, 18));
  }
}

/** The header, and that the whole message is there. */
export function checkHeader(buf: Buffer): void {
  checkHeaderFields(buf);
  if (buf.readUInt16BE(16) > buf.length) {
    throw new BgpError(1, HeaderSubcode.BAD_MESSAGE_LENGTH, `bad length ${buf.readUInt16BE(16)} for type ${buf[18]}`, buf.subarray(16, 18));
  }
}

export function keepalive(): Buffer {
  return header(MessageType.KEEPALIVE, Buffer.alloc(0));
}

/** End-of-RIB (RFC 4724): an empty UPDATE for IPv4 unicast, else an empty MP_UNREACH_NLRI. */
export function endOfRib(family: Family, ctx: CodecContext): Buffer {
  if (family.afi === AFI.IPv4 && family.safi === SAFI_UNICAST) return encodeUpdate({ type: 2, withdrawn: [], attributes: {}, nlri: [] }, ctx);
  return encodeUpdate({ type: 2, withdrawn: [], attributes: {}, nlri: [], mpUnreach: { family, withdrawn: [] } }, ctx);
}
