// The rack lab's plan and router configs, pure: RFC 7938 layout (a ToR AS per rack, one spine AS, an AS per node).
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../agent/config.js';
import { nodeAddressLines } from './ip-families.js';
import { planFabric, rackOf, rackSegment, readTemplate, spineConfig, torConfig } from './racks.js';
import { renderTemplate } from './template.js';
import { agentConfig, planLab } from './topology.js';

const options = { nodes: 4, pods: 1, prefix: 'lt-', stateDir: '/run/lightly/lab', holdTime: 3, tor: 'frr' as const, racks: 2 };

describe('rack lab plan', () => {
  it('spreads nodes over racks in order, each node its own AS on its rack subnet', () => {
    const plan = planLab(options);
    expect(plan.nodes.map((n) => [n.name, rackOf(options, n.index), n.address, n.asn])).toEqual([
      ['node-1', 1, '10.1.1.1', 64513], ['node-2', 1, '10.1.1.2', 64514], ['node-3', 2, '10.1.2.3', 64515], ['node-4', 2, '10.1.2.4', 64516],
    ]);
    expect(plan.fabric!.racks.map((r) => [r.torNetns, r.torAsn, r.rackAddress])).toEqual([['lt-tor-1', 65101, '10.1.1.254'], ['lt-tor-2', 65102, '10.1.2.254']]);
    expect(plan.fabric!.spine).toBe('frr');
    expect(planLab({ ...options, spine: 'bird' }).fabric!.spine).toBe('bird');
  });

  it('each node peers with its own ToR only, over eBGP with the password', () => {
    const plan = planLab(options);
    for (const node of plan.nodes) {
      const config = parseAgentConfig(agentConfig(plan, node));
      const rack = plan.fabric!.racks[rackOf(options, node.index) - 1]!;
      expect(config.peers).toEqual([expect.objectContaining({ address: rack.rackAddress, asn: rack.torAsn, password: plan.fabric!.nodePassword })]);
      expect(config.asn).toBe(node.asn);
    }
  });

  it('refuses what it cannot build', () => {
    expect(() => planLab({ ...options, stack: 'ipv6' })).toThrow(/--racks does not take --ipv6-only/);
    expect(() => planLab({ ...options, racks: 5 })).toThrow(/one node per rack/);
    expect(() => planLab({ ...options, racks: undefined })).toThrow(/--tor frr needs --racks/);
    expect(() => planFabric({ ...options, tor: 'mesh' })).toThrow(/--tor frr or --tor bird/);
  });

  it.each(['frr', 'bird'] as const)('renders complete %s configs from the templates: every node of the rack, the spine, the passwords', (kind) => {
    const plan = planLab({ ...options, tor: kind, spine: kind });
    const fabric = plan.fabric!;
    const tor2 = torConfig(plan, fabric.racks[1]!, readTemplate('tor', kind));
    const spine = spineConfig(plan, readTemplate('spine', kind));
    for (const text of [tor2, spine]) expect(text).not.toMatch(/\{\{/);
    expect(tor2).toContain('10.1.2.3');
    expect(tor2).toContain('10.1.2.4');
    expect(tor2).not.toContain('10.1.1.1');
    expect(tor2).toContain(fabric.nodePassword);
    expect(tor2).toContain(fabric.fabricPassword);
    expect(tor2).toContain('65200');
    expect(spine).toContain('10.255.1.1');
    expect(spine).toContain('10.255.2.1');
    expect(spine).toContain('65102');
    expect(spine).toContain(fabric.fabricPassword);
  });
});

describe('rack lab --dual-stack (IPv6 NLRI over the IPv4 sessions, RFC 4760)', () => {
  const dual = planLab({ ...options, stack: 'dual' });

  it('gives every node an IPv6 address on its rack\'s subnet, its default route via the ToR, and an IPv6 pod CIDR to advertise', () => {
    expect(dual.nodes.map((n) => [n.address6, n.podCIDR6])).toEqual([
      ['2001:db8:1:1::1', 'fd00:10:244:1::/64'], ['2001:db8:1:1::2', 'fd00:10:244:2::/64'], ['2001:db8:1:2::3', 'fd00:10:244:3::/64'], ['2001:db8:1:2::4', 'fd00:10:244:4::/64'],
    ]);
    const node3 = dual.nodes[2]!;
    const segment = rackSegment(dual, node3);
    expect(segment).toEqual({ netns: 'lt-tor-2', gateway: '10.1.2.254', gateway6: '2001:db8:1:2::fe' });
    expect(nodeAddressLines(dual, node3, segment.gateway, segment.gateway6)).toEqual([
      'addr add 10.1.2.3/24 dev eth0', 'route add default via 10.1.2.254', 'addr add 2001:db8:1:2::3/64 dev eth0 nodad', 'route add default via 2001:db8:1:2::fe',
    ]);
    const config = parseAgentConfig(agentConfig(dual, node3));
    expect(config.podCIDRs).toEqual(['10.244.3.0/24', 'fd00:10:244:3::/64']);
    expect(config.peers.map((p) => p.address)).toEqual(['10.1.2.254']); // one session, IPv4, for both families
  });

  it('FRR: the IPv6 address family on the same neighbours, nodes filtered as for IPv4', () => {
    const tor = torConfig(dual, dual.fabric!.racks[0]!, readTemplate('tor', 'frr'));
    expect(tor).toMatch(/address-family ipv6 unicast\n {2}neighbor NODES activate\n {2}neighbor NODES route-map FROM-NODES6 in\n {2}neighbor 10\.255\.1\.2 activate\n exit-address-family/);
    expect(tor).toContain('ipv6 prefix-list PODS6 seq 10 permit fd00:10:244::/48 ge 48 le 128');
    expect(spineConfig(dual, readTemplate('spine', 'frr'))).toMatch(/address-family ipv6 unicast\n {2}neighbor TORS activate/);
  });

  it('BIRD: an ipv6 channel on every session and an IPv6 kernel protocol', () => {
    const tor = torConfig(dual, dual.fabric!.racks[0]!, readTemplate('tor', 'bird'));
    expect(tor).toContain('  ipv6 { import filter from_node6; export all; };');
    expect(tor).toContain('  ipv6 { import all; export where source = RTS_BGP; };');
    expect(tor).toContain('if net ~ [ fd00:10:244::/48{48,128} ] && bgp_path.len = 1 then accept;');
    expect(spineConfig(dual, readTemplate('spine', 'bird'))).toContain('  ipv6 { import all; export all; };');
  });

  it.each(['frr', 'bird'] as const)('without --dual-stack the %s templates render IPv4 only', (kind) => {
    const plan = planLab({ ...options, tor: kind });
    for (const text of [torConfig(plan, plan.fabric!.racks[0]!, readTemplate('tor', kind)), spineConfig(plan, readTemplate('spine', kind))]) {
      expect(text).not.toMatch(/ipv6|fd00|\{\{/);
    }
  });
});

describe('renderTemplate', () => {
  it('fills values and repeats list blocks with item fields over outer ones', () => {
    expect(renderTemplate('as {{asn}}\n{{#nodes}}\nn {{address}} {{asn}}\n{{/nodes}}\nend\n', { asn: 1, nodes: [{ address: 'a' }, { address: 'b', asn: 2 }] })).toBe('as 1\nn a 1\nn b 2\nend\n');
  });

  it('a missing value is an error, not an empty string', () => {
    expect(() => renderTemplate('x {{nope}}', {})).toThrow(/no value for \{\{nope\}\}/);
    expect(() => renderTemplate('{{#l}}\nx\n{{/l}}\n', { l: 1 })).toThrow(/needs a list/);
  });
});
