// The rendered table: rules depend on policies only, pods are set elements, every change is one transaction.
import { describe, expect, it } from 'vitest';
import { compileNode } from './compile.js';
import { counterPackets, dropRuleMatch, fullText, renderRuleset, updateText } from './nft.js';
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

  it('every drop rule counts what it drops (the kernel evidence lightlyctl doctor shows); nothing else counts', () => {
    const rules = render(base).chains.flatMap((c) => c.rules);
    const drops = rules.filter((l) => /\bdrop\b/.test(l));
    expect(drops).toHaveLength(6); // pending egress, pending ingress (each family), egress and ingress default deny
    for (const l of drops) expect(l).toMatch(/(^| )counter drop comment "/);
    expect(rules.filter((l) => l.includes('counter'))).toEqual(drops);
    const chain = (name: string) => render(base).chains.find((c) => c.name === name)!.rules.at(-1);
    expect(chain('ingress')).toBe('counter drop comment "isolated for ingress, no policy allows"');
    expect(chain('egress')).toBe('counter drop comment "isolated for egress, no policy allows"');
  });

  it("the drop rule of a flow is found in nft's listing (rendered rules, as the kernel prints them back) with its packet count", () => {
    // `nft -a list chain` prints a counter as `counter packets N bytes M` and appends the handle.
    const listed = (line: string) => line.replace(/\bcounter /, 'counter packets 7 bytes 588 ') + ' # handle 12';
    const rules = render(base).chains.flatMap((c) => c.rules.map((l) => ({ chain: c.name, line: listed(l) })));
    for (const direction of ['ingress', 'egress'] as const) {
      for (const [pending, v6] of [[false, false], [true, false], [true, true]] as const) {
        const { chain, mark } = dropRuleMatch(direction, pending, v6);
        const found = rules.filter((r) => r.chain === chain && r.line.includes(mark));
        expect(found, `${direction} pending=${pending} v6=${v6}`).toHaveLength(1);
        expect(found[0]!.line).toContain(v6 ? 'ip6 ' : pending ? 'ip ' : 'drop');
        expect(counterPackets(found[0]!.line)).toBe(7);
      }
    }
    expect(counterPackets('ip daddr @x accept # handle 3')).toBeUndefined();
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

describe('dual stack: every set has an IPv6 twin (ipv6_addr) and every rule an ip6 one', () => {
  const dual = (name: string, n: number, node: string, labels: Record<string, string>) =>
    slimPod({ metadata: { namespace: 'x', name, labels }, spec: { nodeName: node, containers: [{ ports: [{ name: 'http', containerPort: 80 }] }] }, status: { podIPs: [{ ip: `10.244.${n}.2` }, { ip: `fd00:10:244:${n}::2` }] } });
  const pods = [dual('a', 1, 'n1', { pod: 'a' }), dual('b', 2, 'n2', { pod: 'b' })];
  const cidr = slimNetworkPolicy({ metadata: { namespace: 'x', name: 'cidr' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: 'fd00:10:244::/48', except: ['fd00:10:244:2::/64'] } }] }, { ports: [{ port: 'http' }] }] } });
  const text = fullText(render(pods, [allowB, cidr]));
  const set = (name: string) => text.split('\n').find((l) => l.startsWith(`  set ${name} `));

  it('IPv6 addresses go into the ipv6_addr sets only, IPv4 ones into the ipv4_addr sets only', () => {
    expect(set('local_pods')).toBe('  set local_pods { type ipv4_addr; elements = { 10.244.1.2 }; }');
    expect(set('local_pods6')).toBe('  set local_pods6 { type ipv6_addr; elements = { fd00:10:244:1::2 }; }');
    expect(set('ingress_isolated6')).toBe('  set ingress_isolated6 { type ipv6_addr; elements = { fd00:10:244:1::2 }; }');
    expect(set('egress_isolated6')).toBe('  set egress_isolated6 { type ipv6_addr; elements = { fd00:10:244:1::2 }; }');
    expect(text).toMatch(/set p\w+_i0_pods6 \{ type ipv6_addr; elements = \{ fd00:10:244:2::2 \}; \}/);
    expect(text).toMatch(/set p\w+_i0_pods \{ type ipv4_addr; elements = \{ 10\.244\.2\.2 \}; \}/);
  });

  it('default deny and the pending race apply to both families', () => {
    expect(text).toContain('oifname "lxc*" ip6 daddr @ingress_isolated6 jump ingress');
    expect(text).toContain('iifname "lxc*" ip6 saddr @egress_isolated6 jump egress');
    expect(text).toContain('oifname "lxc*" ip6 daddr != @local_pods6 ip6 daddr @pending_ingress6 counter drop');
    expect(text).toContain('iifname "lxc*" ip6 saddr != @local_pods6 ip6 saddr @pending_egress6 counter drop');
    const pending = fullText(renderRuleset(compileNode('n1', { pods: [slimPod({ metadata: { namespace: 'x', name: 'new', labels: { pod: 'a' } }, spec: { nodeName: 'n1' } })], namespaces: [], policies: [allowB] })));
    expect(pending).toContain('set pending_ingress { type ipv4_addr; flags interval; elements = { 0.0.0.0/0 }; }');
    expect(pending).toContain('set pending_ingress6 { type ipv6_addr; flags interval; elements = { ::/0 }; }');
  });

  it('rules match ip6 addresses against the twin sets: selectors, ipBlock with except, named ports', () => {
    expect(text).toMatch(/ip6 daddr @p\w+_targets6 ip6 saddr @p\w+_i0_pods6 meta l4proto tcp th dport 80 accept comment "x\/allow-b ingress\[0\]"/);
    expect(text).toMatch(/ip6 saddr @p\w+_targets6 ip6 daddr @p\w+_e0_cidr6 return comment "x\/cidr egress\[0\]"/);
    expect(text).toMatch(/set p\w+_e0_cidr6 \{ type ipv6_addr; flags interval; elements = \{ fd00:10:244::-fd00:10:244:1:ffff:ffff:ffff:ffff, fd00:10:244:3::-fd00:10:244:ffff:ffff:ffff:ffff:ffff \}; \}/);
    expect(text).toMatch(/set p\w+_e0_cidr \{ type ipv4_addr; flags interval; \}/);
    expect(text).toMatch(/ip6 saddr @p\w+_targets6 ip6 daddr \. meta l4proto \. th dport @p\w+_e1_named6 return/);
    expect(text).toMatch(/set p\w+_e1_named6 \{ type ipv6_addr \. inet_proto \. inet_service; elements = \{ fd00:10:244:1::2 \. tcp \. 80, fd00:10:244:2::2 \. tcp \. 80 \}; \}/);
  });

  it('only the forward hook: neighbour discovery with the host (input/output, link-local) is never filtered', () => {
    expect(text.match(/hook \w+/g)).toEqual(['hook forward']);
    expect(text).not.toMatch(/icmpv6|fe80/);
  });

  it('IPv6 pod churn is set elements only', () => {
    const churn = updateText(render(pods, [allowB, cidr]), render([...pods, dual('b2', 3, 'n2', { pod: 'b' })], [allowB, cidr]));
    expect(churn).not.toMatch(/table|chain|rule/);
    expect(churn).toMatch(/add element inet lightly-policy p\w+_i0_pods6 \{ fd00:10:244:3::2 \}/);
  });
});
