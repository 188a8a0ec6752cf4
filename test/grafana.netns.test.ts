// deploy/grafana/lightly.json against a live lab: Prometheus scrapes every agent, the lab does what the
// panels watch (a node joins, pods come and go, a CNI request fails, an agent restarts), and every
// query of every panel must then return data with a real number in it (promtool query instant).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { addNode, down, restartAgent, stopAgent, up } from '../deploy/lab/lab.js';
import { LAB_METRICS_PORT, type LabPlan, cniConfig, nodeAddress } from '../deploy/lab/topology.js';
import { requireNetworkTools } from './support/netns.js';
import { LIGHTLY_BIN, invoke } from './support/cni.js';
import { type LabPrometheus, startLabPrometheus } from './support/prometheus.js';
import { until } from './support/wait.js';

interface Panel {
  title: string;
  targets: { expr: string }[];
}
const dashboard = JSON.parse(readFileSync('deploy/grafana/lightly.json', 'utf8')) as { panels: Panel[] };
/** What Grafana would put in: every node, and a window that spans the whole short test. */
const expand = (expr: string): string => expr.replaceAll('$instance', '.+').replaceAll('$__rate_interval', '5m');

const prefix = `lt-${randomBytes(2).toString('hex')}-`;
const labDir = mkdtempSync(join(tmpdir(), 'lt-grafana-'));
const stateDir = join(labDir, 'state');
let plan: LabPlan;
let prometheus: LabPrometheus | undefined;

beforeAll(async () => {
  await requireNetworkTools(['ip', 'prometheus', 'promtool']);
  if (!existsSync('dist/bin/lightly-agent.js')) throw new Error('dist/bin is missing: run npm run build');
  plan = (await up({ nodes: 3, pods: 1, prefix, stateDir, holdTime: 3, tor: 'mesh' }, () => undefined)).plan;
  const targets = [1, 2, 3, 4].map((i) => `${nodeAddress(i)}:${LAB_METRICS_PORT}`);
  prometheus = await startLabPrometheus(plan.fabricNetns, join(labDir, 'prometheus'), targets);
  await until('three agents scraped with their sessions up', async () => (await prometheus!.query('count(lightly_bgp_session_state == 6)'))[0]?.value === 6, 30_000);
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
  await down(stateDir, prefix, () => undefined);
  rmSync(labDir, { recursive: true, force: true });
}, 60_000);

describe('the Grafana dashboard against Prometheus scraping a lab', () => {
  it('every panel has queries, and the dashboard is what Grafana imports', () => {
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(10);
    for (const p of dashboard.panels) expect(p.targets.length, p.title).toBeGreaterThan(0);
  });

  it('every query of every panel returns data once the lab has done what the panels watch', async () => {
    const node1 = plan.nodes[0]!;
    // Work after the first scrapes, so that rates and quantiles have something to show.
    await addNode(stateDir, () => undefined);
    const pod = { netns: `/var/run/netns/${prefix}pod-1-9`, containerId: `grafana-${prefix}` };
    await execa('ip', ['netns', 'add', `${prefix}pod-1-9`]);
    const cni = (command: 'ADD' | 'DEL', conf = cniConfig(node1)) =>
      invoke(LIGHTLY_BIN, { command, containerId: pod.containerId, netns: pod.netns, ifname: 'eth0', hostNetns: node1.netns, env: { LIGHTLY_CNI_ADDR: node1.cniAddrFile } }, conf);
    expect((await cni('ADD')).exitCode).toBe(0);
    expect((await cni('DEL')).exitCode).toBe(0);
    const refused = await cni('ADD', { ...cniConfig(node1), cniVersion: '9.9.9' }); // an error the server answers, with its CNI code
    expect(refused.json?.code).toBe(1);
    await stopAgent(stateDir, plan.nodes[1]!.name, 'SIGTERM'); // a flap on every other node
    await restartAgent(stateDir, plan.nodes[1]!.name);
    await until('the CNI requests and the flap scraped', async () =>
      (await prometheus!.query('lightly_cni_errors_total')).length > 0 && (await prometheus!.query('lightly_bgp_session_flaps_total')).length > 0, 30_000);
    await new Promise((r) => setTimeout(r, 3_000)); // a few more scrapes past the last event

    const empty: string[] = [];
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        const samples = await prometheus!.query(expand(expr));
        if (!samples.some((s) => Number.isFinite(s.value))) empty.push(`${panel.title}: ${expr} -> ${JSON.stringify(samples)}`);
      }
    }
    expect(empty).toEqual([]);
    // The CNI panels show this node's ADD and DEL, and the error's CNI code.
    const errors = await prometheus!.query('lightly_cni_errors_total');
    expect(errors.map((e) => [e.metric.verb, e.metric.code])).toContainEqual(['ADD', '1']);
    const counts = await prometheus!.query('lightly_cni_request_duration_seconds_count');
    expect(new Set(counts.map((c) => c.metric.verb))).toEqual(new Set(['ADD', 'DEL']));
  }, 120_000);
});
