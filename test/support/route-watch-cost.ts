// What watching the kernel costs while 100,000 of our own routes come and go, in a throwaway namespace:
// the addon's rtnetlink watcher (our protocol dropped in the kernel) against `ip monitor` and its line
// scanning, and no watcher at all (the floor: feeding `ip -batch`). A direct measurement for
// docs/concepts.md, not a bench:
//   node --import tsx test/support/route-watch-cost.ts [routes=100000] [runs=3]
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { nativeAddon } from '../../native/native.js';
import { ROUTE_PROTOCOL } from '../../routes/protocol-number.js';
import { watchKernelChanges } from '../../routes/route-watch.js';
import { NetnsPool, addConnectedLink, ipIn, requireNetworkTools } from './netns.js';
import { until } from './wait.js';

const routes = Number(process.argv[2] ?? 100_000);
const runs = Number(process.argv[3] ?? 3);
const TICK_MS = 1000 / 100; // USER_HZ, the unit of /proc/PID/stat's times

/** CPU of a child so far, from /proc (the child is alive until we kill it). */
function childCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime, stime
}

type Via = 'none' | 'netlink' | 'ip monitor';

async function run(ns: string, via: Via) {
  let sentinel = 0;
  const watch = via === 'none' ? undefined : watchKernelChanges({ addon: via === 'netlink' ? nativeAddon : undefined, netns: ns, onChange: () => sentinel++ });
  if (watch && watch.via !== via) throw new Error(`wanted ${via}, got ${watch.via}`);
  await new Promise((r) => setTimeout(r, 300)); // ip monitor up and subscribed
  const monitorPid = via === 'ip monitor' ? Number((await execa('pgrep', ['-P', String(process.pid), '-f', `ip -n ${ns} monitor`])).stdout.trim()) : 0;
  const monitorBefore = monitorPid ? childCpuMs(monitorPid) : 0;
  const lines = (op: string) => Array.from({ length: routes }, (_, i) => `route ${op} 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 via 192.0.2.2 proto ${ROUTE_PROTOCOL}`).join('\n') + '\n';
  const adds = lines('add');
  const deletes = lines('del');
  const cpu = process.cpuUsage();
  const started = performance.now();
  await execa('ip', ['-n', ns, '-batch', '-'], { input: adds });
  await execa('ip', ['-n', ns, '-batch', '-'], { input: deletes });
  // A route of another protocol last: once the watcher reports it, it has read everything before it.
  await ipIn(ns, ['route', 'add', '10.99.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
  if (watch) await until('the watcher to catch up', () => sentinel > 0, 120_000, { pollMs: 5 });
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const monitorMs = monitorPid ? childCpuMs(monitorPid) - monitorBefore : 0;
  watch?.close();
  await ipIn(ns, ['route', 'del', '10.99.0.0/24']);
  return { via, wallMs: Math.round(wallMs), watcherCpuMs: Math.round((used.user + used.system) / 1000), ipMonitorCpuMs: Math.round(monitorMs) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  await requireNetworkTools(['ip', 'pgrep']);
  const pool = new NetnsPool();
  try {
    const ns = await pool.create('rwcost');
    await addConnectedLink(ns, 'va', 'vb', ['192.0.2.1/24']);
    const results: Awaited<ReturnType<typeof run>>[] = [];
    for (let i = 0; i < runs; i++) for (const via of ['none', 'netlink', 'ip monitor'] as const) results.push(await run(ns, via));
    for (const r of results) console.log(JSON.stringify(r));
    for (const via of ['none', 'netlink', 'ip monitor'] as const) {
      const mine = results.filter((r) => r.via === via);
      console.log(`${via}: ${routes} adds + ${routes} deletes of proto ${ROUTE_PROTOCOL}, median of ${runs}: wall ${median(mine.map((r) => r.wallMs))} ms, watcher process CPU ${median(mine.map((r) => r.watcherCpuMs))} ms, ip monitor CPU ${median(mine.map((r) => r.ipMonitorCpuMs))} ms`);
    }
  } finally {
    await pool.cleanup();
  }
}

await main();
