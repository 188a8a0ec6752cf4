// NetworkPolicy conformance on the lab in Kubernetes mode: the upstream e2e model (kubernetes/kubernetes
// test/e2e/network/netpol: namespaces x, y, z; pods a, b, c serving TCP and UDP on 80 and 81) with the
// objects in the fake API and pods on two nodes, so every case probes same-node and cross-node pairs.
// Each case's expected matrix is written by hand from the rules of the Kubernetes documentation
// (concepts/services-networking/network-policies): a pod selected by no policy of a direction is open
// in it; selected pods take what any selecting policy allows; a peer's namespaceSelector and
// podSelector in one element both apply; separate elements are alternatives; replies pass.
// SCTP: Node has no SCTP sockets and this machine's kernel no SCTP protocol (socket(..., 132) fails
// with EPROTONOSUPPORT), so SCTP policies are checked for what they must not allow over TCP and UDP,
// as upstream's "even if the plugin doesn't support SCTP" cases; the SCTP rules are unit-tested.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import type { LabNode } from '../deploy/lab/topology.js';
import { ALL, type Case, type ModelLab, NetpolModel, TCP, UDP, caseTests, modelLab, ns, nsIs, one, open, podIs, podObject } from './support/netpol-model.js';
import { execIn } from './support/netns.js';

let lab: ModelLab | undefined;
let nodes: LabNode[] = [];
let model: NetpolModel;

