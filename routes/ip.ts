// The thin shell around `ip`: read our routes as streamed JSON, write a chunk of changes through one `ip -force -batch -`.
import { execa } from 'execa';
import { ROUTE_PROTOCOL } from './protocol-number.js';
import { type KernelRoute, routesFromRows } from './desired.js';
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
 * Runs `ip ARGS` (with -json) and hands over the rows of the array it prints a pipe-read at a time, so
 * a table of a million routes never sits in memory as one text nor holds the event loop in one
 * JSON.parse. `keep` sees each row's JSON text first: rows it refuses are never parsed.
 */
export async function streamIpJson(args: string[], onRows: (rows: unknown[]) => void, options: { keep?: (row: string) => boolean; timeout?: number } = {}): Promise<void> {
  const splitter = new JsonArraySplitter();
  let child;
  try {
    child = execa('ip', args, { reject: false, buffer: false, stdin: 'ignore', stderr: 'pipe', timeout: options.timeout });
  } catch (err) {
    throw new IpCommandError(args, (err as Error).message);
  }
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    const keep = options.keep;
    if (!keep) return onRows(splitter.pushParsed(text));
    const rows = splitter.push(text).filter(keep);
    if (rows.length) onRows(JSON.parse(`[${rows.join(',')}]`) as unknown[]);
  });
  const out = await child;
  if (out.exitCode !== 0) throw new IpCommandError(args, stderr || String(out.message ?? ''));
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
  async readRoutes(): Promise<KernelRoute[]> {
    const v4 = await this.readFamily(4);
    return v4.concat(await this.readFamily(6));
  }

  private async readFamily(family: 4 | 6): Promise<KernelRoute[]> {
    const args = this.args(['-json', `-${family}`, 'route', 'show', 'proto', String(ROUTE_PROTOCOL), 'table', 'main']);
    const routes: KernelRoute[] = [];
    await streamIpJson(args, (rows) => {
      for (const route of routesFromRows(rows, family)) routes.push(route);
    });
    return routes;
  }

  /**
   * Runs the lines through a long-lived `ip -force -batch -` (see IpBatchStream); -force keeps going
   * past refused lines, which come back as failures. Calls may overlap: they run in order.
   */
  batch(lines: string[]): Promise<BatchFailure[]> {
    this.stream ??= new IpBatchStream(this.args(['-force', '-batch', '-']));
    return this.stream.run(lines);
  }

  private stream?: IpBatchStream;

  /** Ends the batch process (it finishes what it was given). */
  close(): void {
    this.stream?.close();
  }
}

interface Chunk {
  lines: string[];
  /** The process's line number of this chunk's first line. */
  first: number;
  /** The process's line number of the marker after the chunk. */
  marker: number;
  failures: BatchFailure[];
  resolve(failures: BatchFailure[]): void;
  reject(err: Error): void;
}

interface BatchProcess {
  child: ReturnType<typeof execa>;
  written: number;
  chunks: Chunk[];
  stderr: string;
  /** Messages printed since the last "Command failed" line. */
  messages: string[];
  exited: Promise<void>;
}

/** Lines one `ip -batch` process gets before it is replaced: iproute2 keeps ~4 KB per line until it exits. */
const LINES_PER_PROCESS = 10_000;
/** Lines per write: the text stays a small string (no large-object allocation in V8). */
const LINES_PER_WRITE = 512;

/**
 * Chunks of lines written one after another into one `ip -force -batch -`, without waiting for the
 * previous chunk: the kernel never idles between chunks. Each chunk ends with a marker command that
 * must fail (`link show dev` of a name we never create); its "Command failed -:N" says the chunk is
 * done, and the failures before it are the chunk's. The process is replaced after LINES_PER_PROCESS
 * lines; the next one starts only once the old one has exited, so lines stay in order.
 */
export class IpBatchStream {
  private current?: BatchProcess;
  private retiring?: Promise<void>;
  private seq = 0;
  private closed = false;

  constructor(private readonly args: string[]) {}

  async run(lines: string[]): Promise<BatchFailure[]> {
    if (lines.length === 0) return [];
    while (this.retiring) await this.retiring;
    if (this.closed) throw new IpCommandError(this.args, 'closed');
    let p = this.current;
    if (p && p.written + lines.length > LINES_PER_PROCESS && p.written > 0) {
      this.retire(p);
      while (this.retiring) await this.retiring;
      p = undefined;
    }
    p = this.current ?? this.spawn();
    const marker = `ltm${(this.seq = (this.seq + 1) % 1e9).toString(36)}`;
    return new Promise<BatchFailure[]>((resolve, reject) => {
      const chunk: Chunk = { lines, first: p.written + 1, marker: p.written + lines.length + 1, failures: [], resolve, reject };
      p.chunks.push(chunk);
      p.written += lines.length + 1;
      const stdin = p.child.stdin!;
      for (let i = 0; i < lines.length; i += LINES_PER_WRITE) stdin.write(lines.slice(i, i + LINES_PER_WRITE).join('\n') + '\n');
      stdin.write(`link show dev ${marker}\n`);
    });
  }

  close(): void {
    this.closed = true;
    if (this.current) this.retire(this.current);
  }

  private spawn(): BatchProcess {
    const child = execa('ip', this.args, { reject: false, buffer: false, stdin: 'pipe', stdout: 'ignore', stderr: 'pipe' });
    const p: BatchProcess = { child, written: 0, chunks: [], stderr: '', messages: [], exited: Promise.resolve() };
    child.stdin!.on('error', () => undefined); // a dead process shows as its exit
    child.stderr!.setEncoding('utf8').on('data', (text: string) => this.onStderr(p, text));
    p.exited = child.then(
      (r) => this.onExit(p, r.exitCode === 0 ? '' : String(r.stderr ?? r.message ?? 'exited')),
      (err: Error) => this.onExit(p, err.message),
    );
    this.current = p;
    return p;
  }

  /** Lets the process finish what it has and exit; new chunks wait for that. */
  private retire(p: BatchProcess): void {
    if (this.current === p) this.current = undefined;
    p.child.stdin!.end();
    const retiring = p.exited.then(() => {
      if (this.retiring === retiring) this.retiring = undefined;
    });
    this.retiring = retiring;
  }

  private onStderr(p: BatchProcess, text: string): void {
    p.stderr += text;
    let nl: number;
    while ((nl = p.stderr.indexOf('\n')) >= 0) {
      const line = p.stderr.slice(0, nl).trim();
      p.stderr = p.stderr.slice(nl + 1);
      const m = /^Command failed (?:-|\S+):(\d+)$/.exec(line);
      if (!m) {
        if (line) p.messages.push(line);
        continue;
      }
      const n = Number(m[1]);
      const chunk = p.chunks[0];
      if (!chunk) continue;
      if (n === chunk.marker) {
        p.chunks.shift();
        chunk.resolve(chunk.failures);
      } else {
        chunk.failures.push({ line: n - chunk.first + 1, command: chunk.lines[n - chunk.first] ?? '', error: p.messages.join('; ') || 'failed' });
      }
      p.messages = [];
    }
  }

  /** Chunks still waiting when the process ends did not all run: their callers must look again. */
  private onExit(p: BatchProcess, reason: string): void {
    if (this.current === p) this.current = undefined;
    for (const chunk of p.chunks.splice(0)) chunk.reject(new IpCommandError(this.args, reason || 'ip -batch exited before finishing'));
  }
}
