// BGP full tables through the WHOLE agent (BIRD sender → agent → its namespace's kernel), side by side
// with a BIRD receiver exporting to its kernel, both fed by identical BIRD senders started together.
import { FullTableLab, type SideTimes, StatusProbe } from '../support/fulltable.js';
import { agentRuntime } from '../support/agent-runtime.js';
import { percentile, ratioLine } from './stats.js';

/** The agent as the DaemonSet runs it, unless BENCH_BGP_NODE_FLAGS says otherwise; BENCH_BGP_NODE_EXTRA adds flags (e.g. --cpu-prof). */
const runtime = () => agentRuntime('BENCH_BGP_NODE_FLAGS', 'BENCH_BGP_NODE_EXTRA');

interface Round {
  load: SideTimes;
  /** From the first route in the kernel to 99% of them: the rate, without the first UPDATE's way through and the sender's tail. */
  bulk: SideTimes;
  /**
   * From the first route in the kernel to the last: the load without the first UPDATE's way through.
   * (Rounds of ~1.5 s or ~4 s, either side, were a BIRD sender holding its last UPDATE ~3 s, until SenderWake.)
   */
  loaded: SideTimes;
  withdraw: SideTimes;
  /** All announced again after the withdrawal: a load with the agent's code already compiled and its table's records idle, not new. */
  reload: SideTimes;
  flap: SideTimes;
  /** Peak RSS over the whole round, and at the end of the first load. */
  peakRssMB: number;
  loadPeakRssMB: number;
  /** CPU through the load and the withdrawal, side by side: who used what, on a machine both share. */
  loadCpu: CpuSplit;
  withdrawCpu: CpuSplit;
  /** Of the agent's CPU through the withdrawal, in user mode: our own work, without the kernel's deletions done in our threads. */
  withdrawUserCpuMs: number;
  /** Of which the main thread spent in garbage collection (the agent's own metrics). */
  withdrawGcMs: number;
  statusMaxMs: number;
  statusFailures: number;
  eventLoopMaxMs: number;
  /** Through withdrawal, reload and the flap (a peer with the full table dropped): slowest status answer, and the event loop's longest delay since the start. */
  flapStatusMaxMs: number;
  /** Peak RSS once the withdrawal, the reload and the flap were done (MB): which phase raises it. */
  phasePeaksMB: number[];
  roundEventLoopMaxMs: number;
}

/**
 * CPU of one phase, ms: the agent and its main thread (the rest is V8's helper threads, compiling and
 * marking, and the route writers, whose time is the kernel's), the BIRD receiver and its kernel part.
 */
interface CpuSplit {
  agent: number;
  main: number;
  bird: number;
  birdKernel: number;
}

/** Reads the CPU counters now; the function it returns gives what each used since. */
function cpuSince(lab: FullTableLab): () => CpuSplit {
  const read = (): CpuSplit => ({ agent: lab.agentCpuMs(), main: lab.agentMainThreadCpuMs(), bird: lab.birdReceiverCpuMs(), birdKernel: lab.birdReceiverCpuMs('kernel') });
  const before = read();
  return () => {
    const now = read();
    return { agent: now.agent - before.agent, main: now.main - before.main, bird: now.bird - before.bird, birdKernel: now.birdKernel - before.birdKernel };
  };
}

const TIMEOUT_MS = 600_000;

