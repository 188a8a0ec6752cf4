// The lab's address families, pure: IPv4 (the default), dual stack (`--dual-stack`) or an IPv6-only underlay (`--ipv6-only`).
import type { LabNode, LabOptions, LabPlan } from './topology.js';

/**
 * ipv4: nodes, sessions and pods IPv4. dual: nodes and pods get both families, the BGP sessions stay
 * IPv4 and carry IPv6 too (RFC 4760). ipv6: nodes have IPv6 addresses only, sessions run over IPv6,
 * pods are IPv6; each node's BGP router id is then configured (a router id is 32 bits, RFC 6286).
 */
export type LabStack = 'ipv4' | 'dual' | 'ipv6';

/** The node subnet's IPv6 twin of 192.0.2.0/24 (documentation space, RFC 3849). */
export const NODE_SUBNET6 = '2001:db8:2::/64';
export const FABRIC_ADDRESS6 = '2001:db8:2::fe';
/** Every node's IPv6 pod CIDR lies inside this, as 10.244.0.0/16 holds the IPv4 ones. */
export const POD_RANGE6 = 'fd00:10:244::/48';
export const POD_RANGE4 = '10.244.0.0/16';

export function nodeAddress6(index: number): string {
  return `2001:db8:2::${index}`;
}

/** Node i gets fd00:10:244:i::/64 beside 10.244.i.0/24. */
export function nodePodCIDR6(index: number): string {
  return `fd00:10:244:${index}::/64`;
}

const stackOf = (options: LabOptions): LabStack => options.stack ?? 'ipv4';

/** Dual stack: IPv4 underlay and sessions, IPv6 beside it on every link (the rack lab's routers then get IPv6 too). */
export const isDualStack = (options: LabOptions): boolean => stackOf(options) === 'dual';

/**
 * What a node's plan gets from the stack, over the IPv4 plan: in dual stack its IPv6 address and pod
 * CIDR beside the IPv4 ones; IPv6-only, IPv6 in their place and the IPv4 address kept as router id only.
 */
export function nodeStackFields(options: LabOptions, node: Pick<LabNode, 'index' | 'address'>, address6 = nodeAddress6(node.index)): Partial<LabNode> {
  const stack = stackOf(options);
  if (stack === 'dual') return { address6, podCIDR6: nodePodCIDR6(node.index) };
  if (stack === 'ipv6') return { routerId: node.address, address: nodeAddress6(node.index), podCIDR: nodePodCIDR6(node.index) };
  return {};
}

/** The node's pod CIDRs: one per family. */
export function podCIDRsOf(node: LabNode): string[] {
  return node.podCIDR6 ? [node.podCIDR, node.podCIDR6] : [node.podCIDR];
}

/** What the agents accept: the pod ranges of the lab's families. */
export function importCIDRsOf(options: LabOptions): string[] {
  const stack = stackOf(options);
  return stack === 'ipv4' ? [POD_RANGE4] : stack === 'dual' ? [POD_RANGE4, POD_RANGE6] : [POD_RANGE6];
}

/** The ToR's address the nodes peer with: on an IPv6-only underlay, the fabric's IPv6 one. */
export function torAddress(plan: LabPlan): string {
  return stackOf(plan.options) === 'ipv6' ? FABRIC_ADDRESS6 : plan.fabricAddress;
}

/** The plugin's ipam for a node: one range set per family, so each pod gets an address of each (host-local style). */
export function ipamOf(node: LabNode): Record<string, unknown> {
  return node.podCIDR6 ? { ranges: [[{ subnet: node.podCIDR }], [{ subnet: node.podCIDR6 }]] } : { subnet: node.podCIDR };
}

/** `ip -batch` lines giving the fabric bridge its IPv6 address, when the lab has IPv6. */
export function fabricLines6(options: LabOptions): string[] {
  return stackOf(options) === 'ipv4' ? [] : [`addr add ${FABRIC_ADDRESS6}/64 dev br0 nodad`];
}

/**
 * `ip -batch` lines for a node's eth0 (up already) and default routes. IPv6 addresses skip duplicate
 * address detection, so the agent can bind them at once.
 */
export function nodeAddressLines(plan: LabPlan, node: LabNode, gateway4 = plan.fabricAddress, gateway6 = FABRIC_ADDRESS6): string[] {
  const stack = stackOf(plan.options);
  const v4 = [`addr add ${node.address}/24 dev eth0`, `route add default via ${gateway4}`];
  const v6 = (address: string): string[] => [`addr add ${address}/64 dev eth0 nodad`, `route add default via ${gateway6}`];
  if (stack === 'ipv6') return v6(node.address);
  return stack === 'dual' ? [...v4, ...v6(node.address6!)] : v4;
}

/** BIRD channels of one node's session: IPv4 and IPv6 unicast as the lab has them, next hops kept (one L2 segment). */
export function birdChannels(options: LabOptions): string {
  const stack = stackOf(options);
  const channel = (family: string): string => `  ${family} { import all; export all; next hop keep; };`;
  return [...(stack !== 'ipv6' ? [channel('ipv4')] : []), ...(stack !== 'ipv4' ? [channel('ipv6')] : [])].join('\n');
}
