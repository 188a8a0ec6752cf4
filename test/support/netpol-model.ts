// The upstream network policy e2e model (test/e2e/network/netpol in kubernetes/kubernetes) on the lab:
// namespaces x, y, z with pods a, b, c, each serving TCP and UDP on 80 and 81, objects in the fake
// API, and a probe matrix from every pod to every other pod and port. Expectations are Reachability
// tables a test writes by hand; nothing here knows how policies are compiled.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { type ResultPromise, execa } from 'execa';
import { expect, it } from 'vitest';
import { down, up } from '../../deploy/lab/lab.js';
import type { LabStack } from '../../deploy/lab/ip-families.js';
import type { LabNode, LabPod } from '../../deploy/lab/topology.js';
import { getJson } from '../../agent/ctl/client.js';
import { NAMESPACES as NAMESPACES_PATH, NETWORK_POLICIES, PODS, fakeKubeRequest } from './fake-kube.js';
import { fabricApi } from './lab-kube.js';
import { requireNetworkTools } from './netns.js';
import type { ProbeTarget } from './netpol-probe.js';
import { until } from './wait.js';

export const MODEL_NAMESPACES = ['x', 'y', 'z'] as const;
export const MODEL_PODS = ['a', 'b', 'c'] as const;
export const ALL = MODEL_NAMESPACES.flatMap((ns) => MODEL_PODS.map((p) => `${ns}/${p}`));
export const PORTS = ['tcp/80', 'tcp/81', 'udp/80', 'udp/81'] as const;
export type PortKey = (typeof PORTS)[number];
export const TCP: readonly PortKey[] = ['tcp/80', 'tcp/81'];
export const UDP: readonly PortKey[] = ['udp/80', 'udp/81'];

/** The pods of a namespace, e.g. ns('x') = x/a, x/b, x/c. */
export const ns = (name: string): string[] => MODEL_PODS.map((p) => `${name}/${p}`);

/**
 * A truth table, from → to on each port, as upstream's Reachability: start all open (or all closed),
 * then mark what the policies under test change. A pod to itself is not probed (loopback never
 * crosses its veth; upstream ignores it too).
 */
export class Reachability {
  private readonly cells = new Map<string, boolean>();

  constructor(open = true) {
    for (const from of ALL) for (const to of ALL) if (from !== to) for (const port of PORTS) this.cells.set(Reachability.key(from, to, port), open);
  }

  static key(from: string, to: string, port: PortKey): string {
    return `${from} -> ${to} ${port}`;
  }

  expect(from: string | string[], to: string | string[], allowed: boolean, ports: readonly PortKey[] = PORTS): this {
    for (const f of [from].flat()) for (const t of [to].flat()) if (f !== t) for (const p of ports) this.cells.set(Reachability.key(f, t, p), allowed);
    return this;
  }

  get(key: string): boolean {
    return this.cells.get(key)!;
  }

  keys(): string[] {
    return [...this.cells.keys()];
  }
}

export interface Placement {
  node: LabNode;
  pod: LabPod;
}

/** Pod objects as a kubelet would report them: labels, node, addresses, the model's named ports. */
export function podObject(key: string, place: Placement, labels: Record<string, string>) {
  const [namespace, name] = key.split('/') as [string, string];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace, name, labels },
    spec: {
      nodeName: place.node.name,
      containers: [{ name: 'serve', ports: PORTS.map((p) => ({ name: `serve-${p.split('/')[1]}-${p.split('/')[0]}`, containerPort: Number(p.split('/')[1]), protocol: p.split('/')[0]!.toUpperCase() })) }],
    },
    status: { phase: 'Running', ...(place.pod.ip ? { podIP: place.pod.ip, podIPs: [place.pod.ip, place.pod.ip6].flatMap((ip) => (ip ? [{ ip }] : [])) } : {}) },
  };
}

/** The address family a matrix is probed over (a dual-stack lab's pods have both). */
export type ProbeFamily = 4 | 6;

