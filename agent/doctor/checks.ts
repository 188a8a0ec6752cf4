// `lightlyctl doctor`'s pure core: facts from the source and destination nodes in, the path's checks
// hop by hop out (ok/FAIL with the evidence), and the first broken hop with its fix in one sentence.
import { contains } from '../../bgp/policy/policy.js';
import { POD_GATEWAY_V6 } from '../../plugin/dataplane.js';
import { type NodeFacts, type PodFacts, type RouteFact, type RouteGet, flowPortSchema, prefixLength } from './facts.js';

export interface Check {
  /** Stable name of the hop, for scripts and tests. */
  id: string;
  node: string;
  title: string;
  status: 'ok' | 'FAIL';
  evidence: string;
  /** One sentence saying what to do; set when the check fails. */
  fix?: string;
}

export interface Diagnosis {
  from: string;
  to: string;
  /** `--port` as given (N/proto); absent: any port, the policy question being whether any traffic passes. */
  port?: string;
  ok: boolean;
  checks: Check[];
  /** The first check that failed, walking from the source pod to the destination pod and back. */
  firstBroken?: Check;
  summary: string;
}

/** The destination node's facts, or why they could not be had and what to run on that node instead. */
export type DestinationFacts = { facts: NodeFacts } | { unreachable: string; node: string; fix: string };

const hostPrefix = (ip: string): string => `${ip}/${ip.includes(':') ? 128 : 32}`;
const inside = (ip: string, cidrs: string[]): boolean => cidrs.some((c) => contains(c, hostPrefix(ip)));
const describeRoute = (r: RouteFact): string =>
  [r.type === 'unicast' ? '' : r.type, r.dst, ...r.gateways.map((g) => `via ${g}`), r.dev ? `dev ${r.dev}` : '', r.protocol ? `proto ${r.protocol}` : ''].filter(Boolean).join(' ');
const describeGet = (g: RouteGet): string => (g.ok ? [g.type !== 'unicast' ? g.type : '', g.gateway ? `via ${g.gateway}` : '', g.dev ? `dev ${g.dev}` : ''].filter(Boolean).join(' ') : `refused: ${g.error}`);
const isV6 = (ip: string): boolean => ip.includes(':');
/** fe80::/10: a next hop only usable with its link, never what we program (RFC 2545 §3: the global one). */
const isLinkLocal = (ip: string): boolean => /^fe[89ab][0-9a-f]:/i.test(ip);
/** Our protocol by name (rt_protos registered) or by number. */
const isLightly = (r: RouteFact): boolean => r.protocol === 'lightly' || r.protocol === '201';

class Walk {
  readonly checks: Check[] = [];
  constructor(readonly node: string) {}
  check(id: string, title: string, ok: boolean, evidence: string, fix: string): void {
    this.checks.push({ id, node: this.node, title, status: ok ? 'ok' : 'FAIL', evidence, ...(ok ? {} : { fix }) });
  }
}

