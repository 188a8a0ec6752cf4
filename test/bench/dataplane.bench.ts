// Dataplane: iperf3 between pods on two lab nodes vs a plain veth pair; node join time in a 10-node lab.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { addNode, down, up } from '../../deploy/lab/lab.js';
import { NetnsPool, execIn, ipIn } from '../support/netns.js';
import { ratioLine } from './stats.js';

export async function iperf(serverNs: string, clientNs: string, address: string): Promise<number> {
  const server = execa('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1'], { reject: false });
  await new Promise((r) => setTimeout(r, 500));
  const out = await execIn(clientNs, 'iperf3', ['-c', address, '-t', '5', '-J'], { timeout: 30_000 });
  await server;
  const json = JSON.parse(String(out.stdout)) as { end: { sum_received: { bits_per_second: number } } };
  return json.end.sum_received.bits_per_second / 1e9;
}

async function waitRoutes(netns: string, cidr: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ipIn(netns, ['route', 'show', cidr])).includes('via')) {
    if (Date.now() > deadline) throw new Error(`no route to ${cidr} in ${netns}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function benchDataplane(): Promise<string[]> {
  const lines: string[] = [];
  // Reference: a plain veth pair between two namespaces.
  const pool = new NetnsPool();
  let plain = 0;
  try {
    const a = await pool.create('ipa');
    const b = await pool.create('ipb');
    await ipIn(a, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b]);
    await ipIn(a, ['addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
    await ipIn(b, ['addr', 'add', '192.0.2.2/24', 'dev', 'eth0']);
    await ipIn(a, ['link', 'set', 'eth0', 'up']);
    await ipIn(b, ['link', 'set', 'eth0', 'up']);
    plain = await iperf(b, a, '192.0.2.2');
  } finally {
    await pool.cleanup();
  }
  const prefix = `lt-${randomBytes(2).toString('hex')}-`;
  const labDir = mkdtempSync(join(tmpdir(), 'lt-bench-lab-'));
  const stateDir = join(labDir, 'state');
  try {
    const state = await up({ nodes: 2, pods: 1, prefix, stateDir, holdTime: 9, tor: 'mesh' }, () => undefined);
    const [n1, n2] = state.plan.nodes;
    await waitRoutes(n1!.netns, n2!.podCIDR, 30_000);
    const pods = await iperf(n2!.pods[0]!.netns, n1!.pods[0]!.netns, n2!.pods[0]!.ip!);
    lines.push('Dataplane: iperf3 TCP, 5 s, in the same run (Gbit/s)', `  pod to pod across two lab nodes ${pods.toFixed(2)}; plain veth pair ${plain.toFixed(2)}`,
      '  ' + ratioLine('throughput, pods vs plain veth', pods, plain, '>= 0.95x'));
  } finally {
    await down(stateDir, prefix, () => undefined);
    rmSync(labDir, { recursive: true, force: true });
  }
  const prefix10 = `lt-${randomBytes(2).toString('hex')}-`;
  const labDir10 = mkdtempSync(join(tmpdir(), 'lt-bench-lab10-'));
  const stateDir10 = join(labDir10, 'state');
  try {
    const state = await up({ nodes: 10, pods: 0, prefix: prefix10, stateDir: stateDir10, holdTime: 9, tor: 'mesh' }, () => undefined);
    await Promise.all(state.plan.nodes.slice(1).map((n) => waitRoutes(state.plan.nodes[0]!.netns, n.podCIDR, 60_000)));
    const t0 = Date.now();
    const joined = await addNode(stateDir10, () => undefined);
    const agentUp = Date.now();
    await Promise.all(state.plan.nodes.map((n) => waitRoutes(n.netns, joined.podCIDR, 30_000)));
    const done = Date.now();
    lines.push(`Node join in a 10-node lab: routes to the new node's pods on all 10 nodes ${done - agentUp} ms after its agent was up (${done - t0} ms including creating the node and starting the agent; goal < 1000 ms)`);
  } finally {
    await down(stateDir10, prefix10, () => undefined);
    rmSync(labDir10, { recursive: true, force: true });
  }
  return lines;
}