type Collection = 'pods' | 'namespaces' | 'policies';

export class NetpolModel {
  private readonly probes: ResultPromise[] = [];
  /** The newest resourceVersion this test wrote, per collection: agents must have applied it. */
  private readonly written: Record<Collection, number> = { pods: 0, namespaces: 0, policies: 0 };
  private readonly touchedPods = new Set<string>();
  private readonly touchedNamespaces = new Set<string>();

  constructor(
    private readonly control: string,
    private readonly dir: string,
    readonly placement: Map<string, Placement>,
    private readonly nodes: LabNode[],
  ) {}

  ip(key: string): string {
    return this.placement.get(key)!.pod.ip!;
  }

  /** The pod's IPv6 address (dual-stack lab). */
  ip6(key: string): string {
    const ip = this.placement.get(key)!.pod.ip6;
    if (!ip) throw new Error(`${key} has no IPv6 address: the lab is not dual stack`);
    return ip;
  }

  private probeArgs(netns: string, socket: string, ipv6: boolean): string[] {
    return ['netns', 'exec', netns, process.execPath, '--import', 'tsx', 'test/support/netpol-probe.ts', '--socket', socket, ...(ipv6 ? ['--ipv6'] : [])];
  }

  private kube(method: string, path: string, body?: unknown) {
    return fakeKubeRequest(this.control, method, path, body);
  }

  private async write(collection: Collection, method: string, path: string, body?: unknown): Promise<any> {
    const res = await this.kube(method, path, body);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    this.written[collection] = Math.max(this.written[collection], Number(res.body.metadata.resourceVersion));
    return res.body;
  }

  /** Namespaces with the default name label (and `ns`), pods with `pod`, probe servers in every pod. */
  async setup(): Promise<void> {
    for (const name of MODEL_NAMESPACES) await this.write('namespaces', 'POST', NAMESPACES_PATH, this.namespaceObject(name, {}));
    for (const [key, place] of this.placement) {
      await this.write('pods', 'POST', `/api/v1/namespaces/${key.split('/')[0]}/pods`, podObject(key, place, { pod: key.split('/')[1]! }));
      const socket = join(this.dir, `probe-${key.replace('/', '-')}.sock`);
      this.probes.push(execa('ip', this.probeArgs(place.pod.netns, socket, Boolean(place.pod.ip6)), { reject: false, stdin: 'pipe' }));
    }
    await until('every probe server', () => [...this.placement.keys()].every((k) => existsSync(this.probeSocket(k))), 30_000);
    await this.settle();
  }

  /** A probe server in any namespace (a pod outside the model), known by `name` to probeFrom. */
  async serve(name: string, netns: string, ipv6 = false): Promise<void> {
    this.probes.push(execa('ip', this.probeArgs(netns, this.probeSocket(name), ipv6), { reject: false, stdin: 'pipe' }));
    await until(`the probe server of ${name}`, () => existsSync(this.probeSocket(name)), 30_000);
  }

  /** One probe from a model pod (or a server started by serve) to an address. */
  async probeFrom(from: string, target: ProbeTarget, timeoutMs = 1_000): Promise<boolean> {
    const res = await fakeKubeRequest(this.probeSocket(from), 'POST', '/probe', { timeoutMs, targets: [target] });
    return (res.body as boolean[])[0]!;
  }

  private probeSocket(key: string): string {
    return join(this.dir, `probe-${key.replace('/', '-')}.sock`);
  }

