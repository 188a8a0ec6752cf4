// RFC 4760 MP_REACH_NLRI / MP_UNREACH_NLRI and RFC 2545 IPv6 next hops: encode then decode gives back the same, for any IPv6 unicast content.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from './messages.js';
import { formatAddress, formatPrefix } from './prefix.js';
import { AFI, type UpdateMessage } from './types.js';

const ctx = { fourOctetAs: true };
const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const v6prefix = fc.tuple(bytes16, fc.integer({ min: 0, max: 128 })).map(([b, l]) => formatPrefix(AFI.IPv6, b, l));
/** A global unicast address (2000::/3 .. fd00::/8): never unspecified, multicast or link-local. */
const global = fc.tuple(fc.integer({ min: 0x20, max: 0xfd }), bytes16).map(([first, b]) => formatAddress(AFI.IPv6, Uint8Array.from([first, ...b.subarray(1)])));
const linkLocal = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => formatAddress(AFI.IPv6, Uint8Array.from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, ...b])));
/** RFC 2545 §3: 16 bytes (global) or 32 (global, then link-local). */
const nextHops = fc.oneof(global.map((g) => [g]), fc.tuple(global, linkLocal).map(([g, l]) => [g, l]));

const update = fc.record({
  reach: fc.uniqueArray(v6prefix, { maxLength: 40 }),
  unreach: fc.uniqueArray(v6prefix, { maxLength: 40 }),
  nextHops,
  path: fc.array(fc.integer({ min: 1, max: 4_294_967_294 }), { minLength: 1, maxLength: 5 }),
}).map((u): UpdateMessage => ({
  type: 2, withdrawn: [], nlri: [], attributes: { origin: 0, asPath: [{ type: 2, asns: u.path }] },
  ...(u.reach.length ? { mpReach: { family: { afi: AFI.IPv6, safi: 1 }, nextHops: u.nextHops, nlri: u.reach } } : {}),
  ...(u.unreach.length || !u.reach.length ? { mpUnreach: { family: { afi: AFI.IPv6, safi: 1 }, withdrawn: u.unreach } } : {}),
}));

describe('MP_REACH_NLRI and MP_UNREACH_NLRI round-trip (RFC 4760 §3–4, RFC 2545 §3)', () => {
  it('any IPv6 unicast NLRI, withdrawals and next hop pair come back as sent', () => {
    fc.assert(fc.property(update, (m) => {
      expect(decodeMessage(encodeMessage(m, ctx), ctx)).toEqual(m);
    }), { numRuns: 2000 });
  });

  it('the next hop length octet is 16 for a global address alone and 32 with a link-local one', () => {
    const m = (hops: string[]): Buffer => encodeMessage({ type: 2, withdrawn: [], nlri: [], attributes: { origin: 0, asPath: [] }, mpReach: { family: { afi: AFI.IPv6, safi: 1 }, nextHops: hops, nlri: ['fd00:1::/64'] } }, ctx);
    const nhLength = (frame: Buffer): number => frame[frame.indexOf(Buffer.from([0, 2, 1])) + 3]!; // AFI 2, SAFI 1, then the length
    expect(nhLength(m(['fd00::1']))).toBe(16);
    expect(nhLength(m(['fd00::1', 'fe80::1']))).toBe(32);
  });
});
