// The whole product in a lab of namespaces: agents with our BGP speaker, the plugin, kernel routes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { addNode, down, readState, restartAgent, stopAgent, up } from '../deploy/lab/lab.js';
import type { LabNode } from '../deploy/lab/topology.js';
import { execIn, ipIn, requireNetworkTools } from './support/netns.js';
import { expectMeshReachable, pingOnce, routesOf, until } from './support/lab.js';

const prefix = `lt-${randomBytes(2).toString('hex')}-`;
const labDir = mkdtempSync(join(tmpdir(), 'lt-lab-'));
const stateDir = join(labDir, 'state');
const log = (): void => undefined;
let nodes: LabNode[] = [];

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nsenter', 'ping']);
  for (const bin of ['lightly', 'lightly.js', 'lightly-agent.js']) {
    if (!existsSync(join('dist/bin', bin))) throw new Error(`dist/bin/${bin} is missing: run npm run build (scripts/test.sh does)`);
  }
  const state = await up({ nodes: 3, pods: 2, prefix, stateDir, holdTime: 3, tor: 'mesh' }, log);
  nodes = state.plan.nodes;
}, 120_000);

afterAll(async () => {
  await down(stateDir, prefix, log);
  rmSync(labDir, { recursive: true, force: true });
}, 60_000);

describe('lab: 3 nodes × 2 pods, full mesh', () => {
  it('every pod reaches every other pod, over proto lightly routes, with a blackhole per node', async () => {
    await expectMeshReachable(nodes);
    const status = await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', nodes[0]!.statusSocket, 'bgp', 'status', '--json']);
    const json = JSON.parse(status.stdout);
    expect(json).toMatchObject({ node: 'node-1', routerId: '192.0.2.1', asn: 64512 });
    expect(json.peers).toEqual([
      expect.objectContaining({ address: '192.0.2.2', type: 'node-mesh', state: 'Established', prefixesReceived: 1, prefixesAdvertised: 1 }),
      expect.objectContaining({ address: '192.0.2.3', type: 'node-mesh', state: 'Established', prefixesReceived: 1, prefixesAdvertised: 1 }),
    ]);
  }, 120_000);

  it('a node joining later is reachable from every node without restarting anything', async () => {
    const pidsBefore = { ...readState(stateDir)!.agentPids };
    const joined = await addNode(stateDir, log);
    nodes = readState(stateDir)!.plan.nodes;
    const ms = await until('the new pod CIDR everywhere', async () =>
      (await Promise.all(nodes.filter((n) => n.name !== joined.name).map(routesOf))).every((r) => r.includes(`${joined.podCIDR} via ${joined.address}`)), 30_000);
    console.log(`node join: routes everywhere ${ms} ms after the agent started`);
    expect(await pingOnce(nodes[0]!.pods[0]!.netns, joined.pods[0]!.ip!)).toBe(true);
    expect(await pingOnce(joined.pods[0]!.netns, nodes[1]!.pods[1]!.ip!)).toBe(true);
    for (const [name, pid] of Object.entries(pidsBefore)) expect(readState(stateDir)!.agentPids[name]).toBe(pid);
  }, 120_000);

  it('a restarted agent (graceful restart) loses no packet of a continuous ping between pods', async () => {
    const [n1, n2] = nodes;
    const target = n2!.pods[0]!.ip!;
    // 0.05 s apart for the whole restart: any gap in forwarding shows as loss.
    const pinger = execIn(n1!.pods[0]!.netns, 'ping', ['-i', '0.05', '-w', '8', '-W', '1', target], { timeout: 20_000 });
    await new Promise((r) => setTimeout(r, 1_000));
    await stopAgent(stateDir, n1!.name, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 1_000)); // the agent is down for a while
    await restartAgent(stateDir, n1!.name);
    const result = await pinger;
    const summary = /(\d+) packets transmitted, (\d+) received/.exec(String(result.stdout));
    expect(summary, String(result.stdout)).not.toBeNull();
    console.log(`graceful restart: ${summary![1]} sent, ${summary![2]} received`);
    expect(Number(summary![1])).toBeGreaterThan(100);
    expect(summary![2]).toBe(summary![1]);
    await until('node-1 re-established with every peer', async () => {
      const out = await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', n1!.statusSocket, 'bgp', 'status', '--json'], { reject: false });
      return out.exitCode === 0 && JSON.parse(out.stdout).peers.every((p: { state: string }) => p.state === 'Established');
    }, 30_000);
  }, 60_000);

  it("a killed agent's routes are withdrawn by the others once its restart time is over", async () => {
    const victim = nodes.at(-1)!;
    await stopAgent(stateDir, victim.name, 'SIGKILL');
    // The kill closes TCP without a NOTIFICATION: peers hold its routes for its restart time (10 s in the lab).
    const ms = await until('the routes to be withdrawn', async () =>
      (await Promise.all(nodes.filter((n) => n !== victim).map(routesOf))).every((r) => !r.includes(victim.podCIDR)), 25_000);
    console.log(`killed agent: routes withdrawn after ${ms} ms`);
    expect(ms).toBeGreaterThan(5_000); // held for the restart time, not dropped at once
  }, 60_000);
});
