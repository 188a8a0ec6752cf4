// The CNI verbs, in the order the spec describes them. Kernel work lives in dataplane, addresses in ipam.
import { join } from 'node:path';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { CniCode, CniError } from './errors.js';
import type { CniEnv } from './env.js';
import {
  type CniResult,
  type CniVersion,
  type ResultRoute,
  type NetConf,
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
  compareVersions,
  formatResult,
  parsePrevResult,
} from './spec.js';
import { type RangeSet, parseRangeSets } from './ipam/pool.js';
import { IpamStore, attachmentKey } from './ipam/store.js';
import { withAttachmentLock } from './ipam/lock.js';
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
  podMac,
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
  /** Which namespace paths podIp can enter (the CNI server's view); all when absent. */
  netnsReachable?: (path: string) => boolean;
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
  requireNetns(env.netns, deps.netnsReachable);
  const prev = parsePrevResult(conf.prevResult);
  const store = storeOf(conf, rangeSets);
  const attachment = { containerId: env.containerId, ifname: env.ifname };
  return withAttachmentLock(store.dir, attachmentKey(attachment), async () => {
    const allocation = store.allocate(attachment);
    const addresses = allocation.ips.map(({ address, range }) => ({ address, family: range.family }));
    const hostVeth = hostVethName(env.containerId, env.ifname);
    const mac = podMac(hostVeth);
    if (!allocation.created) {
      // A repeated ADD: a healthy attachment is answered as it is, never rebuilt (that would drop
      // whatever was added to the interface since, e.g. by a later plugin of the chain).
      const ours = buildResult(conf, env, hostVeth, mac, addresses);
      if ((await problemsOf(conf, env, ours.ips.map((ip) => ip.address), ours.routes, mac)).length === 0) {
        return formatResult(buildResult(conf, env, hostVeth, mac, addresses, prev), version);
      }
    }
    try {
      await setupPod({ netns: env.netns, ifname: env.ifname, hostVeth, mtu: conf.mtu, addresses, defaultRoute: conf.defaultRoute }, deps.hostIp, deps.podIp);
      return formatResult(buildResult(conf, env, hostVeth, mac, addresses, prev), version);
    } catch (err) {
      // Only what this call allocated: addresses of an earlier ADD may be in use on its interface.
      if (allocation.created) store.release(attachment);
      throw err;
    }
  });
}

/** Idempotent: a missing netns, interface or allocation is not an error. */
export async function del(conf: NetConf, _version: CniVersion, env: CniEnv, deps: VerbDeps): Promise<VerbOutput> {
  const store = storeOf(conf, []);
  const attachment = { containerId: env.containerId, ifname: env.ifname };
  await withAttachmentLock(store.dir, attachmentKey(attachment), async () => {
    await deleteLink(hostVethName(env.containerId, env.ifname), deps.hostIp);
    store.release(attachment);
  });
  return undefined;
}

/**
 * What differs from what this plugin set up: the pod interface with its MAC, addresses and routes,
 * the host routes, the IPAM record. Other plugins of a chain may change the rest (tuning sets the
 * MTU, for one), so as ptp does we judge only what we made, against the result we reported.
 */
async function problemsOf(conf: NetConf, env: CniEnv, addresses: string[], routes: ResultRoute[], mac: string | undefined): Promise<string[]> {
  const problems: string[] = [];
  const observed = await observePod(env.netns, env.ifname);
  if (!observed.linkExists) problems.push(`interface ${env.ifname} is missing in ${env.netns}`);
  if (observed.linkExists && mac && observed.mac !== mac) problems.push(`${env.ifname} has mac ${observed.mac}, expected ${mac}`);
  for (const address of addresses) {
    if (!observed.addresses.includes(address)) problems.push(`address ${address} is missing on ${env.ifname}`);
  }
  const families = new Set(addresses.map(familyOf));
  const hasRoute = (dst: string, gateway?: string): boolean => observed.routes.some((r) => r.dst === dst && r.gateway === gateway);
  if (families.has(4) && !hasRoute(POD_GATEWAY_V4)) problems.push(`route ${POD_GATEWAY_V4} dev ${env.ifname} scope link is missing`);
  for (const route of routes) {
    const dst = route.dst === '0.0.0.0/0' || route.dst === '::/0' ? 'default' : route.dst;
    if (!hasRoute(dst, route.gw)) problems.push(`route ${route.dst}${route.gw ? ` via ${route.gw}` : ''} is missing in the pod`);
  }
  const hostVeth = hostVethName(env.containerId, env.ifname);
  const hostRoutes = await observeHostRoutes(hostVeth);
  for (const address of addresses) {
    if (!hostRoutes.includes(address)) problems.push(`host route ${address} dev ${hostVeth} proto lightly is missing`);
  }
  const allocated = storeOf(conf, []).lookup({ containerId: env.containerId, ifname: env.ifname }) ?? [];
  for (const address of addresses) {
    if (!allocated.includes(address.split('/')[0]!)) problems.push(`address ${address} is not allocated to this container in IPAM`);
  }
  return problems;
}

export async function check(conf: NetConf, version: CniVersion, env: CniEnv, deps: VerbDeps): Promise<VerbOutput> {
  if (compareVersions(version, '0.4.0') < 0) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, `CHECK is not defined for CNI version ${version}`);
  }
  const prev = parsePrevResult(conf.prevResult);
  if (!prev) throw new CniError(CniCode.INVALID_CONFIG, 'CHECK needs prevResult');
  requireNetns(env.netns, deps.netnsReachable);
  const podIndex = prev.interfaces.findIndex((i) => i.name === env.ifname && i.sandbox);
  const expected = prev.ips.filter((ip) => ip.interface === podIndex || (ip.interface === undefined && podIndex >= 0));
  const problems: string[] = [];
  if (podIndex < 0) problems.push(`prevResult has no interface ${env.ifname} in a sandbox`);
  problems.push(...(await problemsOf(conf, env, expected.map((ip) => ip.address), prev.routes, prev.interfaces[podIndex]?.mac)));
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
  // Without the list we cannot know what is valid; removing everything would cut every pod off.
  const valid = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'];
  if (!valid) return undefined;
  const keep = new Set(valid.map((a) => attachmentKey({ containerId: a.containerID, ifname: a.ifname })));
  const store = storeOf(conf, []);
  for (const attachment of store.listAttachments()) {
    const key = attachmentKey(attachment);
    if (keep.has(key)) continue;
    await withAttachmentLock(store.dir, key, async () => {
      await deleteLink(hostVethName(attachment.containerId, attachment.ifname), deps.hostIp);
      store.release(attachment);
    });
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

/** The versions we support, whatever the caller asked: its own when we have it, else the newest. */
export function version(requested: string | undefined): VerbOutput {
  const known = (SUPPORTED_VERSIONS as readonly (string | undefined)[]).includes(requested);
  return { cniVersion: known ? requested : LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}
