// The RFC 4271 §8 state machine, pure: events in, actions out; timers are inputs, never run here.
import { BgpError, CeaseSubcode, ErrorCode, type OpenMessage, OpenSubcode } from '../codec/types.js';

export type State = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';
/**
 * sendHold: our queue to the peer stayed full (RFC 9687); the session sets and clears it.
 * stable: the session has been up STABLE_SECONDS, which forgives the Cease flaps before it.
 */
export type TimerName = 'connectRetry' | 'hold' | 'keepalive' | 'idleHold' | 'sendHold' | 'stable';

export type FsmEvent =
  | { type: 'Start' }
  | { type: 'Stop' }
  | { type: 'TimerExpired'; timer: TimerName }
  | { type: 'TcpConnected' }
  | { type: 'TcpFailed' }
  /** Connection collision resolved in the peer's favour: its connection replaces ours (RFC 4271 §6.8). */
  | { type: 'ConnectionReplaced' }
  | { type: 'OpenReceived'; open: OpenMessage }
  | { type: 'KeepaliveReceived' }
  | { type: 'UpdateReceived' }
  | { type: 'NotificationReceived'; code: number; subcode: number }
  | { type: 'DecodeError'; error: BgpError };

export interface Negotiated {
  holdTime: number;
  keepaliveTime: number;
  open: OpenMessage;
}

export type Action =
  | { type: 'connect' }
  | { type: 'disconnect' }
  | { type: 'sendOpen' }
  | { type: 'sendKeepalive' }
  | { type: 'sendNotification'; code: number; subcode: number; data?: Uint8Array }
  | { type: 'setTimer'; timer: TimerName; seconds: number }
  | { type: 'clearTimer'; timer: TimerName }
  | { type: 'established'; negotiated: Negotiated }
  | { type: 'down'; reason: string; /** the TCP connection was lost without a NOTIFICATION */ silent: boolean };

export interface FsmConfig {
  localAsn: number;
  peerAsn: number;
  routerId: string;
  /** Our proposed hold time: 0 (no keepalives) or 3..65535. */
  holdTime: number;
  connectRetrySeconds: number;
  /** Never connect; wait for the peer. */
  passive: boolean;
}

/** RFC 4271 §8.2.2: the hold timer while waiting for the peer's OPEN. */
export const OPEN_HOLD_SECONDS = 240;
/** The longest the idle hold grows: a peer that keeps failing is refused this long at most. */
export const MAX_IDLE_HOLD_SECONDS = 60;
/**
 * Established sessions a peer may end with a Cease, each accepted back at once, before the next
 * is damped (RFC 4271 §8.1.1, DampPeerOscillations): every cycle costs a full table each way.
 */
export const CEASE_FLAPS_ALLOWED = 2;
/** Up this long, a session forgives the Cease flaps before it (BIRD's "error forget time"). */
export const STABLE_SECONDS = 300;

export class Fsm {
  state: State = 'Idle';
  private stopped = true;
  /** Consecutive failures: the idle hold time doubles with each, damping a flapping peer. */
  private failures = 0;
  /** Established sessions the peer ended with a Cease since the last one that stayed up STABLE_SECONDS. */
  private ceaseFlaps = 0;
  negotiated?: Negotiated;

  constructor(private readonly config: FsmConfig) {}

