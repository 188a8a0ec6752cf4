// Dual stack end to end (issue 14, part 3): labs of namespaces with IPv4 and IPv6 pods, through the node
// mesh and through a BIRD top-of-rack, and an IPv6-only node underlay. RFC 4760 (IPv6 NLRI over IPv4
// sessions), RFC 2545 §3 (a global IPv6 next hop).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { down, up } from '../deploy/lab/lab.js';
import type { LabNode, LabOptions } from '../deploy/lab/topology.js';
import { ipIn, ping, requireNetworkTools } from './support/netns.js';
import { pingOnce, routes6Of, until } from './support/lab.js';

const log = (): void => undefined;
const labs: { stateDir: string; prefix: string; dir: string }[] = [];

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nsenter', 'ping', 'bird', 'birdc']);
  for (const bin of ['lightly', 'lightly.js', 'lightly-agent.js', 'lightlyctl.js']) {
    if (!existsSync(join('dist/bin', bin))) throw new Error(`dist/bin/${bin} is missing: run npm run build (scripts/test.sh does)`);
  }
});

afterAll(async () => {
  for (const lab of labs.splice(0)) {
    await down(lab.stateDir, lab.prefix, log);
    rmSync(lab.dir, { recursive: true, force: true });
  }
}, 60_000);

/** A lab of its own (prefix, state dir), taken down after the file even when a test fails. */
async function lab(options: Pick<LabOptions, 'nodes' | 'pods' | 'tor' | 'stack'>): Promise<LabNode[]> {
  const dir = mkdtempSync(join(tmpdir(), 'lt-ds-'));
  const entry = { dir, stateDir: join(dir, 'state'), prefix: `lt-${randomBytes(2).toString('hex')}-` };
  labs.push(entry);
  const state = await up({ ...options, prefix: entry.prefix, stateDir: entry.stateDir, holdTime: 3 }, log);
  return state.plan.nodes;
}

/** Tears down the labs made so far: one at a time keeps the machine's load (2 cores) down. */
async function downAll(): Promise<void> {
  for (const l of labs.splice(0)) {
    await down(l.stateDir, l.prefix, log);
    rmSync(l.dir, { recursive: true, force: true });
  }
}

const routes4 = (node: LabNode): Promise<string> => ipIn(node.netns, ['-4', 'route', 'show', 'proto', '201']);

async function bgpStatus(node: LabNode): Promise<{ peers: { address: string; state: string; families?: { family: string; prefixesReceived: number; prefixesAdvertised: number }[] }[] }> {
  return JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', node.statusSocket, 'bgp', 'status', '--json'])).stdout);
}

/** Every node has every other node's IPv6 pod CIDR via that node's global IPv6 address, with proto lightly, and a blackhole for its own. */
async function expectIpv6Routes(nodes: LabNode[], podCIDR6: (n: LabNode) => string, address6: (n: LabNode) => string): Promise<void> {
  await until('IPv6 pod routes everywhere', async () => (await Promise.all(nodes.map(routes6Of))).every((r) => nodes.every((n) => r.includes(podCIDR6(n)))), 30_000);
  for (const node of nodes) {
    const r = await routes6Of(node);
    expect(r).toContain(`blackhole ${podCIDR6(node)}`);
    for (const other of nodes.filter((n) => n !== node)) expect(r).toContain(`${podCIDR6(other)} via ${address6(other)} dev eth0`);
    expect(r).not.toMatch(/via fe80/); // a global next hop, never a link-local one alone (RFC 2545 §3)
  }
}

/**
 * Every pod pings every other pod at each of the addresses `of` gives it. A few tries each (ping()):
 * in a lab seconds old, the nodes' first neighbour solicitations across the fresh bridge can go
 * unanswered while link-local addresses are still in duplicate address detection.
 */
async function expectAllPairsPing(nodes: LabNode[], of: (p: LabNode['pods'][number]) => (string | undefined)[]): Promise<void> {
  const pods = nodes.flatMap((n) => n.pods);
  for (const from of pods) {
    for (const to of pods.filter((p) => p !== from)) {
      for (const ip of of(to)) {
        expect(ip, `${to.name} has an address of each family`).toBeDefined();
        expect((await pingOnce(from.netns, ip!)) || (await ping(from.netns, ip!)), `${from.name} → ${to.name} (${ip})`).toBe(true);
      }
    }
  }
}

