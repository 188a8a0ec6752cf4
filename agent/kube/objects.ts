// What the agent keeps of each Kubernetes object, made as the object arrives: only the fields it reads
// (a Node is ~11.6 KB, mostly images and managed fields; its slim form a few hundred bytes), and each
// BGPPeer and BGPConfiguration validated here, so a bad one is its own error and never the agent's.
import { z } from 'zod';
import { asn, cidr, holdTime, ipAddress, ipv4Address } from '../config.js';
import type { BgpConfigurationSpec, BgpPeerSpec, ClusterNode } from './desired.js';
import { type Requirement, parseSelector } from './selector.js';

/** The annotation that sets a node's BGP router id (IPv6-only or multi-homed nodes). */
export const ROUTER_ID_ANNOTATION = 'lightly.dev/router-id';
/** The label (or annotation) that sets a node's AS number: one AS per rack, or per node (RFC 7938). */
export const ASN_LABEL = 'lightly.dev/asn';

/** Enough of an object to name it in a log line or an Event. */
export interface ObjectRef {
  kind: string;
  apiVersion: string;
  name: string;
  uid: string;
  resourceVersion: string;
  /** Set for namespaced objects (a Service): their Events go to that namespace. */
  namespace?: string;
}

const Meta = z.object({
  name: z.string().min(1),
  uid: z.string().default(''),
  resourceVersion: z.string().default(''),
  labels: z.record(z.string(), z.string()).default({}),
  annotations: z.record(z.string(), z.string()).default({}),
});

const NodeShape = z.object({
  metadata: Meta,
  spec: z.object({ podCIDR: z.string().optional(), podCIDRs: z.array(z.string()).optional() }).default({}),
  status: z
    .object({
      addresses: z.array(z.object({ type: z.string(), address: z.string() })).default([]),
      conditions: z.array(z.object({ type: z.string(), status: z.string(), reason: z.string().optional() })).default([]),
    })
    .default({ addresses: [], conditions: [] }),
});

/** A Node with what the agent reads of it; labels and strings copied so the parsed object can go. */
export function slimNode(raw: unknown): ClusterNode {
  const node = NodeShape.parse(raw);
  const { spec, status, metadata } = node;
  const condition = status.conditions.find((c) => c.type === 'NetworkUnavailable');
  const routerId = metadata.annotations[ROUTER_ID_ANNOTATION];
  const nodeAsn = metadata.labels[ASN_LABEL] ?? metadata.annotations[ASN_LABEL];
  return {
    name: metadata.name,
    uid: metadata.uid,
    labels: { ...metadata.labels },
    internalIPs: status.addresses.filter((a) => a.type === 'InternalIP').map((a) => a.address),
    podCIDRs: spec.podCIDRs?.length ? spec.podCIDRs : spec.podCIDR ? [spec.podCIDR] : [],
    ...(routerId !== undefined ? { routerIdAnnotation: routerId } : {}),
    ...(nodeAsn !== undefined ? { asnLabel: nodeAsn } : {}),
    ...(condition ? { networkUnavailable: { status: condition.status, reason: condition.reason ?? '' } } : {}),
  };
}

