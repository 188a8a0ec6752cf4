// A scripted BGP peer, test support: opens a session to our speaker over TCP and sends exactly what a test says.
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
  /** Default: IPv4 and IPv6 unicast, 4-octet AS. */
  capabilities?: Capability[];
  /** Answer the speaker's KEEPALIVEs (default); false lets its hold timer run out. */
  keepalives?: boolean;
}

export const unicast = (afi: 1 | 2): Family => ({ afi, safi: 1 });

/** A graceful restart capability (RFC 4724 §3) for these families, all with the F bit unless told. */
export function grCapability(restartTime: number, families: { afi: 1 | 2; safi?: number; forwarding?: boolean }[], restarting = false): Capability {
  return { code: 64, restarting, notification: false, restartTime, families: families.map((f) => ({ afi: f.afi, safi: f.safi ?? 1, forwardingPreserved: f.forwarding ?? true })) };
}

export class RawPeer {
  readonly received: BgpMessage[] = [];
  peerOpen?: OpenMessage;
  readonly ctx: CodecContext;
  private readonly reader = new MessageReader();
  private waiters: (() => void)[] = [];
  closed = false;
  /** A message from the speaker that did not decode. */
  error?: Error;
  /** Keep what the speaker sends in `received` (a long fuzz turns it off). */
  keep = true;

  private constructor(
    private readonly socket: Socket,
    readonly options: RawPeerOptions,
  ) {
    this.ctx = { fourOctetAs: true, ebgp: false };
  }

  /** Connects, exchanges OPEN and KEEPALIVE; resolves once the session is Established on both sides. */
  static async connect(options: RawPeerOptions, timeoutMs = 10_000): Promise<RawPeer> {
    const socket = connect({ host: options.host, port: options.port, localAddress: options.localAddress });
    const peer = new RawPeer(socket, options);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      peer.closed = true;
      peer.wake();
    });
    socket.on('data', (chunk: Buffer) => peer.onData(chunk));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const caps: Capability[] = options.capabilities ?? [{ code: 1, family: unicast(1) }, { code: 1, family: unicast(2) }, { code: 65, asn: options.asn }];
    const open: OpenMessage = { type: 1, version: 4, asn: options.asn > 65535 ? 23456 : options.asn, holdTime: options.holdTime ?? 90, routerId: options.routerId ?? options.localAddress, capabilities: caps };
    socket.write(encodeMessage(open, { fourOctetAs: false }));
    (peer as { ctx: CodecContext }).ctx = { fourOctetAs: caps.some((c) => c.code === 65), ebgp: false };
    try {
      await peer.waitFor('the OPEN and KEEPALIVE', () => {
        if (peer.closed) throw new Error(`raw peer ${options.localAddress}: connection closed before Established`);
        return peer.peerOpen !== undefined && peer.received.some((m) => m.type === 4);
      }, timeoutMs);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    socket.write(keepalive());
    if (options.keepalives !== false) {
      const timer = setInterval(() => socket.write(keepalive()), 1000);
      socket.on('close', () => clearInterval(timer));
    }
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
      this.error = err as Error; // what the speaker sent did not decode: the test reads this
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
      if (left <= 0) throw new Error(`raw peer ${this.options.localAddress}: timed out waiting for ${what}`);
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
    this.socket.write(encodeMessage(msg, this.ctx));
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
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
    this.socket.write(endOfRib(family, this.ctx));
  }

  /** Announces `prefixes` (IPv4 in NLRI, IPv6 in MP_REACH_NLRI) with an AS path of our AS. */
  announce(prefixes: string[], nextHop: string, extra: Partial<Extract<BgpMessage, { type: 2 }>['attributes']> = {}): void {
    const v4 = prefixes.filter((p) => !p.includes(':'));
    const v6 = prefixes.filter((p) => p.includes(':'));
    const attributes = { origin: 0 as const, asPath: [{ type: 2, asns: [this.options.asn] }], ...extra };
    if (v4.length) this.send({ type: 2, withdrawn: [], attributes: { ...attributes, nextHop }, nlri: v4 });
    if (v6.length) this.send({ type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: unicast(2), nextHops: [nextHop], nlri: v6 } });
  }

  /** Closes TCP without a NOTIFICATION, as a restarting speaker does (RFC 4724). */
  drop(): void {
    this.socket.destroy();
  }

  /** Sends a NOTIFICATION and closes. */
  notify(code: number, subcode: number): void {
    this.socket.end(encodeMessage({ type: 3, code, subcode, data: new Uint8Array() }, this.ctx));
  }
}
