// The rendered table: rules depend on policies only, pods are set elements, every change is one transaction.
import { describe, expect, it } from 'vitest';
import { compileNode } from './compile.js';
import { fullText, renderRuleset, updateText } from './nft.js';
import { slimNetworkPolicy, slimPod } from './objects.js';

const pod = (name: string, ip: string, node: string, labels: Record<string, string>) => slimPod({ metadata: { namespace: 'x', name, labels }, spec: { nodeName: node }, status: { podIP: ip } });
const allowB = slimNetworkPolicy({ metadata: { namespace: 'x', name: 'allow-b' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] }] } });
const render = (pods: ReturnType<typeof pod>[], policies = [allowB]) => renderRuleset(compileNode('n1', { pods, namespaces: [{ name: 'x', labels: {} }], policies }));
const base = [pod('a', '10.244.1.2', 'n1', { pod: 'a' }), pod('b', '10.244.2.2', 'n2', { pod: 'b' })];

describe('nftables ruleset of table inet lightly-policy', () => {
  it('replaces only our own table, atomically (declare, delete, define in one transaction)', () => {
    const text = fullText(render(base));
    expect(text.split('\n').slice(0, 3)).toEqual(['add table inet lightly-policy', 'delete table inet lightly-policy', 'table inet lightly-policy {']);
    expect(text).not.toMatch(/\b(flush ruleset|table (ip|ip6|inet) (?!lightly-policy))/);
    expect(text).toContain('ct state established,related accept');
    expect(text).toMatch(/ip daddr @p\w+_targets ip saddr @p\w+_i0_pods meta l4proto tcp th dport 80 accept comment "x\/allow-b ingress\[0\]"/);
  });

  it('pod churn (a new peer, a new selected pod, one gone) is set elements only, no rule changes', () => {
    const before = render(base);
    const after = render([pod('a', '10.244.1.2', 'n1', { pod: 'a' }), pod('a2', '10.244.1.5', 'n1', { pod: 'a' }), pod('b2', '10.244.2.7', 'n2', { pod: 'b' })]);
    const text = updateText(before, after);
    expect(text).not.toMatch(/table|chain|rule/);
    expect(text).toContain('delete element inet lightly-policy p');
    expect(text).toMatch(/add element inet lightly-policy p\w+_i0_pods \{ 10\.244\.2\.7 \}/);
    expect(text).toMatch(/add element inet lightly-policy p\w+_targets \{ 10\.244\.1\.5 \}/);
    expect(text).toContain('add element inet lightly-policy ingress_isolated { 10.244.1.5 }');
  });

  it('a policy change replaces the table; no change writes nothing', () => {
    const before = render(base);
    expect(updateText(before, render(base))).toBe('');
    expect(updateText(before, render(base, []))).toMatch(/^add table inet lightly-policy\ndelete table/);
  });

  it('SCTP, endPort ranges and a protocol without port become l4proto/th dport matches', () => {
    const sctp = slimNetworkPolicy({ metadata: { namespace: 'x', name: 'sctp' }, spec: { podSelector: {}, ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }, { protocol: 'UDP', port: 80, endPort: 81 }, { protocol: 'TCP' }] }] } });
    const text = fullText(render(base, [sctp]));
    expect(text).toMatch(/ip daddr @p\w+_targets meta l4proto sctp th dport 80 accept/);
    expect(text).toMatch(/ip daddr @p\w+_targets meta l4proto udp th dport 80-81 accept/);
    expect(text).toMatch(/ip daddr @p\w+_targets meta l4proto tcp accept/);
  });
});
