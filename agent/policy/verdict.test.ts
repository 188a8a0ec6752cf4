// doctor's verdicts read the compiled model the nftables rules come from; these are the matches of
// nft.ts's ruleLines that the doctor tests do not reach: egress named ports, endPort ranges, the
// unknown address of a pod whose node is waiting for it, and IPv6 (ip6 sets: an address only ever
// meets the ranges and pods of its own family).
import { describe, expect, it } from 'vitest';
import { compileNode } from './compile.js';
import { slimNamespace, slimNetworkPolicy, slimPod } from './objects.js';
import { flowVerdict, policyFacts } from './verdict.js';

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

  it('a port range (endPort) holds its ends and nothing past them; an IPv6 peer is in no IPv4 ipBlock', () => {
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

describe('flowVerdict over IPv6 (dual-stack pods: the model keeps every pod address, rules render per family)', () => {
  const dual = (name: string, n: number, node: string, labels: Record<string, string>) =>
    slimPod({ metadata: { namespace: 'x', name, labels }, spec: { nodeName: node, containers: [{ ports: [{ name: 'pg', containerPort: 5432 }] }] }, status: { podIPs: [{ ip: `10.0.${n}.2` }, { ip: `fd00:10:0:${n}::2` }] } });
  const dualPods = [dual('a', 1, 'n1', { app: 'a' }), dual('db', 2, 'n2', { app: 'db' }), dual('c', 3, 'n2', { app: 'c' })];
  const A6 = 'fd00:10:0:1::2';
  const DB6 = 'fd00:10:0:2::2';
  const C6 = 'fd00:10:0:3::2';

  it('an IPv6 ipBlock (with an except) holds IPv6 peers only; an IPv4 block holds no IPv6 peer and the reverse', () => {
    const c = compiled({ ingress: [{ from: [{ ipBlock: { cidr: 'fd00:10::/32', except: ['fd00:10:0:3::/64'] } }] }] }, dualPods);
    expect(flowVerdict(c, 'ingress', A6, DB6)).toMatchObject({ isolated: true, allowed: true, allowedBy: { policy: 'x/p', rule: 0, ports: 'any port' } });
    expect(flowVerdict(c, 'ingress', A6, C6)).toMatchObject({ isolated: true, allowed: false }); // the except
    expect(flowVerdict(c, 'ingress', A6, 'fd00:11::2').allowed).toBe(false);
    expect(flowVerdict(c, 'ingress', '10.0.1.2', '10.0.2.2').allowed).toBe(false); // IPv4: the IPv4 set is empty
    const v4 = compiled({ ingress: [{ from: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }] }, dualPods);
    expect(flowVerdict(v4, 'ingress', A6, DB6).allowed).toBe(false);
    expect(flowVerdict(v4, 'ingress', '10.0.1.2', '10.0.2.2').allowed).toBe(true);
    // ::ffff:10.0.2.2 is an IPv6 address (the ip6 rules see it), not the IPv4 one.
    expect(flowVerdict(v4, 'ingress', A6, '::ffff:10.0.2.2').allowed).toBe(false);
  });

  it('selectors pick the IPv6 addresses of the pods they select, and the selected pod is isolated over IPv6', () => {
    const c = compiled({ ingress: [{ from: [{ podSelector: { matchLabels: { app: 'db' } } }] }] }, dualPods);
    expect(flowVerdict(c, 'ingress', A6, DB6)).toMatchObject({ isolated: true, allowed: true });
    expect(flowVerdict(c, 'ingress', A6, C6)).toMatchObject({ isolated: true, allowed: false, selectedBy: [{ policy: 'x/p', rules: 1 }] });
  });

  it('addresses in any IPv6 spelling (upper case, zeros written out) get the verdict of their canonical form', () => {
    const c = compiled({ policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 'pg' }] }] }, dualPods);
    expect(flowVerdict(c, 'egress', 'FD00:10:0:1:0:0:0:2', 'fd00:0010:0:2:0::2', { protocol: 'TCP', port: 5432 })).toMatchObject({ isolated: true, allowed: true, allowedBy: { ports: 'named ports' } });
    expect(flowVerdict(c, 'egress', 'FD00:10:0:1:0:0:0:2', 'fd00:0010:0:3:0::2', { protocol: 'TCP', port: 5432 })).toMatchObject({ isolated: true, allowed: false });
    const facts = policyFacts(c, dualPods, 'FD00:10:0:1::2', 'fd00:10:0:2:0:0:0:2');
    expect(facts).toMatchObject({ local: { name: 'x/a' }, remote: { name: 'x/db' }, egress: { allowed: true } });
  });
});
