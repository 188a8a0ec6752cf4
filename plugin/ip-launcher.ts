// Starts `ip -n POD -batch -` for the CNI server through long-lived /bin/sh processes.
//
// Why: the pod-side batch needs a process inside the pod's namespace, one per ADD. Node forks
// itself to start it, and forking a process with Node's heap costs about a millisecond more than
// forking a small shell (2.2 ms against 1.3 ms measured here, a tenth of a whole ADD). The shell
// gets each batch as a quoted here-document, so nothing in it is expanded; the command line holds
// only tokens checked against SAFE_TOKEN.
//
// Every job has a deadline counted from when it was asked for. A job still queued at its deadline
// is dropped, so it never runs later; one running is killed with its shell's whole process group.
// A few shells run jobs side by side, so one stuck `ip` does not hold up the ADDs behind it.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { IpBatchError, type IpRunner } from './ip-runner.js';

const SAFE_TOKEN = /^[A-Za-z0-9._=/-]+$/;
const END_OF_BATCH = '__LIGHTLY_END_OF_BATCH__';

export interface LauncherOptions {
  /** Shells running jobs at once. */
  shells?: number;
  /** From the call to the job's end. */
  deadlineMs?: number;
  /** The ip binary (tests put a fake one here). */
  ip?: string;
}

interface Job {
  args: string[];
  lines: string[];
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  deadline: number;
  shell?: Shell;
}

/** A job with less time left than this is not started: it could only be killed midway. */
const MIN_START_MS = 50;

/** One /bin/sh that runs one job at a time, in its own process group so a stuck job can be killed. */
class Shell {
  readonly child: ChildProcessWithoutNullStreams;
  private output = '';
  private seq = 0;
  private marker = '';
  job?: Job;

  constructor(private readonly onSettled: (shell: Shell, job: Job, err?: Error) => void) {
    this.child = spawn('/bin/sh', [], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => {
      this.output += chunk;
      this.settle();
    });
    this.child.stderr.resume();
    this.child.stdin.on('error', () => this.kill());
    this.child.on('exit', () => {
      const job = this.job;
      this.job = undefined;
      if (job) this.onSettled(this, job, new IpBatchError('the ip launcher shell exited', job.lines));
    });
  }

  start(job: Job, ip: string): void {
    this.job = job;
    this.output = '';
    this.seq = (this.seq + 1) % 100_000_000;
    this.marker = `__lightly_done_${this.seq}`;
    this.child.stdin.write(`${ip} ${job.args.join(' ')} -batch - 2>&1 <<'${END_OF_BATCH}'\n${job.lines.join('\n')}\n${END_OF_BATCH}\necho "${this.marker} $?"\n`);
  }

  private settle(): void {
    const job = this.job;
    if (!job) return;
    const done = new RegExp(`${this.marker} (\\d+)\\n`).exec(this.output);
    if (!done) return;
    const text = this.output.slice(0, done.index).trim();
    this.output = '';
    this.job = undefined;
    this.onSettled(this, job, done[1] === '0' ? undefined : new IpBatchError(text || `ip exited with ${done[1]}`, job.lines));
  }

  kill(): void {
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export class ShellIpLauncher {
  private readonly idle: Shell[] = [];
  private readonly busy = new Set<Shell>();
  private readonly queue: Job[] = [];
  private readonly shells: number;
  private readonly deadlineMs: number;
  private readonly ip: string;
  private closed = false;

  constructor(options: LauncherOptions = {}) {
    this.shells = options.shells ?? 4;
    this.deadlineMs = options.deadlineMs ?? 10_000;
    this.ip = options.ip ?? 'ip';
    if (!SAFE_TOKEN.test(this.ip)) throw new Error(`unsafe ip path ${this.ip}`);
  }

  /** Whether `ip` with these arguments can go through the shell (else run it directly). */
  static accepts(args: string[], lines: string[]): boolean {
    return args.every((a) => SAFE_TOKEN.test(a)) && lines.every((l) => !l.includes('\n') && l !== END_OF_BATCH);
  }

  /** Runs `ip ARGS -batch -` with the lines; rejects with ip's output when it exits non-zero. */
  run(args: string[], lines: string[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('ip launcher closed'));
    if (!ShellIpLauncher.accepts(args, lines)) return Promise.reject(new Error(`unsafe ip arguments for the shell: ${args.join(' ')}`));
    return new Promise((resolve, reject) => {
      const job: Job = { args, lines, resolve, reject, deadline: Date.now() + this.deadlineMs, timer: setTimeout(() => this.expire(job), this.deadlineMs) };
      this.queue.push(job);
      this.pump();
    });
  }

  close(): void {
    this.closed = true;
    for (const job of this.queue.splice(0)) {
      clearTimeout(job.timer);
      job.reject(new Error('ip launcher closed'));
    }
    for (const shell of [...this.idle.splice(0), ...this.busy]) {
      shell.child.stdin.end();
      if (shell.job) shell.kill();
    }
  }

  private expire(job: Job): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    const shell = job.shell;
    if (shell?.job === job) {
      // Killed with everything it started, and never used again; its exit is not this job's news.
      shell.job = undefined;
      this.busy.delete(shell);
      shell.kill();
    }
    job.reject(new IpBatchError(`ip ${job.args.join(' ')} did not finish within ${this.deadlineMs} ms`, job.lines));
    this.pump();
  }

  private readonly settled = (shell: Shell, job: Job, err?: Error): void => {
    clearTimeout(job.timer);
    this.busy.delete(shell);
    if (shell.child.exitCode === null && shell.child.signalCode === null && !this.closed) this.idle.push(shell);
    if (err) job.reject(err);
    else job.resolve();
    this.pump();
  };

  private pump(): void {
    while (this.queue.length > 0 && (this.idle.length > 0 || this.busy.size < this.shells)) {
      const job = this.queue.shift()!;
      if (job.deadline - Date.now() < MIN_START_MS) {
        // Its timer is due about now (timers of one moment fire one by one): it never starts.
        clearTimeout(job.timer);
        this.queue.unshift(job);
        this.expire(job);
        return;
      }
      let shell = this.idle.pop();
      while (shell && (shell.child.exitCode !== null || shell.child.signalCode !== null)) shell = this.idle.pop();
      shell ??= new Shell(this.settled);
      this.busy.add(shell);
      job.shell = shell;
      shell.start(job, this.ip);
    }
  }
}

/** An IpRunner inside one namespace, started through the launcher. */
export function launchedRunner(launcher: ShellIpLauncher, ipArgs: string[]): IpRunner {
  return { batch: (lines) => launcher.run(ipArgs, lines), close: () => undefined };
}
