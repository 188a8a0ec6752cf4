import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { realisticNode } from '../../test/support/fake-kube.js';
import { type ClusterNode, ROUTE_REFLECTOR_LABEL, desiredBgp } from './desired.js';
import { checkBgpConfiguration, checkBgpPeer, slimNode } from './objects.js';
import { matchesSelector, parseSelector } from './selector.js';

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
    expect(d.problem?.reason).toBe('NodeNotFound');
  });

  it('names what a node lacks (issue 13, item 6): pod CIDR, IPv4 address; the router-id annotation stands in for the latter', () => {
    const bare = { name: 'node-1', labels: {}, internalIPs: ['fd00::1'], podCIDRs: [] };
    expect(desiredBgp('node-1', [bare], {}, []).problem?.reason).toBe('NoRouterID');
    const annotated = { ...bare, routerIdAnnotation: '10.255.0.1' };
    expect(desiredBgp('node-1', [annotated], {}, [])).toMatchObject({ routerId: '10.255.0.1', problem: { reason: 'NoPodCIDR' } });
    expect(desiredBgp('node-1', [{ ...annotated, routerIdAnnotation: '10.255.0' }], {}, []).problem?.reason).toBe('InvalidRouterID');
    // Multi-homed: the annotation wins over the first InternalIP.
    const multi = { ...node(1), internalIPs: ['192.0.2.1', '198.51.100.1'], routerIdAnnotation: '198.51.100.1' };
    expect(desiredBgp('node-1', [multi, node(2)], {}, [])).toMatchObject({ routerId: '198.51.100.1' });
    expect(desiredBgp('node-1', [multi, node(2)], {}, []).problem).toBeUndefined();
  });

  it("lists every node's pod CIDRs for the NAT cluster set (issue 13, item 8)", () => {
    expect(desiredBgp('node-1', [node(1), node(2), node(3)], {}, []).clusterPodCIDRs).toEqual(['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
  });
});

describe('objects as kept (issue 13, items 5 and 9)', () => {
  it('a realistic ~11.6 KB Node is kept in a few hundred bytes with everything desiredBgp reads', () => {
    const raw = realisticNode('node-7', '10.0.0.7', '10.244.7.0/24');
    expect(JSON.stringify(raw).length).toBeGreaterThan(11_000);
    const slim = slimNode(raw);
    expect(JSON.stringify(slim).length).toBeLessThan(700);
    expect(slim).toMatchObject({ name: 'node-7', internalIPs: ['10.0.0.7'], podCIDRs: ['10.244.7.0/24'], labels: { 'kubernetes.io/hostname': 'node-7' } });
  });

  it.each([
    [{ peerIP: '10.0.0', asn: 65000 }, /spec\.peerIP/],
    [{ peerIP: '10.0.0.1/32', asn: 65000 }, /spec\.peerIP/],
    [{ peerIP: '10.0.0.1', asn: 0 }, /spec\.asn/],
    [{ peerIP: '10.0.0.1', asn: 4_294_967_296 }, /spec\.asn/],
    [{ peerIP: '10.0.0.1', asn: '65000' }, /spec\.asn/],
    [{ peerIP: '10.0.0.1', asn: 65000, nodeSelector: 'rack in (r1' }, /spec\.nodeSelector/],
    [{ peerIP: '10.0.0.1', asn: 65000, nodeSelector: 'a=b=c' }, /spec\.nodeSelector/],
    [{ peerIP: '10.0.0.1', asn: 65000, node: 'n1', nodeSelector: 'rack=r1' }, /not both/],
    [{ peerIP: '10.0.0.1', asn: 65000, holdTime: 2 }, /spec\.holdTime/],
  ])('BGPPeer spec %j is refused: %s', (spec, message) => {
    const checked = checkBgpPeer({ apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPPeer', metadata: { name: 'p', resourceVersion: '7' }, spec });
    expect(checked.spec).toBeUndefined();
    expect(checked.invalid).toMatch(message);
    expect(checked.ref).toMatchObject({ kind: 'BGPPeer', name: 'p', resourceVersion: '7' });
  });

  it('a valid BGPPeer and BGPConfiguration pass as written', () => {
    expect(checkBgpPeer({ metadata: { name: 'tor' }, spec: { peerIP: 'fd00::fe', asn: 4_294_967_295, nodeSelector: 'rack in (r1, r2),!edge' } }).spec).toEqual({ name: 'tor', peerIP: 'fd00::fe', asn: 4_294_967_295, nodeSelector: 'rack in (r1, r2),!edge' });
    expect(checkBgpConfiguration({ metadata: { name: 'default' }, spec: { asn: 64512, importCIDRs: ['10.244.0.0/16'] } }).invalid).toBeUndefined();
    expect(checkBgpConfiguration({ metadata: { name: 'default' }, spec: { importCIDRs: ['10.244.0.0'] } }).invalid).toMatch(/spec\.importCIDRs\.0/);
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
    expect(() => matchesSelector('rack=(', labels)).toThrow(/cannot parse|unbalanced/);
    for (const bad of ['rack in (r1', 'rack in ()', 'a=b=c', '=x', 'rack,,zone', '-rack', 'rack in (r1,(r2))']) expect(() => parseSelector(bad), bad).toThrow();
  });

  it('keys such as constructor or toString are labels like any other, never inherited properties', () => {
    const inherited = ['constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'];
    fc.assert(
      fc.property(fc.constantFrom(...inherited), fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.stringMatching(/^[a-z0-9]{0,8}$/)), (key, extra) => {
        const labels = Object.fromEntries(Object.entries(extra).filter(([k]) => k !== key));
        expect(matchesSelector(key, labels)).toBe(false);
        expect(matchesSelector(`!${key}`, labels)).toBe(true);
        expect(matchesSelector(`${key} in (x)`, labels)).toBe(false);
        expect(matchesSelector(`${key}=x`, { ...labels, [key]: 'x' })).toBe(true);
      }),
    );
  });
});
