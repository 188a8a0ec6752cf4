// The agent's RouteSinkPort over routes/'s reconciler, registering the `lightly` protocol name first.
import type { Logger } from 'pino';
import { RouteReconciler, kernelShell } from '../routes/reconciler.js';
import { type DriftWatch, watchDrift } from '../routes/drift-watch.js';
import { nativeAddon } from '../native/native.js';
import { registerRouteProtocol } from '../routes/protocol.js';
import { timedRouteShell } from './event-metrics.js';
import type { AgentConfig } from './config.js';
import type { RouteSinkPort } from './ports.js';

export function createRouteSink(config: AgentConfig, log: Logger): RouteSinkPort {
  // The netlink writer (ip -batch when the addon cannot be had), timed for the route programming metrics.
  const writer = kernelShell({
    netlink: nativeAddon,
    onWriterFallback: (err) => log.warn({ err: err.message }, 'netlink route writer unavailable: programming routes through ip -batch'),
    onDumpFailed: (err) => log.warn({ err: err.message }, 'native route dump failed: comparing routes with the kernel through ip -json this time'),
  });
  const reconciler = new RouteReconciler({
    shell: timedRouteShell(writer),
    onError: (err) => log.warn({ err: err.message }, 'route programming failed'),
    onDriftChecked: ({ differed, ms }) => {
      if (differed > 0) log.info({ routes: differed, ms }, 'repaired routes of ours changed by someone else');
    },
  });
  let drift: DriftWatch | undefined;
  return {
    start: async () => {
      try {
        if (registerRouteProtocol(config.iprouteDir)) log.info({ dir: config.iprouteDir }, 'registered route protocol lightly');
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'cannot register the lightly protocol name; routes use the number 201');
      }
      // Before the start's comparison: what changes after it is seen. Without netlink, the 5-minute comparison only.
      drift = watchDrift({
        addon: nativeAddon,
        writer,
        onDrift: () => reconciler.suspectDrift(),
        onUnavailable: (err) => log.warn({ err: err.message }, 'route drift watcher unavailable: routes changed by others are repaired every 5 minutes'),
      });
      await reconciler.start();
    },
    upsert: (prefix, route, slot) => reconciler.upsertFor(prefix, route, slot),
    remove: (prefix, slot) => reconciler.remove(prefix, slot),
    ribSlots: () => reconciler.ribSlots(),
    wanted: () => reconciler.wanted(),
    installed: () => reconciler.installed(),
    installedRoute: (prefix) => reconciler.installedRoute(prefix),
    counts: () => {
      const s = reconciler.stats();
      return { unicast: s.unicast, blackhole: s.blackhole, pending: s.pending };
    },
    stop: async () => {
      drift?.close();
      await reconciler.flush();
      reconciler.stop();
    },
  };
}
