// lightlyctl doctor's policy hop on the lab in Kubernetes mode (objects in the fake API): a default-deny
// ingress policy on the destination pod must be named as exactly the broken hop, with the kernel's drop
// rule as evidence and what to allow as the fix; an allowing policy beside it mends the path. Semantics:
// the Kubernetes documentation's NetworkPolicy rules (concepts/services-networking/network-policies):
// a selected pod takes what any selecting policy allows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { down, up } from '../deploy/lab/lab.js';
import type { LabNode } from '../deploy/lab/topology.js';
import type { Diagnosis } from '../agent/doctor/checks.js';
import { NAMESPACES } from './support/fake-kube.js';
import { fabricApi } from './support/lab-kube.js';
import { NetpolModel, type Placement, podObject } from './support/netpol-model.js';
import { execIn, requireNetworkTools } from './support/netns.js';
import { until } from './support/wait.js';

const prefix = `lt-${randomBytes(2).toString('hex')}-`;
const dir = mkdtempSync(join(tmpdir(), 'lt-doctor-policy-'));
const stateDir = join(dir, 'state');
const api = fabricApi(dir);
let nodes: LabNode[] = [];
let model: NetpolModel;

async function doctor(...extra: string[]): Promise<{ exitCode: number; stdout: string }> {
  const out = await execa(process.execPath, ['dist/bin/lightlyctl.js', 'doctor', 'pod-1-1', 'pod-2-1', '--lab', stateDir, ...extra], { reject: false, timeout: 60_000 });
  if (!out.stdout) throw new Error(`doctor printed nothing: ${out.stderr}`);
  return { exitCode: out.exitCode ?? -1, stdout: out.stdout };
}
const diagnosis = async (...extra: string[]): Promise<Diagnosis> => JSON.parse((await doctor('--json', ...extra)).stdout) as Diagnosis;
const ping = async (): Promise<boolean> => (await execIn(nodes[0]!.pods[0]!.netns, 'ping', ['-c', '1', '-W', '1', nodes[1]!.pods[0]!.ip!])).exitCode === 0;

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nft', 'ping']);
  for (const bin of ['lightly-agent.js', 'lightlyctl.js']) if (!existsSync(join('dist/bin', bin))) throw new Error(`dist/bin/${bin} is missing: run npm run build`);
  const state = await up({ nodes: 2, pods: 1, prefix, stateDir, holdTime: 3, tor: 'mesh', kubeconfig: api.kubeconfig }, () => undefined, { afterFabric: (plan) => api.afterFabric(plan) });
  nodes = state.plan.nodes;
  // x/a on node-1 talks to y/b on node-2: cross-node, so each side's verdict comes from its own agent.
  const placement = new Map<string, Placement>([
    ['x/a', { node: nodes[0]!, pod: nodes[0]!.pods[0]! }],
    ['y/b', { node: nodes[1]!, pod: nodes[1]!.pods[0]! }],
  ]);
  model = new NetpolModel(api.control, dir, placement, nodes);
  for (const name of ['x', 'y']) {
    await api.kube('POST', NAMESPACES, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    await model.labelNamespace(name, {}); // the model's labels, its write tracked for settle()
  }
  for (const [key, place] of placement) await model.putPod(key.split('/')[0]!, podObject(key, place, { pod: key.split('/')[1]! }));
  await model.settle();
  await until('pod-1-1 reaches pod-2-1', ping, 30_000);
}, 120_000);

afterAll(async () => {
  await down(stateDir, prefix, () => undefined);
  await api.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('lightlyctl doctor: the network policy hop (Kubernetes mode)', () => {
  it('no policy: both policy hops open, the path good', async () => {
    const d = await diagnosis();
    expect(d.summary).toMatch(/is good/);
    expect(d.checks.find((c) => c.id === 'source-policy')).toMatchObject({ status: 'ok', node: 'node-1', evidence: 'open: x/a is selected by no egress policy' });
    expect(d.checks.find((c) => c.id === 'destination-policy')).toMatchObject({ status: 'ok', node: 'node-2', evidence: 'open: y/b is selected by no ingress policy' });
  }, 60_000);

  it('default deny ingress on the destination: exactly the policy hop is broken; an allowing policy mends it', async () => {
    await model.createPolicy('y', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
    await model.settle();
    expect(await ping()).toBe(false); // the kernel agrees with the verdict
    const d = await diagnosis();
    expect(d.ok).toBe(false);
    expect(d.checks.filter((c) => c.status === 'FAIL').map((c) => c.id)).toEqual(['destination-policy']);
    expect(d.firstBroken).toMatchObject({ id: 'destination-policy', node: 'node-2', title: 'network policy: ingress to y/b from x/a (any port)' });
    // The kernel's counter on the drop rule: the ping above was dropped there, so it has counted it.
    expect(d.firstBroken!.evidence).toMatch(/^denied: selected by y\/deny-ingress \(default deny ingress\); the kernel's drop rule has dropped [1-9]\d* packets? so far; chain ingress of inet lightly-policy: counter packets [1-9]\d* bytes \d+ drop comment "isolated for ingress, no policy allows" # handle \d+$/);
    expect(d.firstBroken!.fix).toContain('selecting y/b with an ingress rule from podSelector {pod: a} with namespaceSelector {kubernetes.io/metadata.name: x}');
    const text = await doctor();
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toMatch(/FAIL +node-2 +network policy: ingress to y\/b from x\/a/);
    expect(text.stdout).toContain('breaks at node-2: network policy: ingress to y/b from x/a (any port) (denied: selected by y/deny-ingress');

    await model.createPolicy('y', 'allow-x-on-80', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } } }], ports: [{ protocol: 'TCP', port: 80 }] }] });
    await model.settle();
    const good = await doctor('--json', '--port', '80');
    expect(good.exitCode).toBe(0);
    const allowed = JSON.parse(good.stdout) as Diagnosis;
    expect(allowed.summary).toMatch(/is good/);
    expect(allowed.checks.find((c) => c.id === 'destination-policy')!.evidence).toBe('allowed by y/allow-x-on-80 ingress[0] on TCP 80; selected by y/allow-x-on-80 (1 ingress rule), y/deny-ingress (default deny ingress)');
    // The same policy allows no UDP: doctor asked about that port names the hop again.
    expect((await diagnosis('--port', '80/udp')).firstBroken).toMatchObject({ id: 'destination-policy', title: 'network policy: ingress to y/b from x/a (UDP 80)' });

    await model.createPolicy('y', 'allow-x-on-80', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } } }] }] });
    await model.settle();
    const open = await doctor();
    expect(open.exitCode).toBe(0);
    expect(open.stdout).toMatch(/is good/);
    expect(await ping()).toBe(true);
  }, 90_000);
});
