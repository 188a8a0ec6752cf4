import { describe, expect, it } from 'vitest';
import { BgpError, CeaseSubcode, ErrorCode, OpenSubcode, type OpenMessage } from '../codec/types.js';
import { type Action, CEASE_FLAPS_ALLOWED, Fsm, type FsmConfig, type FsmEvent, OPEN_HOLD_SECONDS, STABLE_SECONDS, type State, keepOurConnection } from './fsm.js';

// ---- helpers ----

const LOCAL_ASN = 64512;
const PEER_ASN = 64513;

function config(over: Partial<FsmConfig> = {}): FsmConfig {
  return { localAsn: LOCAL_ASN, peerAsn: PEER_ASN, routerId: '10.0.0.1', holdTime: 90, connectRetrySeconds: 5, passive: false, ...over };
}

function open(over: Partial<OpenMessage> = {}): OpenMessage {
  return { type: 1, version: 4, asn: PEER_ASN, holdTime: 90, routerId: '10.0.0.2', capabilities: [], ...over };
}

const ev = {
  start: { type: 'Start' } as FsmEvent,
  stop: { type: 'Stop' } as FsmEvent,
  tcpConnected: { type: 'TcpConnected' } as FsmEvent,
  tcpFailed: { type: 'TcpFailed' } as FsmEvent,
  keepalive: { type: 'KeepaliveReceived' } as FsmEvent,
  update: { type: 'UpdateReceived' } as FsmEvent,
  timer: (timer: 'connectRetry' | 'hold' | 'keepalive' | 'idleHold' | 'stable'): FsmEvent => ({ type: 'TimerExpired', timer }),
  open: (over: Partial<OpenMessage> = {}): FsmEvent => ({ type: 'OpenReceived', open: open(over) }),
  notification: (code: number, subcode: number): FsmEvent => ({ type: 'NotificationReceived', code, subcode }),
};

/** The events that lead from a fresh FSM to each state (active peer). */
const PATH_TO: Record<State, FsmEvent[]> = {
  Idle: [],
  Connect: [ev.start],
  Active: [ev.start, ev.tcpFailed],
  OpenSent: [ev.start, ev.tcpConnected],
  OpenConfirm: [ev.start, ev.tcpConnected, ev.open()],
  Established: [ev.start, ev.tcpConnected, ev.open(), ev.keepalive],
};

function fsmIn(state: State, cfg: Partial<FsmConfig> = {}): Fsm {
  const fsm = new Fsm(config(cfg));
  for (const e of PATH_TO[state]) fsm.handle(e);
  expect(fsm.state).toBe(state);
  return fsm;
}

const notifications = (actions: Action[]) => actions.filter((a) => a.type === 'sendNotification').map((a) => a.type === 'sendNotification' && [a.code, a.subcode]);
const timersSet = (actions: Action[]) => Object.fromEntries(actions.flatMap((a) => (a.type === 'setTimer' ? [[a.timer, a.seconds]] : [])));
const downs = (actions: Action[]) => actions.filter((a) => a.type === 'down');

/** Every timer cleared, disconnect, and (when the session was up) a single `down`. */
const TO_IDLE_CLEANUP: Action[] = [
  { type: 'disconnect' },
  { type: 'clearTimer', timer: 'connectRetry' },
  { type: 'clearTimer', timer: 'hold' },
  { type: 'clearTimer', timer: 'keepalive' },
  { type: 'clearTimer', timer: 'idleHold' },
  { type: 'clearTimer', timer: 'sendHold' },
  { type: 'clearTimer', timer: 'stable' },
];

// ---- tests ----

describe('state coverage', () => {
  it('a single run visits all six states', () => {
    const fsm = new Fsm(config());
    const seen = new Set<State>([fsm.state]);
    for (const e of [ev.start, ev.tcpFailed, ev.timer('connectRetry'), ev.tcpConnected, ev.open(), ev.keepalive]) {
      fsm.handle(e);
      seen.add(fsm.state);
    }
    expect(fsm.state).toBe('Established');
    expect([...seen]).toEqual(['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established']);
  });
});