const selector = z.string().transform((s, ctx): Requirement[] => {
  try {
    return parseSelector(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** Where a BGPPeer's TCP MD5 password is: a key of a Secret in the agent's namespace. */
const SecretKeyRef = z.object({ name: z.string().min(1).max(253), key: z.string().min(1).max(253) });

const BgpPeerSpecSchema = z
  .object({
    peerIP: ipAddress.optional(),
    asn: asn.optional(),
    node: z.string().min(1).optional(),
    nodeSelector: z.string().optional(),
    /** The peers are the Nodes matching this selector, each at its address and with its own AS (its lightly.dev/asn). */
    peerSelector: z.string().optional(),
    holdTime: holdTime.optional(),
    maxPrefixes: z.number().int().positive().optional(),
    password: z.object({ secretKeyRef: SecretKeyRef }).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.node !== undefined && spec.nodeSelector !== undefined) ctx.addIssue({ code: 'custom', path: ['nodeSelector'], message: 'set node or nodeSelector, not both' });
    if ((spec.peerIP === undefined) === (spec.peerSelector === undefined)) ctx.addIssue({ code: 'custom', path: ['peerIP'], message: 'set peerIP or peerSelector, one of them' });
    if (spec.peerIP !== undefined && spec.asn === undefined) ctx.addIssue({ code: 'custom', path: ['asn'], message: 'a peer set by peerIP needs its asn' });
    for (const field of ['nodeSelector', 'peerSelector'] as const) {
      if (spec[field] === undefined) continue;
      const parsed = selector.safeParse(spec[field]);
      if (!parsed.success) ctx.addIssue({ code: 'custom', path: [field], message: parsed.error.issues[0]!.message });
    }
  });

const BgpConfigurationSpecSchema = z.object({
  asn: asn.optional(),
  nodeToNodeMesh: z.boolean().optional(),
  /** The mesh also joins nodes of different AS, over eBGP; without it, only nodes of the same AS mesh. */
  ebgpNodeMesh: z.boolean().optional(),
  importCIDRs: z.array(cidr).optional(),
  maxPrefixes: z.number().int().positive().optional(),
  natOutgoing: z.boolean().optional(),
  natOutgoingV6: z.boolean().optional(),
  holdTime: holdTime.optional(),
  // Service advertisement (docs/services.md): nothing outside these is ever announced.
  serviceClusterIPs: z.array(z.object({ cidr })).optional(),
  serviceExternalIPs: z.array(z.object({ cidr })).optional(),
  serviceLoadBalancerIPs: z.array(z.object({ cidr })).optional(),
});

/** A custom object as kept: the spec to use (none: skipped), and why the object as written is invalid. */
export interface Checked<S> {
  ref: ObjectRef;
  spec?: S;
  invalid?: string;
}

function refOf(raw: unknown, kind: string): ObjectRef {
  const r = raw as { apiVersion?: unknown; metadata?: { name?: unknown; uid?: unknown; resourceVersion?: unknown } } | null;
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  return { kind, apiVersion: str(r?.apiVersion), name: str(r?.metadata?.name), uid: str(r?.metadata?.uid), resourceVersion: str(r?.metadata?.resourceVersion) };
}

export function check<S>(raw: unknown, kind: string, schema: z.ZodType<S>): Checked<S> {
  const ref = refOf(raw, kind);
  const parsed = schema.safeParse((raw as { spec?: unknown } | null)?.spec ?? {});
  if (parsed.success) return { ref, spec: parsed.data };
  return { ref, invalid: parsed.error.issues.map((i) => `spec${i.path.map((p) => `.${String(p)}`).join('')}: ${i.message}`).join('; ') };
}

export function checkBgpPeer(raw: unknown): Checked<BgpPeerSpec> {
  const checked = check(raw, 'BGPPeer', BgpPeerSpecSchema);
  return { ref: checked.ref, ...(checked.spec ? { spec: { ...checked.spec, name: checked.ref.name } } : { invalid: checked.invalid }) };
}

export function checkBgpConfiguration(raw: unknown): Checked<BgpConfigurationSpec> {
  return check(raw, 'BGPConfiguration', BgpConfigurationSpecSchema);
}

/** A Secret as the agent keeps it: its data, still base64 (decoded only for the key a BGPPeer names). */
export interface SlimSecret {
  name: string;
  data: Record<string, string>;
}

const SecretShape = z.object({ metadata: z.object({ name: z.string().min(1) }), data: z.record(z.string(), z.string()).default({}) });

export function slimSecret(raw: unknown): SlimSecret {
  const secret = SecretShape.parse(raw);
  return { name: secret.metadata.name, data: { ...secret.data } };
}

/** A router id as the annotation may give it: an IPv4 address (BGP identifiers are 32 bits, RFC 6286). */
export function validRouterId(value: string): boolean {
  return ipv4Address.safeParse(value).success;
}
