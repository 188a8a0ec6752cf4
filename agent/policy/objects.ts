// What the policy enforcer keeps of Pods, Namespaces and NetworkPolicies (networking.k8s.io/v1): only the
// fields the rules read, validated with zod as they arrive, so a bad object is its own error.
import { z } from 'zod';
import { Address4, Address6 } from 'ip-address';
import { canonicalAddress } from '../services/addresses.js';
import type { Requirement } from '../kube/selector.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface NamedPort {
  name: string;
  port: number;
  protocol: Protocol;
}

export interface PolicyPod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** Addresses of both families from status.podIPs (IPv6 in canonical form); empty while the kubelet has not reported them yet. */
  ips: string[];
  /** spec.nodeName ('' while unscheduled). */
  node: string;
  /** Named container ports, for policies that name a port. */
  ports: NamedPort[];
  /** Host-network pods and finished pods (their addresses may be reused) take no part in policy. */
  inert: boolean;
}

export interface PolicyNamespace {
  name: string;
  labels: Record<string, string>;
}

export type PolicyPeer = { pods?: Requirement[]; namespaces?: Requirement[] } | { ipBlock: { cidr: string; except: string[] } };

export interface PolicyPort {
  protocol: Protocol;
  /** A number, a container port's name, or absent (every port of the protocol). */
  port?: number | string;
  endPort?: number;
}

export interface PolicyRule {
  /** Absent or empty: every peer. */
  peers: PolicyPeer[];
  /** Empty: every port. */
  ports: PolicyPort[];
}

export interface NetworkPolicy {
  namespace: string;
  name: string;
  podSelector: Requirement[];
  ingress?: PolicyRule[];
  egress?: PolicyRule[];
}

const Meta = z.object({
  name: z.string().min(1),
  namespace: z.string().default(''),
  labels: z.record(z.string(), z.string()).default({}),
});

const protocol = z.enum(['TCP', 'UDP', 'SCTP']).default('TCP');

