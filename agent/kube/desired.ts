// Kubernetes mode, pure: Nodes + BGPConfiguration + BGPPeers in, this node's BGP settings out.
import type { PeerConfig } from '../config.js';
import { matchesSelector } from './selector.js';

export const ROUTE_REFLECTOR_LABEL = 'lightly.dev/route-reflector';

/** The parts of a Node we read. */
export interface ClusterNode {
  name: string;
  labels: Record<string, string>;
  internalIPs: string[];
  podCIDRs: string[];
}

export interface BgpConfigurationSpec {
  asn?: number;
  nodeToNodeMesh?: boolean;
  importCIDRs?: string[];
  maxPrefixes?: number;
  natOutgoing?: boolean;
  holdTime?: number;
}

export interface BgpPeerSpec {
  name: string;
  peerIP: string;
  asn: number;
  node?: string;
  nodeSelector?: string;
  holdTime?: number;
  maxPrefixes?: number;
}

export interface DesiredBgp {
  routerId?: string;
  asn: number;
  podCIDRs: string[];
  peers: PeerConfig[];
  importCIDRs: string[];
  maxPrefixes: number;
  natOutgoing: boolean;
  holdTime: number;
  /** Set when this node is a route reflector: its cluster id. */
  clusterId?: string;
}

export const DEFAULT_ASN = 64512;

/** What an absent BGPConfiguration means, and what the agent creates as `default`. */
export const DEFAULT_BGP_CONFIGURATION = { asn: DEFAULT_ASN, nodeToNodeMesh: true, holdTime: 90, maxPrefixes: 10_000, natOutgoing: false } as const;

function ipv4(node: ClusterNode): string | undefined {
  return node.internalIPs.find((ip) => !ip.includes(':'));
}

function meshPeer(node: ClusterNode, asn: number, extra: Partial<PeerConfig> = {}): PeerConfig | undefined {
  const address = ipv4(node);
  if (!address) return undefined;
  return { address, asn, port: 179, passive: false, type: 'node-mesh', routeReflectorClient: false, ...extra };
}

/**
 * Who this node peers with, the way Calico decides it: the full mesh by default; with the mesh off
 * and route reflectors labelled, clients peer with the reflectors only and reflectors with every
 * node (reflecting to the non-reflectors); BGPPeers for this node, for nodes matching their
 * selector, or for every node when they name neither.
 */
export function desiredBgp(me: string, nodes: ClusterNode[], config: BgpConfigurationSpec, bgpPeers: BgpPeerSpec[]): DesiredBgp {
  const self = nodes.find((n) => n.name === me);
  const asn = config.asn ?? DEFAULT_BGP_CONFIGURATION.asn;
  const others = nodes.filter((n) => n.name !== me);
  const reflectors = nodes.filter((n) => n.labels[ROUTE_REFLECTOR_LABEL]);
  const myClusterId = self?.labels[ROUTE_REFLECTOR_LABEL];
  const mesh = config.nodeToNodeMesh ?? DEFAULT_BGP_CONFIGURATION.nodeToNodeMesh;

  const peers: PeerConfig[] = [];
  if (mesh || reflectors.length === 0) {
    // With the mesh off and no reflectors there is no one to talk to: keep the mesh rather than isolate.
    for (const n of others) {
      const p = meshPeer(n, asn);
      if (p) peers.push(p);
    }
  } else if (myClusterId) {
    for (const n of others) {
      const p = meshPeer(n, asn, { routeReflectorClient: !n.labels[ROUTE_REFLECTOR_LABEL] });
      if (p) peers.push(p);
    }
  } else {
    for (const n of reflectors) {
      const p = meshPeer(n, asn);
      if (p) peers.push(p);
    }
  }

  for (const peer of bgpPeers) {
    const forMe = peer.node ? peer.node === me : peer.nodeSelector ? !!self && matchesSelector(peer.nodeSelector, self.labels) : true;
    if (!forMe) continue;
    if (peers.some((p) => p.address === peer.peerIP)) continue; // a node already in the mesh
    peers.push({
      address: peer.peerIP,
      asn: peer.asn,
      port: 179,
      passive: false,
      type: peer.node || peer.nodeSelector ? 'node-specific' : 'global',
      routeReflectorClient: false,
      ...(peer.holdTime !== undefined ? { holdTime: peer.holdTime } : {}),
      ...(peer.maxPrefixes !== undefined ? { maxPrefixes: peer.maxPrefixes } : {}),
    });
  }

  const routerId = self ? ipv4(self) : undefined;
  return {
    ...(routerId ? { routerId } : {}),
    asn,
    podCIDRs: self?.podCIDRs ?? [],
    peers,
    importCIDRs: config.importCIDRs ?? [],
    maxPrefixes: config.maxPrefixes ?? DEFAULT_BGP_CONFIGURATION.maxPrefixes,
    natOutgoing: config.natOutgoing ?? DEFAULT_BGP_CONFIGURATION.natOutgoing,
    holdTime: config.holdTime ?? DEFAULT_BGP_CONFIGURATION.holdTime,
    // The cluster id must be an IPv4-shaped id on the wire; a label value that is not one maps to our router id.
    ...(myClusterId && !mesh ? { clusterId: /^\d+\.\d+\.\d+\.\d+$/.test(myClusterId) ? myClusterId : routerId } : {}),
  };
}