describe('Start', () => {
  it('a new FSM is Idle with nothing negotiated', () => {
    const fsm = new Fsm(config());
    expect(fsm.state).toBe('Idle');
    expect(fsm.negotiated).toBeUndefined();
  });

  it('an active peer goes Idle → Connect, opening TCP and arming ConnectRetry', () => {
    const fsm = new Fsm(config({ connectRetrySeconds: 7 }));
    expect(fsm.handle(ev.start)).toEqual([{ type: 'connect' }, { type: 'setTimer', timer: 'connectRetry', seconds: 7 }]);
    expect(fsm.state).toBe('Connect');
  });

  it('a passive peer goes Idle → Active and does not connect', () => {
    const fsm = new Fsm(config({ passive: true }));
    expect(fsm.handle(ev.start)).toEqual([]);
    expect(fsm.state).toBe('Active');
  });

  it('Start outside Idle is ignored', () => {
    const fsm = fsmIn('OpenSent');
    expect(fsm.handle(ev.start)).toEqual([]);
    expect(fsm.state).toBe('OpenSent');
  });
});

describe('ConnectRetry timer', () => {
  it('in Connect it retries the connection and re-arms itself', () => {
    const fsm = fsmIn('Connect');
    expect(fsm.handle(ev.timer('connectRetry'))).toEqual([
      { type: 'disconnect' }, { type: 'connect' }, { type: 'setTimer', timer: 'connectRetry', seconds: 5 },
    ]);
    expect(fsm.state).toBe('Connect');
  });

  it('a failed TCP attempt in Connect goes to Active; the timer then brings it back to Connect', () => {
    const fsm = fsmIn('Connect');
    expect(fsm.handle(ev.tcpFailed)).toEqual([
      { type: 'disconnect' }, { type: 'clearTimer', timer: 'hold' }, { type: 'setTimer', timer: 'connectRetry', seconds: 5 },
    ]);
    expect(fsm.state).toBe('Active');
    expect(fsm.handle(ev.timer('connectRetry')).map((a) => a.type)).toEqual(['disconnect', 'connect', 'setTimer']);
    expect(fsm.state).toBe('Connect');
  });

  it('a passive peer in Active never connects on expiry', () => {
    const fsm = new Fsm(config({ passive: true }));
    fsm.handle(ev.start);
    expect(fsm.handle(ev.timer('connectRetry'))).toEqual([]);
    expect(fsm.state).toBe('Active');
  });

  it('is ignored once the session is established', () => {
    const fsm = fsmIn('Established');
    expect(fsm.handle(ev.timer('connectRetry'))).toEqual([]);
    expect(fsm.state).toBe('Established');
  });
});

describe('TCP connection established', () => {
  it('Connect → OpenSent: stops ConnectRetry, sends OPEN, arms the large OPEN hold timer', () => {
    const fsm = fsmIn('Connect');
    expect(fsm.handle(ev.tcpConnected)).toEqual([
      { type: 'clearTimer', timer: 'connectRetry' }, { type: 'sendOpen' }, { type: 'setTimer', timer: 'hold', seconds: OPEN_HOLD_SECONDS },
    ]);
    expect(OPEN_HOLD_SECONDS).toBe(240);
    expect(fsm.state).toBe('OpenSent');
  });

  it('a passive peer accepting a connection goes Active → OpenSent and sends OPEN', () => {
    const fsm = new Fsm(config({ passive: true }));
    fsm.handle(ev.start);
    expect(fsm.handle(ev.tcpConnected).map((a) => a.type)).toContain('sendOpen');
    expect(fsm.state).toBe('OpenSent');
  });

  it('is ignored in Idle and after OpenSent', () => {
    for (const state of ['Idle', 'OpenSent', 'OpenConfirm', 'Established'] as const) {
      const fsm = fsmIn(state);
      expect(fsm.handle(ev.tcpConnected)).toEqual([]);
      expect(fsm.state).toBe(state);
    }
  });

  it('a TCP failure in OpenSent falls back to Active with ConnectRetry armed', () => {
    const fsm = fsmIn('OpenSent');
    expect(fsm.handle(ev.tcpFailed)).toEqual([
      { type: 'disconnect' }, { type: 'clearTimer', timer: 'hold' }, { type: 'setTimer', timer: 'connectRetry', seconds: 5 },
    ]);
    expect(fsm.state).toBe('Active');
  });
});

