// Per-node AS numbers (RFC 7938 layout), BGPPeers selecting Nodes as peers, and BGPPeer passwords: the pure parts.
import { describe, expect, it } from 'vitest';
import { type ClusterNode, desiredBgp } from './desired.js';
import { nodeAsn } from './node-asn.js';
import { checkBgpPeer, slimNode } from './objects.js';
import { peerPassword } from './peer-password.js';

const node = (i: number, asn?: string, labels: Record<string, string> = {}): ClusterNode => ({
  name: `node-${i}`, labels, internalIPs: [`192.0.2.${i}`], podCIDRs: [`10.244.${i}.0/24`], ...(asn !== undefined ? { asnLabel: asn } : {}),
});
const secrets = (values: Record<string, Record<string, string>>) => ({
  namespace: 'kube-system',
  secrets: new Map(Object.entries(values).map(([name, data]) => [name, { name, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) }])),
});
const peersOf = (d: ReturnType<typeof desiredBgp>) => d.peers.map((p) => [p.address, p.asn, p.type]);

describe('per-node AS (lightly.dev/asn)', () => {
  it('reads the label, else the annotation, from a Node', () => {
    const raw = (labels: Record<string, string>, annotations: Record<string, string>) => ({ metadata: { name: 'n', labels, annotations }, status: { addresses: [] } });
    expect(slimNode(raw({ 'lightly.dev/asn': '65101' }, { 'lightly.dev/asn': '65999' })).asnLabel).toBe('65101');
    expect(slimNode(raw({}, { 'lightly.dev/asn': '4200000001' })).asnLabel).toBe('4200000001');
    expect(slimNode(raw({}, {})).asnLabel).toBeUndefined();
  });

  it('a valid value is the node AS; an invalid one falls back to the cluster AS and is a problem', () => {
    expect(nodeAsn({ asnLabel: '65101' }, 64512)).toEqual({ asn: 65101 });
    expect(nodeAsn({ asnLabel: '4294967295' }, 64512)).toEqual({ asn: 4294967295 });
    expect(nodeAsn({}, 64512)).toEqual({ asn: 64512 });
    for (const bad of ['0', '4294967296', 'as65101', '-1', '1.5', '']) {
      expect(nodeAsn({ asnLabel: bad }, 64512).asn).toBe(64512);
      expect(nodeAsn({ asnLabel: bad }, 64512).problem).toMatch(/not an AS number/);
    }
    expect(desiredBgp('node-1', [node(1, 'x')], {}, []).problem?.reason).toBe('InvalidASN');
  });

  it('the node speaks its own AS; the mesh joins only nodes of the same AS (iBGP)', () => {
    const nodes = [node(1, '65101'), node(2, '65101'), node(3, '65102'), node(4)];
    const d = desiredBgp('node-1', nodes, {}, []);
    expect(d.asn).toBe(65101);
    expect(peersOf(d)).toEqual([['192.0.2.2', 65101, 'node-mesh']]);
    // a node without the label has the cluster's AS, and meshes with the others of that AS
    expect(desiredBgp('node-4', nodes, { asn: 64600 }, []).asn).toBe(64600);
  });

  it('with ebgpNodeMesh the mesh joins nodes of other AS too, over eBGP with their AS', () => {
    const nodes = [node(1, '65101'), node(2, '65101'), node(3, '65102')];
    expect(peersOf(desiredBgp('node-1', nodes, { ebgpNodeMesh: true }, []))).toEqual([['192.0.2.2', 65101, 'node-mesh'], ['192.0.2.3', 65102, 'node-mesh']]);
  });

  it('mesh off with a BGPPeer for the node (its ToR): the ToR alone, no mesh', () => {
    const nodes = [node(1, '65101', { rack: 'r1' }), node(2, '65101', { rack: 'r1' }), node(3, '65102', { rack: 'r2' })];
    const tors = [
      { name: 'tor-r1', peerIP: '192.0.2.251', asn: 65001, nodeSelector: 'rack=r1' },
      { name: 'tor-r2', peerIP: '192.0.2.252', asn: 65002, nodeSelector: 'rack=r2' },
    ];
    expect(peersOf(desiredBgp('node-1', nodes, { nodeToNodeMesh: false }, tors))).toEqual([['192.0.2.251', 65001, 'node-specific']]);
    expect(peersOf(desiredBgp('node-3', nodes, { nodeToNodeMesh: false }, tors))).toEqual([['192.0.2.252', 65002, 'node-specific']]);
  });

  it('route reflection stays within an AS', () => {
    const rr = { 'lightly.dev/route-reflector': '224.0.0.1' };
    const nodes = [node(1, '65101', rr), node(2, '65101'), node(3, '65102', rr), node(4, '65102')];
    expect(peersOf(desiredBgp('node-2', nodes, { nodeToNodeMesh: false }, []))).toEqual([['192.0.2.1', 65101, 'node-mesh']]);
    expect(peersOf(desiredBgp('node-1', nodes, { nodeToNodeMesh: false }, []))).toEqual([['192.0.2.2', 65101, 'node-mesh']]);
  });
});

