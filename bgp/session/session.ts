// One BGP peer: a TCP connection driven by the FSM, with real timers and the codec. Emits events up.
import { EventEmitter } from 'node:events';
import { Socket, connect, isIPv6 } from 'node:net';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import {
  AFI,
  BgpError,
  type BgpMessage,
  type Capability,
  CeaseSubcode,
  type CodecContext,
  ErrorCode,
  type Family,
  MessageReader,
  type OpenMessage,
  SAFI_UNICAST,
  type UpdateMessage,
  capabilitiesOf,
  decodeMessage,
  encodeMessage,
  keepalive,
} from '../codec/index.js';
import { type Action, Fsm, type Negotiated, OPEN_HOLD_SECONDS, type State, type TimerName, keepOurConnection } from '../fsm/fsm.js';

/** Frames handled per turn of the event loop, before the socket is read again (see onData). */
const FRAMES_PER_TURN = 16;
/**
 * And at most this long per turn: a full UPDATE carries ~800 prefixes, and 16 of them through the RIB
 * and into the kernel's queue took ~100 ms, long enough to delay keepalives and the status socket.
 */
const MS_PER_TURN = 8;
/** Unhandled bytes at which we stop reading the socket until we catch up. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/**
 * Bytes queued to a peer (beyond what the kernel holds) past which UPDATEs are refused until it
 * drains: a peer that stops reading costs us this much memory at most, not a copy of every change.
 */
const MAX_QUEUED_BYTES = 1024 * 1024;
/**
 * TCP keepalive on every BGP connection: with a negotiated hold time of 0 (RFC 4271 §4.2) no BGP
 * timer ever notices a peer that died silently, and without probes a connection that carries
 * nothing never fails. The kernel's probe interval and count (net.ipv4.tcp_keepalive_intvl and
 * _probes) then decide how soon it reports the loss.
 */
const TCP_KEEPALIVE_IDLE_SECONDS = 30;

export interface SessionConfig {
  localAsn: number;
  routerId: string;
  peerAddress: string;
  peerAsn: number;
  port: number;
  localAddress?: string;
  holdTime: number;
  connectRetrySeconds: number;
  passive: boolean;
  families: Family[];
  gracefulRestart?: { restartTime: number; restarting: boolean };
  /** Idle seconds before TCP keepalive probes start (default TCP_KEEPALIVE_IDLE_SECONDS; tests shorten it). */
  tcpKeepaliveIdleSeconds?: number;
  /** TCP MD5 key (RFC 2385) for this peer: our connections carry it from their first SYN. Needs tcpMd5. */
  password?: string;
  tcpMd5?: TcpMd5;
}

/**
 * TCP MD5 signatures (RFC 2385) as the host provides them (the agent: a small native addon). The
 * speaker stays TypeScript; only the socket option, which Node lacks, comes from outside.
 */
export interface TcpMd5 {
  /** An unconnected TCP socket of this family, for `new Socket({ fd })`: the key goes on it before connect. */
  tcpSocket(family: 4 | 6): number;
  /** Sets, or with an empty key removes, the key for a peer address on a socket (ours or a listener). */
  setTcpMd5Key(fd: number, address: string, key: string): void;
}

