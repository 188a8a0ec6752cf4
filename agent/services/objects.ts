// Services, EndpointSlices and LoadBalancerIPPools as the agent keeps them: each validated with zod as it
// arrives and cut down to what the allocator and the announcement read (a Service's managed fields and
// annotations of other tools are dropped), so a bad object is its own error and never the agent's.
import { z } from 'zod';
import { Address4, Address6 } from 'ip-address';
import { cidr, ipAddress } from '../config.js';
import { type Checked, type ObjectRef, check } from '../kube/objects.js';
import { type Requirement, parseSelector } from '../kube/selector.js';

/** Services of type LoadBalancer with this class (or none) are ours to give an address. */
export const LOAD_BALANCER_CLASS = 'lightly.dev/bgp';
/** Requested addresses, comma separated, one per family (dual stack): `203.0.113.10,2001:db8::10`. */
export const LOAD_BALANCER_IPS_ANNOTATION = 'lightly.dev/load-balancer-ips';
/** Services with the same value may share an address when their ports do not overlap (MetalLB's rule). */
export const SHARING_ANNOTATION = 'lightly.dev/allow-shared-ip';
/** The label an EndpointSlice names its Service by (discovery.k8s.io/v1). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export type Family = 'IPv4' | 'IPv6';
export const familyOf = (address: string): Family => (address.includes(':') ? 'IPv6' : 'IPv4');

/** An address as one prefix of its own: 203.0.113.10/32, 2001:db8::10/128 (canonical form). */
export function hostPrefix(address: string): string {
  return familyOf(address) === 'IPv6' ? `${new Address6(address).correctForm()}/128` : `${new Address4(address).correctForm()}/32`;
}

export interface ServicePort {
  protocol: string;
  port: number;
}

