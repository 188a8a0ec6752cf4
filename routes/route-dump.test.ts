// The addon's route records (native/route_dump.c) as `ip -json` rows, and what reachability makes of them.
import { describe, expect, it } from 'vitest';
import { ROUTE_RECORD, decodeOwnRoutes, decodeRouteRecords, ownRouteSlices } from './route-dump.js';
import { ReachabilityTable } from './reachability.js';

function record(family: 4 | 6, length: number, type: number, protocol: number, flags: number, dev: string, dst: number[]): Buffer {
  const b = Buffer.alloc(ROUTE_RECORD);
  b[0] = family;
  b[1] = length;
  b[2] = type;
  b[3] = protocol;
  b.writeUInt32LE(flags, 4);
  b.write(dev, 8, 16, 'latin1');
  Buffer.from(dst).copy(b, 24);
  return b;
}

const fe80 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const fd00_9 = [0xfd, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

describe('decodeRouteRecords', () => {
  it('gives each route its prefix, type, protocol, link and linkdown as ip -json names them', () => {
    const bytes = Buffer.concat([
      record(4, 24, 1, 2, 0, 'eth0', [192, 0, 2, 0]),
      record(4, 0, 1, 4, 0, 'eth0', [0, 0, 0, 0]),
      record(4, 16, 6, 4, 0, '', [10, 9, 0, 0]),
      record(4, 24, 1, 4, 16, 'eth1', [198, 51, 100, 0]),
      record(6, 64, 1, 2, 0, 'a-fifteen-chars', fe80),
      record(6, 64, 1, 4, 0, '', fd00_9),
    ]);
    expect(decodeRouteRecords(bytes)).toEqual([
      { dst: '192.0.2.0/24', protocol: '2', dev: 'eth0' },
      { dst: 'default', protocol: '4', dev: 'eth0' },
      { dst: '10.9.0.0/16', protocol: '4', type: 'blackhole' },
      { dst: '198.51.100.0/24', protocol: '4', dev: 'eth1', flags: ['linkdown'] },
      { dst: 'fe80::/64', protocol: '2', dev: 'a-fifteen-chars' },
      { dst: 'fd00:9::/64', protocol: '4' },
    ]);
  });

  it('resolves next hops from the records as from ip: connected and static, not default, blackhole or linkdown', () => {
    const table = ReachabilityTable.fromRows(decodeRouteRecords(Buffer.concat([
      record(4, 24, 1, 2, 0, 'eth0', [192, 0, 2, 0]),
      record(4, 0, 1, 4, 0, 'eth0', [0, 0, 0, 0]),
      record(4, 16, 6, 4, 0, '', [10, 9, 0, 0]),
      record(4, 24, 1, 4, 16, 'eth1', [198, 51, 100, 0]),
      record(6, 64, 1, 2, 0, 'eth0', fe80),
    ])), '[]');
    expect(['192.0.2.7', '203.0.113.1', '10.9.1.1', '198.51.100.1', 'fe80::2%eth0', 'fe80::2%eth1'].map((a) => table.resolve(a))).toEqual([
      'reachable', 'unreachable', 'unreachable', 'unreachable', 'reachable', 'unreachable',
    ]);
  });

  it('spells a host route as ip does, without its length (else a read through ip would look like a change)', () => {
    const bytes = Buffer.concat([record(4, 32, 1, 4, 0, 'va', [10, 13, 0, 7]), record(6, 128, 1, 4, 0, 'va', [...fd00_9.slice(0, 15), 5]), record(4, 31, 1, 4, 0, 'va', [10, 13, 0, 6])]);
    expect(decodeRouteRecords(bytes).map((r) => r.dst)).toEqual(['10.13.0.7', 'fd00:9::5', '10.13.0.6/31']);
    const fromIp = ReachabilityTable.fromRows([{ dst: '10.13.0.7' }, { dst: 'fd00:9::5' }, { dst: '10.13.0.6/31' }], '[]');
    expect(ReachabilityTable.fromRows(decodeRouteRecords(bytes), '[]').key).toBe(fromIp.key);
  });

  it('spells IPv4-mapped and -compatible IPv6 prefixes as ip does (inet_ntop: the last 32 bits dotted)', () => {
    const v6 = (head: number[], tail: number[]) => [...head, ...Array<number>(16 - head.length - tail.length).fill(0), ...tail];
    const bytes = Buffer.concat([
      record(6, 128, 1, 4, 0, 'va', v6([], [0xff, 0xff, 192, 0, 2, 1])),
      record(6, 96, 1, 4, 0, 'va', v6([], [0xff, 0xff, 0, 0, 0, 0])),
      record(6, 104, 1, 4, 0, 'va', v6([], [10, 0, 0, 0])),
      record(6, 96, 1, 4, 0, 'va', v6([0, 0x64, 0xff, 0x9b], [])),
      record(6, 64, 1, 4, 0, 'va', v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1], [])),
    ]);
    expect(decodeRouteRecords(bytes).map((r) => r.dst)).toEqual(['::ffff:192.0.2.1', '::ffff:0.0.0.0/96', '::10.0.0.0/104', '64:ff9b::/96', '2001:db8:0:0:1::/64']);
  });

  it('reads a link name as UTF-8, as ip\'s JSON has it (a zoned next hop on that link resolves)', () => {
    const bytes = record(6, 64, 1, 2, 0, '', fe80);
    Buffer.from('vé0', 'utf8').copy(bytes, 8);
    expect(decodeRouteRecords(bytes)[0]?.dev).toBe('vé0');
    expect(ReachabilityTable.fromRows(decodeRouteRecords(bytes), '[]').resolve('fe80::2%vé0')).toBe('reachable');
  });

  it('reads nothing from an empty dump or a partial record', () => {
    expect(decodeRouteRecords(Buffer.alloc(0))).toEqual([]);
    expect(decodeRouteRecords(Buffer.alloc(ROUTE_RECORD - 1))).toEqual([]);
  });
});

