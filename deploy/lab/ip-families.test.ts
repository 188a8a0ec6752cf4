// The lab's address plan per stack, pure: what `--dual-stack` and `--ipv6-only` give nodes, agents, the plugin and BIRD.
import { describe, expect, it } from 'vitest';
import { agentConfig, cniConfig, planLab, type LabOptions } from './topology.js';
import { birdConfig } from './bird.js';
import { nodeAddressLines } from './ip-families.js';

const options = (extra: Partial<LabOptions>): LabOptions => ({ nodes: 2, pods: 1, prefix: 'lt-', stateDir: '/tmp/lt-lab', holdTime: 3, tor: 'mesh', ...extra });

describe('lab address families', () => {
  it('--dual-stack: each node an IPv4 and an IPv6 address and pod CIDR, both advertised and accepted, one ipam range set per family', () => {
    const plan = planLab(options({ stack: 'dual' }));
    const node = plan.nodes[0]!;
    expect(node).toMatchObject({ address: '192.0.2.1', address6: '2001:db8:2::1', podCIDR: '10.244.1.0/24', podCIDR6: 'fd00:10:244:1::/64' });
    expect(agentConfig(plan, node)).toMatchObject({ routerId: '192.0.2.1', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'], importCIDRs: ['10.244.0.0/16', 'fd00:10:244::/48'], peers: [{ address: '192.0.2.2' }] });
    expect(cniConfig(node).ipam).toEqual({ ranges: [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:10:244:1::/64' }]] });
    expect(nodeAddressLines(plan, node)).toEqual(['addr add 192.0.2.1/24 dev eth0', 'route add default via 192.0.2.254', 'addr add 2001:db8:2::1/64 dev eth0 nodad', 'route add default via 2001:db8:2::fe']);
    const bird = birdConfig(planLab(options({ stack: 'dual', tor: 'bird' })));
    expect(bird).toContain('local 192.0.2.254 as 65000;');
    expect(bird).toContain('ipv4 { import all; export all; next hop keep; };');
    expect(bird).toContain('ipv6 { import all; export all; next hop keep; };');
  });

  it('--ipv6-only: IPv6 addresses and pod CIDRs only, sessions to IPv6 addresses, the IPv4-shaped router id configured', () => {
    const plan = planLab(options({ stack: 'ipv6', tor: 'bird' }));
    const node = plan.nodes[1]!;
    expect(node).toMatchObject({ address: '2001:db8:2::2', podCIDR: 'fd00:10:244:2::/64', routerId: '192.0.2.2' });
    expect(agentConfig(plan, node)).toMatchObject({ routerId: '192.0.2.2', podCIDRs: ['fd00:10:244:2::/64'], importCIDRs: ['fd00:10:244::/48'], listen: { address: '2001:db8:2::2' }, peers: [{ address: '2001:db8:2::fe' }] });
    expect(cniConfig(node).ipam).toEqual({ subnet: 'fd00:10:244:2::/64' });
    expect(nodeAddressLines(plan, node).join('\n')).not.toMatch(/192\.0\.2/);
    const bird = birdConfig(plan);
    expect(bird).toContain('local 2001:db8:2::fe as 65000;');
    expect(bird).toContain('neighbor 2001:db8:2::2 as 64514;');
    expect(bird).not.toContain('ipv4 {');
  });

  it('without a stack the plan is IPv4 as before', () => {
    const plan = planLab(options({}));
    expect(plan.nodes[0]!.address6).toBeUndefined();
    expect(agentConfig(plan, plan.nodes[0]!)).toMatchObject({ podCIDRs: ['10.244.1.0/24'], importCIDRs: ['10.244.0.0/16'] });
    expect(cniConfig(plan.nodes[0]!).ipam).toEqual({ subnet: '10.244.1.0/24' });
  });
});
