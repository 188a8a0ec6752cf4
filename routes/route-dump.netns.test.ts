// The addon's route dump (native/route_dump.c) against `ip -json route show table main`, in a
// throwaway namespace holding every kind of route next-hop resolution meets, beside a table of ours.
import { execa, execaSync } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPool, addConnectedLink, createHost, execIn, ipIn, requireNetworkTools } from '../test/support/netns.js';
import { nativeAddon } from '../native/native.js';
import { dumpOwnRoutes, dumpRoutes } from './route-dump.js';
import { Ip } from './ip.js';
import { NetlinkRouteShell } from './netlink.js';
import type { KernelRoute, Route } from './desired.js';
import { type IpRouteRow, ReachabilityTable } from './reachability.js';
import { ROUTE_PROTOCOL, isLightlyProtocol } from './protocol-number.js';

const pool = new NetnsPool();
let ns = '';
const OURS = 20_000;

beforeAll(async () => {
  await requireNetworkTools(['ip']);
  ns = await pool.create('dump');
  await addConnectedLink(ns, 'va', 'vb', ['192.0.2.1/24', 'fd00::1/64']);
  await addConnectedLink(ns, 'wa', 'wb', ['198.51.100.1/24']);
  // A link name beyond ASCII (the kernel refuses only '/', ':' and spaces): its fe80::/64 route.
  await addConnectedLink(ns, 'vé0', 'vf0', []);
  // A link whose peer is down: its routes carry linkdown, and resolve nothing.
  await ipIn(ns, ['link', 'add', 'da', 'type', 'veth', 'peer', 'name', 'db']);
  await ipIn(ns, ['addr', 'add', '203.0.113.1/24', 'dev', 'da']);
  await ipIn(ns, ['link', 'set', 'da', 'up']);
  const lines = [
    'route add default via 192.0.2.254 proto static',
    'route add 10.9.0.0/16 via 192.0.2.2 proto static',
    'route add 10.10.0.0/16 proto static nexthop via 192.0.2.2 nexthop via 198.51.100.2',
    'route add blackhole 10.11.0.0/16 proto static',
    'route add 10.12.0.0/16 via 203.0.113.2 proto static',
    'route add 10.13.0.7 dev va scope link proto static',
    'route add 10.14.0.0/16 via 192.0.2.2 table 100 proto static',
    'route add fd00:9::/64 via fd00::2 proto static',
    'route add fd00:a::/64 via fe80::2 dev vb proto static',
    // A host route of each family (ip spells them without a length), an IPv4 route through an IPv6
    // gateway (RTA_VIA), unreachable and prohibit, ECMP with one hop or every hop on the down link,
    // IPv6 ECMP, and a table past 255 (its number in RTA_TABLE only).
    'route add fd00:5::5 dev va proto static',
    'route add 10.20.0.0/16 via inet6 fd00::2 dev va proto static',
    'route add unreachable 10.21.0.0/16 proto static',
    'route add prohibit 10.22.0.0/16 proto static',
    'route add 10.24.0.0/16 proto static nexthop via 192.0.2.2 nexthop via 203.0.113.2',
    'route add 10.25.0.0/16 proto static nexthop via 203.0.113.2 nexthop via 203.0.113.3',
    'route add fd00:b::/64 proto static nexthop via fd00::2 dev va nexthop via fd00::3 dev va',
    'route add 10.23.0.0/16 via 192.0.2.2 table 1000 proto static',
    // IPv4-mapped and -compatible IPv6 prefixes: ip prints their last 32 bits dotted.
    'route add ::ffff:0:0/96 dev va proto static',
    'route add ::ffff:c000:201 dev va proto static',
    'route add ::a00:0/104 dev va proto static',
    // Ours: a table of them, IPv6 and a pod's device route too; none may come back.
    ...Array.from({ length: OURS }, (_, i) => `route add 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 via 192.0.2.2 proto ${ROUTE_PROTOCOL}`),
    `route add fd00:201::/64 via fd00::2 proto ${ROUTE_PROTOCOL}`,
    `route add 10.244.1.5/32 dev va scope link proto ${ROUTE_PROTOCOL}`,
  ];
  execaSync('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') });
});
afterAll(async () => {
  await pool.cleanup();
});

