// CNI spec boundary: versions, the network config schema (zod) and results shaped per version.
import { z } from 'zod';
import { CniCode, CniError } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

/** Compares dotted versions numerically: -1, 0 or 1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export function requireSupportedVersion(version: string): CniVersion {
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(
      CniCode.INCOMPATIBLE_VERSION,
      `unsupported CNI version ${version}`,
      `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  return version as CniVersion;
}

const IpamRangeSchema = z.object({
  subnet: z.string(),
  rangeStart: z.string().optional(),
  rangeEnd: z.string().optional(),
  gateway: z.string().optional(),
});
export type IpamRange = z.infer<typeof IpamRangeSchema>;

const IpamSchema = z
  .object({
    type: z.string().optional(),
    subnet: z.string().optional(),
    /** host-local style: one address is taken from each range set (dual stack = two sets). */
    ranges: z.array(z.array(IpamRangeSchema).min(1)).min(1).optional(),
  })
  .loose();

const ContainerRefSchema = z.object({ containerID: z.string(), ifname: z.string() }).loose();

/** One plugin's configuration: a single .conf or one entry of a conflist as the runtime hands it over. */
export const NetConfSchema = z
  .object({
    cniVersion: z.string(),
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'name must be alphanumeric with _ . -'),
    type: z.string().optional(),
    ipam: IpamSchema.optional(),
    mtu: z.number().int().min(576).max(65535).default(1500),
    dataDir: z.string().min(1).default('/var/lib/cni/lightly'),
    /** false for secondary attachments (Multus net1): only the /32 and the link route, no default. */
    defaultRoute: z.boolean().default(true),
    /** Where the node agent listens: it hands out the pod CIDR when ipam.subnet is absent. */
    agentSocket: z.string().default('/run/lightly/agent.sock'),
    prevResult: z.unknown().optional(),
    'cni.dev/valid-attachments': z.array(ContainerRefSchema).optional(),
    'cni.dev/attachments': z.array(ContainerRefSchema).optional(),
  })
  .loose();
export type NetConf = z.infer<typeof NetConfSchema>;

/** Parses stdin: undecodable bytes are code 6, a config that does not fit the schema code 7. */
export function parseNetConf(stdin: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.DECODE_FAILURE, 'cannot decode network configuration on stdin', String(err));
  }
  // An unknown version is reported as such (code 1) even when the rest does not fit our schema.
  const version = (raw as { cniVersion?: unknown } | null)?.cniVersion;
  if (typeof version === 'string') requireSupportedVersion(version);
  const parsed = NetConfSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(root)';
    throw new CniError(CniCode.INVALID_CONFIG, `invalid network configuration: ${field}: ${issue?.message}`);
  }
  return parsed.data;
}

// ---- Results ----
export interface ResultInterface {
  name: string;
  mac?: string;
  sandbox?: string;
  mtu?: number;
}
export interface ResultIp {
  /** CIDR notation, e.g. 10.244.1.2/32. */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}
export interface ResultRoute {
  dst: string;
  gw?: string;
}
/** A version-neutral result: the plugin builds this; `formatResult` shapes it for the requested version. */
export interface CniResult {
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns: Record<string, unknown>;
}

export function formatResult(result: CniResult, version: CniVersion): Record<string, unknown> {
  const legacy = compareVersions(version, '1.0.0') < 0;
  const ips = result.ips.map((ip) => (legacy ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : { ...ip }));
  return { cniVersion: version, interfaces: result.interfaces, ips, routes: result.routes, dns: result.dns };
}

const PrevResultSchema = z
  .object({
    interfaces: z.array(z.object({ name: z.string(), mac: z.string().optional(), sandbox: z.string().optional() }).loose()).default([]),
    ips: z.array(z.object({ address: z.string(), gateway: z.string().optional(), interface: z.number().optional() }).loose()).default([]),
    routes: z.array(z.object({ dst: z.string(), gw: z.string().optional() }).loose()).default([]),
    dns: z.record(z.string(), z.unknown()).default({}),
  })
  .loose();

/** Reads a prevResult of any supported version into the neutral shape. */
export function parsePrevResult(prev: unknown): CniResult | undefined {
  if (prev === undefined || prev === null) return undefined;
  const parsed = PrevResultSchema.safeParse(prev);
  if (!parsed.success) throw new CniError(CniCode.INVALID_CONFIG, `invalid prevResult: ${parsed.error.issues[0]?.message}`);
  const { interfaces, ips, routes, dns } = parsed.data;
  return {
    interfaces: interfaces.map(({ name, mac, sandbox }) => ({ name, mac, sandbox })),
    ips: ips.map(({ address, gateway, interface: i }) => ({ address, gateway, interface: i })),
    routes: routes.map(({ dst, gw }) => ({ dst, gw })),
    dns,
  };
}
