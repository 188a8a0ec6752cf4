// Kubernetes mode's shell: reflectors on Nodes, BGPPeers and BGPConfigurations feed `desiredBgp`;
// bad objects are skipped and reported; the node's NetworkUnavailable condition is patched from here.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { KubeClient } from './client.js';
import type { ApiEndpoint } from './kubeconfig.js';
import { type BgpConfigurationSpec, type BgpPeerSpec, type ClusterNode, DEFAULT_BGP_CONFIGURATION, type DesiredBgp, desiredBgp } from './desired.js';
import { EventReporter } from './events.js';
import { type Checked, type SlimSecret, checkBgpConfiguration, checkBgpPeer, slimNode, slimSecret } from './objects.js';
import { Reflector } from './reflector.js';

export const CRD_GROUP = 'lightly.dev';
export const CRD_VERSION = 'v1alpha1';
export const NODES_PATH = '/api/v1/nodes';
const BGP_PEERS_PATH = `/apis/${CRD_GROUP}/${CRD_VERSION}/bgppeers`;
const BGP_CONFIGURATIONS_PATH = `/apis/${CRD_GROUP}/${CRD_VERSION}/bgpconfigurations`;

/** The NetworkUnavailable condition as we set it. */
export interface NetworkCondition {
  unavailable: boolean;
  reason: string;
  message: string;
}

export interface ClusterWatchOptions {
  /** Retry pacing while the API server is away (tests shorten it). */
  backoff?: { baseMs: number; capMs: number };
  random?: () => number;
  /** A request without a byte for this long fails (default 15 s). */
  requestIdleMs?: number;
  /** The router id when our Node has neither the annotation nor an IPv4 InternalIP (the node-local file's routerId). */
  fallbackRouterId?: string;
  /** Where BGPPeer passwords' Secrets are: the agent's own namespace (default: POD_NAMESPACE, else kube-system). */
  secretsNamespace?: string;
}

type Log = Pick<Logger, 'info' | 'warn'>;

/**
 * Emits 'desired' (DesiredBgp) once all three collections are listed (a CRD not installed counts as
 * listed and empty) and on every change that alters it. While the API server is away the last
 * listing stands: nothing is emitted, nothing is dropped.
 */
export class ClusterWatch extends EventEmitter {
  readonly client: KubeClient;
  private readonly nodes: Reflector<ClusterNode>;
  private readonly peers: Reflector<Checked<BgpPeerSpec>>;
  private readonly configs: Reflector<Checked<BgpConfigurationSpec>>;
  /** Secrets of our namespace: BGPPeer passwords (secretKeyRef) come from them. */
  private readonly secrets: Reflector<SlimSecret>;
  readonly secretsNamespace: string;
  /** Each BGPPeer problem (a missing Secret, say) reported once per change. */
  private reportedPeerProblems = '';
  private readonly events: EventReporter;
  private last = '';
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private defaultEnsured = false;
  /** What was reported about each bad object (by kind/name), so each version is logged once. */
  private readonly reported = new Map<string, string>();
  private reportedProblem = '';
  private lastPatch?: { key: string; at: number };

