// The doctor's thin I/O layer: what this node's kernel says about one pod-to-pod path (`ip -json`,
// sysctls), plus the speaker's RIB and peers. Runs in the agent, i.e. in the host's network namespace.
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { TABLE, counterPackets, dropRuleMatch } from '../policy/nft.js';
import { type DirectionVerdict, type FactsQuery, type FlowPort, type LinkFact, type NodeFacts, type PathFacts, type PodFacts, type PolicyFacts, type RouteFact, type RouteGet, flowPortSchema, linkSchema, prefixLength } from './facts.js';

/** What the agent itself knows, handed to `gatherFacts`. */
export interface AgentView {
  node: string;
  address: string;
  podCIDRs: string[];
  natOutgoing: boolean;
  clusterCIDRs: string[];
  peers: { address: string; state: string; info?: string }[];
  /** The speaker's longest-prefix match for an address, and whether the import filter takes a prefix. */
  rib(address: string): { prefix?: string; best?: { peer: string; nextHop: string; stale: boolean }; importAllowed: boolean };
  /** NetworkPolicy's verdicts from the compiled model; absent when this node enforces none. */
  policy?(local: string, remote: string, port?: FlowPort): PolicyFacts;
}

/** Every command has a deadline: a doctor that hangs is worse than none. */
const IP_TIMEOUT_MS = 3_000;
/** Named namespaces looked through for a pod address when its veth names none. */
const MAX_NETNS_SCAN = 512;

interface IpRoute {
  dst: string;
  type?: string;
  dev?: string;
  gateway?: string;
  protocol?: string;
  nexthops?: { gateway?: string; dev?: string }[];
}
interface IpLink {
  ifindex?: number;
  ifname: string;
  /** A veth's peer: its ifindex, in the namespace link_netnsid names. */
  link_index?: number;
  flags?: string[];
  mtu: number;
  link_netnsid?: number;
  addr_info?: { family?: string; local: string; scope?: string }[];
}

/** `ip` lists one family at a time where the address does not say which (`route show`, `neigh show`). */
const familyFlag = (address: string): '-4' | '-6' => (address.includes(':') ? '-6' : '-4');

async function ip<T>(args: string[], netns?: string): Promise<{ rows?: T; error?: string }> {
  const out = await execa('ip', [...(netns ? ['-n', netns] : []), '-json', ...args], { reject: false, timeout: IP_TIMEOUT_MS });
  if (out.exitCode !== 0) return { error: (out.stderr || `ip exited ${out.exitCode}`).replace(/^RTNETLINK answers: /, '').trim() };
  const text = out.stdout.trim();
  return { rows: text ? (JSON.parse(text) as T) : undefined };
}

