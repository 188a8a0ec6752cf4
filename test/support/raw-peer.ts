// A raw BGP peer for tests: a bare TCP socket and hand-built or codec-encoded bytes, never our Session,
// so it can misbehave (stop reading, flood, send what our encoder never would).
import { type Socket, connect } from 'node:net';
import { until } from './wait.js';
import { type BgpMessage, type CodecContext, type Family, MessageReader, decodeMessage, encodeMessage, keepalive } from '../../bgp/codec/index.js';

export interface RawPeerOptions {
  /** Where our speaker listens. */
  host: string;
  port: number;
  /** The peer's own address: the speaker knows it by this. */
  localAddress: string;
  asn: number;
  routerId: string;
  holdTime?: number;
  families?: Family[];
}

const CTX: CodecContext = { fourOctetAs: true };

export class RawPeer {
  /** Every message received, decoded (or the decode error's text). */
  readonly received: (BgpMessage | { type: 'error'; message: string })[] = [];
  closed = false;
  private readonly reader = new MessageReader();
  private keepaliveTimer?: NodeJS.Timeout;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      try {
        for (let f = this.reader.nextFrame(); f; f = this.reader.nextFrame()) this.received.push(decodeMessage(f, CTX));
      } catch (err) {
        this.received.push({ type: 'error', message: (err as Error).message });
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      clearInterval(this.keepaliveTimer);
    });
  }

  /** Connects and sends its OPEN (4-octet AS, route refresh, the given families). */
  static async connect(o: RawPeerOptions): Promise<RawPeer> {
    const socket = connect({ host: o.host, port: o.port, localAddress: o.localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const peer = new RawPeer(socket);
    const families = o.families ?? [{ afi: 1, safi: 1 }];
    peer.send({
      type: 1, version: 4, asn: o.asn, holdTime: o.holdTime ?? 90, routerId: o.routerId,
      capabilities: [...families.map((family) => ({ code: 1 as const, family })), { code: 2 }, { code: 65, asn: o.asn }],
    });
    return peer;
  }

  /** Connects and completes the handshake (OPEN, KEEPALIVE both ways); then keeps sending KEEPALIVEs. */
  static async establish(o: RawPeerOptions, timeoutMs = 10_000): Promise<RawPeer> {
    const peer = await RawPeer.connect(o);
    await peer.waitFor('our OPEN', (m) => m.type === 1, timeoutMs);
    peer.sendBytes(keepalive());
    await peer.waitFor('our KEEPALIVE', (m) => m.type === 4, timeoutMs);
    peer.keepaliveTimer = setInterval(() => peer.sendBytes(keepalive()), Math.max(1, Math.floor((o.holdTime ?? 90) / 3)) * 1000);
    return peer;
  }

  send(msg: BgpMessage): void {
    this.sendBytes(encodeMessage(msg, CTX));
  }

  sendBytes(bytes: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Waits until a received message matches; fails with what was received instead. */
  async waitFor(what: string, match: (m: BgpMessage) => boolean, timeoutMs = 10_000): Promise<BgpMessage> {
    const found = (): BgpMessage | undefined => this.received.find((m): m is BgpMessage => m.type !== 'error' && match(m));
    await until(what, async () => found() !== undefined, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}; received ${JSON.stringify(this.summary())}`);
    });
    return found()!;
  }

  /** The NOTIFICATIONs received, as "code/subcode". */
  notifications(): string[] {
    return this.received.flatMap((m) => (m.type === 3 ? [`${m.code}/${m.subcode}`] : []));
  }

  /** Every prefix announced to us so far, in order, repeats included. */
  announced(): string[] {
    return this.received.flatMap((m) => (m.type === 2 ? [...m.nlri, ...(m.mpReach?.nlri ?? [])] : []));
  }

  summary(): string[] {
    return this.received.map((m) => (m.type === 'error' ? `error ${m.message}` : m.type === 3 ? `NOTIFICATION ${m.code}/${m.subcode}` : `type ${m.type}`)).slice(-20);
  }

  close(): void {
    clearInterval(this.keepaliveTimer);
    this.socket.destroy();
  }
}

/** Builds an UPDATE by hand: raw attribute bytes, IPv4 NLRI as [length, ...octets]. */
export function rawUpdate(attributes: Buffer, nlri: Buffer, withdrawn: Buffer = Buffer.alloc(0)): Buffer {
  const body = Buffer.concat([u16(withdrawn.length), withdrawn, u16(attributes.length), attributes, nlri]);
  const head = Buffer.alloc(19, 0xff);
  head.writeUInt16BE(19 + body.length, 16);
  head[18] = 2;
  return Buffer.concat([head, body]);
}

/**
 * A legal UPDATE of 4095 bytes from AS 65000 for 10.9.0.0/24 via `nextHop`: ORIGIN, AS_PATH, NEXT_HOP
 * and 1011 communities. Re-encoded for an iBGP peer it gains LOCAL_PREF and passes 4096 bytes.
 */
export function update4095(nextHop: string): Buffer {
  const communities = Array.from({ length: 1011 }, (_, i) => (65000 * 65536 + i) >>> 0);
  const attributes = Buffer.concat([
    Buffer.from([0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8, 0x40, 3, 4, ...nextHop.split('.').map(Number), 0xd0, 8, 0x0f, 0xcc]),
    ...communities.map((c) => Buffer.from([c >>> 24, (c >>> 16) & 255, (c >>> 8) & 255, c & 255])),
  ]);
  return rawUpdate(attributes, Buffer.from([24, 10, 9, 0]));
}

/** 300 IPv6 /128s (fd00:1::1 on) with 90 communities from AS 65000, in UPDATEs of 100 that fit. */
export function v6With90Communities(nextHop: string): BgpMessage[] {
  const communities = Array.from({ length: 90 }, (_, i) => (65000 * 65536 + i) >>> 0);
  const prefixes = Array.from({ length: 300 }, (_, i) => `fd00:1::${(i + 1).toString(16)}/128`);
  const out: BgpMessage[] = [];
  for (let i = 0; i < prefixes.length; i += 100) {
    out.push({ type: 2, withdrawn: [], nlri: [], attributes: { origin: 0, asPath: [{ type: 2, asns: [65000] }], communities }, mpReach: { family: { afi: 2, safi: 1 }, nextHops: [nextHop], nlri: prefixes.slice(i, i + 100) } });
  }
  return out;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