/** The pod and its host side, the same checks for the source and the destination pod. */
function podChecks(w: Walk, role: 'source' | 'destination', pod: PodFacts): void {
  const p = `${role}-pod`;
  const netnsHint = pod.netns ? ` in ${pod.netns}` : '';
  w.check(`${p}-eth0`, `${role} pod ${pod.ip}: eth0 up`, !!pod.netns && !!pod.eth0?.up,
    !pod.netns ? `no network namespace holds ${pod.ip}` : pod.eth0 ? `eth0${netnsHint} ${pod.eth0.up ? 'UP' : 'DOWN'}, mtu ${pod.eth0.mtu}` : `no eth0${netnsHint}`,
    !pod.netns ? `${pod.ip} is not on ${w.node}: check the pod's IP and node (kubectl get pod -o wide)` : `bring eth0 up in the pod (ip -n ${pod.netns} link set eth0 up) or re-create the pod`);
  const neighbor = pod.gatewayNeighbor ?? 'no entry yet';
  const v6 = isV6(pod.ip);
  const v = pod.veth;
  // IPv6: the gateway is the host veth's own link-local address (from its fixed MAC), answered by NDP; no proxy.
  const gateway6 = pod.defaultGateway ?? POD_GATEWAY_V6;
  w.check(`${p}-default-route`, `${role} pod: default route and gateway ${v6 ? 'neighbour (NDP)' : 'ARP'}`, !!pod.defaultGateway && pod.gatewayNeighbor !== 'FAILED',
    pod.defaultGateway ? `default via ${pod.defaultGateway} dev eth0; neighbour ${neighbor}` : `no ${v6 ? 'IPv6 ' : ''}default route in the pod`,
    !pod.defaultGateway ? `re-create the pod: its default route via the link-local gateway is gone` :
      v6 ? `the host veth does not answer neighbour solicitations for ${pod.defaultGateway}: check that it holds that address (ip -6 addr show dev ${v?.name ?? 'lxc…'})` :
        `the host veth does not answer ARP for ${pod.defaultGateway}: check proxy_arp on it`);
  if (v6) {
    const holds = !!v?.linkLocal?.includes(gateway6);
    w.check(`${role}-veth`, `host veth${v ? ` ${v.name}` : ''}: up with the gateway's address ${gateway6}`, !!v?.up && holds,
      v ? `${v.name} ${v.up ? 'UP' : 'DOWN'}, link-local ${v.linkLocal?.join(', ') || 'none'}, mtu ${v.mtu}` : `no host veth for ${pod.ip}`,
      !v ? 're-create the pod: its host veth is gone' : !v.up ? `bring the veth up: ip link set ${v.name} up (its host routes go with it: re-create the pod if they do not come back)` :
        `give the veth the pods' gateway address: ip -6 addr add ${gateway6}/64 dev ${v.name} (or re-create the pod)`);
  } else {
    w.check(`${role}-veth`, `host veth${v ? ` ${v.name}` : ''}: up with proxy ARP`, !!v?.up && v.proxyArp === 1,
      v ? `${v.name} ${v.up ? 'UP' : 'DOWN'}, proxy_arp=${v.proxyArp ?? '?'}, mtu ${v.mtu}` : `no host veth for ${pod.ip}`,
      !v ? 're-create the pod: its host veth is gone' : !v.up ? `bring the veth up: ip link set ${v.name} up (its host route goes with it: re-create the pod if it does not come back)` : `enable proxy ARP: sysctl -w net.ipv4.conf.${v.name}.proxy_arp=1`);
  }
  w.check(`${role}-host-route`, `host route to ${pod.ip} through its veth`, !!pod.hostRoute?.dev && pod.hostRoute.type === 'unicast' && pod.hostRoute.dev === v?.name,
    pod.hostRoute ? describeRoute(pod.hostRoute) : `no route for ${hostPrefix(pod.ip)} on ${w.node}`,
    `restore the pod's host route (ip route replace ${hostPrefix(pod.ip)} dev ${v?.name ?? 'lxc…'} scope link proto lightly) or re-create the pod`);
}