describe('OPEN received: hold time negotiation', () => {
  it('OpenSent → OpenConfirm: replies KEEPALIVE and arms keepalive (hold/3) and hold timers', () => {
    const fsm = fsmIn('OpenSent');
    const peerOpen = open({ holdTime: 90 });
    expect(fsm.handle({ type: 'OpenReceived', open: peerOpen })).toEqual([
      { type: 'sendKeepalive' }, { type: 'setTimer', timer: 'keepalive', seconds: 30 }, { type: 'setTimer', timer: 'hold', seconds: 90 },
    ]);
    expect(fsm.state).toBe('OpenConfirm');
    expect(fsm.negotiated).toEqual({ holdTime: 90, keepaliveTime: 30, open: peerOpen });
  });

  it.each([
    // ours, theirs, negotiated hold, keepalive
    [90, 30, 30, 10],
    [30, 90, 30, 10],
    [9, 180, 9, 3],
    [90, 3, 3, 1],
    [10, 65535, 10, 3],
  ])('ours %i, theirs %i → hold %i, keepalive %i (the smaller hold time wins)', (ours, theirs, hold, keepalive) => {
    const fsm = fsmIn('OpenSent', { holdTime: ours });
    const actions = fsm.handle(ev.open({ holdTime: theirs }));
    expect(fsm.negotiated).toMatchObject({ holdTime: hold, keepaliveTime: keepalive });
    expect(timersSet(actions)).toEqual({ keepalive, hold });
  });

  it('a peer that proposes hold time 0, then never sends its KEEPALIVE, does not hold us in OpenConfirm forever (RFC 4271 §8.2.2)', () => {
    const fsm = fsmIn('OpenSent');
    const actions = fsm.handle(ev.open({ holdTime: 0 }));
    expect(actions).not.toContainEqual({ type: 'clearTimer', timer: 'hold' });
    expect(fsm.state).toBe('OpenConfirm');
    // The OPEN hold timer (armed at TcpConnected) runs out: 4/0, and the peer may try again.
    expect(notifications(fsm.handle(ev.timer('hold')))).toEqual([[ErrorCode.HOLD_TIMER_EXPIRED, 0]]);
    expect(fsm.state).toBe('Idle');
  });

  it.each([
    [0, 90],
    [90, 0],
    [0, 0],
  ])('ours %i, theirs %i → hold 0: no keepalive timer, hold timer cleared once Established', (ours, theirs) => {
    const fsm = fsmIn('OpenSent', { holdTime: ours });
    expect(fsm.handle(ev.open({ holdTime: theirs }))).toEqual([{ type: 'sendKeepalive' }]); // the OPEN hold timer goes on
    expect(fsm.negotiated).toMatchObject({ holdTime: 0, keepaliveTime: 0 });
    // Established with hold 0: KEEPALIVE clears rather than arms the hold timer; the keepalive timer sends nothing.
    expect(fsm.handle(ev.keepalive).filter((a) => a.type === 'setTimer' || a.type === 'clearTimer')).toEqual([{ type: 'clearTimer', timer: 'hold' }, { type: 'setTimer', timer: 'stable', seconds: STABLE_SECONDS }]);
    expect(fsm.handle(ev.timer('keepalive'))).toEqual([]);
  });

  it('an OPEN the codec rejects for hold time 1 or 2 (DecodeError 2/6) sends NOTIFICATION 2/6 and goes Idle', () => {
    // messages.ts rejects hold time 1 and 2 while decoding; the session feeds that to the FSM as a DecodeError.
    const fsm = fsmIn('OpenSent');
    const error = new BgpError(ErrorCode.OPEN_MESSAGE, OpenSubcode.UNACCEPTABLE_HOLD_TIME, 'hold time 1');
    const actions = fsm.handle({ type: 'DecodeError', error });
    expect(notifications(actions)).toEqual([[ErrorCode.OPEN_MESSAGE, OpenSubcode.UNACCEPTABLE_HOLD_TIME]]);
    expect(fsm.state).toBe('Idle');
    expect(downs(actions)).toEqual([{ type: 'down', reason: 'hold time 1', silent: false }]);
  });

  // RFC 4271 §6.2: checked by the FSM itself too, not only by the codec.
  it.each([1, 2])('a received OPEN with hold time %i is refused with NOTIFICATION 2/6 (unacceptable hold time)', (holdTime) => {
    const fsm = fsmIn('OpenSent');
    const actions = fsm.handle(ev.open({ holdTime }));
    expect(notifications(actions)).toEqual([[ErrorCode.OPEN_MESSAGE, OpenSubcode.UNACCEPTABLE_HOLD_TIME]]);
    expect(fsm.state).toBe('Idle');
  });

  it('an OPEN from the wrong AS is refused with NOTIFICATION 2/2 (bad peer AS)', () => {
    const fsm = fsmIn('OpenSent');
    const actions = fsm.handle(ev.open({ asn: 65000 }));
    expect(notifications(actions)).toEqual([[2, 2]]);
    expect(fsm.state).toBe('Idle');
    expect(fsm.negotiated).toBeUndefined();
  });

  it('an iBGP peer presenting our router id is refused with NOTIFICATION 2/3 (bad BGP identifier)', () => {
    const fsm = fsmIn('OpenSent', { peerAsn: LOCAL_ASN });
    expect(notifications(fsm.handle(ev.open({ asn: LOCAL_ASN, routerId: '10.0.0.1' })))).toEqual([[2, 3]]);
    expect(fsm.state).toBe('Idle');
  });

  it('an eBGP peer with our router id is accepted (only iBGP needs distinct identifiers here)', () => {
    const fsm = fsmIn('OpenSent');
    fsm.handle(ev.open({ routerId: '10.0.0.1' }));
    expect(fsm.state).toBe('OpenConfirm');
  });

  it.each([
    ['OpenConfirm', 2],
    ['Established', 3],
  ] as const)('a second OPEN in %s is an FSM error 5/%i', (state, subcode) => {
    const fsm = fsmIn(state);
    expect(notifications(fsm.handle(ev.open()))).toEqual([[ErrorCode.FSM, subcode]]);
    expect(fsm.state).toBe('Idle');
  });
});