  private namespaceObject(name: string, labels: Record<string, string>) {
    return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ns: name, ...labels } } };
  }

  createPolicy(namespace: string, name: string, spec: Record<string, unknown>): Promise<unknown> {
    return this.write('policies', 'PUT', `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies/${name}`, { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec });
  }

  deletePolicy(namespace: string, name: string): Promise<unknown> {
    return this.write('policies', 'DELETE', `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies/${name}`);
  }

  /** Replaces a pod's labels (the model's `pod` label stays unless overridden). */
  labelPod(key: string, labels: Record<string, string>): Promise<unknown> {
    this.touchedPods.add(key);
    return this.write('pods', 'PUT', `/api/v1/namespaces/${key.split('/')[0]}/pods/${key.split('/')[1]}`, podObject(key, this.placement.get(key)!, { pod: key.split('/')[1]!, ...labels }));
  }

  labelNamespace(name: string, labels: Record<string, string>): Promise<unknown> {
    this.touchedNamespaces.add(name);
    return this.write('namespaces', 'PUT', `${NAMESPACES_PATH}/${name}`, this.namespaceObject(name, labels));
  }

  /** Any Pod object (one not in the model: the race test's new pod). */
  putPod(namespace: string, object: Record<string, unknown>): Promise<unknown> {
    const name = (object as { metadata: { name: string } }).metadata.name;
    return this.write('pods', 'PUT', `/api/v1/namespaces/${namespace}/pods/${name}`, object);
  }

  deletePod(namespace: string, name: string): Promise<unknown> {
    return this.write('pods', 'DELETE', `/api/v1/namespaces/${namespace}/pods/${name}`);
  }

  /** Back to the model's start: no policies, original labels. */
  async reset(): Promise<void> {
    const policies = (await this.kube('GET', NETWORK_POLICIES)).body.items as { metadata: { name: string; namespace: string } }[];
    for (const p of policies) await this.deletePolicy(p.metadata.namespace, p.metadata.name);
    for (const key of this.touchedPods) await this.labelPod(key, {});
    for (const name of this.touchedNamespaces) await this.labelNamespace(name, {});
    this.touchedPods.clear();
    this.touchedNamespaces.clear();
  }

  /** Every agent's kernel reflects everything written so far (the versions its status reports). */
  async settle(timeoutMs = 30_000): Promise<void> {
    let last = '';
    await until(
      'every agent to apply the latest objects',
      async () => {
        const states = await Promise.all(this.nodes.map((n) => getJson<{ applied: Record<Collection, string>; lastError?: string }>(n.statusSocket, '/v1/policy').catch(() => undefined)));
        last = JSON.stringify(states);
        return states.every((s) => s && (Object.keys(this.written) as Collection[]).every((c) => Number(s.applied[c]) >= this.written[c]));
      },
      timeoutMs,
      { pollMs: 25, context: () => `written ${JSON.stringify(this.written)}, agents ${last}` },
    );
  }

  /** One probe per cell over one family, all pods in parallel; `only` limits it to some cells. */
  async probe(timeoutMs: number, only?: Set<string>, family: ProbeFamily = 4): Promise<Map<string, boolean>> {
    const seen = new Map<string, boolean>();
    await Promise.all(
      ALL.map(async (from) => {
        const cells: { key: string; target: ProbeTarget }[] = [];
        for (const to of ALL) {
          if (to === from) continue;
          for (const port of PORTS) {
            const key = Reachability.key(from, to, port);
            if (!only || only.has(key)) cells.push({ key, target: { ip: family === 6 ? this.ip6(to) : this.ip(to), port: Number(port.split('/')[1]), protocol: port.split('/')[0] as 'tcp' | 'udp' } });
          }
        }
        if (!cells.length) return;
        const res = await fakeKubeRequest(this.probeSocket(from), 'POST', '/probe', { timeoutMs, targets: cells.map((c) => c.target) });
        cells.forEach((c, i) => seen.set(c.key, (res.body as boolean[])[i]!));
      }),
    );
    return seen;
  }

  /**
   * The matrix against the expectation: one fast pass, then the cells that failed to connect though
   * expected open once more with a long deadline (a loaded machine, not a policy). Returns the wrong cells.
   */
  async mismatches(expected: Reachability, family: ProbeFamily = 4): Promise<string[]> {
    await this.settle();
    const seen = await this.probe(1_000, undefined, family);
    const slow = new Set(expected.keys().filter((k) => expected.get(k) && !seen.get(k)));
    if (slow.size) for (const [k, v] of await this.probe(3_000, slow, family)) seen.set(k, v);
    return expected.keys().filter((k) => seen.get(k) !== expected.get(k)).map((k) => `${k}: expected ${expected.get(k) ? 'allowed' : 'denied'}, saw ${seen.get(k) ? 'allowed' : 'denied'}`);
  }

  async stop(): Promise<void> {
    for (const p of this.probes) p.kill('SIGTERM');
    await Promise.all(this.probes);
  }
}

