// NetworkPolicy semantics, pure: from the cluster's Pods, Namespaces and NetworkPolicies to what one node
// enforces on its own pods. Upstream rules: a pod selected by no policy of a direction is open in that
// direction; once selected, traffic passes when any rule of any selecting policy allows it.
import { createHash } from 'node:crypto';
import { matchesSelector } from '../kube/selector.js';
import { addressAt, cidrRange } from '../services/addresses.js';
import type { NetworkPolicy, PolicyNamespace, PolicyPeer, PolicyPod, PolicyPort, PolicyRule, Protocol } from './objects.js';

export type Direction = 'ingress' | 'egress';

export interface ClusterPolicyState {
  pods: Iterable<PolicyPod>;
  namespaces: Iterable<PolicyNamespace>;
  policies: Iterable<NetworkPolicy>;
}

/** A numeric port match: a protocol with one port, a range (endPort), or every port (no `from`). */
export interface PortMatch {
  protocol: Protocol;
  from?: number;
  to?: number;
}

/** One address, protocol and port that a named port resolved to. */
export interface NamedPortElement {
  ip: string;
  protocol: Protocol;
  port: number;
}

export interface CompiledRule {
  /** `from`/`to` was empty: every source (ingress) or destination (egress). */
  anyPeer: boolean;
  /** The rule has pod/namespace selector peers (their set exists even while it is empty). */
  hasSelectors: boolean;
  /** Addresses of the pods the rule's selectors pick, cluster-wide. */
  peerPods: string[];
  /** The rule has ipBlock peers. */
  hasBlocks: boolean;
  /** ipBlocks as merged inclusive ranges [first, last] of either family (except clauses taken out). */
  cidrRanges: [string, string][];
  /** `ports` was empty: every port and protocol. */
  anyPort: boolean;
  ports: PortMatch[];
  /** Named ports in the rule, resolved to pod addresses (ingress: the selected pods; egress: the peers). */
  named: NamedPortElement[];
  /** The rule names a port, so named ports exist in it even if none resolves right now. */
  hasNamed: boolean;
}

export interface CompiledPolicy {
  /** namespace/name */
  key: string;
  /** Short stable id for nftables names. */
  id: string;
  /** Addresses of this node's pods that the policy selects. */
  targets: string[];
  ingress?: CompiledRule[];
  egress?: CompiledRule[];
}

export interface CompiledNode {
  /** Every address of this node's pods known to the API. */
  localPods: string[];
  ingressIsolated: string[];
  egressIsolated: string[];
  /**
   * A pod scheduled here whose address is not known yet is isolated in this direction: addresses on
   * pod interfaces that the API has not named yet are denied in it until the address is known.
   */
  pendingIsolated: Record<Direction, boolean>;
  policies: CompiledPolicy[];
}

