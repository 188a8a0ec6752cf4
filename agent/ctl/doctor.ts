// `lightlyctl doctor FROM TO`: resolves the two pods, asks each one's node agent for its facts about the
// path, and hands both to the pure diagnosis. FROM/TO: pod IPs, lab pod names (--lab) or namespace/pod.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { contains } from '../../bgp/policy/policy.js';
import { type DestinationFacts, type Diagnosis, diagnose } from '../doctor/checks.js';
import { type FactsQuery, type NodeFacts, flowPortSchema, nodeFactsSchema } from '../doctor/facts.js';
import { KubeClient } from '../kube/client.js';
import { loadApiEndpoint } from '../kube/kubeconfig.js';
import { getJson } from './client.js';

/** Facts walk every named namespace at worst: more time than a status read. */
const FACTS_TIMEOUT_MS = 20_000;

const labStateSchema = z.object({
  plan: z.object({
    nodes: z.array(z.object({
      name: z.string(), address: z.string(), podCIDR: z.string(), podCIDR6: z.string().optional(), statusSocket: z.string(),
      pods: z.array(z.object({ name: z.string(), ip: z.string().optional(), ip6: z.string().optional() })),
    })),
  }),
});
type LabState = z.infer<typeof labStateSchema>;

export interface DoctorOptions {
  socket: string;
  /** A lab's state directory: pod names resolve there and every node's socket is known. */
  lab?: string;
  /** The destination node's facts, gathered there with `lightlyctl doctor-facts`. */
  destFacts?: string;
  destSocket?: string;
  /** `--port N[/tcp|udp|sctp]`: the port the policy verdicts are for; absent: any traffic. */
  port?: string;
  /** `--family 4|6`: which address of a dual-stack pod named by name (lab or namespace/pod) to use; default 4 (pickAddress). */
  family?: string;
}

/** `--family` checked at the boundary. */
export const familySchema = z.enum(['4', '6']).transform((f): 4 | 6 => (f === '4' ? 4 : 6));
export type Family = z.output<typeof familySchema>;

/** A pod as the user named it, once resolved: its address and, where known, its node. */
interface Endpoint {
  ip: string;
  node?: string;
  socket?: string;
}

const hostPrefix = (ip: string): string => `${ip}/${ip.includes(':') ? 128 : 32}`;

export function factsPath(query: FactsQuery): string {
  const params = new URLSearchParams({ local: query.local, remote: query.remote, ...(query.remoteNode ? { remoteNode: query.remoteNode } : {}), ...(query.port ? { port: query.port } : {}) });
  return `/v1/doctor/facts?${params}`;
}

export async function fetchFacts(socket: string, query: FactsQuery): Promise<NodeFacts> {
  return nodeFactsSchema.parse(await getJson<unknown>(socket, factsPath(query), FACTS_TIMEOUT_MS));
}

/**
 * Which of a pod's addresses doctor walks: the asked family's, else (no --family) IPv4 when the pod has
 * one, so a dual-stack pod defaults to 4 and an IPv6-only pod still resolves to its one address.
 */
export function pickAddress(name: string, addresses: (string | undefined)[], family: Family | undefined): string {
  const all = [...new Set(addresses.filter((a): a is string => !!a && isIP(a) !== 0))];
  const ip = all.find((a) => isIP(a) === (family ?? 4)) ?? (family ? undefined : all[0]);
  if (ip) return ip;
  if (!all.length) throw new Error(`pod ${name} has no IP yet`);
  throw new Error(`pod ${name} has no IPv${family} address (it has ${all.join(', ')}): try --family ${family === 4 ? 6 : 4}`);
}

