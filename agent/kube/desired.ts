// Kubernetes mode, pure: Nodes + BGPConfiguration + BGPPeers in, this node's BGP settings out.
import type { PeerConfig } from '../config.js';
import { ROUTER_ID_ANNOTATION, type SlimSecret, validRouterId } from './objects.js';
import { matchesSelector } from './selector.js';
import { nodeAsn } from './node-asn.js';
import { type SecretKeyRef, peerPassword } from './peer-password.js';
import { type ServiceAdvertisement, serviceAdvertisement } from '../services/announce.js';

export const ROUTE_REFLECTOR_LABEL = 'lightly.dev/route-reflector';

/** The parts of a Node we read (objects.ts makes them as Nodes arrive). */
export interface ClusterNode {
  name: string;
  uid?: string;
  labels: Record<string, string>;
  internalIPs: string[];
  podCIDRs: string[];
  /** The `lightly.dev/router-id` annotation as written, valid or not. */
  routerIdAnnotation?: string;
  /** The `lightly.dev/asn` label (or annotation) as written, valid or not. */
  asnLabel?: string;
  /** The Node's NetworkUnavailable condition as the API has it. */
  networkUnavailable?: { status: string; reason: string };
}

export interface BgpConfigurationSpec {
  asn?: number;
  nodeToNodeMesh?: boolean;
  /** The mesh also joins nodes of different AS (eBGP); by default only nodes of the same AS mesh. */
  ebgpNodeMesh?: boolean;
  importCIDRs?: string[];
  maxPrefixes?: number;
  natOutgoing?: boolean;
  /** IPv6 masquerade beside IPv4's (dual stack); absent: off. */
  natOutgoingV6?: boolean;
  holdTime?: number;
  serviceClusterIPs?: { cidr: string }[];
  serviceExternalIPs?: { cidr: string }[];
  serviceLoadBalancerIPs?: { cidr: string }[];
}

export interface BgpPeerSpec {
  name: string;
  /** The peer's address; or peerSelector: the Nodes it selects are the peers. */
  peerIP?: string;
  /** The peer's AS; with peerSelector, when absent, each selected Node's own AS. */
  asn?: number;
  node?: string;
  nodeSelector?: string;
  peerSelector?: string;
  holdTime?: number;
  maxPrefixes?: number;
  password?: { secretKeyRef: SecretKeyRef };
}

/** Something wrong with one BGPPeer as it applies to this node (a Secret missing, say): reported on the object. */
export interface PeerProblem {
  peer: string;
  message: string;
}

/** The Secrets BGPPeer passwords come from (the agent's namespace), for desiredBgp. */
export interface PeerSecrets {
  namespace: string;
  secrets: ReadonlyMap<string, SlimSecret>;
}

/** Why this node cannot run its network yet: the reason goes into NetworkUnavailable and an Event. */
export interface NodeProblem {
  reason: 'NodeNotFound' | 'NoRouterID' | 'InvalidRouterID' | 'NoPodCIDR' | 'InvalidASN';
  message: string;
}

export interface DesiredBgp {
  routerId?: string;
  /** Set when the node cannot be networked as it stands; BGP still runs when a router id is known. */
  problem?: NodeProblem;
  /** Every node's pod CIDRs (ours included): traffic between them is pod to pod, never masqueraded. */
  clusterPodCIDRs: string[];
  asn: number;
  podCIDRs: string[];
  peers: PeerConfig[];
  importCIDRs: string[];
  maxPrefixes: number;
  natOutgoing: boolean;
  natOutgoingV6: boolean;
  holdTime: number;
  /** Set when this node is a route reflector: its cluster id. */
  clusterId?: string;
  /** BGPPeers that apply to this node but cannot be used as they stand (their peers are left out). */
  peerProblems?: PeerProblem[];
  /** The Service ranges to announce (BGPConfiguration serviceClusterIPs/…), when any is configured. */
  services?: ServiceAdvertisement;
}

export const DEFAULT_ASN = 64512;