/** The file descriptor under a Node socket or server (libuv's handle keeps it; Node does not expose it). */
export function socketFd(socket: object): number | undefined {
  const fd = (socket as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * A connection to the peer. With a password the socket is made unconnected and keyed first: the
 * kernel signs the SYN itself, and a peer that wants a signature drops an unsigned one silently.
 */
function connectTo(config: SessionConfig): Socket {
  const options = { host: config.peerAddress, port: config.port, ...(config.localAddress ? { localAddress: config.localAddress } : {}) };
  if (!config.password) return connect(options);
  if (!config.tcpMd5) throw new Error('a TCP MD5 password is set for this peer but this speaker has no TCP MD5 support');
  const socket = new Socket({ fd: config.tcpMd5.tcpSocket(isIPv6(config.peerAddress.replace(/%.*$/, '')) ? 6 : 4) });
  try {
    config.tcpMd5.setTcpMd5Key(socketFd(socket)!, config.peerAddress, config.password);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return socket.connect(options);
}

export interface Established {
  negotiated: Negotiated;
  ctx: CodecContext;
  families: Family[];
  /** The peer's graceful restart capability, when it has one. */
  peerGracefulRestart?: Extract<Capability, { code: 64 }>;
  /** The peer accepts ROUTE-REFRESH (RFC 2918). */
  routeRefresh: boolean;
  localAddress: string;
  /** The link holding localAddress: where a link-local next hop from this peer is (RFC 2545 §3). */
  device?: string;
  /** Every address of that link (unzoned): where our next hop of the other family comes from. */
  linkAddresses: string[];
}

export interface SessionEvents {
  state: [from: State, to: State];
  established: [Established];
  update: [UpdateMessage];
  routeRefresh: [Family];
  /** A bug of ours while handling this peer (a listener threw, say): the session is reset for it. */
  fault: [Error];
  /** The queue to the peer emptied after an UPDATE was refused (see sendUpdate): send what is owed. */
  drain: [];
  down: [{ reason: string; silent: boolean }];
}

export class Session extends EventEmitter<SessionEvents> {
  private readonly fsm: Fsm;
  private socket?: Socket;
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  private reader = new MessageReader();
  private ctx: CodecContext = { fourOctetAs: false };
  private established?: Established;
  private since = Date.now();
  private lastError?: string;

  constructor(readonly config: SessionConfig) {
    super();
    this.fsm = new Fsm({
      localAsn: config.localAsn, peerAsn: config.peerAsn, routerId: config.routerId,
      holdTime: config.holdTime, connectRetrySeconds: config.connectRetrySeconds, passive: config.passive,
    });
  }

  get state(): State {
    return this.fsm.state;
  }

  start(): void {
    this.run({ type: 'Start' });
  }

  stop(): void {
    this.run({ type: 'Stop' });
  }

  /** Closes the TCP connection without a NOTIFICATION: a restarting speaker (graceful restart). */
  drop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.socket?.destroy();
    this.socket = undefined;
    this.dropPending();
  }

  /** RFC 4724 §4.1: the Restart State bit belongs to the first OPEN after our restart; later ones go without it. */
  restartDone(): void {
    if (this.config.gracefulRestart) this.config.gracefulRestart = { ...this.config.gracefulRestart, restarting: false };
  }

  snapshot(): { state: State; uptimeSeconds: number; lastError?: string } {
    return { state: this.fsm.state, uptimeSeconds: this.fsm.state === 'Established' ? Math.floor((Date.now() - this.since) / 1000) : 0, lastError: this.lastError };
  }

  /** An incoming connection from this peer, handed over by the speaker's listener. */
  acceptIncoming(socket: Socket): void {
    const s = this.fsm.state;
    if (s === 'Idle' || s === 'Established') {
      // RFC 4486: Idle refuses (6/5 Connection Rejected); an Established session keeps its
      // connection and the new one loses the collision (RFC 4271 §6.8, 6/7).
      this.reject(socket, s === 'Idle' ? CeaseSubcode.CONNECTION_REJECTED : CeaseSubcode.CONNECTION_COLLISION);
      return;
    }
    if (s === 'OpenConfirm') {
      // Collision (RFC 4271 §6.8) with the peer's identifier known from its OPEN: the side with the
      // higher identifier keeps the connection it opened. Both sides apply the same rule.
      const peerId = this.fsm.negotiated?.open.routerId;
      if (!this.socketIsOurs || !peerId || keepOurConnection(this.config.routerId, peerId)) {
        this.reject(socket);
      } else {
        this.pending = { socket, chunks: [] };
        this.adoptPending();
      }
      return;
    }
    if ((s === 'Connect' || s === 'OpenSent') && this.socket) {
      // Collision before the peer's identifier is known (ours is connecting, or waits for its OPEN):
      // hold its connection until an OPEN, on either connection, tells who keeps which (RFC 4271 §6.8).
      // Guessing from addresses is not enough: a router's identifier is often a loopback, and two
      // sides guessing differently close both connections.
      if (this.pending) this.reject(socket);
      else this.holdPending(socket);
      return;
    }
    if (this.socket) {
      this.socket.removeAllListeners();
      this.socket.destroy();
    }
    this.attach(socket, false);
    this.run({ type: 'TcpConnected' });
  }

  /** The peer's connection while ours connects or is in OpenSent, with what it has sent so far. */
  private pending?: { socket: Socket; chunks: Buffer[] };

  private holdPending(socket: Socket): void {
    const pending = { socket, chunks: [] as Buffer[] };
    this.pending = pending;
    const reader = new MessageReader();
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.pending === pending) this.pending = undefined;
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.pending !== pending) return;
      pending.chunks.push(chunk);
      reader.push(chunk);
      try {
        const frame = reader.nextFrame();
        if (!frame) return;
        const msg = decodeMessage(frame, { fourOctetAs: false });
        if (msg.type === 1) this.resolveCollision(msg.routerId);
        else this.dropPending();
      } catch {
        this.dropPending(); // not a usable OPEN: the connection we have stays
      }
    });
  }

  /** Closes the held connection: with Cease 7 when it lost a collision, silently when unusable. */
  private dropPending(lostCollision = false): void {
    const pending = this.pending;
    this.pending = undefined;
    if (!pending) return;
    pending.socket.removeAllListeners();
    if (lostCollision) this.reject(pending.socket);
    else pending.socket.destroy();
  }

  /**
   * The peer's identifier is known: exactly one connection survives. While ours is still in Connect
   * there is no collision (RFC 4271 §6.8 compares connections past OpenSent): a SYN of ours that
   * gets no answer must not make us refuse the peer's working connection, so theirs is taken.
   */
  private resolveCollision(peerId: string): void {
    if (!this.pending) return;
    if (this.socketIsOurs && this.fsm.state !== 'Connect' && keepOurConnection(this.config.routerId, peerId)) this.dropPending(true);
    else this.adoptPending();
  }

  /** The peer's connection wins (or ours failed): ours closes, negotiation goes on over theirs. */
  private adoptPending(): void {
    const pending = this.pending!;
    this.pending = undefined;
    pending.socket.removeAllListeners();
    const old = this.socket;
    const connected = this.fsm.state !== 'Connect';
    if (old) {
      this.socket = undefined;
      old.removeAllListeners();
      if (connected) this.reject(old);
      else old.destroy(); // still connecting: nothing to tell
    }
    this.attach(pending.socket, false);
    // Connect: as if ours had connected. OpenSent/OpenConfirm: start over, our OPEN on theirs.
    this.run(connected ? { type: 'ConnectionReplaced' } : { type: 'TcpConnected' });
    for (const chunk of pending.chunks) this.onData(pending.socket, chunk); // the peer's OPEN, again
  }

  private reject(socket: Socket, subcode: number = CeaseSubcode.CONNECTION_COLLISION): void {
    socket.on('error', () => undefined);
    // What the peer still sends is read and dropped, so its close is seen and the socket goes.
    socket.resume();
    socket.end(encodeMessage({ type: 3, code: ErrorCode.CEASE, subcode, data: new Uint8Array() }, this.ctx));
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  send(update: UpdateMessage): void {
    if (this.fsm.state === 'Established') this.write(encodeMessage(update, this.ctx));
  }

  sendRaw(frame: Buffer): void {
    if (this.fsm.state !== 'Established') return;
    // Behind the UPDATEs the full queue refused: an End-of-RIB must not overtake the routes it closes.
    if (this.queueFull) this.deferred.push(frame);
    else this.write(frame);
  }

  /** Frames sent while the queue was full, written once what the drain is owed has gone. */
  private deferred: Buffer[] = [];

  /**
   * An UPDATE, unless the queue to the peer is full: then false, and a `drain` event follows when it
   * empties. A peer that stays full for the hold time is closed (RFC 9687 send hold timer).
   */
  sendUpdate(frame: Buffer): boolean {
    const socket = this.socket;
    if (this.fsm.state !== 'Established' || !socket) return true; // nothing owed to a session that is gone
    if (socket.writableLength < MAX_QUEUED_BYTES) {
      this.write(frame);
      return true;
    }
    if (!this.queueFull) {
      this.queueFull = true;
      this.perform({ type: 'setTimer', timer: 'sendHold', seconds: this.fsm.negotiated?.holdTime || OPEN_HOLD_SECONDS });
      socket.once('drain', () => {
        if (this.socket !== socket) return;
        this.queueFull = false;
        this.perform({ type: 'clearTimer', timer: 'sendHold' });
        this.emit('drain');
        if (!this.queueFull) for (const frame of this.deferred.splice(0)) this.write(frame);
      });
    }
    return false;
  }

  private queueFull = false;

  /** UPDATEs are being refused until the queue to the peer drains. */
  get congested(): boolean {
    return this.queueFull;
  }

  /** Asks the peer to send its routes of these families again (RFC 2918). */
  requestRefresh(families: Family[]): void {
    for (const family of families) this.sendRaw(encodeMessage({ type: 5, family, subtype: 0 }, this.ctx));
  }

  sendNotificationAndClose(code: number, subcode: number): void {
    this.run({ type: 'DecodeError', error: new BgpError(code, subcode, `NOTIFICATION ${code}/${subcode} sent`) });
  }

  private write(frame: Buffer): void {
    this.socket?.write(frame);
  }

  private openMessage(): OpenMessage {
    const caps: Capability[] = [
      ...this.config.families.map((family) => ({ code: 1 as const, family })),
      { code: 2 },
      { code: 65, asn: this.config.localAsn },
    ];
    if (this.config.gracefulRestart) {
      caps.push({
        code: 64, restarting: this.config.gracefulRestart.restarting, notification: false,
        restartTime: this.config.gracefulRestart.restartTime,
        families: this.config.families.map((f) => ({ ...f, forwardingPreserved: true })),
      });
    }
    return { type: 1, version: 4, asn: this.config.localAsn, holdTime: this.config.holdTime, routerId: this.config.routerId, capabilities: caps };
  }

  private run(event: Parameters<Fsm['handle']>[0]): void {
    const before = this.fsm.state;
    const actions = this.fsm.handle(event);
    try {
      for (const action of actions) this.perform(action);
    } catch (err) {
      this.fault(err);
    }
    const after = this.fsm.state;
    if (after !== before) {
      if (after === 'Established' || before === 'Established') this.since = Date.now();
      this.emit('state', before, after);
    }
  }

  private perform(action: Action): void {
    switch (action.type) {
      case 'connect': {
        const socket = connectTo(this.config);
        this.attach(socket, true);
        socket.once('connect', () => {
          if (this.socket === socket) this.run({ type: 'TcpConnected' });
        });
        return;
      }
      case 'disconnect':
        this.dropPending();
        if (this.socket) {
          const s = this.socket;
          this.socket = undefined;
          s.removeAllListeners();
          s.on('error', () => undefined);
          s.end();
          setTimeout(() => s.destroy(), 1000).unref();
        }
        this.established = undefined;
        return;
      case 'sendOpen':
        this.ctx = { fourOctetAs: false };
        this.write(encodeMessage(this.openMessage(), this.ctx));
        return;
      case 'sendKeepalive':
        this.write(keepalive());
        return;
      case 'sendNotification':
        this.lastError = `sent NOTIFICATION ${action.code}/${action.subcode}`;
        this.write(encodeMessage({ type: 3, code: action.code, subcode: action.subcode, data: action.data ?? new Uint8Array() }, this.ctx));
        return;
      case 'setTimer': {
        clearTimeout(this.timers.get(action.timer));
        this.timers.set(action.timer, setTimeout(() => {
          this.timers.delete(action.timer);
          this.run({ type: 'TimerExpired', timer: action.timer });
        }, action.seconds * 1000));
        return;
      }
      case 'clearTimer':
        clearTimeout(this.timers.get(action.timer));
        this.timers.delete(action.timer);
        return;
      case 'established': {
        const open = action.negotiated.open;
        const caps = capabilitiesOf(open);
        const families = caps.families.length ? this.config.families.filter((f) => caps.families.some((p) => p.afi === f.afi && p.safi === f.safi)) : [{ afi: AFI.IPv4, safi: SAFI_UNICAST }];
        this.lastError = undefined;
        const localAddress = this.socket?.localAddress?.replace(/^::ffff:/, '') ?? this.config.localAddress ?? '';
        const interfaces = networkInterfaces();
        const device = deviceHolding(localAddress, interfaces);
        this.established = {
          negotiated: action.negotiated, ctx: this.ctx, families,
          ...(caps.gracefulRestart ? { peerGracefulRestart: caps.gracefulRestart } : {}),
          routeRefresh: caps.routeRefresh,
          localAddress, ...(device ? { device } : {}),
          linkAddresses: addressesOn(device, interfaces),
        };
        this.emit('established', this.established);
        return;
      }
      case 'down': {
        this.lastError = this.lastError ?? action.reason;
        this.emit('down', { reason: action.reason, silent: action.silent });
        return;
      }
    }
  }

  /**
   * Something of ours threw while handling this peer. It ends this session (Cease), never the
   * process: a fault for one peer must not take the others down with it.
   */
  private fault(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.lastError = `internal error: ${error.message}`;
    try {
      this.emit('fault', error);
    } catch {
      // a failing report must not stop the reset below
    }
    if (this.fsm.state !== 'Idle') this.run({ type: 'DecodeError', error: new BgpError(ErrorCode.CEASE, 0, this.lastError) });
  }

  /** Whether the current connection is the one we opened (collision resolution needs to know). */
  private socketIsOurs = false;

  private attach(socket: Socket, ours: boolean): void {
    this.socket = socket;
    this.socketIsOurs = ours;
    this.queueFull = false;
    this.deferred = [];
    this.reader = new MessageReader();
    socket.setNoDelay(true);
    socket.setKeepAlive(true, (this.config.tcpKeepaliveIdleSeconds ?? TCP_KEEPALIVE_IDLE_SECONDS) * 1000);
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('error', (err) => {
      if (this.socket === socket) this.lastError = err.message;
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.handleFrames(Infinity); // what arrived before the close still counts (a NOTIFICATION, say)
      if (this.socket === socket) {
        this.socket = undefined;
        if (this.pending && (this.fsm.state === 'Connect' || this.fsm.state === 'OpenSent')) this.adoptPending(); // theirs is still there
        else this.run({ type: 'TcpFailed' });
      }
    });
  }

  /**
   * Bytes are only buffered here; frames are handled a few at a time on later turns of the event
   * loop. In between, Node reads whatever else the socket has, so a peer sending a full table does
   * not find our TCP window closed while we work through it: a closed window stalls the sender for
   * its zero-window probe back-off, hundreds of milliseconds. Timers and other peers get turns too.
   */
  private onData(socket: Socket, chunk: Buffer): void {
    if (this.socket !== socket) return;
    this.reader.push(chunk);
    // Past this, TCP flow control holds the peer back instead of our memory.
    if (this.reader.bufferedBytes > MAX_BUFFERED_BYTES) socket.pause();
    this.scheduleFrames();
  }

  private framesScheduled = false;

  private scheduleFrames(): void {
    if (this.framesScheduled) return;
    this.framesScheduled = true;
    setImmediate(() => {
      this.framesScheduled = false;
      this.handleFrames(FRAMES_PER_TURN);
    });
  }

  /** Handles up to `budget` whole frames from the current connection; schedules the rest. */
  private handleFrames(budget: number): void {
    const socket = this.socket;
    if (!socket) return;
    const until = performance.now() + MS_PER_TURN;
    try {
      for (let handled = 0; this.socket === socket; handled++) {
        if (handled === budget || (budget !== Infinity && handled > 0 && performance.now() > until)) {
          this.scheduleFrames();
          return;
        }
        const frame = this.reader.nextFrame();
        if (!frame) break;
        this.handleMessage(decodeMessage(frame, this.ctx));
      }
    } catch (err) {
      if (err instanceof BgpError) this.run({ type: 'DecodeError', error: err });
      else this.fault(err);
    }
    if (this.socket === socket && socket.isPaused()) socket.resume();
  }

  private handleMessage(msg: BgpMessage): void {
    switch (msg.type) {
      case 1: {
        const caps = capabilitiesOf(msg);
        // 4-octet AS paths once both sides said so (we always do).
        this.ctx = { fourOctetAs: caps.fourOctetAs !== undefined, ebgp: msg.asn !== this.config.localAsn };
        this.run({ type: 'OpenReceived', open: msg });
        if (this.pending) this.resolveCollision(msg.routerId);
        break;
      }
      case 2:
        this.run({ type: 'UpdateReceived' });
        if (this.fsm.state === 'Established') this.emit('update', msg);
        break;
      case 3:
        this.lastError = `received NOTIFICATION ${msg.code}/${msg.subcode}`;
        if (msg.code === ErrorCode.CEASE && this.pending && (this.fsm.state === 'OpenSent' || this.fsm.state === 'OpenConfirm')) {
          // The peer closed ours in favour of the connection it opened (it settled the collision
          // first, or refused ours): negotiation goes on over the one we hold.
          this.adoptPending();
          break;
        }
        this.run({ type: 'NotificationReceived', code: msg.code, subcode: msg.subcode });
        break;
      case 4:
        this.run({ type: 'KeepaliveReceived' });
        break;
      case 5: {
        // RFC 2918 §4: a request for a family not negotiated is ignored; RFC 7313 §5: so is any
        // subtype but a plain request (we do not negotiate enhanced route refresh).
        const family = msg.family;
        const negotiated = this.established?.families.some((f) => f.afi === family.afi && f.safi === family.safi);
        if (this.fsm.state === 'Established' && negotiated && msg.subtype === 0) this.emit('routeRefresh', family);
        break;
      }
    }
  }
}

/** The addresses of one interface (unzoned), none for no interface: where our next hop of another family comes from. */
export function addressesOn(device: string | undefined, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  return device ? (interfaces[device] ?? []).map((i) => i.address) : [];
}

/** The interface holding `address` in this network namespace (a zoned address names its own), if any. */
export function deviceHolding(address: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string | undefined {
  const zone = address.indexOf('%');
  if (zone >= 0) return address.slice(zone + 1) || undefined;
  for (const [name, infos] of Object.entries(interfaces)) if (infos?.some((i) => i.address === address)) return name;
  return undefined;
}