function sysctl(path: string): number | undefined {
  try {
    return Number(readFileSync(`/proc/sys/net/${path}`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

function routeFact(r: IpRoute): RouteFact {
  const gateways = r.gateway ? [r.gateway] : (r.nexthops ?? []).flatMap((h) => (h.gateway ? [h.gateway] : []));
  return { dst: r.dst, type: r.type ?? 'unicast', gateways, ...(r.dev ? { dev: r.dev } : {}), ...(r.protocol ? { protocol: r.protocol } : {}) };
}

async function routeGet(args: string[]): Promise<RouteGet> {
  const { rows, error } = await ip<IpRoute[]>(['route', 'get', ...args]);
  const r = rows?.[0];
  if (!r) return { ok: false, error: error ?? 'no answer' };
  return { ok: true, type: r.type ?? 'unicast', ...(r.dev ? { dev: r.dev } : {}), ...(r.gateway ? { gateway: r.gateway } : {}) };
}

/** The most specific route covering the address, whatever its protocol or type. */
async function coveringRoute(address: string): Promise<RouteFact | undefined> {
  const { rows } = await ip<IpRoute[]>([familyFlag(address), 'route', 'show', 'match', address]);
  const best = (rows ?? []).reduce<IpRoute | undefined>((a, r) => (!a || prefixLength(r.dst) > prefixLength(a.dst) ? r : a), undefined);
  return best && routeFact(best);
}

/** A link with its addresses (`addr show` lists the link's flags too): a host veth's IPv6 link-local is the pods' IPv6 gateway. */
async function link(name: string, netns?: string): Promise<(LinkFact & { netnsId?: number }) | undefined> {
  const { rows } = await ip<IpLink[]>(['addr', 'show', 'dev', name], netns);
  const l = rows?.[0];
  if (!l) return undefined;
  const proxyArp = netns ? undefined : sysctl(`ipv4/conf/${name}/proxy_arp`);
  const linkLocal = (l.addr_info ?? []).filter((a) => a.family === 'inet6' && a.scope === 'link').map((a) => a.local);
  return {
    name: l.ifname, up: (l.flags ?? []).includes('UP'), mtu: l.mtu, ...(proxyArp !== undefined ? { proxyArp } : {}), ...(netns ? {} : { linkLocal }),
    ...(l.link_netnsid !== undefined ? { netnsId: l.link_netnsid } : {}),
  };
}

/** The named namespace holding `address`: the one the veth's peer lives in, else the first whose addresses include it. */
async function podNetns(address: string, netnsId: number | undefined): Promise<string | undefined> {
  const { rows } = await ip<{ name: string; id?: number }[]>(['netns', 'list']);
  const named = rows ?? [];
  const byId = netnsId === undefined ? undefined : named.find((n) => n.id === netnsId);
  if (byId) return byId.name;
  for (const { name } of named.slice(0, MAX_NETNS_SCAN)) {
    const addrs = await ip<IpLink[]>(['addr', 'show'], name);
    if ((addrs.rows ?? []).some((l) => (l.addr_info ?? []).some((a) => a.local === address))) return name;
  }
  return undefined;
}

async function podFacts(address: string): Promise<PodFacts> {
  const family = familyFlag(address);
  const host = (await ip<IpRoute[]>([family, 'route', 'show', 'exact', address.includes(':') ? `${address}/128` : `${address}/32`])).rows?.[0];
  const hostRoute = host && routeFact(host);
  let veth = hostRoute?.dev ? await link(hostRoute.dev) : undefined;
  const netns = await podNetns(address, veth?.netnsId);
  const eth0 = netns ? (await ip<IpLink[]>(['link', 'show', 'dev', 'eth0'], netns)).rows?.[0] : undefined;
  // No host route (a veth taken down loses it): the veth is still found as the peer of the pod's eth0.
  if (!veth && eth0?.link_index !== undefined) {
    const peer = ((await ip<IpLink[]>(['link', 'show'])).rows ?? []).find((l) => l.ifindex === eth0.link_index);
    if (peer) veth = await link(peer.ifname);
  }
  // The schema keeps the fact's fields and leaves the veth's netnsId (ours only) behind.
  const facts: PodFacts = { ip: address, ...(hostRoute ? { hostRoute } : {}), ...(veth ? { veth: linkSchema.parse(veth) } : {}) };
  if (!netns) return facts;
  // The family's own default route and neighbour entry: ARP for 169.254.1.1, NDP for the veth's fe80:: address.
  const gateway = (await ip<IpRoute[]>([family, 'route', 'show', 'default'], netns)).rows?.[0]?.gateway;
  const neighbor = gateway ? (await ip<{ state?: string[] }[]>([family, 'neigh', 'show', gateway, 'dev', 'eth0'], netns)).rows?.[0]?.state?.[0] : undefined;
  return {
    ...facts,
    netns,
    ...(eth0 ? { eth0: { name: eth0.ifname, up: (eth0.flags ?? []).includes('UP'), mtu: eth0.mtu } } : {}),
    ...(gateway ? { defaultGateway: gateway } : {}),
    ...(neighbor ? { gatewayNeighbor: neighbor } : {}),
  };
}

/**
 * The route towards the other pod and the way its packets come in. The uplink they arrive on is the
 * device towards the other node (when named) or towards our next hop; the kernel's own input lookup
 * (`ip route get … iif`) then applies rp_filter exactly as it would to a real packet.
 */
async function pathFacts(view: AgentView, query: FactsQuery): Promise<PathFacts> {
  const { remote, local } = query;
  const [get, route] = await Promise.all([routeGet([remote]), coveringRoute(remote)]);
  const rib = view.rib(remote);
  const gateways = [...new Set([...(rib.best ? [rib.best.nextHop] : []), ...(route?.gateways ?? [])])];
  const nextHops = await Promise.all(
    gateways.map(async (address) => {
      const neighbor = (await ip<{ state?: string[] }[]>(['neigh', 'show', address])).rows?.[0]?.state?.[0];
      return { address, routeGet: await routeGet([address]), ...(neighbor ? { neighbor } : {}) };
    }),
  );
  const towards = query.remoteNode ? await routeGet([query.remoteNode]) : nextHops[0]?.routeGet;
  const iif = towards?.dev;
  let ingress: PathFacts['ingress'];
  if (iif) {
    const uplink = await link(iif);
    // rp_filter is IPv4's alone; IPv6 forwards only with net.ipv6.conf.all.forwarding=1 (the global switch decides).
    const check = remote.includes(':')
      ? { forwarding6: sysctl('ipv6/conf/all/forwarding') ?? 0 }
      : { rpFilter: Math.max(sysctl('ipv4/conf/all/rp_filter') ?? 0, sysctl(`ipv4/conf/${iif}/rp_filter`) ?? 0) };
    const [validated, unvalidated] = await Promise.all([routeGet([local, 'from', remote, 'iif', iif]), routeGet([local])]);
    ingress = { iif, ...check, mtu: uplink?.mtu ?? 0, routeGet: validated, unvalidated };
  }
  return { ip: remote, routeGet: get, ...(route ? { route } : {}), rib, nextHops, ...(ingress ? { ingress } : {}) };
}

/**
 * The kernel's side of a denied verdict: the rule of our table that drops the flow, as `nft -a` lists
 * it (one chain, so cheap) with the packets its counter dropped so far, or that the table is missing
 * (then nothing drops it: the model and the kernel disagree, and the operator should know).
 */
async function dropRule(direction: 'ingress' | 'egress', verdict: DirectionVerdict, local: string): Promise<Pick<DirectionVerdict, 'kernel' | 'dropped'>> {
  const { chain, mark } = dropRuleMatch(direction, !!verdict.pending, local.includes(':'));
  const out = await execa('nft', ['-a', 'list', 'chain', 'inet', TABLE, chain], { reject: false, timeout: IP_TIMEOUT_MS });
  if (out.exitCode !== 0) return { kernel: `nft list chain inet ${TABLE} ${chain}: ${out.stderr.trim() || out.shortMessage}` };
  const line = out.stdout.split('\n').map((l) => l.trim()).find((l) => l.includes(mark));
  if (!line) return { kernel: `no drop rule in chain ${chain} of inet ${TABLE}` };
  const dropped = counterPackets(line);
  return { kernel: `chain ${chain} of inet ${TABLE}: ${line}`, ...(dropped !== undefined ? { dropped } : {}) };
}

async function policyFacts(view: AgentView, query: FactsQuery): Promise<PolicyFacts> {
  if (!view.policy) return { enforced: false, reason: 'this node enforces no NetworkPolicy (standalone mode, or networkPolicy.enabled: false)' };
  const facts = view.policy(query.local, query.remote, query.port === undefined ? undefined : flowPortSchema.parse(query.port));
  if (!('egress' in facts)) return facts;
  const [egress, ingress] = await Promise.all((['egress', 'ingress'] as const).map(async (d) => (facts[d].allowed ? facts[d] : { ...facts[d], ...(await dropRule(d, facts[d], query.local)) })));
  return { ...facts, egress: egress!, ingress: ingress! };
}

export async function gatherFacts(view: AgentView, query: FactsQuery): Promise<NodeFacts> {
  const [local, remote, policy] = await Promise.all([podFacts(query.local), pathFacts(view, query), policyFacts(view, query)]);
  return {
    node: view.node, address: view.address, podCIDRs: view.podCIDRs, natOutgoing: view.natOutgoing, clusterCIDRs: view.clusterCIDRs,
    peers: view.peers, local, remote, policy,
  };
}