describe('OpenConfirm → Established', () => {
  it('a KEEPALIVE in OpenConfirm establishes the session and restarts the hold timer', () => {
    const fsm = fsmIn('OpenConfirm');
    const negotiated = fsm.negotiated!;
    expect(fsm.handle(ev.keepalive)).toEqual([
      { type: 'setTimer', timer: 'hold', seconds: 90 }, { type: 'setTimer', timer: 'stable', seconds: STABLE_SECONDS }, { type: 'established', negotiated },
    ]);
    expect(fsm.state).toBe('Established');
  });

  it.each([
    ['OpenSent', ev.keepalive, 1],
    ['OpenSent', ev.update, 1],
    ['OpenConfirm', ev.update, 2],
  ] as const)('in %s, %o is an FSM error 5/%i', (state, event, subcode) => {
    const fsm = fsmIn(state);
    expect(notifications(fsm.handle(event))).toEqual([[ErrorCode.FSM, subcode]]);
    expect(fsm.state).toBe('Idle');
  });
});

describe('hold timer', () => {
  it('expiry in Established sends NOTIFICATION 4/0, a hard (not silent) down: no graceful restart without RFC 8538, and goes Idle', () => {
    const fsm = fsmIn('Established');
    expect(fsm.handle(ev.timer('hold'))).toEqual([
      { type: 'sendNotification', code: ErrorCode.HOLD_TIMER_EXPIRED, subcode: 0 },
      ...TO_IDLE_CLEANUP,
      { type: 'down', reason: 'hold timer expired', silent: false },
      { type: 'setTimer', timer: 'idleHold', seconds: 5 },
    ]);
    expect(fsm.state).toBe('Idle');
    expect(fsm.negotiated).toBeUndefined();
  });

  it.each(['OpenSent', 'OpenConfirm'] as const)('expiry in %s also sends NOTIFICATION 4/0', (state) => {
    const fsm = fsmIn(state);
    expect(notifications(fsm.handle(ev.timer('hold')))).toEqual([[4, 0]]);
    expect(fsm.state).toBe('Idle');
  });

  it.each(['Idle', 'Connect', 'Active'] as const)('expiry in %s does nothing', (state) => {
    const fsm = fsmIn(state);
    expect(fsm.handle(ev.timer('hold'))).toEqual([]);
    expect(fsm.state).toBe(state);
  });

  it.each([ev.keepalive, ev.update])('%o in Established restarts the hold timer with the negotiated value', (event) => {
    const fsm = fsmIn('Established', { holdTime: 30 });
    expect(fsm.handle(event)).toEqual([{ type: 'setTimer', timer: 'hold', seconds: 30 }]);
    expect(fsm.state).toBe('Established');
  });
});

