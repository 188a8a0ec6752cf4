// The reconciler's logic over a fake `ip` that keeps a map, refusing what a test tells it to.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Route } from './desired.js';
import type { BatchFailure } from './ip.js';
import { type RouteShell, RouteProgrammingError, RouteReconciler } from './reconciler.js';

class FakeIp implements RouteShell {
  /** Routes of ours (proto 201). */
  kernel = new Map<string, Route>();
  /** Routes of other protocols (static, bird…): `add` finds them, reads of proto 201 do not. */
  foreign = new Map<string, Route>();
  batches: string[][] = [];
  refuse = new Set<string>();
  reads = 0;
  async readRoutes(): Promise<Route[]> {
    this.reads++;
    return [...this.kernel.values()];
  }
  async batch(lines: string[]): Promise<BatchFailure[]> {
    this.batches.push(lines);
    const failures: BatchFailure[] = [];
    lines.forEach((line, i) => {
      const [, verb, ...rest] = line.split(' ');
      const prefix = rest[0] === 'blackhole' ? rest[1]! : rest[0]!;
      const fail = (error: string) => failures.push({ line: i + 1, command: line, error });
      if (verb === 'flush') {
        // `route flush proto 201 via GW table main`: our routes through GW alone.
        const gateway = rest[rest.indexOf('via') + 1];
        for (const [p, route] of this.kernel) if (route.type === 'unicast' && route.nextHops.length === 1 && route.nextHops[0] === gateway) this.kernel.delete(p);
        return undefined;
      }
      if (this.refuse.has(prefix)) return fail('RTNETLINK answers: Network is unreachable');
      if (verb === 'del') {
        if (!this.kernel.delete(prefix)) fail('RTNETLINK answers: No such process');
        return undefined;
      }
      if (verb === 'add' && (this.kernel.has(prefix) || this.foreign.has(prefix))) return fail('RTNETLINK answers: File exists');
      const hops = [...line.matchAll(/via (\S+)/g)].map((m) => m[1]!);
      this.kernel.set(prefix, rest[0] === 'blackhole' ? { prefix, type: 'blackhole', nextHops: [] } : { prefix, type: 'unicast', nextHops: hops.sort() });
      return undefined;
    });
    return failures;
  }
}

/** Answers a turn of the event loop later: passes run between the steps of a property. */
class SlowIp extends FakeIp {
  override async batch(lines: string[]): Promise<BatchFailure[]> {
    await new Promise((resolve) => setImmediate(resolve));
    return super.batch(lines);
  }
}

const r = (prefix: string, ...nextHops: string[]): Route => ({ prefix, type: 'unicast', nextHops });

type Op = { kind: 'flush' } | { kind: 'upsert'; prefix: string; hop: string } | { kind: 'remove'; prefix: string };

/** One step of a property: a change to the reconciler and to the model of what is wanted, or a pass. */
async function step(rec: RouteReconciler, want: Map<string, string>, o: Op): Promise<void> {
  if (o.kind === 'flush') await rec.flush();
  else if (o.kind === 'upsert') {
    rec.upsert(r(o.prefix, o.hop));
    want.set(o.prefix, o.hop);
  } else {
    rec.remove(o.prefix);
    want.delete(o.prefix);
  }
}

