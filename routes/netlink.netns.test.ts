// The rtnetlink writer (native/netlink.c + routes/netlink-codec.ts) against a real kernel, in a throwaway namespace only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPool, addConnectedLink, ipIn, requireNetworkTools } from '../test/support/netns.js';
import type { Route, RouteWrite } from './desired.js';
import { NetlinkRouteShell } from './netlink.js';
import { nativeAddon } from '../native/native.js';

const pool = new NetnsPool();
let ns = '';
let shell: NetlinkRouteShell;
const u = (prefix: string, ...nextHops: string[]): Route => ({ prefix, type: 'unicast', nextHops });
const add = (route: Route): RouteWrite => ({ op: 'add', prefix: route.prefix, route, have: undefined });
const replace = (route: Route): RouteWrite => ({ op: 'replace', prefix: route.prefix, route, have: route });
const del = (route: Route): RouteWrite => ({ op: 'delete', prefix: route.prefix, route: undefined, have: route });
const ours = async (family: 4 | 6 = 4): Promise<string> => ipIn(ns, [`-${family}`, 'route', 'show', 'proto', '201']);

beforeAll(async () => {
  await requireNetworkTools(['ip']);
  ns = await pool.create('netlink');
  await addConnectedLink(ns, 'va', 'vb', ['192.0.2.1/24', 'fd00::1/64']);
  shell = new NetlinkRouteShell({ netns: ns, addon: nativeAddon() });
});
afterAll(async () => {
  shell?.close();
  await pool.cleanup();
});

