// The pod's kernel plumbing, Calico style: a veth pair, a /32 host route, a link-scope gateway.
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { CniCode, CniError } from './errors.js';
import { type IpRunner, IpBatchError, SpawnIpRunner, batchLines } from './ip-runner.js';
import { ROUTE_PROTOCOL } from '../routes/protocol-number.js';

/** The gateway every IPv4 pod routes through; the host end answers ARP for it by proxy. */
export const POD_GATEWAY_V4 = '169.254.1.1';
/** The host end's fixed MAC, so its IPv6 link-local (the pods' IPv6 gateway) is known too. */
export const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';
export const POD_GATEWAY_V6 = 'fe80::ecee:eeff:feee:eeee';

export interface PodAddress {
  address: string;
  family: 4 | 6;
}

export interface PodNetwork {
  netns: string;
  ifname: string;
  hostVeth: string;
  mtu: number;
  addresses: PodAddress[];
  defaultRoute: boolean;
}

/** `lxc` + 11 hex chars of a hash of the container id (and the interface, for secondary attachments). */
export function hostVethName(containerId: string, ifname: string): string {
  const key = ifname === 'eth0' ? containerId : `${containerId}/${ifname}`;
  return `lxc${createHash('sha256').update(key).digest('hex').slice(0, 11)}`;
}

