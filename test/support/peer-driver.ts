// Raw BGP peers in a child process (run inside a namespace): newline JSON commands on stdin, replies on stdout.
import { createInterface } from 'node:readline';
import { RawPeer, type RawPeerOptions } from './raw-peer.js';
import { type StreamShape, nextItem, random } from './update-stream.js';

export type DriverCommand =
  | { id: number; op: 'connect'; name: string; options: RawPeerOptions; timeoutMs: number }
  | { id: number; op: 'announce'; name: string; prefixes: string[]; nextHop: string; localPref?: number }
  | { id: number; op: 'fuzz'; name: string; seed: number; count: number; shape: StreamShape }
  | { id: number; op: 'close'; name: string; how: 'notify' | 'drop' };

export interface DriverReply {
  id: number;
  error?: string;
  sent?: number;
  closed?: boolean;
  kinds?: Record<string, number>;
}

const peers = new Map<string, RawPeer>();
const yieldTurn = () => new Promise<void>((r) => setImmediate(r));

async function connect(c: Extract<DriverCommand, { op: 'connect' }>): Promise<DriverReply> {
  peers.get(c.name)?.drop();
  const deadline = Date.now() + c.timeoutMs;
  for (;;) {
    try {
      const peer = await RawPeer.connect(c.options, 3_000);
      peer.keep = false;
      peers.set(c.name, peer);
      return { id: c.id };
    } catch (err) {
      // Refused while the agent sits Idle after the last failure: bounded retries.
      if (Date.now() > deadline) return { id: c.id, error: (err as Error).message };
      await new Promise((r) => setTimeout(r, 150));
    }
  }
}

/** Sends `count` stream items; stops early when the agent closes the session. */
async function fuzz(c: Extract<DriverCommand, { op: 'fuzz' }>): Promise<DriverReply> {
  const peer = peers.get(c.name);
  if (!peer) return { id: c.id, error: `no peer ${c.name}` };
  const rnd = random(c.seed);
  const kinds: Record<string, number> = {};
  let sent = 0;
  while (sent < c.count) {
    const item = nextItem(rnd, c.shape, peer.ctx);
    if (!(await peer.write(item.bytes))) break;
    kinds[item.kind] = (kinds[item.kind] ?? 0) + 1;
    sent++;
    if (sent % 64 === 0) await yieldTurn();
  }
  return { id: c.id, sent, closed: peer.closed, kinds };
}

async function handle(c: DriverCommand): Promise<DriverReply> {
  switch (c.op) {
    case 'connect':
      return connect(c);
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
