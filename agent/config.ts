// The agent's configuration (standalone YAML/JSON file), validated with zod; errors name the bad field.
import { readFileSync } from 'node:fs';
import { Address4, Address6 } from 'ip-address';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export const ipAddress = z.string().refine((s) => (Address4.isValid(s) || Address6.isValid(s)) && !s.includes('/'), 'must be an IP address');
export const ipv4Address = z.string().refine((s) => Address4.isValid(s) && !s.includes('/'), 'must be an IPv4 address');
export const ipv6Address = z.string().refine((s) => Address6.isValid(s) && !s.includes('/') && !s.includes('%'), 'must be an IPv6 address');
/** Address families a peer is offered (RFC 4760 capabilities), in config's words. */
export const ADDRESS_FAMILIES = ['ipv4', 'ipv6'] as const;
export const cidr = z
  .string()
  .refine((s) => s.includes('/') && (Address4.isValid(s) || Address6.isValid(s)), 'must be a CIDR like 10.244.1.0/24');
export const asn = z.number().int().min(1).max(4_294_967_295);
export const holdTime = z
  .number()
  .int()
  .refine((h) => h === 0 || (h >= 3 && h <= 65535), 'must be 0 or between 3 and 65535 seconds');

export const PEER_TYPES = ['node-mesh', 'global', 'node-specific'] as const;
export type PeerType = (typeof PEER_TYPES)[number];

export const PeerSchema = z.object({
  address: ipAddress,
  asn,
  port: z.number().int().min(1).max(65535).default(179),
  holdTime: holdTime.optional(),
  passive: z.boolean().default(false),
  /** How the peer came to be: the node mesh, a global peer (top-of-rack), or one for this node. */
  type: z.enum(PEER_TYPES).optional(),
  /** We reflect routes to this iBGP peer (we are its route reflector). */
  routeReflectorClient: z.boolean().default(false),
  maxPrefixes: z.number().int().positive().optional(),
  /** TCP MD5 key (RFC 2385) for this session: at most 80 bytes, the kernel's limit. */
  password: z.string().min(1).refine((p) => Buffer.byteLength(p) <= 80, 'must be at most 80 bytes (the kernel\'s TCP MD5 key limit)').optional(),
  /** Address families offered to this peer; default both (IPv6 routes go over IPv4 sessions too, RFC 4760). */
  families: z.array(z.enum(ADDRESS_FAMILIES)).min(1).optional(),
});
export type PeerConfig = z.infer<typeof PeerSchema>;

export const AgentConfigSchema = z.object({
  nodeName: z.string().min(1),
  routerId: ipv4Address,
  asn: asn.default(64512),
  podCIDRs: z.array(cidr).default([]),
  listen: z
    .object({ address: ipAddress.default('0.0.0.0'), port: z.number().int().min(0).max(65535).default(179) })
    .default({ address: '0.0.0.0', port: 179 }),
  peers: z.array(PeerSchema).default([]),
  /** Accept only prefixes inside these; empty means any prefix but a default route. */
  importCIDRs: z.array(cidr).default([]),
  allowDefaultRoute: z.boolean().default(false),
  /** Never accepted from peers: the Service ranges (Kubernetes mode sets them from the BGPConfiguration). */
  rejectCIDRs: z.array(cidr).default([]),
  maxPrefixes: z.number().int().positive().default(10_000),
  holdTime: holdTime.default(90),
  connectRetrySeconds: z.number().positive().default(5),
  gracefulRestart: z
    .object({ enabled: z.boolean().default(true), restartTime: z.number().int().min(1).max(4095).default(120) })
    .default({ enabled: true, restartTime: 120 }),
  /** Set to act as a route reflector for peers marked routeReflectorClient. */
  clusterId: ipv4Address.optional(),
  statusSocket: z.string().default('/run/lightly/agent.sock'),
  metricsPort: z.number().int().min(0).max(65535).optional(),
  natOutgoing: z.boolean().default(false),
  /** Masquerade IPv6 pod traffic leaving the cluster too (natOutgoing is IPv4 only). */
  natOutgoingV6: z.boolean().default(false),
  /**
   * Our next hop for routes of the family a session's own address is not of (IPv6 pod CIDRs over an
   * IPv4 session). Default: an address of that family on the session's interface (global, for IPv6).
   */
  nextHopSelf: z.object({ ipv4: ipv4Address.optional(), ipv6: ipv6Address.optional() }).optional(),
  /** Masquerade pod traffic leaving these; defaults to the import CIDRs plus our pod CIDRs. */
  clusterCIDRs: z.array(cidr).optional(),
  /** The CNI server the `lightly` shim hands invocations to. */
  cniServer: z
    .object({ enabled: z.boolean().default(true), addrFile: z.string().default('/run/lightly/cni.addr') })
    .default({ enabled: true, addrFile: '/run/lightly/cni.addr' }),
  /** Where rt_protos.d lives: the `lightly` protocol name is registered there. */
  iprouteDir: z.string().default('/etc/iproute2'),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Validates parsed YAML/JSON; the error names the field: `peers.1.asn: ...`. */
export function parseAgentConfig(raw: unknown, source = 'config'): AgentConfig {
  const parsed = AgentConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid ${source}: ${lines.join('; ')}`);
  }
  return parsed.data;
}

export function loadAgentConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text); // YAML is a superset of JSON
  } catch (err) {
    throw new ConfigError(`cannot parse config ${path}: ${(err as Error).message}`);
  }
  return parseAgentConfig(raw, `config ${path}`);
}

/** The peer's type as operators see it: explicit, else node-mesh for iBGP and global for eBGP. */
export function peerType(peer: PeerConfig, localAsn: number): PeerType {
  return peer.type ?? (peer.asn === localAsn ? 'node-mesh' : 'global');
}