  constructor(
    endpoint: ApiEndpoint,
    private readonly nodeName: string,
    private readonly log: Log,
    private readonly options: ClusterWatchOptions = {},
  ) {
    super();
    this.client = new KubeClient(endpoint, options.requestIdleMs);
    this.events = new EventReporter(this.client, nodeName, log);
    const common = { client: this.client, log, onChange: () => this.schedule(), backoff: options.backoff, random: options.random };
    this.nodes = new Reflector<ClusterNode>({ ...common, path: NODES_PATH, transform: (raw) => slimNode(raw) });
    // The CRDs may be installed after the agent: until then there are no BGPPeers and the default
    // configuration holds, and BGP runs from the Nodes alone.
    this.peers = new Reflector<Checked<BgpPeerSpec>>({ ...common, optional: true, path: BGP_PEERS_PATH, transform: (raw) => checkBgpPeer(raw) });
    // A configuration that turns invalid keeps its last valid spec: falling back to the defaults
    // could change the ASN under every session in the cluster.
    this.configs = new Reflector<Checked<BgpConfigurationSpec>>({
      ...common,
      optional: true,
      path: BGP_CONFIGURATIONS_PATH,
      transform: (raw, previous) => {
        const checked = checkBgpConfiguration(raw);
        return checked.invalid && previous?.spec ? { ...checked, spec: previous.spec } : checked;
      },
    });
    this.secretsNamespace = options.secretsNamespace ?? process.env.POD_NAMESPACE ?? 'kube-system';
    this.secrets = new Reflector<SlimSecret>({ ...common, optional: true, path: `/api/v1/namespaces/${encodeURIComponent(this.secretsNamespace)}/secrets`, transform: (raw) => slimSecret(raw) });
  }

  /** Starts listing and watching in the background; 'desired' follows once everything is listed. */
  start(): void {
    for (const r of [this.nodes, this.peers, this.configs]) r.start();
  }

  /** A BGPPeer takes its password from a Secret: only then are Secrets read (least privilege, no noise without the grant). */
  private needsSecrets(): boolean {
    return [...this.peers.items.values()].some((p) => p.spec?.password);
  }

  /**
   * All three collections have been listed at least once, and the Secrets too when a BGPPeer takes
   * its password from one: a cluster without passwords (or without the Secrets grant) never waits for them.
   */
  synced(): boolean {
    return this.nodes.synced && this.peers.synced && this.configs.synced && (this.secrets.synced || !this.needsSecrets());
  }

