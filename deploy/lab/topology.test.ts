import { describe, expect, it } from 'vitest';
import { agentConfig, cniConfig, planLab } from './topology.js';
import { birdConfig } from './bird.js';
import { parseAgentConfig } from '../../agent/config.js';

const options = { nodes: 3, pods: 2, prefix: 'lt-', stateDir: '/run/lightly/lab', holdTime: 9, tor: 'mesh' as const };

describe('lab plan', () => {
  it('names and addresses nodes and pods as the architecture shows', () => {
    const plan = planLab(options);
    expect(plan.nodes.map((n) => [n.name, n.netns, n.address, n.podCIDR])).toEqual([
      ['node-1', 'lt-node-1', '192.0.2.1', '10.244.1.0/24'],
      ['node-2', 'lt-node-2', '192.0.2.2', '10.244.2.0/24'],
      ['node-3', 'lt-node-3', '192.0.2.3', '10.244.3.0/24'],
    ]);
    expect(plan.nodes[0]!.statusSocket).toBe('/run/lightly/lab/node-1.sock');
    expect(plan.nodes[0]!.pods.map((p) => [p.name, p.netns])).toEqual([['pod-1-1', 'lt-pod-1-1'], ['pod-1-2', 'lt-pod-1-2']]);
  });

  it('gives each agent a valid config: a full mesh, or the ToR alone over eBGP', () => {
    const mesh = planLab(options);
    const c1 = parseAgentConfig(agentConfig(mesh, mesh.nodes[0]!));
    expect(c1.peers.map((p) => p.address)).toEqual(['192.0.2.2', '192.0.2.3']);
    expect(c1.podCIDRs).toEqual(['10.244.1.0/24']);
    const tor = planLab({ ...options, tor: 'bird' });
    const c2 = parseAgentConfig(agentConfig(tor, tor.nodes[1]!));
    expect(c2.peers).toMatchObject([{ address: '192.0.2.254', asn: 65000 }]);
    expect(c2.asn).toBe(64514);
    const bird = birdConfig(tor);
    expect(bird).toContain('neighbor 192.0.2.2 as 64514;');
    expect(bird).toContain('next hop keep');
    expect(cniConfig(tor.nodes[0]!)).toMatchObject({ type: 'lightly', ipam: { subnet: '10.244.1.0/24' }, cniServer: '/run/lightly/lab/node-1.cni' });
  });

  it('refuses sizes it cannot build', () => {
    expect(() => planLab({ ...options, nodes: 0 })).toThrow(/--nodes/);
    expect(() => planLab({ ...options, nodes: 500 })).toThrow(/--nodes/);
    expect(() => planLab({ ...options, pods: -1 })).toThrow(/--pods/);
  });
});
