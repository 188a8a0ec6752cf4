// Metrics of events rather than state: route programming time and refusals, session flaps, and the
// CNI server's counters (it runs as a child process and sends them over IPC; we export them).
import { Counter, Histogram, type Registry } from 'prom-client';
import { z } from 'zod';
import type { RouteShell } from '../routes/reconciler.js';
import type { RouteWrite } from '../routes/desired.js';
import type { BatchFailure } from '../routes/ip.js';

/** One set per process (like the event-loop monitor); createMetrics registers them in its registry. */
export const routeProgramming = new Histogram({
  name: 'lightly_route_programming_seconds', help: 'Time the kernel took for one chunk of route changes',
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [],
});
export const routeChanges = new Counter({
  name: 'lightly_route_changes_total', help: 'Route changes handed to the kernel, by result (applied, refused)', labelNames: ['result'], registers: [],
});
export const sessionFlaps = new Counter({
  name: 'lightly_bgp_session_flaps_total', help: 'Times a BGP session left Established', labelNames: ['peer'], registers: [],
});

/** The route shell with each batch timed and its lines counted; the reconciler does not know. */
export function timedRouteShell(shell: RouteShell): RouteShell {
  // One batch of changes, as `ip` lines or as values (the netlink writer): timed and counted alike.
  const timed = async <T>(changes: readonly T[], apply: (changes: readonly T[]) => Promise<BatchFailure[]>): Promise<BatchFailure[]> => {
    const stop = routeProgramming.startTimer();
    try {
      const failures = await apply(changes);
      routeChanges.inc({ result: 'applied' }, changes.length - failures.length);
      if (failures.length) routeChanges.inc({ result: 'refused' }, failures.length);
      return failures;
    } catch (err) {
      routeChanges.inc({ result: 'refused' }, changes.length);
      throw err;
    } finally {
      stop();
    }
  };
  return {
    readRoutes: () => shell.readRoutes(),
    ...(shell.readRouteSlices ? { readRouteSlices: () => shell.readRouteSlices!() } : {}),
    batch: (lines) => timed(lines, (l) => shell.batch(l as string[])),
    ...(shell.write ? { write: (changes: readonly RouteWrite[]) => timed(changes, (c) => shell.write!(c)) } : {}),
    ...(shell.close ? { close: () => shell.close!() } : {}),
  };
}

/** The CNI server's message, parsed at the boundary (it is another process). */
const cniStatsSchema = z.object({
  cniStats: z.object({
    le: z.array(z.number()),
    verbs: z.record(z.string(), z.object({ buckets: z.array(z.number()), count: z.number(), sum: z.number() })),
    errors: z.record(z.string(), z.record(z.string(), z.number())),
  }),
});
export type CniStatsSnapshot = z.infer<typeof cniStatsSchema>['cniStats'];

export function parseCniStats(message: unknown): CniStatsSnapshot | undefined {
  const parsed = cniStatsSchema.safeParse(message);
  return parsed.success ? parsed.data.cniStats : undefined;
}

type Sample = { metricName?: string; labels: Record<string, string | number>; value: number };

/** CNI latency and errors from the last snapshot, as prom-client metric objects read at scrape time. */
function cniMetrics(latest: () => CniStatsSnapshot | undefined): { name: string; get(): Promise<unknown> }[] {
  const name = 'lightly_cni_request_duration_seconds';
  const errors = 'lightly_cni_errors_total';
  return [
    {
      name,
      get: async () => {
        const s = latest();
        const values: Sample[] = [];
        for (const [verb, v] of Object.entries(s?.verbs ?? {})) {
          s!.le.forEach((le, i) => values.push({ metricName: `${name}_bucket`, labels: { verb, le }, value: v.buckets[i] ?? 0 }));
          values.push({ metricName: `${name}_bucket`, labels: { verb, le: '+Inf' }, value: v.count });
          values.push({ metricName: `${name}_sum`, labels: { verb }, value: v.sum });
          values.push({ metricName: `${name}_count`, labels: { verb }, value: v.count });
        }
        return { name, help: 'CNI requests served by the CNI server, by verb (ADD, DEL, CHECK…)', type: 'histogram', values, aggregator: 'sum' };
      },
    },
    {
      name: errors,
      get: async () => {
        const values: Sample[] = Object.entries(latest()?.errors ?? {}).flatMap(([verb, byCode]) => Object.entries(byCode).map(([code, value]) => ({ labels: { verb, code }, value })));
        return { name: errors, help: 'CNI requests that failed, by verb and CNI error code', type: 'counter', values, aggregator: 'sum' };
      },
    },
  ];
}

export function registerEventMetrics(registry: Registry, cniStats?: () => CniStatsSnapshot | undefined): void {
  registry.registerMetric(routeProgramming);
  registry.registerMetric(routeChanges);
  registry.registerMetric(sessionFlaps);
  for (const m of cniMetrics(cniStats ?? (() => undefined))) registry.registerMetric(m as never);
}
