// What the lab tests check again and again: waiting with a bound, our routes on a node, pod pings.
import { expect } from 'vitest';
import type { LabNode } from '../../deploy/lab/topology.js';
import { execIn, ipIn } from './netns.js';
import { until } from './wait.js';

export { until };

/** A node's routes with protocol lightly, as `ip route` prints them. */
export const routesOf = (node: LabNode): Promise<string> => ipIn(node.netns, ['route', 'show', 'proto', '201']);

/** The same for IPv6. */
export const routes6Of = (node: LabNode): Promise<string> => ipIn(node.netns, ['-6', 'route', 'show', 'proto', '201']);

export const pingOnce = async (fromNetns: string, ip: string): Promise<boolean> =>
  (await execIn(fromNetns, 'ping', ['-c', '1', '-W', '1', ip])).exitCode === 0;

/**
 * The full mesh converged and works: every node has a route to every other node's pod CIDR via that
 * node, its own blackhole, and every pod pings every other pod.
 */
export async function expectMeshReachable(nodes: LabNode[], timeoutMs = 30_000): Promise<void> {
  const others = nodes.length - 1;
  await until('routes to every other node', async () => (await Promise.all(nodes.map(routesOf))).every((r) => (r.match(/via 192\.0\.2\./g) ?? []).length === others), timeoutMs);
  for (const node of nodes) {
    const routes = await routesOf(node);
    expect(routes).toContain(`blackhole ${node.podCIDR}`);
    for (const other of nodes.filter((n) => n !== node)) expect(routes).toContain(`${other.podCIDR} via ${other.address} dev eth0`);
  }
  const pods = nodes.flatMap((n) => n.pods);
  for (const from of pods) {
    for (const to of pods.filter((p) => p !== from)) expect(await pingOnce(from.netns, to.ip!), `${from.name} → ${to.name} (${to.ip})`).toBe(true);
  }
}