/** Control plane then data plane on the source node: the session, the RIB, the kernel route, the next hop. */
function forwardChecks(w: Walk, src: NodeFacts, to: string, destAddress: string | undefined): void {
  const { rib, route, routeGet } = src.remote;
  const peerAddress = rib.best?.peer ?? destAddress;
  const peer = src.peers.find((p) => p.address === peerAddress);
  if (peer) {
    w.check('bgp-session', `BGP session with ${peer.address}`, peer.state === 'Established',
      `${peer.address} ${peer.state}${peer.info ? ` (${peer.info})` : ''}${rib.best?.stale ? '; its routes are held as stale (graceful restart)' : ''}`,
      `bring the session with ${peer.address} back: is lightly-agent (or the router) there running and reachable on TCP 179?`);
  } else {
    const up = src.peers.filter((p) => p.state === 'Established');
    w.check('bgp-session', 'BGP sessions', up.length > 0, src.peers.map((p) => `${p.address} ${p.state}`).join(', ') || 'no peers configured',
      'configure a peer (BGPPeer, or the node mesh) and check that it is reachable on TCP 179');
  }
  const ribOk = !!rib.best && rib.importAllowed;
  w.check('rib', `speaker's RIB has a route to ${to}`, ribOk,
    rib.best ? `${rib.prefix} from ${rib.best.peer} next hop ${rib.best.nextHop}${rib.best.stale ? ' (stale)' : ''}` : rib.importAllowed ? `no prefix covering ${to} received` : `no prefix covering ${to}: the import filter refuses it`,
    !rib.importAllowed ? `${src.node}'s import filter (importCIDRs) refuses ${to}: add its pod CIDR to importCIDRs` : `no peer advertises ${to}'s pod CIDR to ${src.node}: check the destination node's agent and its export`);
  const shadow = route && (route.type !== 'unicast' || !isLightly(route)) && (!rib.prefix || prefixLength(route.dst) >= prefixLength(rib.prefix)) ? route : undefined;
  const linkLocalOnly = !!route && route.gateways.length > 0 && route.gateways.every(isLinkLocal);
  const kernelOk = routeGet.ok && !!route && route.type === 'unicast' && isLightly(route) && !linkLocalOnly && (!rib.best || route.gateways.includes(rib.best.nextHop));
  w.check('kernel-route', `${src.node}'s kernel route to ${to}`, kernelOk,
    `${route ? describeRoute(route) : 'no route'}; ip route get ${to}: ${describeGet(routeGet)}`,
    // Another route is to blame only when at least as specific as the RIB's prefix; a wider one (the default) just catches what we did not program.
    shadow?.type !== 'unicast' && shadow ? `delete the ${shadow.type} route that shadows Lightly's: ip route del ${shadow.type} ${shadow.dst}` :
      linkLocalOnly && !shadow ? `${route!.dst} goes via a link-local next hop only: Lightly programs the peer's global IPv6 next hop (RFC 2545 §3); check the peer advertises one (lightlyctl routes)` :
      shadow ? `route ${shadow.dst}${shadow.protocol ? ` (proto ${shadow.protocol})` : ''} shadows Lightly's: delete it` :
        `the agent has not programmed ${rib.prefix ?? to}: see lightlyctl routes and the agent's log for route programming failures`);
  for (const hop of src.remote.nextHops) {
    const direct = hop.routeGet.ok && !hop.routeGet.gateway;
    w.check('next-hop', `next hop ${hop.address} reachable`, direct && hop.neighbor !== 'FAILED',
      `ip route get ${hop.address}: ${describeGet(hop.routeGet)}; neighbour ${hop.neighbor ?? 'no entry yet'}`,
      !direct ? `${hop.address} is not on a connected link of ${src.node}: fix the node's fabric addressing` : `${hop.address} does not answer ARP: check the link and that node`);
  }
}

/**
 * Packets from `from` reaching `node` through its uplink: the kernel's input lookup, rp_filter
 * included. Only a refusal that the lookup without a source does not share is the ingress's fault;
 * a missing route is named by the later checks.
 */
function ingressCheck(w: Walk, id: string, facts: NodeFacts, from: string, to: string): void {
  const ing = facts.remote.ingress;
  if (!ing) return;
  const reverse = facts.remote.route;
  const evidence = `ip route get ${to} from ${from} iif ${ing.iif}: ${describeGet(ing.routeGet)}${reverse ? `; reverse route ${describeRoute(reverse)}` : ''}`;
  const accepted = ing.routeGet.ok || !ing.unvalidated.ok;
  if (isV6(to)) {
    // No rp_filter for IPv6; what stops a node forwarding it is the global forwarding switch.
    const forwarding = ing.forwarding6 === 1;
    w.check(id, `${facts.node} forwards ${from} → ${to} from ${ing.iif} (net.ipv6.conf.all.forwarding=${ing.forwarding6 ?? '?'})`, forwarding && accepted,
      `${evidence}; net.ipv6.conf.all.forwarding=${ing.forwarding6 ?? '?'}`,
      !forwarding ? `${facts.node} forwards no IPv6 packet: sysctl -w net.ipv6.conf.all.forwarding=1 there` : `${facts.node} refuses packets from ${from} on ${ing.iif}: check its route back to ${from}`);
    return;
  }
  w.check(id, `${facts.node} accepts ${from} → ${to} on ${ing.iif} (rp_filter=${ing.rpFilter ?? '?'})`, accepted, evidence,
    ing.rpFilter === 1 ? `rp_filter=1 (strict) on ${facts.node} drops it because the route back to ${from} does not leave by ${ing.iif}: set net.ipv4.conf.${ing.iif}.rp_filter=2 (and all.rp_filter≠1)` : `${facts.node} refuses packets from ${from} on ${ing.iif}: check its rp_filter and route back to ${from}`);
}

