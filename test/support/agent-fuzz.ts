// Fuzzing a whole agent: two raw peers send random and mutated UPDATE streams at once; invariants on the
// process, its kernel routes (protocol 201) and its status socket.
import { Address4, Address6 } from 'ip-address';
import type { NetnsPool } from './netns.js';
import { ipIn } from './netns.js';
import { AGENT, AGENT6, type AgentUnderTest, startAgent } from './agent-harness.js';
import { MAX_IDLE_HOLD_SECONDS } from '../../bgp/fsm/fsm.js';
import { grCapability, unicast } from '../../bgp/speaker/raw-peer.js';
import type { StreamShape } from './update-stream.js';

const OWN_CIDR = '10.244.1.0/24';
const RESTART_TIME = 2;
/** How long the agent may take to carry a change into the kernel on a loaded 2-core machine. */
const SETTLE_MS = 8_000;
/**
 * How long a peer may be refused (6/5) before the agent takes it back: up to its longest idle hold,
 * by design (RFC 4271 §8.1.1: a peer that keeps failing, or keeps ending sessions with a Cease, is
 * damped, its idle hold doubling up to the cap), and a margin for a loaded machine.
 */
const REOPEN_MS = (MAX_IDLE_HOLD_SECONDS + 10) * 1000;

interface KernelRoute {
  dst: string;
  type?: string;
  gateway?: string;
  nexthops?: { gateway?: string }[];
}

const peers = [
  { name: 'ibgp', address: '10.0.1.2', asn: 64512 },
  { name: 'ebgp', address: '10.0.1.3', asn: 65003 },
];

function shapeFor(address: string, asn: number, badRate: number): StreamShape {
  const last = address.split('.')[3];
  return {
    asn, badRate,
    // Its own address and another on the shared subnet (valid), ours (ignored, RFC 4271 §6.3), one on no subnet (not eligible).
    nextHops: [address, address, '10.0.1.5', AGENT, '10.200.0.1'],
    nextHops6: [`fd00:1::${last}`, AGENT6, 'fd00:99::1'],
    // Shared by both peers, so their paths compete; some outside the import CIDRs, and a default route.
    prefixes: [...Array.from({ length: 48 }, (_, i) => `10.100.${i}.0/24`), '192.168.1.0/24', '172.16.0.0/12', '0.0.0.0/0', OWN_CIDR],
    prefixes6: Array.from({ length: 12 }, (_, i) => `fd00:100:${i.toString(16)}::/48`),
  };
}

const inSubnet = (address: string, subnet: string): boolean =>
  address.includes(':') ? Address6.isValid(address) && new Address6(address).isInSubnet(new Address6(subnet)) : Address4.isValid(address) && new Address4(address).isInSubnet(new Address4(subnet));

/** Why a kernel route of ours cannot be supported by any path a peer may have sent, or undefined. */
export function unsupported(r: KernelRoute): string | undefined {
  if (r.type === 'blackhole') return r.dst === OWN_CIDR ? undefined : 'a blackhole that is not our CIDR';
  if (r.dst === 'default' || r.dst.endsWith('/0')) return 'a default route (not allowed by the import policy)';
  if (r.dst === OWN_CIDR) return 'a learned route for our own CIDR';
  const v6 = r.dst.includes(':');
  const dst = r.dst.includes('/') ? r.dst : `${r.dst}/${v6 ? 128 : 32}`;
  if (!inSubnet(dst.split('/')[0]!, v6 ? 'fd00::/8' : '10.0.0.0/8')) return 'outside the import CIDRs';
  const gateways = r.nexthops ? r.nexthops.map((h) => h.gateway ?? '') : [r.gateway ?? ''];
  for (const g of gateways) {
    if (g === AGENT || g === AGENT6) return `next hop ${g} is our own address`;
    if (!inSubnet(g, v6 ? 'fd00:1::/64' : '10.0.1.0/24')) return `next hop ${g || '(none)'} is not on a connected subnet`;
  }
  return undefined;
}

async function kernelRoutes(t: AgentUnderTest): Promise<KernelRoute[]> {
  const read = async (family: string) => JSON.parse((await ipIn(t.ns, ['-j', family, 'route', 'show', 'proto', '201'])) || '[]') as KernelRoute[];
  return [...(await read('-4')), ...(await read('-6'))];
}