  handle(event: FsmEvent): Action[] {
    const a: Action[] = [];
    switch (event.type) {
      case 'Start':
        if (this.state !== 'Idle') return a;
        this.stopped = false;
        return this.begin(a);
      case 'Stop':
        this.stopped = true;
        if (this.state === 'OpenSent' || this.state === 'OpenConfirm' || this.state === 'Established') {
          a.push({ type: 'sendNotification', code: ErrorCode.CEASE, subcode: CeaseSubcode.ADMIN_SHUTDOWN });
        }
        return this.toIdle(a, 'administratively stopped', false, false);
      case 'TimerExpired':
        return this.timer(event.timer, a);
      case 'TcpConnected':
        if (this.state !== 'Connect' && this.state !== 'Active') return a;
        a.push({ type: 'clearTimer', timer: 'connectRetry' }, { type: 'sendOpen' }, { type: 'setTimer', timer: 'hold', seconds: OPEN_HOLD_SECONDS });
        this.state = 'OpenSent';
        return a;
      case 'TcpFailed':
        if (this.state === 'Connect' || this.state === 'OpenSent') {
          // RFC 4271: back to Active, retrying when the ConnectRetry timer fires.
          a.push({ type: 'disconnect' }, { type: 'clearTimer', timer: 'hold' }, { type: 'setTimer', timer: 'connectRetry', seconds: this.config.connectRetrySeconds });
          this.state = 'Active';
          return a;
        }
        if (this.state === 'OpenConfirm' || this.state === 'Established') return this.toIdle(a, 'connection lost', true, true);
        return a;
      case 'ConnectionReplaced':
        if (this.state !== 'OpenSent' && this.state !== 'OpenConfirm') return a;
        // Negotiation starts over on the new connection: our OPEN again, and the peer's to wait for.
        this.negotiated = undefined;
        this.state = 'OpenSent';
        a.push({ type: 'clearTimer', timer: 'keepalive' }, { type: 'sendOpen' }, { type: 'setTimer', timer: 'hold', seconds: OPEN_HOLD_SECONDS });
        return a;
      case 'OpenReceived':
        return this.openReceived(event.open, a);
      case 'KeepaliveReceived':
        if (this.state === 'OpenConfirm') {
          this.state = 'Established';
          this.failures = 0;
          this.restartHold(a);
          a.push({ type: 'setTimer', timer: 'stable', seconds: STABLE_SECONDS }, { type: 'established', negotiated: this.negotiated! });
          return a;
        }
        if (this.state === 'Established') this.restartHold(a);
        else if (this.state === 'OpenSent') return this.fail(a, ErrorCode.FSM, 1, 'KEEPALIVE before OPEN');
        return a;
      case 'UpdateReceived':
        if (this.state === 'Established') this.restartHold(a);
        else if (this.state === 'OpenSent' || this.state === 'OpenConfirm') return this.fail(a, ErrorCode.FSM, this.state === 'OpenSent' ? 1 : 2, 'UPDATE before Established');
        return a;
      case 'NotificationReceived': {
        // A Cease (RFC 4486) is the peer closing this connection on purpose: not ready yet, a
        // collision, a reset. As BIRD does, we wait in Active: the peer's next connection is accepted
        // at once, ours is retried after the back-off. Any other code is an error: Idle, refusing
        // connections for the idle hold time (RFC 4271 §8.1.1, DampPeerOscillations). So is a Cease
        // that ends one Established session too many in a row: its idle hold grows with each.
        const cease = event.code === ErrorCode.CEASE;
        if (cease && this.state === 'Established') this.ceaseFlaps++;
        const damped = cease && this.ceaseFlaps > CEASE_FLAPS_ALLOWED;
        if (damped) this.failures = Math.max(this.failures, this.ceaseFlaps - CEASE_FLAPS_ALLOWED);
        return this.toIdle(a, `NOTIFICATION ${event.code}/${event.subcode} received`, true, false, cease && !damped ? 'Active' : 'Idle');
      }
      case 'DecodeError':
        return this.fail(a, event.error.code, event.error.subcode, event.error.message, event.error.data);
    }
  }

  private begin(a: Action[]): Action[] {
    if (this.config.passive) {
      this.state = 'Active';
      return a;
    }
    this.state = 'Connect';
    a.push({ type: 'connect' }, { type: 'setTimer', timer: 'connectRetry', seconds: this.config.connectRetrySeconds });
    return a;
  }

  private timer(timer: TimerName, a: Action[]): Action[] {
    switch (timer) {
      case 'idleHold':
        return this.state === 'Idle' && !this.stopped ? this.begin(a) : a;
      case 'connectRetry':
        if (this.state === 'Connect' || this.state === 'Active') {
          if (this.config.passive) return a;
          a.push({ type: 'disconnect' }, { type: 'connect' }, { type: 'setTimer', timer: 'connectRetry', seconds: this.config.connectRetrySeconds });
          this.state = 'Connect';
        }
        return a;
      case 'stable':
        if (this.state === 'Established') this.ceaseFlaps = 0;
        return a;
      case 'sendHold':
        // RFC 9687: the peer has not read what we sent for the hold time; it cannot be a live peer.
        if (this.state === 'OpenConfirm' || this.state === 'Established') return this.fail(a, ErrorCode.SEND_HOLD_TIMER_EXPIRED, 0, 'send hold timer expired: the peer stopped reading');
        return a;
      case 'hold':
        if (this.state === 'OpenSent' || this.state === 'OpenConfirm' || this.state === 'Established') {
          // A hard failure, not a restart: the peer's routes go at once (RFC 4724 §4.2; only RFC 8538,
          // which we do not negotiate, would make it graceful).
          return this.fail(a, ErrorCode.HOLD_TIMER_EXPIRED, 0, 'hold timer expired');
        }
        return a;
      case 'keepalive':
        if ((this.state === 'OpenConfirm' || this.state === 'Established') && this.negotiated && this.negotiated.keepaliveTime > 0) {
          a.push({ type: 'sendKeepalive' }, { type: 'setTimer', timer: 'keepalive', seconds: this.negotiated.keepaliveTime });
        }
        return a;
    }
  }

