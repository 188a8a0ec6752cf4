// The node daemon's wiring: config → speaker → best routes → kernel, plus status, metrics, NAT and the CNI server.
import type { Logger } from 'pino';
import { type AgentConfig, peerType } from './config.js';
import type { BestRouteChange, DesiredRoute, DesiredTarget, NextHopWatchPort, RouteSinkPort, SpeakerPeer, SpeakerPort, SpeakerSettings } from './ports.js';
import type { AnnouncedPrefix, BgpStatus, InstalledRoute, NodeInfo, StatusSource } from './status.js';
import { type StatusRoute, startStatusServer, type StatusServer } from './status-server.js';
import { startMetricsServer } from './metrics.js';
import { applyNat, removeNat } from './nat.js';
import type { FactsQuery, FlowPort, NodeFacts, PolicyFacts } from './doctor/facts.js';
import { gatherFacts } from './doctor/gather.js';
import type { CniStatsSnapshot } from './event-metrics.js';

export interface DaemonDeps {
  log: Logger;
  makeSpeaker(settings: SpeakerSettings): SpeakerPort;
  routes: RouteSinkPort;
  /** The kernel's view of BGP next hops; without it every next hop counts as resolvable. */
  nextHops?: NextHopWatchPort;
  /** Starts the CNI server the plugin shim talks to; returns how to stop it. */
  startCniServer?(addrFile: string): Promise<{ close(): Promise<void>; stats?(): CniStatsSnapshot | undefined }>;
  /** More status API routes (network policy in Kubernetes mode). */
  statusRoutes?: Record<string, StatusRoute>;
  /** NetworkPolicy's verdicts for doctor (Kubernetes mode with enforcement); without it policy is not enforced here. */
  policyFacts?(local: string, remote: string, port?: FlowPort): PolicyFacts;
}

/** Our own CIDRs' route, shared by all of them (frozen: the route sink keeps targets as given). */
const BLACKHOLE: DesiredTarget = Object.freeze({ type: 'blackhole', nextHops: Object.freeze([]) as unknown as string[] });

/**
 * The unicast target for a list of next hops: the speaker hands the prefixes of one UPDATE the same
 * list, so they share one target, and a full table is held without an object per prefix for it.
 */
export class UnicastTargets {
  private lastHops?: string[];
  private last?: DesiredTarget;

  of(nextHops: string[]): DesiredTarget {
    if (nextHops !== this.lastHops || !this.last) {
      this.lastHops = nextHops;
      this.last = { type: 'unicast', nextHops };
    }
    return this.last;
  }
}

/**
 * Pure but for `targets`' sharing: the kernel route we want for one prefix. Our own CIDR is a
 * blackhole whoever announces it; else what the speaker learned; else a route kept from before a
 * restart; else none.
 */
export function routeFor(prefix: string, own: ReadonlySet<string>, learned: string[] | undefined, kept: ReadonlyMap<string, DesiredTarget>, targets = new UnicastTargets()): DesiredTarget | undefined {
  if (own.has(prefix)) return BLACKHOLE;
  if (learned?.length) return targets.of(learned);
  return kept.get(prefix);
}

export class AgentDaemon implements StatusSource {
  private speaker?: SpeakerPort;
  /**
   * What the speaker chose for our own CIDRs (shadowed by their blackholes), in case a CIDR stops
   * being ours. Every other learned route lives only in the route sink: no per-prefix copy here.
   */
  private readonly shadowed = new Map<string, string[]>();
  /** Learned routes found in the kernel at start: kept until the speaker has decided on them again. */
  private readonly kept = new Map<string, DesiredTarget>();
  private readonly targets = new UnicastTargets();
  private own = new Set<string>();
  private keptTimer?: NodeJS.Timeout;
  private statusServer?: StatusServer;
  private metrics?: { close(): Promise<void> };
  private cniServer?: { close(): Promise<void>; stats?(): CniStatsSnapshot | undefined };
  /** The families whose NAT table we installed (4: natOutgoing, 6: natOutgoingV6). */
  private readonly natApplied = new Set<4 | 6>();
  /** Service prefixes to originate besides our pod CIDRs (Kubernetes mode: services/advertiser.ts). */
  private serviceAnnouncements: AnnouncedPrefix[] = [];

