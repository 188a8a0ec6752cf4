import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { candidates, formatAddress, parseAddress, parseRange, parseRangeSets, rangeSize } from './pool.js';
import { CniError } from '../errors.js';

describe('parseRange', () => {
  it('skips network, gateway (.1) and broadcast of an IPv4 subnet', () => {
    const r = parseRange({ subnet: '10.244.1.0/24' });
    expect(formatAddress(4, r.first)).toBe('10.244.1.1');
    expect(formatAddress(4, r.last)).toBe('10.244.1.254');
    expect(r.gateway).toBe('10.244.1.1');
    expect([...candidates(r, undefined, parseAddress('10.244.1.1').value)].length).toBe(253);
  });
  it('writes the subnet canonically', () => {
    expect(parseRange({ subnet: 'fd00:0:0:0::/64' }).subnet).toBe('fd00::/64');
  });
  it('uses the whole of a /31 and a /32', () => {
    const r31 = parseRange({ subnet: '10.0.0.0/31' });
    expect(rangeSize(r31)).toBe(2n);
    expect(r31.gateway).toBeUndefined();
    expect(rangeSize(parseRange({ subnet: '10.0.0.9/32' }))).toBe(1n);
  });
  it('honours rangeStart, rangeEnd and an explicit gateway', () => {
    const r = parseRange({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.12', gateway: '10.0.0.254' });
    expect([...candidates(r)].map((v) => formatAddress(4, v))).toEqual(['10.0.0.10', '10.0.0.11', '10.0.0.12']);
  });
  it('handles IPv6', () => {
    const r = parseRange({ subnet: 'fd00:10:244:1::/120' });
    expect(r.family).toBe(6);
    expect(formatAddress(6, r.first)).toBe('fd00:10:244:1::1');
    expect(formatAddress(6, r.last)).toBe('fd00:10:244:1::ff');
  });
  it.each([
    [{ subnet: '10.0.0.0' }, /prefix length/],
    [{ subnet: 'banana/24' }, /invalid ipam subnet/],
    [{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.1' }, /not inside/],
    [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.3' }, /empty/],
    [{ subnet: '10.0.0.0/24', gateway: 'fd00::1' }, /not inside/],
    // As host-local: a subnet with host bits set is refused, not silently rounded down.
    [{ subnet: '10.244.1.7/24' }, /host bits set.*10\.244\.1\.0/],
    [{ subnet: 'fd00::1/64' }, /host bits set/],
    [{ subnet: '0.0.0.0/0' }, /every address/],
    [{ subnet: '::/0' }, /every address/],
    [{ subnet: '224.0.0.0/24' }, /multicast/],
    [{ subnet: '192.0.0.0/2' }, /multicast/],
    [{ subnet: 'ff02::/120' }, /multicast/],
    [{ subnet: '169.254.0.0/24' }, /link-local/],
    [{ subnet: 'fe80::/64' }, /link-local/],
    [{ subnet: '::ffff:10.0.0.0/120' }, /IPv4-mapped/],
  ])('rejects %j with code 7', (range, message) => {
    try {
      parseRange(range);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CniError);
      expect((err as CniError).code).toBe(7);
      expect((err as CniError).message).toMatch(message);
    }
  });
  it('rejects a range set that mixes families', () => {
    expect(() => parseRangeSets({ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] })).toThrow(/mixes/);
    expect(() => parseRangeSets({})).toThrow(/needs subnet or ranges/);
  });
});

describe('candidates', () => {
  it('starts after the last allocated address and wraps around, visiting each address once', () => {
    fc.assert(
      fc.property(fc.integer({ min: 24, max: 30 }), fc.nat(), (len, seed) => {
        const r = parseRange({ subnet: `10.1.0.0/${len}` });
        const size = Number(rangeSize(r));
        const last = r.first + BigInt(seed % size);
        const order = [...candidates(r, last)];
        expect(order.length).toBe(size);
        expect(new Set(order).size).toBe(size);
        expect(order[0]).toBe(last === r.last ? r.first : last + 1n);
        for (const v of order) expect(v >= r.first && v <= r.last).toBe(true);
      }),
    );
  });
});
