// The CNI verbs, in the order the spec describes them. Kernel work lives in dataplane, addresses in ipam.
import { join } from 'node:path';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { CniCode, CniError } from './errors.js';
import type { CniEnv } from './env.js';
import {
  type CniResult,
  type CniVersion,
  type NetConf,
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  compareVersions,
  formatResult,
  parsePrevResult,
} from './spec.js';
import { type RangeSet, parseRangeSets } from './ipam/pool.js';
import { IpamStore } from './ipam/store.js';
import {
  HOST_VETH_MAC,
  POD_GATEWAY_V4,
  POD_GATEWAY_V6,
  type PodAddress,
  deleteLink,
  hostLength,
  hostVethName,
  observeHostRoutes,
  observePod,
  requireNetns,
  setupPod,
  type PodIpRunners,
} from './dataplane.js';
import { fetchPodCidrs } from './agent-client.js';
import type { IpRunner } from './ip-runner.js';

/** What a verb may use besides its inputs: how to run ip in the host's namespace. */
export interface VerbDeps {
  hostIp: IpRunner;
  /** How to run ip inside a pod's namespace; a process per call when absent. */
  podIp?: PodIpRunners;
}

export type VerbOutput = Record<string, unknown> | undefined;

async function rangeSetsOf(conf: NetConf): Promise<RangeSet[]> {
  if (conf.ipam?.subnet || conf.ipam?.ranges) return parseRangeSets(conf.ipam);
  const cidrs = await fetchPodCidrs(conf.agentSocket);
  return parseRangeSets({ ranges: cidrs.map((subnet) => [{ subnet }]) });
}

function storeOf(conf: NetConf, rangeSets: RangeSet[]): IpamStore {
  return new IpamStore(join(conf.dataDir, conf.name), rangeSets);
}

function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

function gatewayOf(family: 4 | 6): string {
  return family === 4 ? POD_GATEWAY_V4 : POD_GATEWAY_V6;
}

/** What ADD reports, appended to a previous plugin's result when we are not first in the chain. */
function buildResult(conf: NetConf, env: CniEnv, hostVeth: string, podMac: string, addresses: PodAddress[], prev?: CniResult): CniResult {
  const base: CniResult = prev ?? { interfaces: [], ips: [], routes: [], dns: {} };
  const podIndex = base.interfaces.length + 1;
  const families = [...new Set(addresses.map((a) => a.family))];
  return {
    interfaces: [...base.interfaces, { name: hostVeth, mac: HOST_VETH_MAC }, { name: env.ifname, mac: podMac, sandbox: env.netns }],
    ips: [
      ...base.ips,
      ...addresses.map(({ address, family }) => ({
        address: `${address}/${hostLength(family)}`,
        ...(conf.defaultRoute ? { gateway: gatewayOf(family) } : {}),
        interface: podIndex,
      })),
    ],
    routes: [
      ...base.routes,
      ...(conf.defaultRoute ? families.map((f) => ({ dst: f === 4 ? '0.0.0.0/0' : '::/0', gw: gatewayOf(f) })) : []),
    ],
    dns: base.dns,
  };
}

export async function add(conf: NetConf, version: CniVersion, env: CniEnv, deps: VerbDeps): Promise<VerbOutput> {
  const rangeSets = await rangeSetsOf(conf);
  requireNetns(env.netns);
  const prev = parsePrevResult(conf.prevResult);
  const store = storeOf(conf, rangeSets);
  const attachment = { containerId: env.containerId, ifname: env.ifname };
  const allocation = store.allocate(attachment);
  const addresses = allocation.ips.map(({ address, range }) => ({ address, family: range.family }));
  const hostVeth = hostVethName(env.containerId, env.ifname);
  try {
    const { podMac } = await setupPod({ netns: env.netns, ifname: env.ifname, hostVeth, mtu: conf.mtu, addresses, defaultRoute: conf.defaultRoute }, deps.hostIp, deps.podIp);
    return formatResult(buildResult(conf, env, hostVeth, podMac, addresses, prev), version);
  } catch (err) {
    store.release(attachment);
    throw err;
  }
}

/** Idempotent: a missing netns, interface or allocation is not an error. */
export async function del(conf: NetConf, _version: CniVersion, env: CniEnv, deps: VerbDeps): Promise<VerbOutput> {
  await deleteLink(hostVethName(env.containerId, env.ifname), deps.hostIp);
  storeOf(conf, []).release({ containerId: env.containerId, ifname: env.ifname });
  return undefined;
}