  constructor(
    private config: AgentConfig,
    private readonly deps: DaemonDeps,
  ) {}

  async start(): Promise<void> {
    const { log, routes } = this.deps;
    await routes.start();
    // Routes of ours already in the kernel mean we are restarting: keep forwarding on them while
    // the peers (holding our routes under graceful restart) send theirs again.
    // As wanted() holds them (the start adopted what the kernel has): a target shared by the prefixes
    // through one gateway, where installed() makes a Route per prefix (a full table of them kept).
    const blackholes: string[] = [];
    for (const [prefix, r] of routes.wanted()) {
      if (r.type === 'unicast') this.kept.set(prefix, r);
      else blackholes.push(prefix);
    }
    const restarting = this.kept.size > 0;
    if (restarting) {
      log.info({ routes: this.kept.size, holdSeconds: this.config.gracefulRestart.restartTime }, 'restart: keeping installed routes until peers resend theirs');
      this.keptTimer = setTimeout(() => this.dropKept('restart time over'), this.config.gracefulRestart.restartTime * 1000);
    }
    // The start adopted everything of ours; blackholes of CIDRs no longer ours go, our CIDRs get theirs.
    this.setOwn(this.config.podCIDRs, blackholes);

    await this.deps.nextHops?.start();
    this.deps.nextHops?.onChange(() => this.speaker?.nextHopsChanged());
    this.speaker = this.deps.makeSpeaker(this.speakerSettings(restarting));
    this.speaker.onBestRoutes((changes) => this.onBestRoutes(changes));
    // Kernel routes from before the restart that selection did not confirm are stale: they go.
    this.speaker.onSelectionDone(() => this.dropKept('selection after the restart is done'));
    this.speaker.setOriginated(this.originated());
    this.speaker.setPeers(this.speakerPeers());
    await this.speaker.start();
    log.info({ routerId: this.config.routerId, asn: this.config.asn, peers: this.config.peers.length }, 'bgp speaker started');

    this.statusServer = await startStatusServer(this.config.statusSocket, this, this.deps.statusRoutes);
    if (this.config.metricsPort !== undefined) {
      this.metrics = await startMetricsServer(this.config.metricsPort, '0.0.0.0', this);
    }
    await this.applyNat();
    if (this.config.cniServer.enabled && this.deps.startCniServer) {
      this.cniServer = await this.deps.startCniServer(this.config.cniServer.addrFile);
    }
    log.info({ node: this.config.nodeName, podCIDRs: this.config.podCIDRs }, 'agent ready');
  }

  /** Pod CIDRs and Service prefixes: one set for the speaker, so graceful restart keeps both alike. */
  private originated(): string[] {
    return [...new Set([...this.config.podCIDRs, ...this.serviceAnnouncements.map((a) => a.prefix)])];
  }

  /**
   * The Service prefixes this node announces now (no kernel route: traffic to them is the Service
   * proxy's on this node). Only what changed reaches the peers: the speaker diffs the set.
   */
  setServiceAnnouncements(announcements: AnnouncedPrefix[]): void {
    this.serviceAnnouncements = announcements;
    this.speaker?.setOriginated(this.originated());
  }

