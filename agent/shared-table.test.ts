// The RIB keeping its candidates in the route programmer's table (one record per prefix from the
// wire to the kernel): whatever the order of announcements, withdrawals, passes, refusals and drift,
// the kernel ends with the RIB's best routes, and the table holds no record nobody needs.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Rib, type BestChange, type PeerInfo, type Route as RibRoute } from '../bgp/rib/rib.js';
import { type Route, type RouteTarget, type RouteWrite, renderWrite } from '../routes/desired.js';
import { UnicastTargets } from './daemon.js';
import type { BatchFailure } from '../routes/ip.js';
import type { PrefixTable } from '../routes/prefix-table.js';
import { type RouteShell, RouteReconciler } from '../routes/reconciler.js';

/**
 * Our routes in a map (and the plugin's pod routes, also proto 201); answers a turn of the event loop
 * later (passes overlap changes), refusing what the test says and what the kernel would ("File
 * exists", "No such process"). Reads a route or two per slice when `sliced`, as the addon's dump.
 */
class SlowKernel implements RouteShell {
  kernel = new Map<string, Route>();
  refuse = new Set<string>();
  readRouteSlices?: () => AsyncIterable<Route[]>;
  constructor(sliced = false) {
    if (sliced) this.readRouteSlices = () => this.slices();
  }
  private async *slices(): AsyncIterable<Route[]> {
    // A route through a gateway read with its link, as the kernel gives it.
    const all = [...this.kernel.values()].map((x) => (x.nextHops.length > 0 && x.dev === undefined ? { ...x, dev: 'eth0' } : x));
    for (let i = 0; i < all.length; i += 2) {
      await new Promise((resolve) => setImmediate(resolve));
      yield all.slice(i, i + 2);
    }
  }
  async readRoutes(): Promise<Route[]> {
    return [...this.kernel.values()];
  }
  async batch(lines: string[]): Promise<BatchFailure[]> {
    await new Promise((resolve) => setImmediate(resolve));
    const failures: BatchFailure[] = [];
    lines.forEach((line, i) => {
      const [, verb, ...rest] = line.split(' ');
      const blackhole = rest[0] === 'blackhole';
      const prefix = blackhole ? rest[1]! : rest[0]!;
      const fail = (error: string) => failures.push({ line: i + 1, command: line, error });
      if (verb === 'flush') {
        const gateway = rest[rest.indexOf('via') + 1];
        for (const [p, route] of this.kernel) if (route.type === 'unicast' && route.nextHops.length === 1 && route.nextHops[0] === gateway) this.kernel.delete(p);
        return;
      }
      if (this.refuse.has(prefix)) return fail('RTNETLINK answers: Network is unreachable');
      if (verb === 'del') return void (this.kernel.delete(prefix) || fail('RTNETLINK answers: No such process'));
      if (verb === 'add' && this.kernel.has(prefix)) return fail('RTNETLINK answers: File exists');
      const dev = /dev (\S+)/.exec(line)?.[1];
      const route: Route = blackhole ? { prefix, type: 'blackhole', nextHops: [] } : { prefix, type: 'unicast', nextHops: [...line.matchAll(/via (\S+)/g)].map((m) => m[1]!).sort() };
      if (!blackhole && dev !== undefined) route.dev = dev;
      this.kernel.set(prefix, route);
    });
    return failures;
  }
}

const peer = (id: string, address: string): PeerInfo => ({ id, address, asn: 65000, routerId: address, ebgp: false, rrClient: false });
const PEERS = [peer('p1', '192.0.2.1'), peer('p2', '192.0.2.2')];

/**
 * What the daemon does with a change (agent/daemon.ts onBestRoutes → program), slot included, and
 * a target shared by the changes of one next-hop list (as the prefixes of an UPDATE share one).
 */
function program(reconciler: RouteReconciler, changes: (BestChange | undefined)[], targets = new UnicastTargets()): void {
  for (const c of changes) {
    if (!c) continue;
    if (c.nextHops.length) reconciler.upsertFor(c.prefix, targets.of(c.nextHops), c.slot);
    else reconciler.remove(c.prefix, c.slot);
  }
}