async function checkAlive(t: AgentUnderTest, when: string): Promise<void> {
  if (!t.alive()) throw new Error(`the agent died ${when}:\n${t.log().slice(-4000)}`);
  await t.status(5_000).catch((err: Error) => {
    throw new Error(`the status socket did not answer ${when}: ${err.message}`);
  });
}

async function checkSupported(t: AgentUnderTest, when: string): Promise<void> {
  for (const r of await kernelRoutes(t)) {
    const why = unsupported(r);
    if (why) throw new Error(`${when}: the kernel has ${JSON.stringify(r)}: ${why}`);
  }
}

export interface FuzzResult {
  messages: number;
  resets: number;
  rounds: number;
  kinds: Record<string, number>;
}

/**
 * Rounds of `perRound` messages from each peer at once (sessions the agent ends are opened again),
 * each followed by the safety checks; every `closeEvery` rounds both peers leave (NOTIFICATION, or
 * a silent drop under graceful restart) and every learned route must then leave the kernel too,
 * after the restart time when it was retained.
 */
export async function fuzzAgent(pool: NetnsPool, options: { messages: number; perRound: number; closeEvery: number; seed: number; badRate: number }): Promise<FuzzResult> {
  const t = await startAgent(pool, peers, { maxPrefixes: 100_000 });
  const result: FuzzResult = { messages: 0, resets: 0, rounds: 0, kinds: {} };
  try {
    let seed = options.seed;
    let closes = 0;
    while (result.messages < options.messages) {
      result.rounds++;
      // Graceful restart on or off for this round, per peer.
      const gr = peers.map(() => (seed++ % 3) !== 0);
      const runs = peers.map((p, i) => t.driver.run({
        op: 'fuzz', name: p.name, seed: seed++, count: options.perRound, shape: shapeFor(p.address, p.asn, options.badRate), timeoutMs: REOPEN_MS,
        options: {
          host: AGENT, port: 179, localAddress: p.address, asn: p.asn, holdTime: 30,
          capabilities: [{ code: 1, family: unicast(1) }, { code: 1, family: unicast(2) }, { code: 65, asn: p.asn }, ...(gr[i] ? [grCapability(RESTART_TIME, [{ afi: 1 }, { afi: 2 }])] : [])],
        },
      }, 300_000));
      for (const reply of await Promise.all(runs)) {
        result.messages += reply.sent ?? 0;
        result.resets += reply.resets ?? 0;
        for (const [k, n] of Object.entries(reply.kinds ?? {})) result.kinds[k] = (result.kinds[k] ?? 0) + n;
      }
      const when = `after round ${result.rounds} (${result.messages} messages)`;
      await checkAlive(t, when);
      await checkSupported(t, when);
      if (result.rounds % options.closeEvery === 0 || result.messages >= options.messages) {
        // Each peer leaves by NOTIFICATION and by silent drop in turn, the two peers differently. (A draw
        // of seed++ % 2 per peer kept its parity from close to close, as seed grows by an even number
        // between closes: one peer only ever sent Ceases, was damped ever longer, and the other only
        // ever dropped.)
        const silent = peers.map((_, i) => (seed + closes + i) % 2 === 0);
        closes++;
        await Promise.all(peers.map((p, i) => t.driver.run({ op: 'close', name: p.name, how: silent[i] ? 'drop' : 'notify' })));
        // Nothing supports a learned route any more, once retained ones have had their restart time.
        const deadline = Date.now() + SETTLE_MS + (silent.some(Boolean) ? RESTART_TIME * 1000 : 0);
        for (;;) {
          const learned = (await kernelRoutes(t)).filter((r) => r.type !== 'blackhole');
          if (learned.length === 0) break;
          if (Date.now() > deadline) throw new Error(`${when}: both peers gone, yet the kernel keeps ${learned.length} learned routes, e.g. ${JSON.stringify(learned[0])}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        await checkAlive(t, `${when}, peers gone`);
      }
    }
    return result;
  } finally {
    await t.close();
  }
}
