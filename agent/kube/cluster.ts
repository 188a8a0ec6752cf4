// Kubernetes mode's shell: informers on Nodes, BGPPeers and BGPConfiguration feed `desiredBgp`;
// the node's NetworkUnavailable condition is patched from here.
import { EventEmitter } from 'node:events';
import {
  CoreV1Api,
  CustomObjectsApi,
  type Informer,
  type ObjectCache,
  type KubeConfig,
  type KubernetesObject,
  PatchStrategy,
  type V1Node,
  makeInformer,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { type BgpConfigurationSpec, type BgpPeerSpec, type ClusterNode, DEFAULT_BGP_CONFIGURATION, type DesiredBgp, desiredBgp } from './desired.js';

export const CRD_GROUP = 'lightly.dev';
export const CRD_VERSION = 'v1alpha1';

interface CustomObject<S> extends KubernetesObject {
  spec?: S;
}

export function toClusterNode(node: V1Node): ClusterNode {
  const podCIDRs = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
  return {
    name: node.metadata?.name ?? '',
    labels: node.metadata?.labels ?? {},
    internalIPs: (node.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address),
    podCIDRs,
  };
}

type Log = { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };

/**
 * Emits 'desired' (DesiredBgp) after the first full listing and on every change that alters it.
 * Informers restart themselves after API errors (bounded back-off), so a flapping API server only
 * delays updates; the agent keeps its last desired state meanwhile.
 */
export class ClusterWatch extends EventEmitter {
  private readonly informers: (Informer<KubernetesObject> & ObjectCache<KubernetesObject>)[] = [];
  private last = '';
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly core: CoreV1Api;

  constructor(
    private readonly kc: KubeConfig,
    private readonly nodeName: string,
    private readonly log: Log,
  ) {
    super();
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async start(): Promise<void> {
    const custom = this.kc.makeApiClient(CustomObjectsApi);
    const listCustom = (plural: string) => () =>
      custom.listClusterCustomObject({ group: CRD_GROUP, version: CRD_VERSION, plural }) as Promise<any>;
    this.informers.push(
      makeInformer<KubernetesObject>(this.kc, '/api/v1/nodes', () => this.core.listNode() as Promise<any>),
      makeInformer<KubernetesObject>(this.kc, `/apis/${CRD_GROUP}/${CRD_VERSION}/bgppeers`, listCustom('bgppeers')),
      makeInformer<KubernetesObject>(this.kc, `/apis/${CRD_GROUP}/${CRD_VERSION}/bgpconfigurations`, listCustom('bgpconfigurations')),
    );
    for (const informer of this.informers) {
      informer.on('add', () => this.schedule());
      informer.on('update', () => this.schedule());
      informer.on('delete', () => this.schedule());
      informer.on('error', (err: unknown) => {
        if (this.stopped) return;
        this.log.warn({ err: String(err) }, 'kubernetes watch failed; retrying');
        setTimeout(() => void (this.stopped ? undefined : informer.start().catch(() => undefined)), 2_000);
      });
    }
    await Promise.all(this.informers.map((i) => i.start()));
    this.recompute();
    await this.ensureDefaultConfiguration(custom);
  }

  /**
   * Creates the `default` BGPConfiguration when there is none, as Calico's node does for its defaults:
   * `kubectl apply -k deploy/` cannot create it with its CRD in one go. Every agent tries; one wins,
   * the others get 409. The values are the ones the agents use without it, so nothing changes.
   */
  private async ensureDefaultConfiguration(custom: CustomObjectsApi): Promise<void> {
    const configs = this.informers[2]!.list() as CustomObject<BgpConfigurationSpec>[];
    if (configs.some((c) => c.metadata?.name === 'default')) return;
    try {
      await custom.createClusterCustomObject({
        group: CRD_GROUP,
        version: CRD_VERSION,
        plural: 'bgpconfigurations',
        body: { apiVersion: `${CRD_GROUP}/${CRD_VERSION}`, kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: DEFAULT_BGP_CONFIGURATION },
      });
      this.log.info({}, 'created the default BGPConfiguration');
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code !== 409) this.log.warn({ err: String(err) }, 'cannot create the default BGPConfiguration; using built-in defaults');
    }
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.recompute(), 20); // coalesce bursts of events
  }

  current(): DesiredBgp {
    const [nodes, peers, configs] = this.informers.map((i) => i.list());
    const config = (configs as CustomObject<BgpConfigurationSpec>[] | undefined)?.find((c) => c.metadata?.name === 'default');
    const bgpPeers: BgpPeerSpec[] = ((peers ?? []) as CustomObject<Omit<BgpPeerSpec, 'name'>>[])
      .filter((p) => p.spec?.peerIP && p.spec.asn)
      .map((p) => ({ name: p.metadata?.name ?? '', ...p.spec! }));
    return desiredBgp(this.nodeName, ((nodes ?? []) as V1Node[]).map(toClusterNode), config?.spec ?? {}, bgpPeers);
  }

  private recompute(): void {
    if (this.stopped) return;
    const desired = this.current();
    const key = JSON.stringify(desired);
    if (key === this.last) return;
    this.last = key;
    this.emit('desired', desired);
  }

  /** NetworkUnavailable=False once our routes are programmed (reason LightlyIsUp), True on failure. */
  async setNetworkUnavailable(unavailable: boolean, message: string): Promise<void> {
    const now = new Date().toISOString();
    const condition = {
      type: 'NetworkUnavailable',
      status: unavailable ? 'True' : 'False',
      reason: unavailable ? 'LightlyIsDown' : 'LightlyIsUp',
      message,
      lastTransitionTime: now,
      lastHeartbeatTime: now,
    };
    // Strategic merge: conditions merge by type, so other controllers' conditions stay.
    await this.core.patchNodeStatus(
      { name: this.nodeName, body: { status: { conditions: [condition] } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const informer of this.informers) void informer.stop();
  }
}