describe('RIB and route programmer sharing one table', () => {
  it('ends with the RIB best routes in the kernel and no record left that nobody needs, whatever the order', async () => {
    const prefix = fc.integer({ min: 0, max: 7 }).map((i) => `10.${i}.0.0/24`);
    const source = fc.integer({ min: 0, max: 1 });
    const op = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('announce' as const), prefix, source, med: fc.integer({ min: 0, max: 2 }) }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('withdraw' as const), prefix, source }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), source }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('turn' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('refuse' as const), prefix }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('accept' as const) }) },
      // Someone else deletes a route of ours; a comparison with the kernel follows.
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('drift' as const), prefix }) },
      // A next hop stops or starts resolving: its routes stay candidates, not selected (RFC 4271 §9.1.2.1).
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reachability' as const), source }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 80 }), async (ops) => {
        const kernel = new SlowKernel();
        // Sweeps as soon as records are idle, so they interleave with the operations.
        const reconciler = new RouteReconciler({ shell: kernel, chunkLines: 2, flushMin: 2, debounceMs: 0, retryMs: 1, driftSettleMs: 0, driftIntervalMs: 0, sweepMs: 0 });
        await reconciler.start();
        const unreachable = new Set<string>();
        const eligible = (r: RibRoute): boolean => !unreachable.has(r.nextHop);
        const rib = new Rib(8, eligible, reconciler.ribSlots());
        // The same operations on a RIB with a table of its own: what the shared one must agree with.
        const reference = new Rib(8, eligible);
        // One for the run: targets shared across announcements too, as the daemon's are.
        const targets = new UnicastTargets();
        for (const o of ops) {
          if (o.kind === 'announce') {
            const route: RibRoute = { attrs: { origin: 0, asPath: [], med: o.med }, nextHop: PEERS[o.source]!.address, source: PEERS[o.source]! };
            program(reconciler, [rib.announce(o.prefix, route)], targets);
            reference.announce(o.prefix, { ...route });
          } else if (o.kind === 'withdraw') {
            program(reconciler, [rib.withdraw(PEERS[o.source]!.id, o.prefix)], targets);
            reference.withdraw(PEERS[o.source]!.id, o.prefix);
          } else if (o.kind === 'drop') {
            program(reconciler, rib.dropSource(PEERS[o.source]!.id), targets);
            reference.dropSource(PEERS[o.source]!.id);
          } else if (o.kind === 'reachability') {
            const hop = PEERS[o.source]!.address;
            if (!unreachable.delete(hop)) unreachable.add(hop);
            program(reconciler, rib.revalidate(new Set([hop])), targets);
            reference.revalidate(new Set([hop]));
          } else if (o.kind === 'turn') await new Promise((resolve) => setImmediate(resolve));
          else if (o.kind === 'refuse') kernel.refuse.add(o.prefix);
          else if (o.kind === 'accept') kernel.refuse.clear();
          else {
            kernel.kernel.delete(o.prefix);
            reconciler.suspectDrift();
          }
        }
        kernel.refuse.clear();
        for (let i = 0; i < 20 && reconciler.stats().pending > 0; i++) {
          await reconciler.flush();
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        await new Promise((resolve) => setTimeout(resolve, 5)); // a drift comparison asked for last
        await reconciler.flush();
        const best = [...reference.bestPaths()].map(([p, s]) => `${p} ${s.multipath.map((r) => r.nextHop).sort().join(',')}`).sort();
        const got = [...kernel.kernel.values()].map((r) => `${r.prefix} ${r.nextHops.join(',')}`).sort();
        expect(got).toEqual(best);
        expect(reconciler.installed().map((r) => `${r.prefix} ${r.nextHops.join(',')}`)).toEqual(got);
        expect([...rib.bestPaths()].map(([p]) => p).sort()).toEqual([...reference.bestPaths()].map(([p]) => p).sort());
        for (const p of PEERS) expect(rib.count(p.id)).toBe(reference.count(p.id));
        // A record per prefix with candidates (selected or not) or a route of ours, none more once swept.
        await new Promise((resolve) => setTimeout(resolve, 5));
        const withCandidates = Array.from({ length: 8 }, (_, i) => `10.${i}.0.0/24`).filter((p) => PEERS.some((peer) => reference.has(peer.id, p)));
        for (const p of withCandidates) for (const peer of PEERS) expect(rib.has(peer.id, p)).toBe(reference.has(peer.id, p));
        const needed = new Set([...kernel.kernel.keys(), ...withCandidates]);
        expect([...reconciler.ribSlots().values()].map((s) => s.prefix).sort()).toEqual([...needed].sort());
        // The speaker stops (Rib.clear) and the routes are removed: nothing is left in the table.
        rib.clear();
        for (const p of needed) reconciler.remove(p);
        await reconciler.flush();
        await new Promise((resolve) => setTimeout(resolve, 5));
        reconciler.stop();
        expect(kernel.kernel.size).toBe(0);
        expect([...reconciler.ribSlots().values()]).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('a withdrawal is one look-up in the table, and the delete comes with the sweep: the change carries the record to the route programmer', async () => {
    const kernel = new SlowKernel();
    const reconciler = new RouteReconciler({ shell: kernel, debounceMs: 0, sweepMs: 20 });
    await reconciler.start();
    const slots = reconciler.ribSlots();
    const rib = new Rib(8, undefined, slots);
    const route: RibRoute = { attrs: { origin: 0, asPath: [] }, nextHop: '192.0.2.1', source: PEERS[0]! };
    const prefixes = Array.from({ length: 100 }, (_, i) => `10.0.${i}.0/24`);
    program(reconciler, prefixes.map((p) => rib.announce(p, route)));
    await reconciler.flush();
    expect(kernel.kernel.size).toBe(100);
    // Every operation on the one table, counted: a wrong record handed over would show as a route
    // left behind or removed for the wrong prefix.
    const table = (reconciler as unknown as { table: PrefixTable<{ prefix: string }> }).table;
    const ops = { get: 0, add: 0, delete: 0 };
    for (const name of ['get', 'add', 'delete'] as const) {
      const original = table[name].bind(table) as (...args: unknown[]) => unknown;
      (table as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => (ops[name]++, original(...args));
    }
    program(reconciler, prefixes.slice(0, 50).map((p) => rib.withdraw('p1', p)));
    await reconciler.flush();
    expect(ops).toEqual({ get: 50, add: 0, delete: 0 });
    expect([...kernel.kernel.keys()].sort()).toEqual(prefixes.slice(50).sort());
    // Idle until the sweep: a prefix back meanwhile takes its record up again, no new one made.
    program(reconciler, [rib.announce(prefixes[0]!, route)]);
    await reconciler.flush();
    expect(ops).toEqual({ get: 51, add: 0, delete: 0 });
    program(reconciler, [rib.withdraw('p1', prefixes[0]!)]);
    await reconciler.flush();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(ops).toEqual({ get: 52, add: 0, delete: 50 });
    expect([...slots.values()].length).toBe(50);
    // A record no longer in the table (swept, stale) is not trusted: the prefix is looked up instead.
    const stale = rib.withdraw('p1', prefixes[50]!)!;
    program(reconciler, [stale]);
    await reconciler.flush();
    await new Promise((resolve) => setTimeout(resolve, 60));
    program(reconciler, [rib.announce(prefixes[50]!, route)]);
    await reconciler.flush();
    expect(kernel.kernel.has(prefixes[50]!)).toBe(true);
    reconciler.remove(prefixes[50]!, stale.slot);
    await reconciler.flush();
    expect(kernel.kernel.has(prefixes[50]!)).toBe(false);
  });

  it('a prefix the RIB holds in another text form than the route programmer (IPv6 in upper case) has its route removed when its next hop stops resolving', async () => {
    const kernel = new SlowKernel();
    const reconciler = new RouteReconciler({ shell: kernel, debounceMs: 0 });
    await reconciler.start();
    const unreachable = new Set<string>();
    const rib = new Rib(8, (r) => !unreachable.has(r.nextHop), reconciler.ribSlots());
    const route: RibRoute = { attrs: { origin: 0, asPath: [] }, nextHop: '2001:db8::1', source: peer('p6', '2001:db8::1') };
    program(reconciler, [rib.announce('2001:DB8:1::/64', route)]);
    await reconciler.flush();
    expect([...kernel.kernel.keys()]).toEqual(['2001:db8:1::/64']);
    // RFC 4271 §9.1.2.1: the route stays a candidate, no longer selected; the kernel route goes.
    unreachable.add('2001:db8::1');
    program(reconciler, rib.revalidate(new Set(['2001:db8::1'])));
    await reconciler.flush();
    expect([...kernel.kernel.keys()]).toEqual([]);
    expect(reconciler.wanted().size).toBe(0);
  });

  it('a full comparison removes a route of ours nobody wants even when the RIB takes the prefix up while the comparison yields', async () => {
    // More routes than the comparison handles between yields (RESYNC_SLICE), so it yields while
    // going through the kernel's routes; the RIB then learns the prefix, with a next hop that does
    // not resolve: a candidate, no best, so the route programmer is not told of it.
    const kernel = new SlowKernel();
    for (let i = 0; i < 30_000; i++) {
      const prefix = `10.${i >> 8}.${i & 255}.0/24`;
      kernel.kernel.set(prefix, { prefix, type: 'unicast', nextHops: ['192.0.2.1'] });
    }
    const reconciler = new RouteReconciler({ shell: kernel, debounceMs: 0, resyncMs: 0, driftSettleMs: 0, driftIntervalMs: 0 });
    await reconciler.start();
    const rib = new Rib(8, (r) => r.nextHop !== '192.0.2.9', reconciler.ribSlots());
    // Someone else's route with our protocol: the comparison is to remove it.
    const foreign = '10.250.0.0/24';
    kernel.kernel.set(foreign, { prefix: foreign, type: 'unicast', nextHops: ['192.0.2.7'] });
    // The comparison's first look for a kernel route in the table (after going through the table
    // itself): the RIB's announcement runs at the comparison's next yield.
    const table = (reconciler as unknown as { table: Map<string, unknown> }).table;
    let armed = true;
    for (const name of ['get', 'has'] as const) {
      const original = table[name].bind(table) as (prefix: string) => unknown;
      (table as unknown as Record<string, unknown>)[name] = (prefix: string) => {
        if (armed) {
          armed = false;
          setImmediate(() => expect(rib.announce(foreign, { attrs: { origin: 0, asPath: [] }, nextHop: '192.0.2.9', source: PEERS[0]! })).toBeUndefined());
        }
        return original(prefix);
      };
    }
    const checked = new Promise<void>((resolve) => {
      (reconciler as unknown as { options: { onDriftChecked?: () => void } }).options.onDriftChecked = resolve;
    });
    reconciler.suspectDrift();
    await checked;
    await reconciler.flush();
    expect(armed).toBe(false);
    expect(rib.has('p1', foreign)).toBe(true);
    expect(kernel.kernel.has(foreign)).toBe(false);
    reconciler.stop();
  });
});