/** What reachability reads of a row, the prefix spelt as given (ip prints a host route without its /32). */
function shape(row: IpRouteRow): string {
  return [row.dst, row.type ?? 'unicast', row.dev ?? '-', (row.flags ?? []).includes('linkdown') ? 'linkdown' : 'up'].join(' ');
}

async function ipRows(): Promise<IpRouteRow[]> {
  const rows: IpRouteRow[] = [];
  for (const family of ['-4', '-6']) {
    const out = await execa('ip', ['-n', ns, '-json', family, 'route', 'show', 'table', 'main']);
    rows.push(...(JSON.parse(out.stdout) as IpRouteRow[]).filter((r) => !isLightlyProtocol(String(r.protocol ?? ''))));
  }
  return rows;
}

describe('routeDump (addon)', () => {
  it('gives the main table as ip does, but for our routes, and resolves next hops the same', async () => {
    const started = performance.now();
    const dumped = await dumpRoutes(nativeAddon(), ROUTE_PROTOCOL, ns);
    const dumpMs = performance.now() - started;
    const fromIp = await ipRows();
    console.log(JSON.stringify({ routesInTable: OURS + fromIp.length, kept: dumped.length, dumpMs: Math.round(dumpMs) }));
    expect(dumped.map(shape).sort()).toEqual(fromIp.map(shape).sort());
    // The checks mean something: the kinds of route above are all there, and none of ours.
    const shapes = dumped.map(shape);
    for (const expected of ['default unicast va up', '10.10.0.0/16 unicast - up', '10.11.0.0/16 blackhole - up', '10.12.0.0/16 unicast da linkdown', '10.13.0.7 unicast va up', 'fd00:a::/64 unicast vb up']) {
      expect(shapes).toContain(expected);
    }
    expect(shapes.some((s) => s.startsWith('10.14.'))).toBe(false);
    expect(dumped.filter((r) => isLightlyProtocol(r.protocol!) || r.dst.startsWith('10.100.') || r.dst.startsWith('fd00:201:') || r.dst.startsWith('10.244.'))).toEqual([]);
    const addresses = (await execa('ip', ['-n', ns, '-json', 'addr', 'show'])).stdout;
    const native = ReachabilityTable.fromRows(dumped, addresses);
    const ip = ReachabilityTable.fromRows(fromIp, addresses);
    const hops = ['192.0.2.9', '10.9.1.1', '10.10.1.1', '10.11.1.1', '10.12.1.1', '10.13.0.7', '10.14.1.1', '10.100.0.1', 'fd00:9::1', 'fd00:a::1', 'fd00:201::1', 'fe80::2%vb', '8.8.8.8',
      'fd00:5::5', '10.20.1.1', '10.21.1.1', '10.22.1.1', '10.24.1.1', '10.25.1.1', 'fd00:b::1', '10.23.1.1', 'fe80::2%vé0'];
    expect(hops.map((h) => native.resolve(h))).toEqual(hops.map((h) => ip.resolve(h)));
    // Alike to the letter: a read through ip after a failed dump (or the other way) is no change.
    expect(native.key).toBe(ip.key);
    expect(hops.map((h) => native.resolve(h))).toEqual(['reachable', 'reachable', 'reachable', 'unreachable', 'unreachable', 'reachable', 'unreachable', 'unreachable', 'reachable', 'reachable', 'unreachable', 'reachable', 'unreachable',
      'reachable', 'reachable', 'unreachable', 'unreachable', 'reachable', 'unreachable', 'reachable', 'unreachable', 'reachable']);
  });

  it('leaves out the kernel\'s cached exceptions (PMTU, redirects) as ip does: not routes, and one under a default or a route of ours resolves nothing', async () => {
    await requireNetworkTools(['ip', 'ping']);
    // A host whose upstream forwards onto a narrower link: a ping too big for it, DF set, leaves an
    // exception (mtu 1300) for the address in the host's main table, under the route that carried it.
    const { host, upstream } = await createHost(pool, 'pmtu');
    await ipIn(upstream, ['link', 'add', 'rx', 'mtu', '1300', 'type', 'veth', 'peer', 'name', 'ry', 'mtu', '1300']);
    await ipIn(upstream, ['addr', 'add', '198.51.100.1/24', 'dev', 'rx']);
    for (const link of ['rx', 'ry']) await ipIn(upstream, ['link', 'set', link, 'up']);
    await ipIn(upstream, ['route', 'add', '10.200.0.0/16', 'dev', 'rx']);
    await execIn(upstream, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await ipIn(host, ['route', 'add', '10.200.0.0/16', 'via', '192.0.2.254', 'proto', String(ROUTE_PROTOCOL)]);
    // The first answer may come before the host keeps it; a few bounded tries.
    let cache = '';
    for (let i = 0; i < 4 && !(cache.includes('198.51.100.9') && cache.includes('10.200.0.9')); i++) {
      for (const target of ['198.51.100.9', '10.200.0.9']) await execIn(host, 'ping', ['-c', '1', '-W', '1', '-M', 'do', '-s', '1400', target], { timeout: 10_000 });
      cache = await ipIn(host, ['route', 'show', 'cache']);
    }
    expect(cache).toContain('198.51.100.9');
    expect(cache).toContain('10.200.0.9');
    const dumped = await dumpRoutes(nativeAddon(), ROUTE_PROTOCOL, host);
    const fromIp = (JSON.parse(await ipIn(host, ['-json', 'route', 'show', 'table', 'main'])) as IpRouteRow[]).filter((r) => !isLightlyProtocol(String(r.protocol ?? '')));
    expect(dumped.filter((r) => !r.dst.includes(':')).map(shape).sort()).toEqual(fromIp.map(shape).sort());
    const table = ReachabilityTable.fromRows(dumped, '[]');
    expect(['198.51.100.9', '10.200.0.9'].map((a) => table.resolve(a))).toEqual(['unreachable', 'unreachable']);
  });

  it('rejects with the reason when the namespace does not exist', async () => {
    await expect(nativeAddon().routeDump('/var/run/netns/lt-no-such-namespace', ROUTE_PROTOCOL)).rejects.toThrow(/lt-no-such-namespace: No such file or directory/);
  });
});

describe('routeDump of our routes (addon)', () => {
  it('reads our routes as ip -json does, every shape the reconciler writes and the pods\' routes on links of their own', async () => {
    const own = await pool.create('dumpown');
    await addConnectedLink(own, 'va', 'vb', ['192.0.2.1/24', 'fd00::1/64']);
    await addConnectedLink(own, 'wa', 'wb', ['198.51.100.1/24']);
    // More links than the addon's first allocation of names (16): a node with a pod on each.
    const pods = 40;
    for (let i = 0; i < pods; i++) await ipIn(own, ['link', 'add', `pod${i}`, 'type', 'veth', 'peer', 'name', `pp${i}`]);
    for (let i = 0; i < pods; i++) await ipIn(own, ['link', 'set', `pod${i}`, 'up']);
    const P = ROUTE_PROTOCOL;
    const lines = [
      ...Array.from({ length: OURS }, (_, i) => `route add 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 via 192.0.2.2 proto ${P}`),
      `route add 0.0.0.0/0 via 192.0.2.254 proto ${P}`,
      `route add 10.20.0.0/16 proto ${P} nexthop via 192.0.2.2 nexthop via 198.51.100.2`,
      `route add 10.21.0.0/16 via 198.51.100.2 dev wa proto ${P}`,
      `route add blackhole 10.22.0.0/16 proto ${P}`,
      `route add unreachable 10.23.0.0/16 proto ${P}`,
      `route add prohibit 10.26.0.0/16 proto ${P}`,
      `route add throw 10.27.0.0/16 proto ${P}`,
      `route add unreachable fd00:205::/64 proto ${P}`,
      `route add 10.24.0.0/16 via 192.0.2.2 table 100 proto ${P}`,
      'route add 10.25.0.0/16 via 192.0.2.2 proto static',
      ...Array.from({ length: pods }, (_, i) => `route add 10.244.1.${i + 1}/32 dev pod${i} scope link proto ${P}`),
      `route add fd00:201::/64 via fd00::2 proto ${P}`,
      `route add fd00:202::/64 via fe80::2 dev vb proto ${P}`,
      `route add fd00:203::/64 proto ${P} nexthop via fd00::2 nexthop via fd00::3`,
      `route add blackhole fd00:204::/64 proto ${P}`,
      `route add fd00:244::5/128 dev pod0 proto ${P}`,
    ];
    execaSync('ip', ['-n', own, '-batch', '-'], { input: lines.join('\n') });
    const byPrefix = (a: { prefix: string }, b: { prefix: string }): number => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0);
    const started = performance.now();
    const dumped = (await dumpOwnRoutes(nativeAddon(), ROUTE_PROTOCOL, own)).sort(byPrefix);
    const dumpMs = performance.now() - started;
    const ip = new Ip({ netns: own });
    const read = (await ip.readRoutes()).sort(byPrefix);
    ip.close();
    console.log(JSON.stringify({ ours: read.length, dumpMs: Math.round(dumpMs) }));
    expect(dumped).toEqual(read);
    // The comparison means something: each shape is there as the reconciler wrote it.
    const find = (prefix: string) => dumped.find((r) => r.prefix === prefix);
    expect(dumped).toHaveLength(OURS + 1 + 3 + pods + 5 + 4); // 4 of a type we never write
    expect(find('0.0.0.0/0')).toEqual({ prefix: '0.0.0.0/0', type: 'unicast', nextHops: ['192.0.2.254'], dev: 'va' });
    expect(find('10.20.0.0/16')?.nextHops).toEqual(['192.0.2.2', '198.51.100.2']);
    expect(find('10.22.0.0/16')).toEqual({ prefix: '10.22.0.0/16', type: 'blackhole', nextHops: [] });
    expect(find('10.244.1.40/32')).toEqual({ prefix: '10.244.1.40/32', type: 'unicast', nextHops: [], dev: 'pod39' });
    expect(find('fd00:202::/64')?.nextHops).toEqual(['fe80::2%vb']);
    expect(find('fd00:203::/64')?.nextHops).toEqual(['fd00::2', 'fd00::3']);
    expect(find('fd00:244::5/128')).toEqual({ prefix: 'fd00:244::5/128', type: 'unicast', nextHops: [], dev: 'pod0' });
    // Ours of a type we never write: read as 'other', for a comparison to replace or remove.
    for (const other of ['10.23.0.0/16', '10.26.0.0/16', '10.27.0.0/16', 'fd00:205::/64']) expect(find(other)).toEqual({ prefix: other, type: 'other', nextHops: [] });
    for (const absent of ['10.24.0.0/16', '10.25.0.0/16']) expect(find(absent)).toBeUndefined();
    // The reconciler's shell reads them so, a slice at a time; through ip when the dump fails.
    const slicesOf = async (shell: NetlinkRouteShell): Promise<KernelRoute[][]> => {
      const slices: KernelRoute[][] = [];
      for await (const slice of shell.readRouteSlices()) slices.push(slice);
      shell.close();
      return slices;
    };
    const sliced = await slicesOf(new NetlinkRouteShell({ netns: own, addon: nativeAddon() }));
    expect(sliced.length).toBeGreaterThan(2);
    expect(sliced.flat().sort(byPrefix)).toEqual(read);
    const failing = { ...nativeAddon(), routeDump: () => Promise.reject(new Error('route dump: recv: No buffer space available')) };
    const failures: string[] = [];
    const fallback = await slicesOf(new NetlinkRouteShell({ netns: own, addon: failing, onDumpFailed: (err) => failures.push(err.message) }));
    expect(failures).toEqual(['route dump: recv: No buffer space available']);
    expect(fallback).toHaveLength(1);
    expect(fallback[0]!.sort(byPrefix)).toEqual(read);
  });
});

