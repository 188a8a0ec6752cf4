// Finds someone else's changes to our routes (an operator's `ip route del … proto lightly`, `ip route
// flush proto 201`) within a second instead of at the 5-minute comparison: the addon's rtnetlink watcher,
// told our netlink writer's port ids, passes only the changes of our protocol others made, and each
// burst asks the reconciler for a comparison (debounced and rate-limited there: suspectDrift).
import { ROUTE_PROTOCOL } from './protocol-number.js';
import type { RouteShell } from './reconciler.js';
import { type OpenRouteWatch, type RouteWatchApi, type RouteWatchEvent, openRouteWatch } from './route-watch.js';

export interface DriftWatchOptions {
  /** The addon (`nativeAddon` of native/native.ts). */
  addon: () => RouteWatchApi;
  /** The writer the reconciler writes through, before any wrapping: its port ids are ours. */
  writer: RouteShell;
  /** Watch inside this named namespace (tests); default: our own. Must be the writer's. */
  netns?: string;
  /** Someone else changed routes of ours ('changed'), or notifications were lost ('lost'). */
  onDrift(why: 'changed' | 'lost'): void;
  /** The watcher could not be had or failed: drift is found by the periodic comparison only. */
  onUnavailable?(err: Error): void;
}

export interface DriftWatch {
  /** Our writer now writes through these sockets (reopened): the kernel's filter is replaced. */
  setOwnPorts(ports: number[]): void;
  close(): void;
}

/** What a burst of the watcher means for our routes (pure). */
export function driftOf(event: RouteWatchEvent): 'changed' | 'lost' | undefined {
  if (event.overflowed) return 'lost';
  return event.ownProtocolRoutes > 0 ? 'changed' : undefined;
}

/**
 * Starts watching for drift, or returns undefined when the writer has no port ids: `ip -batch` runs a
 * process per batch, each with a port of its own, so our changes could not be told from others'
 * (the watcher would see our whole churn); drift is then repaired by the periodic comparison only.
 */
export function watchDrift(options: DriftWatchOptions): DriftWatch | undefined {
  const ports = options.writer.portIds?.() ?? [];
  if (ports.length === 0) return undefined;
  let addon: RouteWatchApi;
  let watch: OpenRouteWatch;
  try {
    addon = options.addon();
    watch = openRouteWatch(
      addon,
      { protocol: ROUTE_PROTOCOL, ownPorts: ports, netns: options.netns },
      (event) => {
        const why = driftOf(event);
        if (why) options.onDrift(why);
      },
      (error) => {
        options.onUnavailable?.(new Error(error));
        options.onDrift('lost'); // what it missed before failing is compared once
      },
    );
  } catch (err) {
    options.onUnavailable?.(err as Error);
    return undefined;
  }
  return {
    setOwnPorts: (next) => {
      if (watch.open) addon.routeWatchSetOwnPorts(watch.handle, next.length ? next : null);
    },
    close: () => watch.close(),
  };
}