/** One round at `prefixes`: load, withdraw all, announce again, a session flap; `phases: 'load'` stops after the load. */
async function round(prefixes: number, phases: 'all' | 'load'): Promise<Round> {
  const { flags, env } = runtime();
  const lab = new FullTableLab({ prefixes, nodeArgs: flags, env });
  try {
    await lab.setUp();
    await lab.startSessions();
    const probe = new StatusProbe(lab.socket);
    const loadCpuSince = cpuSince(lab);
    const t0 = await lab.announce();
    const seen = await lab.progressBoth(prefixes, TIMEOUT_MS);
    const loadCpu = loadCpuSince();
    const load = { ours: seen.ours.last - t0, bird: seen.bird.last - t0 };
    const bulk = { ours: seen.ours.p99 - seen.ours.first, bird: seen.bird.p99 - seen.bird.first };
    const loaded = { ours: seen.ours.last - seen.ours.first, bird: seen.bird.last - seen.bird.first };
    await probe.stop();
    const eventLoopMaxMs = await lab.agentEventLoopMaxMs();
    const loadPeakRssMB = lab.agentPeakRssMB();
    let withdraw: SideTimes = { ours: NaN, bird: NaN };
    let withdrawUserCpuMs = NaN;
    let withdrawGcMs = NaN;
    let withdrawCpu: CpuSplit = { agent: NaN, main: NaN, bird: NaN, birdKernel: NaN };
    let reload: SideTimes = { ours: NaN, bird: NaN };
    let flap: SideTimes = { ours: NaN, bird: NaN };
    let flapStatusMaxMs = NaN;
    let roundEventLoopMaxMs = NaN;
    const phasePeaksMB: number[] = [];
    if (phases === 'all') {
      const later = new StatusProbe(lab.socket);
      const gcBefore = await lab.agentGcMs();
      const userBefore = lab.agentCpuMs('user');
      const withdrawCpuSince = cpuSince(lab);
      withdraw = await lab.untilBoth(0, await lab.senders('disable', 'generated'), TIMEOUT_MS);
      withdrawCpu = withdrawCpuSince();
      withdrawUserCpuMs = lab.agentCpuMs('user') - userBefore;
      withdrawGcMs = (await lab.agentGcMs()) - gcBefore;
      phasePeaksMB.push(lab.agentPeakRssMB());
      reload = await lab.untilBoth(prefixes, await lab.senders('enable', 'generated'), TIMEOUT_MS);
      phasePeaksMB.push(lab.agentPeakRssMB());
      flap = await lab.flap(TIMEOUT_MS);
      phasePeaksMB.push(lab.agentPeakRssMB());
      await later.stop();
      flapStatusMaxMs = later.failures.length ? Infinity : Math.round(later.maxMs);
      roundEventLoopMaxMs = await lab.agentEventLoopMaxMs();
    }
    return { load, bulk, loaded, withdraw, reload, flap, peakRssMB: lab.agentPeakRssMB(), loadPeakRssMB, loadCpu, withdrawCpu, withdrawUserCpuMs, withdrawGcMs, statusMaxMs: Math.round(probe.maxMs), statusFailures: probe.failures.length, eventLoopMaxMs, flapStatusMaxMs, roundEventLoopMaxMs, phasePeaksMB };
  } catch (err) {
    throw new Error(`${(err as Error).message}\nagent log: ${lab.agentLog()}`);
  } finally {
    await lab.tearDown();
  }
}

const median = (rounds: Round[], pick: (r: Round) => number): number => percentile(rounds.map(pick), 50);

/** Least-squares slope of log(time) over log(size): 1 is linear, 2 quadratic. */
export function growthExponent(points: [size: number, ms: number][]): number {
  const xs = points.map(([n]) => Math.log(n));
  const ys = points.map(([, t]) => Math.log(t));
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const num = xs.reduce((s, x, i) => s + (x - mx) * (ys[i]! - my), 0);
  const den = xs.reduce((s, x) => s + (x - mx) ** 2, 0);
  return num / den;
}

/** Medians of CPU splits, as the report prints them. */
function cpuLine(splits: CpuSplit[]): string {
  const m = (pick: (c: CpuSplit) => number): number => percentile(splits.map(pick), 50);
  return `agent ${m((c) => c.agent)} (main thread ${m((c) => c.main)}), BIRD receiver ${m((c) => c.bird)} (in the kernel ${m((c) => c.birdKernel)})`;
}

