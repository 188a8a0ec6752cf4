// The thin shell around `ip`: read our routes as JSON, write many changes through one `ip -force -batch -`.
import { execa } from 'execa';
import { ROUTE_PROTOCOL } from './protocol-number.js';
import { type Route, parseIpRoutes } from './desired.js';

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

  /** Our routes (protocol 201) in the main table, IPv4 and IPv6. */
  async readRoutes(): Promise<Route[]> {
    const read = async (family: 4 | 6): Promise<Route[]> => {
      const args = ['-json', `-${family}`, 'route', 'show', 'proto', String(ROUTE_PROTOCOL), 'table', 'main'];
      const out = await this.run(args);
      if (out.exitCode !== 0) throw new IpCommandError(this.args(args), out.stderr);
      return parseIpRoutes(out.stdout, family);
    };
    const [v4, v6] = await Promise.all([read(4), read(6)]);
    return [...v4, ...v6];
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