describe('lab --dual-stack', () => {
  afterAll(downAll, 60_000);

  it('node mesh over IPv4 sessions: IPv6 routes too, every pod pings every pod over IPv4 and IPv6, status counts each family', async () => {
    const nodes = await lab({ nodes: 2, pods: 2, tor: 'mesh', stack: 'dual' });
    await expectIpv6Routes(nodes, (n) => n.podCIDR6!, (n) => n.address6!);
    for (const node of nodes) {
      const r = await routes4(node);
      expect(r).toContain(`blackhole ${node.podCIDR}`);
      for (const other of nodes.filter((n) => n !== node)) expect(r).toContain(`${other.podCIDR} via ${other.address} dev eth0`);
    }
    await expectAllPairsPing(nodes, (p) => [p.ip, p.ip6]);
    const [peer] = (await bgpStatus(nodes[0]!)).peers;
    expect(peer).toMatchObject({ address: nodes[1]!.address, state: 'Established' });
    expect(peer!.families).toEqual([
      { family: 'ipv4-unicast', prefixesReceived: 1, prefixesAdvertised: 1 },
      { family: 'ipv6-unicast', prefixesReceived: 1, prefixesAdvertised: 1 },
    ]);
    // Our IPv6 next hop is an address of the session's link: when node-1's goes, its IPv6 routes are
    // withdrawn (no wrong next hop); when it is back, they are announced again, the session untouched.
    const [n1, n2] = nodes as [LabNode, LabNode];
    await ipIn(n1.netns, ['-6', 'addr', 'del', `${n1.address6}/64`, 'dev', 'eth0']);
    await until('node-1\'s IPv6 pod CIDR withdrawn', async () => !(await routes6Of(n2)).includes(n1.podCIDR6!), 15_000);
    expect(await routes4(n2)).toContain(`${n1.podCIDR} via ${n1.address}`);
    await ipIn(n1.netns, ['-6', 'addr', 'add', `${n1.address6}/64`, 'dev', 'eth0', 'nodad']);
    await until('node-1\'s IPv6 pod CIDR back', async () => (await routes6Of(n2)).includes(`${n1.podCIDR6} via ${n1.address6}`), 15_000);
    expect((await bgpStatus(n1)).peers[0]).toMatchObject({ state: 'Established' });
  }, 120_000);

  it('through a BIRD top-of-rack (eBGP, one IPv4 session per node with an ipv6 channel): every pod pings every pod over both families', async () => {
    const nodes = await lab({ nodes: 2, pods: 1, tor: 'bird', stack: 'dual' });
    await expectIpv6Routes(nodes, (n) => n.podCIDR6!, (n) => n.address6!);
    await expectAllPairsPing(nodes, (p) => [p.ip, p.ip6]);
    const [tor] = (await bgpStatus(nodes[1]!)).peers;
    expect(tor!.families?.map((f) => [f.family, f.prefixesReceived])).toEqual([['ipv4-unicast', 1], ['ipv6-unicast', 1]]);
  }, 120_000);
});

describe('lab --ipv6-only (IPv6 node underlay)', () => {
  afterAll(downAll, 60_000);

  it('nodes without any IPv4 address peer over IPv6 with a configured router id, and their IPv6 pods reach each other', async () => {
    const nodes = await lab({ nodes: 2, pods: 1, tor: 'mesh', stack: 'ipv6' });
    for (const node of nodes) expect(await ipIn(node.netns, ['-4', 'addr', 'show', 'dev', 'eth0'])).toBe('');
    await expectIpv6Routes(nodes, (n) => n.podCIDR, (n) => n.address);
    await expectAllPairsPing(nodes, (p) => [p.ip]);
    const status = await bgpStatus(nodes[0]!);
    expect(status).toMatchObject({ routerId: nodes[0]!.routerId, peers: [{ address: nodes[1]!.address, state: 'Established' }] });
  }, 120_000);
});