async function resolve(name: string, lab: LabState | undefined, family: Family | undefined): Promise<Endpoint> {
  const inLab = (ip: string): Endpoint => {
    const node = lab?.plan.nodes.find((n) => [n.podCIDR, ...(n.podCIDR6 ? [n.podCIDR6] : [])].some((c) => c.includes(':') === ip.includes(':') && contains(c, hostPrefix(ip))));
    return { ip, ...(node ? { node: node.name, socket: node.statusSocket } : {}) };
  };
  if (isIP(name)) return inLab(name);
  if (lab) {
    const pod = lab.plan.nodes.flatMap((n) => n.pods).find((p) => p.name === name);
    if (!pod) throw new Error(`no pod ${name} in the lab`);
    return inLab(pickAddress(name, [pod.ip, pod.ip6], family));
  }
  const [namespace, pod] = name.split('/');
  if (!namespace || !pod) throw new Error(`${name}: give a pod IP, a namespace/pod name, or a lab pod name with --lab`);
  const body = await new KubeClient(loadApiEndpoint()).call('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}`);
  // status.podIPs holds one address per family (dual stack); podIP is the first of them.
  const ip = pickAddress(name, [...((body?.status?.podIPs ?? []) as { ip?: string }[]).map((p) => p.ip), body?.status?.podIP as string | undefined], family);
  return { ip, ...(body?.spec?.nodeName ? { node: String(body.spec.nodeName) } : {}) };
}

/** The destination's facts: from the lab's socket, a given socket or file, or what to run there instead. */
async function destinationFacts(opts: DoctorOptions, to: Endpoint, query: FactsQuery): Promise<DestinationFacts> {
  if (opts.destFacts) return { facts: nodeFactsSchema.parse(JSON.parse(readFileSync(opts.destFacts, 'utf8'))) };
  const node = to.node ?? `the node of ${to.ip}`;
  const runThere = `lightlyctl doctor-facts ${query.local} ${query.remote}${query.remoteNode ? ` --remote-node ${query.remoteNode}` : ''}${query.port ? ` --port ${query.port}` : ''} > facts.json` +
    (to.node ? ` (e.g. kubectl -n kube-system exec <the lightly pod on ${to.node}> -- …)` : '');
  const socket = opts.destSocket ?? to.socket;
  if (!socket) return { unreachable: `no way to reach ${node}'s agent from here`, node, fix: `run this on ${node} and pass its output with --dest-facts FILE: ${runThere}` };
  try {
    return { facts: await fetchFacts(socket, query) };
  } catch (err) {
    return { unreachable: (err as Error).message, node, fix: `start lightly-agent on ${node} (or, if it runs, ${runThere} there and pass it with --dest-facts FILE)` };
  }
}

/** `--port` checked at the boundary and written the one way (N/proto) that facts queries carry. */
function portOption(port: string | undefined): string | undefined {
  if (port === undefined) return undefined;
  const parsed = flowPortSchema.safeParse(port);
  if (!parsed.success) throw new Error(`--port ${port}: give N, N/tcp, N/udp or N/sctp`);
  return `${parsed.data.port}/${parsed.data.protocol.toLowerCase()}`;
}

export async function doctor(fromName: string, toName: string, opts: DoctorOptions): Promise<Diagnosis> {
  const port = portOption(opts.port);
  const lab = opts.lab ? labStateSchema.parse(JSON.parse(readFileSync(`${opts.lab}/state.json`, 'utf8'))) : undefined;
  const family = opts.family === undefined ? undefined : familySchema.safeParse(opts.family);
  if (family && !family.success) throw new Error(`--family ${opts.family}: give 4 or 6`);
  const [from, to] = await Promise.all([resolve(fromName, lab, family?.data), resolve(toName, lab, family?.data)]);
  if (isIP(from.ip) !== isIP(to.ip)) throw new Error(`${from.ip} and ${to.ip} are of different address families: a path is IPv4 or IPv6 (--family)`);
  const srcSocket = from.socket ?? opts.socket;
  const src = await fetchFacts(srcSocket, { local: from.ip, remote: to.ip, ...(port ? { port } : {}) });
  const sameNode = src.podCIDRs.some((c) => contains(c, hostPrefix(to.ip)));
  const query = { local: to.ip, remote: from.ip, remoteNode: src.address, ...(port ? { port } : {}) };
  const dest = sameNode ? { facts: await fetchFacts(srcSocket, query) } : await destinationFacts(opts, to, query);
  return diagnose(from.ip, to.ip, src, dest, port);
}

/** `doctor-facts`: this node's facts, for a doctor run on another node (--dest-facts). */
export async function localFacts(socket: string, local: string, remote: string, remoteNode?: string, portText?: string): Promise<NodeFacts> {
  for (const a of [local, remote, ...(remoteNode ? [remoteNode] : [])]) if (!isIP(a)) throw new Error(`${a} is not an IP address`);
  const port = portOption(portText);
  return fetchFacts(socket, { local, remote, ...(remoteNode ? { remoteNode } : {}), ...(port ? { port } : {}) });
}

