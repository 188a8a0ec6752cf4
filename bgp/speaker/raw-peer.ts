// The one raw BGP peer for tests: a bare TCP socket to our speaker and exactly the bytes a test says,
// never our Session, so it can misbehave (stop reading, flood, send what our encoder never would).
// It lives in bgp/ so the speaker's and session's tests import nothing outside bgp/; test/support
// (the namespace driver, the agent scenarios) imports it from here. Production code never does.
import { type Socket, connect } from 'node:net';
import {
  type BgpMessage,
  type Capability,
  type CodecContext,
  type Family,
  MessageReader,
  type OpenMessage,
  decodeMessage,
  encodeMessage,
  endOfRib,
  keepalive,
} from '../codec/index.js';

export interface RawPeerOptions {
  /** Where our speaker listens. */
  host: string;
  port: number;
  /** The address the speaker knows this peer by. */
  localAddress: string;
  asn: number;
  routerId?: string;
  holdTime?: number;
  /** The families offered when `capabilities` is not given; default IPv4 and IPv6 unicast. */
  families?: Family[];
  /** The whole capability list of our OPEN; default: `families`, route refresh, 4-octet AS. */
  capabilities?: Capability[];
  /** Answer the speaker's KEEPALIVEs (default); false lets its hold timer run out. */
  keepalives?: boolean;
}

/** A message that did not decode: kept in `received` where it arrived, so a test can see it. */
export interface DecodeFailure {
  type: 'error';
  message: string;
}

export const unicast = (afi: 1 | 2): Family => ({ afi, safi: 1 });

/** A graceful restart capability (RFC 4724 §3) for these families, all with the F bit unless told. */
export function grCapability(restartTime: number, families: { afi: 1 | 2; safi?: number; forwarding?: boolean }[], restarting = false): Capability {
  return { code: 64, restarting, notification: false, restartTime, families: families.map((f) => ({ afi: f.afi, safi: f.safi ?? 1, forwardingPreserved: f.forwarding ?? true })) };
}

// Below every hold time a test negotiates (3 s is the least RFC 4271 §4.2 allows but 0).
const KEEPALIVE_MS = 1000;

export class RawPeer {
  /** What the speaker sent since the session came up (everything, for a peer only `connect`ed). */
  readonly received: (BgpMessage | DecodeFailure)[] = [];
  /** The speaker's OPEN. */
  peerOpen?: OpenMessage;
  readonly ctx: CodecContext;
  closed = false;
  /** Keep what the speaker sends in `received` (a long fuzz turns it off; decode failures are kept). */
  keep = true;
  private readonly reader = new MessageReader();
  private waiters: (() => void)[] = [];
  private keepaliveTimer?: NodeJS.Timeout;