describe('keepalive timer', () => {
  it.each(['OpenConfirm', 'Established'] as const)('in %s it sends KEEPALIVE and re-arms with hold/3', (state) => {
    const fsm = fsmIn(state, { holdTime: 45 });
    expect(fsm.handle(ev.timer('keepalive'))).toEqual([{ type: 'sendKeepalive' }, { type: 'setTimer', timer: 'keepalive', seconds: 15 }]);
    expect(fsm.state).toBe(state);
  });

  it.each(['Idle', 'Connect', 'OpenSent'] as const)('in %s it sends nothing', (state) => {
    expect(fsmIn(state).handle(ev.timer('keepalive'))).toEqual([]);
  });
});

describe('NOTIFICATION received', () => {
  it('an error code in Established goes Idle without answering, reporting a non-silent down and backing off', () => {
    const fsm = fsmIn('Established');
    expect(fsm.handle(ev.notification(3, 1))).toEqual([
      ...TO_IDLE_CLEANUP,
      { type: 'down', reason: 'NOTIFICATION 3/1 received', silent: false },
      { type: 'setTimer', timer: 'idleHold', seconds: 5 },
    ]);
    expect(fsm.state).toBe('Idle');
  });

  it.each(['OpenSent', 'OpenConfirm'] as const)('an error code in %s also goes Idle', (state) => {
    const fsm = fsmIn(state);
    const actions = fsm.handle(ev.notification(2, 2));
    expect(notifications(actions)).toEqual([]);
    expect(fsm.state).toBe('Idle');
  });

  // RFC 4486: a Cease closes that connection on purpose (the peer not ready: 6/5, a collision: 6/7,
  // a reset). As BIRD does, we wait in Active, accepting the peer's next connection at once, and
  // retry ours after the back-off; Idle would refuse the peer for the whole idle hold time.
  it.each([
    ['OpenSent', 5],
    ['OpenSent', 7],
    ['OpenConfirm', 5],
    ['Established', 2],
  ] as const)('Cease 6/%2$s in %1$s goes Active, retrying our connection after the back-off', (state, subcode) => {
    const fsm = fsmIn(state);
    const actions = fsm.handle(ev.notification(6, subcode));
    expect(notifications(actions)).toEqual([]);
    expect(fsm.state).toBe('Active');
    expect(timersSet(actions)).toEqual({ connectRetry: 5 });
    expect(fsm.handle(ev.tcpConnected).map((a) => a.type)).toContain('sendOpen'); // the peer's connection, accepted
    expect(fsm.state).toBe('OpenSent');
  });

  it('Cease for a passive peer goes Active with no timer to connect', () => {
    const fsm = new Fsm(config({ passive: true }));
    fsm.handle(ev.start);
    fsm.handle(ev.tcpConnected);
    expect(timersSet(fsm.handle(ev.notification(6, 5)))).toEqual({});
    expect(fsm.state).toBe('Active');
  });
});

