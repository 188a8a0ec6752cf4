// natOutgoing: masquerade pod traffic that leaves the cluster, in an nftables table of our own.
import { execa } from 'execa';

export const NAT_TABLE = 'lightly';

/**
 * The whole table, replaced in one `nft -f` transaction: declaring the table, deleting it and
 * declaring it again is nft's idiom for an atomic, idempotent swap. IPv4 only: IPv6 pods are
 * expected to have routable addresses.
 */
export function natRuleset(podCIDRs: string[], clusterCIDRs: string[]): string {
  const v4 = (cidrs: string[]): string[] => cidrs.filter((c) => !c.includes(':'));
  const pods = v4(podCIDRs);
  const cluster = v4([...clusterCIDRs, ...podCIDRs]);
  const lines = [`table ip ${NAT_TABLE}`, `delete table ip ${NAT_TABLE}`, `table ip ${NAT_TABLE} {`];
  lines.push(`  set pod_cidrs { type ipv4_addr; flags interval; auto-merge;${pods.length ? ` elements = { ${pods.join(', ')} };` : ''} }`);
  lines.push(`  set cluster_cidrs { type ipv4_addr; flags interval; auto-merge;${cluster.length ? ` elements = { ${cluster.join(', ')} };` : ''} }`);
  lines.push('  chain postrouting {');
  lines.push('    type nat hook postrouting priority srcnat; policy accept;');
  lines.push('    ip saddr @pod_cidrs ip daddr != @cluster_cidrs masquerade');
  lines.push('  }', '}');
  return lines.join('\n') + '\n';
}

/** Runs nft in this namespace, or in a named one (the lab, tests). */
export function nft(args: string[], input?: string, netns?: string) {
  const [cmd, full] = netns ? ['ip', ['netns', 'exec', netns, 'nft', ...args]] : ['nft', args];
  return execa(cmd, full, { input, reject: false });
}

export async function applyNat(podCIDRs: string[], clusterCIDRs: string[], netns?: string): Promise<void> {
  const out = await nft(['-f', '-'], natRuleset(podCIDRs, clusterCIDRs), netns);
  if (out.exitCode !== 0) throw new Error(`nft could not install table ip ${NAT_TABLE}: ${out.stderr.trim()}`);
}

/** Removes our table; a missing table is fine. Never touches other tables. */
export async function removeNat(netns?: string): Promise<void> {
  const out = await nft(['delete', 'table', 'ip', NAT_TABLE], undefined, netns);
  if (out.exitCode !== 0 && !/No such file or directory/.test(out.stderr)) {
    throw new Error(`nft could not remove table ip ${NAT_TABLE}: ${out.stderr.trim()}`);
  }
}