export async function benchBgp(): Promise<string[]> {
  const rounds = Number(process.env.BENCH_BGP_ROUNDS ?? 3);
  const main = Number(process.env.BENCH_PREFIXES ?? 100_000);
  const sizes = (process.env.BENCH_BGP_SIZES ?? '10000,30000').split(',').filter(Boolean).map(Number);
  const big = Number(process.env.BENCH_BGP_BIG ?? 1_000_000);
  const out: string[] = [];
  const full: Round[] = [];
  for (let i = 0; i < rounds; i++) full.push(await round(main, 'all'));
  const m = (pick: (r: Round) => number): number => median(full, pick);
  out.push(
    `BGP full table through the whole agent: ${main} IPv4 /27s from a BIRD sender to the kernel, side by side with a BIRD receiver exporting to its kernel; medians of ${rounds} rounds (ms)`,
    `  both sessions up, the table announced to both at once; from then to the last route in the kernel: ours ${m((r) => r.load.ours)}, BIRD ${m((r) => r.load.bird)}  (rounds ours/BIRD: ${full.map((r) => `${r.load.ours}/${r.load.bird}`).join(' ')})`,
    '  ' + ratioLine('load to kernel, ours vs BIRD', m((r) => r.load.ours), m((r) => r.load.bird), '<= 1.0x'),
    '  ' + ratioLine('load from the first route in the kernel to the last, ours vs BIRD', m((r) => r.loaded.ours), m((r) => r.loaded.bird), 'reported'),
    '  ' + ratioLine('first route to 99% in the kernel (the rate), ours vs BIRD', m((r) => r.bulk.ours), m((r) => r.bulk.bird), 'reported'),
    '  ' + ratioLine('withdrawal of all, ours vs BIRD', m((r) => r.withdraw.ours), m((r) => r.withdraw.bird), '<= 1.0x'),
    '  ' + ratioLine('all announced again after the withdrawal (the agent warm), ours vs BIRD', m((r) => r.reload.ours), m((r) => r.reload.bird), 'reported'),
    '  ' + ratioLine("session flap without GR (all withdrawn, then from the session's return all reinstalled), ours vs BIRD", m((r) => r.flap.ours), m((r) => r.flap.bird), 'reported'),
    `  agent peak RSS: ${Math.max(...full.map((r) => r.loadPeakRssMB))} MB at most through the first load, ${Math.max(...full.map((r) => r.peakRssMB))} MB through withdrawal, reload and flap (goal <= 120 MB; peak after withdrawal/reload/flap per round: ${full.map((r) => r.phasePeaksMB.join('/')).join(' ')}); of the agent's CPU for the withdrawal, ${m((r) => r.withdrawUserCpuMs)} ms in user mode and ${m((r) => r.withdrawGcMs)} ms garbage collection`,
    `  CPU side by side (ms): the load ${cpuLine(full.map((r) => r.loadCpu))}; the withdrawal ${cpuLine(full.map((r) => r.withdrawCpu))}`,
    `  during the load: slowest status-socket answer ${Math.max(...full.map((r) => r.statusMaxMs))} ms (failures ${full.reduce((s, r) => s + r.statusFailures, 0)}), longest event-loop delay ${Math.max(...full.map((r) => r.eventLoopMaxMs))} ms (goal <= 100 ms each)`,
    `  through withdrawal, reload and flap (the peer with the full table dropped): slowest status-socket answer ${Math.max(...full.map((r) => r.flapStatusMaxMs))} ms; longest event-loop delay of the whole round ${Math.max(...full.map((r) => r.roundEventLoopMaxMs))} ms (goal <= 100 ms each)`,
  );
  const series = { load: { ours: [] as [number, number][], bird: [] as [number, number][] }, bulk: { ours: [] as [number, number][], bird: [] as [number, number][] } };
  const addPoint = (size: number, rs: Round[]): void => {
    for (const kind of ['load', 'bulk'] as const) {
      series[kind].ours.push([size, median(rs, (r) => r[kind].ours)]);
      series[kind].bird.push([size, median(rs, (r) => r[kind].bird)]);
    }
  };
  for (const size of sizes) {
    const rs: Round[] = [];
    for (let i = 0; i < rounds; i++) rs.push(await round(size, 'load'));
    addPoint(size, rs);
  }
  addPoint(main, full);
  const growth = (what: string, s: { ours: [number, number][]; bird: [number, number][] }, goal: string): string =>
    `  growth of ${what} over ${s.ours.map(([n]) => n).join('/')}: ours ${s.ours.map(([, t]) => t).join('/')} ms, exponent ${growthExponent(s.ours).toFixed(2)} (${goal}); BIRD ${s.bird.map(([, t]) => t).join('/')} ms, exponent ${growthExponent(s.bird).toFixed(2)}`;
  out.push(growth('time to kernel (announcement to last route)', series.load, 'goal <= 1.1'), growth('first route to 99% in the kernel', series.bulk, 'goal <= 1.1'));
  if (big > 0) {
    const r = await round(big, 'load');
    out.push(
      `  ${big} prefixes (one round): ours ${r.load.ours} ms, BIRD ${r.load.bird} ms (first to 99%: ${r.bulk.ours}/${r.bulk.bird}, first to last: ${r.loaded.ours}/${r.loaded.bird}); ` + ratioLine('ratio', r.load.ours, r.load.bird, '<= 1.0x') +
        `; agent peak RSS ${r.peakRssMB} MB; CPU ${cpuLine([r.loadCpu])}; slowest status answer ${r.statusMaxMs} ms, longest event-loop delay ${r.eventLoopMaxMs} ms`,
    );
  }
  return out;
}