function returnCheck(w: Walk, dst: NodeFacts, from: string): void {
  const { routeGet, route } = dst.remote;
  const ok = routeGet.ok && !!route && route.type === 'unicast' && isLightly(route);
  w.check('return-route', `${dst.node}'s route back to ${from}`, ok,
    `${route ? describeRoute(route) : 'no route'}; ip route get ${from}: ${describeGet(routeGet)}`,
    route && route.type !== 'unicast' ? `delete the ${route.type} ${route.dst} on ${dst.node}` :
      route && !isLightly(route) ? `route ${describeRoute(route)} on ${dst.node} takes the replies away from Lightly's route: delete it` : `${dst.node} has no route back to ${from}: check its BGP sessions (lightlyctl bgp status there)`);
}

const labelsText = (labels: Record<string, string>): string => `{${Object.entries(labels).map(([k, v]) => `${k}: ${v}`).join(', ')}}`;

/**
 * The node's NetworkPolicy verdict for the flow: egress of the source pod on its node, ingress of the
 * destination pod on its node (replies pass as established). Where no policy is enforced it passes.
 */
function policyCheck(w: Walk, id: string, facts: NodeFacts, direction: 'ingress' | 'egress', port: string | undefined): void {
  const p = facts.policy;
  const local = p && 'local' in p && p.local ? p.local.name : facts.local.ip;
  const remote = p && 'remote' in p && p.remote ? p.remote.name : facts.remote.ip;
  const flow = direction === 'egress' ? `egress from ${local} to ${remote}` : `ingress to ${local} from ${remote}`;
  const on = port ? (({ protocol, port: n }) => `${protocol} ${n}`)(flowPortSchema.parse(port)) : undefined;
  const title = `network policy: ${flow} (${on ?? 'any port'})`;
  if (!p || !p.enforced) {
    w.check(id, title, true, `not enforced: ${p ? p.reason : 'this agent reports no policy verdicts'}`, '');
    return;
  }
  if (!('egress' in p)) {
    w.check(id, title, false, 'no verdict: the agent has not listed Pods, Namespaces and NetworkPolicies yet',
      `wait for ${facts.node}'s agent to reach the API (lightlyctl policy status there shows lastError)`);
    return;
  }
  const v = p[direction];
  const selected = v.selectedBy.map((s) => `${s.policy} (${s.rules ? `${s.rules} ${direction} rule${s.rules > 1 ? 's' : ''}` : `default deny ${direction}`})`).join(', ');
  if (v.allowed) {
    w.check(id, title, true, v.allowedBy ? `allowed by ${v.allowedBy.policy} ${direction}[${v.allowedBy.rule}] on ${v.allowedBy.ports}; selected by ${selected}` : `open: ${local} is selected by no ${direction} policy`, '');
    return;
  }
  const evidence = v.pending
    ? `denied: ${facts.local.ip} has no Pod in the API yet, and until it has, ${facts.node} drops an unknown pod address`
    : `denied: selected by ${selected}${v.selectedBy.some((s) => s.rules) ? `; no rule allows ${remote}${on ? ` on ${on}` : ''}` : ''}`;
  const namespace = local.includes('/') ? local.split('/')[0]! : undefined;
  const peer = p.remote
    ? `podSelector ${labelsText(p.remote.labels)}${p.remote.name.split('/')[0] === namespace ? '' : ` with namespaceSelector {kubernetes.io/metadata.name: ${p.remote.name.split('/')[0]}}`}`
    : `ipBlock ${hostPrefix(facts.remote.ip)}`;
  const counted = v.dropped === undefined ? '' : `; the kernel's drop rule has dropped ${v.dropped} packet${v.dropped === 1 ? '' : 's'} so far`;
  w.check(id, title, false, `${evidence}${counted}${v.kernel ? `; ${v.kernel}` : ''}`,
    v.pending ? `wait for the kubelet to report ${facts.local.ip} in the Pod's status (kubectl get pod -o wide)` :
      `allow it with a NetworkPolicy${namespace ? ` in namespace ${namespace}` : ''} selecting ${local} with an ${direction} rule ${direction === 'ingress' ? 'from' : 'to'} ${peer} on ${on ?? 'the ports it needs'} (lightlyctl policy ${local} shows what selects it)`);
}

