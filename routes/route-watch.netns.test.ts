// The kernel change watcher (native/route_watch.c, routes/route-watch.ts) against a real kernel, in a throwaway namespace only.
import { execa, execaSync } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPool, addConnectedLink, ipIn, requireNetworkTools } from '../test/support/netns.js';
import { until } from '../test/support/wait.js';
import { nativeAddon } from '../native/native.js';
import { ROUTE_PROTOCOL } from './protocol-number.js';
import { NetlinkRouteShell } from './netlink.js';
import type { RouteWrite } from './desired.js';
import { type KernelChange, type RouteWatchEvent, type RouteWatchOptions, watchKernelChanges } from './route-watch.js';

const pool = new NetnsPool();
let ns = '';
const open: (() => void)[] = [];

beforeAll(async () => {
  await requireNetworkTools(['ip']);
  ns = await pool.create('watch');
  await addConnectedLink(ns, 'va', 'vb', ['192.0.2.1/24', 'fd00::1/64']);
  // The links' own link-local addresses (and their local routes) come once duplicate address detection
  // ends: not during a test that counts messages.
  await until('link-local addresses settled', async () => (await ipIn(ns, ['-6', 'addr', 'show', 'tentative'])) === '' && (await ipIn(ns, ['-6', 'addr', 'show', 'scope', 'link'])).split('inet6').length === 3, 10_000);
});
afterAll(async () => {
  for (const close of open.splice(0)) close();
  await pool.cleanup();
});

/** A watcher in the test namespace that records every burst it reports. */
function record(options: Partial<RouteWatchOptions> = {}) {
  const addon = nativeAddon();
  const events: RouteWatchEvent[] = [];
  const handle = addon.routeWatchOpen((e) => events.push(e), { protocol: ROUTE_PROTOCOL, netnsPath: pool.path(ns), ...options });
  const close = () => addon.routeWatchClose(handle);
  open.push(close);
  const total = (field: 'routes' | 'ownProtocolRoutes' | 'addresses' | 'links') => events.reduce((n, e) => n + e[field], 0);
  return { events, handle, close, total, overflowed: () => events.some((e) => e.overflowed) };
}

