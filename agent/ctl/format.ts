// lightlyctl's human output, pure: status in, table text out.
import type { AnnouncedPrefix, BgpStatus, InstalledRoute, PeerStatus } from '../status.js';

const TYPE_LABEL: Record<PeerStatus['type'], string> = {
  'node-mesh': 'node-to-node mesh',
  global: 'global',
  'node-specific': 'node specific',
};

/** 42 → "42s", 3725 → "1h2m", 90061 → "1d1h". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const rule = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [rule, line(headers), rule, ...rows.map(line), rule].join('\n');
}

export function formatBgpStatus(status: BgpStatus): string {
  const header = `Lightly node ${status.node}: router id ${status.routerId}, AS ${status.asn}`;
  if (status.peers.length === 0) return `${header}\nNo BGP peers configured.`;
  const rows = status.peers.map((p) => [
    p.address,
    TYPE_LABEL[p.type] ?? p.type,
    p.state === 'Established' ? 'up' : p.state === 'Idle' ? 'down' : 'start',
    p.state === 'Established' ? formatDuration(p.uptimeSeconds) : '-',
    `${p.prefixesReceived}/${p.prefixesAdvertised}`,
    formatFamilies(p),
    p.state === 'Established' ? 'Established' : [p.state, p.info, p.hint].filter(Boolean).join(': '),
  ]);
  const announced = status.announced?.length ? `\n${formatAnnounced(status.announced)}` : '';
  return `${header}\n${renderTable(['PEER ADDRESS', 'PEER TYPE', 'STATE', 'SINCE', 'PREFIXES RX/TX', 'FAMILIES RX/TX', 'INFO'], rows)}${announced}`;
}

/** `ipv4 1/1, ipv6 2/0`: each negotiated family's prefixes received/advertised; `-` when none is (not Established). */
export function formatFamilies(p: PeerStatus): string {
  if (!p.families?.length) return '-';
  return p.families.map((f) => `${f.family.replace(/-unicast$/, '')} ${f.prefixesReceived}/${f.prefixesAdvertised}`).join(', ');
}

/** What the node originates and why: the prefix, its origin, the Services behind it. */
export function formatAnnounced(announced: AnnouncedPrefix[] | undefined): string {
  if (!announced?.length) return 'Nothing announced.';
  const rows = announced.map((a) => [a.prefix, a.origin, a.services?.length ? a.services.join(', ') : '-']);
  return renderTable(['ANNOUNCED PREFIX', 'WHY', 'SERVICES'], rows);
}

export function formatRoutes(routes: InstalledRoute[]): string {
  if (routes.length === 0) return 'No routes installed by Lightly.';
  const rows = routes.map((r) => [r.prefix, r.type, r.type === 'blackhole' ? '-' : r.nextHops.join(', ')]);
  return renderTable(['PREFIX', 'TYPE', 'NEXT HOPS'], rows);
}
