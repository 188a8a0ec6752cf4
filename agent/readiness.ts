// When this node's network counts as up: one rule for /readyz and for the Node's NetworkUnavailable condition.
import { normalisePrefix } from '../routes/desired.js';
import type { InstalledRoute, PeerStatus } from './status.js';

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
export function networkState(peers: PeerStatus[], podCIDRs: string[], routes: InstalledRoute[], blocker?: Blocker): NetworkState {
  if (blocker) return { ready: false, reason: blocker.reason, message: blocker.message };
  const established = peers.filter((p) => p.state === 'Established').length;
  if (peers.length > 0 && established === 0) {
    const waiting = peers.slice(0, 5).map((p) => `${p.address} ${p.state}`).join(', ');
    return { ready: false, reason: 'NoBGPSessionEstablished', message: `none of ${peers.length} BGP sessions is Established (${waiting}${peers.length > 5 ? ', ...' : ''})` };
  }
  const blackholes = new Set(routes.filter((r) => r.type === 'blackhole').map((r) => canonical(r.prefix)));
  const missing = podCIDRs.filter((c) => !blackholes.has(canonical(c)));
  if (missing.length) return { ready: false, reason: 'RoutesNotProgrammed', message: `the blackhole route of ${missing.join(', ')} is not in the kernel yet` };
  return { ready: true, reason: 'LightlyIsUp', message: `${established} of ${peers.length} BGP sessions Established; routes programmed` };
}
