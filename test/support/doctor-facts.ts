// Facts of a healthy two-node pod-to-pod path, as two agents would report them (doctor tests break them).
import type { NodeFacts } from '../../agent/doctor/facts.js';

export const FROM = '10.244.1.2';
export const TO = '10.244.2.2';

export function node(name: string, address: string, cidr: string, local: string, remote: string, remoteNode: string, veth: string): NodeFacts {
  return {
    node: name, address, podCIDRs: [cidr], natOutgoing: false, clusterCIDRs: ['10.244.0.0/16'],
    peers: [{ address: remoteNode, state: 'Established' }],
    local: {
      ip: local, netns: `lt-pod-${name}`, eth0: { name: 'eth0', up: true, mtu: 1500 }, defaultGateway: '169.254.1.1', gatewayNeighbor: 'REACHABLE',
      hostRoute: { dst: local, type: 'unicast', dev: veth, protocol: 'lightly', gateways: [] },
      veth: { name: veth, up: true, mtu: 1500, proxyArp: 1 },
    },
    remote: {
      ip: remote,
      routeGet: { ok: true, type: 'unicast', dev: 'eth0', gateway: remoteNode },
      route: { dst: remote.replace(/\.\d+$/, '.0/24'), type: 'unicast', dev: 'eth0', protocol: 'lightly', gateways: [remoteNode] },
      rib: { prefix: remote.replace(/\.\d+$/, '.0/24'), best: { peer: remoteNode, nextHop: remoteNode, stale: false }, importAllowed: true },
      nextHops: [{ address: remoteNode, routeGet: { ok: true, type: 'unicast', dev: 'eth0' }, neighbor: 'REACHABLE' }],
      ingress: { iif: 'eth0', rpFilter: 0, mtu: 1500, routeGet: { ok: true, type: 'unicast', dev: veth }, unvalidated: { ok: true, type: 'unicast', dev: veth } },
    },
  };
}

export const healthy = (): { src: NodeFacts; dst: NodeFacts } => ({
  src: node('node-1', '192.0.2.1', '10.244.1.0/24', FROM, TO, '192.0.2.2', 'lxc111'),
  dst: node('node-2', '192.0.2.2', '10.244.2.0/24', TO, FROM, '192.0.2.1', 'lxc222'),
});


export const FROM6 = 'fd00:10:244:1::2';
export const TO6 = 'fd00:10:244:2::2';
const GATEWAY6 = 'fe80::ecee:eeff:feee:eeee';

/**
 * The same two nodes' facts for the pods' IPv6 addresses (dual stack, sessions over IPv4 carrying IPv6
 * NLRI): default route via the host veth's link-local address, global IPv6 next hops, no rp_filter.
 */
function ipv6(f: NodeFacts, local: string, remote: string, remoteNode6: string, cidr6: string, remoteCidr6: string): NodeFacts {
  const veth = { ...f.local.veth!, linkLocal: [GATEWAY6] };
  const ingress = { ...f.remote.ingress!, forwarding6: 1 };
  delete ingress.rpFilter;
  return {
    ...f, podCIDRs: [...f.podCIDRs, cidr6], clusterCIDRs: [...f.clusterCIDRs, 'fd00:10:244::/48'],
    local: { ...f.local, ip: local, defaultGateway: GATEWAY6, hostRoute: { ...f.local.hostRoute!, dst: local }, veth },
    remote: {
      ip: remote,
      routeGet: { ok: true, type: 'unicast', dev: 'eth0', gateway: remoteNode6 },
      route: { dst: remoteCidr6, type: 'unicast', dev: 'eth0', protocol: 'lightly', gateways: [remoteNode6] },
      rib: { prefix: remoteCidr6, best: { peer: f.peers[0]!.address, nextHop: remoteNode6, stale: false }, importAllowed: true },
      nextHops: [{ address: remoteNode6, routeGet: { ok: true, type: 'unicast', dev: 'eth0' }, neighbor: 'REACHABLE' }],
      ingress,
    },
  };
}

export const healthy6 = (): { src: NodeFacts; dst: NodeFacts } => {
  const { src, dst } = healthy();
  return {
    src: ipv6(src, FROM6, TO6, '2001:db8:2::2', 'fd00:10:244:1::/64', 'fd00:10:244:2::/64'),
    dst: ipv6(dst, TO6, FROM6, '2001:db8:2::1', 'fd00:10:244:2::/64', 'fd00:10:244:1::/64'),
  };
};