describe('RouteReconciler (fake ip)', () => {
  it('adopts one shared target per gateway and link, not the route read for each prefix', async () => {
    const ip = new FakeIp();
    const viaA = ['192.0.2.2'];
    const add = (route: Route) => ip.kernel.set(route.prefix, route);
    for (let i = 0; i < 4; i++) add({ prefix: `10.1.${i}.0/24`, type: 'unicast', nextHops: [...viaA] });
    for (let i = 0; i < 2; i++) add({ prefix: `10.2.${i}.0/24`, type: 'unicast', nextHops: ['192.0.2.2'], dev: 'eth1' });
    for (let i = 0; i < 2; i++) add({ prefix: `10.3.${i}.0/24`, type: 'blackhole', nextHops: [] });
    for (let i = 0; i < 2; i++) add({ prefix: `10.4.${i}.0/24`, type: 'unicast', nextHops: ['192.0.2.2', '192.0.2.3'] });
    const rec = new RouteReconciler({ shell: ip });
    await rec.start();
    const wanted = rec.wanted();
    const target = (p: string) => wanted.get(p)!;
    expect(target('10.1.0.0/24')).toBe(target('10.1.3.0/24'));
    expect(target('10.1.0.0/24')).toEqual({ type: 'unicast', nextHops: ['192.0.2.2'] });
    expect(target('10.1.0.0/24')).not.toHaveProperty('prefix');
    expect(target('10.2.0.0/24')).toBe(target('10.2.1.0/24'));
    expect(target('10.2.0.0/24')).toEqual({ type: 'unicast', nextHops: ['192.0.2.2'], dev: 'eth1' });
    expect(target('10.3.0.0/24')).toBe(target('10.3.1.0/24'));
    expect(target('10.3.0.0/24').type).toBe('blackhole');
    // ECMP routes are kept as read.
    expect(target('10.4.0.0/24')).not.toBe(target('10.4.1.0/24'));
    expect(rec.installed()).toEqual([...ip.kernel.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : 1)));
    expect(rec.stats()).toMatchObject({ installed: 10, unicast: 8, blackhole: 2, ecmp: 2 });
    // Drift on one prefix of a shared target is repaired for that prefix alone.
    ip.kernel.set('10.1.0.0/24', { prefix: '10.1.0.0/24', type: 'unicast', nextHops: ['192.0.2.9'] });
    rec.suspectDrift();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await rec.flush();
    expect(ip.batches).toEqual([['route replace 10.1.0.0/24 proto 201 via 192.0.2.2']]);
    rec.stop();
  });

  it('adopts the kernel at start and changes nothing until told', async () => {
    const ip = new FakeIp();
    ip.kernel.set('10.9.0.0/24', r('10.9.0.0/24', '192.0.2.2'));
    const rec = new RouteReconciler({ shell: ip });
    await rec.start();
    await rec.flush();
    expect(ip.batches).toEqual([]);
    expect(rec.installed()).toEqual([r('10.9.0.0/24', '192.0.2.2')]);
  });

  it('counts pending records, not places in its queue: a change undone before its pass and released by the RIB is not pending', async () => {
    const ip = new FakeIp();
    const rec = new RouteReconciler({ shell: ip, debounceMs: 60_000 });
    await rec.start();
    const slots = rec.ribSlots();
    const slot = slots.add('10.9.0.0/24');
    rec.upsertFor('10.9.0.0/24', r('10.9.0.0/24', '192.0.2.1'), slot);
    rec.upsertFor('10.9.1.0/24', r('10.9.1.0/24', '192.0.2.1'));
    expect(rec.stats().pending).toBe(2);
    // Withdrawn before any pass, and the RIB lets the record go: nothing is left to do for it.
    rec.remove('10.9.0.0/24', slot);
    slots.release(slot);
    expect(rec.stats().pending).toBe(1);
    await rec.flush();
    expect(rec.stats()).toMatchObject({ pending: 0, installed: 1 });
    expect([...ip.kernel.keys()]).toEqual(['10.9.1.0/24']);
    rec.stop();
  });

  it('counts no record a sweep dropped as pending: a change undone before its pass leaves an idle record queued, and the sweep takes it', async () => {
    const ip = new FakeIp();
    const rec = new RouteReconciler({ shell: ip, debounceMs: 60_000, sweepMs: 60_000 });
    const sweep = () => (rec as unknown as { sweep(): Promise<void> }).sweep();
    await rec.start();
    // A route installed and withdrawn: its record is released, so a sweep is due.
    rec.upsertFor('10.9.0.0/24', r('10.9.0.0/24', '192.0.2.1'));
    await rec.flush();
    rec.remove('10.9.0.0/24');
    await rec.flush();
    // Announced and withdrawn before any pass (no RIB slot releases it): idle, and queued.
    rec.upsertFor('10.9.1.0/24', r('10.9.1.0/24', '192.0.2.1'));
    rec.remove('10.9.1.0/24');
    expect(rec.stats().pending).toBe(1);
    await sweep();
    expect(rec.stats().pending).toBe(0);
    await rec.flush();
    expect(rec.stats()).toMatchObject({ pending: 0, installed: 0 });
    expect(ip.kernel.size).toBe(0);
    rec.stop();
  });

  it('flush() sends every change, also behind more places passed over than a chunk may visit (prefixes that came and went before a pass)', async () => {
    const ip = new FakeIp();
    // chunkLines 2: a chunk looks at 16 places at most.
    const rec = new RouteReconciler({ shell: ip, debounceMs: 60_000, chunkLines: 2 });
    await rec.start();
    const slots = rec.ribSlots();
    for (let i = 0; i < 40; i++) {
      const prefix = `10.8.${i}.0/24`;
      const slot = slots.add(prefix);
      rec.upsertFor(prefix, r(prefix, '192.0.2.1'), slot);
      rec.remove(prefix, slot);
      slots.release(slot);
    }
    rec.upsertFor('10.9.0.0/24', r('10.9.0.0/24', '192.0.2.1'));
    expect(rec.stats().pending).toBe(1);
    await rec.flush();
    expect([...ip.kernel.keys()]).toEqual(['10.9.0.0/24']);
    expect(rec.stats().pending).toBe(0);
    rec.stop();
  });

  it('coalesces a burst of changes into one batch', async () => {
    const ip = new FakeIp();
    const rec = new RouteReconciler({ shell: ip, debounceMs: 5 });
    await rec.start();
    for (let i = 0; i < 50; i++) rec.upsert(r(`10.1.${i}.0/24`, '192.0.2.2'));
    rec.remove('10.1.7.0/24');
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(ip.batches).toHaveLength(1);
    expect(ip.batches[0]).toHaveLength(49);
    expect(rec.stats()).toMatchObject({ installed: 49, unicast: 49, batches: 1, changesApplied: 49, changesFailed: 0 });
  });

  it('reports refused lines, keeps the rest, and retries until the kernel takes them', async () => {
    const ip = new FakeIp();
    ip.refuse.add('10.2.0.0/24');
    const errors: Error[] = [];
    const rec = new RouteReconciler({ shell: ip, retryMs: 10, onError: (e) => errors.push(e) });
    await rec.start();
    rec.setDesired([r('10.1.0.0/24', '192.0.2.2'), r('10.2.0.0/24', '198.51.100.9')]);
    const result = await rec.flush();
    expect(result.applied).toBe(1);
    expect(result.failures[0]?.command).toBe('route add 10.2.0.0/24 proto 201 via 198.51.100.9');
    expect(errors[0]).toBeInstanceOf(RouteProgrammingError);
    expect(rec.installed().map((x) => x.prefix)).toEqual(['10.1.0.0/24']);
    ip.refuse.clear();
    for (let i = 0; i < 50 && rec.installed().length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(rec.installed().map((x) => x.prefix)).toEqual(['10.1.0.0/24', '10.2.0.0/24']);
    rec.stop();
  });

  it('keeps a withdrawn prefix\'s record idle until the sweep, and sweeps at once when prefixes that come and go pile up', async () => {
    const ip = new FakeIp();
    const rec = new RouteReconciler({ shell: ip, debounceMs: 0, sweepMs: 60_000, sweepSlack: 100 });
    const table = (rec as unknown as { table: Map<string, unknown> }).table;
    await rec.start();
    const p = (i: number) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32`;
    const turn = () => new Promise((resolve) => setTimeout(resolve, 1));
    // A table withdrawn and back: the same records, nothing swept, nothing grown.
    for (let i = 0; i < 300; i++) rec.upsert(r(p(i), '192.0.2.2'));
    await rec.flush();
    const first = table.get(p(7));
    for (let i = 0; i < 300; i++) rec.remove(p(i));
    await rec.flush();
    await turn();
    expect(ip.kernel.size).toBe(0);
    expect(table.size).toBe(300);
    for (let i = 0; i < 300; i++) rec.upsert(r(p(i), '192.0.2.2'));
    await rec.flush();
    await turn();
    expect(table.get(p(7))).toBe(first);
    expect(ip.kernel.size).toBe(300);
    // A peer cycling through new prefixes, each announced and withdrawn: idle records do not pile up
    // for the minute of sweepMs; the table stays within twice its swept size and the slack.
    for (let i = 1000; i < 6000; i++) {
      rec.upsert(r(p(i), '192.0.2.2'));
      if (i % 50 === 0) {
        await rec.flush();
        for (let j = i - 50; j < i; j++) rec.remove(p(j));
        await rec.flush();
        await turn();
        expect(table.size).toBeLessThanOrEqual(2 * 350 + 100 + 100);
      }
    }
    expect(ip.kernel.size).toBeGreaterThanOrEqual(300);
    rec.stop();
  });

  it('touches the kernel no more once stopped: a batch refused or failing after stop() schedules no retry, later changes no pass', async () => {
    const ip = new FakeIp();
    ip.refuse.add('10.2.0.0/24');
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const batch = ip.batch.bind(ip);
    ip.batch = async (lines) => {
      await held;
      return batch(lines);
    };
    const rec = new RouteReconciler({ shell: ip, retryMs: 1, debounceMs: 0, onError: () => undefined });
    await rec.start();
    rec.upsert(r('10.2.0.0/24', '192.0.2.2'));
    await new Promise((resolve) => setTimeout(resolve, 5)); // the pass is at the kernel, held
    expect(ip.batches).toHaveLength(0);
    rec.stop();
    release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const calls = { batches: ip.batches.length, reads: ip.reads };
    rec.upsert(r('10.3.0.0/24', '192.0.2.2'));
    rec.remove('10.2.0.0/24');
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The held batch went through (it was sent before stop()); nothing after it: no retry, no comparison, no pass.
    expect(calls).toEqual({ batches: 1, reads: 1 });
    expect({ batches: ip.batches.length, reads: ip.reads }).toEqual(calls);
  });

  it('touches the kernel no more once stopped, also from a pass running when stop() is called: its chunks not yet sent stay unsent', async () => {
    const ip = new FakeIp();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const batch = ip.batch.bind(ip);
    let calls = 0;
    ip.batch = async (lines) => {
      calls++;
      await held;
      return batch(lines);
    };
    const rec = new RouteReconciler({ shell: ip, chunkLines: 1, debounceMs: 0, onError: () => undefined });
    await rec.start();
    for (let i = 0; i < 4; i++) rec.upsert(r(`10.${i}.0.0/24`, '192.0.2.2'));
    await new Promise((resolve) => setTimeout(resolve, 5)); // two chunks at the kernel (pipelined), held
    expect(calls).toBe(2);
    rec.stop();
    rec.upsert(r('10.9.0.0/24', '192.0.2.2'));
    release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    // The two chunks sent before stop() went through; nothing after them.
    expect(calls).toBe(2);
    expect([...ip.kernel.keys()].sort()).toEqual(['10.0.0.0/24', '10.1.0.0/24']);
  });

  it('arms no periodic comparison when stopped while start() reads the kernel', async () => {
    const ip = new FakeIp();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const read = ip.readRoutes.bind(ip);
    ip.readRoutes = async () => {
      await held;
      return read();
    };
    const rec = new RouteReconciler({ shell: ip, resyncMs: 1 });
    const started = rec.start();
    rec.stop();
    release();
    await started;
    // An interval armed after stop() is never cleared: it holds the reconciler and its table for good.
    expect((rec as unknown as { resyncTimer?: unknown }).resyncTimer).toBeUndefined();
  });

  it('leaves the plugin pod device routes alone but manages device routes it was asked for', async () => {
    const ip = new FakeIp();
    ip.kernel.set('10.244.1.7/32', { prefix: '10.244.1.7/32', type: 'unicast', nextHops: [], dev: 'lxc1' });
    const rec = new RouteReconciler({ shell: ip });
    await rec.start();
    rec.setDesired([]);
    await rec.flush();
    expect(ip.kernel.has('10.244.1.7/32')).toBe(true);
    expect(() => rec.setDesired([r('10.1.0.1/24', '192.0.2.2')])).toThrow(/host bits/);
  });

  it('owns a device route it was asked for only while it wants it: asked for and taken back before a pass, the plugin\'s pod route for that prefix is left alone', async () => {
    const ip = new FakeIp();
    const rec = new RouteReconciler({ shell: ip, debounceMs: 0, driftSettleMs: 0, driftIntervalMs: 0 });
    await rec.start();
    const pod = { prefix: '10.244.1.9/32', type: 'unicast' as const, nextHops: [], dev: 'lxc9' };
    // Refused, then not wanted any more; and asked for and taken back within one window.
    ip.refuse.add(pod.prefix);
    rec.upsert(pod);
    await rec.flush();
    ip.refuse.clear();
    rec.remove(pod.prefix);
    rec.upsert({ ...pod, prefix: '10.244.1.10/32', dev: 'lxc10' });
    rec.remove('10.244.1.10/32');
    await rec.flush();
    // The CNI plugin then adds its pod routes for those prefixes (proto 201, a link, no gateway).
    ip.kernel.set(pod.prefix, pod);
    ip.kernel.set('10.244.1.10/32', { ...pod, prefix: '10.244.1.10/32', dev: 'lxc10' });
    rec.suspectDrift();
    await new Promise((resolve) => setTimeout(resolve, 30));
    await rec.flush();
    expect([...ip.kernel.keys()].sort()).toEqual(['10.244.1.10/32', '10.244.1.9/32']);
    rec.stop();
  });

  it('refuses upsert before start so nothing is removed by accident', () => {
    const rec = new RouteReconciler({ shell: new FakeIp() });
    expect(() => rec.upsert(r('10.1.0.0/24', '192.0.2.2'))).toThrow(/start\(\)/);
  });

  it('programs only what changed: one change is one line, and the kernel is not read again', async () => {
    const ip = new FakeIp();
    for (let i = 0; i < 1000; i++) ip.kernel.set(`10.5.${i >> 8}.${i & 255}/32`, r(`10.5.${i >> 8}.${i & 255}/32`, '192.0.2.2'));
    const rec = new RouteReconciler({ shell: ip });
    await rec.start();
    expect(ip.reads).toBe(1);
    rec.upsert(r('10.1.0.0/24', '192.0.2.2'));
    await rec.flush();
    rec.remove('10.5.0.7/32');
    await rec.flush();
    expect(ip.batches).toEqual([['route add 10.1.0.0/24 proto 201 via 192.0.2.2'], ['route del 10.5.0.7/32 proto 201']]);
    expect(ip.reads).toBe(1);
    rec.stop();
  });

  it('coalesces: a prefix added and removed within one window costs nothing; a replaced one costs one line', async () => {
    const ip = new FakeIp();
    const rec = new RouteReconciler({ shell: ip });
    await rec.start();
    rec.upsert(r('10.1.0.0/24', '192.0.2.2'));
    rec.remove('10.1.0.0/24');
    rec.upsert(r('10.2.0.0/24', '192.0.2.2'));
    rec.upsert(r('10.2.0.0/24', '192.0.2.3'));
    await rec.flush();
    expect(ip.batches).toEqual([['route add 10.2.0.0/24 proto 201 via 192.0.2.3']]);
    rec.stop();
  });

  it('splits a large burst into chunks of at most chunkLines lines (each its own ip process)', async () => {
    const ip = new FakeIp();
    const rec = new RouteReconciler({ shell: ip, chunkLines: 1000 });
    await rec.start();
    for (let i = 0; i < 10_000; i++) rec.upsert(r(`10.6.${i >> 8}.${i & 255}/32`, '192.0.2.2'));
    await rec.flush();
    expect(ip.batches).toHaveLength(10);
    expect(Math.max(...ip.batches.map((b) => b.length))).toBe(1000);
    expect(ip.kernel.size).toBe(10_000);
    rec.stop();
  });

  it('removes every route through one gateway with one flush line, and only when all of them go', async () => {
    const ip = new FakeIp();
    for (let i = 0; i < 5000; i++) ip.kernel.set(`10.7.${i >> 8}.${i & 255}/32`, r(`10.7.${i >> 8}.${i & 255}/32`, '192.0.2.2'));
    ip.kernel.set('10.8.0.0/24', r('10.8.0.0/24', '192.0.2.3'));
    ip.kernel.set('10.8.1.0/24', r('10.8.1.0/24', '192.0.2.2', '192.0.2.3'));
    const rec = new RouteReconciler({ shell: ip, chunkLines: 10_000 });
    await rec.start();
    // All but one: line by line (a flush would take the one still wanted).
    for (let i = 1; i < 5000; i++) rec.remove(`10.7.${i >> 8}.${i & 255}/32`);
    await rec.flush();
    expect(ip.batches).toHaveLength(1);
    expect(ip.batches[0]).toHaveLength(4999);
    expect(ip.kernel.has('10.7.0.0/32')).toBe(true);
    // Back, then all of them: one flush; the other gateway's and the ECMP route stay.
    for (let i = 1; i < 5000; i++) rec.upsert(r(`10.7.${i >> 8}.${i & 255}/32`, '192.0.2.2'));
    await rec.flush();
    for (let i = 0; i < 5000; i++) rec.remove(`10.7.${i >> 8}.${i & 255}/32`);
    await rec.flush();
    expect(ip.batches.at(-1)).toEqual(['route flush proto 201 via 192.0.2.2 table main']);
    expect([...ip.kernel.keys()].sort()).toEqual(['10.8.0.0/24', '10.8.1.0/24']);
    expect(rec.installed().map((x) => x.prefix)).toEqual(['10.8.0.0/24', '10.8.1.0/24']);
    expect(rec.stats()).toMatchObject({ pending: 0, installed: 2 });
    rec.stop();
  });

  it('ends equal to the last desired state whatever the order of changes and passes', async () => {
    const prefix = fc.integer({ min: 0, max: 7 }).map((i) => `10.${i}.0.0/24`);
    const op = fc.oneof(
      fc.record({ kind: fc.constant('upsert' as const), prefix, hop: fc.constantFrom('192.0.2.2', '192.0.2.3') }),
      fc.record({ kind: fc.constant('remove' as const), prefix }),
      fc.record({ kind: fc.constant('flush' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const ip = new FakeIp();
        // flushMin 2: removals of all routes through a gateway go as flushes here too.
        const rec = new RouteReconciler({ shell: ip, chunkLines: 3, flushMin: 2 });
        await rec.start();
        const want = new Map<string, string>();
        for (const o of ops) await step(rec, want, o);
        await rec.flush();
        rec.stop();
        const got = [...ip.kernel.values()].map((x) => `${x.prefix} ${x.nextHops[0]}`).sort();
        expect(got).toEqual([...want].map(([p, h]) => `${p} ${h}`).sort());
        expect(rec.installed().map((x) => `${x.prefix} ${x.nextHops[0]}`)).toEqual(got);
      }),
      { numRuns: 200 },
    );
  });

  it('answers wanted() with what was asked for and installedRoute() with what the kernel has, also between passes', async () => {
    // Both are read from the one table whose entries are a prefix's route or its pending change.
    const universe = [0, 1, 2, 3].map((i) => `10.${i}.0.0/24`);
    const op = fc.oneof(
      fc.record({ kind: fc.constant('upsert' as const), prefix: fc.constantFrom(...universe), hop: fc.constantFrom('192.0.2.2', '192.0.2.3') }),
      fc.record({ kind: fc.constant('remove' as const), prefix: fc.constantFrom(...universe, '10.7.0.0/24') }), // one never wanted too
      fc.record({ kind: fc.constant('flush' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
        const ip = new FakeIp();
        ip.kernel.set('10.0.0.0/24', r('10.0.0.0/24', '192.0.2.9')); // adopted
        const rec = new RouteReconciler({ shell: ip, chunkLines: 2 });
        await rec.start();
        const want = new Map<string, string>([['10.0.0.0/24', '192.0.2.9']]);
        for (const o of ops) {
          await step(rec, want, o);
          const wanted = rec.wanted();
          expect(wanted.size).toBe(want.size);
          expect([...wanted].map(([p, x]) => `${p} ${x.nextHops[0]}`).sort()).toEqual([...want].map(([p, h]) => `${p} ${h}`).sort());
          for (const p of universe) {
            expect(wanted.get(p)?.nextHops[0]).toBe(want.get(p));
            expect(wanted.has(p)).toBe(want.has(p));
            expect(rec.installedRoute(p)?.nextHops).toEqual(ip.kernel.get(p)?.nextHops);
          }
        }
        await rec.flush();
        rec.stop();
        expect(rec.stats()).toMatchObject({ desired: want.size, pending: 0, installed: want.size });
      }),
      { numRuns: 200 },
    );
  });

  it('keeps one target for many prefixes (an UPDATE\'s), writes each prefix with it, and answers routes with their own prefix', async () => {
    const ip = new FakeIp();
    const rec = new RouteReconciler({ shell: ip });
    await rec.start();
    const shared = { type: 'unicast' as const, nextHops: ['192.0.2.2'] };
    const prefixes = ['10.0.0.0/27', '10.0.0.32/27', '10.0.0.64/27'];
    for (const p of prefixes) rec.upsertFor(p, shared);
    // Not canonical (unsorted, upper case): checked and made canonical once, the result shared the same way.
    const messy = { type: 'unicast' as const, nextHops: ['FD00::3', 'fd00::2'] };
    rec.upsertFor('fd00:1::/64', messy);
    rec.upsertFor('FD00:2::/64', messy);
    await rec.flush();
    expect([...ip.kernel.keys()].sort()).toEqual([...prefixes, 'fd00:1::/64', 'fd00:2::/64'].sort());
    expect(ip.kernel.get('fd00:2::/64')?.nextHops).toEqual(['fd00::2', 'fd00::3']);
    for (const p of prefixes) expect(rec.wanted().get(p)).toBe(shared);
    expect(rec.wanted().get('fd00:1::/64')).toBe(rec.wanted().get('fd00:2::/64'));
    expect(rec.installedRoute('10.0.0.32/27')).toEqual({ prefix: '10.0.0.32/27', type: 'unicast', nextHops: ['192.0.2.2'] });
    expect(rec.installed().map((x) => x.prefix)).toEqual(['10.0.0.0/27', '10.0.0.32/27', '10.0.0.64/27', 'fd00:1::/64', 'fd00:2::/64']);
    // The same target for a prefix of the other family is refused, though it was taken a moment ago.
    expect(() => rec.upsertFor('fd00:3::/64', shared)).toThrow(/other family/);
    expect(() => rec.upsertFor('10.0.1.0/27', messy)).toThrow(/other family/);
    rec.remove('10.0.0.32/27');
    await rec.flush();
    expect(ip.kernel.has('10.0.0.32/27')).toBe(false);
    expect(rec.stats()).toMatchObject({ installed: 4, desired: 4, pending: 0 });
    rec.stop();
  });

  it('counts what the kernel has as it changes (stats() walks no table), through refusals and every route type', async () => {
    const prefix = fc.integer({ min: 0, max: 5 }).map((i) => `10.${i}.0.0/24`);
    const route = fc.oneof(
      fc.constantFrom<string[]>(['192.0.2.2'], ['192.0.2.2', '192.0.2.3']).map((hops) => (p: string): Route => r(p, ...hops)),
      fc.constant((p: string): Route => ({ prefix: p, type: 'blackhole', nextHops: [] })),
    );
    const op = fc.oneof(
      fc.record({ kind: fc.constant('upsert' as const), prefix, route }),
      fc.record({ kind: fc.constant('remove' as const), prefix }),
      fc.record({ kind: fc.constant('flush' as const) }),
      fc.record({ kind: fc.constant('refuse' as const), prefix }),
    );
    const fromInstalled = (rec: RouteReconciler) => {
      const routes = rec.installed();
      return { unicast: routes.filter((x) => x.type === 'unicast').length, blackhole: routes.filter((x) => x.type === 'blackhole').length, ecmp: routes.filter((x) => x.nextHops.length > 1).length, installed: routes.length };
    };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
        const ip = new FakeIp();
        ip.kernel.set('10.9.0.0/24', r('10.9.0.0/24', '192.0.2.2', '192.0.2.4')); // adopted
        const rec = new RouteReconciler({ shell: ip, chunkLines: 2, retryMs: 1 });
        await rec.start();
        for (const o of ops) {
          if (o.kind === 'upsert') rec.upsert(o.route(o.prefix));
          else if (o.kind === 'remove') rec.remove(o.prefix);
          else if (o.kind === 'refuse') ip.refuse.add(o.prefix);
          else await rec.flush();
          expect(rec.stats()).toMatchObject(fromInstalled(rec));
        }
        await rec.flush();
        rec.stop();
        expect(rec.stats()).toMatchObject(fromInstalled(rec));
      }),
      { numRuns: 200 },
    );
  });

  it('keeps one record per prefix straight: changes that arrive while chunks are at the kernel, refusals and flushes end equal to what is wanted', async () => {
    // The kernel answers a turn of the event loop later, so passes run while changes keep coming;
    // a record released too early, or left in the queue twice and sent twice, would show as a
    // route missing, left behind or installed for the wrong prefix.
    const prefix = fc.integer({ min: 0, max: 9 }).map((i) => `10.${i}.0.0/24`);
    const op = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('upsert' as const), prefix, hop: fc.constantFrom('192.0.2.2', '192.0.2.3') }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('remove' as const), prefix }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('turn' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('refuse' as const), prefix }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('accept' as const) }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 80 }), async (ops) => {
        const ip = new SlowIp();
        const rec = new RouteReconciler({ shell: ip, chunkLines: 2, flushMin: 2, debounceMs: 0, retryMs: 1 });
        await rec.start();
        const want = new Map<string, string>();
        for (const o of ops) {
          if (o.kind === 'turn') await new Promise((resolve) => setImmediate(resolve));
          else if (o.kind === 'refuse') ip.refuse.add(o.prefix);
          else if (o.kind === 'accept') ip.refuse.clear();
          else await step(rec, want, o);
        }
        ip.refuse.clear();
        // Refused lines come back on the retry timer (1 ms, doubling): a few passes see them through.
        for (let i = 0; i < 20 && rec.stats().pending > 0; i++) {
          await rec.flush();
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        await rec.flush();
        rec.stop();
        const got = [...ip.kernel.values()].map((x) => `${x.prefix} ${x.nextHops[0]}`).sort();
        expect(got).toEqual([...want].map(([p, h]) => `${p} ${h}`).sort());
        expect(rec.installed().map((x) => `${x.prefix} ${x.nextHops[0]}`).sort()).toEqual(got);
        expect([...rec.wanted()].map(([p, x]) => `${p} ${x.nextHops[0]}`).sort()).toEqual(got);
      }),
      { numRuns: 300 },
    );
  });

  it('answers stats().pending with the records queued and the refused ones not queued, through every way in and out of the queue', async () => {
    // Passes run between steps (a kernel that answers a turn later, debounce 0), so every step lands
    // anywhere in a pass: chunks out, flushes, refusals and their retries (and the comparison each
    // retry makes), the RIB taking and letting go of records (ribSlots), sweeps, drift comparisons.
    type Rec = { queued: boolean; candidates: unknown; prefix: string };
    const prefix = fc.integer({ min: 0, max: 3 }).map((i) => `10.${i}.0.0/24`);
    const op = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('upsert' as const), prefix, hop: fc.constantFrom('192.0.2.2', '192.0.2.3'), slot: fc.boolean() }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('remove' as const), prefix, slot: fc.boolean() }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('hold' as const), prefix }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('let go' as const), prefix }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('turn' as const) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('refuse' as const), prefix }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('accept' as const) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('sweep' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('drift' as const), prefix }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 20, maxLength: 60 }), async (ops) => {
        const ip = new SlowIp();
        const rec = new RouteReconciler({ shell: ip, chunkLines: 2, flushMin: 2, debounceMs: 0, retryMs: 1, sweepMs: 60_000, driftSettleMs: 0, driftIntervalMs: 0 });
        const inside = rec as unknown as { table: { values(): Iterable<Rec> }; refused: Set<Rec>; sweep(): Promise<void> };
        const slots = rec.ribSlots();
        // What stats() must say: records queued, and refused ones waiting for their retry (not queued).
        const truth = (): number => {
          let n = 0;
          for (const x of inside.table.values()) if (x.queued) n++;
          for (const x of inside.refused) if (!x.queued) n++;
          return n;
        };
        await rec.start();
        for (const o of ops) {
          if (o.kind === 'upsert') rec.upsertFor(o.prefix, r(o.prefix, o.hop), o.slot ? slots.get(o.prefix) : undefined);
          else if (o.kind === 'remove') rec.remove(o.prefix, o.slot ? slots.get(o.prefix) : undefined);
          else if (o.kind === 'hold') (slots.get(o.prefix) ?? slots.add(o.prefix)).candidates = { by: 'the RIB' };
          else if (o.kind === 'let go') {
            const slot = slots.get(o.prefix);
            if (slot) {
              slot.candidates = undefined;
              slots.release(slot);
            }
          } else if (o.kind === 'turn') await new Promise((resolve) => setImmediate(resolve));
          else if (o.kind === 'flush') await rec.flush();
          else if (o.kind === 'refuse') ip.refuse.add(o.prefix);
          else if (o.kind === 'accept') ip.refuse.clear();
          else if (o.kind === 'sweep') await inside.sweep();
          else {
            ip.kernel.delete(o.prefix);
            rec.suspectDrift();
          }
          expect(rec.stats().pending).toBe(truth());
        }
        ip.refuse.clear();
        for (let i = 0; i < 20 && rec.stats().pending > 0; i++) {
          await rec.flush();
          await new Promise((resolve) => setTimeout(resolve, 5));
          expect(rec.stats().pending).toBe(truth());
        }
        await rec.flush();
        expect(inside.refused.size).toBe(0);
        // Nothing refused, a flush done: nothing pending, and none of it left behind in the queue either.
        expect(rec.stats().pending).toBe(0);
        expect(truth()).toBe(0);
        await inside.sweep();
        expect(rec.stats().pending).toBe(0);
        rec.stop();
      }),
      { numRuns: 300 },
    );
  });

  it('compares with the kernel a slice at a time while changes keep coming: drift repaired, the changes made meanwhile kept', async () => {
    // As the netlink shell reads our routes (the addon's dump, decoded in slices with the event
    // loop served in between): a change may land between two slices of one comparison.
    class SlicedIp extends FakeIp {
      async *readRouteSlices(): AsyncIterable<Route[]> {
        this.reads++;
        const routes = [...this.kernel.values()];
        for (let i = 0; i < routes.length; i += 2) {
          await new Promise((resolve) => setImmediate(resolve));
          yield routes.slice(i, i + 2);
        }
      }
    }
    const prefix = fc.integer({ min: 0, max: 9 }).map((i) => `10.${i}.0.0/24`);
    const op = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('upsert' as const), prefix, hop: fc.constantFrom('192.0.2.2', '192.0.2.3') }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), prefix }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('turn' as const) }) },
      // Someone else deletes or changes a route of ours, or adds one with our protocol; a comparison is asked for.
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('drift' as const), prefix, hop: fc.constantFrom('192.0.2.2', '192.0.2.9', 'none') }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const ip = new SlicedIp();
        const rec = new RouteReconciler({ shell: ip, chunkLines: 2, debounceMs: 0, driftSettleMs: 0, driftIntervalMs: 0 });
        await rec.start();
        const want = new Map<string, string>();
        for (const o of ops) {
          if (o.kind === 'turn') await new Promise((resolve) => setImmediate(resolve));
          else if (o.kind === 'drift') {
            if (o.hop === 'none') ip.kernel.delete(o.prefix);
            else ip.kernel.set(o.prefix, r(o.prefix, o.hop));
            rec.suspectDrift();
          } else await step(rec, want, o);
        }
        // The last drift's comparison runs after its timer: let it, then see everything through.
        await new Promise((resolve) => setTimeout(resolve, 5));
        for (let i = 0; i < 5; i++) await rec.flush();
        rec.stop();
        const got = [...ip.kernel.values()].map((x) => `${x.prefix} ${x.nextHops[0]}`).sort();
        expect(got).toEqual([...want].map(([p, h]) => `${p} ${h}`).sort());
        expect(rec.installed().map((x) => `${x.prefix} ${x.nextHops[0]}`).sort()).toEqual(got);
        expect(rec.stats()).toMatchObject({ installed: want.size, desired: want.size, pending: 0 });
      }),
      { numRuns: 300 },
    );
  });

  it('answers stats() with what it knew while a comparison reads the kernel a slice at a time, then with what it found', async () => {
    const ip = new FakeIp();
    for (let i = 0; i < 6; i++) ip.kernel.set(`10.${i}.0.0/24`, r(`10.${i}.0.0/24`, '192.0.2.2'));
    ip.kernel.set('10.9.0.0/24', { prefix: '10.9.0.0/24', type: 'blackhole', nextHops: [] });
    const seen: number[] = [];
    let reconciler: RouteReconciler | undefined;
    (ip as RouteShell).readRouteSlices = async function* () {
      const routes = [...ip.kernel.values()];
      for (let i = 0; i < routes.length; i += 2) {
        if (reconciler) seen.push(reconciler.stats().installed);
        yield routes.slice(i, i + 2);
      }
    };
    reconciler = new RouteReconciler({ shell: ip, driftSettleMs: 0, driftIntervalMs: 0 });
    await reconciler.start();
    expect(reconciler.stats()).toMatchObject({ installed: 7, unicast: 6, blackhole: 1 });
    seen.length = 0;
    ip.kernel.delete('10.0.0.0/24'); // behind our back: the comparison finds 6 and puts the 7th back
    const checked = new Promise<void>((resolve) => {
      (reconciler as unknown as { options: { onDriftChecked: () => void } }).options.onDriftChecked = resolve;
    });
    reconciler.suspectDrift();
    await checked;
    expect(seen).toEqual([7, 7, 7]);
    expect(reconciler.stats()).toMatchObject({ installed: 7, unicast: 6, blackhole: 1, pending: 0 });
    reconciler.stop();
  });

  it('counts two routes of ours for one prefix (another metric) once, the last one read', async () => {
    const ip = new FakeIp();
    ip.readRoutes = async () => [r('10.1.0.0/24', '192.0.2.2'), r('10.1.0.0/24', '192.0.2.3'), r('10.2.0.0/24', '192.0.2.2')];
    const rec = new RouteReconciler({ shell: ip });
    await rec.start();
    expect(rec.stats()).toMatchObject({ installed: 2, unicast: 2, desired: 2 });
    expect(rec.wanted().get('10.1.0.0/24')?.nextHops).toEqual(['192.0.2.3']);
    rec.stop();
  });

  it('repairs drift on the periodic comparison: a route of ours deleted or changed behind our back, one added', async () => {
    const ip = new FakeIp();
    const rec = new RouteReconciler({ shell: ip, resyncMs: 20 });
    await rec.start();
    rec.upsert(r('10.1.0.0/24', '192.0.2.2'));
    rec.upsert(r('10.2.0.0/24', '192.0.2.2'));
    await rec.flush();
    ip.kernel.delete('10.1.0.0/24'); // someone's `ip route del`
    ip.kernel.set('10.2.0.0/24', r('10.2.0.0/24', '192.0.2.9'));
    ip.kernel.set('10.3.0.0/24', r('10.3.0.0/24', '192.0.2.2')); // ours by protocol, not wanted
    for (let i = 0; i < 100 && !(ip.kernel.has('10.1.0.0/24') && ip.kernel.size === 2 && ip.kernel.get('10.2.0.0/24')?.nextHops[0] === '192.0.2.2'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    rec.stop();
    expect([...ip.kernel.values()].sort((a, b) => a.prefix.localeCompare(b.prefix))).toEqual([r('10.1.0.0/24', '192.0.2.2'), r('10.2.0.0/24', '192.0.2.2')]);
    expect(rec.stats().resyncs).toBeGreaterThan(1);
  });

  it('repairs drift when told of it: one comparison for a burst of suspicions, at most one per interval, the repair reported', async () => {
    const ip = new FakeIp();
    const checks: { differed: number; ms: number }[] = [];
    const rec = new RouteReconciler({ shell: ip, driftSettleMs: 20, driftIntervalMs: 300, onDriftChecked: (c) => checks.push(c) });
    await rec.start();
    for (let i = 1; i <= 3; i++) rec.upsert(r(`10.${i}.0.0/24`, '192.0.2.2'));
    await rec.flush();
    const resyncs = rec.stats().resyncs;
    const waitFor = async (done: () => boolean) => {
      for (let i = 0; i < 200 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    };
    ip.kernel.delete('10.1.0.0/24'); // someone's `ip route del`, seen by the drift watcher
    ip.kernel.delete('10.2.0.0/24');
    for (let i = 0; i < 10; i++) rec.suspectDrift(); // a burst: one comparison
    await waitFor(() => checks.length === 1);
    expect({ resyncs: rec.stats().resyncs - resyncs, checks: checks.map((c) => c.differed), kernel: ip.kernel.size }).toEqual({ resyncs: 1, checks: [2], kernel: 3 });
    // Again right away (a script in a loop): not before the interval is over.
    const asked = performance.now();
    ip.kernel.delete('10.3.0.0/24');
    rec.suspectDrift();
    await waitFor(() => checks.length === 2);
    expect(performance.now() - asked).toBeGreaterThanOrEqual(250);
    expect({ resyncs: rec.stats().resyncs - resyncs, checks: checks.map((c) => c.differed), kernel: ip.kernel.size }).toEqual({ resyncs: 2, checks: [2, 1], kernel: 3 });
    rec.stop();
    rec.suspectDrift(); // stopped: nothing more
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(rec.stats().resyncs - resyncs).toBe(2);
  });

  it("never takes over another protocol's route: add is refused, retried, and the other route stays", async () => {
    const ip = new FakeIp();
    ip.foreign.set('10.8.0.0/24', r('10.8.0.0/24', '192.0.2.7'));
    const errors: Error[] = [];
    const rec = new RouteReconciler({ shell: ip, retryMs: 5, onError: (e) => errors.push(e) });
    await rec.start();
    rec.upsert(r('10.8.0.0/24', '192.0.2.2'));
    await rec.flush();
    await new Promise((resolve) => setTimeout(resolve, 40)); // a few retries
    expect(ip.batches.flat().every((line) => line.startsWith('route add 10.8.0.0/24'))).toBe(true);
    expect(ip.batches.length).toBeGreaterThan(1);
    expect(errors[0]?.message).toContain('File exists');
    rec.remove('10.8.0.0/24');
    await rec.flush();
    expect(ip.foreign.get('10.8.0.0/24')).toEqual(r('10.8.0.0/24', '192.0.2.7'));
    expect(ip.batches.flat().some((line) => line.startsWith('route del'))).toBe(false);
    rec.stop();
  });

  it('waits for every chunk it sent when ip fails: the next chunk failing too is handled, not an unhandled rejection (the agent would exit)', async () => {
    class DyingIp extends FakeIp {
      dead = false;
      override async batch(lines: string[]): Promise<BatchFailure[]> {
        await new Promise((resolve) => setTimeout(resolve, 5)); // the second chunk is sent before the first fails
        if (this.dead) throw new Error('ip: killed');
        return super.batch(lines);
      }
    }
    const ip = new DyingIp();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const rec = new RouteReconciler({ shell: ip, chunkLines: 1, debounceMs: 0, retryMs: 10 });
    try {
      await rec.start();
      ip.dead = true;
      rec.upsert(r('10.0.0.0/24', '192.0.2.1'));
      rec.upsert(r('10.0.1.0/24', '192.0.2.1'));
      await expect(rec.flush()).rejects.toThrow('ip: killed');
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
      // ip works again: the retry installs both.
      ip.dead = false;
      for (let i = 0; i < 50 && ip.kernel.size < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect([...ip.kernel.keys()].sort()).toEqual(['10.0.0.0/24', '10.0.1.0/24']);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      rec.stop();
    }
  });
});

describe('RouteReconciler: a comparison with the kernel and what depends on it', () => {
  /** Reads our routes as `ip -json` and the addon's dump give them: a route through a gateway names its link. */
  class LinkedIp extends FakeIp {
    override async readRoutes(): Promise<Route[]> {
      this.reads++;
      return [...this.kernel.values()].map((x) => (x.nextHops.length > 0 ? { ...x, dev: 'eth0' } : x));
    }
  }
  const hosts = (third: number, n: number) => Array.from({ length: n }, (_, i) => `10.${third}.0.${i}/32`);

  it("flushes a gateway's routes only when every one of them goes, also after a comparison read them with their link", async () => {
    // `ip route flush proto 201 via GW` takes every route of ours through GW, whatever its link: the
    // routes the comparison found (each with its link, as the kernel gives them) count for GW too.
    const ip = new LinkedIp();
    for (const p of hosts(1, 3)) ip.kernel.set(p, r(p, '192.0.2.2')); // adopted at start
    const rec = new RouteReconciler({ shell: ip, flushMin: 2, resyncMs: 0 });
    await rec.start();
    for (const p of hosts(2, 3)) rec.upsert(r(p, '192.0.2.2'));
    await rec.flush();
    rec.suspectDrift(); // a comparison: the routes of both kinds found as they are
    await new Promise((resolve) => setTimeout(resolve, 250));
    await rec.flush();
    for (const p of hosts(3, 2)) rec.upsert(r(p, '192.0.2.2'));
    await rec.flush();
    for (const p of hosts(3, 2)) rec.remove(p);
    await rec.flush();
    rec.stop();
    expect([...ip.kernel.keys()].sort()).toEqual([...hosts(1, 3), ...hosts(2, 3)].sort());
    expect(ip.batches.flat().some((line) => line.startsWith('route flush'))).toBe(false);
  });
  /** Hands the kernel's routes over a slice at a time, a turn of the event loop apart; `failAt`: that slice throws. */
  class SlicedIp extends FakeIp {
    slice = 2;
    failAt = -1;
    /** Runs as the comparison reaches the slice of that index. */
    onSlice?: (i: number) => void;
    async *readRouteSlices(): AsyncIterable<Route[]> {
      this.reads++;
      const routes = [...this.kernel.values()];
      for (let i = 0; i * this.slice < routes.length; i++) {
        await new Promise((resolve) => setImmediate(resolve));
        this.onSlice?.(i);
        if (i === this.failAt) throw new Error('dump: cut short');
        yield routes.slice(i * this.slice, (i + 1) * this.slice);
      }
    }
  }

  it('does not adopt what setDesired() left out when it is called while the first comparison reads', async () => {
    const ip = new SlicedIp();
    for (const p of hosts(1, 6)) ip.kernel.set(p, r(p, '192.0.2.2'));
    const rec = new RouteReconciler({ shell: ip, resyncMs: 0 });
    ip.onSlice = (i) => {
      if (i === 1) rec.setDesired([r('10.9.0.0/24', '192.0.2.2')]); // between the first slice and the second
    };
    await rec.start();
    await rec.flush();
    rec.stop();
    expect([...ip.kernel.keys()]).toEqual(['10.9.0.0/24']);
    expect(rec.stats()).toMatchObject({ desired: 1, installed: 1, pending: 0 });
  });

  // A read that fails part way (the dump's slices), or before anything (`ip -json`, the shell without the addon, in production).
  it.each([
    { read: 'the slices', fail: (ip: SlicedIp) => (ip.failAt = 1) },
    {
      read: '`ip`',
      fail: (ip: SlicedIp) => {
        Object.defineProperty(ip, 'readRouteSlices', { value: undefined }); // a shell that reads all at once (routes/ip.ts)
        ip.readRoutes = async () => {
          ip.reads++;
          throw new Error('ip: timed out');
        };
      },
    },
  ])('keeps its counts of the kernel when a comparison fails reading $read: stats() and the flushes go by what it knew', async ({ fail }) => {
    const ip = new SlicedIp();
    const rec = new RouteReconciler({ shell: ip, flushMin: 2, resyncMs: 0, driftSettleMs: 0, driftIntervalMs: 0, onError: () => undefined });
    await rec.start();
    for (const p of hosts(1, 6)) rec.upsert(r(p, '192.0.2.2'));
    await rec.flush();
    fail(ip);
    rec.suspectDrift();
    for (let i = 0; i < 50 && ip.reads < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(rec.stats()).toMatchObject({ installed: 6, unicast: 6 });
    // Two of the six routes through the gateway go: no flush (it would take the four still wanted).
    for (const p of hosts(1, 2)) rec.remove(p);
    await rec.flush();
    rec.stop();
    expect([...ip.kernel.keys()].sort()).toEqual(hosts(1, 6).slice(2).sort());
  });

  it('reports a prefix set right once, though the kernel had two routes of ours for it (another metric)', async () => {
    const ip = new FakeIp();
    const checks: number[] = [];
    const rec = new RouteReconciler({ shell: ip, resyncMs: 0, driftSettleMs: 0, driftIntervalMs: 0, onDriftChecked: (c) => checks.push(c.differed) });
    await rec.start();
    rec.upsert(r('10.1.0.0/24', '192.0.2.2'));
    await rec.flush();
    ip.readRoutes = async () => [r('10.1.0.0/24', '192.0.2.7'), r('10.1.0.0/24', '192.0.2.8')]; // someone's two, none the one wanted
    rec.suspectDrift();
    for (let i = 0; i < 50 && checks.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    rec.stop();
    expect(checks).toEqual([1]);
  });
});

describe('RouteReconciler: comparisons numbered past what a record keeps (27 bits)', () => {
  it('repairs drift at the 2^27th comparison and after: neither a record no comparison found nor one found by a comparison numbered the same is taken as found', async () => {
    const ip = new FakeIp();
    const checks: number[] = [];
    const rec = new RouteReconciler({ shell: ip, resyncMs: 0, driftSettleMs: 0, driftIntervalMs: 0, onDriftChecked: (c) => checks.push(c.differed) });
    // 2^27 comparisons take years at the rates the agent compares at: the count is set instead.
    const counter = rec as unknown as { comparisons: number };
    const compareAfter = async (comparisons: number) => {
      counter.comparisons = comparisons;
      const before = checks.length;
      rec.suspectDrift();
      for (let i = 0; i < 100 && checks.length === before; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      return checks.at(-1);
    };
    await rec.start();
    rec.upsert(r('10.1.0.0/24', '192.0.2.2')); // after the first comparison: no comparison found it yet
    await rec.flush();
    ip.kernel.delete('10.1.0.0/24'); // someone's `ip route del`
    expect(await compareAfter(2 ** 27 - 1)).toBe(1);
    expect(ip.kernel.has('10.1.0.0/24')).toBe(true);
    expect(await compareAfter(2 ** 27 - 1)).toBe(0); // found by this one, numbered as the next will be
    ip.kernel.delete('10.1.0.0/24');
    expect(await compareAfter(2 ** 27 - 1)).toBe(1);
    expect(ip.kernel.has('10.1.0.0/24')).toBe(true);
    rec.stop();
  });
});

describe("RouteReconciler's records: flags and the comparison that last found the route, kept in one integer", () => {
  it('keeps each of live, queued, at the kernel and the last comparison to find the route as four separate fields would', () => {
    // A record as the RIB gets it (ribSlots().add): the reconciler's own PrefixRecord.
    type Packed = { live: boolean; queued: boolean; atKernel: boolean; seenBy(epoch: number): boolean; markSeenBy(epoch: number): void };
    const LAST_COMPARISON = 2 ** 27 - 1;
    const epoch = fc.oneof(fc.constantFrom(0, 1, 2, LAST_COMPARISON - 1, LAST_COMPARISON), fc.integer({ min: 0, max: LAST_COMPARISON }));
    const op = fc.oneof(
      fc.record({ flag: fc.constantFrom('live' as const, 'queued' as const, 'atKernel' as const), on: fc.boolean() }),
      fc.record({ seen: epoch }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), fc.array(epoch, { minLength: 1, maxLength: 5 }), (ops, probes) => {
        const rec = new RouteReconciler({ shell: new FakeIp() });
        const packed = rec.ribSlots().add('10.0.0.0/24') as unknown as Packed;
        const model = { live: true, queued: false, atKernel: false, seen: 0 };
        for (const o of ops) {
          if ('flag' in o) packed[o.flag] = model[o.flag] = o.on;
          else packed.markSeenBy((model.seen = o.seen));
          expect({ live: packed.live, queued: packed.queued, atKernel: packed.atKernel }).toEqual({ live: model.live, queued: model.queued, atKernel: model.atKernel });
          for (const e of [...probes, model.seen]) expect(packed.seenBy(e)).toBe(e === model.seen);
        }
      }),
      { numRuns: 500 },
    );
  });
});
