// NetworkPolicy at scale: 1,000 pods and 500 policies in the fake API against a two-node lab in
// Kubernetes mode: time until every agent enforces them (live, and after an agent restart), the nft
// ruleset's size, and iperf3 pod-to-pod throughput through isolated pods vs the same pods with no policy.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { down, restartAgent, stopAgent, up } from '../../deploy/lab/lab.js';
import type { LabNode } from '../../deploy/lab/topology.js';
import { getJson } from '../../agent/ctl/client.js';
import { fabricApi } from '../support/lab-kube.js';
import { execIn } from '../support/netns.js';
import { until } from '../support/wait.js';
import { iperf } from './dataplane.bench.js';
import { percentile, ratioLine } from './stats.js';

const NAMESPACE_COUNT = 50;
const POD_COUNT = 1_000;
const POLICY_COUNT = 500;

type Written = { pods: number; namespaces: number; policies: number };
interface PolicyState {
  applied: Record<keyof Written, string>;
  ruleset: { sets: number; elements: number; rules: number; bytes: number };
}

/** Synthetic pods on other (absent) nodes: peers in every selector set, never local to the lab. */
function syntheticPod(i: number) {
  const namespace = `ns-${i % NAMESPACE_COUNT}`;
  const ip = `10.250.${i >> 8}.${i & 255}`;
  return {
    namespace,
    body: {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { namespace, name: `pod-${i}`, labels: { app: `app-${i % 10}`, tier: i % 3 === 0 ? 'front' : 'back' } },
      spec: { nodeName: `node-s${i % 20}`, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
      status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
    },
  };
}

/** Ten kinds of policy, as clusters write them: selectors, named and numeric ports, ranges, ipBlocks, egress. */
function syntheticPolicy(i: number) {
  const namespace = `ns-${i % NAMESPACE_COUNT}`;
  const k = i % 10;
  const peers = [
    { podSelector: { matchLabels: { app: `app-${(k + 1) % 10}` } } },
    { namespaceSelector: { matchLabels: { team: `team-${i % 5}` } }, podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['front'] }] } },
    { ipBlock: { cidr: `172.16.${i % 256}.0/24`, except: [`172.16.${i % 256}.128/25`] } },
  ];
  const ports = [{ port: 'http' }, { protocol: 'TCP', port: 8000 + k }, { protocol: 'UDP', port: 9000, endPort: 9100 }];
  return {
    namespace,
    body: {
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy',
      metadata: { namespace, name: `policy-${i}` },
      spec: {
        podSelector: { matchLabels: { app: `app-${k}` } },
        policyTypes: k % 2 ? ['Ingress', 'Egress'] : ['Ingress'],
        ingress: [{ from: peers.slice(0, 1 + (k % 3)), ports: ports.slice(0, 1 + (k % 3)) }],
        ...(k % 2 ? { egress: [{ to: [peers[k % 3]!], ports: [ports[1]!] }] } : {}),
      },
    },
  };
}

