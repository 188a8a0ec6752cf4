// What the Service-advertisement lab adds to the Kubernetes-mode lab: a BIRD top-of-rack that puts
// what the nodes announce into its kernel table with ECMP, a client namespace behind it, and a minimal
// Service data path (an nftables DNAT of our own on a node, to its local endpoint pods).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { LabPlan } from '../../deploy/lab/topology.js';
import { isDualStack } from '../../deploy/lab/ip-families.js';
import { execIn, ipIn } from './netns.js';
import { until } from './wait.js';

/**
 * BIRD 2 as the ToR: eBGP to every node, nothing sent back, best paths merged into ECMP routes in its
 * kernel. Dual stack: IPv6 rides the same IPv4 sessions (RFC 4760), with the nodes' global IPv6
 * addresses as next hops, into a second kernel protocol.
 */
export function torConfig(plan: LabPlan, asn: number, nodeAsn: number, stateDir: string): string {
  const dual = isDualStack(plan.options);
  const sessions = plan.nodes.map(
    (n) => `protocol bgp ${n.name.replace(/-/g, '_')} {
  local ${plan.fabricAddress} as ${asn};
  neighbor ${n.address} as ${nodeAsn};
  hold time ${Math.max(3, plan.options.holdTime)};
  connect retry time 1;
  graceful restart on;
  ipv4 { import all; export none; };${dual ? '\n  ipv6 { import all; export none; };' : ''}
}`,
  );
  return `# the Service-advertisement lab's top-of-rack
router id ${plan.fabricAddress};
log "${join(stateDir, 'tor.log')}" all;
protocol device { scan time 10; }
protocol kernel { ipv4 { import none; export all; }; merge paths on; }
${dual ? 'protocol kernel { ipv6 { import none; export all; }; merge paths on; }\n' : ''}${sessions.join('\n')}
`;
}

/** Starts the ToR in the fabric namespace; returns its pid (the caller kills it). */
export async function startTor(plan: LabPlan, asn: number, nodeAsn: number, stateDir: string): Promise<number> {
  const conf = join(stateDir, 'tor.conf');
  const pidFile = join(stateDir, 'tor.pid');
  writeFileSync(conf, torConfig(plan, asn, nodeAsn, stateDir));
  const out = await execa('ip', ['netns', 'exec', plan.fabricNetns, 'bird', '-c', conf, '-s', join(stateDir, 'tor.ctl'), '-P', pidFile], { reject: false });
  if (out.exitCode !== 0) throw new Error(`bird: ${out.stderr}`);
  await until('the ToR pid file', () => readFileSync(pidFile, 'utf8').trim().length > 0, 10_000);
  return Number(readFileSync(pidFile, 'utf8').trim());
}

/** The ToR kernel's next hops for one prefix, IPv4 or IPv6 (sorted; none when it has no route). */
export async function torNextHops(fabricNetns: string, prefix: string): Promise<string[]> {
  const out = await ipIn(fabricNetns, [prefix.includes(':') ? '-6' : '-4', 'route', 'show', 'exact', prefix]);
  return [...out.matchAll(/via (\S+)/g)].map((m) => m[1]!).sort();
}

/** A client behind the ToR: 100.64.10.2/24 on a veth into the fabric (which routes for it). */
export async function attachClient(fabricNetns: string, client: string): Promise<string> {
  await ipIn(fabricNetns, ['link', 'add', 'client0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client]);
  await ipIn(fabricNetns, ['addr', 'add', '100.64.10.1/24', 'dev', 'client0']);
  await ipIn(fabricNetns, ['link', 'set', 'client0', 'up']);
  await ipIn(client, ['addr', 'add', '100.64.10.2/24', 'dev', 'eth0']);
  await ipIn(client, ['link', 'set', 'eth0', 'up']);
  await ipIn(client, ['route', 'add', 'default', 'via', '100.64.10.1']);
  const sysctl = await execIn(fabricNetns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  if (sysctl.exitCode !== 0) throw new Error(`sysctl in ${fabricNetns}: ${sysctl.stderr}`);
  return '100.64.10.2';
}

export const DNAT_TABLE = 'lightly_lab_svc';

/**
 * Pure: the nftables script of one node's Service data path, kube-proxy's job in a cluster: TCP to
 * `vip:port` goes to one of `pods` (same port). No pods: the table is emptied. Replaces the table whole.
 */
export function dnatScript(vip: string, port: number, pods: string[]): string {
  const target = pods.length === 1 ? pods[0] : `numgen inc mod ${pods.length} map { ${pods.map((p, i) => `${i} : ${p}`).join(', ')} }`;
  return [
    `table ip ${DNAT_TABLE}`,
    `delete table ip ${DNAT_TABLE}`,
    `table ip ${DNAT_TABLE} {`,
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...(pods.length ? [`    ip daddr ${vip} tcp dport ${port} dnat to ${target}`] : []),
    '  }',
    '}',
    '',
  ].join('\n');
}

export async function applyDnat(netns: string, script: string): Promise<void> {
  const out = await execIn(netns, 'nft', ['-f', '-'], { input: script });
  if (out.exitCode !== 0) throw new Error(`nft in ${netns}: ${out.stderr}`);
}

/** One TCP exchange from a namespace: what the server said, or undefined (bounded by 3 s). */
export async function tcpHello(netns: string, address: string, port: number): Promise<string | undefined> {
  const script = `const s=require('net').connect(${port},'${address}');let d='';s.on('data',c=>d+=c);s.on('end',()=>{console.log(d);process.exit(0)});s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),2500)`;
  const out = await execIn(netns, process.execPath, ['-e', script], { timeout: 3_000 });
  return out.exitCode === 0 ? String(out.stdout).trim() : undefined;
}

/** A TCP server in a pod that answers with `name` and closes (the caller kills it). */
export function podServer(netns: string, port: number, name: string) {
  return execIn(netns, process.execPath, ['-e', `require('net').createServer(s=>s.end(${JSON.stringify(name)})).listen(${port})`]);
}