/** What an absent BGPConfiguration means, and what the agent creates as `default`. */
export const DEFAULT_BGP_CONFIGURATION = { asn: DEFAULT_ASN, nodeToNodeMesh: true, holdTime: 90, maxPrefixes: 10_000, natOutgoing: false } as const;

function ipv4(node: ClusterNode): string | undefined {
  return node.internalIPs.find((ip) => !ip.includes(':'));
}

/** Where the mesh reaches a node: its IPv4 InternalIP, else its IPv6 one (IPv6-only nodes). */
function peeringAddress(node: ClusterNode): string | undefined {
  return ipv4(node) ?? node.internalIPs.find((ip) => ip.includes(':'));
}

/** The router id: the annotation when it is valid, else the node's IPv4 InternalIP. */
function routerIdOf(node: ClusterNode, fallback: string | undefined): { routerId?: string; problem?: NodeProblem } {
  const annotated = node.routerIdAnnotation;
  if (annotated !== undefined) {
    if (validRouterId(annotated)) return { routerId: annotated };
    return { problem: { reason: 'InvalidRouterID', message: `annotation ${ROUTER_ID_ANNOTATION}=${JSON.stringify(annotated)} is not an IPv4 address (a BGP router id is 32 bits)` } };
  }
  const routerId = ipv4(node) ?? fallback;
  if (routerId) return { routerId };
  return { problem: { reason: 'NoRouterID', message: `node has no IPv4 InternalIP to use as BGP router id: set the annotation ${ROUTER_ID_ANNOTATION} to a unique IPv4 address` } };
}

function meshPeer(node: ClusterNode, asn: number, extra: Partial<PeerConfig> = {}): PeerConfig | undefined {
  const address = peeringAddress(node);
  if (!address) return undefined;
  return { address, asn, port: 179, passive: false, type: 'node-mesh', routeReflectorClient: false, ...extra };
}

/**
 * Who this node peers with, the way Calico decides it: the full mesh by default; with the mesh off
 * and route reflectors labelled, clients peer with the reflectors only and reflectors with every
 * node (reflecting to the non-reflectors); BGPPeers for this node, for nodes matching their
 * selector, or for every node when they name neither. Each node has its AS (its lightly.dev/asn, else
 * the cluster's): the mesh joins nodes of the same AS, and nodes of another AS too (eBGP) with
 * ebgpNodeMesh; with the mesh off and BGPPeers for this node (its ToR, RFC 7938) there is no mesh.
 */
