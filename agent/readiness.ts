// When this node's network counts as up: one rule for /readyz and for the Node's NetworkUnavailable condition.
import { normalisePrefix } from '../routes/desired.js';
import type { InstalledRoute, PeerStatus, StatusSource } from './status.js';

export interface NetworkState {
  ready: boolean;
  /** CamelCase, as Kubernetes condition reasons are: LightlyIsUp when ready. */
  reason: string;
  message: string;
}

/** Something outside BGP that keeps the node down: no Node object yet, no pod CIDR, no router id. */
export interface Blocker {
  reason: string;
  message: string;
}

const canonical = (prefix: string): string => {
  try {
    return normalisePrefix(prefix);
  } catch {
    return prefix;
  }
};

/**
 * Up when nothing blocks the node, at least one BGP session is Established (or none is configured:
 * a single node), and the blackholes of our pod CIDRs are in the kernel. One session rather than all:
 * a node down elsewhere must not make every other node unready and stall a rolling update.
 */
/** A lookup over a list of routes, by canonical prefix (fakes and tests; the daemon has its own). */
export function routeLookup(routes: InstalledRoute[]): (prefix: string) => InstalledRoute | undefined {
  const byPrefix = new Map(routes.map((r) => [canonical(r.prefix), r]));
  return (prefix) => byPrefix.get(prefix);
}

/**
 * One prefix's route in the kernel: the source's own lookup where it has one (the daemon's is a map
 * read), else a search of its list (test fakes). Readiness runs every few seconds: at a full table it
 * must not copy and sort every route.
 */
export function installedRouteOf(source: StatusSource): (prefix: string) => InstalledRoute | undefined {
  if (source.installedRoute) return (prefix) => source.installedRoute!(prefix);
  return (prefix) => routeLookup(source.routes())(prefix);
}

export function networkState(peers: PeerStatus[], podCIDRs: string[], installedRoute: (prefix: string) => InstalledRoute | undefined, blocker?: Blocker): NetworkState {
  if (blocker) return { ready: false, reason: blocker.reason, message: blocker.message };
  const established = peers.filter((p) => p.state === 'Established').length;
  if (peers.length > 0 && established === 0) {
    const waiting = peers.slice(0, 5).map((p) => `${p.address} ${p.state}`).join(', ');
    return { ready: false, reason: 'NoBGPSessionEstablished', message: `none of ${peers.length} BGP sessions is Established (${waiting}${peers.length > 5 ? ', ...' : ''})` };
  }
  const missing = podCIDRs.filter((c) => installedRoute(canonical(c))?.type !== 'blackhole');
  if (missing.length) return { ready: false, reason: 'RoutesNotProgrammed', message: `the blackhole route of ${missing.join(', ')} is not in the kernel yet` };
  return { ready: true, reason: 'LightlyIsUp', message: `${established} of ${peers.length} BGP sessions Established; routes programmed` };
}
