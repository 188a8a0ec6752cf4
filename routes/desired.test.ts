import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  type Route,
  InvalidRouteError,
  diffRoutes,
  normalisePrefix,
  normaliseRoute,
  parseIpRoutes,
  renderAdd,
  renderChanges,
  renderDelete,
  renderReplace,
  satisfies,
} from './desired.js';

const r = (prefix: string, ...nextHops: string[]): Route => ({ prefix, type: 'unicast', nextHops });
const bh = (prefix: string): Route => ({ prefix, type: 'blackhole', nextHops: [] });

describe('link-local next hops (RFC 2545 §3, RFC 4007 §11 zones)', () => {
  it('a zoned link-local gateway renders as `via fe80::1 dev X`, in ECMP too; the kernel refuses fe80::/10 without a link', () => {
    expect(renderAdd(normaliseRoute(r('fd00:9::/64', 'FE80::0001%eth0')))).toBe('route add fd00:9::/64 proto 201 via fe80::1 dev eth0');
    expect(renderReplace(normaliseRoute(r('fd00:9::/64', 'fe80::1%eth0', 'fd00::2')))).toBe('route replace fd00:9::/64 proto 201 nexthop via fd00::2 nexthop via fe80::1 dev eth0');
  });

  it('a zone is refused on anything but a link-local address, and a bad link name too', () => {
    for (const hop of ['fd00::1%eth0', '192.0.2.1%eth0', 'fe80::1%', 'fe80::1%a b', 'fe80::1%a/b']) expect(() => normaliseRoute(r('fd00:9::/64', hop)), hop).toThrow(InvalidRouteError);
    expect(() => normalisePrefix('fe80::%eth0/64')).toThrow(InvalidRouteError);
  });

  it('reads the kernel\'s link-local gateway back zoned, so the installed route satisfies the desired one', () => {
    const text = JSON.stringify([
      { dst: 'fd00:9::/64', gateway: 'fe80::1', dev: 'eth0', protocol: 'lightly' },
      { dst: 'fd00:a::/64', protocol: 'lightly', nexthops: [{ gateway: 'fe80::1', dev: 'eth0' }, { gateway: 'fd00::2', dev: 'eth1' }] },
    ]);
    const [one, two] = parseIpRoutes(text, 6);
    expect(one).toEqual({ prefix: 'fd00:9::/64', type: 'unicast', nextHops: ['fe80::1%eth0'], dev: 'eth0' });
    expect(satisfies(one!, normaliseRoute(r('fd00:9::/64', 'fe80::1%eth0')))).toBe(true);
    expect(satisfies(one!, normaliseRoute(r('fd00:9::/64', 'fe80::1%eth1')))).toBe(false);
    expect(two?.nextHops).toEqual(['fd00::2', 'fe80::1%eth0']);
  });
});

