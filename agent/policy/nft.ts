// The compiled policy as one nftables table, pure: rules depend only on the policies, the pods are set
// elements, so pod churn is an element change and a policy change one atomic replacement of the table.
import type { CompiledNode, CompiledPolicy, CompiledRule, Direction } from './compile.js';

export const TABLE = 'lightly-policy';
/** Host veths of pods (the plugin names them `lxc` + 11 hex). */
const POD_IF = '"lxc*"';

export interface NftSet {
  name: string;
  type: string;
  interval: boolean;
  elements: string[];
}

export interface NftChain {
  name: string;
  /** The base chain's `type ... hook ...; policy ...;` line; absent for regular chains. */
  base?: string;
  rules: string[];
}

export interface NftRuleset {
  sets: NftSet[];
  chains: NftChain[];
}

const ANY_V4: string[] = ['0.0.0.0/0'];

function ruleSets(p: CompiledPolicy, dir: Direction, index: number, rule: CompiledRule): NftSet[] {
  const base = `p${p.id}_${dir[0]}${index}`;
  const sets: NftSet[] = [];
  if (!rule.anyPeer && rule.hasSelectors) sets.push({ name: `${base}_pods`, type: 'ipv4_addr', interval: false, elements: rule.peerPods });
  if (!rule.anyPeer && rule.hasBlocks) sets.push({ name: `${base}_cidr`, type: 'ipv4_addr', interval: true, elements: rule.cidrRanges.map(([a, b]) => (a === b ? a : `${a}-${b}`)) });
  if (rule.hasNamed) {
    const elements = [...new Set(rule.named.map((e) => `${e.ip} . ${e.protocol.toLowerCase()} . ${e.port}`))].sort();
    sets.push({ name: `${base}_named`, type: 'ipv4_addr . inet_proto . inet_service', interval: false, elements });
  }
  return sets;
}

/** The rules of one NetworkPolicy rule: (each peer kind) x (each port); any one passing allows. */
function ruleLines(p: CompiledPolicy, dir: Direction, index: number, rule: CompiledRule): string[] {
  const base = `p${p.id}_${dir[0]}${index}`;
  const self = dir === 'ingress' ? 'daddr' : 'saddr';
  const peer = dir === 'ingress' ? 'saddr' : 'daddr';
  const verdict = dir === 'ingress' ? 'accept' : 'return'; // egress passed: the ingress side decides next
  const comment = `comment "${p.key} ${dir}[${index}]"`;
  const target = `ip ${self} @p${p.id}_targets`;
  const peers: string[] = rule.anyPeer ? [''] : [...(rule.hasSelectors ? [`ip ${peer} @${base}_pods`] : []), ...(rule.hasBlocks ? [`ip ${peer} @${base}_cidr`] : [])];
  const ports: string[] = rule.anyPort ? [''] : rule.ports.map((m) => `meta l4proto ${m.protocol.toLowerCase()}${m.from === undefined ? '' : ` th dport ${m.from === m.to ? m.from : `${m.from}-${m.to}`}`}`);
  const lines: string[] = [];
  for (const pe of peers) for (const po of ports) lines.push([target, pe, po, verdict, comment].filter(Boolean).join(' '));
  if (rule.hasNamed) {
    const named = `ip daddr . meta l4proto . th dport @${base}_named`;
    // Egress: the named set holds only peer pods' ports, so it is the peer match as well (an ipBlock
    // peer has no named ports). Ingress: it holds the selected pods' ports; the source is matched apart.
    const namedPeers = dir === 'egress' ? (rule.anyPeer || rule.hasSelectors ? [''] : []) : peers;
    for (const pe of namedPeers) lines.push([target, pe, named, verdict, comment].filter(Boolean).join(' '));
  }
  return lines;
}