/** A Service as kept: `key` is namespace/name. */
export interface SlimService {
  key: string;
  ref: ObjectRef & { namespace: string };
  created: string;
  labels: Record<string, string>;
  type: string;
  loadBalancerClass?: string;
  clusterIPs: string[];
  externalIPs: string[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  /** spec.selector (none: endpoints made by hand). */
  selector: Record<string, string>;
  families: Family[];
  /** Addresses asked for (annotation, else spec.loadBalancerIP). */
  requested: string[];
  /** Why the request cannot be read (a bad annotation): no address is given then. */
  requestError?: string;
  sharingKey?: string;
  ports: ServicePort[];
  /** status.loadBalancer.ingress[].ip: the allocation as the API holds it. */
  ingress: string[];
}

const Meta = z.object({
  name: z.string().min(1),
  namespace: z.string().min(1).default('default'),
  uid: z.string().default(''),
  resourceVersion: z.string().default(''),
  creationTimestamp: z.string().default(''),
  labels: z.record(z.string(), z.string()).prefault({}),
  annotations: z.record(z.string(), z.string()).prefault({}),
});

const ServiceShape = z.object({
  apiVersion: z.string().default('v1'),
  metadata: Meta,
  spec: z
    .object({
      type: z.string().default('ClusterIP'),
      loadBalancerClass: z.string().optional(),
      loadBalancerIP: z.string().optional(),
      clusterIP: z.string().optional(),
      clusterIPs: z.array(z.string()).optional(),
      externalIPs: z.array(ipAddress).default([]),
      externalTrafficPolicy: z.enum(['Cluster', 'Local']).default('Cluster'),
      selector: z.record(z.string(), z.string()).nullable().default({}),
      ipFamilies: z.array(z.enum(['IPv4', 'IPv6'])).default([]),
      ports: z.array(z.object({ protocol: z.string().default('TCP'), port: z.number().int().min(0).max(65535) })).default([]),
    })
    .prefault({}),
  status: z
    .object({ loadBalancer: z.object({ ingress: z.array(z.object({ ip: z.string().optional() })).default([]) }).prefault({}) })
    .prefault({}),
});

const validIp = (s: string): boolean => ipAddress.safeParse(s).success;

/** What the Service asks for: the annotation wins over the deprecated spec.loadBalancerIP. */
function requestOf(annotation: string | undefined, loadBalancerIP: string | undefined): { requested: string[]; requestError?: string } {
  const raw = annotation !== undefined ? annotation.split(',').map((s) => s.trim()).filter(Boolean) : loadBalancerIP ? [loadBalancerIP] : [];
  const bad = raw.filter((s) => !validIp(s));
  if (bad.length) return { requested: [], requestError: `not an IP address: ${bad.join(', ')}` };
  const families = raw.map(familyOf);
  if (new Set(families).size !== families.length) return { requested: [], requestError: 'at most one address per family (IPv4, IPv6)' };
  return { requested: raw };
}

export function slimService(raw: unknown): SlimService {
  const s = ServiceShape.parse(raw);
  const { metadata: m, spec } = s;
  const clusterIPs = (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter(validIp);
  const request = requestOf(m.annotations[LOAD_BALANCER_IPS_ANNOTATION], spec.loadBalancerIP);
  const families: Family[] = spec.ipFamilies.length ? spec.ipFamilies : request.requested.length ? request.requested.map(familyOf) : ['IPv4'];
  const sharingKey = m.annotations[SHARING_ANNOTATION];
  return {
    key: `${m.namespace}/${m.name}`,
    ref: { kind: 'Service', apiVersion: s.apiVersion, name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion },
    created: m.creationTimestamp,
    labels: { ...m.labels },
    type: spec.type,
    ...(spec.loadBalancerClass !== undefined ? { loadBalancerClass: spec.loadBalancerClass } : {}),
    clusterIPs,
    externalIPs: spec.externalIPs,
    externalTrafficPolicy: spec.externalTrafficPolicy,
    selector: { ...spec.selector },
    families,
    ...request,
    ...(sharingKey ? { sharingKey } : {}),
    ports: spec.ports.map((p) => ({ protocol: p.protocol, port: p.port })),
    ingress: s.status.loadBalancer.ingress.flatMap((i) => (i.ip && validIp(i.ip) ? [i.ip] : [])),
  };
}

/** A Service we allocate for: LoadBalancer, with no class or ours. */
export const wantsLoadBalancerIP = (s: SlimService): boolean =>
  s.type === 'LoadBalancer' && (s.loadBalancerClass === undefined || s.loadBalancerClass === LOAD_BALANCER_CLASS);

/** An EndpointSlice as kept: its Service's key and, per endpoint, the node and readiness. */
export interface SlimEndpointSlice {
  key: string;
  service: string;
  endpoints: { nodeName?: string; ready: boolean; addresses: string[] }[];
}

const EndpointSliceShape = z.object({
  metadata: Meta,
  endpoints: z
    .array(
      z.object({
        addresses: z.array(z.string()).default([]),
        nodeName: z.string().optional(),
        // discovery.k8s.io/v1: an unset `ready` means ready.
        conditions: z.object({ ready: z.boolean().nullable().optional() }).prefault({}),
      }),
    )
    .nullable()
    .default([]),
});

export function slimEndpointSlice(raw: unknown): SlimEndpointSlice {
  const e = EndpointSliceShape.parse(raw);
  // A slice without the label belongs to no Service (kept, so that it is not logged at every relist).
  const service = e.metadata.labels[SERVICE_NAME_LABEL];
  return {
    key: `${e.metadata.namespace}/${e.metadata.name}`,
    service: service ? `${e.metadata.namespace}/${service}` : '',
    endpoints: (e.endpoints ?? []).map((p) => ({ ...(p.nodeName ? { nodeName: p.nodeName } : {}), ready: p.conditions.ready !== false, addresses: p.addresses })),
  };
}

/** A LoadBalancerIPPool's spec as used. */
export interface PoolSpec {
  name: string;
  cidrs: string[];
  serviceSelector?: Requirement[];
  allowFirstLastIPs: boolean;
}

const PoolSpecSchema = z.object({
  cidrs: z.array(cidr).min(1),
  serviceSelector: z
    .string()
    .optional()
    .transform((s, ctx): Requirement[] | undefined => {
      if (s === undefined || s.trim() === '') return undefined;
      try {
        return parseSelector(s);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
  allowFirstLastIPs: z.boolean().default(false),
});

export function checkPool(raw: unknown): Checked<PoolSpec> {
  const checked = check(raw, 'LoadBalancerIPPool', PoolSpecSchema);
  if (!checked.spec) return { ref: checked.ref, invalid: checked.invalid };
  const { serviceSelector, ...rest } = checked.spec;
  return { ref: checked.ref, spec: { name: checked.ref.name, ...rest, ...(serviceSelector ? { serviceSelector } : {}) } };
}