describe('normalise', () => {
  it('gives one canonical form: bare addresses become host prefixes, IPv6 compressed, hops sorted and unique', () => {
    expect(normalisePrefix('10.244.1.7')).toBe('10.244.1.7/32');
    expect(normalisePrefix('FD00:0244:0002:0000::/64')).toBe('fd00:244:2::/64');
    expect(normaliseRoute(r('10.1.0.0/24', '192.0.2.3', '192.0.2.2', '192.0.2.3'))).toEqual(r('10.1.0.0/24', '192.0.2.2', '192.0.2.3'));
    expect(normaliseRoute({ prefix: '10.1.0.0/24', type: 'blackhole', nextHops: ['192.0.2.2'] })).toEqual(bh('10.1.0.0/24'));
  });

  it('keeps a canonical IPv4 prefix as it is and rewrites or refuses every other form', () => {
    for (const p of ['10.0.0.0/27', '0.0.0.0/0', '255.255.255.255/32', '192.0.2.0/24']) expect(normalisePrefix(p)).toBe(p);
    expect(normalisePrefix('10.1.0.0/016')).toBe('10.1.0.0/16');
    expect(normalisePrefix('10.1.0.7')).toBe('10.1.0.7/32');
    expect(() => normalisePrefix('10.01.0.0/16')).toThrow(InvalidRouteError);
    expect(() => normalisePrefix('10.1.0.1/24')).toThrow(/host bits/);
    expect(() => normalisePrefix('10.1.0.0/')).toThrow(InvalidRouteError);
    expect(() => normalisePrefix('10.1.0/24')).toThrow(InvalidRouteError);
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (address, length) => {
        const value = address.split('.').reduce((a, o) => a * 256 + Number(o), 0);
        const network = length === 0 ? 0 : value - (value % 2 ** (32 - length));
        const text = `${[24, 16, 8, 0].map((s) => Math.floor(network / 2 ** s) % 256).join('.')}/${length}`;
        expect(normalisePrefix(text)).toBe(text);
      }),
    );
  });
  it('refuses what ip would refuse, naming the route', () => {
    expect(() => normalisePrefix('10.1.0.1/24')).toThrow(/host bits/);
    expect(() => normalisePrefix('fd00::1/64')).toThrow(/host bits/);
    expect(() => normalisePrefix('10.1.0.0/33')).toThrow(InvalidRouteError);
    expect(() => normalisePrefix('300.1.0.0/8')).toThrow(/not an IP address/);
    expect(() => normaliseRoute(r('10.1.0.0/24', 'fd00::2'))).toThrow(/other family/);
    expect(() => normaliseRoute(r('10.1.0.0/24'))).toThrow(/needs next hops or a link/);
    expect(() => normaliseRoute({ prefix: '10.1.0.0/24', type: 'unicast', nextHops: [], dev: 'a b' })).toThrow(/bad link name/);
  });
});

describe('render', () => {
  it('renders unicast, ECMP, blackhole, device and IPv6 routes with proto 201', () => {
    expect(renderAdd(r('10.244.2.0/24', '192.0.2.2'))).toBe('route add 10.244.2.0/24 proto 201 via 192.0.2.2');
    expect(renderReplace(normaliseRoute(r('10.244.2.0/24', '192.0.2.3', '192.0.2.2')))).toBe(
      'route replace 10.244.2.0/24 proto 201 nexthop via 192.0.2.2 nexthop via 192.0.2.3',
    );
    expect(renderAdd(bh('10.244.1.0/24'))).toBe('route add blackhole 10.244.1.0/24 proto 201');
    expect(renderDelete(bh('10.244.1.0/24'))).toBe('route del blackhole 10.244.1.0/24 proto 201');
    expect(renderAdd({ prefix: '10.244.1.7/32', type: 'unicast', nextHops: [], dev: 'lxc1' })).toBe('route add 10.244.1.7/32 proto 201 dev lxc1 scope link');
    expect(renderAdd(r('fd01::/64', 'fd00::2'))).toBe('route add fd01::/64 proto 201 via fd00::2');
  });

  it('orders removals before additions before replacements', () => {
    const diff = diffRoutes([r('10.1.0.0/24', '192.0.2.9'), r('10.3.0.0/24', '192.0.2.2')], [r('10.1.0.0/24', '192.0.2.2'), r('10.2.0.0/24', '192.0.2.2')]);
    expect(renderChanges(diff).map((c) => c.op)).toEqual(['remove', 'add', 'replace']);
  });
});

