// natOutgoing: masquerade pod traffic that leaves the cluster, in an nftables table of our own.
import { execa } from 'execa';

export const NAT_TABLE = 'lightly';

/** nft's names for one address family: the table family (`ip`, `ip6`), the set element type. */
const NFT_FAMILY = { 4: { table: 'ip', type: 'ipv4_addr' }, 6: { table: 'ip6', type: 'ipv6_addr' } } as const;

/**
 * The whole table, replaced in one `nft -f` transaction: declaring the table, deleting it and
 * declaring it again is nft's idiom for an atomic, idempotent swap. One table per family: IPv4
 * (natOutgoing), and IPv6 only when asked (natOutgoingV6), since IPv6 pods usually have routable addresses.
 */
export function natRuleset(podCIDRs: string[], clusterCIDRs: string[], family: 4 | 6 = 4): string {
  const { table, type } = NFT_FAMILY[family];
  const ofFamily = (cidrs: string[]): string[] => cidrs.filter((c) => c.includes(':') === (family === 6));
  const pods = ofFamily(podCIDRs);
  const cluster = ofFamily([...clusterCIDRs, ...podCIDRs]);
  const lines = [`table ${table} ${NAT_TABLE}`, `delete table ${table} ${NAT_TABLE}`, `table ${table} ${NAT_TABLE} {`];
  lines.push(`  set pod_cidrs { type ${type}; flags interval; auto-merge;${pods.length ? ` elements = { ${pods.join(', ')} };` : ''} }`);
  lines.push(`  set cluster_cidrs { type ${type}; flags interval; auto-merge;${cluster.length ? ` elements = { ${cluster.join(', ')} };` : ''} }`);
  lines.push('  chain postrouting {');
  lines.push('    type nat hook postrouting priority srcnat; policy accept;');
  lines.push(`    ${table} saddr @pod_cidrs ${table} daddr != @cluster_cidrs masquerade`);
  lines.push('  }', '}');
  return lines.join('\n') + '\n';
}

/** Runs nft in this namespace, or in a named one (the lab, tests). */
export function nft(args: string[], input?: string, netns?: string) {
  const [cmd, full] = netns ? ['ip', ['netns', 'exec', netns, 'nft', ...args]] : ['nft', args];
  return execa(cmd, full, { input, reject: false });
}

export async function applyNat(podCIDRs: string[], clusterCIDRs: string[], netns?: string, family: 4 | 6 = 4): Promise<void> {
  const out = await nft(['-f', '-'], natRuleset(podCIDRs, clusterCIDRs, family), netns);
  if (out.exitCode !== 0) throw new Error(`nft could not install table ${NFT_FAMILY[family].table} ${NAT_TABLE}: ${out.stderr.trim()}`);
}

/** Removes our table; a missing table is fine. Never touches other tables. */
export async function removeNat(netns?: string, family: 4 | 6 = 4): Promise<void> {
  const { table } = NFT_FAMILY[family];
  const out = await nft(['delete', 'table', table, NAT_TABLE], undefined, netns);
  if (out.exitCode !== 0 && !/No such file or directory/.test(out.stderr)) {
    throw new Error(`nft could not remove table ${table} ${NAT_TABLE}: ${out.stderr.trim()}`);
  }
}