describe('Cease-driven flaps are damped (RFC 4271 §8.1.1 DampPeerOscillations, RFC 4486)', () => {
  /** Established again over the peer's connection, from Active. */
  const reestablish = (fsm: Fsm) => {
    for (const e of PATH_TO.Established.slice(1)) fsm.handle(e);
    expect(fsm.state).toBe('Established');
  };

  it(`after ${CEASE_FLAPS_ALLOWED} Ceases ending Established sessions the next goes Idle, its idle hold doubling with each more`, () => {
    const fsm = fsmIn('Established');
    for (let i = 0; i < CEASE_FLAPS_ALLOWED; i++) {
      fsm.handle(ev.notification(6, 4));
      expect(fsm.state).toBe('Active'); // accepted back at once
      reestablish(fsm);
    }
    const holds: (number | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      const actions = fsm.handle(ev.notification(6, 4));
      expect(fsm.state).toBe('Idle'); // the peer's connections are refused until the idle hold ends
      holds.push(timersSet(actions).idleHold);
      fsm.handle(ev.timer('idleHold'));
      fsm.handle(ev.tcpFailed);
      reestablish(fsm);
    }
    expect(holds).toEqual([10, 20, 40]);
  });

  it(`a session up for ${STABLE_SECONDS} s forgives the flaps before it`, () => {
    const fsm = fsmIn('Established');
    for (let i = 0; i < CEASE_FLAPS_ALLOWED; i++) {
      fsm.handle(ev.notification(6, 4));
      reestablish(fsm);
    }
    fsm.handle(ev.timer('stable'));
    fsm.handle(ev.notification(6, 4));
    expect(fsm.state).toBe('Active');
  });

  it('Ceases before Established (collisions, not ready yet) never count', () => {
    const fsm = fsmIn('OpenConfirm');
    for (let i = 0; i < 5; i++) {
      fsm.handle(ev.notification(6, 7));
      expect(fsm.state).toBe('Active');
      fsm.handle(ev.tcpConnected);
      fsm.handle(ev.open());
    }
  });
});

describe('TCP connection lost after OPEN', () => {
  it.each(['OpenConfirm', 'Established'] as const)('in %s it goes Idle with a silent down (graceful restart keeps routes)', (state) => {
    const fsm = fsmIn(state);
    const actions = fsm.handle(ev.tcpFailed);
    expect(notifications(actions)).toEqual([]);
    expect(downs(actions)).toEqual([{ type: 'down', reason: 'connection lost', silent: true }]);
    expect(fsm.state).toBe('Idle');
  });
});

describe('Stop (administrative shutdown)', () => {
  it('in Established sends Cease/administrative shutdown (6/2) and goes Idle without a back-off timer', () => {
    const fsm = fsmIn('Established');
    expect(fsm.handle(ev.stop)).toEqual([
      { type: 'sendNotification', code: ErrorCode.CEASE, subcode: CeaseSubcode.ADMIN_SHUTDOWN },
      ...TO_IDLE_CLEANUP,
      { type: 'down', reason: 'administratively stopped', silent: false },
    ]);
    expect(fsm.state).toBe('Idle');
  });

  it.each(['OpenSent', 'OpenConfirm'] as const)('in %s also sends Cease 6/2', (state) => {
    expect(notifications(fsmIn(state).handle(ev.stop))).toEqual([[6, 2]]);
  });

  it.each(['Connect', 'Active'] as const)('in %s (no BGP conversation yet) sends no NOTIFICATION', (state) => {
    const fsm = fsmIn(state);
    const actions = fsm.handle(ev.stop);
    expect(notifications(actions)).toEqual([]);
    expect(actions.map((a) => a.type)).toContain('disconnect');
    expect(fsm.state).toBe('Idle');
  });

  it('once stopped, an idle hold expiry does not restart; a new Start does', () => {
    const fsm = fsmIn('Established');
    fsm.handle(ev.stop);
    expect(fsm.handle(ev.timer('idleHold'))).toEqual([]);
    expect(fsm.state).toBe('Idle');
    expect(fsm.handle(ev.start).map((a) => a.type)).toEqual(['connect', 'setTimer']);
    expect(fsm.state).toBe('Connect');
  });

  it('errors after Stop do not arm the idle hold timer', () => {
    const fsm = fsmIn('Established');
    fsm.handle(ev.stop);
    expect(timersSet(fsm.handle(ev.notification(6, 2)))).toEqual({});
  });
});

