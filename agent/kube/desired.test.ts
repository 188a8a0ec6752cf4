import { describe, expect, it } from 'vitest';
import { type ClusterNode, ROUTE_REFLECTOR_LABEL, desiredBgp } from './desired.js';
import { matchesSelector } from './selector.js';

const node = (i: number, labels: Record<string, string> = {}): ClusterNode => ({
  name: `node-${i}`, labels, internalIPs: [`192.0.2.${i}`, `fd00::${i}`], podCIDRs: [`10.244.${i}.0/24`],
});

describe('desiredBgp', () => {
  it('full mesh by default: every other node, iBGP, our pod CIDRs and router id', () => {
    const d = desiredBgp('node-1', [node(1), node(2), node(3)], {}, []);
    expect(d.routerId).toBe('192.0.2.1');
    expect(d.asn).toBe(64512);
    expect(d.podCIDRs).toEqual(['10.244.1.0/24']);
    expect(d.peers.map((p) => [p.address, p.asn, p.type])).toEqual([['192.0.2.2', 64512, 'node-mesh'], ['192.0.2.3', 64512, 'node-mesh']]);
  });

  it('mesh off with reflectors: clients peer with reflectors only; reflectors with everyone, reflecting to clients', () => {
    const nodes = [node(1, { [ROUTE_REFLECTOR_LABEL]: '224.0.0.1' }), node(2), node(3), node(4, { [ROUTE_REFLECTOR_LABEL]: '224.0.0.1' })];
    const client = desiredBgp('node-2', nodes, { nodeToNodeMesh: false }, []);
    expect(client.peers.map((p) => p.address)).toEqual(['192.0.2.1', '192.0.2.4']);
    expect(client.clusterId).toBeUndefined();
    const rr = desiredBgp('node-1', nodes, { nodeToNodeMesh: false }, []);
    expect(rr.clusterId).toBe('224.0.0.1');
    expect(rr.peers.map((p) => [p.address, p.routeReflectorClient])).toEqual([['192.0.2.2', true], ['192.0.2.3', true], ['192.0.2.4', false]]);
  });

  it('mesh off and no reflector keeps the mesh rather than isolating the node', () => {
    expect(desiredBgp('node-1', [node(1), node(2)], { nodeToNodeMesh: false }, []).peers).toHaveLength(1);
  });

  it('BGPPeers: global to all, node to one, nodeSelector to matching nodes', () => {
    const nodes = [node(1, { rack: 'r1' }), node(2, { rack: 'r2' })];
    const peers = [
      { name: 'tor-all', peerIP: '192.0.2.254', asn: 65000, holdTime: 9 },
      { name: 'tor-r1', peerIP: '192.0.2.253', asn: 65001, nodeSelector: 'rack=r1' },
      { name: 'only-2', peerIP: '192.0.2.252', asn: 65002, node: 'node-2', maxPrefixes: 5 },
    ];
    const d1 = desiredBgp('node-1', nodes, { asn: 64600 }, peers);
    expect(d1.peers.map((p) => [p.address, p.type])).toEqual([['192.0.2.2', 'node-mesh'], ['192.0.2.254', 'global'], ['192.0.2.253', 'node-specific']]);
    expect(d1.peers[1]!.holdTime).toBe(9);
    expect(d1.peers[0]!.asn).toBe(64600);
    const d2 = desiredBgp('node-2', nodes, {}, peers);
    expect(d2.peers.map((p) => p.address)).toEqual(['192.0.2.1', '192.0.2.254', '192.0.2.252']);
    expect(d2.peers[2]!.maxPrefixes).toBe(5);
  });

  it('takes settings from BGPConfiguration and copes with our own Node not being there yet', () => {
    const d = desiredBgp('node-9', [node(1)], { importCIDRs: ['10.244.0.0/16'], natOutgoing: true, holdTime: 30, maxPrefixes: 50 }, []);
    expect(d).toMatchObject({ podCIDRs: [], importCIDRs: ['10.244.0.0/16'], natOutgoing: true, holdTime: 30, maxPrefixes: 50 });
    expect(d.routerId).toBeUndefined();
  });
});

describe('label selectors', () => {
  const labels = { rack: 'r1', zone: 'a', gpu: '' };
  it.each([
    ['rack=r1', true], ['rack==r1', true], ['rack!=r1', false], ['rack=r2', false],
    ['rack=r1,zone=a', true], ['rack=r1,zone=b', false], ['gpu', true], ['!gpu', false], ['!ssd', true],
    ['rack in (r1, r2)', true], ['rack notin (r1)', false], ['zone in (b,c),rack=r1', false], ['', true],
  ])('%s → %s', (selector, expected) => {
    expect(matchesSelector(selector, labels)).toBe(expected);
  });
  it('rejects what it cannot parse', () => {
    expect(() => matchesSelector('rack=(', labels)).toThrow(/cannot parse/);
  });
});
