// Event metrics: the CNI server's counters as a real Prometheus histogram after crossing the IPC boundary,
// route programming timed around the shell, and the text prom-client renders for them.
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { CniStats } from '../plugin/stats.js';
import { parseCniStats, registerEventMetrics, routeChanges, timedRouteShell } from './event-metrics.js';

describe('CNI server counters through the agent', () => {
  it('a snapshot sent over IPC becomes a cumulative histogram by verb and errors by code', async () => {
    const stats = new CniStats();
    stats.record('ADD', 0.016);
    stats.record('ADD', 0.2);
    stats.record('ADD', 0.02, '7');
    stats.record('DEL', 0.035);
    const message = JSON.parse(JSON.stringify({ cniStats: stats.snapshot() })); // what the IPC channel carries
    const snapshot = parseCniStats(message);
    expect(snapshot).toBeDefined();
    const registry = new Registry();
    registerEventMetrics(registry, () => snapshot);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE lightly_cni_request_duration_seconds histogram');
    expect(text).toContain('lightly_cni_request_duration_seconds_bucket{verb="ADD",le="0.01"} 0');
    expect(text).toContain('lightly_cni_request_duration_seconds_bucket{verb="ADD",le="0.025"} 2');
    expect(text).toContain('lightly_cni_request_duration_seconds_bucket{verb="ADD",le="0.25"} 3');
    expect(text).toContain('lightly_cni_request_duration_seconds_bucket{verb="ADD",le="+Inf"} 3');
    expect(text).toContain('lightly_cni_request_duration_seconds_count{verb="DEL"} 1');
    expect(text).toMatch(/lightly_cni_request_duration_seconds_sum\{verb="ADD"\} 0\.236/);
    expect(text).toContain('lightly_cni_errors_total{verb="ADD",code="7"} 1');
  });

  it('a malformed message from the child is ignored, not exported', () => {
    expect(parseCniStats({ cniStats: { le: 'x' } })).toBeUndefined();
    expect(parseCniStats('hello')).toBeUndefined();
  });

  it('route programming: every batch timed, applied and refused lines counted, a failed ip counts all refused', async () => {
    const before = async (result: string): Promise<number> => (await routeChanges.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
    const [applied0, refused0] = [await before('applied'), await before('refused')];
    const shell = timedRouteShell({
      readRoutes: async () => [],
      batch: async (lines) => (lines.length === 3 ? [{ line: 2, command: lines[1]!, error: 'File exists' }] : Promise.reject(new Error('ip died'))),
    });
    expect(await shell.batch(['a', 'b', 'c'])).toHaveLength(1);
    await expect(shell.batch(['d', 'e'])).rejects.toThrow('ip died');
    expect((await before('applied')) - applied0).toBe(2);
    expect((await before('refused')) - refused0).toBe(3);
    const registry = new Registry();
    registerEventMetrics(registry);
    expect(await registry.metrics()).toMatch(/lightly_route_programming_seconds_count \d+/);
  });
});
