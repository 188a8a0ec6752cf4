// NetworkPolicy semantics (networking.k8s.io/v1, as the Kubernetes documentation's "Network Policies"
// page states them) compiled for one node; expectations written by hand from those rules.
import { describe, expect, it } from 'vitest';
import { compileNode, ipBlockRanges } from './compile.js';
import { type NetworkPolicy, type PolicyNamespace, type PolicyPod, slimNamespace, slimNetworkPolicy, slimPod } from './objects.js';

const pod = (ns: string, name: string, ip: string | undefined, node: string, labels: Record<string, string> = {}, extra: Record<string, unknown> = {}, ips = ip ? [ip] : []): PolicyPod =>
  slimPod({
    metadata: { namespace: ns, name, labels },
    spec: { nodeName: node, containers: [{ ports: [{ name: 'serve-80-tcp', containerPort: 80 }, { name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' }] }], ...extra },
    status: ips.length ? { podIP: ips[0], podIPs: ips.map((i) => ({ ip: i })) } : {},
  });
const ns = (name: string, labels: Record<string, string> = {}): PolicyNamespace => slimNamespace({ metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } } });
const policy = (namespace: string, name: string, spec: Record<string, unknown>): NetworkPolicy => slimNetworkPolicy({ metadata: { namespace, name }, spec });

const namespaces = [ns('x', { team: 'x' }), ns('y', { team: 'y' })];
const pods = [pod('x', 'a', '10.244.1.2', 'n1', { pod: 'a' }), pod('x', 'b', '10.244.2.2', 'n2', { pod: 'b' }), pod('y', 'a', '10.244.1.3', 'n1', { pod: 'a' }), pod('y', 'b', '10.244.2.3', 'n2', { pod: 'b' })];
const compile = (policies: NetworkPolicy[], p: PolicyPod[] = pods) => compileNode('n1', { pods: p, namespaces, policies });

describe('which pods are isolated (a pod selected by no policy of a direction is open in it)', () => {
  it('no policy: nothing isolated', () => {
    const c = compile([]);
    expect(c.ingressIsolated).toEqual([]);
    expect(c.egressIsolated).toEqual([]);
    expect(c.localPods).toEqual(['10.244.1.2', '10.244.1.3']);
  });

  it('policyTypes absent: Ingress only, plus Egress when the policy has egress rules', () => {
    expect(compile([policy('x', 'p', { podSelector: {} })]).egressIsolated).toEqual([]);
    expect(compile([policy('x', 'p', { podSelector: {} })]).ingressIsolated).toEqual(['10.244.1.2']);
    const both = compile([policy('x', 'p', { podSelector: {}, egress: [{}] })]);
    expect(both.egressIsolated).toEqual(['10.244.1.2']);
    const egressOnly = compile([policy('x', 'p', { podSelector: {}, policyTypes: ['Egress'] })]);
    expect([egressOnly.ingressIsolated, egressOnly.egressIsolated]).toEqual([[], ['10.244.1.2']]);
  });

  it('only this node’s pods are targets; a policy selects in its own namespace only', () => {
    const c = compile([policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } } })]);
    expect(c.policies[0]!.targets).toEqual(['10.244.1.2']);
  });

  it('host-network and finished pods take no part', () => {
    const c = compile([policy('x', 'p', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })], [
      ...pods,
      pod('x', 'host', '192.0.2.1', 'n1', {}, { hostNetwork: true }),
      slimPod({ metadata: { namespace: 'x', name: 'done' }, spec: { nodeName: 'n2' }, status: { phase: 'Succeeded', podIP: '10.244.2.9' } }),
    ]);
    expect(c.policies[0]!.ingress![0]!.peerPods).toEqual(['10.244.1.2', '10.244.2.2']);
  });

  it('a pod scheduled here without an address yet, selected by a policy, makes unknown addresses isolated in that direction only', () => {
    const pending = pod('x', 'new', undefined, 'n1', { pod: 'a' });
    const c = compile([policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] })], [...pods, pending]);
    expect(c.pendingIsolated).toEqual({ ingress: true, egress: false });
    expect(compile([policy('y', 'p', { podSelector: {} })], [...pods, pending]).pendingIsolated).toEqual({ ingress: false, egress: false });
  });
});