/** node-1 holds x/a x/b y/a y/c z/b; node-2 x/c y/b z/a z/c; the last lab pods stay spare (no Pod object). */
export const ON_NODE_1 = ['x/a', 'x/b', 'y/a', 'y/c', 'z/b'];
export const ON_NODE_2 = ['x/c', 'y/b', 'z/a', 'z/c'];

export const podIs = (value: string) => ({ matchLabels: { pod: value } });
export const nsIs = (value: string) => ({ matchLabels: { 'kubernetes.io/metadata.name': value } });
export const open = () => new Reachability(true);

/** A case of the upstream suite: steps, each a change to the API and the matrix it must give. */
export interface Step {
  act(m: NetpolModel): Promise<unknown>;
  expected(m: NetpolModel): Reachability;
}
export interface Case {
  name: string;
  steps: Step[];
}
export const one = (name: string, act: Step['act'], expected: Step['expected']): Case => ({ name, steps: [{ act, expected }] });

/** One test per case, each probed over `family` and ending with the model reset. */
export function caseTests(cases: Case[], model: () => NetpolModel, family: ProbeFamily = 4): void {
  for (const c of cases) {
    it(c.name, async () => {
      try {
        for (const [i, step] of c.steps.entries()) {
          await step.act(model());
          expect(await model().mismatches(step.expected(model()), family), `step ${i + 1}`).toEqual([]);
        }
      } finally {
        await model().reset();
      }
    }, 60_000);
  }
}

export interface ModelLab {
  nodes: LabNode[];
  model: NetpolModel;
  stop(): Promise<void>;
}

/**
 * The model on a two-node lab in Kubernetes mode against the fake API (six pods a node, the sixth of
 * node-1 spare), in the lab's address families; torn down whole if it fails half built.
 */
export async function modelLab(stack: LabStack = 'ipv4'): Promise<ModelLab> {
  await requireNetworkTools(['ip', 'nsenter', 'nft']);
  if (!existsSync('dist/bin/lightly-agent.js')) throw new Error('dist/bin/lightly-agent.js is missing: run npm run build (scripts/test.sh does)');
  const prefix = `lt-${randomBytes(2).toString('hex')}-`;
  const dir = mkdtempSync(join(tmpdir(), 'lt-netpol-'));
  const stateDir = join(dir, 'state');
  const api = fabricApi(dir);
  let model: NetpolModel | undefined;
  const stop = async (): Promise<void> => {
    await model?.stop();
    await down(stateDir, prefix, () => undefined);
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const state = await up({ nodes: 2, pods: 6, prefix, stateDir, holdTime: 3, tor: 'mesh', stack, kubeconfig: api.kubeconfig }, () => undefined, { afterFabric: (plan) => api.afterFabric(plan) });
    const nodes = state.plan.nodes;
    const placement = new Map<string, Placement>();
    ON_NODE_1.forEach((key, i) => placement.set(key, { node: nodes[0]!, pod: nodes[0]!.pods[i]! }));
    ON_NODE_2.forEach((key, i) => placement.set(key, { node: nodes[1]!, pod: nodes[1]!.pods[i]! }));
    model = new NetpolModel(api.control, dir, placement, nodes);
    await model.setup();
    return { nodes, model, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