export const policyKey = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`;
export const policyId = (key: string): string => createHash('sha256').update(key).digest('hex').slice(0, 10);

/** The pods (by namespace) that one peer of a rule selects, per the API's documented peer semantics. */
function peerSelects(peer: Exclude<PolicyPeer, { ipBlock: unknown }>, policyNamespace: string, pod: PolicyPod, namespaces: Map<string, PolicyNamespace>): boolean {
  if (peer.namespaces) {
    // namespaceSelector (alone: every pod there; with podSelector: the matching pods there).
    const ns = namespaces.get(pod.namespace);
    if (!ns || !matchesSelector(peer.namespaces, ns.labels)) return false;
  } else if (pod.namespace !== policyNamespace) return false; // podSelector alone: the policy's own namespace
  return !peer.pods || matchesSelector(peer.pods, pod.labels);
}

/**
 * ipBlocks minus their excepts, merged: what sets of intervals hold, IPv4 ranges first, then IPv6. An
 * except only cuts its own family (an IPv6 except has no IPv4 address in it, and the reverse).
 */
export function ipBlockRanges(blocks: { cidr: string; except: string[] }[]): [string, string][] {
  const out: [string, string][] = [];
  for (const v6 of [false, true]) {
    let pieces: [bigint, bigint][] = [];
    for (const block of blocks) {
      const whole = cidrRange(block.cidr);
      if (whole.v6 !== v6) continue;
      let parts: [bigint, bigint][] = [[whole.first, whole.last]];
      for (const except of block.except.map(cidrRange).filter((x) => x.v6 === v6)) {
        parts = parts.flatMap(([s, e]): [bigint, bigint][] => {
          if (except.last < s || except.first > e) return [[s, e]];
          const kept: [bigint, bigint][] = [];
          if (except.first > s) kept.push([s, except.first - 1n]);
          if (except.last < e) kept.push([except.last + 1n, e]);
          return kept;
        });
      }
      pieces.push(...parts);
    }
    pieces = pieces.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const merged: [bigint, bigint][] = [];
    for (const p of pieces) {
      const last = merged[merged.length - 1];
      if (last && p[0] <= last[1] + 1n) last[1] = p[1] > last[1] ? p[1] : last[1];
      else merged.push([p[0], p[1]]);
    }
    out.push(...merged.map(([s, e]): [string, string] => [addressAt(v6, s), addressAt(v6, e)]));
  }
  return out;
}

function namedElements(ports: PolicyPort[], pods: PolicyPod[]): NamedPortElement[] {
  const out: NamedPortElement[] = [];
  for (const want of ports) {
    if (typeof want.port !== 'string') continue;
    for (const pod of pods) {
      for (const p of pod.ports) if (p.name === want.port && p.protocol === want.protocol) for (const ip of pod.ips) out.push({ ip, protocol: p.protocol, port: p.port });
    }
  }
  return out;
}

function compileRule(rule: PolicyRule, direction: Direction, policy: NetworkPolicy, selected: PolicyPod[], live: PolicyPod[], namespaces: Map<string, PolicyNamespace>): CompiledRule {
  const anyPeer = rule.peers.length === 0;
  const selectors = rule.peers.filter((p): p is Exclude<PolicyPeer, { ipBlock: unknown }> => !('ipBlock' in p));
  const blocks = rule.peers.flatMap((p) => ('ipBlock' in p ? [p.ipBlock] : []));
  const hasBlocks = rule.peers.some((p) => 'ipBlock' in p);
  const peers = anyPeer ? live : live.filter((pod) => selectors.some((s) => peerSelects(s, policy.namespace, pod, namespaces)));
  const numeric = rule.ports.filter((p) => typeof p.port !== 'string');
  const hasNamed = rule.ports.some((p) => typeof p.port === 'string');
  return {
    anyPeer,
    hasSelectors: selectors.length > 0,
    peerPods: anyPeer ? [] : [...new Set(peers.flatMap((p) => p.ips))].sort(),
    hasBlocks,
    cidrRanges: ipBlockRanges(blocks),
    anyPort: rule.ports.length === 0,
    ports: numeric.map((p) => ({ protocol: p.protocol, ...(typeof p.port === 'number' ? { from: p.port, to: p.endPort ?? p.port } : {}) })),
    // The destination names the port: the selected pod for ingress, the peer pod for egress.
    named: hasNamed ? namedElements(rule.ports, direction === 'ingress' ? selected : peers) : [],
    hasNamed,
  };
}

/** What `node` enforces, from the whole cluster's state (peers live anywhere; targets only here). */
export function compileNode(node: string, state: ClusterPolicyState): CompiledNode {
  const namespaces = new Map([...state.namespaces].map((n) => [n.name, n]));
  const live = [...state.pods].filter((p) => !p.inert).sort((a, b) => policyKey(a).localeCompare(policyKey(b)));
  const local = live.filter((p) => p.node === node);
  const policies = [...state.policies].sort((a, b) => policyKey(a).localeCompare(policyKey(b)));
  const selects = (policy: NetworkPolicy, pod: PolicyPod): boolean => pod.namespace === policy.namespace && matchesSelector(policy.podSelector, pod.labels);
  const isolated = { ingress: new Set<string>(), egress: new Set<string>() };
  const pendingIsolated = { ingress: false, egress: false };
  const compiled = policies.map((policy): CompiledPolicy => {
    const key = policyKey(policy);
    const selected = local.filter((pod) => selects(policy, pod));
    const targets = [...new Set(selected.flatMap((p) => p.ips))].sort();
    for (const direction of ['ingress', 'egress'] as const) {
      if (!policy[direction]) continue;
      for (const ip of targets) isolated[direction].add(ip);
      if (selected.some((p) => p.ips.length === 0)) pendingIsolated[direction] = true;
    }
    return {
      key,
      id: policyId(key),
      targets,
      ...(policy.ingress ? { ingress: policy.ingress.map((r) => compileRule(r, 'ingress', policy, selected, live, namespaces)) } : {}),
      ...(policy.egress ? { egress: policy.egress.map((r) => compileRule(r, 'egress', policy, selected, live, namespaces)) } : {}),
    };
  });
  return {
    localPods: [...new Set(local.flatMap((p) => p.ips))].sort(),
    ingressIsolated: [...isolated.ingress].sort(),
    egressIsolated: [...isolated.egress].sort(),
    pendingIsolated,
    policies: compiled,
  };
}

/** For `lightlyctl policy NS/POD`: the policies that select a pod, in any node's view. */
export function policiesSelecting(pod: PolicyPod, policies: Iterable<NetworkPolicy>): NetworkPolicy[] {
  return [...policies].filter((p) => p.namespace === pod.namespace && matchesSelector(p.podSelector, pod.labels)).sort((a, b) => policyKey(a).localeCompare(policyKey(b)));
}
