// Kubernetes mode at scale: the agent's RSS with 100, 1,000 and 5,000 realistic (~11.6 KB) Nodes in a
// fake API server, next to a bare Node process and, with BENCH_KUBE_BASE=<commit>, the agent of that
// commit, all measured in the same run. Everything runs in a throwaway namespace. The agent runs with
// the node flags and MALLOC_ARENA_MAX of the DaemonSet, so the figures are those of what ships.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type ResultPromise, execa } from 'execa';
import { build } from 'esbuild';
import { agentRuntime } from '../support/agent-runtime.js';
import { kubeConfigYaml } from '../support/fake-kube.js';
import { NetnsPool, execIn, ipIn, killProcessesIn } from '../support/netns.js';

const MB = 1024 * 1024;

export function rssOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The agent bundle of another commit, built from `git archive` into a temporary directory. */
async function buildBase(commit: string, dir: string): Promise<string> {
  const src = join(dir, 'base');
  await execa('sh', ['-c', `mkdir -p ${src} && git archive ${commit} | tar -x -C ${src}`]);
  symlinkSync(resolve('node_modules'), join(src, 'node_modules'));
  const outfile = join(dir, 'base-agent.mjs');
  await build({ entryPoints: [join(src, 'agent/main.ts')], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'error',
    banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" } });
  return outfile;
}

/** BENCH_KUBE_NODE_FLAGS (and MALLOC_ARENA_MAX from the environment) when set, else what the DaemonSet runs. */
const runtime = () => agentRuntime('BENCH_KUBE_NODE_FLAGS');

interface Sample {
  rssMB: number;
  peakMB: number;
  cniMB: number;
  listedMs: number;
}

async function measure(agentBundle: string, nodes: number): Promise<Sample> {
  const pool = new NetnsPool();
  const dir = mkdtempSync(join(tmpdir(), 'lt-bench-kube-'));
  let api: ResultPromise | undefined;
  let agent: ResultPromise | undefined;
  try {
    const ns = await pool.create('kube');
    await ipIn(ns, ['addr', 'add', '10.0.0.1/32', 'dev', 'lo']);
    api = execIn(ns, process.execPath, ['--import', 'tsx', 'test/support/fake-kube-main.ts', '--port', '6443', '--nodes', String(nodes)], { timeout: 600_000 });
    await new Promise<void>((done, fail) => {
      api!.stdout?.on('data', (d: Buffer) => d.toString().includes('listening') && done());
      void api!.then((r) => fail(new Error(`fake API exited: ${r.stderr}`)));
    });
    writeFileSync(join(dir, 'kubeconfig'), kubeConfigYaml('http://127.0.0.1:6443'));
    const sock = join(dir, 'agent.sock');
    writeFileSync(join(dir, 'agent.yaml'), JSON.stringify({ statusSocket: sock, listen: { address: '10.0.0.1', port: 179 }, iprouteDir: dir, cniServer: { enabled: true, addrFile: join(dir, 'cni.addr') } }));
    const t0 = Date.now();
    const { flags, env } = runtime();
    agent = execIn(ns, process.execPath, [...flags, agentBundle, '--kubernetes', '--config', join(dir, 'agent.yaml')], { env: { KUBECONFIG: join(dir, 'kubeconfig'), NODE_NAME: 'node-1', ...env }, timeout: 600_000 });
    const peers = async (): Promise<number> => {
      if (!existsSync(sock)) return -1;
      const out = await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', sock, 'bgp', 'status', '--json'], { reject: false });
      return out.exitCode === 0 ? (JSON.parse(out.stdout) as { peers: unknown[] }).peers.length : -1;
    };
    await until(`the agent with ${nodes - 1} peers`, async () => (await peers()) === nodes - 1, Number(process.env.BENCH_KUBE_TIMEOUT_MS ?? 300_000)).catch(async (err: Error) => {
      agent?.kill('SIGKILL');
      const out = await agent!;
      throw new Error(`${err.message}; agent output: ${String(out.stdout).slice(-1500)} ${String(out.stderr).slice(-500)}`);
    });
    const listedMs = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 30_000)); // settle: peers retry, GC gives back what the listing grew
    let rss = 0;
    for (let i = 0; i < 5; i++) {
      rss = Math.max(rss, rssOf(agent.pid!).rss);
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const cni = childrenOf(agent.pid!).reduce((sum, pid) => sum + rssOf(pid).rss, 0);
    return { rssMB: Math.round(rss / MB), peakMB: Math.round(rssOf(agent.pid!).hwm / MB), cniMB: Math.round(cni / MB), listedMs };
  } finally {
    // Everything in the namespace, the agent's CNI server child included (it holds the agent's stdout).
    await killProcessesIn(pool.names);
    agent?.kill('SIGKILL');
    api?.kill('SIGKILL');
    await Promise.allSettled([agent, api]);
    await pool.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function bareNodeMB(): Promise<number> {
  const child = execa(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
  await new Promise((r) => setTimeout(r, 1_000));
  const mb = Math.round(rssOf(child.pid!).rss / MB);
  child.kill();
  await child.catch(() => undefined);
  return mb;
}

export async function benchKube(counts = (process.env.BENCH_KUBE_NODES ?? '100,1000,5000').split(',').map(Number)): Promise<string[]> {
  if (!existsSync('dist/bin/lightly-agent.js')) throw new Error('dist/bin/lightly-agent.js is missing: run npm run build');
  const { flags, env } = runtime();
  const how = [flags.length ? `node ${flags.join(' ')}` : 'no node flags', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)].join(', ');
  const lines = [`Kubernetes mode: agent RSS with N realistic Nodes (~11.6 KB each) in a fake API, full mesh (peers unreachable), settled 30 s (${how}); bare Node ${await bareNodeMB()} MB`];
  const base = process.env.BENCH_KUBE_BASE;
  const dir = mkdtempSync(join(tmpdir(), 'lt-bench-kubebase-'));
  try {
    const baseBundle = base ? await buildBase(base, dir) : undefined;
    for (const n of counts) {
      const ours = await measure(resolve('dist/bin/lightly-agent.js'), n);
      let line = `  ${n} Nodes: agent RSS ${ours.rssMB} MB (peak ${ours.peakMB} MB), CNI server ${ours.cniMB} MB, all Nodes listed and peered in ${ours.listedMs} ms`;
      if (n === 1000) line += ` (goal < 100 MB: ${ours.rssMB < 100 ? 'met' : 'NOT met'})`;
      if (baseBundle) {
        const theirs = await measure(baseBundle, n);
        line += `; ${base} agent ${theirs.rssMB} MB (peak ${theirs.peakMB} MB): ratio ${(ours.rssMB / theirs.rssMB).toFixed(2)}x`;
      }
      lines.push(line);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return lines;
}
