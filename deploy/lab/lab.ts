// The lab's shell: builds the planned namespaces, fabric, agents and pods, records them, tears them down.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { stringify as toYaml } from 'yaml';
import { type LabNode, type LabOptions, type LabPlan, agentConfig, agentLocalSettings, cniConfig, planLab, planNode } from './topology.js';
import { birdConfig } from './bird.js';
import { buildFabricOfRacks, rackSegment, startFabricRouters } from './racks.js';
import { addBridgeNamespace, ipBatch, run } from './shell.js';
import { fabricLines6, nodeAddressLines } from './ip-families.js';

export interface LabState {
  plan: LabPlan;
  agentPids: Record<string, number>;
  birdPid?: number;
  /** With racks: the ToRs' and the spine's daemons. */
  routerPids?: number[];
}

/** The lab's JSON as `lightly-lab up --json` and `status --json` print it (see ARCHITECTURE.md). */
export function labView(state: LabState): Record<string, unknown> {
  return {
    nodes: state.plan.nodes.map((n) => ({
      name: n.name,
      netns: n.netns,
      address: n.address,
      podCIDR: n.podCIDR,
      ...(n.address6 ? { address6: n.address6, podCIDR6: n.podCIDR6 } : {}),
      statusSocket: n.statusSocket,
      pods: n.pods.map((p) => ({ name: p.name, netns: p.netns, ip: p.ip, ...(p.ip6 ? { ip6: p.ip6 } : {}) })),
    })),
  };
}

type Log = (msg: string) => void;

/** The built binaries, found beside this bundle (dist/bin) or from the repository root. */
function binary(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, name), resolve(here, '../../dist/bin', name), resolve('dist/bin', name)]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`cannot find ${name}: run npm run build`);
}

function statePath(stateDir: string): string {
  return join(stateDir, 'state.json');
}

