// Raw BGP peers in a child process (run inside a namespace): newline JSON commands on stdin, replies on stdout.
import { createInterface } from 'node:readline';
import { RawPeer, type RawPeerOptions } from '../../bgp/speaker/raw-peer.js';
import { type StreamShape, nextItem, random } from './update-stream.js';

export type DriverCommand =
  | { id: number; op: 'connect'; name: string; options: RawPeerOptions; timeoutMs: number }
  | { id: number; op: 'announce'; name: string; prefixes: string[]; nextHop: string; localPref?: number }
  /** Sends `count` stream items, connecting again (with `options`) whenever the agent closes the session. */
  | { id: number; op: 'fuzz'; name: string; seed: number; count: number; shape: StreamShape; options: RawPeerOptions; timeoutMs: number }
  | { id: number; op: 'close'; name: string; how: 'notify' | 'drop' };

export interface DriverReply {
  id: number;
  error?: string;
  sent?: number;
  /** Sessions the agent ended during a fuzz run. */
  resets?: number;
  closed?: boolean;
  kinds?: Record<string, number>;
}

const peers = new Map<string, RawPeer>();
const BAD_PAUSE_MS = 40;
const yieldTurn = () => new Promise<void>((r) => setImmediate(r));

/** Connects `name`, retrying while the agent refuses (it sits Idle for its idle hold after a failure); bounded by timeoutMs. */
async function open(name: string, options: RawPeerOptions, timeoutMs: number): Promise<RawPeer> {
  peers.get(name)?.drop();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const peer = await RawPeer.establish(options, 3_000);
      peer.keep = false;
      peers.set(name, peer);
      return peer;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 150));
    }
  }
}

async function fuzz(c: Extract<DriverCommand, { op: 'fuzz' }>): Promise<DriverReply> {
  const rnd = random(c.seed);
  const kinds: Record<string, number> = {};
  let sent = 0;
  let resets = 0;
  let peer = peers.get(c.name) ?? (await open(c.name, c.options, c.timeoutMs));
  while (sent < c.count) {
    if (peer.closed) {
      resets++;
      peer = await open(c.name, c.options, c.timeoutMs);
    }
    const item = nextItem(rnd, c.shape, peer.ctx);
    if (!(await peer.write(item.bytes))) continue;
    kinds[item.kind] = (kinds[item.kind] ?? 0) + 1;
    sent++;
    if (item.kind === 'mutated' || item.kind === 'garbage') {
      // Most of these end the session: give the agent time to say so before writing more, so
      // the count is of messages it read, not of ones it threw away with the connection.
      await peer.waitFor('a close', () => peer.closed, BAD_PAUSE_MS).catch(() => undefined);
    } else if (sent % 64 === 0) await yieldTurn();
  }
  return { id: c.id, sent, resets, closed: peer.closed, kinds };
}

async function handle(c: DriverCommand): Promise<DriverReply> {
  switch (c.op) {
    case 'connect':
      await open(c.name, c.options, c.timeoutMs);
      return { id: c.id };
    case 'announce': {
      const peer = peers.get(c.name);
      if (!peer) return { id: c.id, error: `no peer ${c.name}` };
      peer.announce(c.prefixes, c.nextHop, c.localPref !== undefined ? { localPref: c.localPref } : {});
      return { id: c.id };
    }
    case 'fuzz':
      return fuzz(c);
    case 'close': {
      const peer = peers.get(c.name);
      peers.delete(c.name);
      if (peer && !peer.closed) {
        if (c.how === 'notify') peer.notify(6, 4);
        else peer.drop();
        await peer.waitFor('the close', () => peer.closed, 5_000).catch(() => peer.drop());
      }
      return { id: c.id };
    }
  }
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const c = JSON.parse(line) as DriverCommand;
  void handle(c)
    .catch((err: Error) => ({ id: c.id, error: err.message }))
    .then((reply) => process.stdout.write(JSON.stringify(reply) + '\n'));
});
lines.on('close', () => process.exit(0));
