// What `lightlyctl policy NS/POD` shows, pure: the policies that select a pod and what each allows, in words.
import type { Requirement } from '../kube/selector.js';
import { policiesSelecting, policyKey } from './compile.js';
import type { NetworkPolicy, PolicyPeer, PolicyPod, PolicyPort, PolicyRule } from './objects.js';

export interface PodPolicyView {
  pod: string;
  node: string;
  ips: string[];
  /** Selected by some policy of the direction: only what a policy allows passes. */
  isolated: { ingress: boolean; egress: boolean };
  policies: { name: string; ingress?: string[]; egress?: string[] }[];
}

export function selectorText(reqs: Requirement[]): string {
  if (!reqs.length) return 'all';
  return reqs
    .map((r) => {
      switch (r.op) {
        case 'in':
          return r.values.length === 1 ? `${r.key}=${r.values[0]}` : `${r.key} in (${r.values.join(',')})`;
        case 'notin':
          return `${r.key} notin (${r.values.join(',')})`;
        case 'exists':
          return r.key;
        case '!exists':
          return `!${r.key}`;
      }
    })
    .join(',');
}

function peerText(peer: PolicyPeer, namespace: string): string {
  if ('ipBlock' in peer) return `ipBlock ${peer.ipBlock.cidr}${peer.ipBlock.except.length ? ` except ${peer.ipBlock.except.join(', ')}` : ''}`;
  const pods = `pods ${selectorText(peer.pods ?? [])}`;
  return peer.namespaces ? `${pods} in namespaces ${selectorText(peer.namespaces)}` : `${pods} in namespace ${namespace}`;
}

const portText = (p: PolicyPort): string => `${p.protocol}/${p.port === undefined ? 'any' : p.endPort !== undefined ? `${p.port}-${p.endPort}` : p.port}`;

function ruleText(rule: PolicyRule, namespace: string, word: 'from' | 'to'): string {
  const peers = rule.peers.length ? rule.peers.map((p) => peerText(p, namespace)).join(' or ') : 'anywhere';
  const ports = rule.ports.length ? rule.ports.map(portText).join(', ') : 'any port';
  return `${word} ${peers} on ${ports}`;
}

/** undefined when the pod is not known. A direction listed with no rules denies everything in it. */
export function describePod(pod: PolicyPod | undefined, policies: Iterable<NetworkPolicy>): PodPolicyView | undefined {
  if (!pod) return undefined;
  const selecting = policiesSelecting(pod, policies);
  return {
    pod: policyKey(pod),
    node: pod.node,
    ips: pod.ips,
    isolated: { ingress: selecting.some((p) => p.ingress), egress: selecting.some((p) => p.egress) },
    policies: selecting.map((p) => ({
      name: policyKey(p),
      ...(p.ingress ? { ingress: p.ingress.map((r) => ruleText(r, p.namespace, 'from')) } : {}),
      ...(p.egress ? { egress: p.egress.map((r) => ruleText(r, p.namespace, 'to')) } : {}),
    })),
  };
}