  private constructor(
    readonly socket: Socket,
    readonly options: RawPeerOptions,
  ) {
    const caps = RawPeer.capabilities(options);
    this.ctx = { fourOctetAs: caps.some((c) => c.code === 65), ebgp: false };
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      clearInterval(this.keepaliveTimer);
      this.wake();
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  private static capabilities(o: RawPeerOptions): Capability[] {
    const families = o.families ?? [unicast(1), unicast(2)];
    return o.capabilities ?? [...families.map((family) => ({ code: 1 as const, family })), { code: 2 }, { code: 65, asn: o.asn }];
  }

  /** Opens TCP and sends our OPEN, nothing more: for a session the speaker is expected to refuse. */
  static async connect(options: RawPeerOptions): Promise<RawPeer> {
    const socket = connect({ host: options.host, port: options.port, localAddress: options.localAddress });
    const peer = new RawPeer(socket, options);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const open: OpenMessage = {
      type: 1, version: 4, asn: options.asn > 65535 ? 23456 : options.asn, holdTime: options.holdTime ?? 90,
      routerId: options.routerId ?? options.localAddress, capabilities: RawPeer.capabilities(options),
    };
    socket.write(encodeMessage(open, { fourOctetAs: false }));
    return peer;
  }

  /**
   * Connects and exchanges OPEN and KEEPALIVE; resolves once the session is Established on both sides,
   * `received` emptied of the handshake. Then sends a KEEPALIVE every second unless told not to.
   */
  static async establish(options: RawPeerOptions, timeoutMs = 10_000): Promise<RawPeer> {
    const peer = await RawPeer.connect(options);
    try {
      await peer.waitFor('the OPEN and KEEPALIVE', () => {
        if (peer.closed) throw new Error(`raw peer ${options.localAddress}: connection closed before Established; received ${JSON.stringify(peer.summary())}`);
        return peer.peerOpen !== undefined && peer.received.some((m) => m.type === 4);
      }, timeoutMs);
    } catch (err) {
      peer.drop();
      throw err;
    }
    peer.sendBytes(keepalive());
    if (options.keepalives !== false) peer.keepaliveTimer = setInterval(() => peer.sendBytes(keepalive()), KEEPALIVE_MS);
    peer.received.length = 0;
    return peer;
  }

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
    try {
      for (let frame = this.reader.nextFrame(); frame; frame = this.reader.nextFrame()) {
        const msg = decodeMessage(frame, this.peerOpen ? this.ctx : { fourOctetAs: false });
        if (msg.type === 1) this.peerOpen = msg;
        if (this.keep) this.received.push(msg);
      }
    } catch (err) {
      // What the speaker sent did not decode: the test reads it in `received`; a real peer would hang up.
      this.received.push({ type: 'error', message: (err as Error).message });
      this.socket.destroy();
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits (bounded) until `check` holds, re-checking whenever a message arrives or the connection closes. */
  async waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`raw peer ${this.options.localAddress}: timed out waiting for ${what}; received ${JSON.stringify(this.summary())}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  send(msg: BgpMessage): void {
    this.sendBytes(encodeMessage(msg, this.ctx));
  }

  /** Hand-built bytes, sent as they are. */
  sendBytes(bytes: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Writes, then waits while the socket's buffer is full (back-pressure); false once the connection is closed. */
  async write(bytes: Uint8Array): Promise<boolean> {
    if (this.closed) return false;
    if (!this.socket.write(bytes)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.socket.off('drain', done);
          this.socket.off('close', done);
          resolve();
        };
        this.socket.on('drain', done);
        this.socket.on('close', done);
      });
    }
    return !this.closed;
  }

  endOfRib(family: Family): void {
    this.sendBytes(endOfRib(family, this.ctx));
  }

  /** Announces `prefixes` (IPv4 in NLRI, IPv6 in MP_REACH_NLRI) with an AS path of our AS. */
  announce(prefixes: string[], nextHop: string, extra: Partial<Extract<BgpMessage, { type: 2 }>['attributes']> = {}): void {
    const v4 = prefixes.filter((p) => !p.includes(':'));
    const v6 = prefixes.filter((p) => p.includes(':'));
    const attributes = { origin: 0 as const, asPath: [{ type: 2, asns: [this.options.asn] }], ...extra };
    if (v4.length) this.send({ type: 2, withdrawn: [], attributes: { ...attributes, nextHop }, nlri: v4 });
    if (v6.length) this.send({ type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: unicast(2), nextHops: [nextHop], nlri: v6 } });
  }

  /** The NOTIFICATIONs received, as "code/subcode". */
  notifications(): string[] {
    return this.received.flatMap((m) => (m.type === 3 ? [`${m.code}/${m.subcode}`] : []));
  }

  /** Every prefix announced to us so far, in order, repeats included. */
  announced(): string[] {
    return this.received.flatMap((m) => (m.type === 2 ? [...m.nlri, ...(m.mpReach?.nlri ?? [])] : []));
  }

  /** The last 20 messages received, one word each: what a timeout message shows. */
  summary(): string[] {
    return this.received.map((m) => (m.type === 'error' ? `error ${m.message}` : m.type === 3 ? `NOTIFICATION ${m.code}/${m.subcode}` : `type ${m.type}`)).slice(-20);
  }

  /** Closes TCP without a NOTIFICATION, as a restarting speaker does (RFC 4724). */
  drop(): void {
    clearInterval(this.keepaliveTimer);
    this.socket.destroy();
  }

  /** Done with the peer (a test's clean-up): the same as `drop`. */
  close(): void {
    this.drop();
  }

  /** Sends a NOTIFICATION and closes. */
  notify(code: number, subcode: number): void {
    this.socket.end(encodeMessage({ type: 3, code, subcode, data: new Uint8Array() }, this.ctx));
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
