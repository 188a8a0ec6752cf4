// A full table through the whole agent, side by side with BIRD: two identical BIRD senders announce N
// prefixes, one to our agent (dist/bin/lightly-agent.js in its own namespace, installing into that
// namespace's kernel) and one to a BIRD receiver exporting to its own namespace's kernel, both at the
// same moment over sessions already up. Both kernels' routes are counted (KernelWatch), so times are
// to the last route in the kernel, not to the RIB.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { stringify } from 'yaml';
import { NetnsPool, execIn, ipIn } from './netns.js';

/** The i-th generated prefix: /27s from 10.0.0.0 upwards (a million reach into 11.0.0.0/8). */
export function generatedPrefix(i: number): string {
  const a = 10 * 2 ** 24 + i * 32;
  return `${Math.floor(a / 2 ** 24)}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/27`;
}

const AGENT_ADDRESS = '198.51.100.2';
const SENDER_TO_AGENT = '198.51.100.1';
const BIRD_ADDRESS = '203.0.113.2';
const SENDER_TO_BIRD = '203.0.113.1';
const METRICS_PORT = 9477;
/** The two BIRD senders (their configs, control sockets and logs are named so): ours first. */
const SENDERS = ['sender-ours', 'sender-bird'];
/** The agent under test; LIGHTLY_AGENT points at another build (an older commit's, to compare). */
const AGENT_BINARY = process.env.LIGHTLY_AGENT ?? 'dist/bin/lightly-agent.js';

/**
 * Counts the prefixes in one namespace's main routing table from /proc/PID/net/fib_triestat of a
 * process living there, polled every 10 ms, or less often when a read costs more than a fifth of
 * that. (`ip monitor route` lost about half the notifications of a BIRD receiver writing 100k
 * routes: the kernel drops them for a slow reader.)
 */
export class KernelWatch {
  private baseline = 0;
  private readonly holder: ResultPromise;

  constructor(netns: string) {
    this.holder = execa('ip', ['netns', 'exec', netns, 'sleep', '3600'], { reject: false, stdin: 'ignore' });
  }

  /**
   * Read off the event loop: the kernel walks its whole table to answer (1.6 ms at 100,000 routes,
   * 40 ms at 1,000,000), and two of these every 10 ms read synchronously kept this process's event
   * loop busy, which the status probe below, in the same process, counted as the agent's slowness.
   */
  private async prefixes(): Promise<number> {
    const text = await readFile(`/proc/${this.holder.pid}/net/fib_triestat`, 'utf8');
    const main = text.slice(text.indexOf('Main:'));
    return Number(/Prefixes:\s+(\d+)/.exec(main)?.[1] ?? NaN);
  }

  /** What the table holds now counts as zero (call before the table is announced). */
  async setBaseline(): Promise<void> {
    this.baseline = await this.prefixes();
  }

  /** Prefixes added since the baseline. */
  async count(): Promise<number> {
    return (await this.prefixes()) - this.baseline;
  }

  /** Resolves with Date.now() once `n` prefixes beyond the baseline are in; rejects past the deadline. */
  async until(n: number, timeoutMs: number): Promise<number> {
    return (await this.progress(n, timeoutMs)).last;
  }

  /**
   * Watches the count move to `n`: when it first moved, when it had gone 99% of the way (the rate,
   * without the tail), and when it got there. The kernel walks its whole table for each read (1.5
   * ms at 100,000 routes, 37 ms at 1,000,000, measured here), so the pause after a read is at least
   * four times the read: each of the two watchers of a run then takes at most a fifth of a core
   * from the receivers it times. Polled every 10 ms whatever the read cost, the two took most of
   * this machine's two cores through a million-route load, and more from the side that needs
   * more CPU to finish.
   */
  async progress(n: number, timeoutMs: number): Promise<Progress> {
    const from = await this.count();
    const deadline = Date.now() + timeoutMs;
    let first = 0;
    let p99 = 0;
    for (;;) {
      const readStart = performance.now();
      const count = await this.count();
      const readMs = performance.now() - readStart;
      const done = Math.abs(count - from) / Math.max(1, Math.abs(n - from));
      const now = Date.now();
      if (!first && count !== from) first = now;
      if (!p99 && done >= 0.99) p99 = now;
      if (count === n) return { first: first || now, p99: p99 || now, last: now };
      if (now > deadline) throw new Error(`kernel count stayed at ${count}, wanted ${n}`);
      await new Promise((r) => setTimeout(r, Math.max(10, 4 * readMs)));
    }
  }

