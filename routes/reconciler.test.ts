// The reconciler's logic over a fake `ip` that keeps a map, refusing what a test tells it to.
import { describe, expect, it } from 'vitest';
import type { Route } from './desired.js';
import type { BatchFailure } from './ip.js';
import { type RouteShell, RouteProgrammingError, RouteReconciler } from './reconciler.js';

class FakeIp implements RouteShell {
  kernel = new Map<string, Route>();
  batches: string[][] = [];
  refuse = new Set<string>();

  async readRoutes(): Promise<Route[]> {
    return [...this.kernel.values()];
  }

  async batch(lines: string[]): Promise<BatchFailure[]> {
    this.batches.push(lines);
    const failures: BatchFailure[] = [];
    lines.forEach((line, i) => {
      const [, verb, ...rest] = line.split(' ');
      const prefix = rest[0] === 'blackhole' ? rest[1]! : rest[0]!;
      if (this.refuse.has(prefix)) return failures.push({ line: i + 1, command: line, error: 'RTNETLINK answers: Network is unreachable' });
      if (verb === 'del') this.kernel.delete(prefix);
      else {
        const hops = [...line.matchAll(/via (\S+)/g)].map((m) => m[1]!);
        this.kernel.set(prefix, rest[0] === 'blackhole' ? { prefix, type: 'blackhole', nextHops: [] } : { prefix, type: 'unicast', nextHops: hops.sort() });
      }
      return undefined;
    });
    return failures;
  }
}

const r = (prefix: string, ...nextHops: string[]): Route => ({ prefix, type: 'unicast', nextHops });

describe('RouteReconciler (fake ip)', () => {
  it('adopts the kernel at start and changes nothing until told', async () => {
    const ip = new FakeIp();
    ip.kernel.set('10.9.0.0/24', r('10.9.0.0/24', '192.0.2.2'));
    const rec = new RouteReconciler({ shell: ip });
    await rec.start();
    await rec.flush();
    expect(ip.batches).toEqual([]);
    expect(rec.installed()).toEqual([r('10.9.0.0/24', '192.0.2.2')]);
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

  it('refuses upsert before start so nothing is removed by accident', () => {
    const rec = new RouteReconciler({ shell: new FakeIp() });
    expect(() => rec.upsert(r('10.1.0.0/24', '192.0.2.2'))).toThrow(/start\(\)/);
  });
});