/** An only-mode record (native/route_dump.c take_own_route): hops as [link index, gateway bytes or none]. */
function own(family: 4 | 6, length: number, type: number, dst: number[], hops: [number, number[] | undefined][]): Buffer {
  const size = family === 4 ? 4 : 16;
  const b = Buffer.alloc(6 + size + hops.length * (8 + size));
  b[0] = family;
  b[1] = length;
  b[2] = type;
  b.writeUInt16LE(hops.length, 4);
  Buffer.from(dst).copy(b, 6);
  hops.forEach(([index, gateway], i) => {
    const at = 6 + size + i * (8 + size);
    b.writeUInt32LE(index, at);
    b[at + 4] = gateway ? 1 : 0;
    if (gateway) Buffer.from(gateway).copy(b, at + 8);
  });
  return b;
}

function links(names: [number, string][]): Buffer {
  const b = Buffer.alloc(names.length * 20 + 4);
  names.forEach(([index, name], i) => {
    b.writeUInt32LE(index, i * 20);
    b.write(name, i * 20 + 4, 16, 'latin1');
  });
  b.writeUInt32LE(names.length, names.length * 20);
  return b;
}

describe('decodeOwnRoutes', () => {
  const fe80_1 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const dump = Buffer.concat([
    own(4, 24, 1, [10, 0, 0, 0], [[2, [192, 0, 2, 2]]]),
    own(4, 24, 1, [10, 0, 1, 0], [[2, [192, 0, 2, 3]], [3, [192, 0, 2, 2]]]),
    own(4, 24, 6, [10, 0, 2, 0], []),
    own(4, 24, 7, [10, 0, 3, 0], []), // unreachable: not a route we write, read as 'other'
    own(4, 32, 1, [10, 0, 4, 5], [[4, undefined]]),
    own(6, 64, 1, fd00_9, [[2, fe80_1]]),
    own(4, 24, 1, [10, 0, 5, 0], [[2, [192, 0, 2, 2]], [4, undefined]]), // ECMP with a hop without gateway: not ours either
    own(4, 0, 1, [0, 0, 0, 0], [[2, [192, 0, 2, 2]]]),
    links([[2, 'eth0'], [3, 'eth1'], [4, 'lxc1']]),
  ]);

  it('reads our routes as routesFromRows reads ip -json: gateways sorted, link-local ones zoned, a device route its link', () => {
    const routes = decodeOwnRoutes(dump);
    expect(routes).toEqual([
      { prefix: '10.0.0.0/24', type: 'unicast', nextHops: ['192.0.2.2'], dev: 'eth0' },
      { prefix: '10.0.1.0/24', type: 'unicast', nextHops: ['192.0.2.2', '192.0.2.3'] },
      { prefix: '10.0.2.0/24', type: 'blackhole', nextHops: [] },
      { prefix: '10.0.3.0/24', type: 'other', nextHops: [] },
      { prefix: '10.0.4.5/32', type: 'unicast', nextHops: [], dev: 'lxc1' },
      { prefix: 'fd00:9::/64', type: 'unicast', nextHops: ['fe80::1%eth0'], dev: 'eth0' },
      { prefix: '0.0.0.0/0', type: 'unicast', nextHops: ['192.0.2.2'], dev: 'eth0' },
    ]);
    // One list per gateway for the routes through it alone (a full table through one peer).
    expect(routes[6]!.nextHops).toBe(routes[0]!.nextHops);
  });

  it('reads a route past 255 next hops whole (the netlink writer writes them)', () => {
    const gateways = Array.from({ length: 300 }, (_, i): [number, number[]] => [2, [10, 50, 1 + (i >> 8), i & 255]]);
    const [route] = decodeOwnRoutes(Buffer.concat([own(4, 16, 1, [10, 1, 0, 0], gateways), links([[2, 'eth0']])]));
    expect(route?.nextHops).toHaveLength(300);
    expect(route?.dev).toBe('eth0');
  });

  it('gives the same routes a slice at a time, none lost at the slices\' edges', () => {
    const slices = [...ownRouteSlices(dump, 3)];
    expect(slices.map((s) => s.length)).toEqual([3, 3, 1]); // 3 records a slice, one of them left out
    expect(slices.flat()).toEqual(decodeOwnRoutes(dump));
    expect(decodeOwnRoutes(links([]))).toEqual([]);
    expect(decodeOwnRoutes(Buffer.alloc(0))).toEqual([]);
  });
});
