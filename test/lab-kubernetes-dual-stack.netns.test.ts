// Dual stack in Kubernetes mode (issue 14, part 3): lab agents run `--kubernetes` against the fake API in
// the fabric. Nodes with IPv4 and IPv6 `spec.podCIDRs` advertise both; IPv6-only Nodes (no IPv4
// InternalIP) peer over IPv6 with the router id of their `lightly.dev/router-id` annotation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { down, up } from '../deploy/lab/lab.js';
import type { LabNode } from '../deploy/lab/topology.js';
import { NODES } from './support/fake-kube.js';
import { type FabricApi, fabricApi } from './support/lab-kube.js';
import { ipIn, ping, requireNetworkTools } from './support/netns.js';
import { pingOnce, until } from './support/lab.js';

const labs: { dir: string; stateDir: string; prefix: string; api: FabricApi }[] = [];

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nsenter', 'ping']);
  if (!existsSync('dist/bin/lightly-agent.js')) throw new Error('dist/bin/lightly-agent.js is missing: run npm run build (scripts/test.sh does)');
});

afterAll(async () => {
  for (const lab of labs.splice(0)) {
    await down(lab.stateDir, lab.prefix, () => undefined);
    await lab.api.stop();
    rmSync(lab.dir, { recursive: true, force: true });
  }
}, 60_000);

/** Each Node's NetworkUnavailable condition is False (LightlyIsUp): the blackholes of both its pod CIDRs are in. */
async function expectNodesUp(nodes: LabNode[]): Promise<void> {
  const { api } = labs.at(-1)!;
  for (const node of nodes) {
    await until(`${node.name} reports LightlyIsUp`, async () => {
      const got = await api.kube('GET', `${NODES}/${node.name}`);
      return (got.body.status.conditions as { type: string; status: string; reason: string }[]).some((c) => c.type === 'NetworkUnavailable' && c.status === 'False' && c.reason === 'LightlyIsUp');
    }, 30_000);
  }
}

/** A Kubernetes-mode lab with its own fake API in the fabric (over IPv6 for an IPv6-only lab). */
async function kubeLab(stack: 'dual' | 'ipv6'): Promise<LabNode[]> {
  const dir = mkdtempSync(join(tmpdir(), 'lt-k8sds-'));
  const lab: (typeof labs)[number] = { dir, stateDir: join(dir, 'state'), prefix: `lt-${randomBytes(2).toString('hex')}-`, api: fabricApi(dir) };
  labs.push(lab);
  const state = await up({ nodes: 2, pods: 1, prefix: lab.prefix, stateDir: lab.stateDir, holdTime: 3, tor: 'mesh', stack, kubeconfig: lab.api.kubeconfig }, () => undefined, { afterFabric: (plan) => lab.api.afterFabric(plan) });
  return state.plan.nodes;
}

/** Each node routes every other node's pod CIDRs of `family` via that node (proto lightly), with a blackhole for its own. */
async function expectRoutes(nodes: LabNode[], family: 4 | 6, cidr: (n: LabNode) => string, via: (n: LabNode) => string): Promise<void> {
  const routes = (n: LabNode): Promise<string> => ipIn(n.netns, [`-${family}`, 'route', 'show', 'proto', '201']);
  await until(`IPv${family} routes everywhere`, async () => (await Promise.all(nodes.map(routes))).every((r) => nodes.every((n) => r.includes(cidr(n)))), 30_000);
  for (const node of nodes) {
    const r = await routes(node);
    expect(r).toContain(`blackhole ${cidr(node)}`);
    for (const other of nodes.filter((n) => n !== node)) expect(r).toContain(`${cidr(other)} via ${via(other)} dev eth0`);
  }
}

async function expectPing(nodes: LabNode[], ips: (p: LabNode['pods'][number]) => string[]): Promise<void> {
  const pods = nodes.flatMap((n) => n.pods);
  for (const from of pods) {
    for (const to of pods.filter((p) => p !== from)) {
      // A few tries: a lab seconds old still resolves its first IPv6 neighbours.
      for (const ip of ips(to)) expect((await pingOnce(from.netns, ip)) || (await ping(from.netns, ip)), `${from.name} → ${ip}`).toBe(true);
    }
  }
}

describe('Kubernetes mode, dual stack', () => {
  it('Nodes with an IPv4 and an IPv6 spec.podCIDRs: both advertised and installed, pods reach each other over both', async () => {
    const nodes = await kubeLab('dual');
    await expectRoutes(nodes, 4, (n) => n.podCIDR, (n) => n.address);
    await expectRoutes(nodes, 6, (n) => n.podCIDR6!, (n) => n.address6!);
    await expectPing(nodes, (p) => [p.ip!, p.ip6!]);
    await expectNodesUp(nodes);
  }, 120_000);

  it('IPv6-only Nodes: the mesh over IPv6 InternalIPs, router id from the annotation', async () => {
    const nodes = await kubeLab('ipv6');
    await expectRoutes(nodes, 6, (n) => n.podCIDR, (n) => n.address);
    await expectPing(nodes, (p) => [p.ip!]);
    await expectNodesUp(nodes);
    const status = JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', nodes[0]!.statusSocket, 'bgp', 'status', '--json'])).stdout);
    expect(status).toMatchObject({ routerId: nodes[0]!.routerId, peers: [{ address: nodes[1]!.address, state: 'Established' }] });
  }, 120_000);
});
