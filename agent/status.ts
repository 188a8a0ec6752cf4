// Shapes of what the agent reports (status API, lightlyctl, metrics): the contract in ARCHITECTURE.md.
import type { PeerType } from './config.js';
import type { FactsQuery, NodeFacts } from './doctor/facts.js';
import type { CniStatsSnapshot } from './event-metrics.js';

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
  /** Why the session may not come up where no error says so (a TCP MD5 mismatch drops segments silently). */
  hint?: string;
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
  /** What this node originates and why: its pod CIDRs and, in Kubernetes mode, Service prefixes. */
  announced?: AnnouncedPrefix[];
}

/** One originated prefix: why (`origin`) and, for Service addresses, which Services (namespace/name). */
export interface AnnouncedPrefix {
  prefix: string;
  origin: 'pod-cidr' | 'service-cluster-ip-range' | 'service-external-ip' | 'service-load-balancer-ip';
  services?: string[];
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
  /** What this node's kernel and speaker say about one pod-to-pod path (lightlyctl doctor). */
  doctorFacts?(query: FactsQuery): Promise<NodeFacts>;
  /** The CNI server's last counters (it is a child process), for /metrics. */
  cniStats?(): CniStatsSnapshot | undefined;
}
