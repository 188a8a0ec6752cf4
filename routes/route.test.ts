import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type Route, diffRoutes, parseIpJson, renderBatch, renderReplace, routeKey } from './route.js';

const r = (prefix: string, ...nextHops: string[]): Route => ({ prefix, type: 'unicast', nextHops });
const bh = (prefix: string): Route => ({ prefix, type: 'blackhole', nextHops: [] });

describe('routes, pure', () => {
  it('renders unicast, ECMP (sorted), blackhole and IPv6', () => {
    expect(renderReplace(r('10.244.2.0/24', '192.0.2.2'))).toBe('route replace 10.244.2.0/24 proto 201 via 192.0.2.2');
    expect(renderReplace(r('10.244.2.0/24', '192.0.2.3', '192.0.2.2'))).toBe('route replace 10.244.2.0/24 proto 201 nexthop via 192.0.2.2 nexthop via 192.0.2.3');
    expect(renderReplace(bh('10.244.1.0/24'))).toBe('route replace blackhole 10.244.1.0/24 proto 201');
    expect(renderReplace(r('fd01::/64', 'fd00::2'))).toBe('route replace fd01::/64 proto 201 via fd00::2');
  });

  it('diffs: adds, changes and removes, ignoring next-hop order; type changes delete first', () => {
    const actual = [r('10.1.0.0/24', 'a', 'b'), r('10.2.0.0/24', 'a'), bh('10.3.0.0/24')];
    const desired = [r('10.1.0.0/24', 'b', 'a'), r('10.2.0.0/24', 'c'), r('10.3.0.0/24', 'a'), r('10.4.0.0/24', 'a')];
    const diff = diffRoutes(desired, actual);
    expect(diff.replace.map((x) => x.prefix)).toEqual(['10.2.0.0/24', '10.3.0.0/24', '10.4.0.0/24']);
    expect(diff.remove).toEqual([]);
    const lines = renderBatch(diff, new Map(actual.map((x) => [x.prefix, x])));
    expect(lines).toContain('route del blackhole 10.3.0.0/24 proto 201');
    expect(diffRoutes([], actual).remove).toHaveLength(3);
  });

  it('parses ip -json output as this machine prints it, leaving device routes (pod /32s) alone', () => {
    const v4 = '[{"dst":"10.1.0.0/24","flags":[],"nexthops":[{"gateway":"192.0.2.2","dev":"va","weight":1,"flags":[]},{"gateway":"192.0.2.3","dev":"va","weight":1,"flags":[]}]},{"dst":"10.2.0.0/24","gateway":"192.0.2.2","dev":"va","flags":[]},{"type":"blackhole","dst":"10.244.1.0/24","flags":[]},{"dst":"10.244.1.2","dev":"lxc0123456789a","scope":"link","flags":[]}]';
    const v6 = '[{"dst":"fd02::/64","metric":1024,"flags":[],"pref":"medium","nexthops":[{"gateway":"fd00::2","dev":"va","weight":1,"flags":[]},{"gateway":"fd00::3","dev":"va","weight":1,"flags":[]}]},{"type":"blackhole","dst":"fd03::/64","dev":"lo","metric":1024,"flags":[],"pref":"medium"}]';
    expect(parseIpJson(v4)).toEqual([r('10.1.0.0/24', '192.0.2.2', '192.0.2.3'), r('10.2.0.0/24', '192.0.2.2'), bh('10.244.1.0/24')]);
    expect(parseIpJson(v6)).toEqual([r('fd02::/64', 'fd00::2', 'fd00::3'), bh('fd03::/64')]);
    expect(parseIpJson('')).toEqual([]);
  });

  it('applying the diff to the actual set always yields the desired set', () => {
    const route = fc.record({
      prefix: fc.integer({ min: 0, max: 20 }).map((i) => `10.${i}.0.0/24`),
      type: fc.constantFrom('unicast' as const, 'blackhole' as const),
      nextHops: fc.uniqueArray(fc.constantFrom('192.0.2.2', '192.0.2.3', '192.0.2.4'), { minLength: 1, maxLength: 3 }),
    }).map((x): Route => (x.type === 'blackhole' ? { ...x, nextHops: [] } : x));
    const uniq = (rs: Route[]): Route[] => [...new Map(rs.map((x) => [x.prefix, x])).values()];
    fc.assert(fc.property(fc.array(route), fc.array(route), (d, a) => {
      const desired = uniq(d);
      const actual = new Map(uniq(a).map((x) => [x.prefix, x]));
      const diff = diffRoutes(desired, actual.values());
      for (const x of diff.remove) actual.delete(x.prefix);
      for (const x of diff.replace) actual.set(x.prefix, x);
      expect([...actual.values()].map(routeKey).sort()).toEqual(desired.map(routeKey).sort());
    }));
  });
});
