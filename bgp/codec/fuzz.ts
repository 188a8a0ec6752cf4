// Arbitraries for the codec's property tests: valid messages, and valid messages mutated.
import fc from 'fast-check';
import type { BgpMessage } from './types.js';
import { formatPrefix, parsePrefix } from './prefix.js';

const ipv4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 254 })).map((o) => o.join('.'));
const v4prefix = fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })).map(([a, l]) => {
  const n = a.split('.').reduce((x, o) => x * 256 + Number(o), 0);
  const masked = l === 0 ? 0 : Math.floor(n / 2 ** (32 - l)) * 2 ** (32 - l);
  return `${[24, 16, 8, 0].map((s) => Math.floor(masked / 2 ** s) % 256).join('.')}/${l}`;
});
const v6prefix = fc.tuple(fc.integer({ min: 0x2000, max: 0xfdff }), fc.nat(0xffff), fc.integer({ min: 16, max: 32 })).map(([a, b, l]) => {
  const masked = l >= 32 ? b : b & ~((1 << (32 - l)) - 1) & 0xffff;
  const { afi, bytes, length } = parsePrefix(`${a.toString(16)}:${masked.toString(16)}::/${l}`);
  return formatPrefix(afi, bytes, length); // canonical text, as the decoder produces
});
const asn = fc.integer({ min: 1, max: 4_294_967_294 });

/** NEXT_HOP only with classic NLRI: without, the decoder ignores it (RFC 4760 §3). */
export const arbitraryMessage: fc.Arbitrary<BgpMessage> = fc.oneof(
  fc.constant<BgpMessage>({ type: 4 }),
  fc.record({ code: fc.integer({ min: 1, max: 7 }), subcode: fc.nat(10), data: fc.uint8Array({ maxLength: 20 }) }).map((n): BgpMessage => ({ type: 3, ...n })),
  fc.record({ asn, holdTime: fc.oneof(fc.constant(0), fc.integer({ min: 3, max: 65535 })), routerId: ipv4 }).map((o): BgpMessage => ({
    type: 1, version: 4, ...o, capabilities: [{ code: 1, family: { afi: 1, safi: 1 } }, { code: 65, asn: o.asn }],
  })),
  fc.record({
    nlri: fc.uniqueArray(v4prefix, { maxLength: 20 }), withdrawn: fc.uniqueArray(v4prefix, { maxLength: 10 }),
    path: fc.array(asn, { minLength: 1, maxLength: 6 }), nextHop: ipv4, med: fc.option(fc.nat(), { nil: undefined }),
    communities: fc.option(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), { nil: undefined }),
    v6: fc.uniqueArray(v6prefix, { maxLength: 5 }),
  }).map((u): BgpMessage => ({
    type: 2, withdrawn: u.withdrawn, nlri: u.nlri,
    attributes: { origin: 0, asPath: [{ type: 2, asns: u.path }], ...(u.nlri.length ? { nextHop: u.nextHop } : {}), ...(u.med !== undefined ? { med: u.med } : {}), ...(u.communities ? { communities: u.communities } : {}) },
    ...(u.v6.length ? { mpReach: { family: { afi: 2 as const, safi: 1 }, nextHops: ['fd00::1'], nlri: u.v6 } } : {}),
  })),
);

export const mutation = fc.record({
  flips: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }),
  truncate: fc.option(fc.nat(), { nil: undefined }),
  fixLength: fc.boolean(),
});