const CASES: Case[] = [
  one("default-deny-ingress: every pod of x closed to everyone", (m) => m.createPolicy('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }), () => open().expect(ALL, ns('x'), false)),
  one("default-deny-all: x closed in and out", (m) => m.createPolicy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }), () => open().expect(ALL, ns('x'), false).expect(ns('x'), ALL, false)),
  one('allow from pods within the server namespace by podSelector', (m) => m.createPolicy('x', 'x-a-allows-x-b', { podSelector: podIs('a'), ingress: [{ from: [{ podSelector: podIs('b') }] }] }), () => open().expect(ALL, 'x/a', false).expect('x/b', 'x/a', true)),
  {
    name: 'allow ingress for a target over a deny-all',
    steps: [{
      act: async (m) => {
        await m.createPolicy('x', 'deny-all', { podSelector: {}, ingress: [] });
        await m.createPolicy('x', 'allow-all-to-a', { podSelector: podIs('a'), ingress: [{ from: [{ podSelector: {}, namespaceSelector: {} }] }] });
      },
      expected: () => open().expect(ALL, ['x/b', 'x/c'], false),
    }],
  },
  one('allow ingress from pods in all namespaces (empty namespaceSelector)', (m) => m.createPolicy('x', 'allow-from-all-ns', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: {} }] }] }), () => open()),
  one('allow only from a different namespace by namespaceSelector', (m) => m.createPolicy('x', 'allow-from-y', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: nsIs('y') }] }] }), () => open().expect([...ns('x'), ...ns('z')], 'x/a', false)),
  one('podSelector with matchExpressions', (m) => m.createPolicy('x', 'x-a-allows-x-b', { podSelector: podIs('a'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] }] }), () => open().expect(ALL, 'x/a', false).expect('x/b', 'x/a', true)),
  one('namespaceSelector with matchExpressions', (m) => m.createPolicy('x', 'allow-ns-y', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['y'] }] } }] }] }), () => open().expect([...ns('x'), ...ns('z')], 'x/a', false)),
  one('namespaceSelector with matchLabels on a custom namespace label', (m) => m.createPolicy('x', 'allow-ns-z', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }] }] }), () => open().expect([...ns('x'), ...ns('y')], 'x/a', false)),
  one('podSelector OR namespaceSelector (two peers)', (m) => m.createPolicy('x', 'or', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['x'] }] } }, { podSelector: podIs('b') }] }] }), () => open().expect('x/c', 'x/a', false)),
  one('podSelector AND namespaceSelector (one peer)', (m) => m.createPolicy('x', 'and', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['x'] }] }, podSelector: podIs('b') }] }] }), () => open().expect(ALL, 'x/a', false).expect(['y/b', 'z/b'], 'x/a', true)),
  one('multiple podSelectors and namespaceSelectors', (m) => m.createPolicy('x', 'multi', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['x'] }] }, podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } }] }] }), () => open().expect(ALL, 'x/a', false).expect(['y/b', 'y/c', 'z/b', 'z/c'], 'x/a', true)),
  one('any of several podSelectors', (m) => m.createPolicy('x', 'any', { podSelector: podIs('a'), ingress: [{ from: [{ podSelector: podIs('b') }, { podSelector: podIs('c') }] }] }), () => open().expect(ALL, 'x/a', false).expect(['x/b', 'x/c'], 'x/a', true)),
  one('only from one pod in a different namespace', (m) => m.createPolicy('x', 'y-a-only', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: nsIs('y'), podSelector: podIs('a') }] }] }), () => open().expect(ALL, 'x/a', false).expect('y/a', 'x/a', true)),
  one('ports: only TCP 81 from namespace y', (m) => m.createPolicy('x', 'y-on-81', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: nsIs('y') }], ports: [{ port: 81, protocol: 'TCP' }] }] }), () => open().expect(ALL, 'x/a', false).expect(ns('y'), 'x/a', true, ['tcp/81'])),
  {
    name: 'multiple stacked policies with overlapping podSelectors are unioned',
    steps: [{
      act: async (m) => {
        await m.createPolicy('x', 'y-on-80', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: nsIs('y') }], ports: [{ port: 80, protocol: 'TCP' }] }] });
        await m.createPolicy('x', 'y-on-81', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: nsIs('y') }], ports: [{ port: 81, protocol: 'TCP' }] }] });
      },
      expected: () => open().expect(ALL, 'x/a', false).expect(ns('y'), 'x/a', true, TCP),
    }],
  },
  one('allow-all ingress policy', (m) => m.createPolicy('x', 'allow-all', { podSelector: {}, ingress: [{}] }), () => open()),
  one('ingress on one named port', (m) => m.createPolicy('x', 'named-81', { podSelector: podIs('a'), ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] }), () => open().expect(ALL, 'x/a', false).expect(ALL, 'x/a', true, ['tcp/81'])),
  one('ingress from a namespace on one named port', (m) => m.createPolicy('x', 'named-80-from-y', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: nsIs('y') }], ports: [{ port: 'serve-80-tcp' }] }] }), () => open().expect(ALL, ns('x'), false).expect(ns('y'), ns('x'), true, ['tcp/80'])),
  one('egress on one named port', (m) => m.createPolicy('x', 'egress-named-80', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp' }] }] }), () => open().expect('x/a', ALL, false).expect('x/a', ALL, true, ['tcp/80'])),
  one('named UDP port and a numeric TCP port in one rule', (m) => m.createPolicy('x', 'mixed', { podSelector: podIs('a'), ingress: [{ ports: [{ port: 'serve-80-udp', protocol: 'UDP' }, { port: 81 }] }] }), () => open().expect(ALL, 'x/a', false).expect(ALL, 'x/a', true, ['udp/80', 'tcp/81'])),
  {
    name: 'an updated policy is enforced live (named port 81 → 80)',
    steps: [
      { act: (m) => m.createPolicy('x', 'named', { podSelector: podIs('a'), ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] }), expected: () => open().expect(ALL, 'x/a', false).expect(ALL, 'x/a', true, ['tcp/81']) },
      { act: (m) => m.createPolicy('x', 'named', { podSelector: podIs('a'), ingress: [{ ports: [{ port: 'serve-80-tcp' }] }] }), expected: () => open().expect(ALL, 'x/a', false).expect(ALL, 'x/a', true, ['tcp/80']) },
    ],
  },
  {
    name: 'ingress from a namespace that gets its label live',
    steps: [
      { act: (m) => m.createPolicy('x', 'from-updated-ns', { podSelector: podIs('a'), ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }] }), expected: () => open().expect(ALL, 'x/a', false) },
      { act: (m) => m.labelNamespace('y', { ns2: 'updated' }), expected: () => open().expect(ALL, 'x/a', false).expect(ns('y'), 'x/a', true) },
    ],
  },
  {
    name: 'ingress from a pod that gets its label live',
    steps: [
      { act: (m) => m.createPolicy('x', 'from-updated-pod', { podSelector: podIs('a'), ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }] }] }), expected: () => open().expect(ALL, 'x/a', false) },
      { act: (m) => m.labelPod('x/b', { role: 'client' }), expected: () => open().expect(ALL, 'x/a', false).expect('x/b', 'x/a', true) },
      { act: (m) => m.labelPod('x/b', {}), expected: () => open().expect(ALL, 'x/a', false) },
    ],
  },
  one('deny ingress from pods of other namespaces', (m) => m.createPolicy('x', 'same-ns-only', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }), () => open().expect([...ns('y'), ...ns('z')], ns('x'), false)),
  {
    name: 'deny ingress to a pod relabelled into the selection live, and back',
    steps: [
      { act: (m) => m.createPolicy('x', 'deny-target', { podSelector: { matchLabels: { role: 'target' } }, ingress: [] }), expected: () => open() },
      { act: (m) => m.labelPod('x/a', { role: 'target' }), expected: () => open().expect(ALL, 'x/a', false) },
      { act: (m) => m.labelPod('x/a', {}), expected: () => open() },
    ],
  },
  one('deny egress from pods by podSelector', (m) => m.createPolicy('x', 'deny-egress-a', { podSelector: podIs('a'), policyTypes: ['Egress'] }), () => open().expect('x/a', ALL, false)),
  one('deny egress from every pod of a namespace', (m) => m.createPolicy('x', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [] }), () => open().expect(ns('x'), ALL, false)),
  one('ingress and egress specified together', (m) => m.createPolicy('x', 'both', { podSelector: podIs('a'), policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: podIs('b') }] }], egress: [{ to: [{ namespaceSelector: nsIs('y') }] }] }), () => open().expect(ALL, 'x/a', false).expect('x/b', 'x/a', true).expect('x/a', ALL, false).expect('x/a', ns('y'), true)),
  {
    name: 'egress denied on the client side even if the server allows it',
    steps: [{
      act: async (m) => {
        await m.createPolicy('x', 'deny-egress-a', { podSelector: podIs('a'), policyTypes: ['Egress'] });
        await m.createPolicy('y', 'allow-from-x-a', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: nsIs('x'), podSelector: podIs('a') }] }] });
      },
      expected: () => open().expect('x/a', ALL, false).expect(ALL, ns('y'), false),
    }],
  },
  one('egress to a pod in another namespace by podSelector and namespaceSelector', (m) => m.createPolicy('x', 'to-y-b', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: nsIs('y'), podSelector: podIs('b') }] }] }), () => open().expect('x/a', ALL, false).expect('x/a', 'y/b', true)),
  one('ingress on any port of one protocol (TCP, no port)', (m) => m.createPolicy('x', 'tcp-only', { podSelector: podIs('a'), ingress: [{ ports: [{ protocol: 'TCP' }] }] }), () => open().expect(ALL, 'x/a', false, UDP)),
  {
    name: 'multiple ingress policies: allow-all takes precedence',
    steps: [{
      act: async (m) => {
        await m.createPolicy('x', 'only-80', { podSelector: podIs('a'), ingress: [{ ports: [{ port: 80 }] }] });
        await m.createPolicy('x', 'allow-all', { podSelector: podIs('a'), ingress: [{}] });
      },
      expected: () => open(),
    }],
  },
  {
    name: 'multiple egress policies: allow-all takes precedence',
    steps: [{
      act: async (m) => {
        await m.createPolicy('x', 'only-80', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ ports: [{ port: 80 }] }] });
        await m.createPolicy('x', 'allow-all', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{}] });
      },
      expected: () => open(),
    }],
  },
  {
    name: 'policies stop being enforced once deleted',
    steps: [
      { act: (m) => m.createPolicy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }), expected: () => open().expect(ALL, ns('x'), false).expect(ns('x'), ALL, false) },
      { act: (m) => m.deletePolicy('x', 'deny-all'), expected: () => open() },
    ],
  },
  one('egress to a server in a CIDR block (/32)', (m) => m.createPolicy('x', 'to-cidr', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${m.ip('y/b')}/32` } }] }] }), () => open().expect('x/a', ALL, false).expect('x/a', 'y/b', true)),
  one("egress to a CIDR block with an except clause (node-2's pod /24 except y/b)", (m) => m.createPolicy('x', 'except', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.244.2.0/24', except: [`${m.ip('y/b')}/32`] } }] }] }), () => open().expect('x/a', ALL, false).expect('x/a', ['x/c', 'z/a', 'z/c'], true)),
  {
    name: 'an address in both an ipBlock except and another policy’s ipBlock is allowed',
    steps: [{
      act: async (m) => {
        await m.createPolicy('x', 'except', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.244.2.0/24', except: [`${m.ip('y/b')}/32`] } }] }] });
        await m.createPolicy('x', 'to-y-b', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${m.ip('y/b')}/32` } }] }] });
      },
      expected: () => open().expect('x/a', ALL, false).expect('x/a', ['x/c', 'y/b', 'z/a', 'z/c'], true),
    }],
  },
  one("ingress from an ipBlock with except (node-1's pod /24 except z/b)", (m) => m.createPolicy('x', 'from-cidr', { podSelector: podIs('c'), ingress: [{ from: [{ ipBlock: { cidr: '10.244.1.0/24', except: [`${m.ip('z/b')}/32`] } }] }] }), () => open().expect(ALL, 'x/c', false).expect(['x/a', 'x/b', 'y/a', 'y/c'], 'x/c', true)),
  {
    name: 'ingress and egress policies controlled independently',
    steps: [{
      act: async (m) => {
        await m.createPolicy('x', 'deny-ingress-a', { podSelector: podIs('a'), policyTypes: ['Ingress'] });
        await m.createPolicy('x', 'egress-a-to-b', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: podIs('b') }] }] });
      },
      expected: () => open().expect(ALL, 'x/a', false).expect('x/a', ALL, false).expect('x/a', 'x/b', true),
    }],
  },
  one("'protocol: SCTP' is not TCP (nor UDP) on the same port", (m) => m.createPolicy('x', 'sctp-80', { podSelector: podIs('a'), ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] }), () => open().expect(ALL, 'x/a', false)),
  one('a pod selected by an egress policy allowing only SCTP is isolated', (m) => m.createPolicy('x', 'egress-sctp', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ ports: [{ protocol: 'SCTP' }] }] }), () => open().expect('x/a', ALL, false)),
  one('no TCP when a policy allows only UDP', (m) => m.createPolicy('x', 'udp-81', { podSelector: podIs('a'), ingress: [{ ports: [{ protocol: 'UDP', port: 81 }] }] }), () => open().expect(ALL, 'x/a', false).expect(ALL, 'x/a', true, ['udp/81'])),
  one('endPort: a TCP range 80-81 on ingress', (m) => m.createPolicy('x', 'range', { podSelector: podIs('a'), ingress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] }), () => open().expect(ALL, 'x/a', false, UDP)),
  one('endPort: a UDP range 81-90 on egress, to namespace z', (m) => m.createPolicy('x', 'range-egress', { podSelector: podIs('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: nsIs('z') }], ports: [{ protocol: 'UDP', port: 81, endPort: 90 }] }] }), () => open().expect('x/a', ALL, false).expect('x/a', ns('z'), true, ['udp/81'])),
  {
    name: 'a namespace label removed live closes what it opened',
    steps: [
      { act: async (m) => { await m.labelNamespace('z', { team: 'blue' }); await m.createPolicy('x', 'from-blue', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] }); }, expected: () => open().expect([...ns('x'), ...ns('y')], ns('x'), false) },
      { act: (m) => m.labelNamespace('z', {}), expected: () => open().expect(ALL, ns('x'), false) },
    ],
  },
  {
    name: 'a policy in y and one in x at once: each namespace keeps its own',
    steps: [{
      act: async (m) => {
        await m.createPolicy('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
        await m.createPolicy('y', 'from-x', { podSelector: podIs('b'), ingress: [{ from: [{ namespaceSelector: nsIs('x') }] }] });
      },
      expected: () => open().expect(ALL, ns('x'), false).expect([...ns('y'), ...ns('z')], 'y/b', false),
    }],
  },
  {
    name: 'a deny-all policy updated to allow from z live',
    steps: [
      { act: (m) => m.createPolicy('x', 'p', { podSelector: podIs('b'), ingress: [] }), expected: () => open().expect(ALL, 'x/b', false) },
      { act: (m) => m.createPolicy('x', 'p', { podSelector: podIs('b'), ingress: [{ from: [{ namespaceSelector: nsIs('z') }] }] }), expected: () => open().expect([...ns('x'), ...ns('y')], 'x/b', false) },
    ],
  },
];

beforeAll(async () => {
  lab = await modelLab();
  ({ nodes, model } = lab);
}, 180_000);

afterAll(async () => {
  await lab?.stop();
}, 60_000);

describe('NetworkPolicy: the upstream e2e model (x, y, z × a, b, c; TCP and UDP on 80 and 81; two nodes)', () => {
  it('with no policy every pod reaches every pod on every port', async () => {
    expect(await model.mismatches(open())).toEqual([]);
  }, 60_000);

  it(`implements at least 40 upstream cases (${CASES.length})`, () => expect(CASES.length).toBeGreaterThanOrEqual(40));

  caseTests(CASES, () => model);
});

describe('NetworkPolicy: the agent around the model', () => {
  const tcp80 = (ip: string) => ({ ip, port: 80, protocol: 'tcp' as const });
  const ctl = async (args: string[]) => execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', nodes[0]!.statusSocket, ...args], { reject: false });
  const nft = async (node: LabNode, args: string[]) => (await execIn(node.netns, 'nft', args)).stdout;

  it('a new pod whose address is not known yet (plugin ADD before the kubelet reports it) is denied in directions a policy selecting it isolates; others stay open', async () => {
    const spare = nodes[0]!.pods[5]!; // networked by the plugin, no Pod object yet
    await model.serve('spare', spare.netns);
    const pending = (labels: Record<string, string>, ip?: string) =>
      ({ ...podObject('x/new', { node: nodes[0]!, pod: { ...spare, ip } }, labels), metadata: { namespace: 'x', name: 'new', labels } });
    try {
      await model.createPolicy('x', 'deny-new', { podSelector: { matchLabels: { app: 'new' } }, ingress: [] });
      await model.settle();
      expect(await model.probeFrom('x/b', tcp80(spare.ip!)), 'no pending pod: an unknown address is open').toBe(true);
      // A pending pod in y matching the label is not selected by a policy of x: still open.
      await model.putPod('y', { ...pending({ app: 'new' }), metadata: { namespace: 'y', name: 'new', labels: { app: 'new' } } });
      await model.settle();
      expect(await model.probeFrom('x/b', tcp80(spare.ip!))).toBe(true);
      // Scheduled here, selected for ingress, address not reported yet: unknown addresses are closed to ingress.
      await model.putPod('x', pending({ app: 'new' }));
      await model.settle();
      expect(await model.probeFrom('x/b', tcp80(spare.ip!)), 'same node').toBe(false);
      expect(await model.probeFrom('x/c', tcp80(spare.ip!)), 'other node').toBe(false);
      expect(await model.probeFrom('spare', tcp80(model.ip('x/b'))), 'egress is not isolated').toBe(true);
      expect(await model.probeFrom('y/a', tcp80(model.ip('x/a'))), 'known pods are unaffected').toBe(true);
      // The address arrives: the pod's own policy applies (still denied), and relabelled out it opens.
      await model.putPod('x', pending({ app: 'new' }, spare.ip));
      await model.settle();
      expect(await model.probeFrom('x/b', tcp80(spare.ip!))).toBe(false);
      await model.putPod('x', pending({ app: 'other' }, spare.ip));
      await model.settle();
      expect(await model.probeFrom('x/b', tcp80(spare.ip!))).toBe(true);
    } finally {
      await model.deletePod('x', 'new').catch(() => undefined);
      await model.deletePod('y', 'new').catch(() => undefined);
      await model.reset();
    }
  }, 60_000);

  it('pod churn changes set elements only: the rules (and their handles) stay, the sets change', async () => {
    await model.createPolicy('x', 'from-client', { podSelector: podIs('a'), ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }] }] });
    await model.settle();
    const rules = () => nft(nodes[0]!, ['-a', 'list', 'chain', 'inet', 'lightly-policy', 'ingress']);
    const before = await rules();
    try {
      await model.labelPod('x/b', { role: 'client' });
      await model.settle();
      expect(await rules()).toBe(before);
      expect(await nft(nodes[0]!, ['list', 'table', 'inet', 'lightly-policy'])).toContain(model.ip('x/b'));
      expect(await model.probeFrom('x/b', tcp80(model.ip('x/a')))).toBe(true);
    } finally {
      await model.reset();
    }
  }, 60_000);

  it('lightlyctl policy NS/POD names the policies selecting a pod and what each allows, for a pod on any node', async () => {
    await model.createPolicy('x', 'from-b', { podSelector: podIs('a'), ingress: [{ from: [{ podSelector: podIs('b') }], ports: [{ port: 80 }] }] });
    await model.createPolicy('x', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] });
    await model.createPolicy('y', 'unrelated', { podSelector: {} });
    await model.settle();
    try {
      const text = await ctl(['policy', 'x/a']);
      expect(text.exitCode, String(text.stderr)).toBe(0);
      expect(text.stdout).toContain('policy x/deny-egress');
      expect(text.stdout).toContain('egress: deny all');
      expect(text.stdout).toContain('ingress: allow from pods pod=b in namespace x on TCP/80');
      expect(text.stdout).not.toContain('unrelated');
      const view = JSON.parse((await ctl(['policy', 'x/c', '--json'])).stdout) as { node: string; isolated: unknown; policies: { name: string }[] };
      expect(view.node).toBe('node-2');
      expect(view.isolated).toEqual({ ingress: false, egress: true });
      expect(view.policies.map((p) => p.name)).toEqual(['x/deny-egress']);
      const missing = await ctl(['policy', 'x/nope']);
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toContain('no pod x/nope');
    } finally {
      await model.reset();
    }
  }, 60_000);

  it('touches nothing outside table inet lightly-policy, and `lightly-agent uninstall-policy` removes only it', async () => {
    // Another table in the node's namespace (as kube-proxy's or a firewall's would be), with a rule.
    await execIn(nodes[1]!.netns, 'nft', ['-f', '-'], { input: 'table ip lt-other {\n chain c { type filter hook forward priority 10; policy accept; counter; }\n}\n' });
    const tables = await nft(nodes[1]!, ['list', 'tables']);
    expect(tables).toContain('table inet lightly-policy');
    expect(tables).toContain('table ip lt-other');
    const out = await execIn(nodes[1]!.netns, process.execPath, ['dist/bin/lightly-agent.js', 'uninstall-policy']);
    expect(out.exitCode, String(out.stderr)).toBe(0);
    const after = await nft(nodes[1]!, ['list', 'tables']);
    expect(after).not.toContain('lightly-policy');
    expect(after).toContain('table ip lt-other');
    expect(await nft(nodes[1]!, ['list', 'table', 'ip', 'lt-other'])).toContain('counter');
    expect((await execIn(nodes[1]!.netns, process.execPath, ['dist/bin/lightly-agent.js', 'uninstall-policy'])).exitCode, 'idempotent').toBe(0);
  }, 30_000);
});

