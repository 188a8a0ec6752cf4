// What one node knows about a pod-to-pod path, as its agent gathers it: the shape of `GET /v1/doctor/facts`.
// lightlyctl parses it with these schemas at the boundary (it may also come from a file written on another node).
import { z } from 'zod';

/** `ip route get` as the kernel answers it: the route taken, or the error it refused with. */
export const routeGetSchema = z.object({
  ok: z.boolean(),
  type: z.string().optional(),
  dev: z.string().optional(),
  gateway: z.string().optional(),
  error: z.string().optional(),
});
export type RouteGet = z.infer<typeof routeGetSchema>;

/** A route of the table, as `ip -json route show` prints it. */
export const routeSchema = z.object({
  dst: z.string(),
  type: z.string(),
  dev: z.string().optional(),
  protocol: z.string().optional(),
  gateways: z.array(z.string()),
});
export type RouteFact = z.infer<typeof routeSchema>;

/** The length of a route's `dst` as `ip -json` prints it (`default`, an address, or a prefix). */
export function prefixLength(dst: string): number {
  if (dst === 'default') return 0;
  const slash = dst.indexOf('/');
  return slash < 0 ? (dst.includes(':') ? 128 : 32) : Number(dst.slice(slash + 1));
}

export const linkSchema = z.object({
  name: z.string(),
  up: z.boolean(),
  mtu: z.number(),
  /** The sysctl of that device in the host namespace; absent inside a pod. */
  proxyArp: z.number().optional(),
  /** Its IPv6 link-local addresses (host namespace): a pod's IPv6 gateway is its host veth's fe80:: address. */
  linkLocal: z.array(z.string()).optional(),
});
export type LinkFact = z.infer<typeof linkSchema>;

/** The pod this node hosts, from its namespace to the host's route towards it. */
export const podSchema = z.object({
  ip: z.string(),
  /** The named network namespace holding the address, found through the host veth or by a scan. */
  netns: z.string().optional(),
  eth0: linkSchema.optional(),
  defaultGateway: z.string().optional(),
  /** The pod's neighbour entry for its gateway (ARP, or NDP over IPv6): REACHABLE, STALE, FAILED…, or absent. */
  gatewayNeighbor: z.string().optional(),
  /** The host's /32 (or /128) to the pod, through its veth. */
  hostRoute: routeSchema.optional(),
  veth: linkSchema.optional(),
});
export type PodFacts = z.infer<typeof podSchema>;

/** How this node forwards towards the other pod, and how it lets that pod's packets in. */
export const pathSchema = z.object({
  ip: z.string(),
  routeGet: routeGetSchema,
  /** The most specific route of the table covering the address (any protocol, blackholes too). */
  route: routeSchema.optional(),
  /** The speaker's Loc-RIB for the address: the longest prefix covering it and its best path. */
  rib: z.object({
    prefix: z.string().optional(),
    best: z.object({ peer: z.string(), nextHop: z.string(), stale: z.boolean() }).optional(),
    /** Whether the import filter lets the address's prefix in (importCIDRs). */
    importAllowed: z.boolean(),
  }),
  nextHops: z.array(z.object({ address: z.string(), routeGet: routeGetSchema, neighbor: z.string().optional() })),
  /** Packets from the other pod arriving on the uplink, as the kernel would route them in (rp_filter included). */
  ingress: z.object({
    iif: z.string(), mtu: z.number(), routeGet: routeGetSchema,
    /** IPv4: the stricter of all's and the uplink's rp_filter. */
    rpFilter: z.number().optional(),
    /** IPv6 (no rp_filter there): net.ipv6.conf.all.forwarding, without which the node forwards no IPv6 packet. */
    forwarding6: z.number().optional(),
    /** The same destination without the source: when only this one succeeds, source validation (rp_filter) refused. */
    unvalidated: routeGetSchema,
  }).optional(),
});
export type PathFacts = z.infer<typeof pathSchema>;

/**
 * The flow's port as `--port N[/tcp|udp|sctp]` gives it (TCP when the protocol is left out). Without
 * one the policy question is "is any traffic allowed": a rule allowing some port answers yes.
 */
export const flowPortSchema = z
  .string()
  .regex(/^\d{1,5}(\/(tcp|udp|sctp))?$/i, 'a port: N, N/tcp, N/udp or N/sctp')
  .transform((s) => {
    const [port, protocol = 'tcp'] = s.split('/');
    return { port: Number(port), protocol: protocol!.toUpperCase() as 'TCP' | 'UDP' | 'SCTP' };
  })
  .refine((p) => p.port >= 1 && p.port <= 65535, 'a port between 1 and 65535');
export type FlowPort = z.output<typeof flowPortSchema>;

/** One direction's NetworkPolicy verdict for the flow, from the node's compiled policy model. */
export const directionVerdictSchema = z.object({
  /** Selected by some policy of this direction: only what a policy allows passes. */
  isolated: z.boolean(),
  /** The policies of this direction selecting the pod, with their rule count (0: default deny). */
  selectedBy: z.array(z.object({ policy: z.string(), rules: z.number() })),
  allowed: z.boolean(),
  /** The first rule that allows the flow, and the ports it allows in words. */
  allowedBy: z.object({ policy: z.string(), rule: z.number(), ports: z.string() }).optional(),
  /** The pod's address is not known to the API yet while a pod of this node is isolated: denied until it is. */
  pending: z.boolean().optional(),
  /** Evidence from the kernel: the nftables rule that drops the flow (or why none could be read). */
  kernel: z.string().optional(),
  /** The packets that rule's counter has dropped so far (all flows it drops, not this one alone). */
  dropped: z.number().optional(),
});
export type DirectionVerdict = z.infer<typeof directionVerdictSchema>;

const podRefSchema = z.object({ name: z.string(), labels: z.record(z.string(), z.string()) });

/**
 * NetworkPolicy on this node for the flow between its pod and the other one: `egress` for local →
 * remote (the source node's), `ingress` for remote → local (the destination node's). Replies pass as
 * established connections, so these two are all a flow meets.
 */
export const policyFactsSchema = z.union([
  z.object({ enforced: z.literal(false), reason: z.string() }),
  z.object({ enforced: z.literal(true), synced: z.literal(false) }),
  z.object({
    enforced: z.literal(true),
    synced: z.literal(true),
    /** The pods as the API names them (absent: no Pod object has the address). */
    local: podRefSchema.optional(),
    remote: podRefSchema.optional(),
    egress: directionVerdictSchema,
    ingress: directionVerdictSchema,
  }),
]);
export type PolicyFacts = z.infer<typeof policyFactsSchema>;

export const nodeFactsSchema = z.object({
  node: z.string(),
  /** The node's router id: its address on the fabric. */
  address: z.string(),
  podCIDRs: z.array(z.string()),
  natOutgoing: z.boolean(),
  clusterCIDRs: z.array(z.string()),
  peers: z.array(z.object({ address: z.string(), state: z.string(), info: z.string().optional() })),
  local: podSchema,
  remote: pathSchema,
  /** Absent from agents older than the policy verdicts. */
  policy: policyFactsSchema.optional(),
});
export type NodeFacts = z.infer<typeof nodeFactsSchema>;

/** What `GET /v1/doctor/facts` takes: the pod on this node, the other pod, and the other pod's node when known. */
export interface FactsQuery {
  local: string;
  remote: string;
  remoteNode?: string;
  /** `N/proto` (flowPortSchema); absent: any port. */
  port?: string;
}