/** The whole table for a node's compiled policy. */
export function renderRuleset(c: CompiledNode): NftRuleset {
  const sets: NftSet[] = [
    { name: 'local_pods', type: 'ipv4_addr', interval: false, elements: c.localPods },
    { name: 'ingress_isolated', type: 'ipv4_addr', interval: false, elements: c.ingressIsolated },
    { name: 'egress_isolated', type: 'ipv4_addr', interval: false, elements: c.egressIsolated },
    // 0.0.0.0/0 or nothing: whether an address not known yet on a pod interface is denied. A set and
    // not a rule, so that a pod coming and going stays an element change.
    { name: 'pending_ingress', type: 'ipv4_addr', interval: true, elements: c.pendingIsolated.ingress ? ANY_V4 : [] },
    { name: 'pending_egress', type: 'ipv4_addr', interval: true, elements: c.pendingIsolated.egress ? ANY_V4 : [] },
  ];
  const chains: Record<Direction, string[]> = { ingress: [], egress: [] };
  for (const p of c.policies) {
    if (!p.ingress && !p.egress) continue;
    sets.push({ name: `p${p.id}_targets`, type: 'ipv4_addr', interval: false, elements: p.targets });
    for (const dir of ['ingress', 'egress'] as const) {
      p[dir]?.forEach((rule, i) => {
        sets.push(...ruleSets(p, dir, i, rule));
        chains[dir].push(...ruleLines(p, dir, i, rule));
      });
    }
  }
  return {
    sets,
    chains: [
      {
        name: 'forward',
        base: 'type filter hook forward priority filter; policy accept;',
        rules: [
          'ct state established,related accept',
          `iifname ${POD_IF} ip saddr != @local_pods ip saddr @pending_egress drop comment "address not known yet, its pod is isolated"`,
          `oifname ${POD_IF} ip daddr != @local_pods ip daddr @pending_ingress drop comment "address not known yet, its pod is isolated"`,
          `iifname ${POD_IF} ip saddr @egress_isolated jump egress`,
          `oifname ${POD_IF} ip daddr @ingress_isolated jump ingress`,
        ],
      },
      { name: 'egress', rules: [...chains.egress, 'drop comment "isolated for egress, no policy allows"'] },
      { name: 'ingress', rules: [...chains.ingress, 'drop comment "isolated for ingress, no policy allows"'] },
    ],
  };
}

function setText(s: NftSet): string {
  const flags = s.interval ? ' flags interval;' : '';
  const elements = s.elements.length ? ` elements = { ${s.elements.join(', ')} };` : '';
  return `  set ${s.name} { type ${s.type};${flags}${elements} }`;
}

/**
 * One transaction replacing our table whole (created first so the delete never fails): nothing
 * outside `inet lightly-policy` is touched, and no packet sees half a ruleset.
 */
export function fullText(r: NftRuleset): string {
  const body = [
    ...r.sets.map(setText),
    ...r.chains.map((c) => [`  chain ${c.name} {`, ...(c.base ? [`    ${c.base}`] : []), ...c.rules.map((l) => `    ${l}`), '  }'].join('\n')),
  ];
  return [`add table inet ${TABLE}`, `delete table inet ${TABLE}`, `table inet ${TABLE} {`, ...body, '}', ''].join('\n');
}

/** Rules and set declarations equal: the two rulesets differ in set elements at most. */
function sameShape(a: NftRuleset, b: NftRuleset): boolean {
  const shape = (r: NftRuleset): string => JSON.stringify([r.sets.map((s) => [s.name, s.type, s.interval]), r.chains]);
  return shape(a) === shape(b);
}

/**
 * What takes the kernel from `prev` to `next`: element changes only when the rules are the same (pod
 * churn), else the full replacement; '' when nothing changed.
 */
export function updateText(prev: NftRuleset | undefined, next: NftRuleset): string {
  if (!prev || !sameShape(prev, next)) return fullText(next);
  const lines: string[] = [];
  prev.sets.forEach((old, i) => {
    const now = next.sets[i]!;
    const keep = new Set(now.elements);
    const had = new Set(old.elements);
    const gone = old.elements.filter((e) => !keep.has(e));
    const added = now.elements.filter((e) => !had.has(e));
    if (gone.length) lines.push(`delete element inet ${TABLE} ${old.name} { ${gone.join(', ')} }`);
    if (added.length) lines.push(`add element inet ${TABLE} ${now.name} { ${added.join(', ')} }`);
  });
  return lines.length ? lines.join('\n') + '\n' : '';
}

/** Counts for logs, status and the benchmark. */
export function rulesetSize(r: NftRuleset): { sets: number; elements: number; rules: number } {
  return { sets: r.sets.length, elements: r.sets.reduce((n, s) => n + s.elements.length, 0), rules: r.chains.reduce((n, c) => n + c.rules.length, 0) };
}
