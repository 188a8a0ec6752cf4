// lightlyctl doctor in the lab: each hop of a working path is broken on purpose in turn, and doctor
// must name exactly that hop as the first broken one (and exit non-zero), then the path is mended.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { down, readState, restartAgent, stopAgent, up } from '../deploy/lab/lab.js';
import type { LabNode } from '../deploy/lab/topology.js';
import { execIn, ipIn, requireNetworkTools } from './support/netns.js';
import { until } from './support/lab.js';
import { labDoctor } from './support/doctor-lab.js';

const prefix = `lt-${randomBytes(2).toString('hex')}-`;
const labDir = mkdtempSync(join(tmpdir(), 'lt-doctor-'));
const stateDir = join(labDir, 'state');
let n1: LabNode;
let n2: LabNode;

const { run: doctor, expectBroken, expectGood } = labDoctor(stateDir, 'pod-1-1', 'pod-2-1');

const hostVeth = async (node: LabNode, ip: string): Promise<string> => JSON.parse(await ipIn(node.netns, ['-j', 'route', 'show', `${ip}/32`]))[0].dev as string;
const ping = async (): Promise<boolean> => (await execIn(n1.pods[0]!.netns, 'ping', ['-c', '1', '-W', '1', n2.pods[0]!.ip!])).exitCode === 0;

beforeAll(async () => {
  await requireNetworkTools(['ip', 'ping']);
  for (const bin of ['lightly', 'lightly-agent.js', 'lightlyctl.js']) {
    if (!existsSync(join('dist/bin', bin))) throw new Error(`dist/bin/${bin} is missing: run npm run build`);
  }
  const state = await up({ nodes: 2, pods: 1, prefix, stateDir, holdTime: 3, tor: 'mesh' }, () => undefined);
  [n1, n2] = state.plan.nodes as [LabNode, LabNode];
  await until('pod-1-1 reaches pod-2-1', ping, 30_000);
}, 120_000);

afterAll(async () => {
  await down(stateDir, prefix, () => undefined);
  rmSync(labDir, { recursive: true, force: true });
}, 60_000);

describe('lightlyctl doctor names the first broken hop', () => {
  it('a working path: every check ok, exit 0', async () => {
    await expectGood();
    const { diagnosis } = await doctor();
    expect(diagnosis.checks.map((c) => c.id)).toEqual(expect.arrayContaining(['source-pod-eth0', 'source-veth', 'bgp-session', 'rib', 'kernel-route', 'next-hop', 'destination-ingress', 'destination-host-route', 'return-route', 'reply-ingress', 'mtu']));
  }, 60_000);

  it("the destination's host route to the pod deleted", async () => {
    const ip = n2.pods[0]!.ip!;
    const veth = await hostVeth(n2, ip);
    await ipIn(n2.netns, ['route', 'del', `${ip}/32`]);
    expect(await ping()).toBe(false);
    const d = await expectBroken('destination-host-route', 'node-2');
    expect(d.firstBroken!.evidence).toContain(`no route for ${ip}/32`);
    await ipIn(n2.netns, ['route', 'replace', `${ip}/32`, 'dev', veth, 'scope', 'link', 'proto', '201']);
    await expectGood();
  }, 60_000);

  it("the destination pod's host veth down", async () => {
    const ip = n2.pods[0]!.ip!;
    const veth = await hostVeth(n2, ip);
    await ipIn(n2.netns, ['link', 'set', veth, 'down']); // the kernel drops the host route with it
    const d = await expectBroken('destination-veth', 'node-2');
    expect(d.firstBroken!.evidence).toContain(`${veth} DOWN`);
    await ipIn(n2.netns, ['link', 'set', veth, 'up']);
    await ipIn(n2.netns, ['route', 'replace', `${ip}/32`, 'dev', veth, 'scope', 'link', 'proto', '201']);
    await expectGood();
  }, 60_000);

  it('a blackhole for the destination pod on the source node', async () => {
    const ip = n2.pods[0]!.ip!;
    await ipIn(n1.netns, ['route', 'add', 'blackhole', `${ip}/32`]);
    const d = await expectBroken('kernel-route', 'node-1');
    expect(d.firstBroken!.fix).toContain(`ip route del blackhole ${ip}`);
    await ipIn(n1.netns, ['route', 'del', 'blackhole', `${ip}/32`]);
    await expectGood();
  }, 60_000);

  it("rp_filter=1 on the destination's uplink, whose route back leaves by another link", async () => {
    const from = n1.pods[0]!.ip!;
    // A second link on node-2 carrying the route back to the source pod (a dual-homed node): a strict rp_filter drops what arrives on eth0.
    await ipIn(n2.netns, ['link', 'add', 'alt0', 'type', 'veth', 'peer', 'name', 'alt1']);
    await ipIn(n2.netns, ['link', 'set', 'alt0', 'up']);
    await ipIn(n2.netns, ['link', 'set', 'alt1', 'up']);
    await ipIn(n2.netns, ['route', 'add', `${from}/32`, 'dev', 'alt0']);
    await execIn(n2.netns, 'sysctl', ['-qw', 'net.ipv4.conf.eth0.rp_filter=1']);
    const d = await expectBroken('destination-ingress', 'node-2');
    expect(d.firstBroken!.title).toContain('rp_filter=1');
    expect(d.firstBroken!.fix).toContain('rp_filter=2');
    // Loose again: now the replies are what goes astray, and doctor says so.
    await execIn(n2.netns, 'sysctl', ['-qw', 'net.ipv4.conf.eth0.rp_filter=0']);
    await expectBroken('return-route', 'node-2');
    await ipIn(n2.netns, ['link', 'del', 'alt0']);
    await expectGood();
  }, 60_000);

  it("a prefix withdrawn by the source node's import filter", async () => {
    const config = parseYaml(readFileSync(n1.configFile, 'utf8')) as Record<string, unknown>;
    const pid = readState(stateDir)!.agentPids[n1.name]!;
    writeFileSync(n1.configFile, toYaml({ ...config, importCIDRs: [n1.podCIDR, '10.244.3.0/24'] }));
    process.kill(pid, 'SIGHUP');
    const d = await expectBroken('rib', 'node-1', 15_000);
    expect(d.firstBroken!.evidence).toContain('import filter refuses');
    expect(d.firstBroken!.fix).toContain('importCIDRs');
    writeFileSync(n1.configFile, toYaml(config));
    process.kill(pid, 'SIGHUP');
    await expectGood();
  }, 60_000);

  it("the destination node's agent stopped: its session is the broken hop", async () => {
    await stopAgent(stateDir, n2.name, 'SIGKILL');
    const d = await expectBroken('bgp-session', 'node-1', 20_000);
    expect(d.firstBroken!.evidence).toMatch(/^192\.0\.2\.2 (Idle|Connect|Active|OpenSent|OpenConfirm)/);
    expect(d.checks.find((c) => c.id === 'destination-agent')).toMatchObject({ status: 'FAIL' });
    await restartAgent(stateDir, n2.name);
    await expectGood(40_000);
  }, 90_000);
});