export async function check(conf: NetConf, version: CniVersion, env: CniEnv): Promise<VerbOutput> {
  if (compareVersions(version, '0.4.0') < 0) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, `CHECK is not defined for CNI version ${version}`);
  }
  const prev = parsePrevResult(conf.prevResult);
  if (!prev) throw new CniError(CniCode.INVALID_CONFIG, 'CHECK needs prevResult');
  requireNetns(env.netns);
  const podIndex = prev.interfaces.findIndex((i) => i.name === env.ifname && i.sandbox);
  const expected = prev.ips.filter((ip) => ip.interface === podIndex || (ip.interface === undefined && podIndex >= 0));
  const problems: string[] = [];
  if (podIndex < 0) problems.push(`prevResult has no interface ${env.ifname} in a sandbox`);

  const observed = await observePod(env.netns, env.ifname);
  if (!observed.linkExists) problems.push(`interface ${env.ifname} is missing in ${env.netns}`);
  if (observed.mtu !== undefined && observed.mtu !== conf.mtu) problems.push(`${env.ifname} has mtu ${observed.mtu}, expected ${conf.mtu}`);
  const podMacWanted = prev.interfaces[podIndex]?.mac;
  if (observed.linkExists && podMacWanted && observed.mac !== podMacWanted) problems.push(`${env.ifname} has mac ${observed.mac}, expected ${podMacWanted}`);
  for (const ip of expected) {
    if (!observed.addresses.includes(ip.address)) problems.push(`address ${ip.address} is missing on ${env.ifname}`);
  }
  const families = new Set(expected.map((ip) => familyOf(ip.address)));
  const hasRoute = (dst: string, gateway?: string): boolean => observed.routes.some((r) => r.dst === dst && r.gateway === gateway);
  if (families.has(4) && !hasRoute(POD_GATEWAY_V4)) problems.push(`route ${POD_GATEWAY_V4} dev ${env.ifname} scope link is missing`);
  for (const route of prev.routes) {
    const dst = route.dst === '0.0.0.0/0' || route.dst === '::/0' ? 'default' : route.dst;
    if (!hasRoute(dst, route.gw)) problems.push(`route ${route.dst}${route.gw ? ` via ${route.gw}` : ''} is missing in the pod`);
  }

  const hostVeth = hostVethName(env.containerId, env.ifname);
  const hostRoutes = await observeHostRoutes(hostVeth);
  for (const ip of expected) {
    if (!hostRoutes.includes(ip.address)) problems.push(`host route ${ip.address} dev ${hostVeth} proto lightly is missing`);
  }
  const allocated = storeOf(conf, []).lookup({ containerId: env.containerId, ifname: env.ifname }) ?? [];
  for (const ip of expected) {
    if (!allocated.includes(ip.address.split('/')[0]!)) problems.push(`address ${ip.address} is not allocated to this container in IPAM`);
  }
  if (problems.length > 0) throw new CniError(CniCode.CHECK_FAILED, `CHECK failed: ${problems[0]}`, problems.join('; '));
  return undefined;
}

function requireVersion(version: CniVersion, minimum: CniVersion, verb: string): void {
  if (compareVersions(version, minimum) < 0) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, `${verb} needs CNI version ${minimum} or later, config has ${version}`);
  }
}

/** Releases every allocation (and its host veth) that the runtime no longer lists as valid. */
export async function gc(conf: NetConf, version: CniVersion, _env: CniEnv, deps: VerbDeps): Promise<VerbOutput> {
  requireVersion(version, '1.1.0', 'GC');
  const valid = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'] ?? [];
  const keep = new Set(valid.map((a) => `${a.containerID}:${a.ifname}`));
  const store = storeOf(conf, []);
  for (const attachment of store.listAttachments()) {
    if (keep.has(`${attachment.containerId}:${attachment.ifname}`)) continue;
    await deleteLink(hostVethName(attachment.containerId, attachment.ifname), deps.hostIp);
    store.release(attachment);
  }
  return undefined;
}

/** Ready when the data dir is writable and every pool has a free address (code 50 otherwise). */
export async function status(conf: NetConf, version: CniVersion): Promise<VerbOutput> {
  requireVersion(version, '1.1.0', 'STATUS');
  const dir = join(conf.dataDir, conf.name);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new CniError(CniCode.NOT_AVAILABLE, `data dir ${dir} is not usable`, String(err));
  }
  let rangeSets: RangeSet[];
  try {
    rangeSets = await rangeSetsOf(conf);
  } catch (err) {
    throw new CniError(CniCode.NOT_AVAILABLE, `no address pool: ${(err as Error).message}`);
  }
  const free = storeOf(conf, rangeSets).freeCounts();
  const exhausted = free.findIndex((n) => n <= 0n);
  if (exhausted >= 0) {
    throw new CniError(CniCode.NOT_AVAILABLE, `address pool ${rangeSets[exhausted]!.map((r) => r.subnet).join(', ')} is exhausted`);
  }
  return undefined;
}

export function version(requested: string | undefined): VerbOutput {
  return { cniVersion: requested ?? LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}
