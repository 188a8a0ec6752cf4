// The rack lab (issue 14): `lightly-lab up --nodes 4 --racks 2 --tor frr|bird`, the RFC 7938 layout with
// real routers: a ToR per rack in its own AS, a spine in its own, nodes each in theirs peering only
// with their ToR over TCP MD5 (RFC 2385). Pods reach each other across racks, AS paths run node → ToR →
// spine → ToR, and no node is transit. FRR and BIRD each as ToRs, the other as spine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { down, up } from '../deploy/lab/lab.js';
import { rackOf, torAsPath } from '../deploy/lab/racks.js';
import type { LabPlan } from '../deploy/lab/topology.js';
import { requireNetworkTools } from './support/netns.js';
import { pingOnce, routesOf, until } from './support/lab.js';

const status = async (socket: string) => JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', socket, 'bgp', 'status', '--json'])).stdout) as { asn: number; peers: { address: string; asn: number; state: string; prefixesReceived: number; prefixesAdvertised: number }[] };

describe.each([
  { tor: 'frr', spine: 'bird' },
  { tor: 'bird', spine: 'frr' },
] as const)('rack lab: 4 nodes, 2 racks, $tor ToRs, $spine spine', ({ tor, spine }) => {
  const prefix = `lt-${randomBytes(2).toString('hex')}-`;
  const work = mkdtempSync(join(tmpdir(), 'lt-racks-'));
  const stateDir = join(work, 'state');
  let plan: LabPlan;

  beforeAll(async () => {
    await requireNetworkTools(['ip', 'ping', 'bird', 'birdc', '/usr/lib/frr/bgpd', '/usr/lib/frr/zebra', 'vtysh']);
    chmodSync(work, 0o711); // FRR, as the frr user, passes through to its own directory in the state
    plan = (await up({ nodes: 4, pods: 1, prefix, stateDir, holdTime: 3, tor, spine, racks: 2 }, () => undefined)).plan;
  }, 120_000);

  afterAll(async () => {
    await down(stateDir, prefix, () => undefined);
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it('each node peers with its own ToR only, signed, and advertises only its own pod CIDR (no node is transit)', async () => {
    const fabric = plan.fabric!;
    await until('every node Established with its ToR and holding the other 3 pod CIDRs', async () =>
      (await Promise.all(plan.nodes.map((n) => status(n.statusSocket)))).every((s) => s.peers.length === 1 && s.peers[0]!.state === 'Established' && s.peers[0]!.prefixesReceived === 3), 60_000);
    for (const node of plan.nodes) {
      const s = await status(node.statusSocket);
      const rack = fabric.racks[rackOf(plan.options, node.index) - 1]!;
      expect(s.asn).toBe(node.asn);
      expect(s.peers).toEqual([expect.objectContaining({ address: rack.rackAddress, asn: rack.torAsn, prefixesAdvertised: 1 })]);
      expect(JSON.stringify(s)).not.toContain(fabric.nodePassword);
    }
  }, 90_000);

  it('every pod reaches every pod, across racks through ToR, spine and ToR', async () => {
    const pods = plan.nodes.flatMap((n) => n.pods);
    for (const from of pods) for (const to of pods.filter((p) => p !== from)) expect(await pingOnce(from.netns, to.ip!), `${from.name} → ${to.name}`).toBe(true);
    // a node reaches the other rack's pod CIDRs through its ToR
    const node1 = plan.nodes[0]!;
    const routes = await routesOf(node1);
    for (const other of plan.nodes.filter((n) => rackOf(plan.options, n.index) === 2)) expect(routes).toContain(`${other.podCIDR} via ${plan.fabric!.racks[0]!.rackAddress}`);
  }, 60_000);

  it('AS paths in the receiving ToR: spine AS, the other ToR AS, the originating node AS', async () => {
    const fabric = plan.fabric!;
    for (const rack of fabric.racks) {
      const other = fabric.racks.find((r) => r !== rack)!;
      for (const node of plan.nodes.filter((n) => rackOf(plan.options, n.index) === other.index)) {
        await until(`${node.podCIDR} in ${rack.name}`, async () => (await torAsPath(plan, rack, node.podCIDR)) !== '', 20_000);
        expect(await torAsPath(plan, rack, node.podCIDR)).toBe(`${fabric.spineAsn} ${other.torAsn} ${node.asn}`);
      }
      // and from its own nodes: the node's AS alone
      for (const node of plan.nodes.filter((n) => rackOf(plan.options, n.index) === rack.index)) expect(await torAsPath(plan, rack, node.podCIDR)).toBe(`${node.asn}`);
    }
  }, 60_000);
});
