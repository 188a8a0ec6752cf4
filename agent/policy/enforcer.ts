// Kubernetes mode's NetworkPolicy shell: reflectors on Pods, Namespaces and NetworkPolicies feed the pure
// compile and render; each batch of changes reaches the kernel as one `nft -f` transaction.
import type { Logger } from 'pino';
import { z } from 'zod';
import { KubeClient } from '../kube/client.js';
import type { ApiEndpoint } from '../kube/kubeconfig.js';
import { Reflector } from '../kube/reflector.js';
import { nft } from '../nat.js';
import type { FlowPort, PolicyFacts } from '../doctor/facts.js';
import { type CompiledNode, compileNode } from './compile.js';
import { type PodPolicyView, describePod } from './describe.js';
import { type NftRuleset, TABLE, renderRuleset, rulesetSize, updateText } from './nft.js';
import { type NetworkPolicy, type PolicyNamespace, type PolicyPod, namespacedKey, slimNamespace, slimNetworkPolicy, slimPod } from './objects.js';
import { policyFacts } from './verdict.js';

export const PODS_PATH = '/api/v1/pods';
export const NAMESPACES_PATH = '/api/v1/namespaces';
export const NETWORK_POLICIES_PATH = '/apis/networking.k8s.io/v1/networkpolicies';

/** The node-local settings' `networkPolicy` block. */
export const PolicySettings = z
  .object({
    enabled: z.boolean().default(true),
    /** Delete the table when the agent stops; by default it stays, so a restarting agent leaves pods protected. */
    removeOnStop: z.boolean().default(false),
  })
  .prefault({});
export type PolicySettings = z.infer<typeof PolicySettings>;

export interface PolicyStatus {
  synced: boolean;
  /** The resourceVersion of each collection that the kernel's ruleset reflects (tests wait on these). */
  applied: { pods: string; namespaces: string; policies: string };
  policies: number;
  pods: number;
  ruleset: { sets: number; elements: number; rules: number; bytes: number };
  lastError?: string;
}

export interface EnforcerOptions {
  api: ApiEndpoint;
  nodeName: string;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Runs nft in another namespace (tests); the agent runs it in its own. */
  netns?: string;
  backoff?: { baseMs: number; capMs: number };
}

export class PolicyEnforcer {
  private readonly pods: Reflector<PolicyPod>;
  private readonly namespaces: Reflector<PolicyNamespace>;
  private readonly policies: Reflector<NetworkPolicy>;
  private applied?: NftRuleset;
  /** The model the kernel's ruleset was rendered from: what doctor's verdicts read. */
  private model?: CompiledNode;
  private appliedVersions = { pods: '', namespaces: '', policies: '' };
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;
  private lastError?: string;
  private bytes = 0;

  constructor(private readonly options: EnforcerOptions) {
    const client = new KubeClient(options.api);
    const common = { client, log: options.log, onChange: () => this.schedule(), backoff: options.backoff };
    this.pods = new Reflector({ ...common, path: PODS_PATH, key: namespacedKey, transform: (raw) => slimPod(raw), pageSize: 500 });
    this.namespaces = new Reflector({ ...common, path: NAMESPACES_PATH, transform: (raw) => slimNamespace(raw) });
    this.policies = new Reflector({ ...common, path: NETWORK_POLICIES_PATH, key: namespacedKey, transform: (raw) => slimNetworkPolicy(raw) });
  }

  start(): void {
    for (const r of [this.pods, this.namespaces, this.policies]) r.start();
  }

  private synced(): boolean {
    return this.pods.synced && this.namespaces.synced && this.policies.synced;
  }

  private schedule(delayMs = 20): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.apply(), delayMs); // coalesce a burst of events into one transaction
  }

  /**
   * Until all three are listed nothing is applied: a table from before a restart keeps enforcing. A
   * failed transaction changes nothing in the kernel (nft applies all or nothing), so the next try
   * is a full replacement.
   */
  private async apply(): Promise<void> {
    if (this.stopped || !this.synced()) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      const versions = { pods: this.pods.version, namespaces: this.namespaces.version, policies: this.policies.version };
      const model = compileNode(this.options.nodeName, { pods: this.pods.items.values(), namespaces: this.namespaces.items.values(), policies: this.policies.items.values() });
      const next = renderRuleset(model);
      const text = updateText(this.applied, next);
      if (text) {
        const out = await nft(['-f', '-'], text, this.options.netns);
        if (out.exitCode !== 0) throw new Error(out.stderr.trim());
        if (!this.applied || text.startsWith('add table')) this.bytes = text.length;
        this.options.log.info({ ...rulesetSize(next), full: text.startsWith('add table'), versions }, 'network policy applied');
      }
      this.applied = next;
      this.model = model;
      this.appliedVersions = versions;
      this.lastError = undefined;
    } catch (err) {
      this.applied = undefined;
      this.model = undefined;
      this.lastError = (err as Error).message;
      this.options.log.error({ err: this.lastError }, 'applying network policy failed; retrying');
      this.schedule(1_000);
    } finally {
      this.running = false;
    }
    if (this.again) {
      this.again = false;
      this.schedule(0);
    }
  }

  status(): PolicyStatus {
    const size = this.applied ? rulesetSize(this.applied) : { sets: 0, elements: 0, rules: 0 };
    return {
      synced: this.synced(),
      applied: this.appliedVersions,
      policies: this.policies.items.size,
      pods: this.pods.items.size,
      ruleset: { ...size, bytes: this.bytes },
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** `namespace/name` of any pod in the cluster (the answer is the same on every node). */
  pod(key: string): PodPolicyView | undefined {
    return describePod(this.pods.items.get(key), this.policies.items.values());
  }

  /** doctor's policy facts for a flow between this node's pod `local` and `remote`, as the kernel enforces them now. */
  flowFacts(local: string, remote: string, port?: FlowPort): PolicyFacts {
    if (!this.model) return { enforced: true, synced: false };
    return policyFacts(this.model, this.pods.items.values(), local, remote, port);
  }

  /** The status socket's routes for `lightlyctl policy`. */
  statusRoutes(): Record<string, (url: URL) => unknown> {
    return {
      '/v1/policy': () => this.status(),
      '/v1/policy/pod': (url) => this.pod(url.searchParams.get('name') ?? '') ?? { error: `no pod ${url.searchParams.get('name') ?? ''} known` },
    };
  }

  async stop(removeTable: boolean): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.all([this.pods, this.namespaces, this.policies].map((r) => r.stop()));
    if (removeTable) await removePolicyTable(this.options.netns);
  }
}

/** Deletes our table (uninstall, or stop with removeOnStop); a missing table is fine; nothing else is touched. */
export async function removePolicyTable(netns?: string): Promise<void> {
  const out = await nft(['delete', 'table', 'inet', TABLE], undefined, netns);
  if (out.exitCode !== 0 && !/No such file or directory/.test(out.stderr)) throw new Error(`nft could not remove table inet ${TABLE}: ${out.stderr.trim()}`);
}
