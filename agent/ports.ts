// What the agent needs from the BGP speaker and from kernel route programming: two narrow ports,
// so the daemon's wiring is testable with fakes and the layers stay apart (config → agent → speaker → routes).
import type { PeerConfig, PeerType } from './config.js';
import type { InstalledRoute, PeerStatus } from './status.js';
import type { RibSlots } from '../bgp/rib/rib.js';

export interface SpeakerSettings {
  routerId: string;
  asn: number;
  listenAddress: string;
  listenPort: number;
  holdTime: number;
  connectRetrySeconds: number;
  gracefulRestart: { enabled: boolean; restartTime: number; /** we are coming back from a restart */ restarting: boolean };
  importCIDRs: string[];
  allowDefaultRoute: boolean;
  /** Never imported: the Service ranges this cluster announces (each node decides its own). */
  rejectCIDRs?: string[];
  maxPrefixes: number;
  clusterId?: string;
  /** Our next hop per family where a session's own address is of the other family (see AgentConfig). */
  nextHopSelf?: { ipv4?: string; ipv6?: string };
  /** Resolves BGP next hops through the kernel's routing table (RFC 4271 §9.1.2.1). */
  nextHops?: NextHopResolverPort;
  /** The route sink's table for the RIB's candidates (RouteSinkPort.ribSlots). */
  ribSlots?: RibSlots;
}

/** Whether a next hop resolves: by a connected subnet or a route other than a default, not, or it is ours. */
export interface NextHopResolverPort {
  resolve(nextHop: string): 'reachable' | 'unreachable' | 'local';
}

/** The kernel's view of next hops, kept current: the speaker asks it, and hears when it changes. */
export interface NextHopWatchPort extends NextHopResolverPort {
  start(): Promise<void>;
  onChange(listener: () => void): void;
  stop(): void;
}

/** A peer as the agent configures it: the config entry with its resolved type. */
export interface SpeakerPeer extends PeerConfig {
  type: PeerType;
}

/** One prefix's best route(s) after a change: next hops for ECMP, none when withdrawn. */
export interface BestRouteChange {
  prefix: string;
  nextHops: string[];
  /** The prefix's record in the route sink's table, when the RIB shares it (RouteSinkPort.ribSlots): handed back to upsert/remove. */
  slot?: unknown;
}

export interface SpeakerPort {
  start(): Promise<void>;
  /** Replaces the peer set live: new peers connect, removed ones get a Cease and their routes go. */
  setPeers(peers: SpeakerPeer[]): void;
  /** The prefixes this node originates (its pod CIDRs). */
  setOriginated(prefixes: string[]): void;
  /** Import CIDRs, default-route permission and prefix limit, applied live. */
  setImportPolicy(policy: Pick<SpeakerSettings, 'importCIDRs' | 'allowDefaultRoute' | 'maxPrefixes' | 'rejectCIDRs'>): void;
  onBestRoutes(listener: (changes: BestRouteChange[]) => void): void;
  /** After our restart: selection is done (RFC 4724 §4.1), every best route has been reported. */
  onSelectionDone(listener: () => void): void;
  /** The kernel's routes or addresses changed: next hops are resolved again. */
  nextHopsChanged(): void;
  peerStatus(): PeerStatus[];
  /** The RIB's longest match for an address and whether import policy takes it (lightlyctl doctor). */
  lookup?(address: string): { prefix?: string; best?: { peer: string; nextHop: string; stale: boolean }; importAllowed: boolean };
  /** graceful: keep the kernel's routes and let peers hold ours (restart); else Cease 6/2 to all. */
  stop(options: { graceful: boolean }): Promise<void>;
}

/** What a route does, for whichever prefix: one is shared by the prefixes of an UPDATE (never modify it). */
export interface DesiredTarget {
  type: 'unicast' | 'blackhole';
  nextHops: string[];
}

export interface DesiredRoute extends DesiredTarget {
  prefix: string;
}

/** Counts of what is installed, for metrics (cheap: no list of every route). */
export interface RouteCounts {
  unicast: number;
  blackhole: number;
  /** Changes not yet in the kernel (a full table arriving, or refused and waiting for a retry). */
  pending: number;
}

/**
 * Kernel routes, programmed incrementally: each best-route change is one upsert or remove, applied
 * in the background within milliseconds (many together while a full table arrives).
 */
export interface RouteSinkPort {
  /** Adopts what the kernel has with our protocol as wanted, then keeps it as told. */
  start(): Promise<void>;
  /**
   * Wants this route for the prefix, replacing what was wanted before. Throws for a route `ip` would
   * refuse. `route` may be shared by many prefixes (the sink keeps it, not a copy per prefix).
   * `slot`: the change's (BestRouteChange.slot), so the prefix is not looked up again.
   */
  upsert(prefix: string, route: DesiredTarget, slot?: unknown): void;
  /** Wants no route of ours for the prefix. */
  remove(prefix: string, slot?: unknown): void;
  /**
   * The sink's table, for the RIB to keep its candidates in (one record per prefix from the wire to
   * the kernel: a withdrawal is one look-up); without it the RIB keeps its own.
   */
  ribSlots?(): RibSlots;
  /** What is wanted now, by prefix (read only): the one per-route store between the speaker and the kernel. */
  wanted(): ReadonlyMap<string, DesiredTarget>;
  installed(): InstalledRoute[];
  /** The kernel's route of ours for one canonical prefix, as far as we know (a map read). */
  installedRoute(prefix: string): InstalledRoute | undefined;
  counts(): RouteCounts;
  /** Leaves the kernel's routes in place (forwarding continues across our restart). */
  stop(): Promise<void>;
}
