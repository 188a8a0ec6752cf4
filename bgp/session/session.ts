// One BGP peer: a TCP connection driven by the FSM, with real timers and the codec. Emits events up.
import { EventEmitter } from 'node:events';
import { Socket, connect } from 'node:net';
import {
  AFI,
  BgpError,
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
import { type Action, Fsm, type Negotiated, type State, type TimerName, keepOurConnection } from '../fsm/fsm.js';

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
}

export interface Established {
  negotiated: Negotiated;
  ctx: CodecContext;
  families: Family[];
  /** The peer's graceful restart capability, when it has one. */
  peerGracefulRestart?: Extract<Capability, { code: 64 }>;
  localAddress: string;
}

export interface SessionEvents {
  state: [from: State, to: State];
  established: [Established];
  update: [UpdateMessage];
  routeRefresh: [Family];
  down: [{ reason: string; silent: boolean; peerGracefulRestart?: Extract<Capability, { code: 64 }> }];
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
  }

  snapshot(): { state: State; uptimeSeconds: number; lastError?: string } {
    return { state: this.fsm.state, uptimeSeconds: this.fsm.state === 'Established' ? Math.floor((Date.now() - this.since) / 1000) : 0, lastError: this.lastError };
  }

  /** An incoming connection from this peer, handed over by the speaker's listener. */
  acceptIncoming(socket: Socket): void {
    const s = this.fsm.state;
    if (s === 'Idle' || s === 'OpenConfirm' || s === 'Established') {
      this.reject(socket);
      return;
    }
    if ((s === 'Connect' || s === 'OpenSent') && this.socket && keepOurConnection(this.config.routerId, this.config.peerAddress)) {
      // Collision (RFC 4271 §6.8): the side with the higher identifier keeps the connection it
      // opened, and both sides apply the same rule, so exactly one connection survives. The peer's
      // address stands for its identifier, which we only learn from its OPEN.
      this.reject(socket);
      return;
    }
    if (this.socket) {
      this.socket.removeAllListeners();
      this.socket.destroy();
    }
    this.attach(socket);
    if (s === 'OpenSent') {
      // We already sent OPEN on the connection we gave up: send it again on this one.
      this.write(encodeMessage(this.openMessage(), { fourOctetAs: false }));
      return;
    }
    this.run({ type: 'TcpConnected' });
  }

  private reject(socket: Socket): void {
    socket.on('error', () => undefined);
    socket.end(encodeMessage({ type: 3, code: ErrorCode.CEASE, subcode: CeaseSubcode.CONNECTION_COLLISION, data: new Uint8Array() }, this.ctx));
  }

  send(update: UpdateMessage): void {
    if (this.fsm.state === 'Established') this.write(encodeMessage(update, this.ctx));
  }

  sendRaw(frame: Buffer): void {
    if (this.fsm.state === 'Established') this.write(frame);
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
    for (const action of actions) this.perform(action);
    const after = this.fsm.state;
    if (after !== before) {
      if (after === 'Established' || before === 'Established') this.since = Date.now();
      this.emit('state', before, after);
    }
  }

  private perform(action: Action): void {
    switch (action.type) {
      case 'connect': {
        const socket = connect({ host: this.config.peerAddress, port: this.config.port, ...(this.config.localAddress ? { localAddress: this.config.localAddress } : {}) });
        this.attach(socket);
        socket.once('connect', () => {
          if (this.socket === socket) this.run({ type: 'TcpConnected' });
        });
        return;
      }
      case 'disconnect':
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
        this.established = {
          negotiated: action.negotiated, ctx: this.ctx, families,
          ...(caps.gracefulRestart ? { peerGracefulRestart: caps.gracefulRestart } : {}),
          localAddress: this.socket?.localAddress?.replace(/^::ffff:/, '') ?? this.config.localAddress ?? '',
        };
        this.emit('established', this.established);
        return;
      }
      case 'down': {
        this.lastError = this.lastError ?? action.reason;
        const gr = this.established?.peerGracefulRestart ?? this.lastPeerGr;
        this.emit('down', { reason: action.reason, silent: action.silent, ...(gr ? { peerGracefulRestart: gr } : {}) });
        return;
      }
    }
  }

  private lastPeerGr?: Extract<Capability, { code: 64 }>;

  private attach(socket: Socket): void {
    this.socket = socket;
    this.reader = new MessageReader();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('error', (err) => {
      if (this.socket === socket) this.lastError = err.message;
    });
    socket.on('close', () => {
      if (this.socket === socket) {
        this.socket = undefined;
        this.run({ type: 'TcpFailed' });
      }
    });
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (this.socket !== socket) return;
    this.reader.push(chunk);
    try {
      for (let frame = this.reader.nextFrame(); frame && this.socket === socket; frame = this.reader.nextFrame()) {
        const msg = decodeMessage(frame, this.ctx);
        switch (msg.type) {
          case 1: {
            const caps = capabilitiesOf(msg);
            // 4-octet AS paths once both sides said so (we always do).
            this.ctx = { fourOctetAs: caps.fourOctetAs !== undefined, ebgp: msg.asn !== this.config.localAsn };
            if (caps.gracefulRestart) this.lastPeerGr = caps.gracefulRestart;
            this.run({ type: 'OpenReceived', open: msg });
            break;
          }
          case 2:
            this.run({ type: 'UpdateReceived' });
            if (this.fsm.state === 'Established') this.emit('update', msg);
            break;
          case 3:
            this.lastError = `received NOTIFICATION ${msg.code}/${msg.subcode}`;
            this.run({ type: 'NotificationReceived', code: msg.code, subcode: msg.subcode });
            break;
          case 4:
            this.run({ type: 'KeepaliveReceived' });
            break;
          case 5:
            if (this.fsm.state === 'Established') this.emit('routeRefresh', msg.family);
            break;
        }
      }
    } catch (err) {
      if (err instanceof BgpError) this.run({ type: 'DecodeError', error: err });
      else throw err;
    }
  }
}