export async function benchPolicy(): Promise<string[]> {
  const prefix = `lt-${randomBytes(2).toString('hex')}-`;
  const dir = mkdtempSync(join(tmpdir(), 'lt-bench-policy-'));
  const stateDir = join(dir, 'state');
  const api = fabricApi(dir);
  const written: Written = { pods: 0, namespaces: 0, policies: 0 };
  const write = async (collection: keyof Written, path: string, body: unknown): Promise<void> => {
    const res = await api.kube('POST', path, body);
    if (res.status !== 201) throw new Error(`POST ${path}: ${res.status}`);
    written[collection] = Math.max(written[collection], Number(res.body.metadata.resourceVersion));
  };
  const state = (node: LabNode) => getJson<PolicyState>(node.statusSocket, '/v1/policy').catch(() => undefined);
  const enforced = async (nodes: LabNode[]) =>
    (await Promise.all(nodes.map(state))).every((s) => s && (Object.keys(written) as (keyof Written)[]).every((c) => Number(s.applied[c]) >= written[c]));
  try {
    const lab = await up({ nodes: 2, pods: 1, prefix, stateDir, holdTime: 9, tor: 'mesh', kubeconfig: api.kubeconfig }, () => undefined, { afterFabric: (plan) => api.afterFabric(plan) });
    const [n1, n2] = lab.plan.nodes as [LabNode, LabNode];
    const client = n1.pods[0]!;
    const server = n2.pods[0]!;
    await until('routes between the nodes', async () => (await execIn(client.netns, 'ping', ['-c', '1', '-W', '1', server.ip!])).exitCode === 0, 30_000);

    // The two iperf pods, isolated both ways, allowed by the last two policies (the end of each chain).
    const started = Date.now();
    await write('namespaces', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench', labels: { 'kubernetes.io/metadata.name': 'bench' } } });
    for (let i = 0; i < NAMESPACE_COUNT; i++) await write('namespaces', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${i}`, labels: { team: `team-${i % 5}` } } });
    const benchPod = (name: string, ip: string, node: string, selected: boolean) =>
      ({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'bench', name, labels: { role: selected ? name : 'none' } }, spec: { nodeName: node }, status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } });
    const iperfPods = [['client', client.ip!, n1.name], ['server', server.ip!, n2.name]] as const;
    for (const [name, ip, node] of iperfPods) await write('pods', '/api/v1/namespaces/bench/pods', benchPod(name, ip, node, true));
    for (let i = 0; i < POD_COUNT - 2; i++) {
      const p = syntheticPod(i);
      await write('pods', `/api/v1/namespaces/${p.namespace}/pods`, p.body);
    }
    for (let i = 0; i < POLICY_COUNT - 2; i++) {
      const p = syntheticPolicy(i);
      await write('policies', `/apis/networking.k8s.io/v1/namespaces/${p.namespace}/networkpolicies`, p.body);
    }
    const toNetworkPolicies = '/apis/networking.k8s.io/v1/namespaces/bench/networkpolicies';
    await write('policies', toNetworkPolicies, { metadata: { name: 'server-from-client' }, spec: { podSelector: { matchLabels: { role: 'server' } }, policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 5201 }] }] } });
    await write('policies', toNetworkPolicies, { metadata: { name: 'client-to-server' }, spec: { podSelector: { matchLabels: { role: 'client' } }, policyTypes: ['Ingress', 'Egress'], egress: [{ to: [{ podSelector: { matchLabels: { role: 'server' } } }], ports: [{ port: 5201 }] }] } });
    const writtenMs = Date.now() - started;
    await until('both agents to enforce 1,000 pods and 500 policies', () => enforced([n1, n2]), 120_000, { pollMs: 50 });
    const liveMs = Date.now() - started;

    await stopAgent(stateDir, n1.name, 'SIGTERM');
    const restarted = Date.now();
    await restartAgent(stateDir, n1.name);
    await until('the restarted agent to enforce', () => enforced([n1]), 120_000, { pollMs: 50 });
    const restartMs = Date.now() - restarted;

    const size = (await state(n1))!.ruleset;
    const listed = String((await execIn(n1.netns, 'nft', ['list', 'table', 'inet', 'lightly-policy'])).stdout);
    const isolated = async () => String((await execIn(n1.netns, 'nft', ['list', 'set', 'inet', 'lightly-policy', 'egress_isolated'])).stdout).includes(client.ip!);
    if (!(await isolated())) throw new Error('the client pod is not isolated: the throughput would not cross the policy chains');
    // Alternating rounds, so that the machine's other load falls on both sides alike. Relabelling the
    // two pods out of (and back into) their policies' selection is set elements only, as pod churn is.
    const select = async (selected: boolean): Promise<void> => {
      for (const [name, ip, node] of iperfPods) {
        const res = await api.kube('PUT', `/api/v1/namespaces/bench/pods/${name}`, benchPod(name, ip, node, selected));
        written.pods = Math.max(written.pods, Number(res.body.metadata.resourceVersion));
      }
      await until('the relabelled pods to be enforced', () => enforced([n1, n2]), 60_000, { pollMs: 50 });
    };
    const samples = { with: [] as number[], without: [] as number[] };
    for (let round = 0; round < 3; round++) {
      await select(false);
      samples.without.push(await iperf(server.netns, client.netns, server.ip!));
      await select(true);
      samples.with.push(await iperf(server.netns, client.netns, server.ip!));
    }
    const withPolicies = percentile(samples.with, 50);
    const without = percentile(samples.without, 50);
    return [
      `Network policy: ${POD_COUNT} pods, ${POLICY_COUNT} policies, ${NAMESPACE_COUNT + 1} namespaces in the fake API, two lab nodes`,
      `  written to the API in ${(writtenMs / 1000).toFixed(1)} s; enforced on both nodes ${(liveMs / 1000).toFixed(1)} s after the first write (${((liveMs - writtenMs) / 1000).toFixed(1)} s after the last)`,
      `  restarted agent: enforced ${(restartMs / 1000).toFixed(1)} s after the restart began`,
      `  ruleset on node-1: ${size.rules} rules, ${size.sets} sets, ${size.elements} elements; nft -f text ${(size.bytes / 1024).toFixed(0)} KiB, nft list ${(listed.length / 1024).toFixed(0)} KiB`,
      `  iperf3 TCP pod to pod across nodes, median of 3 alternating 5 s runs (Gbit/s): isolated by policies ${withPolicies.toFixed(2)} [${samples.with.map((x) => x.toFixed(1)).join(' ')}]; selected by none ${without.toFixed(2)} [${samples.without.map((x) => x.toFixed(1)).join(' ')}]`,
      '  ' + ratioLine('throughput, isolated pods vs no policy', withPolicies, without, '>= 0.95x'),
    ];
  } finally {
    await down(stateDir, prefix, () => undefined);
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
