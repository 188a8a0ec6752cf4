// The thin shell around `ip`: read our routes as streamed JSON, write a chunk of changes through one `ip -force -batch -`.
import { execa } from 'execa';
import { ROUTE_PROTOCOL } from './protocol-number.js';
import { type Route, routesFromRows } from './desired.js';
import { JsonArraySplitter } from './ip-json.js';

export interface IpOptions {
  /** Run as `ip -n NAME …`, inside this named network namespace (labs, tests); default: our own. */
  netns?: string;
}

/** One batch line the kernel (or `ip`) refused. */
export interface BatchFailure {
  /** 1-based line number in the batch. */
  line: number;
  command: string;
  /** What `ip` printed before "Command failed", e.g. "RTNETLINK answers: File exists". */
  error: string;
}

/** `ip` itself failed (missing namespace, not root, not installed), not a line of the batch. */
export class IpCommandError extends Error {
  override name = 'IpCommandError';
  constructor(
    readonly args: string[],
    readonly stderr: string,
  ) {
    super(`ip ${args.join(' ')}: ${stderr.trim() || 'failed'}`);
  }
}

/**
 * Pairs each "Command failed -:N" of `ip -force -batch -` with the message printed before it.
 * Pure, so it is tested on captured output.
 */
export function parseBatchFailures(stderr: string, lines: string[]): BatchFailure[] {
  const failures: BatchFailure[] = [];
  let pending: string[] = [];
  for (const text of stderr.split('\n')) {
    const m = /^Command failed (?:-|\S+):(\d+)$/.exec(text.trim());
    if (m) {
      const line = Number(m[1]);
      failures.push({ line, command: lines[line - 1] ?? '', error: pending.join('; ') || 'failed' });
      pending = [];
    } else if (text.trim()) {
      pending.push(text.trim());
    }
  }
  return failures;
}

export class Ip {
  constructor(private readonly options: IpOptions = {}) {}

  private args(args: string[]): string[] {
    return this.options.netns ? ['-n', this.options.netns, ...args] : args;
  }

  private async run(args: string[], input?: string) {
    const full = this.args(args);
    try {
      return await execa('ip', full, { input, reject: false, maxBuffer: 1024 * 1024 * 1024 });
    } catch (err) {
      throw new IpCommandError(full, (err as Error).message);
    }
  }

  /**
   * Our routes (protocol 201) in the main table, IPv4 and IPv6. Parsed a pipe-read at a time as `ip`
   * prints them, so reading a full table never holds the event loop for long.
   */
  async readRoutes(): Promise<Route[]> {
    const v4 = await this.readFamily(4);
    return v4.concat(await this.readFamily(6));
  }

  private async readFamily(family: 4 | 6): Promise<Route[]> {
    const args = this.args(['-json', `-${family}`, 'route', 'show', 'proto', String(ROUTE_PROTOCOL), 'table', 'main']);
    const routes: Route[] = [];
    const splitter = new JsonArraySplitter();
    let child;
    try {
      child = execa('ip', args, { reject: false, buffer: false, stdin: 'ignore', stderr: 'pipe' });
    } catch (err) {
      throw new IpCommandError(args, (err as Error).message);
    }
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.stdout?.setEncoding('utf8').on('data', (text: string) => {
      for (const route of routesFromRows(splitter.pushParsed(text), family)) routes.push(route);
    });
    const out = await child;
    if (out.exitCode !== 0) throw new IpCommandError(args, stderr || String(out.message ?? ''));
    return routes;
  }

  /**
   * Runs the lines in one `ip -force -batch -` process (the address family of each line comes from
   * its prefix). -force keeps going past refused lines; those come back as failures.
   */
  async batch(lines: string[]): Promise<BatchFailure[]> {
    if (lines.length === 0) return [];
    const args = ['-force', '-batch', '-'];
    const out = await this.run(args, lines.join('\n') + '\n');
    if (out.exitCode === 0) return [];
    const failures = parseBatchFailures(out.stderr, lines);
    if (failures.length === 0) throw new IpCommandError(this.args(args), out.stderr);
    return failures;
  }
}
