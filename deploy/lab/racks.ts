// The rack lab (`lightly-lab up --racks R --tor frr|bird`), the RFC 7938 layout: each rack a ToR namespace
// (its own AS) bridging its nodes, the ToRs peered with one spine namespace (its own AS); every node
// its own AS and peering with its ToR only. Plan (pure), router configs from the templates, build.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RouterFiles, birdc, startBird, startFrr, vtysh } from './routers.js';
import { addBridgeNamespace, ipBatch, run } from './shell.js';
import { isDualStack } from './ip-families.js';
import { renderTemplate } from './template.js';
import type { LabNode, LabOptions, LabPlan } from './topology.js';

export type RouterKind = 'bird' | 'frr';

export interface RackPlan {
  index: number;
  name: string;
  torNetns: string;
  torAsn: number;
  /** The ToR on the rack's subnet: the nodes' peer and default gateway. */
  rackAddress: string;
  rackSubnet: string;
  /** The ToR's end of its link to the spine, and the spine's. */
  uplinkAddress: string;
  spineAddress: string;
  /** Their IPv6 twins, given to the links in a dual-stack lab (documentation space, RFC 3849). */
  rackAddress6: string;
  rackSubnet6: string;
  uplinkAddress6: string;
  spineAddress6: string;
}

export interface FabricPlan {
  tor: RouterKind;
  spine: RouterKind;
  spineNetns: string;
  spineAsn: number;
  racks: RackPlan[];
  /** TCP MD5 passwords (RFC 2385): node–ToR sessions, and ToR–spine sessions. */
  nodePassword: string;
  fabricPassword: string;
}

export const SPINE_ASN = 65200;
export const RACK_TOR_ASN = 65100;

/** Pure: the fabric of `options.racks` racks. Passwords are random per lab. */
export function planFabric(options: LabOptions, random: () => string = () => randomBytes(12).toString('hex')): FabricPlan {
  const racks = options.racks!;
  if (!Number.isInteger(racks) || racks < 1 || racks > 50) throw new Error('--racks must be between 1 and 50');
  if (options.nodes < racks) throw new Error('--racks needs at least one node per rack');
  if (options.tor === 'mesh') throw new Error('--racks needs --tor frr or --tor bird');
  return {
    tor: options.tor,
    spine: options.spine ?? options.tor,
    spineNetns: `${options.prefix}spine`,
    spineAsn: SPINE_ASN,
    nodePassword: `lab-node-${random()}`,
    fabricPassword: `lab-fabric-${random()}`,
    racks: Array.from({ length: racks }, (_, i) => {
      const index = i + 1;
      return {
        index,
        name: `tor-${index}`,
        torNetns: `${options.prefix}tor-${index}`,
        torAsn: RACK_TOR_ASN + index,
        rackAddress: `10.1.${index}.254`,
        rackSubnet: `10.1.${index}.0/24`,
        uplinkAddress: `10.255.${index}.1`,
        spineAddress: `10.255.${index}.2`,
        rackAddress6: `${rackPrefix6(index)}fe`,
        rackSubnet6: `${rackPrefix6(index)}/64`,
        uplinkAddress6: `2001:db8:ff:${index}::1`,
        spineAddress6: `2001:db8:ff:${index}::2`,
      };
    }),
  };
}

/** Pure: node i's rack, the nodes spread over the racks in order (4 nodes, 2 racks: 1 2 | 3 4). */
export function rackOf(options: LabOptions, index: number): number {
  return Math.floor(((index - 1) * options.racks!) / options.nodes) + 1;
}

/** Pure: node i's address on its rack's subnet. */
export function rackNodeAddress(options: LabOptions, index: number): string {
  return `10.1.${rackOf(options, index)}.${index}`;
}

/** Rack r's IPv6 subnet 2001:db8:1:r::/64, beside 10.1.r.0/24. */
const rackPrefix6 = (rack: number): string => `2001:db8:1:${rack}::`;

/** Pure: node i's IPv6 address on its rack's subnet (dual stack). */
export function rackNodeAddress6(options: LabOptions, index: number): string {
  return `${rackPrefix6(rackOf(options, index))}${index}`;
}

/** Pure: the one peer of a node in a rack, its ToR, with the session's password. */
export function rackPeers(plan: LabPlan, node: LabNode): Record<string, unknown>[] {
  const fabric = plan.fabric!;
  const rack = fabric.racks[rackOf(plan.options, node.index) - 1]!;
  return [{ address: rack.rackAddress, asn: rack.torAsn, type: 'global', password: fabric.nodePassword }];
}

/** Where the templates are: beside this module (source) or in the repository from a bundle in dist/bin. */
function templateDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const found = [join(here, 'templates'), resolve(here, '../../deploy/lab/templates'), resolve('deploy/lab/templates')].find((d) => existsSync(d));
  if (!found) throw new Error('cannot find deploy/lab/templates');
  return found;
}

export function readTemplate(role: 'tor' | 'spine', kind: RouterKind): string {
  return readFileSync(join(templateDir(), `${role}.${kind}.conf`), 'utf8');
}

/**
 * The templates' `{{#ipv6}}` blocks: once in a dual-stack lab (the IPv6 family on the same IPv4
 * sessions, RFC 4760), never otherwise. Their values are the outer ones.
 */
const ipv6Block = (plan: LabPlan): Record<string, never>[] => (isDualStack(plan.options) ? [{}] : []);