function mtuCheck(w: Walk, src: NodeFacts, dst: NodeFacts | undefined): void {
  const hops: [string, number | undefined][] = [
    [`${src.node} pod eth0`, src.local.eth0?.mtu],
    [`${src.node} ${src.remote.ingress?.iif ?? 'uplink'}`, src.remote.ingress?.mtu || undefined],
    ...(dst ? ([[`${dst.node} ${dst.remote.ingress?.iif ?? 'uplink'}`, dst.remote.ingress?.mtu || undefined], [`${dst.node} pod eth0`, dst.local.eth0?.mtu]] as [string, number | undefined][]) : []),
  ];
  const known = hops.filter((h): h is [string, number] => h[1] !== undefined);
  const pods = [src.local.eth0?.mtu, dst?.local.eth0?.mtu].filter((m): m is number => m !== undefined);
  const path = Math.min(...known.map((h) => h[1]));
  w.check('mtu', 'MTU along the path', pods.every((m) => m <= path),
    known.map(([n, m]) => `${n} ${m}`).join(', ') || 'unknown',
    `the pods' MTU exceeds the path's ${path}: set the CNI config's mtu to at most ${path}`);
}

function natNote(w: Walk, src: NodeFacts, to: string): void {
  const masq = src.natOutgoing && !inside(to, src.clusterCIDRs);
  w.check('nat', 'natOutgoing', true,
    !src.natOutgoing ? 'off: pod addresses leave the node as they are' : masq ? `on: ${to} is outside the cluster CIDRs, so it sees ${src.node}'s address` : `on, but ${to} is inside the cluster CIDRs (${src.clusterCIDRs.join(', ')}): not masqueraded`, '');
}

export function diagnose(from: string, to: string, src: NodeFacts, dest: DestinationFacts, port?: string): Diagnosis {
  const s = new Walk(src.node);
  podChecks(s, 'source', src.local);
  policyCheck(s, 'source-policy', src, 'egress', port);
  const sameNode = inside(to, src.podCIDRs);
  const dst = 'facts' in dest ? dest.facts : undefined;
  if (!sameNode) forwardChecks(s, src, to, dst?.address);
  const d = new Walk('facts' in dest ? dest.facts.node : dest.node);
  if ('unreachable' in dest) {
    d.check('destination-agent', `destination node's agent`, false, dest.unreachable, dest.fix);
  } else if (dst) {
    if (!sameNode) ingressCheck(d, 'destination-ingress', dst, from, to);
    podChecks(d, 'destination', dst.local);
    policyCheck(d, 'destination-policy', dst, 'ingress', port);
    if (!sameNode) {
      returnCheck(d, dst, from);
      ingressCheck(s, 'reply-ingress', src, to, from);
    }
  }
  const tail = new Walk(src.node);
  mtuCheck(tail, src, dst);
  natNote(tail, src, to);
  // The reply's ingress belongs after the destination's checks: order is the packet's, there and back.
  const replyIngress = s.checks.filter((c) => c.id === 'reply-ingress');
  const checks = [...s.checks.filter((c) => c.id !== 'reply-ingress'), ...d.checks, ...replyIngress, ...tail.checks];
  const firstBroken = checks.find((c) => c.status === 'FAIL');
  return {
    from, to, ...(port ? { port } : {}), ok: !firstBroken, checks,
    ...(firstBroken ? { firstBroken } : {}),
    summary: firstBroken
      ? `The path ${from} → ${to} breaks at ${firstBroken.node}: ${firstBroken.title} (${firstBroken.evidence}). Fix: ${firstBroken.fix}${/[.?!]$/.test(firstBroken.fix ?? '') ? '' : '.'}`
      : `The path ${from} → ${to} is good: every hop checked out.`,
  };
}

/** The human report: one line per check, then the verdict. */
export function formatDiagnosis(d: Diagnosis): string {
  const width = Math.max(...d.checks.map((c) => c.title.length));
  const lines = d.checks.flatMap((c) => [
    `${c.status === 'ok' ? '  ok ' : 'FAIL '} ${c.node.padEnd(8)} ${c.title.padEnd(width)}  ${c.evidence}`,
    ...(c.fix ? [`${' '.repeat(17 + width)}fix: ${c.fix}`] : []),
  ]);
  return [`doctor ${d.from} → ${d.to}${d.port ? ` port ${d.port}` : ''}`, ...lines, '', d.summary].join('\n');
}