describe('diff', () => {
  it('ignores next-hop order, treats an unset link as any link, and sees type changes', () => {
    expect(satisfies(r('10.1.0.0/24', 'b', 'a'), r('10.1.0.0/24', 'a', 'b'))).toBe(true);
    expect(satisfies({ ...r('10.1.0.0/24', 'a'), dev: 'eth0' }, r('10.1.0.0/24', 'a'))).toBe(true);
    expect(satisfies(r('10.1.0.0/24', 'a'), { ...r('10.1.0.0/24', 'a'), dev: 'eth0' })).toBe(false);
    expect(satisfies(bh('10.1.0.0/24'), r('10.1.0.0/24', 'a'))).toBe(false);
  });

  it('applying the diff to the actual set always yields the desired set', () => {
    const route = fc
      .record({
        prefix: fc.integer({ min: 0, max: 20 }).map((i) => `10.${i}.0.0/24`),
        type: fc.constantFrom('unicast' as const, 'blackhole' as const),
        nextHops: fc.uniqueArray(fc.constantFrom('192.0.2.2', '192.0.2.3', '192.0.2.4'), { minLength: 1, maxLength: 3 }),
      })
      .map((x): Route => normaliseRoute(x));
    const uniq = (rs: Route[]): Route[] => [...new Map(rs.map((x) => [x.prefix, x])).values()];
    const key = (x: Route): string => `${x.type} ${x.prefix} ${x.nextHops.join(',')}`;
    fc.assert(
      fc.property(fc.array(route), fc.array(route), (d, a) => {
        const desired = uniq(d);
        const actual = new Map(uniq(a).map((x) => [x.prefix, x]));
        for (const change of renderChanges(diffRoutes(desired, actual.values()))) {
          if (change.op === 'remove') actual.delete(change.route.prefix);
          else actual.set(change.route.prefix, change.route);
        }
        expect([...actual.values()].map(key).sort()).toEqual(desired.map(key).sort());
        expect(diffRoutes(desired, actual.values())).toEqual({ add: [], replace: [], remove: [] });
      }),
    );
  });
});

describe('parseIpRoutes', () => {
  it('parses ip -json output as this machine prints it', () => {
    const v4 =
      '[{"dst":"10.1.0.0/24","protocol":"lightly","flags":[],"nexthops":[{"gateway":"192.0.2.3","dev":"va","weight":1,"flags":[]},{"gateway":"192.0.2.2","dev":"va","weight":1,"flags":[]}]},' +
      '{"dst":"10.2.0.0/24","gateway":"192.0.2.2","dev":"va","protocol":"201","flags":[]},{"type":"blackhole","dst":"10.244.1.0/24","flags":[]},' +
      '{"dst":"10.244.1.2","dev":"lxc0123456789a","scope":"link","flags":[]},{"dst":"10.5.0.0/24","gateway":"192.0.2.2","dev":"va","protocol":"static","flags":[]},' +
      '{"type":"unreachable","dst":"10.6.0.0/24","flags":[]}]';
    const v6 = '[{"dst":"fd02::/64","metric":1024,"flags":[],"pref":"medium","nexthops":[{"gateway":"fd00::2","dev":"va","weight":1,"flags":[]},{"gateway":"fd00::3","dev":"va","weight":1,"flags":[]}]},{"type":"blackhole","dst":"fd03::/64","dev":"lo","metric":1024,"flags":[],"pref":"medium"},{"dst":"default","gateway":"fd00::9","dev":"va","flags":[]}]';
    expect(parseIpRoutes(v4, 4)).toEqual([
      { ...r('10.1.0.0/24', '192.0.2.2', '192.0.2.3'), dev: 'va' },
      { ...r('10.2.0.0/24', '192.0.2.2'), dev: 'va' },
      bh('10.244.1.0/24'),
      { prefix: '10.244.1.2/32', type: 'unicast', nextHops: [], dev: 'lxc0123456789a' },
      // Of a type we never write: read so a comparison replaces or removes it.
      { prefix: '10.6.0.0/24', type: 'other', nextHops: [] },
    ]);
    expect(parseIpRoutes(v6, 6)).toEqual([{ ...r('fd02::/64', 'fd00::2', 'fd00::3'), dev: 'va' }, bh('fd03::/64'), { ...r('::/0', 'fd00::9'), dev: 'va' }]);
    expect(parseIpRoutes('')).toEqual([]);
  });
});