  private speakerSettings(restarting: boolean): SpeakerSettings {
    const c = this.config;
    return {
      routerId: c.routerId,
      asn: c.asn,
      listenAddress: c.listen.address,
      listenPort: c.listen.port,
      holdTime: c.holdTime,
      connectRetrySeconds: c.connectRetrySeconds,
      gracefulRestart: { ...c.gracefulRestart, restarting },
      importCIDRs: c.importCIDRs,
      allowDefaultRoute: c.allowDefaultRoute,
      ...(c.rejectCIDRs.length ? { rejectCIDRs: c.rejectCIDRs } : {}),
      maxPrefixes: c.maxPrefixes,
      ...(c.clusterId ? { clusterId: c.clusterId } : {}),
      ...(c.nextHopSelf ? { nextHopSelf: c.nextHopSelf } : {}),
      ...(this.deps.nextHops ? { nextHops: this.deps.nextHops } : {}),
      ...(this.deps.routes.ribSlots ? { ribSlots: this.deps.routes.ribSlots() } : {}),
    };
  }

  private speakerPeers(): SpeakerPeer[] {
    return this.config.peers.map((p) => ({ ...p, type: peerType(p, this.config.asn) }));
  }

  /**
   * Each change is one upsert or remove for the kernel: constant work per change, whatever the
   * table's size. An indexed loop (here and along the path of a change): `for...of` makes an
   * iterator result per element until the function is optimised, and the first withdrawal of a full
   * table runs code the load never did, so much of it runs unoptimised (sampled: ~50 bytes per prefix
   * withdrawn, the second-largest allocation of a withdrawal).
   */
  private onBestRoutes(changes: BestRouteChange[]): void {
    for (let i = 0; i < changes.length; i++) {
      const { prefix, nextHops, slot } = changes[i]!;
      // A kept route the speaker has now decided on (learned or withdrawn) is the speaker's again.
      if (this.kept.size > 0) this.kept.delete(prefix);
      if (!this.own.has(prefix)) this.program(prefix, nextHops, slot);
      else if (nextHops.length) this.shadowed.set(prefix, nextHops);
      else this.shadowed.delete(prefix);
    }
  }

  /** Hands the route we want for `prefix` (or its absence) to the kernel side. */
  private program(prefix: string, learned?: string[], slot?: unknown): void {
    const route = routeFor(prefix, this.own, learned, this.kept, this.targets);
    try {
      if (route) this.deps.routes.upsert(prefix, route, slot);
      else this.deps.routes.remove(prefix, slot);
    } catch (err) {
      this.deps.log.warn({ prefix, err: (err as Error).message }, 'route not installable; skipped');
    }
  }

  /** Our CIDRs become blackholes; ones no longer ours get what was learned for them, or nothing. */
  private setOwn(next: string[], alsoCheck: Iterable<string> = []): void {
    const before = this.own;
    this.own = new Set(next);
    for (const prefix of new Set([...before, ...this.own, ...alsoCheck])) {
      if (this.own.has(prefix) && !before.has(prefix)) {
        const current = this.deps.routes.wanted().get(prefix);
        if (current?.type === 'unicast' && !this.kept.has(prefix)) this.shadowed.set(prefix, current.nextHops);
      }
      const learned = this.own.has(prefix) ? undefined : this.shadowed.get(prefix);
      if (!this.own.has(prefix)) this.shadowed.delete(prefix);
      this.program(prefix, learned);
    }
  }

  private dropKept(reason: string): void {
    clearTimeout(this.keptTimer);
    if (this.kept.size === 0) return;
    this.deps.log.info({ routes: this.kept.size, reason }, 'restart: dropping routes not relearned');
    const prefixes = [...this.kept.keys()];
    this.kept.clear();
    for (const prefix of prefixes) this.program(prefix);
  }

  private async applyNat(): Promise<void> {
    const cluster = this.config.clusterCIDRs ?? this.config.importCIDRs;
    for (const [family, wanted] of [[4, this.config.natOutgoing], [6, this.config.natOutgoingV6]] as const) {
      if (wanted) {
        await applyNat(this.config.podCIDRs, cluster, undefined, family);
        this.natApplied.add(family);
      } else if (this.natApplied.delete(family)) await removeNat(undefined, family);
    }
  }