describe('NetlinkRouteShell', () => {
  it('installs unicast, ECMP, blackhole, IPv6, link-local ECMP and device routes with proto 201', async () => {
    const failures = await shell.write([
      add(u('10.1.0.0/24', '192.0.2.2')),
      add(u('10.2.0.0/24', '192.0.2.3', '192.0.2.2')),
      add({ prefix: '10.3.0.0/24', type: 'blackhole', nextHops: [] }),
      add(u('fd00:244:2::/64', 'fd00::2')),
      add(u('fd00:244:3::/64', 'fe80::1%va', 'fe80::2%va')),
      add({ prefix: '10.244.1.7/32', type: 'unicast', nextHops: [], dev: 'va' }),
      add({ prefix: 'fd00:244:4::/64', type: 'blackhole', nextHops: [] }),
    ]);
    expect(failures).toEqual([]);
    const v4 = await ours(4);
    expect(v4).toContain('10.1.0.0/24 via 192.0.2.2 dev va');
    expect(v4).toMatch(/10\.2\.0\.0\/24\s+nexthop via 192\.0\.2\.3 dev va weight 1\s+nexthop via 192\.0\.2\.2 dev va weight 1/); // in the order given
    expect(v4).toContain('blackhole 10.3.0.0/24');
    expect(v4).toContain('10.244.1.7 dev va scope link');
    const v6 = await ours(6);
    expect(v6).toContain('fd00:244:2::/64 via fd00::2 dev va');
    expect(v6).toMatch(/fd00:244:3::\/64[^\n]*\s+nexthop via fe80::1 dev va weight 1\s+nexthop via fe80::2 dev va weight 1/);
    expect(v6).toContain('blackhole fd00:244:4::/64');
    // What the reconciler reads back (ip -json) is what it wrote.
    const read = await shell.readRoutes();
    expect(read.find((r) => r.prefix === '10.2.0.0/24')).toMatchObject(u('10.2.0.0/24', '192.0.2.2', '192.0.2.3'));
    expect(read.find((r) => r.prefix === 'fd00:244:3::/64')).toMatchObject(u('fd00:244:3::/64', 'fe80::1%va', 'fe80::2%va'));
  });

  it('replaces in place (unicast to ECMP to blackhole) and deletes whatever type of ours', async () => {
    expect(await shell.write([replace(u('10.1.0.0/24', '192.0.2.4', '192.0.2.5'))])).toEqual([]);
    expect(await ours()).toMatch(/10\.1\.0\.0\/24\s+nexthop via 192\.0\.2\.4/);
    expect(await shell.write([replace({ prefix: '10.1.0.0/24', type: 'blackhole', nextHops: [] })])).toEqual([]);
    expect(await ours()).toContain('blackhole 10.1.0.0/24');
    const all = ['10.1.0.0/24', '10.2.0.0/24', '10.3.0.0/24', '10.244.1.7/32', 'fd00:244:2::/64', 'fd00:244:3::/64', 'fd00:244:4::/64'];
    expect(await shell.write(all.map((p) => del(u(p, '192.0.2.2'))))).toEqual([]);
    expect(await ours(4)).toBe('');
    expect(await ours(6)).toBe('');
  });

  it('reports a refused route with its prefix and line, and applies the rest of the write', async () => {
    const failures = await shell.write([add(u('10.11.0.0/24', '198.51.100.9')), add(u('10.12.0.0/24', '192.0.2.2')), add(u('10.13.0.0/24', '192.0.2.2', '203.0.113.1'))]);
    expect(failures.map((f) => [f.line, f.command])).toEqual([
      [1, 'route add 10.11.0.0/24 proto 201 via 198.51.100.9'],
      [3, 'route add 10.13.0.0/24 proto 201 nexthop via 192.0.2.2 nexthop via 203.0.113.1'],
    ]);
    expect(failures[0]!.error).toMatch(/^RTNETLINK answers: Network is unreachable/);
    expect(await ours()).toBe('10.12.0.0/24 via 192.0.2.2 dev va ');
    expect(await shell.write([del(u('10.12.0.0/24'))])).toEqual([]);
  });

  it('refuses a route over a link that does not exist without sending it', async () => {
    const failures = await shell.write([add({ prefix: '10.14.0.0/24', type: 'unicast', nextHops: ['192.0.2.2'], dev: 'nope0' }), add(u('10.15.0.0/24', '192.0.2.2'))]);
    expect(failures).toEqual([{ line: 1, command: 'route add 10.14.0.0/24 proto 201 via 192.0.2.2 dev nope0', error: 'Cannot find device "nope0"' }]);
    expect(await ours()).toBe('10.15.0.0/24 via 192.0.2.2 dev va ');
    await shell.write([del(u('10.15.0.0/24'))]);
  });

  it('never takes over or removes another protocol\'s route for the prefix', async () => {
    await ipIn(ns, ['route', 'add', '10.8.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
    const refused = await shell.write([add(u('10.8.0.0/24', '192.0.2.3')), del(u('10.8.0.0/24', '192.0.2.2'))]);
    expect(refused.map((f) => [f.line, f.error])).toEqual([
      [1, 'RTNETLINK answers: File exists'],
      [2, 'RTNETLINK answers: No such process'],
    ]);
    expect(await ipIn(ns, ['route', 'show', '10.8.0.0/24'])).toBe('10.8.0.0/24 via 192.0.2.2 dev va proto static ');
    await ipIn(ns, ['route', 'del', '10.8.0.0/24', 'proto', 'static']);
  });

  it('maps refusals to their changes across many acknowledged pieces, a flush as one delete per prefix', async () => {
    const routes = Array.from({ length: 3000 }, (_, i) => u(`10.${100 + (i >> 8)}.${i & 255}.0/24`, i % 700 === 13 ? '198.51.100.9' : '192.0.2.2'));
    const failures = await shell.write(routes.map(add));
    expect(failures.map((f) => f.line)).toEqual([14, 714, 1414, 2114, 2814]);
    expect(failures.every((f, k) => f.command.includes(routes[[13, 713, 1413, 2113, 2813][k]!]!.prefix))).toBe(true);
    const installed = routes.filter((_, i) => i % 700 !== 13).map((r) => r.prefix);
    expect((await ours()).trim().split('\n')).toHaveLength(installed.length);
    const flush: RouteWrite = { op: 'flush', prefix: installed[0]!, route: undefined, have: routes[0], gateway: '192.0.2.2', covers: installed };
    expect(await shell.write([flush])).toEqual([]);
    expect(await ours()).toBe('');
  });

  it('writes in call order when calls overlap', async () => {
    const route = u('10.16.0.0/24', '192.0.2.2');
    const writes = [shell.write([add(route)]), shell.write([replace(u('10.16.0.0/24', '192.0.2.3'))]), shell.write([del(route)]), shell.write([add(u('10.16.0.0/24', '192.0.2.4'))])];
    expect(await Promise.all(writes)).toEqual([[], [], [], []]);
    expect(await ours()).toBe('10.16.0.0/24 via 192.0.2.4 dev va ');
    await shell.write([del(route)]);
  });
});
