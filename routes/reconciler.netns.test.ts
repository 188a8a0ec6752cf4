// The reconciler against a real kernel, in a throwaway namespace only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsPool, addConnectedLink, ipIn, requireNetworkTools } from '../test/support/netns.js';
import { RouteReconciler } from './reconciler.js';
import { nativeAddon } from '../native/native.js';
import { registerRouteProtocol } from './protocol.js';
import type { Route } from './desired.js';

const pool = new NetnsPool();
const r = (prefix: string, ...nextHops: string[]): Route => ({ prefix, type: 'unicast', nextHops });

afterAll(() => pool.cleanup());

// Both writers: rtnetlink through the addon (the default) and `ip -batch` (the fallback without it).
describe.each(['netlink', 'ip'] as const)('RouteReconciler (%s writer)', (writer) => {
  let ns = '';
  beforeAll(async () => {
    await requireNetworkTools(['ip']);
    ns = await pool.create('routes');
    await addConnectedLink(ns, 'va', 'vb', ['192.0.2.1/24', 'fd00::1/64']);
  });

  it('installs unicast, ECMP, IPv6 and blackhole routes with proto 201, and converges on changes', async () => {
    const rec = new RouteReconciler({ netlink: writer === 'netlink' ? nativeAddon : undefined, netns: ns });
    await rec.start();
    rec.setDesired([r('10.244.2.0/24', '192.0.2.2'), r('10.244.3.0/24', '192.0.2.3', '192.0.2.2'), r('fd00:244:2::/64', 'fd00::2'),
      { prefix: '10.244.1.0/24', type: 'blackhole', nextHops: [] }]);
    await rec.flush();
    const shown = await ipIn(ns, ['route', 'show', 'proto', '201']);
    expect(shown).toContain('10.244.2.0/24 via 192.0.2.2 dev va');
    expect(shown).toMatch(/10\.244\.3\.0\/24\s+nexthop via 192\.0\.2\.2 dev va weight 1\s+nexthop via 192\.0\.2\.3/);
    expect(shown).toContain('blackhole 10.244.1.0/24');
    expect(await ipIn(ns, ['-6', 'route', 'show', 'proto', '201'])).toContain('fd00:244:2::/64 via fd00::2 dev va');
    rec.setDesired([r('10.244.2.0/24', '192.0.2.4'), { prefix: '10.244.1.0/24', type: 'blackhole', nextHops: [] }]);
    await rec.flush();
    expect(rec.installed().map((x) => `${x.prefix} ${x.nextHops}`)).toEqual(['10.244.1.0/24 ', '10.244.2.0/24 192.0.2.4']);
    rec.setDesired([]);
    await rec.flush();
    expect(await ipIn(ns, ['route', 'show', 'proto', '201'])).toBe('');
  });

  it('IPv6 (dual stack, issue 14): ECMP and blackhole with proto 201, adopted unchanged by a restarted reconciler, then removed', async () => {
    const rec = new RouteReconciler({ netns: ns });
    await rec.start();
    const wanted: Route[] = [r('fd00:244:3::/64', 'fd00::3', 'fd00::2'), { prefix: 'fd00:244:1::/64', type: 'blackhole', nextHops: [] }];
    rec.setDesired(wanted);
    await rec.flush();
    const shown = await ipIn(ns, ['-6', 'route', 'show', 'proto', '201']);
    expect(shown).toMatch(/fd00:244:3::\/64[^\n]*\n?\s+nexthop via fd00::2 dev va weight 1\s+nexthop via fd00::3 dev va weight 1/);
    expect(shown).toContain('blackhole fd00:244:1::/64');
    const again = new RouteReconciler({ netns: ns }); // a restarted agent reads them back as the same routes
    await again.start();
    expect(again.installed()).toEqual(expect.arrayContaining([
      expect.objectContaining({ prefix: 'fd00:244:3::/64', type: 'unicast', nextHops: ['fd00::2', 'fd00::3'] }),
      expect.objectContaining({ prefix: 'fd00:244:1::/64', type: 'blackhole' }),
    ]));
    rec.stop();
    again.setDesired([]);
    await again.flush();
    again.stop();
    expect(await ipIn(ns, ['-6', 'route', 'show', 'proto', '201'])).toBe('');
  });

  it('adopts what a previous run left, removes stale ones, never touches other protocols or pod device routes', async () => {
    await ipIn(ns, ['route', 'add', '10.9.0.0/24', 'via', '192.0.2.2', 'proto', '201']); // left by an earlier agent
    await ipIn(ns, ['route', 'add', '10.8.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
    await ipIn(ns, ['route', 'add', '10.244.1.7/32', 'dev', 'va', 'scope', 'link', 'proto', '201']); // a pod's, from the plugin
    const rec = new RouteReconciler({ netlink: writer === 'netlink' ? nativeAddon : undefined, netns: ns });
    await rec.start();
    expect(rec.installed().map((x) => x.prefix)).toEqual(['10.9.0.0/24']);
    rec.setDesired([r('10.10.0.0/24', '192.0.2.3')]);
    await rec.flush();
    const all = await ipIn(ns, ['route', 'show']);
    expect(all).not.toContain('10.9.0.0/24');
    expect(all).toContain('10.10.0.0/24 via 192.0.2.3');
    expect(all).toContain('10.8.0.0/24 via 192.0.2.2 dev va proto static');
    expect(all).toContain('10.244.1.7 dev va');
    rec.setDesired([]);
    await rec.flush();
  });

  it('replaces or removes routes of ours of a type it never writes (unreachable, prohibit, throw), at start and as drift', async () => {
    // Left by someone with our protocol: an operator's `ip route add unreachable … proto lightly`, another tool.
    await ipIn(ns, ['route', 'add', 'unreachable', '10.20.0.0/24', 'proto', '201']);
    await ipIn(ns, ['route', 'add', 'prohibit', '10.21.0.0/24', 'proto', '201']);
    await ipIn(ns, ['-6', 'route', 'add', 'unreachable', 'fd00:20::/64', 'proto', '201']);
    const errors: Error[] = [];
    const rec = new RouteReconciler({ netlink: writer === 'netlink' ? nativeAddon : undefined, netns: ns, onError: (e) => errors.push(e), driftSettleMs: 0, driftIntervalMs: 0 });
    await rec.start();
    // Wanted: ours replaces the unreachable one; not wanted: the prohibit and the IPv6 one go.
    rec.upsert(r('10.20.0.0/24', '192.0.2.2'));
    await rec.flush();
    expect(errors).toEqual([]);
    let all = await ipIn(ns, ['route', 'show', 'proto', '201']);
    expect(all).toContain('10.20.0.0/24 via 192.0.2.2');
    expect(all).not.toContain('unreachable');
    expect(all).not.toContain('prohibit');
    expect(await ipIn(ns, ['-6', 'route', 'show', 'proto', '201'])).not.toContain('fd00:20::');
    // Drift: someone puts a throw route of ours where we want a route; the comparison puts ours back.
    await ipIn(ns, ['route', 'replace', 'throw', '10.20.0.0/24', 'proto', '201']);
    rec.suspectDrift();
    for (let i = 0; i < 100 && !(await ipIn(ns, ['route', 'show', 'proto', '201'])).includes('10.20.0.0/24 via 192.0.2.2'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    all = await ipIn(ns, ['route', 'show', 'proto', '201']);
    expect(all).toContain('10.20.0.0/24 via 192.0.2.2');
    expect(all).not.toContain('throw');
    expect(errors).toEqual([]);
    rec.setDesired([]);
    await rec.flush();
    rec.stop();
  });

  it('reports changes the kernel refuses and keeps the rest', async () => {
    const errors: Error[] = [];
    const rec = new RouteReconciler({ netlink: writer === 'netlink' ? nativeAddon : undefined, netns: ns, onError: (e) => errors.push(e) });
    await rec.start();
    rec.setDesired([r('10.11.0.0/24', '198.51.100.9'), r('10.12.0.0/24', '192.0.2.2')]); // first gateway unreachable
    await rec.flush();
    expect(errors[0]?.message).toContain('route add 10.11.0.0/24');
    expect(rec.installed().map((x) => x.prefix)).toEqual(['10.12.0.0/24']);
    rec.setDesired([]);
    await rec.flush();
    rec.stop();
  });

  it('removes a gateway\'s whole table (through ip: with one flush), leaving ECMP, other gateways\' and other protocols\' routes', async () => {
    await ipIn(ns, ['route', 'add', '10.7.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
    const rec = new RouteReconciler({ netlink: writer === 'netlink' ? nativeAddon : undefined, netns: ns });
    await rec.start();
    const table = Array.from({ length: 5000 }, (_, i) => `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
    for (const prefix of table) rec.upsert(r(prefix, '192.0.2.2'));
    rec.upsert(r('10.13.0.0/24', '192.0.2.2', '192.0.2.3'));
    rec.upsert(r('10.14.0.0/24', '192.0.2.3'));
    rec.upsert({ prefix: '10.15.0.0/24', type: 'blackhole', nextHops: [] });
    await rec.flush();
    expect(rec.installed()).toHaveLength(5003);
    for (const prefix of table) rec.remove(prefix);
    const result = await rec.flush();
    // ip: one line, the flush; netlink: a delete per route, none waited for alone (no flush needed)
    expect(result).toEqual({ applied: writer === 'ip' ? 1 : table.length, failures: [] });
    expect(rec.installed().map((x) => x.prefix)).toEqual(['10.13.0.0/24', '10.14.0.0/24', '10.15.0.0/24']);
    const kernel = await ipIn(ns, ['route', 'show']);
    expect(kernel).not.toContain('10.96.');
    expect(kernel).toMatch(/10\.13\.0\.0\/24 proto 201\s+nexthop via 192\.0\.2\.2/);
    expect(kernel).toContain('10.14.0.0/24 via 192.0.2.3 dev va proto 201');
    expect(kernel).toContain('blackhole 10.15.0.0/24 proto 201');
    expect(kernel).toContain('10.7.0.0/24 via 192.0.2.2 dev va proto static');
    rec.setDesired([]);
    await rec.flush();
    rec.stop();
    await ipIn(ns, ['route', 'del', '10.7.0.0/24', 'proto', 'static']);
  });

  it('installs 100,000 routes in one batch', async () => {
    const rec = new RouteReconciler({ netlink: writer === 'netlink' ? nativeAddon : undefined, netns: ns });
    await rec.start();
    const many: Route[] = [];
    for (let i = 0; i < 100_000; i++) many.push(r(`10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`, '192.0.2.2'));
    let t = performance.now();
    rec.setDesired(many);
    await rec.flush();
    console.log(`${writer}: 100,000 routes installed in ${((performance.now() - t) / 1000).toFixed(2)} s`);
    expect(rec.installed()).toHaveLength(100_000);
    t = performance.now();
    rec.setDesired([]);
    await rec.flush();
    console.log(`${writer}: 100,000 routes removed in ${((performance.now() - t) / 1000).toFixed(2)} s`);
    expect(rec.installed()).toHaveLength(0);
  }, 120_000);
});

describe('registerRouteProtocol', () => {
  it('writes rt_protos.d/lightly.conf once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lt-iproute-'));
    try {
      expect(registerRouteProtocol(dir)).toBe(true);
      expect(readFileSync(join(dir, 'rt_protos.d', 'lightly.conf'), 'utf8')).toContain('201\tlightly');
      expect(registerRouteProtocol(dir)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