  stop(): void {
    this.holder.kill();
  }
}

/**
 * Keeps the BIRD senders' main loops awake: a `show status` on each one's control socket every
 * `everyMs`. BIRD 2.0.12's loop polls for up to 3 s when it thinks no event is pending
 * (sysdep/unix/io.c: `poll_tout = (events ? 0 : 3000)`), and an event scheduled after that check
 * then waits for the next timer or socket. A sender so caught holds its last UPDATE (the last ~160
 * of 100,000 prefixes) and End-of-RIB for ~3 s: measured here in 2 to 3 rounds of 5, on either
 * side at random, with `connect retry time 1` the only short timer. That timed the sender, not the
 * receivers, and made the load's ratio swing from 0.35x to 2.9x. Both senders get the same pokes.
 */
export class SenderWake {
  private readonly sockets: Socket[];
  private readonly timer: NodeJS.Timeout;

  constructor(controlSockets: string[], everyMs = 20) {
    this.sockets = controlSockets.map((path) => createConnection({ path }).on('error', () => {}).resume());
    this.timer = setInterval(() => {
      for (const socket of this.sockets) if (socket.writable) socket.write('show status\n');
    }, everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const socket of this.sockets) socket.destroy();
  }
}

/** Asks the agent's status socket for its BGP status every `everyMs`, one request at a time; keeps the slowest answer. */
export class StatusProbe {
  maxMs = 0;
  answers = 0;
  failures: string[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(socketPath: string, everyMs = 50, timeoutMs = 5_000) {
    this.done = (async () => {
      while (this.running) {
        const start = performance.now();
        try {
          await getUnix(socketPath, '/v1/bgp/status', timeoutMs);
          this.answers++;
          this.maxMs = Math.max(this.maxMs, performance.now() - start);
        } catch (err) {
          this.failures.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, everyMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

function getUnix(socketPath: string, path: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface FullTableOptions {
  prefixes: number;
  /** Node's flags for the agent, and its environment additions: the bench runs it as the DaemonSet does (agent-runtime.ts). */
  nodeArgs?: string[];
  env?: Record<string, string>;
}

export type CpuMode = 'all' | 'user' | 'kernel';

/** CPU time from a /proc stat file (a process's or a thread's), ms: utime, stime or both (clock ticks of 10 ms). */
function cpuMsOf(statPath: string, mode: CpuMode): number {
  const fields = readFileSync(statPath, 'utf8').split(') ')[1]!.split(' ');
  const user = Number(fields[11]);
  const kernel = Number(fields[12]);
  return (mode === 'all' ? user + kernel : mode === 'user' ? user : kernel) * 10;
}

/** Date.now() when a kernel's count first moved, was 99% of the way, and arrived. */
export interface Progress {
  first: number;
  p99: number;
  last: number;
}

/** One side's times, ms. */
export interface SideTimes {
  ours: number;
  bird: number;
}

export class FullTableLab {
  readonly dir = mkdtempSync(join(tmpdir(), 'lt-fulltable-'));
  readonly pool = new NetnsPool();
  sender = '';
  us = '';
  birdNs = '';
  agent?: ResultPromise;
  senderWake?: SenderWake;
  oursKernel?: KernelWatch;
  birdKernel?: KernelWatch;
  readonly socket = join(this.dir, 'agent.sock');

  constructor(readonly options: FullTableOptions) {}

  get prefixes(): number {
    return this.options.prefixes;
  }

  /** Namespaces, links, configs; the BIRD receiver and our agent up and listening; the senders not yet. */
  async setUp(): Promise<void> {
    this.sender = await this.pool.create('fts');
    this.us = await this.pool.create('ftu');
    this.birdNs = await this.pool.create('ftb');
    for (const [ns, dev, local, remote] of [[this.us, 'tous', SENDER_TO_AGENT, AGENT_ADDRESS], [this.birdNs, 'tobird', SENDER_TO_BIRD, BIRD_ADDRESS]] as const) {
      await ipIn(this.sender, ['link', 'add', dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ipIn(this.sender, ['addr', 'add', `${local}/24`, 'dev', dev]);
      await ipIn(this.sender, ['link', 'set', dev, 'up']);
      await ipIn(ns, ['addr', 'add', `${remote}/24`, 'dev', 'eth0']);
      await ipIn(ns, ['link', 'set', 'eth0', 'up']);
    }
    const routes: string[] = [];
    for (let i = 0; i < this.prefixes; i++) routes.push(`route ${generatedPrefix(i)} unreachable;`);
    // Disabled until both sessions are up (startSessions): then announced to both at the same moment.
    const staticRoutes = `protocol static generated { disabled; ipv4; ${routes.join('\n')} }`;
    // One BIRD sender per receiver, identical but for the session: a single BIRD feeding two sessions
    // serves one after the other. `strict bind`: two BIRDs in one namespace cannot both listen on *:179.
    // The log says when each session came up, in seconds since the epoch to the millisecond (sessionsUp).
    const senderConf = (name: string, local: string, remote: string, asn: number, file: string): string => `router id ${local};
log "${join(this.dir, `${file}.log`)}" all;
timeformat log "%s.%3f";
debug protocols { states };
protocol device {}
${staticRoutes}
protocol bgp ${name} { connect delay time 0; connect retry time 1; strict bind on; local ${local} as 65000; neighbor ${remote} as ${asn}; ipv4 { export all; import none; }; }
`;
    writeFileSync(join(this.dir, 'sender-ours.conf'), senderConf('peer', SENDER_TO_AGENT, AGENT_ADDRESS, 64512, 'sender-ours'));
    writeFileSync(join(this.dir, 'sender-bird.conf'), senderConf('peer', SENDER_TO_BIRD, BIRD_ADDRESS, 64513, 'sender-bird'));
    routes.length = 0;
    writeFileSync(join(this.dir, 'receiver.conf'), `router id ${BIRD_ADDRESS};
protocol device {}
protocol kernel { ipv4 { export all; import none; }; }
protocol bgp sender { local ${BIRD_ADDRESS} as 64513; neighbor ${SENDER_TO_BIRD} as 65000; passive; ipv4 { import all; export none; }; }
`);
    writeFileSync(join(this.dir, 'agent.yaml'), stringify({
      nodeName: 'fulltable', routerId: AGENT_ADDRESS, asn: 64512, podCIDRs: ['100.64.1.0/24'],
      listen: { address: AGENT_ADDRESS, port: 179 },
      // Passive like the BIRD receiver: the sender connects to both the same way.
      peers: [{ address: SENDER_TO_AGENT, asn: 65000, passive: true }],
      // 0.2 s: after a session drops, our FSM sits Idle refusing connections for this long (BIRD
      // stays in Active and accepts); the FSM is being changed apart from route programming.
      connectRetrySeconds: 0.2,
      maxPrefixes: 2_000_000, statusSocket: this.socket, metricsPort: METRICS_PORT,
      cniServer: { enabled: false }, iprouteDir: join(this.dir, 'iproute2'),
    }));
    this.oursKernel = new KernelWatch(this.us);
    this.birdKernel = new KernelWatch(this.birdNs);
    await this.bird(this.birdNs, 'receiver');
    this.agent = execa('ip', ['netns', 'exec', this.us, process.execPath, ...(this.options.nodeArgs ?? []), AGENT_BINARY, '--config', join(this.dir, 'agent.yaml')], {
      env: this.options.env ?? {}, reject: false, stdin: 'ignore', stdout: { file: join(this.dir, 'agent.log') }, stderr: { file: join(this.dir, 'agent.err') },
    });
    const deadline = Date.now() + 20_000;
    while (!(await getUnix(this.socket, '/v1/node', 1000).then(() => true, () => false))) {
      if (Date.now() > deadline || this.agent.exitCode !== null) throw new Error(`the agent did not start: ${this.agentLog()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Starts both senders and waits until both sessions are up, nothing announced over them yet
   * (announce() sends the table). Timed from the senders' start instead, each side's time would
   * include its sender's connect delay, which BIRD draws at random between 0.75 and 1 s
   * (bgp_start_timer: at least 1 s, less up to a quarter, RFC 4271 §10), independently per sender:
   * up to 250 ms between the two sessions, and ~0.9 s common to both that hid the receivers' own
   * difference in the ratio.
   */
  async startSessions(timeoutMs = 60_000): Promise<void> {
    await new Promise((r) => setTimeout(r, 300)); // the agent's blackhole for its own CIDR goes in first
    await Promise.all(SENDERS.map((name) => this.bird(this.sender, name)));
    const deadline = Date.now() + timeoutMs;
    while ((await Promise.all(SENDERS.map((name) => this.sessionsUp(name)))).some((times) => times.length === 0)) {
      if (Date.now() > deadline) throw new Error(`the senders' sessions did not come up within ${timeoutMs} ms: ${this.agentLog()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Both receivers have sent and received End-of-RIB and announced their own prefixes before the table comes.
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all([this.oursKernel!.setBaseline(), this.birdKernel!.setBaseline()]);
    this.senderWake = new SenderWake(SENDERS.map((name) => join(this.dir, `${name}.ctl`)));
  }

  /** Both senders announce the table (after startSessions()) at the same moment; returns that moment. */
  announce(): Promise<number> {
    return this.senders('enable', 'generated');
  }

  /** Every time the sender's session came up so far (its protocol state went up: Established), Date.now() ms, from its log. */
  async sessionsUp(sender: string): Promise<number[]> {
    const log = await readFile(join(this.dir, `${sender}.log`), 'utf8').catch(() => '');
    return [...log.matchAll(/^(\d+)\.(\d{3}) <TRACE> peer: State changed to up$/gm)].map((m) => Number(m[1]) * 1000 + Number(m[2]));
  }

  /** Times from `from` until each kernel holds `n` generated prefixes (both sides waited for together). */
  async untilBoth(n: number, from: number, timeoutMs: number): Promise<SideTimes> {
    const both = await this.progressBoth(n, timeoutMs);
    return { ours: both.ours.last - from, bird: both.bird.last - from };
  }

  async progressBoth(n: number, timeoutMs: number): Promise<{ ours: Progress; bird: Progress }> {
    const [ours, bird] = await Promise.all([this.oursKernel!.progress(n, timeoutMs), this.birdKernel!.progress(n, timeoutMs)]);
    return { ours, bird };
  }

  /** Runs a birdc command on both senders at once; returns when it was given. */
  async senders(...command: string[]): Promise<number> {
    const t = Date.now();
    await Promise.all(SENDERS.map((name) => this.birdc(name, ...command)));
    return t;
  }

  /**
   * The sessions drop (Cease, so no graceful restart) and come back at once: each side's time from
   * the drop to all withdrawn, plus from its session's return to all reinstalled. Not from the
   * command that brings it back: the sender waits a random 0.75-1 s before it connects (startSessions).
   */
  async flap(timeoutMs: number): Promise<SideTimes> {
    const side = async (name: string, kernel: KernelWatch): Promise<number> => {
      const t = Date.now();
      await this.birdc(name, 'disable', 'peer');
      const withdrawn = (await kernel.until(0, timeoutMs)) - t;
      const upBefore = (await this.sessionsUp(name)).length;
      await this.birdc(name, 'enable', 'peer');
      const reinstalledAt = await kernel.until(this.prefixes, timeoutMs);
      const up = await this.sessionsUp(name);
      if (up.length <= upBefore) throw new Error(`${name}: no new session in its log after the flap`);
      return withdrawn + (reinstalledAt - up.at(-1)!);
    };
    const [ours, bird] = await Promise.all([side('sender-ours', this.oursKernel!), side('sender-bird', this.birdKernel!)]);
    return { ours, bird };
  }

  /** Peak resident memory of the agent so far (VmHWM), MB. */
  agentPeakRssMB(): number {
    const status = readFileSync(`/proc/${this.agent!.pid}/status`, 'utf8');
    return Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024);
  }

  /** The agent's CPU time so far, ms; `user`: only in user mode (our code and its garbage collection, not the kernel's route work). */
  agentCpuMs(mode: CpuMode = 'all'): number {
    return cpuMsOf(`/proc/${this.agent!.pid}/stat`, mode);
  }

  /** The CPU time of the agent's main thread so far, ms: the rest is V8's helper threads (compiling, marking) and the route writers. */
  agentMainThreadCpuMs(): number {
    return cpuMsOf(`/proc/${this.agent!.pid}/task/${this.agent!.pid}/stat`, 'all');
  }

  /** The BIRD receiver's CPU time so far, ms; `kernel`: only in kernel mode (its route inserts, and reading the kernel's notifications back). */
  birdReceiverCpuMs(mode: CpuMode = 'all'): number {
    const pid = readFileSync(join(this.dir, 'receiver.pid'), 'utf8').trim();
    return cpuMsOf(`/proc/${pid}/stat`, mode);
  }

  /** The agent's Prometheus metrics, read from inside its namespace (Node's fetch: no curl needed). */
  private async agentMetrics(): Promise<string> {
    const script = `fetch('http://${AGENT_ADDRESS}:${METRICS_PORT}/metrics', { signal: AbortSignal.timeout(10000) }).then((r) => r.text()).then((t) => process.stdout.write(t))`;
    const out = await execIn(this.us, process.execPath, ['-e', script]);
    if (!String(out.stdout).includes('lightly_')) throw new Error(`no metrics from the agent: ${String(out.stderr)}`);
    return String(out.stdout);
  }

  /** The longest event-loop delay since the agent started, from its metrics. */
  async agentEventLoopMaxMs(): Promise<number> {
    const max = /lightly_event_loop_delay_seconds\{stat="max"\} (\S+)/.exec(await this.agentMetrics())?.[1];
    if (max === undefined) throw new Error('no event-loop metric from the agent');
    return Math.round(Number(max) * 1000);
  }

  /** The agent's garbage collection so far, ms, all kinds (Node's default metrics: the time collections held the main thread). */
  async agentGcMs(): Promise<number> {
    const sums = [...(await this.agentMetrics()).matchAll(/^lightly_agent_nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm)];
    if (sums.length === 0) throw new Error('no GC metric from the agent');
    return Math.round(sums.reduce((total, m) => total + Number(m[1]), 0) * 1000);
  }

  agentLog(): string {
    try {
      return readFileSync(join(this.dir, 'agent.log'), 'utf8').slice(-2000) + readFileSync(join(this.dir, 'agent.err'), 'utf8').slice(-2000);
    } catch {
      return '';
    }
  }

  async tearDown(): Promise<void> {
    this.senderWake?.stop();
    this.oursKernel?.stop();
    this.birdKernel?.stop();
    this.agent?.kill('SIGTERM'); // the agent's own stop (and a --cpu-prof profile, when asked for)
    const exited = await Promise.race([this.agent?.then(() => true, () => true), new Promise((r) => setTimeout(() => r(false), 5_000))]);
    if (!exited) this.agent?.kill('SIGKILL');
    for (const name of [...SENDERS, 'receiver']) await this.birdc(name, 'down');
    await this.pool.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async bird(netns: string, name: string): Promise<void> {
    const out = await execIn(netns, 'bird', ['-c', join(this.dir, `${name}.conf`), '-s', join(this.dir, `${name}.ctl`), '-P', join(this.dir, `${name}.pid`)]);
    if (out.exitCode !== 0) throw new Error(`bird (${name}) did not start: ${String(out.stderr)}`);
  }

  private birdc(name: string, ...command: string[]) {
    return execa('birdc', ['-s', join(this.dir, `${name}.ctl`), ...command], { reject: false, timeout: 30_000 });
  }
}
