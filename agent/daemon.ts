// The node daemon's wiring: config → speaker → best routes → kernel, plus status, metrics, NAT and the CNI server.
import type { Logger } from 'pino';
import { type AgentConfig, peerType } from './config.js';
import type { BestRouteChange, DesiredRoute, NextHopWatchPort, RouteSinkPort, SpeakerPeer, SpeakerPort, SpeakerSettings } from './ports.js';
import type { BgpStatus, InstalledRoute, NodeInfo, StatusSource } from './status.js';
import { startStatusServer, type StatusServer } from './status-server.js';
import { startMetricsServer } from './metrics.js';
import { applyNat, removeNat } from './nat.js';

export interface DaemonDeps {
  log: Logger;
  makeSpeaker(settings: SpeakerSettings): SpeakerPort;
  routes: RouteSinkPort;
  /** The kernel's view of BGP next hops; without it every next hop counts as resolvable. */
  nextHops?: NextHopWatchPort;
  /** Starts the CNI server the plugin shim talks to; returns how to stop it. */
  startCniServer?(addrFile: string): Promise<{ close(): Promise<void> }>;
}

/** Pure: the kernel routes we want from our CIDRs, what we learned, and routes kept across a restart. */
export function desiredRoutes(podCIDRs: string[], learned: Map<string, string[]>, kept: DesiredRoute[]): DesiredRoute[] {
  const own = new Set(podCIDRs);
  const routes = new Map<string, DesiredRoute>();
  for (const r of kept) if (!own.has(r.prefix)) routes.set(r.prefix, r);
  for (const [prefix, nextHops] of learned) {
    if (own.has(prefix)) continue; // our own CIDR stays a blackhole whoever announces it
    if (nextHops.length === 0) routes.delete(prefix);
    else routes.set(prefix, { prefix, type: 'unicast', nextHops: [...nextHops].sort() });
  }
  for (const prefix of podCIDRs) routes.set(prefix, { prefix, type: 'blackhole', nextHops: [] });
  return [...routes.values()].sort((a, b) => a.prefix.localeCompare(b.prefix));
}

export class AgentDaemon implements StatusSource {
  private speaker?: SpeakerPort;
  private readonly learned = new Map<string, string[]>();
  /** Learned routes found in the kernel at start: kept until the speaker has relearned them. */
  private kept: DesiredRoute[] = [];
  private keptTimer?: NodeJS.Timeout;
  private statusServer?: StatusServer;
  private metrics?: { close(): Promise<void> };
  private cniServer?: { close(): Promise<void> };
  private natApplied = false;

  constructor(
    private config: AgentConfig,
    private readonly deps: DaemonDeps,
  ) {}

