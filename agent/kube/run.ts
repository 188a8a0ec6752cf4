// Kubernetes mode from start to stop. Health endpoints come first and the kernel is left as it is
// (routes and blackholes of a previous run keep forwarding); BGP starts once our Node is known;
// readiness and NetworkUnavailable follow one rule (readiness.ts) and name what is missing.
import type { Logger } from 'pino';
import { type AgentConfig, parseAgentConfig } from '../config.js';
import { startMetricsServer } from '../metrics.js';
import { type Blocker, type NetworkState, installedRouteOf, networkState } from '../readiness.js';
import type { StatusSource } from '../status.js';
import { ClusterWatch, type ClusterWatchOptions } from './cluster.js';
import type { DesiredBgp } from './desired.js';
import { advertisedRanges } from '../services/announce.js';
import { ServiceAdvertiser, type ServiceAdvertiserOptions } from '../services/advertiser.js';
import type { AnnouncedPrefix } from '../status.js';
import type { ApiEndpoint } from './kubeconfig.js';

/** What Kubernetes mode needs of the daemon (AgentDaemon in production). */
export interface NodeDaemon extends StatusSource {
  reload(config: AgentConfig): Promise<void>;
  stop(graceful: boolean): Promise<void>;
  /** Service prefixes to announce besides the pod CIDRs (docs/services.md). */
  setServiceAnnouncements?(announcements: AnnouncedPrefix[]): void;
}

export interface KubernetesModeDeps {
  api: ApiEndpoint;
  nodeName: string;
  /** The node-local settings file (statusSocket, listen, metricsPort...). */
  local: Record<string, unknown>;
  log: Logger;
  /** `services`: the Service prefixes to announce, in the speaker's first announcement already. */
  startDaemon(config: AgentConfig, services: AnnouncedPrefix[]): Promise<NodeDaemon>;
  /** How often the condition is checked against the node's state; default 5 s. */
  conditionIntervalMs?: number;
  watch?: ClusterWatchOptions;
  /** The allocator Lease's timing and the like (tests shorten it). */
  services?: Pick<ServiceAdvertiserOptions, 'lease' | 'writeConcurrency'>;
}

/**
 * The agent's config from the cluster's view. The NAT cluster set is every node's pod CIDRs plus the
 * configured cluster CIDRs (default: the import CIDRs), so pod-to-pod traffic between nodes is never
 * masqueraded even when no CIDR is configured.
 */
export function kubeAgentConfig(local: Record<string, unknown>, nodeName: string, d: DesiredBgp): AgentConfig {
  const { metricsPort: _served, ...rest } = local; // Kubernetes mode serves health before the daemon exists
  const configured = (local.clusterCIDRs as string[] | undefined) ?? d.importCIDRs;
  return parseAgentConfig(
    {
      ...rest,
      nodeName,
      routerId: d.routerId,
      asn: d.asn,
      podCIDRs: d.podCIDRs,
      peers: d.peers,
      importCIDRs: d.importCIDRs,
      maxPrefixes: d.maxPrefixes,
      natOutgoing: d.natOutgoing,
      natOutgoingV6: d.natOutgoingV6,
      holdTime: d.holdTime,
      clusterCIDRs: [...new Set([...configured, ...d.clusterPodCIDRs])],
      rejectCIDRs: advertisedRanges(d.services),
      ...(d.clusterId ? { clusterId: d.clusterId } : {}),
    },
    'cluster configuration',
  );
}

const WAITING_FOR_API: Blocker = { reason: 'WaitingForKubernetesAPI', message: 'the Nodes, BGPPeers and BGPConfigurations have not been listed yet' };

export class KubernetesMode implements StatusSource {
  readonly watch: ClusterWatch;
  readonly services: ServiceAdvertiser;
  private daemon?: NodeDaemon;
  private desired?: DesiredBgp;
  private applying: Promise<void> = Promise.resolve();
  private applyError?: Blocker;
  private metrics?: { port: number; close(): Promise<void> };
  private conditionTimer?: NodeJS.Timeout;
  private conditionRunning = false;
  private stopping = false;

  constructor(private readonly deps: KubernetesModeDeps) {
    const fallbackRouterId = typeof deps.local.routerId === 'string' ? deps.local.routerId : undefined;
    this.watch = new ClusterWatch(deps.api, deps.nodeName, deps.log, { ...deps.watch, ...(fallbackRouterId ? { fallbackRouterId } : {}) });
    this.services = new ServiceAdvertiser({ client: this.watch.client, nodeName: deps.nodeName, log: deps.log, ...deps.services, ...(deps.watch?.backoff ? { backoff: deps.watch.backoff } : {}) });
  }

