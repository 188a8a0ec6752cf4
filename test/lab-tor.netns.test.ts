// The lab with a BIRD 2 top-of-rack: every node peers over eBGP with BIRD instead of the mesh.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { addNode, down, up } from '../deploy/lab/lab.js';
import type { LabNode } from '../deploy/lab/topology.js';
import { requireNetworkTools } from './support/netns.js';
import { expectMeshReachable, pingOnce, routesOf, until } from './support/lab.js';

const prefix = `lt-${randomBytes(2).toString('hex')}-`;
const labDir = mkdtempSync(join(tmpdir(), 'lt-labtor-'));
const stateDir = join(labDir, 'state');
let nodes: LabNode[] = [];

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nsenter', 'ping', 'bird', 'birdc']);
  nodes = (await up({ nodes: 3, pods: 2, prefix, stateDir, holdTime: 9, tor: 'bird' }, () => undefined)).plan.nodes;
}, 120_000);
afterAll(async () => {
  await down(stateDir, prefix, () => undefined);
  rmSync(labDir, { recursive: true, force: true });
}, 60_000);

describe('lab --tor bird', () => {
  it('pods reach each other through routes learned from the BIRD top-of-rack over eBGP', async () => {
    // BIRD passes routes on with their next hop kept: traffic goes node to node across the fabric.
    await expectMeshReachable(nodes);
    const status = JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', nodes[0]!.statusSocket, 'bgp', 'status', '--json'])).stdout);
    expect(status.asn).toBe(64513);
    expect(status.peers).toEqual([expect.objectContaining({ address: '192.0.2.254', asn: 65000, type: 'global', state: 'Established', prefixesReceived: 2, prefixesAdvertised: 1 })]);
    const bird = await execa('birdc', ['-s', join(stateDir, 'bird.ctl'), 'show', 'protocols'], { reject: false });
    expect((String(bird.stdout).match(/Established/g) ?? []).length).toBe(3);
  }, 90_000);

  it('a node added later peers with the ToR (BIRD reconfigured live) and its pods are reachable', async () => {
    const joined = await addNode(stateDir, () => undefined);
    // Both ways before the ping: node-1 learning the new CIDR says nothing of the new node having
    // learned node-1's yet (its session with the ToR is up, its reconciler may not have written).
    await until(`routes between node-1 and ${joined.podCIDR}`, async () => (await routesOf(nodes[0]!)).includes(`${joined.podCIDR} via ${joined.address}`) && (await routesOf(joined)).includes(`${nodes[0]!.podCIDR} via ${nodes[0]!.address}`), 30_000);
    expect(await pingOnce(nodes[0]!.pods[0]!.netns, joined.pods[0]!.ip!)).toBe(true);
    const bird = await execa('birdc', ['-s', join(stateDir, 'bird.ctl'), 'show', 'protocols'], { reject: false });
    expect((String(bird.stdout).match(/Established/g) ?? []).length).toBe(4);
  }, 60_000);
});