describe('routeDump of wide ECMP routes (addon)', () => {
  const gateways = (n: number, v6: boolean) =>
    Array.from({ length: n }, (_, i) => (v6 ? `fd00::${(i + 2).toString(16)}` : `10.50.${Math.floor(i / 250) + 1}.${(i % 250) + 1}`)).sort();
  /** The routes written by the netlink writer (`ip` cannot write these: its request is bounded at 4 KB), then dumped. */
  async function writeAndDump(prefix: string, routes: Route[]): Promise<{ wide: string; dumped: KernelRoute[] }> {
    const wide = await pool.create(prefix);
    await addConnectedLink(wide, 'va', 'vb', ['10.50.0.1/16', 'fd00::1/64']);
    const shell = new NetlinkRouteShell({ netns: wide, addon: nativeAddon() });
    const failures = await shell.write(routes.map((route) => ({ op: 'add' as const, prefix: route.prefix, route, have: undefined })));
    shell.close();
    expect(failures).toEqual([]);
    return { wide, dumped: await dumpOwnRoutes(nativeAddon(), ROUTE_PROTOCOL, wide) };
  }
  const hops = (list: KernelRoute[]) => Object.fromEntries(list.map((r) => [r.prefix, r.nextHops.length]));

  it('reads the routes after one too large for a page (the kernel ends a dump quietly at a message that does not fit)', async () => {
    // The first of the IPv4 table (~4 KB of next hops), the first of the IPv6 one (~5 KB): before
    // the socket was read, the kernel sized the dump's messages at a page; `ip -json` loses the same.
    const routes: Route[] = [
      { prefix: '10.1.0.0/16', type: 'unicast', nextHops: gateways(250, false) },
      { prefix: '10.4.0.0/16', type: 'unicast', nextHops: ['10.50.0.2'] },
      { prefix: 'fd00:1::/64', type: 'unicast', nextHops: gateways(180, true) },
      { prefix: 'fd00:4::/64', type: 'unicast', nextHops: ['fd00::2'] },
    ];
    const { wide, dumped } = await writeAndDump('dumpwide', routes);
    expect(hops(dumped)).toEqual(hops(routes));
    // The dump for next-hop resolution too: our wide route ended it before the connected routes.
    const others = (await dumpRoutes(nativeAddon(), ROUTE_PROTOCOL, wide)).map((row) => row.dst);
    expect(others).toEqual(expect.arrayContaining(['10.50.0.0/16', 'fd00::/64']));
  });

  it('reads every next hop of a route past 255 of them, as the netlink writer wrote it', async () => {
    const routes: Route[] = [
      { prefix: '10.1.0.0/16', type: 'unicast', nextHops: gateways(255, false) },
      { prefix: '10.2.0.0/16', type: 'unicast', nextHops: gateways(256, false) },
      { prefix: '10.3.0.0/16', type: 'unicast', nextHops: gateways(600, false) },
      { prefix: 'fd00:1::/64', type: 'unicast', nextHops: gateways(300, true) },
      { prefix: '10.4.0.0/16', type: 'unicast', nextHops: ['10.50.0.2'] },
    ];
    const { dumped } = await writeAndDump('dumpwider', routes);
    expect(hops(dumped)).toEqual(hops(routes));
    expect(dumped.find((r) => r.prefix === '10.3.0.0/16')?.nextHops).toEqual(gateways(600, false));
  });
});