  async start(): Promise<void> {
    const { log, local } = this.deps;
    if (typeof local.metricsPort === 'number') {
      this.metrics = await startMetricsServer(local.metricsPort, '0.0.0.0', this, () => this.blocker());
    }
    this.services.on('announcements', (list) => this.daemon?.setServiceAnnouncements?.(list));
    this.services.start();
    this.watch.on('desired', (d: DesiredBgp) => {
      this.services.setConfig(d.services);
      this.desired = d;
      this.applying = this.applying.then(() => this.apply(d));
    });
    this.watch.start();
    this.conditionTimer = setInterval(() => void this.updateCondition(), this.deps.conditionIntervalMs ?? 5_000);
    log.info({ node: this.deps.nodeName }, 'kubernetes mode: waiting for the cluster state before starting BGP');
  }

  /** Port of the health/metrics server (tests listen on port 0). */
  metricsPort(): number | undefined {
    return this.metrics?.port;
  }

  /** Why the node is not up, apart from BGP: the API not listed yet, a node problem, a failed apply. */
  blocker(): Blocker | undefined {
    if (!this.desired) return WAITING_FOR_API;
    if (this.desired.problem) return this.desired.problem;
    if (!this.daemon) return this.applyError ?? { reason: 'Starting', message: 'the BGP speaker is starting' };
    return this.applyError;
  }

  state(): NetworkState {
    return networkState(this.bgpStatus().peers, this.node().podCIDRs, this.daemon ? installedRouteOf(this.daemon) : () => undefined, this.blocker());
  }

  private async apply(d: DesiredBgp): Promise<void> {
    if (this.stopping || d !== this.desired) return; // a newer state is queued behind this one
    const { log, local, nodeName } = this.deps;
    // Without a router id (or with our Node gone from the API) there is nothing sound to run BGP
    // with: a running speaker keeps its last settings, a new one waits.
    if (!d.routerId || d.problem?.reason === 'NodeNotFound') {
      void this.updateCondition();
      return;
    }
    try {
      const config = kubeAgentConfig(local, nodeName, d);
      if (this.daemon) await this.daemon.reload(config);
      else {
        // Service prefixes are in the first announcement after a restart, so that peers holding ours
        // under graceful restart do not drop them at our End-of-RIB (bounded: a missing RBAC rule must not stop BGP).
        // Handed to the daemon before its speaker starts: set after the start, they missed the first
        // announcement whenever the session came up while the start finished (status, metrics, NAT),
        // and the peers dropped them at our End-of-RIB (a gap at the top of rack, found in the lab).
        await this.servicesListed(10_000);
        this.daemon = await this.deps.startDaemon(config, this.services.current() ?? []);
        this.daemon.setServiceAnnouncements?.(this.services.current() ?? []); // changed during the start
      }
      this.applyError = undefined;
    } catch (err) {
      log.error({ err: (err as Error).message }, 'applying the cluster configuration failed');
      this.applyError = { reason: 'ConfigurationFailed', message: (err as Error).message };
    }
    void this.updateCondition();
  }

  private async servicesListed(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.services.current() === undefined && Date.now() < deadline && !this.stopping) await new Promise((r) => setTimeout(r, 50));
  }

  /** Patches NetworkUnavailable when the state's status or reason changed (ClusterWatch decides). */
  private async updateCondition(): Promise<void> {
    if (this.conditionRunning || this.stopping || !this.watch.self()) return;
    this.conditionRunning = true;
    try {
      const s = this.state();
      await this.watch.setNetworkCondition({ unavailable: !s.ready, reason: s.reason, message: s.message });
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'cannot set the NetworkUnavailable condition; will retry');
    } finally {
      this.conditionRunning = false;
    }
  }

  /**
   * Shutdown: NetworkUnavailable=True (LightlyIsDown) as Calico sets it, bounded so an absent API
   * server cannot hold up the exit; then the daemon (graceful keeps routes and peers' hold on ours).
   */
  async stop(graceful: boolean): Promise<void> {
    this.stopping = true;
    clearInterval(this.conditionTimer);
    await this.applying;
    if (this.watch.self()) {
      const down = this.watch.setNetworkCondition({ unavailable: true, reason: 'LightlyIsDown', message: 'the Lightly agent is stopping' }, { force: true });
      await Promise.race([down.catch((err: Error) => this.deps.log.warn({ err: err.message }, 'cannot set NetworkUnavailable on shutdown')), new Promise((r) => setTimeout(r, 3_000))]);
    }
    await this.watch.stop();
    await this.services.stop();
    await this.daemon?.stop(graceful);
    await this.metrics?.close();
  }

  // ---- StatusSource: the daemon's once it runs ----
  bgpStatus(): ReturnType<StatusSource['bgpStatus']> {
    return this.daemon?.bgpStatus() ?? { node: this.deps.nodeName, routerId: this.desired?.routerId ?? '', asn: this.desired?.asn ?? 0, peers: [] };
  }

  routes(): ReturnType<StatusSource['routes']> {
    return this.daemon?.routes() ?? [];
  }

  node(): ReturnType<StatusSource['node']> {
    return this.daemon?.node() ?? { nodeName: this.deps.nodeName, podCIDRs: this.desired?.podCIDRs ?? [] };
  }

  cniStats(): ReturnType<NonNullable<StatusSource['cniStats']>> {
    return this.daemon?.cniStats?.();
  }
}
