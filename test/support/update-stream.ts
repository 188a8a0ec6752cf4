// Seeded random and mutated UPDATE streams for fuzzing a whole agent: fast (no shrinking), reproducible from a seed.
import { type BgpMessage, type CodecContext, encodeMessage } from '../../bgp/codec/index.js';

/** mulberry32: a small, fast, seeded generator; the same seed gives the same stream. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface StreamShape {
  asn: number;
  /** Next hops to use: valid, unreachable, our own… the agent must sort them out. */
  nextHops: string[];
  /** IPv6 next hops for MP_REACH_NLRI. */
  nextHops6: string[];
  /** Prefixes to announce and withdraw (a small pool, so withdrawals meet announcements). */
  prefixes: string[];
  prefixes6: string[];
  /** The share of mutated and garbage messages (most of them end the session). */
  badRate: number;
}

export type StreamItem = { kind: 'valid' | 'withdraw' | 'mutated' | 'garbage'; bytes: Buffer };

/** One message of the stream: mostly valid UPDATEs and withdrawals, some mutated, some garbage. */
export function nextItem(rnd: () => number, shape: StreamShape, ctx: CodecContext): StreamItem {
  const pick = <T>(list: T[]): T => list[Math.floor(rnd() * list.length)]!;
  const some = (list: string[], max: number): string[] => {
    const n = 1 + Math.floor(rnd() * max);
    return [...new Set(Array.from({ length: n }, () => pick(list)))];
  };
  // Valid announcements and withdrawals share what is left after the bad ones, 3 to 1.
  const bad = rnd() < shape.badRate;
  const roll = bad ? 0.8 + rnd() * 0.2 : rnd() * 0.8;
  const announce = (): BgpMessage => {
    const asPath = [{ type: 2, asns: [shape.asn, ...Array.from({ length: Math.floor(rnd() * 4) }, () => 64600 + Math.floor(rnd() * 50))] }];
    const attributes = {
      origin: pick([0, 1, 2] as const), asPath,
      ...(rnd() < 0.5 ? { localPref: Math.floor(rnd() * 300) } : {}),
      ...(rnd() < 0.3 ? { med: Math.floor(rnd() * 100) } : {}),
      ...(rnd() < 0.2 ? { communities: [Math.floor(rnd() * 2 ** 32)] } : {}),
    };
    const v6 = rnd() < 0.2;
    if (v6) return { type: 2, withdrawn: [], attributes, nlri: [], mpReach: { family: { afi: 2, safi: 1 }, nextHops: [pick(shape.nextHops6)], nlri: some(shape.prefixes6, 4) } };
    return { type: 2, withdrawn: rnd() < 0.2 ? some(shape.prefixes, 3) : [], attributes: { ...attributes, nextHop: pick(shape.nextHops) }, nlri: some(shape.prefixes, 8) };
  };
  if (roll < 0.6) return { kind: 'valid', bytes: encodeMessage(announce(), ctx) };
  if (roll < 0.8) {
    const msg: BgpMessage = rnd() < 0.8
      ? { type: 2, withdrawn: some(shape.prefixes, 10), attributes: {}, nlri: [] }
      : { type: 2, withdrawn: [], attributes: {}, nlri: [], mpUnreach: { family: { afi: 2, safi: 1 }, withdrawn: some(shape.prefixes6, 4) } };
    return { kind: 'withdraw', bytes: encodeMessage(msg, ctx) };
  }
  if (roll < 0.97) {
    // A valid UPDATE with a few bytes after the header changed, the length fixed up or not.
    const bytes = Buffer.from(encodeMessage(announce(), ctx));
    const flips = 1 + Math.floor(rnd() * 3);
    for (let i = 0; i < flips; i++) bytes[19 + Math.floor(rnd() * (bytes.length - 19))] = Math.floor(rnd() * 256);
    const cut = rnd() < 0.2 ? bytes.subarray(0, 19 + Math.floor(rnd() * (bytes.length - 19))) : bytes;
    if (rnd() < 0.8) cut.writeUInt16BE(cut.length, 16);
    return { kind: 'mutated', bytes: cut };
  }
  // Random bytes behind a valid header of a random type.
  const body = Buffer.from(Array.from({ length: Math.floor(rnd() * 60) }, () => Math.floor(rnd() * 256)));
  const head = Buffer.alloc(19, 0xff);
  head.writeUInt16BE(19 + body.length, 16);
  head[18] = rnd() < 0.8 ? 2 : 1 + Math.floor(rnd() * 6);
  return { kind: 'garbage', bytes: Buffer.concat([head, body]) };
}