describe('peers', () => {
  const peers = (from: unknown[]) => compile([policy('x', 'p', { podSelector: {}, ingress: [{ from }] })]).policies[0]!.ingress![0]!;

  it('podSelector alone: pods of the policy’s namespace', () => expect(peers([{ podSelector: { matchLabels: { pod: 'b' } } }]).peerPods).toEqual(['10.244.2.2']));
  it('namespaceSelector alone: every pod of the matching namespaces', () => expect(peers([{ namespaceSelector: { matchLabels: { team: 'y' } } }]).peerPods).toEqual(['10.244.1.3', '10.244.2.3']));
  it('both in one peer: matching pods in matching namespaces (AND)', () =>
    expect(peers([{ namespaceSelector: { matchLabels: { team: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }]).peerPods).toEqual(['10.244.2.3']));
  it('two peers: either (OR)', () =>
    expect(peers([{ namespaceSelector: { matchLabels: { team: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }]).peerPods).toEqual(['10.244.1.3', '10.244.2.2', '10.244.2.3']));
  it('an empty namespaceSelector: every namespace', () => expect(peers([{ namespaceSelector: {} }]).peerPods).toHaveLength(4));
  it('matchExpressions', () =>
    expect(peers([{ namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['x'] }] }, podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists' }] } }]).peerPods).toEqual(['10.244.1.3', '10.244.2.3']));
  it('no from: any peer', () => expect(compile([policy('x', 'p', { podSelector: {}, ingress: [{}] })]).policies[0]!.ingress![0]!.anyPeer).toBe(true));
  it('ingress: [] denies all (no rule)', () => expect(compile([policy('x', 'p', { podSelector: {}, ingress: [] })]).policies[0]!.ingress).toEqual([]));
});

describe('ipBlock with except', () => {
  it('takes the excepts out and merges overlaps', () => {
    expect(ipBlockRanges([{ cidr: '10.0.0.0/8', except: ['10.244.0.0/16'] }])).toEqual([['10.0.0.0', '10.243.255.255'], ['10.245.0.0', '10.255.255.255']]);
    expect(ipBlockRanges([{ cidr: '10.244.1.2/32', except: [] }, { cidr: '10.244.1.0/24', except: ['10.244.1.0/25'] }])).toEqual([['10.244.1.2', '10.244.1.2'], ['10.244.1.128', '10.244.1.255']]);
    expect(ipBlockRanges([{ cidr: '10.244.1.0/24', except: ['10.244.1.0/24'] }])).toEqual([]);
  });

  it('IPv6 blocks and excepts: each family cut by its own excepts only, IPv4 ranges first', () => {
    expect(ipBlockRanges([{ cidr: 'fd00:10:244::/48', except: ['fd00:10:244:2::/64', '10.0.0.0/8'] }])).toEqual([
      ['fd00:10:244::', 'fd00:10:244:1:ffff:ffff:ffff:ffff'],
      ['fd00:10:244:3::', 'fd00:10:244:ffff:ffff:ffff:ffff:ffff'],
    ]);
    expect(ipBlockRanges([{ cidr: 'fd00:10:244:1::5/128', except: [] }, { cidr: '10.244.1.0/24', except: ['fd00::/8'] }])).toEqual([['10.244.1.0', '10.244.1.255'], ['fd00:10:244:1::5', 'fd00:10:244:1::5']]);
    expect(ipBlockRanges([{ cidr: '::/0', except: ['::/1', '8000::/1'] }])).toEqual([]);
  });
});

describe('dual stack: a pod’s IPv6 addresses (status.podIPs) take part like its IPv4 one', () => {
  const dual = (namespace: string, name: string, n: number, node: string, labels: Record<string, string>) =>
    pod(namespace, name, undefined, node, labels, {}, [`10.244.${n}.2`, `FD00:10:244:${n}:0:0:0:2`]);
  const dualPods = [dual('x', 'a', 1, 'n1', { pod: 'a' }), dual('y', 'b', 2, 'n2', { pod: 'b' })];
  const c = compile([policy('x', 'p', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 'serve-80-tcp' }] }], egress: [{ to: [{ podSelector: {}, namespaceSelector: {} }], ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }] })], dualPods);

  it('local pods, isolation and targets hold both addresses, IPv6 canonical', () => {
    expect(c.localPods).toEqual(['10.244.1.2', 'fd00:10:244:1::2']);
    expect(c.ingressIsolated).toEqual(['10.244.1.2', 'fd00:10:244:1::2']);
    expect(c.egressIsolated).toEqual(['10.244.1.2', 'fd00:10:244:1::2']);
    expect(c.policies[0]!.targets).toEqual(['10.244.1.2', 'fd00:10:244:1::2']);
  });

  it('peers and named ports resolve to both addresses', () => {
    expect(c.policies[0]!.ingress![0]!.peerPods).toEqual(['10.244.1.2', '10.244.2.2', 'fd00:10:244:1::2', 'fd00:10:244:2::2']);
    expect(c.policies[0]!.ingress![0]!.named).toEqual([{ ip: '10.244.1.2', protocol: 'TCP', port: 80 }, { ip: 'fd00:10:244:1::2', protocol: 'TCP', port: 80 }]);
    expect(c.policies[0]!.egress![0]!.named).toHaveLength(4);
  });

  it('an IPv6-only pod is known by its address, not pending', () => {
    const v6only = pod('x', 'six', 'fd00:10:244:1::9', 'n1', { pod: 'a' });
    const six = compile([policy('x', 'p', { podSelector: {} })], [...pods, v6only]);
    expect(six.pendingIsolated).toEqual({ ingress: false, egress: false });
    expect(six.ingressIsolated).toEqual(['10.244.1.2', 'fd00:10:244:1::9']);
  });

  it('an address that is neither family is dropped', () => expect(pod('x', 'bad', 'fd00::zz', 'n1').ips).toEqual([]));
});

describe('ports', () => {
  const rule = (dir: 'ingress' | 'egress', ports: unknown[]) =>
    compile([policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress', 'Egress'], [dir]: [{ ports }] })]).policies[0]![dir]![0]!;

  it('numbers, protocol defaulting to TCP, endPort ranges, protocol alone', () => {
    expect(rule('ingress', [{ port: 80 }, { protocol: 'UDP', port: 80, endPort: 81 }, { protocol: 'SCTP' }]).ports).toEqual([
      { protocol: 'TCP', from: 80, to: 80 },
      { protocol: 'UDP', from: 80, to: 81 },
      { protocol: 'SCTP' },
    ]);
  });

  it('a named port resolves on the selected pod for ingress, on the peers for egress, protocol included', () => {
    expect(rule('ingress', [{ port: 'serve-80-tcp' }]).named).toEqual([{ ip: '10.244.1.2', protocol: 'TCP', port: 80 }]);
    expect(rule('ingress', [{ port: 'serve-81-udp' }]).named).toEqual([]); // the name is UDP, the policy port TCP
    expect(rule('egress', [{ port: 'serve-81-udp', protocol: 'UDP' }]).named).toHaveLength(4);
  });

  it('rejects what the API server would reject', () => {
    expect(() => policy('x', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] })).toThrow();
    expect(() => policy('x', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] })).toThrow();
    expect(() => policy('x', 'p', { podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } })).toThrow();
    for (const cidr of ['fd00::/129', '::::/64', '10.0.0.0/33', '300.0.0.0/8', 'fd00::1']) expect(() => policy('x', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr } }] }] }), cidr).toThrow();
    expect(() => policy('x', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'fd00::/8', except: ['fd00::/200'] } }] }] })).toThrow();
  });
});