const LabelSelector = z
  .object({
    matchLabels: z.record(z.string(), z.string()).default({}),
    matchExpressions: z
      .array(
        z
          .object({ key: z.string().min(1), operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']), values: z.array(z.string()).default([]) })
          .refine((e) => (e.operator === 'In' || e.operator === 'NotIn' ? e.values.length > 0 : e.values.length === 0), { message: 'In/NotIn need values, Exists/DoesNotExist take none' }),
      )
      .default([]),
  })
  .transform((s): Requirement[] => [
    ...Object.entries(s.matchLabels).map(([key, value]): Requirement => ({ key, op: 'in', values: [value] })),
    ...s.matchExpressions.map((e): Requirement => {
      switch (e.operator) {
        case 'In':
          return { key: e.key, op: 'in', values: e.values };
        case 'NotIn':
          return { key: e.key, op: 'notin', values: e.values };
        case 'Exists':
          return { key: e.key, op: 'exists' };
        case 'DoesNotExist':
          return { key: e.key, op: '!exists' };
      }
    }),
  ]);

// Parsed here, so that a CIDR the compiler could not take fails its own policy only, never the node's ruleset.
const ipCidr = z.string().refine((c) => c.includes('/') && (Address4.isValid(c) || Address6.isValid(c)), 'an IPv4 or IPv6 CIDR');

const Peer = z
  .object({ podSelector: LabelSelector.optional(), namespaceSelector: LabelSelector.optional(), ipBlock: z.object({ cidr: ipCidr, except: z.array(ipCidr).default([]) }).optional() })
  .refine((p) => (p.ipBlock ? !p.podSelector && !p.namespaceSelector : p.podSelector || p.namespaceSelector), { message: 'a peer is an ipBlock or selectors, exactly one of them' })
  .transform((p): PolicyPeer => (p.ipBlock ? { ipBlock: p.ipBlock } : { ...(p.podSelector ? { pods: p.podSelector } : {}), ...(p.namespaceSelector ? { namespaces: p.namespaceSelector } : {}) }));

const Port = z
  .object({ protocol, port: z.union([z.number().int().min(1).max(65535), z.string().regex(/^[a-z0-9-]{1,15}$/)]).optional(), endPort: z.number().int().min(1).max(65535).optional() })
  .refine((p) => p.endPort === undefined || (typeof p.port === 'number' && p.endPort >= p.port), { message: 'endPort needs a numeric port no greater than it' })
  .transform((p): PolicyPort => ({ protocol: p.protocol, ...(p.port !== undefined ? { port: p.port } : {}), ...(p.endPort !== undefined ? { endPort: p.endPort } : {}) }));

const rules = (peerKey: 'from' | 'to') =>
  z.array(z.object({ [peerKey]: z.array(Peer).default([]), ports: z.array(Port).default([]) })).transform((rs) => rs.map((r): PolicyRule => ({ peers: r[peerKey] as PolicyPeer[], ports: r.ports as PolicyPort[] })));

const NetworkPolicyShape = z.object({
  metadata: Meta,
  spec: z.object({
    podSelector: LabelSelector,
    policyTypes: z.array(z.enum(['Ingress', 'Egress'])).optional(),
    ingress: rules('from').default([]),
    egress: rules('to').default([]),
  }),
});

/**
 * A NetworkPolicy as enforced. policyTypes defaults as the API documents it: Ingress always, Egress
 * when the policy has egress rules. A direction not in policyTypes is absent (its rules ignored).
 */
export function slimNetworkPolicy(raw: unknown): NetworkPolicy {
  const { metadata, spec } = NetworkPolicyShape.parse(raw);
  const types = spec.policyTypes ?? ['Ingress', ...(spec.egress.length ? (['Egress'] as const) : [])];
  return {
    namespace: metadata.namespace,
    name: metadata.name,
    podSelector: spec.podSelector,
    ...(types.includes('Ingress') ? { ingress: spec.ingress } : {}),
    ...(types.includes('Egress') ? { egress: spec.egress } : {}),
  };
}

const PodShape = z.object({
  metadata: Meta,
  spec: z
    .object({
      nodeName: z.string().default(''),
      hostNetwork: z.boolean().default(false),
      containers: z.array(z.object({ ports: z.array(z.object({ name: z.string().optional(), containerPort: z.number().int(), protocol })).default([]) })).default([]),
    })
    .prefault({}),
  status: z.object({ phase: z.string().default(''), podIP: z.string().optional(), podIPs: z.array(z.object({ ip: z.string() })).default([]) }).prefault({}),
});

export function slimPod(raw: unknown): PolicyPod {
  const { metadata, spec, status } = PodShape.parse(raw);
  const all = status.podIPs.length ? status.podIPs.map((p) => p.ip) : status.podIP ? [status.podIP] : [];
  return {
    namespace: metadata.namespace,
    name: metadata.name,
    labels: { ...metadata.labels },
    // Canonical, so that the same IPv6 address written two ways is one set element and one peer.
    ips: all.filter((ip) => Address4.isValid(ip) || Address6.isValid(ip)).map(canonicalAddress),
    node: spec.nodeName,
    ports: spec.containers.flatMap((c) => c.ports.flatMap((p) => (p.name ? [{ name: p.name, port: p.containerPort, protocol: p.protocol }] : []))),
    inert: spec.hostNetwork || status.phase === 'Succeeded' || status.phase === 'Failed',
  };
}

export function slimNamespace(raw: unknown): PolicyNamespace {
  const { metadata } = z.object({ metadata: Meta }).parse(raw);
  return { name: metadata.name, labels: { ...metadata.labels } };
}

/** The reflector key of a namespaced object: namespace/name. */
export const namespacedKey = (raw: unknown): string => {
  const m = (raw as { metadata?: { namespace?: unknown; name?: unknown } } | null)?.metadata;
  return `${String(m?.namespace ?? '')}/${String(m?.name ?? '')}`;
};