export function desiredBgp(me: string, nodes: ClusterNode[], config: BgpConfigurationSpec, bgpPeers: BgpPeerSpec[], fallbackRouterId?: string, secrets: PeerSecrets = { namespace: '', secrets: new Map() }): DesiredBgp {
  const self = nodes.find((n) => n.name === me);
  const clusterAsn = config.asn ?? DEFAULT_BGP_CONFIGURATION.asn;
  const asnOf = (n: ClusterNode | undefined): number => nodeAsn(n, clusterAsn).asn;
  const asn = asnOf(self);
  const meshable = (n: ClusterNode): boolean => config.ebgpNodeMesh === true || asnOf(n) === asn;
  const others = nodes.filter((n) => n.name !== me && meshable(n));
  // Route reflection is within one AS (RFC 4456).
  const reflectors = nodes.filter((n) => n.labels[ROUTE_REFLECTOR_LABEL] && asnOf(n) === asn);
  const myClusterId = self?.labels[ROUTE_REFLECTOR_LABEL];
  const mesh = config.nodeToNodeMesh ?? DEFAULT_BGP_CONFIGURATION.nodeToNodeMesh;
  const forMe = (peer: BgpPeerSpec): boolean => (peer.node ? peer.node === me : peer.nodeSelector ? !!self && matchesSelector(peer.nodeSelector, self.labels) : true);
  const mine = bgpPeers.filter(forMe);

  const peers: PeerConfig[] = [];
  if (mesh || (reflectors.length === 0 && mine.length === 0)) {
    // With the mesh off, no reflectors and no BGPPeer there is no one to talk to: keep the mesh rather than isolate.
    for (const n of others) {
      const p = meshPeer(n, asnOf(n));
      if (p) peers.push(p);
    }
  } else if (reflectors.length === 0) {
    // The mesh is off and this node has its BGPPeers (its top-of-rack router): nothing else.
  } else if (myClusterId) {
    for (const n of others.filter((o) => asnOf(o) === asn)) {
      const p = meshPeer(n, asn, { routeReflectorClient: !n.labels[ROUTE_REFLECTOR_LABEL] });
      if (p) peers.push(p);
    }
  } else {
    for (const n of reflectors) {
      const p = meshPeer(n, asn);
      if (p) peers.push(p);
    }
  }

  const peerProblems: PeerProblem[] = [];
  for (const peer of mine) {
    let password: string | undefined;
    if (peer.password) {
      const found = peerPassword(peer.password.secretKeyRef, secrets.secrets, secrets.namespace);
      if (found.problem) {
        // Without its password the session could never come up: left out, and said so on the BGPPeer.
        peerProblems.push({ peer: peer.name, message: found.problem });
        continue;
      }
      password = found.password;
    }
    const targets = peer.peerIP !== undefined
      ? [{ address: peer.peerIP, asn: peer.asn! }]
      : nodes.filter((n) => n.name !== me && matchesSelector(peer.peerSelector!, n.labels)).flatMap((n) => {
        const address = peeringAddress(n);
        return address ? [{ address, asn: peer.asn ?? asnOf(n) }] : [];
      });
    for (const target of targets) {
      const existing = peers.findIndex((p) => p.address === target.address);
      // A node already in the mesh: a BGPPeer selecting it only adds its password.
      if (existing >= 0) {
        if (password && peers[existing]!.type === 'node-mesh') peers[existing] = { ...peers[existing]!, password };
        continue;
      }
      peers.push({
        address: target.address,
        asn: target.asn,
        port: 179,
        passive: false,
        type: peer.node || peer.nodeSelector ? 'node-specific' : 'global',
        routeReflectorClient: false,
        ...(peer.holdTime !== undefined ? { holdTime: peer.holdTime } : {}),
        ...(peer.maxPrefixes !== undefined ? { maxPrefixes: peer.maxPrefixes } : {}),
        ...(password ? { password } : {}),
      });
    }
  }

  const identity: { routerId?: string; problem?: NodeProblem } = self
    ? routerIdOf(self, fallbackRouterId)
    : { problem: { reason: 'NodeNotFound', message: `no Node named ${JSON.stringify(me)} in the API (NODE_NAME is spec.nodeName)` } };
  const routerId = identity.routerId;
  const asnProblem = nodeAsn(self, clusterAsn).problem;
  const problem: NodeProblem | undefined =
    identity.problem ??
    (asnProblem ? { reason: 'InvalidASN', message: asnProblem } : undefined) ??
    (self && self.podCIDRs.length === 0
      ? { reason: 'NoPodCIDR', message: 'node has no spec.podCIDR: run kube-controller-manager with --allocate-node-cidrs and --cluster-cidr, or set it on the Node' }
      : undefined);
  return {
    ...(routerId ? { routerId } : {}),
    ...(problem ? { problem } : {}),
    clusterPodCIDRs: [...new Set(nodes.flatMap((n) => n.podCIDRs))].sort(),
    asn,
    podCIDRs: self?.podCIDRs ?? [],
    peers,
    importCIDRs: config.importCIDRs ?? [],
    maxPrefixes: config.maxPrefixes ?? DEFAULT_BGP_CONFIGURATION.maxPrefixes,
    natOutgoing: config.natOutgoing ?? DEFAULT_BGP_CONFIGURATION.natOutgoing,
    natOutgoingV6: config.natOutgoingV6 ?? false,
    holdTime: config.holdTime ?? DEFAULT_BGP_CONFIGURATION.holdTime,
    ...serviceAdvertisement(config),
    // The cluster id must be an IPv4-shaped id on the wire; a label value that is not one maps to our router id.
    ...(myClusterId && !mesh ? { clusterId: /^\d+\.\d+\.\d+\.\d+$/.test(myClusterId) ? myClusterId : routerId } : {}),
    ...(peerProblems.length ? { peerProblems } : {}),
  };
}