describe('BGPPeer peerSelector: Nodes as peers, each with its own AS', () => {
  it('validates: peerIP with asn, or peerSelector; not both, not neither', () => {
    const ok = (spec: Record<string, unknown>) => checkBgpPeer({ metadata: { name: 'p' }, spec }).spec !== undefined;
    expect(ok({ peerIP: '192.0.2.9', asn: 65000 })).toBe(true);
    expect(ok({ peerSelector: 'edge' })).toBe(true);
    expect(ok({ peerSelector: 'edge', asn: 65000 })).toBe(true);
    expect(ok({ peerIP: '192.0.2.9' })).toBe(false);
    expect(ok({ peerIP: '192.0.2.9', asn: 65000, peerSelector: 'edge' })).toBe(false);
    expect(ok({ asn: 65000 })).toBe(false);
    expect(ok({ peerSelector: 'a=b=c' })).toBe(false);
  });

  it('takes the selected Nodes at their addresses, with the AS of their label (or the BGPPeer asn)', () => {
    const nodes = [node(1, '65101'), node(2, '65102', { edge: 'true' }), node(3, undefined, { edge: 'true' })];
    const d = desiredBgp('node-1', nodes, { asn: 64600 }, [{ name: 'edges', peerSelector: 'edge' }]);
    expect(peersOf(d)).toEqual([['192.0.2.2', 65102, 'global'], ['192.0.2.3', 64600, 'global']]);
    const fixed = desiredBgp('node-1', nodes, {}, [{ name: 'edges', peerSelector: 'edge', asn: 65500 }]);
    expect(fixed.peers.map((p) => p.asn)).toEqual([65500, 65500]);
    // the selecting node never peers with itself
    expect(desiredBgp('node-2', nodes, {}, [{ name: 'edges', peerSelector: 'edge' }]).peers.map((p) => p.address)).not.toContain('192.0.2.2');
  });
});

describe('BGPPeer password (secretKeyRef)', () => {
  it('resolves the key of the Secret; a missing Secret or key leaves the peer out and names them, never a value', () => {
    const tor = { name: 'tor', peerIP: '192.0.2.254', asn: 65000, password: { secretKeyRef: { name: 'bgp', key: 'tor' } } };
    const d = desiredBgp('node-1', [node(1)], {}, [tor], undefined, secrets({ bgp: { tor: 's3cret' } }));
    expect(d.peers.find((p) => p.address === '192.0.2.254')?.password).toBe('s3cret');
    const missing = desiredBgp('node-1', [node(1)], {}, [tor], undefined, secrets({}));
    expect(missing.peers.find((p) => p.address === '192.0.2.254')).toBeUndefined();
    expect(missing.peerProblems).toEqual([{ peer: 'tor', message: expect.stringMatching(/no Secret bgp in namespace kube-system/) }]);
    const noKey = desiredBgp('node-1', [node(1)], {}, [tor], undefined, secrets({ bgp: { other: 's3cret' } }));
    expect(noKey.peerProblems?.[0]?.message).toMatch(/has no key tor/);
    expect(JSON.stringify(noKey.peerProblems)).not.toContain('s3cret');
  });

  it('decodes base64, drops one trailing newline (--from-file), refuses empty and over 80 bytes', () => {
    const ref = { name: 's', key: 'k' };
    const with_ = (v: string) => peerPassword(ref, secrets({ s: { k: v } }).secrets, 'kube-system');
    expect(with_('pa ss\n')).toEqual({ password: 'pa ss' });
    expect(with_('é'.repeat(40)).password).toBe('é'.repeat(40)); // 80 bytes
    expect(with_('é'.repeat(41)).problem).toMatch(/longer than 80 bytes/);
    expect(with_('\n').problem).toMatch(/empty/);
  });

  it('a BGPPeer selecting mesh nodes adds its password to their mesh sessions', () => {
    const nodes = [node(1), node(2)];
    const d = desiredBgp('node-1', nodes, {}, [{ name: 'mesh-md5', peerSelector: 'kubernetes.io/hostname notin (x)', password: { secretKeyRef: { name: 'bgp', key: 'mesh' } } }], undefined, secrets({ bgp: { mesh: 'm' } }));
    expect(d.peers).toHaveLength(1);
    expect(d.peers[0]).toMatchObject({ address: '192.0.2.2', type: 'node-mesh', password: 'm' });
  });
});
