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

/**
 * The two address families of the inet table. IPv4 sets keep their plain names, each has an IPv6
 * twin named with a `6`; every rule is written once per family (`ip` / `ip6` matches), so an isolated
 * pod is isolated over both, and what a policy allows it allows over both.
 */
interface Family {
  /** The payload expression: `ip saddr`, `ip6 saddr`. */
  ip: 'ip' | 'ip6';
  suffix: '' | '6';
  type: 'ipv4_addr' | 'ipv6_addr';
  /** Every address of the family: the pending sets' one element while a pod of theirs is pending. */
  any: string;
}
const FAMILIES: readonly Family[] = [
  { ip: 'ip', suffix: '', type: 'ipv4_addr', any: '0.0.0.0/0' },
  { ip: 'ip6', suffix: '6', type: 'ipv6_addr', any: '::/0' },
];
const isV6 = (address: string): boolean => address.includes(':');
const ofFamily = (f: Family, addresses: string[]): string[] => addresses.filter((a) => isV6(a) === (f.ip === 'ip6'));

function ruleSets(p: CompiledPolicy, dir: Direction, index: number, rule: CompiledRule): NftSet[] {
  const base = `p${p.id}_${dir[0]}${index}`;
  const sets: NftSet[] = [];
  for (const f of FAMILIES) {
    if (!rule.anyPeer && rule.hasSelectors) sets.push({ name: `${base}_pods${f.suffix}`, type: f.type, interval: false, elements: ofFamily(f, rule.peerPods) });
    if (!rule.anyPeer && rule.hasBlocks) {
      const ranges = rule.cidrRanges.filter(([first]) => isV6(first) === (f.ip === 'ip6'));
      sets.push({ name: `${base}_cidr${f.suffix}`, type: f.type, interval: true, elements: ranges.map(([a, b]) => (a === b ? a : `${a}-${b}`)) });
    }
    if (rule.hasNamed) {
      const named = rule.named.filter((e) => isV6(e.ip) === (f.ip === 'ip6'));
      const elements = [...new Set(named.map((e) => `${e.ip} . ${e.protocol.toLowerCase()} . ${e.port}`))].sort();
      sets.push({ name: `${base}_named${f.suffix}`, type: `${f.type} . inet_proto . inet_service`, interval: false, elements });
    }
  }
  return sets;
}

/** The rules of one NetworkPolicy rule: (each family) x (each peer kind) x (each port); any one passing allows. */
function ruleLines(p: CompiledPolicy, dir: Direction, index: number, rule: CompiledRule): string[] {
  const base = `p${p.id}_${dir[0]}${index}`;
  const self = dir === 'ingress' ? 'daddr' : 'saddr';
  const peer = dir === 'ingress' ? 'saddr' : 'daddr';
  const verdict = dir === 'ingress' ? 'accept' : 'return'; // egress passed: the ingress side decides next
  const comment = `comment "${p.key} ${dir}[${index}]"`;
  const ports: string[] = rule.anyPort ? [''] : rule.ports.map((m) => `meta l4proto ${m.protocol.toLowerCase()}${m.from === undefined ? '' : ` th dport ${m.from === m.to ? m.from : `${m.from}-${m.to}`}`}`);
  const lines: string[] = [];
  for (const f of FAMILIES) {
    const target = `${f.ip} ${self} @p${p.id}_targets${f.suffix}`;
    const peers: string[] = rule.anyPeer ? [''] : [...(rule.hasSelectors ? [`${f.ip} ${peer} @${base}_pods${f.suffix}`] : []), ...(rule.hasBlocks ? [`${f.ip} ${peer} @${base}_cidr${f.suffix}`] : [])];
    for (const pe of peers) for (const po of ports) lines.push([target, pe, po, verdict, comment].filter(Boolean).join(' '));
    if (rule.hasNamed) {
      const named = `${f.ip} daddr . meta l4proto . th dport @${base}_named${f.suffix}`;
      // Egress: the named set holds only peer pods' ports, so it is the peer match as well (an ipBlock
      // peer has no named ports). Ingress: it holds the selected pods' ports; the source is matched apart.
      const namedPeers = dir === 'egress' ? (rule.anyPeer || rule.hasSelectors ? [''] : []) : peers;
      for (const pe of namedPeers) lines.push([target, pe, named, verdict, comment].filter(Boolean).join(' '));
    }
  }
  return lines;
}