export function readState(stateDir: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(stateDir), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

function writeState(state: LabState): void {
  // 0600: with racks it holds the sessions' passwords.
  writeFileSync(statePath(state.plan.options.stateDir), JSON.stringify(state, null, 2), { mode: 0o600 });
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Starts a detached process inside a namespace, its output appended to a log file. */
function startIn(netns: string, cmd: string, args: string[], logFile: string, env: Record<string, string> = {}): number {
  const log = openSync(logFile, 'a');
  const child = spawn('ip', ['netns', 'exec', netns, cmd, ...args], { detached: true, stdio: ['ignore', log, log], env: { ...process.env, ...env } });
  closeSync(log);
  child.unref();
  return child.pid!;
}

async function buildFabric(plan: LabPlan): Promise<void> {
  await addBridgeNamespace(plan.fabricNetns, plan.fabricAddress, fabricLines6(plan.options));
}

/** The node's namespace on a segment: the shared fabric, or (with racks) its rack's ToR. */
async function buildNode(plan: LabPlan, node: LabNode, segment: { netns: string; gateway: string; gateway6?: string } = { netns: plan.fabricNetns, gateway: plan.fabricAddress }): Promise<void> {
  await run('ip', ['netns', 'add', node.netns]);
  const port = `n${node.index}`;
  await ipBatch(segment.netns, [
    `link add ${port} type veth peer name eth0 netns ${node.netns}`,
    `link set ${port} master br0`,
    `link set ${port} up`,
  ]);
  await ipBatch(node.netns, [
    'link set lo up',
    'link set eth0 up',
    // A real node has a default route; Linux needs one to answer proxy ARP for the pods' gateway.
    ...nodeAddressLines(plan, node, segment.gateway, segment.gateway6),
  ]);
  await run('ip', ['netns', 'exec', node.netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
}

export async function startAgent(node: LabNode, plan: LabPlan): Promise<number> {
  mkdirSync(node.dataDir, { recursive: true });
  const { kubeconfig } = plan.options;
  // 0600: with racks it holds the session's TCP MD5 password.
  writeFileSync(node.configFile, toYaml(kubeconfig ? agentLocalSettings(plan, node) : agentConfig(plan, node)), { mode: 0o600 });
  rmSync(node.cniAddrFile, { force: true });
  const args = kubeconfig ? ['--kubernetes', '--config', node.configFile] : ['--config', node.configFile];
  const env: Record<string, string> = kubeconfig ? { KUBECONFIG: kubeconfig, NODE_NAME: node.name } : {};
  const pid = startIn(node.netns, process.execPath, [binary('lightly-agent.js'), ...args], node.logFile, env);
  await waitFor(`the agent of ${node.name} (log: ${node.logFile})`, () => existsSync(node.cniAddrFile) && existsSync(node.statusSocket));
  return pid;
}

async function addPod(node: LabNode, pod: LabNode['pods'][number]): Promise<void> {
  await run('ip', ['netns', 'add', pod.netns]);
  const out = await execa('ip', ['netns', 'exec', node.netns, binary('lightly')], {
    input: JSON.stringify(cniConfig(node)),
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: pod.containerId, CNI_NETNS: `/var/run/netns/${pod.netns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', LIGHTLY_CNI_ADDR: node.cniAddrFile },
    reject: false,
  });
  if (out.exitCode !== 0) throw new Error(`CNI ADD of ${pod.name} failed: ${out.stdout || out.stderr}`);
  const result = JSON.parse(out.stdout) as { ips: { address: string }[] };
  pod.ip = result.ips[0]!.address.split('/')[0];
  const ip6 = result.ips.slice(1).find((ip) => ip.address.includes(':'));
  if (ip6) pod.ip6 = ip6.address.split('/')[0];
}

async function startBird(plan: LabPlan): Promise<number> {
  const { stateDir } = plan.options;
  const conf = join(stateDir, 'bird.conf');
  writeFileSync(conf, birdConfig(plan));
  const pidFile = join(stateDir, 'bird.pid');
  await run('ip', ['netns', 'exec', plan.fabricNetns, 'bird', '-c', conf, '-s', join(stateDir, 'bird.ctl'), '-P', pidFile]);
  await waitFor('bird', () => existsSync(pidFile));
  return Number(readFileSync(pidFile, 'utf8').trim());
}

/** Steps a caller adds to `up` (tests): e.g. start an API server in the fabric before the agents. */
export interface LabHooks {
  afterFabric?(plan: LabPlan): Promise<void>;
}

export async function up(options: LabOptions, log: Log, hooks: LabHooks = {}): Promise<LabState> {
  const plan = planLab(options);
  if (readState(options.stateDir)) throw new Error(`a lab is already up (state in ${options.stateDir}); run lightly-lab down first`);
  mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  const state: LabState = { plan, agentPids: {} };
  writeState(state); // first, so that down can clean up after a failure halfway
  if (plan.fabric) {
    await buildFabricOfRacks(plan);
    const routerPids: number[] = (state.routerPids = []);
    await startFabricRouters(plan, (pids) => {
      routerPids.push(...pids);
      writeState(state);
    });
    log(`fabric: ${plan.fabric.racks.length} racks, ToRs (${plan.fabric.tor}) ${plan.fabric.racks.map((r) => `${r.torNetns} AS ${r.torAsn}`).join(', ')}; spine (${plan.fabric.spine}) ${plan.fabric.spineNetns} AS ${plan.fabric.spineAsn}`);
  } else {
    log(`fabric: ${plan.fabricNetns} (bridge br0, ${plan.fabricAddress})`);
    await buildFabric(plan);
  }
  await hooks.afterFabric?.(plan);
  if (options.tor === 'bird' && !plan.fabric) {
    state.birdPid = await startBird(plan);
    log(`top-of-rack: BIRD in ${plan.fabricNetns}, AS ${plan.torAsn}`);
  }
  for (const node of plan.nodes) {
    await buildNode(plan, node, plan.fabric ? rackSegment(plan, node) : undefined);
    state.agentPids[node.name] = await startAgent(node, plan);
    writeState(state);
    log(`${node.name}: ${node.netns} ${node.address}, pod CIDR ${node.podCIDR}, agent pid ${state.agentPids[node.name]}`);
  }
  for (const node of plan.nodes) {
    for (const pod of node.pods) {
      await addPod(node, pod);
      log(`  ${pod.name}: ${pod.ip} on ${node.name}`);
    }
  }
  writeState(state);
  return state;
}

/** Node join: one more node with its pods; the others learn it without restarting (config reload). */
export async function addNode(stateDir: string, log: Log): Promise<LabNode> {
  const state = readState(stateDir);
  if (!state) throw new Error(`no lab is up (no state in ${stateDir})`);
  const { plan } = state;
  if (plan.fabric) throw new Error('add-node does not support a lab with racks yet');
  const node = planNode(plan.options, plan.nodes.length + 1);
  plan.nodes.push(node);
  plan.options.nodes = plan.nodes.length;
  writeState(state);
  if (plan.options.tor === 'bird') {
    // The ToR learns of the new neighbour by reconfiguration; its other sessions stay up.
    writeFileSync(join(plan.options.stateDir, 'bird.conf'), birdConfig(plan));
    await run('birdc', ['-s', join(plan.options.stateDir, 'bird.ctl'), 'configure']);
  } else if (!plan.options.kubeconfig) {
    // Tell every existing agent about the new peer first, so they accept its connection.
    for (const other of plan.nodes.slice(0, -1)) {
      writeFileSync(other.configFile, toYaml(agentConfig(plan, other)));
      const pid = state.agentPids[other.name];
      if (alive(pid)) process.kill(pid!, 'SIGHUP');
    }
  }
  await buildNode(plan, node);
  state.agentPids[node.name] = await startAgent(node, plan);
  for (const pod of node.pods) await addPod(node, pod);
  writeState(state);
  log(`${node.name} joined: ${node.address}, pod CIDR ${node.podCIDR}`);
  return node;
}

export async function down(stateDir: string, prefix: string, log: Log): Promise<void> {
  const state = readState(stateDir);
  const pids = [...Object.values(state?.agentPids ?? {}), state?.birdPid, ...(state?.routerPids ?? [])].filter((p): p is number => !!p);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  await waitFor('the agents to stop', () => pids.every((p) => !alive(p)), 5_000).catch(() => {
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  // Every namespace the lab could have made, recorded or not (a crash may have lost the record).
  const listed = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
  const ours = (name: string): boolean => name.startsWith(prefix) && /^(node-\d+|pod-\d+-\d+|fabric|tor-\d+|spine)$/.test(name.slice(prefix.length));
  for (const name of listed.filter(ours)) await execa('ip', ['netns', 'del', name], { reject: false });
  rmSync(stateDir, { recursive: true, force: true });
  log(`lab down: ${listed.filter(ours).length} namespaces and ${pids.length} processes removed`);
}

/** Stops a node's agent: SIGTERM is its graceful restart path, SIGKILL a crash. */
export async function stopAgent(stateDir: string, nodeName: string, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const state = readState(stateDir);
  const pid = state?.agentPids[nodeName];
  if (!state || !pid) throw new Error(`no agent recorded for ${nodeName}`);
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
  await waitFor(`the agent of ${nodeName} to exit`, () => !alive(pid), 10_000);
}

/** Starts a node's agent again with its config (after stopAgent). */
export async function restartAgent(stateDir: string, nodeName: string): Promise<number> {
  const state = readState(stateDir);
  const node = state?.plan.nodes.find((n) => n.name === nodeName);
  if (!state || !node) throw new Error(`no node ${nodeName} in the lab`);
  state.agentPids[nodeName] = await startAgent(node, state.plan);
  writeState(state);
  return state.agentPids[nodeName]!;
}

export interface NodeHealth {
  name: string;
  agentRunning: boolean;
}

export function status(stateDir: string): { state: LabState; health: NodeHealth[] } | undefined {
  const state = readState(stateDir);
  if (!state) return undefined;
  return { state, health: state.plan.nodes.map((n) => ({ name: n.name, agentRunning: alive(state.agentPids[n.name]) })) };
}

export { planLab };
