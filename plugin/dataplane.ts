// The pod's kernel plumbing, Calico style: a veth pair, a /32 host route, a link-scope gateway.
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { CniCode, CniError } from './errors.js';
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

/** Lines for `ip -batch` run inside the pod's namespace. */
export function podBatch(net: PodNetwork): string[] {
  const lines = ['link set lo up', `link set ${net.ifname} up`];
  for (const { address, family } of net.addresses) {
    lines.push(`addr add ${address}/${hostLength(family)} dev ${net.ifname}${family === 6 ? ' nodad' : ''}`);
  }
  const families = new Set(net.addresses.map((a) => a.family));
  if (families.has(4)) {
    // A secondary attachment appends its own gateway route beside the primary's identical one.
    lines.push(`route ${net.defaultRoute ? 'add' : 'append'} ${POD_GATEWAY_V4} dev ${net.ifname} scope link`);
    if (net.defaultRoute) lines.push(`route add default via ${POD_GATEWAY_V4} dev ${net.ifname}`);
  }
  if (families.has(6) && net.defaultRoute) lines.push(`-6 route add default via ${POD_GATEWAY_V6} dev ${net.ifname}`);
  return lines;
}

/** Lines for `ip -batch` run in the host's namespace: the veth, created with its pod end in place, and the /32s. */
export function hostBatch(net: PodNetwork, podMacAddress: string): string[] {
  const lines = [
    `link add ${net.hostVeth} mtu ${net.mtu} address ${HOST_VETH_MAC} type veth peer name ${net.ifname} mtu ${net.mtu} address ${podMacAddress} netns ${net.netns}`,
    `link set ${net.hostVeth} up`,
  ];
  for (const { address, family } of net.addresses) {
    lines.push(`route replace ${address}/${hostLength(family)} dev ${net.hostVeth} scope link proto ${ROUTE_PROTOCOL}`);
  }
  return lines;
}

async function ipBatch(lines: string[], netns?: string): Promise<void> {
  const [cmd, args] = netns ? ['nsenter', [`--net=${netns}`, 'ip', '-batch', '-']] : ['ip', ['-batch', '-']];
  const result = await execa(cmd, args, { input: lines.join('\n') + '\n', reject: false });
  if (result.exitCode !== 0) {
    throw new CniError(CniCode.DATAPLANE_FAILURE, `ip -batch failed${netns ? ` in ${netns}` : ''}: ${result.stderr.trim()}`, lines.join('; '));
  }
}

function writeSysctl(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (err) {
    throw new CniError(CniCode.DATAPLANE_FAILURE, `cannot set ${path}`, String(err));
  }
}

/** The host end: answers ARP for the gateway by proxy at once, forwards, and skips IPv6 DAD. */
function tuneHostVeth(name: string): void {
  writeSysctl(`/proc/sys/net/ipv4/conf/${name}/proxy_arp`, '1');
  writeSysctl(`/proc/sys/net/ipv4/neigh/${name}/proxy_delay`, '0');
  writeSysctl(`/proc/sys/net/ipv4/conf/${name}/forwarding`, '1');
  if (existsSync(`/proc/sys/net/ipv6/conf/${name}`)) writeSysctl(`/proc/sys/net/ipv6/conf/${name}/accept_dad`, '0');
}

export function requireNetns(netns: string): void {
  if (!existsSync(netns)) throw new CniError(CniCode.UNKNOWN_CONTAINER, `network namespace ${netns} does not exist`);
}

/**
 * Creates the pod's plumbing. The veth is created with each end already in its final namespace,
 * so there is no move and no window with a stray interface on the host. On any failure the host
 * end is deleted (which deletes its peer), so nothing half-made is left behind.
 */
export async function setupPod(net: PodNetwork): Promise<{ podMac: string }> {
  requireNetns(net.netns);
  const mac = podMac(net.hostVeth);
  // Two processes in all: one batch on the host side, one inside the pod.
  const createVeth = async (): Promise<void> => {
    try {
      await ipBatch(hostBatch(net, mac));
    } catch (err) {
      await deleteLink(net.hostVeth); // the batch may have failed after creating the link
      throw err;
    }
  };
  try {
    await createVeth();
  } catch (err) {
    // "File exists": a leftover of an earlier, interrupted ADD, removed above; one retry.
    if (!(err instanceof CniError && /File exists/.test(err.message))) throw err;
    await createVeth();
  }
  try {
    tuneHostVeth(net.hostVeth);
    await ipBatch(podBatch(net), net.netns);
  } catch (err) {
    await deleteLink(net.hostVeth);
    throw err;
  }
  return { podMac: mac };
}

/**
 * Deletes the host end (and so its peer and the host routes through it). Missing is fine. Asks the
 * kernel rather than /sys, which shows another namespace when we were entered with nsenter.
 */
export async function deleteLink(name: string): Promise<boolean> {
  const del = await execa('ip', ['link', 'del', name], { reject: false });
  if (del.exitCode !== 0 && !/Cannot find device/.test(del.stderr)) {
    throw new CniError(CniCode.DATAPLANE_FAILURE, `cannot delete ${name}: ${del.stderr.trim()}`);
  }
  return del.exitCode === 0;
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
  return out.stdout.trim() ? (JSON.parse(out.stdout) as T) : undefined;
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