/** The whole table for a node's compiled policy. */
export function renderRuleset(c: CompiledNode): NftRuleset {
  const sets: NftSet[] = FAMILIES.flatMap((f): NftSet[] => [
    { name: `local_pods${f.suffix}`, type: f.type, interval: false, elements: ofFamily(f, c.localPods) },
    { name: `ingress_isolated${f.suffix}`, type: f.type, interval: false, elements: ofFamily(f, c.ingressIsolated) },
    { name: `egress_isolated${f.suffix}`, type: f.type, interval: false, elements: ofFamily(f, c.egressIsolated) },
    // The whole family or nothing: whether an address not known yet on a pod interface is denied. A
    // set and not a rule, so that a pod coming and going stays an element change.
    { name: `pending_ingress${f.suffix}`, type: f.type, interval: true, elements: c.pendingIsolated.ingress ? [f.any] : [] },
    { name: `pending_egress${f.suffix}`, type: f.type, interval: true, elements: c.pendingIsolated.egress ? [f.any] : [] },
  ]);
  const chains: Record<Direction, string[]> = { ingress: [], egress: [] };
  for (const p of c.policies) {
    if (!p.ingress && !p.egress) continue;
    for (const f of FAMILIES) sets.push({ name: `p${p.id}_targets${f.suffix}`, type: f.type, interval: false, elements: ofFamily(f, p.targets) });
    for (const dir of ['ingress', 'egress'] as const) {
      p[dir]?.forEach((rule, i) => {
        sets.push(...ruleSets(p, dir, i, rule));
        chains[dir].push(...ruleLines(p, dir, i, rule));
      });
    }
  }
  const perFamily = (line: (f: Family) => string): string[] => FAMILIES.map(line);
  return {
    sets,
    chains: [
      {
        name: 'forward',
        // Only forwarded traffic is filtered. Neighbour discovery between a pod and its host (NS/NA
        // with the gateway fe80::ecee:eeff:feee:eeee, RS/RA) is link-local and never forwarded: it
        // runs on the host's input and output paths, which this table leaves alone, so isolated
        // pods keep resolving their gateway. ICMPv6 errors of allowed flows are `related`.
        base: 'type filter hook forward priority filter; policy accept;',
        rules: [
          'ct state established,related accept',
          ...perFamily((f) => `iifname ${POD_IF} ${f.ip} saddr != @local_pods${f.suffix} ${f.ip} saddr @pending_egress${f.suffix} counter drop comment "address not known yet, its pod is isolated"`),
          ...perFamily((f) => `oifname ${POD_IF} ${f.ip} daddr != @local_pods${f.suffix} ${f.ip} daddr @pending_ingress${f.suffix} counter drop comment "address not known yet, its pod is isolated"`),
          ...perFamily((f) => `iifname ${POD_IF} ${f.ip} saddr @egress_isolated${f.suffix} jump egress`),
          ...perFamily((f) => `oifname ${POD_IF} ${f.ip} daddr @ingress_isolated${f.suffix} jump ingress`),
        ],
      },
      // Every drop counts what it drops (a counter is a few bytes and an add per dropped packet): the
      // kernel's own evidence, which lightlyctl doctor shows beside the model's verdict.
      { name: 'egress', rules: [...chains.egress, 'counter drop comment "isolated for egress, no policy allows"'] },
      { name: 'ingress', rules: [...chains.ingress, 'counter drop comment "isolated for ingress, no policy allows"'] },
    ],
  };
}

/**
 * Where the rule that drops one flow lives, and a piece of its text that finds it in `nft -a list chain`:
 * the default deny of the direction's chain, or (address not known yet) the family's pending drop in forward.
 */
export function dropRuleMatch(direction: Direction, pending: boolean, v6: boolean): { chain: string; mark: string } {
  if (pending) return { chain: 'forward', mark: `@pending_${direction}${v6 ? '6' : ''} counter ` };
  return { chain: direction, mark: `isolated for ${direction}, no policy allows` };
}

/** The packets a rule's counter has seen, as `nft list` prints it (`counter packets N bytes M`). */
export function counterPackets(line: string): number | undefined {
  const m = /\bcounter packets (\d+) bytes \d+/.exec(line);
  return m ? Number(m[1]) : undefined;
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