/** Pure: a ToR's config from its template. */
export function torConfig(plan: LabPlan, rack: RackPlan, template: string): string {
  const fabric = plan.fabric!;
  const nodes = plan.nodes.filter((n) => rackOf(plan.options, n.index) === rack.index);
  return renderTemplate(template, {
    name: rack.name, asn: rack.torAsn, routerId: rack.uplinkAddress, rackAddress: rack.rackAddress, uplinkAddress: rack.uplinkAddress,
    spineAddress: rack.spineAddress, spineAsn: fabric.spineAsn, holdTime: Math.max(3, plan.options.holdTime),
    nodePassword: fabric.nodePassword, fabricPassword: fabric.fabricPassword,
    nodes: nodes.map((n) => ({ protocol: n.name.replace(/-/g, '_'), address: n.address, nodeAsn: n.asn })),
    ipv6: ipv6Block(plan),
  });
}

/** Pure: the spine's config from its template. */
export function spineConfig(plan: LabPlan, template: string): string {
  const fabric = plan.fabric!;
  return renderTemplate(template, {
    name: 'spine', asn: fabric.spineAsn, routerId: '10.255.0.1', holdTime: Math.max(3, plan.options.holdTime), fabricPassword: fabric.fabricPassword,
    tors: fabric.racks.map((r) => ({ protocol: r.name.replace(/-/g, '_'), localAddress: r.spineAddress, address: r.uplinkAddress, torAsn: r.torAsn })),
    ipv6: ipv6Block(plan),
  });
}

const forwarding = (netns: string) => run('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);

/**
 * The spine and each rack's ToR namespace: a bridge for the rack's nodes, a link to the spine. In dual
 * stack each gets its IPv6 address too (before the routers start: FRR takes an IPv6 next hop from the
 * interface of an IPv4 session, and without a global one there sends an IPv4-mapped address).
 */
export async function buildFabricOfRacks(plan: LabPlan): Promise<void> {
  const fabric = plan.fabric!;
  const v6 = (address: string, dev: string): string[] => (isDualStack(plan.options) ? [`addr add ${address}/64 dev ${dev} nodad`] : []);
  await run('ip', ['netns', 'add', fabric.spineNetns]);
  await ipBatch(fabric.spineNetns, ['link set lo up']);
  await forwarding(fabric.spineNetns);
  for (const rack of fabric.racks) {
    await addBridgeNamespace(rack.torNetns, rack.rackAddress, v6(rack.rackAddress6, 'br0'));
    await ipBatch(rack.torNetns, [
      `link add up0 type veth peer name ${rack.name} netns ${fabric.spineNetns}`,
      `addr add ${rack.uplinkAddress}/24 dev up0`,
      ...v6(rack.uplinkAddress6, 'up0'),
      'link set up0 up',
    ]);
    await ipBatch(fabric.spineNetns, [`addr add ${rack.spineAddress}/24 dev ${rack.name}`, ...v6(rack.spineAddress6, rack.name), `link set ${rack.name} up`]);
    await forwarding(rack.torNetns);
  }
}

/** Pure: the segment a node of a rack joins: its ToR's bridge, the ToR its gateway (of each family). */
export function rackSegment(plan: LabPlan, node: LabNode): { netns: string; gateway: string; gateway6: string } {
  const rack = plan.fabric!.racks[rackOf(plan.options, node.index) - 1]!;
  return { netns: rack.torNetns, gateway: rack.rackAddress, gateway6: rack.rackAddress6 };
}

/** Where a router of the lab keeps its files. */
export const routerFiles = (plan: LabPlan, name: string): RouterFiles => ({ dir: join(plan.options.stateDir, 'routers'), name });

async function startRouter(kind: RouterKind, netns: string, files: RouterFiles, conf: string): Promise<number[]> {
  return kind === 'bird' ? [await startBird(netns, files, conf)] : startFrr(netns, files, conf, { zebra: true });
}

/** The spine, then each ToR, from the templates; `started` hears each daemon's pid at once (so a failure later still stops it). */
export async function startFabricRouters(plan: LabPlan, started: (pids: number[]) => void): Promise<void> {
  const fabric = plan.fabric!;
  // FRR runs as the frr user: it must pass through the state directory to its own (0700) one.
  mkdirSync(routerFiles(plan, '').dir, { recursive: true });
  for (const dir of [plan.options.stateDir, routerFiles(plan, '').dir]) chmodSync(dir, 0o711);
  started(await startRouter(fabric.spine, fabric.spineNetns, routerFiles(plan, 'spine'), spineConfig(plan, readTemplate('spine', fabric.spine))));
  for (const rack of fabric.racks) started(await startRouter(fabric.tor, rack.torNetns, routerFiles(plan, rack.name), torConfig(plan, rack, readTemplate('tor', fabric.tor))));
}

/** The AS path of a router's best route for `prefix` ('' when it has none), as the router shows it. */
export async function torAsPath(plan: LabPlan, rack: RackPlan, prefix: string): Promise<string> {
  const files = routerFiles(plan, rack.name);
  if (plan.fabric!.tor === 'bird') {
    const out = await birdc(files, 'show', 'route', 'for', prefix, 'primary', 'all').catch(() => '');
    return /BGP\.as_path:\s*([\d ]*)/.exec(out)?.[1]?.trim() ?? '';
  }
  const family = prefix.includes(':') ? 'ipv6' : 'ipv4';
  const out = JSON.parse(await vtysh(rack.torNetns, files, `show bgp ${family} unicast ${prefix} json`)) as { paths?: { aspath?: { string?: string }; bestpath?: { overall?: boolean } }[] };
  return out.paths?.find((p) => p.bestpath?.overall)?.aspath?.string ?? '';
}
