// NetworkPolicy over IPv6: the upstream e2e model (see netpol.netns.test.ts) on a dual-stack lab in
// Kubernetes mode, the Pods' status.podIPs holding an IPv4 and an IPv6 address each, every matrix
// probed over IPv6. A representative subset of the upstream cases; each expected matrix written by
// hand from the Kubernetes documentation's rules (concepts/services-networking/network-policies):
// a policy selects pods, not address families, so an isolated pod is isolated over IPv6 as over
// IPv4; an ipBlock holds the addresses of its own CIDR's family only (an IPv4 block admits no IPv6
// peer), and its `except` entries cut out of it.
// Neighbour discovery (RFC 4861): a routed pod resolves its gateway (the host end's link-local
// fe80::ecee:eeff:feee:eeee) and the host resolves the pod with NS/NA; an isolated pod must keep
// doing so, so one test flushes the neighbour caches and probes again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POD_GATEWAY_V6 } from '../plugin/dataplane.js';
import type { LabNode } from '../deploy/lab/topology.js';
import { ALL, type Case, type ModelLab, NetpolModel, UDP, caseTests, modelLab, ns, nsIs, one, open, podIs, podObject } from './support/netpol-model.js';
import { execIn } from './support/netns.js';

let lab: ModelLab | undefined;
let nodes: LabNode[] = [];
let model: NetpolModel;

/** node-1 holds x/a x/b y/a y/c z/b, node-2 x/c y/b z/a z/c (netpol-model.ts): each node's IPv6 pod CIDR. */
const podCIDR6 = (node: number): string => nodes[node]!.podCIDR6!;