/** `ip -batch` in the test namespace, the lines on stdin. */
async function batch(lines: string[]): Promise<void> {
  await execa('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** n /32 (or /128) prefixes of protocol 201 through the test link. */
function ownRoutes(op: 'add' | 'del', n: number, family: 4 | 6): string[] {
  return Array.from({ length: n }, (_, i) =>
    family === 4 ? `route ${op} 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 via 192.0.2.2 proto ${ROUTE_PROTOCOL}` : `route ${op} fd00:201::${i.toString(16)}/128 via fd00::2 proto ${ROUTE_PROTOCOL}`,
  );
}

describe('the rtnetlink change watcher (next-hop reachability, RFC 4271 §9.1.2.1)', () => {
  it('reports another protocol’s routes coming and going, IPv4 and IPv6', async () => {
    const w = record();
    const changes: string[][] = [
      ['route', 'add', '10.1.0.0/24', 'via', '192.0.2.2', 'proto', 'static'],
      ['route', 'del', '10.1.0.0/24', 'via', '192.0.2.2', 'proto', 'static'],
      ['route', 'add', '10.2.0.0/24', 'via', '192.0.2.2'],
      ['route', 'del', '10.2.0.0/24'],
      ['-6', 'route', 'add', 'fd00:9::/64', 'via', 'fd00::2', 'proto', 'static'],
      ['-6', 'route', 'del', 'fd00:9::/64', 'via', 'fd00::2'],
    ];
    for (const change of changes) {
      const before = w.total('routes');
      await ipIn(ns, change);
      await until(`a callback for ip ${change.join(' ')}`, () => w.total('routes') > before, 10_000);
    }
    expect(w.overflowed()).toBe(false);
    w.close();
  });

  it('reports addresses added and removed, IPv4 and IPv6', async () => {
    const w = record();
    for (const [op, address] of [['add', '198.51.100.1/24'], ['del', '198.51.100.1/24'], ['add', 'fd00:5::1/64'], ['del', 'fd00:5::1/64']] as const) {
      const before = w.total('addresses');
      await ipIn(ns, [...(address.includes(':') ? ['-6'] : []), 'addr', op, address, 'dev', 'va', ...(op === 'add' && address.includes(':') ? ['nodad'] : [])]);
      await until(`a callback for addr ${op} ${address}`, () => w.total('addresses') > before, 10_000);
    }
    w.close();
  });

  it('never calls back for 20,000 routes of our own protocol added and deleted, IPv4 and IPv6: the kernel drops them', async () => {
    const w = record();
    // The control: a watcher that drops another protocol sees (or overflows on) our routes, so the burst below is real.
    const control = record({ protocol: ROUTE_PROTOCOL + 1 });
    for (const family of [4, 6] as const) {
      await batch(ownRoutes('add', 20_000, family));
      expect(Number((await ipIn(ns, [`-${family}`, 'route', 'show', 'proto', String(ROUTE_PROTOCOL)])).split('\n').length)).toBe(20_000);
      await batch(ownRoutes('del', 20_000, family));
    }
    // A route of another protocol afterwards: once its message is read, everything queued before it was read too.
    await ipIn(ns, ['route', 'add', '10.3.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
    await until('the static route’s callback', () => w.total('routes') > 0, 10_000);
    await until('the control’s static route', () => control.events.length > 0 && (control.overflowed() || control.total('routes') > 40_000), 20_000);
    expect({ routes: w.total('routes'), overflowed: w.overflowed(), callbacks: w.events.length }).toEqual({ routes: 1, overflowed: false, callbacks: 1 });
    await ipIn(ns, ['route', 'del', '10.3.0.0/24']);
    w.close();
    control.close();
  }, 120_000);

  it('given our writer’s port id, drops 2x20,000 of our own changes and passes someone else’s change of our routes as ownProtocolRoutes', async () => {
    const writer = new NetlinkRouteShell({ netns: ns, addon: nativeAddon() });
    open.push(() => writer.close());
    const ports = writer.portIds();
    expect(ports).toEqual([expect.any(Number)]);
    expect(ports[0]).not.toBe(0);
    const w = record({ ownPorts: ports });
    // The control: the same filter with no port of ours sees (or overflows on) our writer's routes, so the burst below is real.
    const control = record({ ownPorts: [] });
    const writes = (op: 'add' | 'delete', family: 4 | 6): RouteWrite[] =>
      Array.from({ length: 20_000 }, (_, i) => {
        const prefix = family === 4 ? `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32` : `fd00:201::${i.toString(16)}/128`;
        return { op, prefix, route: op === 'add' ? { prefix, type: 'unicast', nextHops: [family === 4 ? '192.0.2.2' : 'fd00::2'] } : undefined, have: undefined };
      });
    /** A route of another protocol, added and removed: once its callback comes, everything queued before it was read. */
    let sentinels = 0;
    const sentinel = async (): Promise<void> => {
      const expected = ++sentinels * 2;
      await ipIn(ns, ['route', 'add', '10.3.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
      await ipIn(ns, ['route', 'del', '10.3.0.0/24', 'proto', 'static']);
      await until('the static route’s callbacks', () => w.total('routes') >= expected, 10_000);
    };
    for (const family of [4, 6] as const) expect(await writer.write(writes('add', family))).toEqual([]);
    expect((await ipIn(ns, ['route', 'show', 'proto', String(ROUTE_PROTOCOL)])).split('\n').length).toBe(20_000);
    await sentinel();
    expect({ own: w.total('ownProtocolRoutes'), overflowed: w.overflowed() }).toEqual({ own: 0, overflowed: false });

    // Another process (ip, its own port id) deletes one of ours and adds it back: each is a callback of its own.
    await ipIn(ns, ['route', 'del', '10.100.0.7/32', 'proto', String(ROUTE_PROTOCOL)]);
    await until('a callback for the deletion', () => w.total('ownProtocolRoutes') === 1, 10_000);
    await ipIn(ns, ['route', 'add', '10.100.0.7/32', 'via', '192.0.2.2', 'proto', String(ROUTE_PROTOCOL)]);
    await until('a callback for the addition', () => w.total('ownProtocolRoutes') === 2, 10_000);
    await ipIn(ns, ['-6', 'route', 'del', 'fd00:201::7/128', 'proto', String(ROUTE_PROTOCOL)]);
    await until('a callback for the IPv6 deletion', () => w.total('ownProtocolRoutes') === 3, 10_000);
    // A pod's device route (the CNI plugin's, scope link) is not ours to repair: dropped too.
    await ipIn(ns, ['route', 'add', '10.244.1.7/32', 'dev', 'va', 'scope', 'link', 'proto', String(ROUTE_PROTOCOL)]);
    await ipIn(ns, ['route', 'del', '10.244.1.7/32', 'dev', 'va', 'proto', String(ROUTE_PROTOCOL)]);
    // And its IPv6 /128: the kernel notifies every IPv6 route with universe scope, so the filter tells
    // a device route by its missing next hop (RTA_GATEWAY, RTA_MULTIPATH, RTA_VIA), not by its scope.
    await ipIn(ns, ['-6', 'route', 'add', 'fd00:244::7/128', 'dev', 'va', 'proto', String(ROUTE_PROTOCOL)]);
    await ipIn(ns, ['-6', 'route', 'del', 'fd00:244::7/128', 'dev', 'va', 'proto', String(ROUTE_PROTOCOL)]);

    for (const family of [4, 6] as const) expect(await writer.write(writes('delete', family).filter((c) => c.prefix !== 'fd00:201::7/128'))).toEqual([]);
    expect(await ipIn(ns, ['route', 'show', 'proto', String(ROUTE_PROTOCOL)])).toBe('');
    await sentinel();
    await until('the control’s sentinel', () => control.overflowed() || control.total('ownProtocolRoutes') >= 80_000, 30_000);
    // Someone else's changes of our routes are never counted as `routes`: the next-hop watcher ignores them.
    expect({ routes: w.total('routes'), own: w.total('ownProtocolRoutes'), overflowed: w.overflowed() }).toEqual({ routes: 4, own: 3, overflowed: false });

    // Without port ids again (the writer became `ip`): every message of ours is dropped, whoever made it.
    nativeAddon().routeWatchSetOwnPorts(w.handle, null);
    await ipIn(ns, ['route', 'add', '10.100.0.8/32', 'via', '192.0.2.2', 'proto', String(ROUTE_PROTOCOL)]);
    await sentinel();
    expect(w.total('ownProtocolRoutes')).toBe(3);
    nativeAddon().routeWatchSetOwnPorts(w.handle, ports);
    await ipIn(ns, ['route', 'del', '10.100.0.8/32', 'proto', String(ROUTE_PROTOCOL)]);
    await until('a callback once the port ids are back', () => w.total('ownProtocolRoutes') === 4, 10_000);
    w.close();
    control.close();
    writer.close();
  }, 120_000);

  it('reports an overflowed receive buffer (ENOBUFS) instead of losing changes silently', async () => {
    const w = record({ receiveBuffer: 1 }); // the kernel's minimum: a few messages
    // Written while our event loop is blocked, so nothing is read until the buffer has overrun.
    execaSync('ip', ['-n', ns, '-batch', '-'], { input: Array.from({ length: 300 }, (_, i) => `route add 10.4.${i >> 8}.${i & 255}/32 via 192.0.2.2 proto static`).join('\n') });
    await until('the overflow report', () => w.overflowed(), 10_000);
    // and it goes on watching after one
    const before = w.total('routes');
    await ipIn(ns, ['route', 'add', '10.4.9.0/24', 'via', '192.0.2.2', 'proto', 'static']);
    await until('a change after the overflow', () => w.total('routes') > before, 10_000);
    w.close();
    await ipIn(ns, ['route', 'flush', 'proto', 'static']);
  });

  it('hands the consumer "lost" on an overflow and "changed" on a change, through watchKernelChanges', async () => {
    const seen: KernelChange[] = [];
    const watch = watchKernelChanges({ addon: nativeAddon, netns: ns, receiveBuffer: 1, onChange: (c) => seen.push(c), onFallback: (err) => seen.push(`fallback ${err.message}` as KernelChange) });
    open.push(() => watch.close());
    expect(watch.via).toBe('netlink');
    await ipIn(ns, ['route', 'add', '10.5.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
    await until('a change', () => seen.includes('changed'), 10_000);
    execaSync('ip', ['-n', ns, '-batch', '-'], { input: Array.from({ length: 300 }, (_, i) => `route add 10.6.${i >> 8}.${i & 255}/32 via 192.0.2.2 proto static`).join('\n') });
    await until('a loss', () => seen.includes('lost'), 10_000);
    expect(seen.filter((c) => c !== 'changed' && c !== 'lost')).toEqual([]);
    watch.close();
    await ipIn(ns, ['route', 'flush', 'proto', 'static']);
  });

  it('is silent once closed, closes twice without harm, and never keeps a process alive by itself', async () => {
    const w = record();
    w.close();
    w.close();
    await ipIn(ns, ['route', 'add', '10.7.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
    await new Promise((r) => setTimeout(r, 500));
    expect(w.events).toEqual([]);
    await ipIn(ns, ['route', 'del', '10.7.0.0/24']);
    // A process whose only handle is an open watcher exits on its own, closing it (twice) on the way out.
    const script = `import { nativeAddon } from './native/native.ts';
      const addon = nativeAddon();
      const handle = addon.routeWatchOpen(() => {}, { protocol: 201, netnsPath: '${pool.path(ns)}' });
      process.on('exit', () => { addon.routeWatchClose(handle); addon.routeWatchClose(handle); });
      console.log('open');`;
    const child = await execa(process.execPath, ['--import', 'tsx', '-e', script], { timeout: 20_000, reject: false });
    expect({ stdout: child.stdout, exitCode: child.exitCode, timedOut: child.timedOut }).toEqual({ stdout: 'open', exitCode: 0, timedOut: false });
  });
});