  /** Applies a new config live: peers, originated CIDRs, NAT. A new router id or ASN restarts the speaker. */
  async reload(next: AgentConfig): Promise<void> {
    const previous = this.config;
    this.config = next;
    if (next.routerId !== previous.routerId || next.asn !== previous.asn || !this.speaker) {
      await this.speaker?.stop({ graceful: false });
      // Everything the old speaker learned goes (unicast routes that are neither kept nor our own).
      const forgotten = [...this.deps.routes.wanted()].filter(([prefix, r]) => r.type === 'unicast' && !this.kept.has(prefix) && !this.own.has(prefix)).map(([prefix]) => prefix);
      this.shadowed.clear();
      for (const prefix of forgotten) this.program(prefix);
      this.speaker = this.deps.makeSpeaker(this.speakerSettings(false));
      this.speaker.onBestRoutes((changes) => this.onBestRoutes(changes));
      this.speaker.setOriginated(this.originated());
      this.speaker.setPeers(this.speakerPeers());
      await this.speaker.start();
    } else {
      this.speaker.setImportPolicy({ importCIDRs: next.importCIDRs, allowDefaultRoute: next.allowDefaultRoute, maxPrefixes: next.maxPrefixes, ...(next.rejectCIDRs.length ? { rejectCIDRs: next.rejectCIDRs } : {}) });
      this.speaker.setOriginated(this.originated());
      this.speaker.setPeers(this.speakerPeers());
    }
    this.setOwn(next.podCIDRs);
    await this.applyNat();
    this.deps.log.info({ peers: next.peers.length, podCIDRs: next.podCIDRs }, 'config applied');
  }

  /**
   * graceful (restart, upgrade): routes stay in the kernel and peers keep ours for the restart time.
   * Otherwise (the node leaves): peers get a Cease, our NAT table goes; kernel routes still stay,
   * since removing them would cut pods off before the node is drained.
   */
  async stop(graceful: boolean): Promise<void> {
    clearTimeout(this.keptTimer);
    await this.speaker?.stop({ graceful });
    this.deps.nextHops?.stop();
    await this.deps.routes.stop();
    await this.statusServer?.close();
    await this.metrics?.close();
    await this.cniServer?.close();
    if (!graceful) for (const family of this.natApplied) await removeNat(undefined, family);
    this.deps.log.info({ graceful }, 'agent stopped');
  }

  // ---- StatusSource ----
  bgpStatus(): BgpStatus {
    return {
      node: this.config.nodeName, routerId: this.config.routerId, asn: this.config.asn, peers: this.speaker?.peerStatus() ?? [],
      announced: [...this.config.podCIDRs.map((prefix): AnnouncedPrefix => ({ prefix, origin: 'pod-cidr' })), ...this.serviceAnnouncements],
    };
  }

  routes(): InstalledRoute[] {
    return this.deps.routes.installed();
  }

  installedRoute(prefix: string): InstalledRoute | undefined {
    return this.deps.routes.installedRoute(prefix);
  }

  routeCounts(): { unicast: number; blackhole: number; pending: number } {
    return this.deps.routes.counts();
  }

  node(): NodeInfo {
    return { nodeName: this.config.nodeName, podCIDRs: this.config.podCIDRs };
  }

  cniStats(): CniStatsSnapshot | undefined {
    return this.cniServer?.stats?.();
  }

  doctorFacts(query: FactsQuery): Promise<NodeFacts> {
    const c = this.config;
    return gatherFacts({
      node: c.nodeName, address: c.routerId, podCIDRs: c.podCIDRs, natOutgoing: c.natOutgoing, clusterCIDRs: c.clusterCIDRs ?? c.importCIDRs,
      peers: this.bgpStatus().peers.map((p) => ({ address: p.address, state: p.state, ...(p.info ? { info: p.info } : {}) })),
      rib: (address) => this.speaker?.lookup?.(address) ?? { importAllowed: true },
      ...(this.deps.policyFacts ? { policy: this.deps.policyFacts } : {}),
    }, query);
  }
}