  private openReceived(open: OpenMessage, a: Action[]): Action[] {
    if (this.state !== 'OpenSent') return this.fail(a, ErrorCode.FSM, this.state === 'OpenConfirm' ? 2 : 3, `OPEN in ${this.state}`);
    if (open.asn !== this.config.peerAsn) return this.fail(a, ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_PEER_AS, `peer AS ${open.asn}, expected ${this.config.peerAsn}`);
    if (this.config.peerAsn === this.config.localAsn && open.routerId === this.config.routerId) {
      return this.fail(a, ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_BGP_IDENTIFIER, `iBGP peer has our router id ${open.routerId}`);
    }
    // The codec refuses these too; checked again so the FSM holds on its own (RFC 4271 §6.2).
    if (open.holdTime === 1 || open.holdTime === 2) return this.fail(a, ErrorCode.OPEN_MESSAGE, OpenSubcode.UNACCEPTABLE_HOLD_TIME, `hold time ${open.holdTime}`);
    const holdTime = Math.min(this.config.holdTime, open.holdTime);
    const keepaliveTime = Math.floor(holdTime / 3);
    this.negotiated = { holdTime, keepaliveTime, open };
    this.state = 'OpenConfirm';
    a.push({ type: 'sendKeepalive' });
    if (keepaliveTime > 0) a.push({ type: 'setTimer', timer: 'keepalive', seconds: keepaliveTime });
    // A zero hold time stops the hold timer once Established. Until the peer's KEEPALIVE the OPEN
    // hold timer goes on: a peer silent after its OPEN would otherwise hold us in OpenConfirm forever.
    if (holdTime > 0) this.restartHold(a);
    return a;
  }

  private restartHold(a: Action[]): void {
    const hold = this.negotiated?.holdTime ?? OPEN_HOLD_SECONDS;
    if (hold > 0) a.push({ type: 'setTimer', timer: 'hold', seconds: hold });
    else a.push({ type: 'clearTimer', timer: 'hold' });
  }

  private fail(a: Action[], code: number, subcode: number, reason: string, data?: Uint8Array): Action[] {
    a.push({ type: 'sendNotification', code, subcode, ...(data ? { data } : {}) });
    return this.toIdle(a, reason, true, false);
  }

  /** Closes the connection; `then` Active keeps accepting the peer's connections meanwhile. */
  private toIdle(a: Action[], reason: string, error: boolean, silent: boolean, then: 'Idle' | 'Active' = 'Idle'): Action[] {
    const wasUp = this.state !== 'Idle';
    a.push({ type: 'disconnect' });
    for (const timer of ['connectRetry', 'hold', 'keepalive', 'idleHold', 'sendHold', 'stable'] as const) a.push({ type: 'clearTimer', timer });
    if (wasUp) a.push({ type: 'down', reason, silent });
    this.state = this.stopped ? 'Idle' : then;
    this.negotiated = undefined;
    if (error && !this.stopped) {
      this.failures++;
      const seconds = Math.min(MAX_IDLE_HOLD_SECONDS, this.config.connectRetrySeconds * 2 ** (this.failures - 1));
      if (this.state === 'Idle') a.push({ type: 'setTimer', timer: 'idleHold', seconds });
      else if (!this.config.passive) a.push({ type: 'setTimer', timer: 'connectRetry', seconds });
    }
    return a;
  }
}

/** RFC 4271 §6.8: of two connections, keep the one opened by the speaker with the higher BGP identifier. */
export function keepOurConnection(localRouterId: string, remoteRouterId: string): boolean {
  const n = (id: string): number => id.split('.').reduce((x, o) => x * 256 + Number(o), 0);
  return n(localRouterId) > n(remoteRouterId);
}

export { BgpError };