  /** Our own Node as last seen. */
  self(): ClusterNode | undefined {
    return this.nodes.items.get(this.nodeName);
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.needsSecrets()) this.secrets.start(); // once: start() is idempotent
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.recompute(), 20); // coalesce bursts of events
  }

  /** This node's BGP settings from the cluster; undefined until everything is listed. */
  current(): DesiredBgp | undefined {
    if (!this.synced()) return undefined;
    const config = this.configs.items.get('default')?.spec ?? {};
    const peers = [...this.peers.items.values()].flatMap((p) => (p.spec ? [p.spec] : []));
    return desiredBgp(this.nodeName, [...this.nodes.items.values()], config, peers, this.options.fallbackRouterId, { namespace: this.secretsNamespace, secrets: this.secrets.items });
  }

  private recompute(): void {
    if (this.stopped || !this.synced()) return;
    this.reportInvalid();
    if (!this.defaultEnsured && this.configs.present) {
      this.defaultEnsured = true;
      void this.ensureDefaultConfiguration();
    }
    const desired = this.current()!;
    this.reportProblem(desired);
    this.reportPeerProblems(desired);
    const key = JSON.stringify(desired);
    if (key === this.last) return;
    this.last = key;
    this.emit('desired', desired);
  }

  /** Each invalid object once per version: a log line and an Event on the object; the rest applies. */
  private reportInvalid(): void {
    const seen = new Set<string>();
    for (const item of [...this.peers.items.values(), ...this.configs.items.values()]) {
      const id = `${item.ref.kind}/${item.ref.name}`;
      seen.add(id);
      if (!item.invalid) continue;
      const version = `${item.ref.resourceVersion}:${item.invalid}`;
      if (this.reported.get(id) === version) continue;
      this.reported.set(id, version);
      const kept = item.spec ? 'its last valid spec stays in use' : 'it is skipped';
      this.log.warn({ object: id, resourceVersion: item.ref.resourceVersion, err: item.invalid }, `invalid ${item.ref.kind}: ${kept}`);
      this.events.report(item.ref, 'InvalidSpec', `Lightly cannot use this ${item.ref.kind} (${kept}): ${item.invalid}`);
    }
    for (const id of this.reported.keys()) if (!seen.has(id)) this.reported.delete(id);
  }

  /** A node problem (no pod CIDR, no router id) once per change: a log line and an Event on our Node. */
  private reportProblem(desired: DesiredBgp): void {
    const key = desired.problem ? `${desired.problem.reason}:${desired.problem.message}` : '';
    if (key === this.reportedProblem) return;
    this.reportedProblem = key;
    if (!desired.problem) return;
    this.log.warn({ node: this.nodeName, reason: desired.problem.reason, err: desired.problem.message }, 'this node cannot be networked yet');
    const self = this.self();
    if (self) this.events.report({ kind: 'Node', apiVersion: 'v1', name: self.name, uid: self.uid ?? '', resourceVersion: '' }, desired.problem.reason, desired.problem.message);
  }

  /** BGPPeers left out for this node (a password's Secret missing): a log line and an Event on each, once per change. */
  private reportPeerProblems(desired: DesiredBgp): void {
    const key = JSON.stringify(desired.peerProblems ?? []);
    if (key === this.reportedPeerProblems) return;
    this.reportedPeerProblems = key;
    for (const { peer, message } of desired.peerProblems ?? []) {
      this.log.warn({ object: `BGPPeer/${peer}`, err: message }, 'BGPPeer left out for this node');
      const ref = [...this.peers.items.values()].find((p) => p.ref.name === peer)?.ref;
      if (ref) this.events.report(ref, 'PasswordUnavailable', `Lightly on ${this.nodeName} cannot use this BGPPeer: ${message}`);
    }
  }

  /**
   * Creates the `default` BGPConfiguration when there is none, as Calico's node does for its defaults:
   * `kubectl apply -k deploy/` cannot create it with its CRD in one go. Every agent tries; one wins,
   * the others get 409. The values are the ones the agents use without it, so nothing changes.
   */
  private async ensureDefaultConfiguration(): Promise<void> {
    if (this.configs.items.has('default')) return;
    try {
      const res = await this.client.request('POST', BGP_CONFIGURATIONS_PATH, {
        apiVersion: `${CRD_GROUP}/${CRD_VERSION}`,
        kind: 'BGPConfiguration',
        metadata: { name: 'default' },
        spec: DEFAULT_BGP_CONFIGURATION,
      });
      if (res.status < 300) this.log.info({}, 'created the default BGPConfiguration');
      else if (res.status !== 409) this.log.warn({ status: res.status, err: res.body?.message }, 'cannot create the default BGPConfiguration; using built-in defaults');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot create the default BGPConfiguration; using built-in defaults');
    }
  }

  /**
   * Sets our Node's NetworkUnavailable condition when its status or reason differs from what the API
   * has (other changes, such as a node joining, patch nothing). lastTransitionTime moves only when
   * the status does. The same patch is not repeated within 30 s while the watch catches up.
   */
  async setNetworkCondition(condition: NetworkCondition, options: { force?: boolean } = {}): Promise<boolean> {
    const status = condition.unavailable ? 'True' : 'False';
    const current = this.self()?.networkUnavailable;
    const key = `${status}/${condition.reason}`;
    if (!options.force) {
      if (current && current.status === status && current.reason === condition.reason) return false;
      if (this.lastPatch?.key === key && Date.now() - this.lastPatch.at < 30_000) return false;
    }
    const now = new Date().toISOString();
    const patch = {
      type: 'NetworkUnavailable',
      status,
      reason: condition.reason,
      message: condition.message,
      lastHeartbeatTime: now,
      ...(current?.status === status ? {} : { lastTransitionTime: now }),
    };
    // Strategic merge: conditions merge by type, so other controllers' conditions stay.
    await this.client.call('PATCH', `${NODES_PATH}/${encodeURIComponent(this.nodeName)}/status`, { status: { conditions: [patch] } }, 'application/strategic-merge-patch+json');
    this.lastPatch = { key, at: Date.now() };
    this.log.info({ status, reason: condition.reason }, 'NetworkUnavailable condition set');
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.all([this.nodes, this.peers, this.configs, this.secrets].map((r) => r.stop()));
  }
}