const CASES: Case[] = [
  one('default-deny-ingress: every pod of x closed to everyone over IPv6', (m) => m.createPolicy('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }), () => open().expect(ALL, ns('x'), false)),
  one('default-deny-egress: every pod of x closed to everything over IPv6', (m) => m.createPolicy('x', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] }), () => open().expect(ns('x'), ALL, false)),
  one('default-deny-all: x closed in and out', (m) => m.createPolicy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }), () => open().expect(ALL, ns('x'), false).expect(ns('x'), ALL, false)),
  one('allow from a pod within the server namespace by podSelector', (m) => m.createPolicy('x', 'x-a-allows-x-b', { podSelector: podIs('a'), ingress: [{ from: [{ podSelector: podIs('b') }] }] }), () => open().expect(ALL, 'x/a', false).expect('x/b', 'x/a', true)),
  one('allow only from a different namespace by namespaceSelector', (m) => m.createPolicy('x', 'allow-from-y', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: nsIs('y') }] }] }), () => open().expect([...ns('x'), ...ns('z')], 'x/a', false)),
  one('podSelector AND namespaceSelector (one peer)', (m) => m.createPolicy('x', 'and', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['x'] }] }, podSelector: podIs('b') }] }] }), () => open().expect(ALL, 'x/a', false).expect(['y/b', 'z/b'], 'x/a', true)),
  one("egress to an IPv6 CIDR block with an except clause (node-2's pod /64 except y/b)", (m) => m.createPolicy('x', 'except', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: podCIDR6(1), except: [`${m.ip6('y/b')}/128`] } }] }] }), () => open().expect('x/a', ALL, false).expect('x/a', ['x/c', 'z/a', 'z/c'], true)),
  one("ingress from an IPv6 CIDR block with an except clause (node-1's pod /64 except z/b)", (m) => m.createPolicy('x', 'from-cidr', { podSelector: podIs('c'), ingress: [{ from: [{ ipBlock: { cidr: podCIDR6(0), except: [`${m.ip6('z/b')}/128`] } }] }] }), () => open().expect(ALL, 'x/c', false).expect(['x/a', 'x/b', 'y/a', 'y/c'], 'x/c', true)),
  one('an IPv4 block (all pod addresses) admits no IPv6 peer', (m) => m.createPolicy('x', 'v4-only', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.244.0.0/16' } }] }] }), () => open().expect('x/a', ALL, false)),
  one('an IPv6 block and a pod selector in one rule: either peer', (m) => m.createPolicy('x', 'mixed-peers', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${m.ip6('z/c')}/128` } }, { podSelector: podIs('b') }] }] }), () => open().expect('x/a', ALL, false).expect('x/a', ['z/c', 'x/b'], true)),
  one('ports: only TCP 81 from namespace y', (m) => m.createPolicy('x', 'y-on-81', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: nsIs('y') }], ports: [{ port: 81, protocol: 'TCP' }] }] }), () => open().expect(ALL, 'x/a', false).expect(ns('y'), 'x/a', true, ['tcp/81'])),
  one('ingress on one named port', (m) => m.createPolicy('x', 'named-81', { podSelector: podIs('a'), ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] }), () => open().expect(ALL, 'x/a', false).expect(ALL, 'x/a', true, ['tcp/81'])),
  one('egress on one named port', (m) => m.createPolicy('x', 'egress-named-80', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp' }] }] }), () => open().expect('x/a', ALL, false).expect('x/a', ALL, true, ['tcp/80'])),
  one('endPort: a TCP range 80-81 on ingress', (m) => m.createPolicy('x', 'range', { podSelector: podIs('a'), ingress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] }), () => open().expect(ALL, 'x/a', false, UDP)),
  one('endPort: a UDP range 81-90 on egress, to namespace z', (m) => m.createPolicy('x', 'range-egress', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: nsIs('z') }], ports: [{ protocol: 'UDP', port: 81, endPort: 90 }] }] }), () => open().expect('x/a', ALL, false).expect('x/a', ns('z'), true, ['udp/81'])),
];

beforeAll(async () => {
  lab = await modelLab('dual');
  ({ nodes, model } = lab);
}, 180_000);

afterAll(async () => {
  await lab?.stop();
}, 60_000);

describe('NetworkPolicy over IPv6: the upstream model on a dual-stack lab, probed over IPv6', () => {
  it('every model pod has an IPv6 address; with no policy every pod reaches every pod on every port over IPv6', async () => {
    expect(ALL.map((k) => model.ip6(k)).every((ip) => ip.startsWith('fd00:10:244:'))).toBe(true);
    expect(await model.mismatches(open(), 6)).toEqual([]);
  }, 60_000);

  caseTests(CASES, () => model, 6);
});

describe('NetworkPolicy over IPv6: neighbour discovery and new pods', () => {
  const tcp80 = (ip: string) => ({ ip, port: 80, protocol: 'tcp' as const });
  const flushNeighbours = async (netns: string): Promise<void> => {
    const out = await execIn(netns, 'ip', ['-6', 'neigh', 'flush', 'all']);
    expect(out.exitCode, `ip -6 neigh flush all in ${netns}: ${String(out.stderr)}`).toBe(0);
  };

  it('an isolated pod resolves its gateway and is resolved again (NS/NA) after the neighbour caches are flushed, and reaches only what it is allowed', async () => {
    // x/a (node-1) isolated both ways: in only from x/b (same node), out only to x/c (node-2).
    await model.createPolicy('x', 'pair', { podSelector: podIs('a'), policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: podIs('b') }] }], egress: [{ to: [{ podSelector: podIs('c') }] }] });
    try {
      await model.settle();
      const podNetns = (key: string) => model.placement.get(key)!.pod.netns;
      for (const netns of [podNetns('x/a'), podNetns('x/b'), podNetns('x/c'), ...nodes.map((n) => n.netns)]) await flushNeighbours(netns);
      expect(await model.probeFrom('x/b', tcp80(model.ip6('x/a')), 3_000), 'allowed in, same node').toBe(true);
      expect(await model.probeFrom('x/a', tcp80(model.ip6('x/c')), 3_000), 'allowed out, across nodes').toBe(true);
      // The caches were empty: these entries were learned by NS/NA with the pod isolated.
      expect((await execIn(podNetns('x/a'), 'ip', ['-6', 'neigh', 'show'])).stdout).toContain(POD_GATEWAY_V6);
      expect((await execIn(nodes[0]!.netns, 'ip', ['-6', 'neigh', 'show'])).stdout).toContain(model.ip6('x/a'));
      expect(await model.probeFrom('x/c', tcp80(model.ip6('x/a'))), 'denied in').toBe(false);
      expect(await model.probeFrom('x/a', tcp80(model.ip6('x/b'))), 'denied out').toBe(false);
    } finally {
      await model.reset();
    }
  }, 60_000);

  it('a new pod whose addresses are not known yet is denied over IPv6 in the directions a policy selecting it isolates', async () => {
    const spare = nodes[0]!.pods[5]!; // networked by the plugin (IPv4 and IPv6), no Pod object yet
    await model.serve('spare', spare.netns, true);
    const pending = (labels: Record<string, string>, known: boolean) =>
      ({ ...podObject('x/new', { node: nodes[0]!, pod: known ? spare : { ...spare, ip: undefined } }, labels), metadata: { namespace: 'x', name: 'new', labels } });
    try {
      await model.createPolicy('x', 'deny-new', { podSelector: { matchLabels: { app: 'new' } }, ingress: [] });
      await model.settle();
      expect(await model.probeFrom('x/b', tcp80(spare.ip6!)), 'no pending pod: an unknown address is open').toBe(true);
      await model.putPod('x', pending({ app: 'new' }, false));
      await model.settle();
      expect(await model.probeFrom('x/b', tcp80(spare.ip6!)), 'same node').toBe(false);
      expect(await model.probeFrom('x/c', tcp80(spare.ip6!)), 'other node').toBe(false);
      expect(await model.probeFrom('spare', tcp80(model.ip6('x/b'))), 'egress is not isolated').toBe(true);
      // Both addresses arrive: the pod's own policy applies over IPv6 (still denied); relabelled out it opens.
      await model.putPod('x', pending({ app: 'new' }, true));
      await model.settle();
      expect(await model.probeFrom('x/b', tcp80(spare.ip6!))).toBe(false);
      await model.putPod('x', pending({ app: 'other' }, true));
      await model.settle();
      expect(await model.probeFrom('x/b', tcp80(spare.ip6!))).toBe(true);
    } finally {
      await model.deletePod('x', 'new').catch(() => undefined);
      await model.reset();
    }
  }, 60_000);
});
