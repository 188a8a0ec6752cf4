// The doctor's question to the compiled policy, pure: would this node's rules let one flow through?
// It reads the same CompiledNode the nftables rules are rendered from (nft.ts), match for match, so the
// answer is what the kernel does, not a second reading of the NetworkPolicy objects.
import type { DirectionVerdict, FlowPort, PolicyFacts } from '../doctor/facts.js';
import { type CompiledNode, type CompiledRule, type Direction, type PortMatch, policyKey } from './compile.js';
import type { PolicyPod } from './objects.js';
import { addressValue, canonicalAddress } from '../services/addresses.js';

/** As the `_cidr` / `_cidr6` interval sets: an address is only looked up among the ranges of its family. */
function inRanges(ranges: [string, string][], ip: string): boolean {
  const v6 = ip.includes(':');
  const n = addressValue(ip);
  return ranges.some(([a, b]) => a.includes(':') === v6 && addressValue(a) <= n && n <= addressValue(b));
}

function peerMatches(rule: CompiledRule, peer: string): boolean {
  return rule.anyPeer || (rule.hasSelectors && rule.peerPods.includes(peer)) || (rule.hasBlocks && inRanges(rule.cidrRanges, peer));
}

/** No port asked: any port of any protocol will do ("is any traffic allowed"). */
const portMatches = (m: PortMatch, port: FlowPort | undefined): boolean =>
  !port || (m.protocol === port.protocol && (m.from === undefined || (port.port >= m.from && port.port <= (m.to ?? m.from))));

/** As nft.ts's ruleLines: numeric ports with the peer match, and the named-port set on its own terms. */
function ruleAllows(rule: CompiledRule, direction: Direction, local: string, peer: string, port: FlowPort | undefined): boolean {
  if (peerMatches(rule, peer) && (rule.anyPort || rule.ports.some((m) => portMatches(m, port)))) return true;
  if (!rule.hasNamed) return false;
  // Egress: the named set holds the peer pods' ports, so it is the peer match too; ingress: the selected pod's.
  const dest = direction === 'ingress' ? local : peer;
  const namedPeer = direction === 'egress' ? rule.anyPeer || rule.hasSelectors : peerMatches(rule, peer);
  return namedPeer && rule.named.some((e) => e.ip === dest && (!port || (e.protocol === port.protocol && e.port === port.port)));
}

function portsText(rule: CompiledRule): string {
  if (rule.anyPort) return 'any port';
  const numeric = rule.ports.map((m) => `${m.protocol} ${m.from === undefined ? 'any' : m.from === m.to ? m.from : `${m.from}-${m.to}`}`);
  return [...numeric, ...(rule.hasNamed ? ['named ports'] : [])].join(', ');
}

/** `local`'s verdict in `direction` for traffic with `peer` (ingress: from it; egress: to it). */
export function flowVerdict(c: CompiledNode, direction: Direction, localText: string, peerText: string, port?: FlowPort): DirectionVerdict {
  // The model holds addresses in canonical form (objects.ts); IPv6 has many spellings of one address.
  const [local, peer] = [canonicalAddress(localText), canonicalAddress(peerText)];
  if (!c.localPods.includes(local)) {
    // nft.ts's forward chain: an address the API has not named on a pod interface is dropped while a pod here waits for its address.
    const pending = c.pendingIsolated[direction];
    return { isolated: pending, selectedBy: [], allowed: !pending, ...(pending ? { pending } : {}) };
  }
  const selecting = c.policies.filter((p) => p[direction] && p.targets.includes(local));
  const selectedBy = selecting.map((p) => ({ policy: p.key, rules: p[direction]!.length }));
  if (!selecting.length) return { isolated: false, selectedBy, allowed: true };
  for (const p of selecting) {
    const index = p[direction]!.findIndex((r) => ruleAllows(r, direction, local, peer, port));
    if (index >= 0) return { isolated: true, selectedBy, allowed: true, allowedBy: { policy: p.key, rule: index, ports: portsText(p[direction]![index]!) } };
  }
  return { isolated: true, selectedBy, allowed: false };
}

/** This node's facts for the flow between its pod `local` and `remote`: egress towards it, ingress from it. */
export function policyFacts(c: CompiledNode, pods: Iterable<PolicyPod>, local: string, remote: string, port?: FlowPort): PolicyFacts {
  const live = [...pods].filter((p) => !p.inert);
  const byIp = (ip: string) => {
    const pod = live.find((p) => p.ips.includes(canonicalAddress(ip)));
    return pod && { name: policyKey(pod), labels: pod.labels };
  };
  const [l, r] = [byIp(local), byIp(remote)];
  return {
    enforced: true, synced: true,
    ...(l ? { local: l } : {}), ...(r ? { remote: r } : {}),
    egress: flowVerdict(c, 'egress', local, remote, port),
    ingress: flowVerdict(c, 'ingress', local, remote, port),
  };
}
