// Shapes of what the agent reports (status API, lightlyctl, metrics): the contract in ARCHITECTURE.md.
import type { PeerType } from './config.js';

/** RFC 4271 state names, as BIRD, GoBGP and Calico show them. */
export type PeerState = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export interface PeerStatus {
  address: string;
  asn: number;
  type: PeerType;
  state: PeerState;
  /** Seconds in the current state when Established, else 0. */
  uptimeSeconds: number;
  prefixesReceived: number;
  prefixesAdvertised: number;
  /**
   * The address families negotiated with the peer (none unless Established), each with its own
   * prefix counts: `ipv4-unicast`, `ipv6-unicast`. Added for dual stack (issue 14).
   */
  families?: FamilyStatus[];
  /** Last error or NOTIFICATION, for the table's INFO column. */
  info?: string;
}

export interface FamilyStatus {
  family: string;
  prefixesReceived: number;
  prefixesAdvertised: number;
}

export interface BgpStatus {
  node: string;
  routerId: string;
  asn: number;
  peers: PeerStatus[];
}

export interface InstalledRoute {
  prefix: string;
  type: 'unicast' | 'blackhole';
  nextHops: string[];
}

export interface NodeInfo {
  nodeName: string;
  podCIDRs: string[];
}

/** What the status API serves; the agent implements it over its speaker and route reconciler. */
export interface StatusSource {
  bgpStatus(): BgpStatus;
  routes(): InstalledRoute[];
  /** Installed routes by type and changes not yet in the kernel, without listing every route (metrics at a full table). */
  routeCounts?(): { unicast: number; blackhole: number; pending: number };
  /** One canonical prefix's route in the kernel, without listing every route (readiness at a full table). */
  installedRoute?(prefix: string): InstalledRoute | undefined;
  node(): NodeInfo;
}
