// Captures what docs/operations.md shows from a real lab: `lightlyctl doctor` on a broken path, and
// Prometheus's graph page of the lab's metrics (Debian's prometheus and headless chromium, both run in
// the lab's fabric namespace). Run as root after npm run build:  node --import tsx scripts/docs-captures.ts
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { down, restartAgent, stopAgent, up } from '../deploy/lab/lab.js';
import { LAB_METRICS_PORT, nodeAddress } from '../deploy/lab/topology.js';
import { PROMETHEUS_URL, startLabPrometheus } from '../test/support/prometheus.js';
import { until } from '../test/support/wait.js';

const PNG = resolve('docs/images/lab-metrics.png');
const EXPR = 'lightly_bgp_session_state';

const prefix = `lt-${randomBytes(2).toString('hex')}-`;
const work = mkdtempSync(join(tmpdir(), 'lt-captures-'));
const stateDir = join(work, 'state');
const { plan } = await up({ nodes: 3, pods: 1, prefix, stateDir, holdTime: 3, tor: 'mesh' }, (m) => console.error(m));
const prometheus = await startLabPrometheus(plan.fabricNetns, join(work, 'prometheus'), plan.nodes.map((n) => `${nodeAddress(n.index)}:${LAB_METRICS_PORT}`), 180_000);
try {
  await until('sessions up and scraped', async () => (await prometheus.query(`count(${EXPR} == 6)`))[0]?.value === 6, 30_000);
  const [n1, n2] = plan.nodes;
  // A failure worth a picture and a doctor run: node-2's agent goes, its sessions drop, then it comes back.
  await new Promise((r) => setTimeout(r, 20_000));
  await stopAgent(stateDir, n2!.name, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 2_000));
  const doctor = await execa(process.execPath, ['dist/bin/lightlyctl.js', 'doctor', n1!.pods[0]!.name, n2!.pods[0]!.name, '--lab', stateDir], { reject: false });
  console.log(`$ lightlyctl doctor ${n1!.pods[0]!.name} ${n2!.pods[0]!.name}\n${doctor.stdout}\n(exit ${doctor.exitCode})`);
  await new Promise((r) => setTimeout(r, 15_000));
  await restartAgent(stateDir, n2!.name);
  await new Promise((r) => setTimeout(r, 20_000));
  const profile = mkdtempSync(join(tmpdir(), 'lt-chromium-'));
  const url = `${PROMETHEUS_URL}/graph?g0.expr=${encodeURIComponent(EXPR)}&g0.tab=0&g0.range_input=2m`;
  const shot = await execa('ip', ['netns', 'exec', plan.fabricNetns, '/usr/bin/chromium', '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--window-size=1280,900',
    '--virtual-time-budget=15000', '--hide-scrollbars', `--screenshot=${PNG}`, url], { reject: false, timeout: 120_000 });
  rmSync(profile, { recursive: true, force: true });
  if (shot.exitCode !== 0) throw new Error(`chromium: ${shot.stderr}`);
  console.error(`screenshot: ${PNG}`);
} finally {
  await prometheus.stop();
  await down(stateDir, prefix, (m) => console.error(m));
  rmSync(work, { recursive: true, force: true });
}
