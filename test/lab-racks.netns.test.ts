// The rack lab (issue 14): `lightly-lab up --nodes 4 --racks 2 --tor frr|bird --dual-stack`, the RFC 7938
// layout with real routers: a ToR per rack in its own AS, a spine in its own, nodes each in theirs
// peering only with their ToR over TCP MD5 (RFC 2385). Every session is IPv4 and carries IPv6 NLRI too
// (RFC 4760), its next hops global addresses (RFC 2545 §3). Pods reach each other across racks over both
// families, AS paths run node → ToR → spine → ToR, and no node is transit. FRR and BIRD each as ToRs,
// the other as spine. One lab per pair, shared by its cases.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { down, up } from '../deploy/lab/lab.js';
import { rackOf, torAsPath } from '../deploy/lab/racks.js';
import type { LabNode, LabPlan } from '../deploy/lab/topology.js';
import { ping, requireNetworkTools } from './support/netns.js';
import { pingOnce, routes6Of, routesOf, until } from './support/lab.js';

interface Family { family: string; prefixesReceived: number; prefixesAdvertised: number }
const status = async (socket: string) => JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', socket, 'bgp', 'status', '--json'])).stdout) as { asn: number; peers: { address: string; asn: number; state: string; prefixesReceived: number; prefixesAdvertised: number; families?: Family[] }[] };

describe.each([
  { tor: 'frr', spine: 'bird' },
  { tor: 'bird', spine: 'frr' },
] as const)('rack lab --dual-stack: 4 nodes, 2 racks, $tor ToRs, $spine spine', ({ tor, spine }) => {
  const prefix = `lt-${randomBytes(2).toString('hex')}-`;
  let work: string;
  let stateDir: string;
  let plan: LabPlan;
  const rackNodes = (index: number): LabNode[] => plan.nodes.filter((n) => rackOf(plan.options, n.index) === index);

  beforeAll(async () => {
    await requireNetworkTools(['ip', 'ping', 'bird', 'birdc', '/usr/lib/frr/bgpd', '/usr/lib/frr/zebra', 'vtysh']);
    // made here, not at collection: a case filtered out (-t) then leaves no directory behind
    work = mkdtempSync(join(tmpdir(), 'lt-racks-'));
    stateDir = join(work, 'state');
    chmodSync(work, 0o711); // FRR, as the frr user, passes through to its own directory in the state
    plan = (await up({ nodes: 4, pods: 1, prefix, stateDir, holdTime: 3, tor, spine, racks: 2, stack: 'dual' }, () => undefined)).plan;
  }, 120_000);

  afterAll(async () => {
    if (!work) return;
    await down(stateDir, prefix, () => undefined);
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it('each node peers with its own ToR only, signed, both families on the one IPv4 session, advertising only its own pod CIDRs (no node is transit)', async () => {
    const fabric = plan.fabric!;
    const converged = (s: Awaited<ReturnType<typeof status>>): boolean =>
      s.peers.length === 1 && s.peers[0]!.state === 'Established' && (s.peers[0]!.families ?? []).length === 2 && s.peers[0]!.families!.every((f) => f.prefixesReceived === 3);
    await until('every node Established with its ToR and holding the other 3 pod CIDRs of each family', async () => (await Promise.all(plan.nodes.map((n) => status(n.statusSocket)))).every(converged), 60_000);
    for (const node of plan.nodes) {
      const s = await status(node.statusSocket);
      const rack = fabric.racks[rackOf(plan.options, node.index) - 1]!;
      expect(s.asn).toBe(node.asn);
      expect(s.peers).toEqual([expect.objectContaining({ address: rack.rackAddress, asn: rack.torAsn, prefixesAdvertised: 2 })]);
      expect(s.peers[0]!.families).toEqual([
        { family: 'ipv4-unicast', prefixesReceived: 3, prefixesAdvertised: 1 },
        { family: 'ipv6-unicast', prefixesReceived: 3, prefixesAdvertised: 1 },
      ]);
      expect(JSON.stringify(s)).not.toContain(fabric.nodePassword);
    }
  }, 90_000);

  it('routes at a node: the other rack\'s pod CIDRs of each family via its ToR, IPv6 via the ToR\'s global address, with proto lightly', async () => {
    const rack1 = plan.fabric!.racks[0]!;
    const node1 = plan.nodes[0]!;
    const v4 = await routesOf(node1);
    const v6 = await routes6Of(node1);
    for (const other of rackNodes(2)) {
      expect(v4).toContain(`${other.podCIDR} via ${rack1.rackAddress}`);
      expect(v6).toContain(`${other.podCIDR6} via ${rack1.rackAddress6} dev eth0`);
    }
    expect(v6).toContain(`blackhole ${node1.podCIDR6}`);
    expect(v6).not.toMatch(/via (fe80|::ffff:)/); // never a link-local alone, never IPv4-mapped (RFC 2545 §3)
  }, 30_000);

  it('every pod reaches every pod over IPv4 and IPv6, across racks through ToR, spine and ToR', async () => {
    const pods = plan.nodes.flatMap((n) => n.pods);
    for (const from of pods) {
      for (const to of pods.filter((p) => p !== from)) {
        expect(await pingOnce(from.netns, to.ip!), `${from.name} → ${to.name} (${to.ip})`).toBe(true);
        // a few tries over IPv6: in a lab seconds old, link-local addresses may still be in DAD
        expect(to.ip6, `${to.name} has an IPv6 address`).toBeDefined();
        expect((await pingOnce(from.netns, to.ip6!)) || (await ping(from.netns, to.ip6!)), `${from.name} → ${to.name} (${to.ip6})`).toBe(true);
      }
    }
  }, 60_000);

  it('AS paths in the receiving ToR, for each family: spine AS, the other ToR AS, the originating node AS', async () => {
    const fabric = plan.fabric!;
    for (const rack of fabric.racks) {
      const other = fabric.racks.find((r) => r !== rack)!;
      for (const node of rackNodes(other.index)) {
        for (const cidr of [node.podCIDR, node.podCIDR6!]) {
          await until(`${cidr} in ${rack.name}`, async () => (await torAsPath(plan, rack, cidr)) !== '', 20_000);
          expect(await torAsPath(plan, rack, cidr), cidr).toBe(`${fabric.spineAsn} ${other.torAsn} ${node.asn}`);
        }
      }
      // and from its own nodes: the node's AS alone
      for (const node of rackNodes(rack.index)) for (const cidr of [node.podCIDR, node.podCIDR6!]) expect(await torAsPath(plan, rack, cidr), cidr).toBe(`${node.asn}`);
    }
  }, 60_000);
});