describe('idle hold back-off', () => {
  /** From Idle (not stopped): wait out idle hold, connect, then fail with a NOTIFICATION; returns the next idle hold. */
  function failOnce(fsm: Fsm): number | undefined {
    fsm.handle(ev.timer('idleHold'));
    fsm.handle(ev.tcpConnected);
    return timersSet(fsm.handle(ev.notification(2, 0))).idleHold;
  }

  it('doubles from ConnectRetry with each consecutive failure, capped at 60 s', () => {
    const fsm = fsmIn('OpenSent');
    const holds: (number | undefined)[] = [timersSet(fsm.handle(ev.notification(2, 0))).idleHold];
    for (let i = 0; i < 5; i++) holds.push(failOnce(fsm));
    expect(holds).toEqual([5, 10, 20, 40, 60, 60]);
  });

  it('idle hold expiry restarts the connection (Idle → Connect)', () => {
    const fsm = fsmIn('Established');
    fsm.handle(ev.timer('hold'));
    expect(fsm.handle(ev.timer('idleHold'))).toEqual([{ type: 'connect' }, { type: 'setTimer', timer: 'connectRetry', seconds: 5 }]);
    expect(fsm.state).toBe('Connect');
  });

  it('restarts from ConnectRetry after the session reaches Established', () => {
    const fsm = fsmIn('OpenSent', { connectRetrySeconds: 3 });
    fsm.handle(ev.notification(2, 0));
    expect(failOnce(fsm)).toBe(6);
    fsm.handle(ev.timer('idleHold'));
    for (const e of PATH_TO.Established.slice(1)) fsm.handle(e);
    expect(fsm.state).toBe('Established');
    expect(timersSet(fsm.handle(ev.timer('hold'))).idleHold).toBe(3);
  });

  it('decode errors count as failures and send their own NOTIFICATION with data', () => {
    const fsm = fsmIn('Established');
    const data = Uint8Array.of(1, 2, 3);
    const actions = fsm.handle({ type: 'DecodeError', error: new BgpError(3, 11, 'malformed AS_PATH', data) });
    expect(actions[0]).toEqual({ type: 'sendNotification', code: 3, subcode: 11, data });
    expect(timersSet(actions)).toEqual({ idleHold: 5 });
  });
});

describe('keepOurConnection (collision resolution, RFC 4271 §6.8)', () => {
  it.each([
    ['10.0.0.2', '10.0.0.1', true],
    ['10.0.0.1', '10.0.0.2', false],
    ['10.0.0.10', '10.0.0.9', true], // numeric, not string, comparison
    ['9.255.255.255', '10.0.0.0', false],
    ['255.255.255.255', '255.255.255.254', true],
    ['192.0.2.1', '192.0.2.1', false],
  ])('local %s vs remote %s → keep ours: %s', (local, remote, keep) => {
    expect(keepOurConnection(local, remote)).toBe(keep);
  });
});

describe('ConnectionReplaced (the peer won a collision)', () => {
  it.each(['OpenSent', 'OpenConfirm'] as const)('from %s: back to OpenSent, our OPEN on the new connection, the OPEN hold timer', (state) => {
    const fsm = fsmIn(state);
    const actions = fsm.handle({ type: 'ConnectionReplaced' });
    expect(fsm.state).toBe('OpenSent');
    expect(fsm.negotiated).toBeUndefined();
    expect(actions).toContainEqual({ type: 'sendOpen' });
    expect(timersSet(actions)).toEqual({ hold: OPEN_HOLD_SECONDS });
    expect(notifications(actions)).toEqual([]);
  });

  it.each(['Idle', 'Connect', 'Active', 'Established'] as const)('ignored in %s', (state) => {
    const fsm = fsmIn(state);
    expect(fsm.handle({ type: 'ConnectionReplaced' })).toEqual([]);
    expect(fsm.state).toBe(state);
  });
});
