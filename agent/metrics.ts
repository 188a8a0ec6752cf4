// Prometheus metrics, /healthz and /readyz on the metrics port; values are read from the status at scrape time.
import { createServer, type Server } from 'node:http';
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { PeerState, StatusSource } from './status.js';
import { registerEventMetrics } from './event-metrics.js';
import { type Blocker, type NetworkState, installedRouteOf, networkState } from './readiness.js';

/** Session state as a number, in RFC 4271 order, so dashboards can alert on `< 6`. */
export const STATE_NUMBER: Record<PeerState, number> = { Idle: 1, Connect: 2, Active: 3, OpenSent: 4, OpenConfirm: 5, Established: 6 };

let eventLoop: IntervalHistogram | undefined;

/**
 * How late the event loop ran its timers since the agent started (ms): keepalives, hold timers and
 * the status socket all wait that long. One monitor per process, started on first use.
 */
export function eventLoopDelay(): { p99Ms: number; maxMs: number } {
  if (!eventLoop) {
    eventLoop = monitorEventLoopDelay({ resolution: 10 });
    eventLoop.enable();
  }
  return { p99Ms: eventLoop.percentile(99) / 1e6, maxMs: eventLoop.max / 1e6 };
}

export function createMetrics(source: StatusSource): Registry {
  eventLoopDelay();
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'lightly_agent_' });
  registerEventMetrics(registry, source.cniStats ? () => source.cniStats!() : undefined);
  const peers = (): ReturnType<StatusSource['bgpStatus']>['peers'] => source.bgpStatus().peers;
  new Gauge({
    name: 'lightly_bgp_session_state', help: 'BGP session state per peer: 1 Idle … 6 Established',
    labelNames: ['peer', 'type'], registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) this.set({ peer: p.address, type: p.type }, STATE_NUMBER[p.state]);
    },
  });
  new Gauge({
    name: 'lightly_bgp_prefixes_received', help: 'Prefixes accepted from each peer', labelNames: ['peer'], registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) this.set({ peer: p.address }, p.prefixesReceived);
    },
  });
  new Gauge({
    name: 'lightly_bgp_prefixes_advertised', help: 'Prefixes advertised to each peer', labelNames: ['peer'], registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) this.set({ peer: p.address }, p.prefixesAdvertised);
    },
  });
  new Gauge({
    name: 'lightly_service_prefixes_announced', help: 'Service prefixes this node announces over BGP, by origin (cluster IP range, external IP, LoadBalancer IP)',
    labelNames: ['origin'], registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, number>(['service-cluster-ip-range', 'service-external-ip', 'service-load-balancer-ip'].map((o) => [o, 0]));
      for (const a of source.bgpStatus().announced ?? []) if (counts.has(a.origin)) counts.set(a.origin, counts.get(a.origin)! + 1);
      for (const [origin, n] of counts) this.set({ origin }, n);
    },
  });
  new Gauge({
    name: 'lightly_routes_installed', help: 'Kernel routes with protocol lightly, by type', labelNames: ['type'], registers: [registry],
    collect() {
      this.reset();
      const counts = source.routeCounts?.() ?? countRoutes(source.routes());
      this.set({ type: 'unicast' }, counts.unicast);
      this.set({ type: 'blackhole' }, counts.blackhole);
    },
  });
  new Gauge({
    name: 'lightly_routes_pending', help: 'Route changes not yet in the kernel (arriving, or refused and waiting for a retry)', registers: [registry],
    collect() {
      this.set((source.routeCounts?.() ?? { pending: 0 }).pending);
    },
  });
  new Gauge({
    name: 'lightly_event_loop_delay_seconds', help: 'Event-loop delay since the agent started (perf_hooks.monitorEventLoopDelay): p99 and max',
    labelNames: ['stat'], registers: [registry],
    collect() {
      const d = eventLoopDelay();
      this.set({ stat: 'p99' }, d.p99Ms / 1000);
      this.set({ stat: 'max' }, d.maxMs / 1000);
    },
  });
  return registry;
}

/** Ready by networkState's rule (a blocker, one Established session, routes programmed); live while we answer. */
export function readiness(source: StatusSource, blocker?: () => Blocker | undefined): NetworkState {
  return networkState(source.bgpStatus().peers, source.node().podCIDRs, installedRouteOf(source), blocker?.());
}

function countRoutes(routes: ReturnType<StatusSource['routes']>): { unicast: number; blackhole: number } {
  let blackhole = 0;
  for (const r of routes) if (r.type === 'blackhole') blackhole++;
  return { unicast: routes.length - blackhole, blackhole };
}

export async function startMetricsServer(port: number, address: string, source: StatusSource, blocker?: () => Blocker | undefined): Promise<{ port: number; close(): Promise<void> }> {
  const registry = createMetrics(source);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = readiness(source, blocker);
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.reason}: ${r.message}\n`);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
