// The lab's plan, pure: names, addresses and pod CIDRs of N nodes with M pods each on one fabric.
import { join } from 'node:path';
import { type FabricPlan, type RouterKind, planFabric, rackNodeAddress, rackNodeAddress6, rackPeers } from './racks.js';
import { type LabStack, importCIDRsOf, ipamOf, nodeStackFields, podCIDRsOf, torAddress } from './ip-families.js';

export interface LabOptions {
  nodes: number;
  pods: number;
  /** Namespace name prefix: `lt-` gives lt-node-1, lt-pod-1-1, lt-fabric. */
  prefix: string;
  /** Where configs, sockets, logs and the state file live. */
  stateDir: string;
  /** BGP hold time of the agents (short in the lab so failures show quickly). */
  holdTime: number;
  /**
   * 'mesh': iBGP full mesh between nodes; 'bird': every node peers over eBGP with a BIRD top-of-rack.
   * With racks: the ToRs' daemon, 'bird' or 'frr'.
   */
  tor: 'mesh' | 'bird' | 'frr';
  /** Racks (RFC 7938 layout, racks.ts): each its own ToR namespace and AS, the ToRs peered with a spine. */
  racks?: number;
  /** The spine's daemon with racks (default: the ToRs'). */
  spine?: RouterKind;
  /**
   * Kubernetes mode: agents run `--kubernetes` against the API server this kubeconfig names (it must be
   * reachable from the node namespaces, e.g. in the fabric), with NODE_NAME set; peers, ASN and pod
   * CIDRs then come from Nodes and the CRDs, and only node-local settings from the lab.
   */
  kubeconfig?: string;
  /** Address families (see LabStack); default ipv4. */
  stack?: LabStack;
}

export interface LabPod {
  name: string;
  netns: string;
  containerId: string;
  ip?: string;
  /** The pod's IPv6 address beside `ip` in a dual-stack lab. */
  ip6?: string;
}

export interface LabNode {
  index: number;
  name: string;
  netns: string;
  address: string;
  asn: number;
  podCIDR: string;
  statusSocket: string;
  cniAddrFile: string;
  configFile: string;
  logFile: string;
  dataDir: string;
  pods: LabPod[];
  /** Dual stack: the node's IPv6 address and pod CIDR beside the IPv4 ones. */
  address6?: string;
  podCIDR6?: string;
  /** The BGP router id when it is not `address` (an IPv6-only underlay). */
  routerId?: string;
}

export interface LabPlan {
  options: LabOptions;
  fabricNetns: string;
  /** The fabric's own address on the node subnet: the nodes' default gateway, and the ToR's. */
  fabricAddress: string;
  torAsn: number;
  subnet: string;
  nodes: LabNode[];
  /** With racks: the ToRs and the spine. */
  fabric?: FabricPlan;
}

export const MAX_NODES = 200;
export const NODE_ASN = 64512;
export const TOR_ASN = 65000;
/** Each agent serves /metrics on its node's address at the DaemonSet's port (a Prometheus in the fabric scrapes them). */
export const LAB_METRICS_PORT = 9099;

export function nodeAddress(index: number): string {
  return `192.0.2.${index}`;
}

/** Node i gets 10.244.i.0/24, like a kube-controller-manager allocating from 10.244.0.0/16. */
export function nodePodCIDR(index: number): string {
  return `10.244.${index}.0/24`;
}

export function planNode(options: LabOptions, index: number): LabNode {
  const name = `node-${index}`;
  const node: LabNode = {
    index,
    name,
    netns: `${options.prefix}${name}`,
    address: options.racks ? rackNodeAddress(options, index) : nodeAddress(index),
    // eBGP to a ToR: each node its own private ASN, as Calico does for AS-per-rack designs.
    asn: options.tor !== 'mesh' ? NODE_ASN + index : NODE_ASN,
    podCIDR: nodePodCIDR(index),
    statusSocket: join(options.stateDir, `${name}.sock`),
    cniAddrFile: join(options.stateDir, `${name}.cni`),
    configFile: join(options.stateDir, `${name}.yaml`),
    logFile: join(options.stateDir, `${name}.log`),
    dataDir: join(options.stateDir, 'data', name),
    pods: Array.from({ length: options.pods }, (_, j) => ({
      name: `pod-${index}-${j + 1}`,
      netns: `${options.prefix}pod-${index}-${j + 1}`,
      containerId: `lab-${options.prefix.replace(/[^A-Za-z0-9]/g, '')}-pod-${index}-${j + 1}`,
    })),
  };
  return { ...node, ...nodeStackFields(options, node, options.racks ? rackNodeAddress6(options, index) : undefined) };
}

export function planLab(options: LabOptions): LabPlan {
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > MAX_NODES) {
    throw new Error(`--nodes must be between 1 and ${MAX_NODES}`);
  }
  if (!Number.isInteger(options.pods) || options.pods < 0 || options.pods > 250) throw new Error('--pods must be between 0 and 250');
  if (options.tor === 'frr' && !options.racks) throw new Error('--tor frr needs --racks N');
  // The rack routers' sessions are IPv4 (with IPv6 NLRI in dual stack): no IPv6-only underlay there.
  if (options.racks && options.stack === 'ipv6') throw new Error('--racks does not take --ipv6-only yet');
  return {
    ...(options.racks ? { fabric: planFabric(options) } : {}),
    options,
    fabricNetns: `${options.prefix}fabric`,
    fabricAddress: '192.0.2.254',
    torAsn: TOR_ASN,
    subnet: '192.0.2.0/24',
    nodes: Array.from({ length: options.nodes }, (_, i) => planNode(options, i + 1)),
  };
}

/** The agent's standalone config for one node: a full mesh to every other node, or the ToR alone. */
export function agentConfig(plan: LabPlan, node: LabNode): Record<string, unknown> {
  const others = plan.nodes.filter((n) => n.index !== node.index);
  const peers = plan.fabric
    ? rackPeers(plan, node)
    : plan.options.tor === 'bird'
      ? [{ address: torAddress(plan), asn: plan.torAsn, type: 'global' }]
      : others.map((n) => ({ address: n.address, asn: n.asn, type: 'node-mesh' }));
  return {
    nodeName: node.name,
    routerId: node.routerId ?? node.address,
    asn: node.asn,
    podCIDRs: podCIDRsOf(node),
    listen: { address: node.address, port: 179 },
    peers,
    importCIDRs: importCIDRsOf(plan.options),
    holdTime: plan.options.holdTime,
    connectRetrySeconds: 1,
    gracefulRestart: { enabled: true, restartTime: 10 },
    statusSocket: node.statusSocket,
    metricsPort: LAB_METRICS_PORT,
    cniServer: { enabled: true, addrFile: node.cniAddrFile },
    // The lab never writes into the host's /etc: the protocol name is registered in its own dir.
    iprouteDir: join(plan.options.stateDir, 'iproute2'),
  };
}

/** Kubernetes mode's node-local settings file: what the cluster does not decide. */
export function agentLocalSettings(plan: LabPlan, node: LabNode): Record<string, unknown> {
  const { nodeName: _n, routerId: _r, asn: _a, podCIDRs: _p, peers: _peers, importCIDRs: _i, holdTime: _h, ...local } = agentConfig(plan, node);
  return local;
}

/** The network config the lab hands the plugin for a node's pods. */
export function cniConfig(node: LabNode): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    name: 'lightly-lab',
    type: 'lightly',
    ipam: ipamOf(node),
    mtu: 1500,
    dataDir: node.dataDir,
    cniServer: node.cniAddrFile,
  };
}
