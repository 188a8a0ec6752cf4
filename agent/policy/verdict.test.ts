// doctor's verdicts read the compiled model the nftables rules come from; these are the matches of
// nft.ts's ruleLines that the doctor tests do not reach: egress named ports, endPort ranges, the
// unknown address of a pod whose node is waiting for it, and IPv6 (not enforced, so no block holds it).
import { describe, expect, it } from 'vitest';
import { compileNode } from './compile.js';
import { slimNamespace, slimNetworkPolicy, slimPod } from './objects.js';
import { flowVerdict } from './verdict.js';

const pods = [
  slimPod({ metadata: { namespace: 'x', name: 'a', labels: { app: 'a' } }, spec: { nodeName: 'n1' }, status: { podIP: '10.0.1.2' } }),
  slimPod({ metadata: { namespace: 'x', name: 'db', labels: { app: 'db' } }, spec: { nodeName: 'n2', containers: [{ ports: [{ name: 'pg', containerPort: 5432 }] }] }, status: { podIP: '10.0.2.2' } }),
];
const namespaces = [slimNamespace({ metadata: { name: 'x' } })];
const compiled = (spec: Record<string, unknown>, extraPods = pods) =>
  compileNode('n1', { pods: extraPods, namespaces, policies: [slimNetworkPolicy({ metadata: { namespace: 'x', name: 'p' }, spec: { podSelector: { matchLabels: { app: 'a' } }, ...spec } })] });

describe('flowVerdict (NetworkPolicy semantics as rendered to nftables)', () => {
  it('egress to a named port: resolved on the peer pod, allowed on that port only', () => {
    const c = compiled({ policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 'pg' }] }] });
    expect(flowVerdict(c, 'egress', '10.0.1.2', '10.0.2.2', { protocol: 'TCP', port: 5432 })).toMatchObject({ allowed: true, allowedBy: { policy: 'x/p', rule: 0, ports: 'named ports' } });
    expect(flowVerdict(c, 'egress', '10.0.1.2', '10.0.2.2', { protocol: 'TCP', port: 5433 })).toMatchObject({ allowed: false, selectedBy: [{ policy: 'x/p', rules: 1 }] });
    expect(flowVerdict(c, 'egress', '10.0.1.2', '10.0.2.2')).toMatchObject({ allowed: true });
    expect(flowVerdict(c, 'egress', '10.0.1.2', '10.0.9.9')).toMatchObject({ allowed: false }); // no pod, no named port
    expect(flowVerdict(c, 'ingress', '10.0.1.2', '10.0.2.2')).toEqual({ isolated: false, selectedBy: [], allowed: true });
  });

  it('a port range (endPort) holds its ends and nothing past them; an IPv6 peer is in no ipBlock', () => {
    const c = compiled({ ingress: [{ from: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ protocol: 'UDP', port: 1000, endPort: 2000 }] }] });
    for (const [port, allowed] of [[999, false], [1000, true], [2000, true], [2001, false]] as const) {
      expect(flowVerdict(c, 'ingress', '10.0.1.2', '10.0.2.2', { protocol: 'UDP', port }).allowed, String(port)).toBe(allowed);
    }
    expect(flowVerdict(c, 'ingress', '10.0.1.2', '10.0.2.2', { protocol: 'TCP', port: 1500 }).allowed).toBe(false);
    expect(flowVerdict(c, 'ingress', '10.0.1.2', 'fd00::2').allowed).toBe(false);
  });

  it('an address the API has not named while a pod here awaits its address: denied as pending', () => {
    const waiting = slimPod({ metadata: { namespace: 'x', name: 'new', labels: { app: 'a' } }, spec: { nodeName: 'n1' } });
    const c = compiled({ policyTypes: ['Ingress'] }, [...pods, waiting]);
    expect(flowVerdict(c, 'ingress', '10.0.1.77', '10.0.2.2')).toEqual({ isolated: true, selectedBy: [], allowed: false, pending: true });
    expect(flowVerdict(compiled({ policyTypes: ['Ingress'] }), 'ingress', '10.0.1.77', '10.0.2.2')).toMatchObject({ allowed: true });
  });
});
