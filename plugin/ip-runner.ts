// Runs `ip -batch` lines in the current namespace: a process per call, or one long-lived process.
//
// Why a long-lived one: starting a process costs more here than the whole netlink work of an ADD
// (about 10 ms from Node on these machines). The CNI server keeps one `ip -force -batch -` open and
// ends every request with a command that must fail on a name we never create; its error on stderr
// is the acknowledgement that every line before it has run, and any other error in between is ours.
// ip caches interface names to indexes for its lifetime, so a veth deleted and made again under the
// same name answers "No such device"; then the process is replaced (fresh cache) and the request run
// once more, which is why the lines sent here must be idempotent (set, replace, del).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export class IpBatchError extends Error {
  constructor(
    message: string,
    readonly lines: string[],
  ) {
    super(message);
    this.name = 'IpBatchError';
  }
}

/**
 * A command as a line for `ip -batch`, or undefined when the line reader cannot carry it. That
 * reader cuts the line at '#', joins a line ending in a backslash with the next, splits words at
 * white space, and takes a word starting with a quote up to the same quote.
 */
export function batchLine(argv: string[]): string | undefined {
  const words: string[] = [];
  for (const word of argv) {
    if (word === '' || /[#\n\0]/.test(word)) return undefined;
    if (!/^['"]|[\s\\]/.test(word)) words.push(word);
    else if (!word.includes('"')) words.push(`"${word}"`);
    else if (!word.includes("'")) words.push(`'${word}'`);
    else return undefined;
  }
  return words.join(' ');
}

/** Every command as a batch line, or undefined when any cannot be one. */
export function batchLines(commands: string[][]): string[] | undefined {
  const lines = commands.map(batchLine);
  return lines.every((l): l is string => l !== undefined) ? lines : undefined;
}

export interface IpRunner {
  /** Runs the lines in order; rejects with the first error ip reported, after running all of them. */
  batch(lines: string[]): Promise<void>;
  close(): void;
}

/**
 * One `ip -batch -` process per call (stops at the first failing line). Plain child_process rather
 * than execa: this is the one spawn on the ADD hot path, and execa's extra work measured about 4 ms
 * a call here, a tenth of a whole ADD.
 */
export class SpawnIpRunner implements IpRunner {
  /** `command` runs ip: `['ip']`, `['ip', '-n', name]`, `['nsenter', '--net=PATH', 'ip']`. */
  constructor(private readonly command: string[] = ['ip']) {}

  batch(lines: string[]): Promise<void> {
    const [cmd, ...args] = [...this.command, '-batch', '-'];
    return new Promise((resolve, reject) => {
      const child = spawn(cmd!, args, { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => (stderr += chunk));
      child.on('error', (err) => reject(new IpBatchError(`cannot run ${cmd}: ${err.message}`, lines)));
      child.on('close', (code) => {
        if (code === 0) resolve();
        else reject(new IpBatchError(stderr.trim() || `${cmd} exited with ${code}`, lines));
      });
      child.stdin.on('error', () => undefined); // reported through the exit code
      child.stdin.end(lines.join('\n') + '\n');
    });
  }

  /** Runs each command as its own `ip` with these arguments, stopping at the first that fails. */
  async each(commands: string[][]): Promise<void> {
    const [cmd, ...prefix] = this.command;
    for (const argv of commands) {
      await new Promise<void>((resolve, reject) => {
        const child = spawn(cmd!, [...prefix, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (chunk: string) => (stderr += chunk));
        child.on('error', (err) => reject(new IpBatchError(`cannot run ${cmd}: ${err.message}`, [argv.join(' ')])));
        child.on('close', (code) => (code === 0 ? resolve() : reject(new IpBatchError(stderr.trim() || `${cmd} exited with ${code}`, [argv.join(' ')]))));
      });
    }
  }

  close(): void {}
}

interface Pending {
  lines: string[];
  marker: string;
  retried: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
  deadline: number;
}

/** A batch with less time left than this is not started: it could only be killed midway. */
const MIN_START_MS = 50;

/**
 * A long-lived `ip -force -batch -`; requests run one after another. Each has a deadline from when
 * it was asked for: queued past it, it is dropped unrun; running past it, the process is killed.
 */
export class PersistentIpRunner implements IpRunner {
  private child?: ChildProcessWithoutNullStreams;
  private stderr = '';
  private readonly queue: Pending[] = [];
  private inFlight?: Pending;
  private seq = 0;

  /** `ip` is the binary (tests put a fake one here). */
  constructor(
    private readonly deadlineMs = 10_000,
    private readonly ip = 'ip',
  ) {}

  batch(lines: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.seq = (this.seq + 1) % 100_000_000;
      const pending: Pending = { lines, marker: `lt-ack-${this.seq}`, retried: false, resolve, reject, deadline: Date.now() + this.deadlineMs };
      pending.timer = setTimeout(() => this.expire(pending), this.deadlineMs);
      pending.resolve = () => (clearTimeout(pending.timer), resolve());
      pending.reject = (err) => (clearTimeout(pending.timer), reject(err));
      this.queue.push(pending);
      this.pump();
    });
  }

  private expire(pending: Pending): void {
    const queued = this.queue.findIndex((p) => p.marker === pending.marker);
    if (queued >= 0) this.queue.splice(queued, 1);
    if (this.inFlight?.marker === pending.marker) {
      this.inFlight = undefined;
      const child = this.child;
      this.replaceChild();
      child?.kill('SIGKILL');
    }
    pending.reject(new IpBatchError(`ip -batch did not finish within ${this.deadlineMs} ms`, pending.lines));
    this.pump();
  }

  private ensureChild(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn(this.ip, ['-force', '-batch', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.resume(); // our commands print nothing on success
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      this.stderr += chunk;
      this.settle();
    });
    child.on('exit', () => {
      if (this.child !== child) return; // a replaced process: its requests already moved on
      this.child = undefined;
      const failed = this.inFlight;
      this.inFlight = undefined;
      this.stderr = '';
      failed?.reject(new IpBatchError('ip -batch exited', failed.lines));
      this.pump();
    });
    child.stdin.on('error', () => child.kill());
    this.child = child;
    return child;
  }

  private pump(): void {
    if (this.inFlight) return;
    const next = this.queue.shift();
    if (!next) return;
    if (next.deadline - Date.now() < MIN_START_MS) {
      this.queue.unshift(next);
      this.expire(next);
      return;
    }
    this.inFlight = next;
    this.stderr = '';
    this.ensureChild().stdin.write([...next.lines, `link show dev ${next.marker}`].join('\n') + '\n');
  }

  private settle(): void {
    const pending = this.inFlight;
    if (!pending) return;
    const ack = `Device "${pending.marker}" does not exist.`;
    const at = this.stderr.indexOf(ack);
    if (at < 0) return;
    // The marker's own "Command failed -:N" line follows; wait until it is whole.
    const failedAt = this.stderr.indexOf('Command failed', at);
    const lineEnd = failedAt < 0 ? -1 : this.stderr.indexOf('\n', failedAt);
    if (lineEnd < 0) return;
    const errors = this.stderr.slice(0, at).trim();
    this.stderr = this.stderr.slice(lineEnd + 1);
    this.inFlight = undefined;
    if (errors && /No such device/.test(errors) && !pending.retried) {
      // A stale name cache: retry on a fresh process once this one has exited.
      this.queue.unshift({ ...pending, retried: true });
      this.replaceChild();
      this.pump();
      return;
    }
    if (errors) pending.reject(new IpBatchError(errors, pending.lines));
    else pending.resolve();
    this.pump();
  }

  /** Lets the current process finish on its own, detached, so the next request starts a fresh one. */
  private replaceChild(): void {
    const old = this.child;
    this.child = undefined;
    this.stderr = '';
    old?.stderr.removeAllListeners('data');
    old?.stdin.end();
  }

  close(): void {
    this.child?.stdin.end();
    this.child?.kill();
  }
}