  async start(): Promise<void> {
    const { log, routes } = this.deps;
    await routes.start();
    // Routes of ours already in the kernel mean we are restarting: keep forwarding on them while
    // the peers (holding our routes under graceful restart) send theirs again.
    this.kept = routes.installed().filter((r) => r.type === 'unicast');
    const restarting = this.kept.length > 0;
    if (restarting) {
      log.info({ routes: this.kept.length, holdSeconds: this.config.gracefulRestart.restartTime }, 'restart: keeping installed routes until peers resend theirs');
      this.keptTimer = setTimeout(() => this.dropKept('restart time over'), this.config.gracefulRestart.restartTime * 1000);
    }
    this.pushRoutes();

    await this.deps.nextHops?.start();
    this.deps.nextHops?.onChange(() => this.speaker?.nextHopsChanged());
    this.speaker = this.deps.makeSpeaker(this.speakerSettings(restarting));
    this.speaker.onBestRoutes((changes) => this.onBestRoutes(changes));
    // Kernel routes from before the restart that selection did not confirm are stale: they go.
    this.speaker.onSelectionDone(() => this.dropKept('selection after the restart is done'));
    this.speaker.setOriginated(this.config.podCIDRs);
    this.speaker.setPeers(this.speakerPeers());
    await this.speaker.start();
    log.info({ routerId: this.config.routerId, asn: this.config.asn, peers: this.config.peers.length }, 'bgp speaker started');

    this.statusServer = await startStatusServer(this.config.statusSocket, this);
    if (this.config.metricsPort !== undefined) {
      this.metrics = await startMetricsServer(this.config.metricsPort, '0.0.0.0', this);
    }
    await this.applyNat();
    if (this.config.cniServer.enabled && this.deps.startCniServer) {
      this.cniServer = await this.deps.startCniServer(this.config.cniServer.addrFile);
    }
    log.info({ node: this.config.nodeName, podCIDRs: this.config.podCIDRs }, 'agent ready');
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
      maxPrefixes: c.maxPrefixes,
      ...(c.clusterId ? { clusterId: c.clusterId } : {}),
      ...(this.deps.nextHops ? { nextHops: this.deps.nextHops } : {}),
    };
  }

  private speakerPeers(): SpeakerPeer[] {
    return this.config.peers.map((p) => ({ ...p, type: peerType(p, this.config.asn) }));
  }

  private onBestRoutes(changes: BestRouteChange[]): void {
    for (const { prefix, nextHops } of changes) {
      if (nextHops.length) this.learned.set(prefix, nextHops);
      else this.learned.delete(prefix);
      // A kept route the speaker has now decided on (learned or withdrawn) is the speaker's again.
      this.kept = this.kept.filter((k) => k.prefix !== prefix);
    }
    this.pushRoutes();
  }

  private dropKept(reason: string): void {
    clearTimeout(this.keptTimer);
    if (this.kept.length === 0) return;
    this.deps.log.info({ routes: this.kept.length, reason }, 'restart: dropping routes not relearned');
    this.kept = [];
    this.pushRoutes();
  }

  private pushRoutes(): void {
    this.deps.routes.setDesired(desiredRoutes(this.config.podCIDRs, this.learned, this.kept));
  }

  private async applyNat(): Promise<void> {
    if (this.config.natOutgoing) {
      const cluster = this.config.clusterCIDRs ?? this.config.importCIDRs;
      await applyNat(this.config.podCIDRs, cluster);
      this.natApplied = true;
    } else if (this.natApplied) {
      await removeNat();
      this.natApplied = false;
    }
  }

  /** Applies a new config live: peers, originated CIDRs, NAT. A new router id or ASN restarts the speaker. */
  async reload(next: AgentConfig): Promise<void> {
    const previous = this.config;
    this.config = next;
    if (next.routerId !== previous.routerId || next.asn !== previous.asn || !this.speaker) {
      await this.speaker?.stop({ graceful: false });
      this.learned.clear();
      this.speaker = this.deps.makeSpeaker(this.speakerSettings(false));
      this.speaker.onBestRoutes((changes) => this.onBestRoutes(changes));
      this.speaker.setOriginated(next.podCIDRs);
      this.speaker.setPeers(this.speakerPeers());
      await this.speaker.start();
    } else {
      this.speaker.setImportPolicy({ importCIDRs: next.importCIDRs, allowDefaultRoute: next.allowDefaultRoute, maxPrefixes: next.maxPrefixes });
      this.speaker.setOriginated(next.podCIDRs);
      this.speaker.setPeers(this.speakerPeers());
    }
    this.pushRoutes();
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
    if (!graceful && this.natApplied) await removeNat();
    this.deps.log.info({ graceful }, 'agent stopped');
  }

  // ---- StatusSource ----
  bgpStatus(): BgpStatus {
    return { node: this.config.nodeName, routerId: this.config.routerId, asn: this.config.asn, peers: this.speaker?.peerStatus() ?? [] };
  }

  routes(): InstalledRoute[] {
    return this.deps.routes.installed();
  }

  node(): NodeInfo {
    return { nodeName: this.config.nodeName, podCIDRs: this.config.podCIDRs };
  }
}