/** A stable locally administered MAC for the pod end, derived from its name so ADD needs no read back. */
export function podMac(hostVeth: string): string {
  const bytes = createHash('sha256').update(`pod:${hostVeth}`).digest().subarray(0, 6);
  bytes[0] = (bytes[0]! & 0xfe) | 0x02; // unicast, locally administered
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function hostLength(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

/**
 * The `ip` commands run inside the pod's namespace, as argument vectors. The first creates the veth
 * from the pod's side with the host end placed straight into the host's namespace, so there is no
 * move and no window with a stray interface in the wrong place; the kernel will not bring the far
 * end up, so the host batch does that. The pod's interface name (any the kernel takes) always
 * follows `name` or `dev`, so ip never reads it as a keyword.
 */
export function podCommands(net: PodNetwork, podMacAddress: string, hostNetnsPath: string): string[][] {
  const mtu = String(net.mtu);
  const dev = ['dev', net.ifname];
  const commands = [
    ['link', 'add', 'name', net.ifname, 'mtu', mtu, 'address', podMacAddress, 'up', 'type', 'veth',
      'peer', 'name', net.hostVeth, 'mtu', mtu, 'address', HOST_VETH_MAC, 'netns', hostNetnsPath],
    ['link', 'set', 'dev', 'lo', 'up'],
  ];
  for (const { address, family } of net.addresses) {
    commands.push(['addr', 'add', `${address}/${hostLength(family)}`, ...dev, ...(family === 6 ? ['nodad'] : [])]);
  }
  const families = new Set(net.addresses.map((a) => a.family));
  if (families.has(4)) {
    // A secondary attachment appends its own gateway route beside the primary's identical one.
    commands.push(['route', net.defaultRoute ? 'add' : 'append', POD_GATEWAY_V4, ...dev, 'scope', 'link']);
    if (net.defaultRoute) commands.push(['route', 'add', 'default', 'via', POD_GATEWAY_V4, ...dev]);
  }
  if (families.has(6) && net.defaultRoute) commands.push(['route', 'add', '::/0', 'via', POD_GATEWAY_V6, ...dev]);
  return commands;
}

/** Lines for `ip -batch` in the host's namespace, once the veth exists: host end up, the /32 routes. */
export function hostBatch(net: PodNetwork): string[] {
  const lines = [`link set ${net.hostVeth} up`];
  for (const { address, family } of net.addresses) {
    lines.push(`route replace ${address}/${hostLength(family)} dev ${net.hostVeth} scope link proto ${ROUTE_PROTOCOL}`);
  }
  return lines;
}

function dataplaneError(what: string, err: unknown): CniError {
  if (err instanceof CniError) return err;
  const details = err instanceof IpBatchError ? err.lines.join('; ') : '';
  return new CniError(CniCode.DATAPLANE_FAILURE, `${what}: ${(err as Error).message}`, details);
}

function writeSysctl(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (err) {
    throw new CniError(CniCode.DATAPLANE_FAILURE, `cannot set ${path}`, String(err));
  }
}

/**
 * Where the host's net sysctls are writable. A container that is not privileged sees /proc/sys
 * read-only, so the DaemonSet mounts the host's /proc/sys/net at /host/proc/sys/net (as Cilium does)
 * and sets LIGHTLY_SYSCTL_NET to it. With hostNetwork both name the same namespace's settings.
 */
const sysctlNet = process.env.LIGHTLY_SYSCTL_NET || '/proc/sys/net';

/** The host end: answers ARP for the gateway by proxy at once, forwards, and skips IPv6 DAD. */
function tuneHostVeth(name: string): void {
  writeSysctl(`${sysctlNet}/ipv4/conf/${name}/proxy_arp`, '1');
  writeSysctl(`${sysctlNet}/ipv4/neigh/${name}/proxy_delay`, '0');
  writeSysctl(`${sysctlNet}/ipv4/conf/${name}/forwarding`, '1');
  if (existsSync(`${sysctlNet}/ipv6/conf/${name}`)) writeSysctl(`${sysctlNet}/ipv6/conf/${name}/accept_dad`, '0');
}

/**
 * How to run `ip` inside a pod's namespace. Runtimes usually pass a named namespace
 * (/var/run/netns/cni-…): `ip -n NAME` enters it itself, one exec instead of nsenter's two.
 */
export function ipIntoNetns(netnsPath: string): string[] {
  const name = namedNetns(netnsPath);
  return name ? ['ip', '-n', name] : ['nsenter', `--net=${netnsPath}`, 'ip'];
}

/** The name of a namespace that `ip netns` manages (/run/netns/NAME), when the path is one and the name a plain token. */
export function namedNetns(netnsPath: string): string | undefined {
  const name = /^\/(?:var\/)?run\/netns\/([A-Za-z0-9_.-]+)$/.exec(netnsPath)?.[1];
  return name && name !== '.' && name !== '..' ? name : undefined;
}

/** Gives an IpRunner inside the pod namespace at this path. */
export type PodIpRunners = (netnsPath: string) => IpRunner;

/** A process per call, as the in-process plugin runs it. */
export const spawnPodIp: PodIpRunners = (netnsPath) => new SpawnIpRunner(ipIntoNetns(netnsPath));

/** The namespace is not one this process can enter as the runtime means it: run the plugin where the runtime is. */
export class NetnsElsewhere extends Error {
  override name = 'NetnsElsewhere';
}

/** `reachable` is the CNI server's test of which namespace paths it sees as the runtime does. */
export function requireNetns(netns: string, reachable?: (path: string) => boolean): void {
  if (reachable && !reachable(netns)) throw new NetnsElsewhere(`network namespace ${netns} is not reachable from here`);
  if (!existsSync(netns)) throw new CniError(CniCode.UNKNOWN_CONTAINER, `network namespace ${netns} does not exist`);
}

/**
 * Creates the pod's plumbing with one new process (the batch inside the pod); the host side goes
 * through `hostIp`, which in the CNI server is a long-lived ip process. On any failure the host end
 * is deleted (which deletes its peer), so nothing half-made is left behind.
 */
export async function setupPod(net: PodNetwork, hostIp: IpRunner, podIp: PodIpRunners = spawnPodIp): Promise<{ podMac: string }> {
  const mac = podMac(net.hostVeth);
  const inPod = podIp(net.netns);
  // Our own namespace by pid: inside nsenter, /proc/self would be the pod's.
  const commands = podCommands(net, mac, `/proc/${process.pid}/ns/net`);
  const lines = batchLines(commands);
  // A name ip's batch reader would split or cut ('#' starts a comment there) goes as arguments.
  const runInPod = (): Promise<void> => (lines ? inPod.batch(lines) : new SpawnIpRunner(ipIntoNetns(net.netns)).each(commands));
  const createInPod = async (): Promise<void> => {
    try {
      await runInPod();
    } catch (err) {
      await deleteLink(net.hostVeth, hostIp); // the batch may have failed after creating the veth
      throw dataplaneError(`cannot set up ${net.ifname} in ${net.netns}`, err);
    }
  };
  try {
    await createInPod();
  } catch (err) {
    // "File exists": a leftover host end of an earlier, interrupted ADD, deleted above; one retry.
    if (!/File exists/.test((err as Error).message)) throw err;
    await createInPod();
  }
  try {
    tuneHostVeth(net.hostVeth);
    await hostIp.batch(hostBatch(net));
  } catch (err) {
    await deleteLink(net.hostVeth, hostIp);
    throw dataplaneError(`cannot set up ${net.hostVeth}`, err);
  }
  return { podMac: mac };
}

/** Deletes the host end (and so its peer and the host routes through it). Missing is fine. */
export async function deleteLink(name: string, hostIp: IpRunner): Promise<void> {
  try {
    await hostIp.batch([`link del ${name}`]);
  } catch (err) {
    if (!/Cannot find device/.test((err as Error).message)) throw dataplaneError(`cannot delete ${name}`, err);
  }
}

export interface ObservedPod {
  linkExists: boolean;
  mac?: string;
  mtu?: number;
  addresses: string[];
  routes: { dst: string; gateway?: string; scope?: string }[];
}

interface IpJsonAddr {
  address?: string;
  mtu?: number;
  addr_info?: { local: string; prefixlen: number }[];
}
interface IpJsonRoute {
  dst: string;
  gateway?: string;
  scope?: string;
  protocol?: string;
  dev?: string;
}

async function ipJson<T>(args: string[], netns?: string): Promise<T | undefined> {
  const [cmd, full] = netns ? ['nsenter', [`--net=${netns}`, 'ip', '-json', ...args]] : ['ip', ['-json', ...args]];
  const out = await execa(cmd, full, { reject: false });
  if (out.exitCode !== 0) return undefined;
  // ip prints control characters of names (the kernel allows them) raw, which JSON does not.
  const text = out.stdout.trim().replace(/[\u0000-\u001f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return text ? (JSON.parse(text) as T) : undefined;
}

/** Reads back what the pod's namespace holds, for CHECK. */
export async function observePod(netns: string, ifname: string): Promise<ObservedPod> {
  const links = await ipJson<IpJsonAddr[]>(['addr', 'show', 'dev', ifname], netns);
  const link = links?.[0];
  if (!link) return { linkExists: false, addresses: [], routes: [] };
  const v4 = (await ipJson<IpJsonRoute[]>(['-4', 'route', 'show', 'dev', ifname], netns)) ?? [];
  const v6 = (await ipJson<IpJsonRoute[]>(['-6', 'route', 'show', 'dev', ifname], netns)) ?? [];
  return {
    linkExists: true,
    mac: link.address,
    mtu: link.mtu,
    addresses: (link.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
    routes: [...v4, ...v6].map((r) => ({ dst: r.dst, gateway: r.gateway, scope: r.scope })),
  };
}

/** The host routes through a host veth with our protocol, as `address/len` strings. */
export async function observeHostRoutes(hostVeth: string): Promise<string[]> {
  const routes = [
    ...((await ipJson<IpJsonRoute[]>(['-4', 'route', 'show', 'dev', hostVeth, 'proto', String(ROUTE_PROTOCOL)])) ?? []),
    ...((await ipJson<IpJsonRoute[]>(['-6', 'route', 'show', 'dev', hostVeth, 'proto', String(ROUTE_PROTOCOL)])) ?? []),
  ];
  return routes.map((r) => (r.dst.includes('/') ? r.dst : `${r.dst}/${r.dst.includes(':') ? 128 : 32}`));
}