const TARGETS: RouteTarget[] = [
  { type: 'unicast', nextHops: ['192.0.2.2'] },
  { type: 'unicast', nextHops: ['192.0.2.3'] },
  { type: 'unicast', nextHops: ['192.0.2.2', '192.0.2.3'] },
  { type: 'blackhole', nextHops: [] },
  { type: 'unicast', nextHops: [], dev: 'lxc1' },
];
const show = (prefix: string, t: RouteTarget): string => `${prefix} ${t.type} ${[...t.nextHops].sort().join(',')}${t.nextHops.length === 0 && t.dev ? ` dev ${t.dev}` : ''}`;
const POD = '10.244.0.7/32';

describe('RIB, route programmer and kernel against a model', () => {
  it('ends with the kernel, installed(), wanted() and stats() equal to the model, and no idle record after a sweep', async () => {
    const mine = fc.integer({ min: 0, max: 5 }).map((i) => `10.0.${i}.0/24`);
    const ribPrefix = fc.integer({ min: 0, max: 5 }).map((i) => `10.1.${i}.0/24`);
    const any = fc.oneof(mine, ribPrefix);
    const target = fc.integer({ min: 0, max: TARGETS.length - 1 });
    const op = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('upsert' as const), prefix: mine, target }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), prefix: mine }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('setDesired' as const), keep: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('announce' as const), prefix: ribPrefix, source: fc.integer({ min: 0, max: 1 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('withdraw' as const), prefix: ribPrefix, source: fc.integer({ min: 0, max: 1 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), source: fc.integer({ min: 0, max: 1 }) }) },
      // A next hop stops or starts resolving: candidates without a best (RFC 4271 §9.1.2.1) keep their record.
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reachability' as const), source: fc.integer({ min: 0, max: 1 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('turn' as const), ms: fc.integer({ min: 0, max: 2 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('deliver' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('refuse' as const), prefix: any }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('accept' as const) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('drift' as const), prefix: any, how: fc.constantFrom('delete', 'other', 'blackhole') }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), fc.integer({ min: 0, max: 3 }), fc.constantFrom('slices', 'whole', 'write'), fc.boolean(), async (ops, slack, shell, deferred) => {
        // Read a slice at a time (the addon's dump) or all at once (`ip -json`), or written as values (the netlink writer: no flushes).
        const kernel = new SlowKernel(shell !== 'whole');
        if (shell === 'write') (kernel as RouteShell).write = (changes: readonly RouteWrite[]) => kernel.batch(changes.map(renderWrite));
        kernel.kernel.set(POD, { prefix: POD, type: 'unicast', nextHops: [], dev: 'lxc9' });
        kernel.kernel.set('10.0.5.0/24', { prefix: '10.0.5.0/24', type: 'unicast', nextHops: ['192.0.2.2'] }); // adopted
        const reconciler = new RouteReconciler({
          shell: kernel, chunkLines: 2, flushMin: 2, debounceMs: 0, retryMs: 1, driftSettleMs: 0, driftIntervalMs: 0, sweepMs: 0, sweepSlack: slack, onError: () => undefined,
        });
        await reconciler.start();
        const unreachable = new Set<string>();
        const eligible = (x: RibRoute): boolean => !unreachable.has(x.nextHop);
        const rib = new Rib(8, eligible, reconciler.ribSlots());
        const reference = new Rib(8, eligible);
        const want = new Map<string, RouteTarget>([['10.0.5.0/24', TARGETS[0]!]]);
        // Changes handed over later, in order (a record may be swept while its change waits).
        let held: ReturnType<Rib['dropSource']> = [];
        const deliver = (): void => {
          const changes = held;
          held = [];
          for (const c of changes) {
            if (c.nextHops.length) reconciler.upsertFor(c.prefix, { type: 'unicast', nextHops: c.nextHops }, c.slot);
            else reconciler.remove(c.prefix, c.slot);
          }
        };
        const program = (changes: ReturnType<Rib['dropSource']>): void => {
          held.push(...changes);
          if (!deferred) deliver();
        };
        for (const o of ops) {
          if (o.kind === 'upsert') {
            reconciler.upsert({ prefix: o.prefix, ...TARGETS[o.target]! });
            want.set(o.prefix, TARGETS[o.target]!);
          } else if (o.kind === 'remove') {
            reconciler.remove(o.prefix);
            want.delete(o.prefix);
          } else if (o.kind === 'deliver') deliver();
          else if (o.kind === 'setDesired') {
            deliver();
            // The direct prefixes kept as they are, the RIB's (and every other) dropped: the RIB's changes come again below.
            const keep = [...want].filter(([p]) => p.startsWith('10.0.') && o.keep[Number(p.split('.')[2])]);
            want.clear();
            for (const [p, t] of keep) want.set(p, t);
            reconciler.setDesired(keep.map(([p, t]) => ({ prefix: p, ...t })));
            for (const [p, s] of rib.bestPaths()) program([rib.nextHops.change(p, s)].map((c) => ({ ...c, slot: undefined })));
          } else if (o.kind === 'announce') {
            const route: RibRoute = { attrs: { origin: 0, asPath: [] }, nextHop: PEERS[o.source]!.address, source: PEERS[o.source]! };
            const c = rib.announce(o.prefix, route);
            program(c ? [c] : []);
            reference.announce(o.prefix, { ...route });
          } else if (o.kind === 'withdraw') {
            const c = rib.withdraw(PEERS[o.source]!.id, o.prefix);
            program(c ? [c] : []);
            reference.withdraw(PEERS[o.source]!.id, o.prefix);
          } else if (o.kind === 'drop') {
            program(rib.dropSource(PEERS[o.source]!.id));
            reference.dropSource(PEERS[o.source]!.id);
          } else if (o.kind === 'reachability') {
            const hop = PEERS[o.source]!.address;
            if (!unreachable.delete(hop)) unreachable.add(hop);
            program(rib.revalidate(new Set([hop])));
            reference.revalidate(new Set([hop]));
          } else if (o.kind === 'turn') await new Promise((resolve) => (o.ms ? setTimeout(resolve, o.ms) : setImmediate(resolve)));
          else if (o.kind === 'refuse') kernel.refuse.add(o.prefix);
          else if (o.kind === 'accept') kernel.refuse.clear();
          else {
            if (o.how === 'delete') kernel.kernel.delete(o.prefix);
            else if (o.how === 'other') kernel.kernel.set(o.prefix, { prefix: o.prefix, type: 'unicast', nextHops: ['192.0.2.9'] });
            else kernel.kernel.set(o.prefix, { prefix: o.prefix, type: 'blackhole', nextHops: [] });
            reconciler.suspectDrift();
          }
          // Between passes too (a comparison answers what it knew before until it has read all): the
          // counts are what the reconciler knows the kernel has, and wants.
          if ((reconciler as unknown as { running?: unknown }).running !== undefined) continue;
          const known = reconciler.installed();
          const now = reconciler.stats();
          expect([now.unicast, now.blackhole, now.ecmp, now.desired]).toEqual([
            known.filter((x) => x.type === 'unicast').length,
            known.filter((x) => x.type === 'blackhole').length,
            known.filter((x) => x.nextHops.length > 1).length,
            [...reconciler.wanted()].length,
          ]);
        }
        deliver();
        kernel.refuse.clear();
        reconciler.suspectDrift();
        for (let i = 0; i < 30 && (reconciler.stats().pending > 0 || i < 3); i++) {
          await reconciler.flush();
          await new Promise((resolve) => setTimeout(resolve, 3));
        }
        await reconciler.flush();
        await new Promise((resolve) => setTimeout(resolve, 5)); // a sweep
        for (const [p, s] of reference.bestPaths()) want.set(p, { type: 'unicast', nextHops: s.multipath.map((x) => x.nextHop) });
        const expected = [...want].map(([p, t]) => show(p, t)).sort();
        const ours = [...kernel.kernel.values()].filter((x) => x.prefix !== POD);
        expect(ours.map((x) => show(x.prefix, x)).sort()).toEqual(expected);
        expect(kernel.kernel.get(POD)).toEqual({ prefix: POD, type: 'unicast', nextHops: [], dev: 'lxc9' });
        expect(reconciler.installed().map((x) => show(x.prefix, x))).toEqual(expected);
        expect([...reconciler.wanted()].map(([p, t]) => show(p, t)).sort()).toEqual(expected);
        expect(reconciler.wanted().size).toBe(expected.length);
        const stats = reconciler.stats();
        expect({ installed: stats.installed, unicast: stats.unicast, blackhole: stats.blackhole, ecmp: stats.ecmp, desired: stats.desired }).toEqual({
          installed: ours.length,
          unicast: ours.filter((x) => x.type === 'unicast').length,
          blackhole: ours.filter((x) => x.type === 'blackhole').length,
          ecmp: ours.filter((x) => x.nextHops.length > 1).length,
          desired: expected.length,
        });
        expect([...rib.bestPaths()].map(([p]) => p).sort()).toEqual([...reference.bestPaths()].map(([p]) => p).sort());
        const candidates = Array.from({ length: 6 }, (_, i) => `10.1.${i}.0/24`).filter((p) => PEERS.some((x) => reference.has(x.id, p)));
        for (const p of candidates) for (const x of PEERS) expect(rib.has(x.id, p)).toBe(reference.has(x.id, p));
        expect([...reconciler.ribSlots().values()].map((s) => s.prefix).sort()).toEqual([...new Set([...ours.map((x) => x.prefix), ...candidates])].sort());
        reconciler.stop();
      }),
      { numRuns: 200 },
    );
  });
});
