// Runs CNI plugins the way libcni does: one exec per plugin, CNI_* env, config on stdin, chains with prevResult.
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';

/** The plugin as runtimes call it: the shim, which uses a CNI server when one runs, else Node in-process. */
export const LIGHTLY_BIN = resolve('dist/bin/lightly');
export const LIGHTLY_BUNDLE = resolve('dist/bin/lightly.js');
export const REFERENCE_PLUGINS = '/usr/lib/cni';

export interface RunningCniServer {
  process: ResultPromise;
  port: number;
  token: string;
  secret: string;
  stop(): Promise<void>;
}

/**
 * Starts `lightly.js serve` inside a namespace (the node's host) and waits for its address file.
 * `wrap` runs it under another command first (e.g. `unshare -m …`, whose last word runs the rest).
 */
export async function startCniServerIn(host: string, addrFile: string, wrap: string[] = []): Promise<RunningCniServer> {
  rmSync(addrFile, { force: true });
  const argv = [...wrap, 'ip', 'netns', 'exec', host, process.execPath, LIGHTLY_BUNDLE, 'serve', '--addr-file', addrFile];
  const proc = execa(argv[0]!, argv.slice(1), { reject: false });
  for (let i = 0; i < 200 && !existsSync(addrFile); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(addrFile)) {
    proc.kill('SIGKILL');
    throw new Error(`the CNI server did not start: ${(await proc).stderr}`);
  }
  const [port, token, secret] = readFileSync(addrFile, 'utf8').trim().split(' ');
  return {
    process: proc,
    port: Number(port),
    token: token!,
    secret: secret!,
    stop: async () => {
      proc.kill();
      await proc;
    },
  };
}

export interface Invocation {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** Namespace to run the plugin in: the node's "host" namespace of a test. */
  hostNetns?: string;
  /** More environment for the plugin process (e.g. LIGHTLY_NODE). */
  env?: Record<string, string>;
}

export interface PluginOutput {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when it is JSON. */
  json?: Record<string, any>;
}

/** A CNI_PATH directory holding our plugin and the reference plugins, as a host would have them. */
export function makeCniPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lt-cnipath-'));
  symlinkSync(LIGHTLY_BIN, join(dir, 'lightly'));
  symlinkSync(LIGHTLY_BUNDLE, join(dir, 'lightly.js'));
  for (const name of ['portmap', 'bandwidth', 'tuning', 'ptp', 'host-local', 'loopback']) {
    const ref = join(REFERENCE_PLUGINS, name);
    if (existsSync(ref)) symlinkSync(ref, join(dir, name));
  }
  return dir;
}

export async function invoke(binary: string, inv: Invocation, stdin: unknown, cniPath = ''): Promise<PluginOutput> {
  const env: Record<string, string> = { CNI_COMMAND: inv.command, CNI_PATH: cniPath, PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...inv.env };
  if (inv.containerId !== undefined) env.CNI_CONTAINERID = inv.containerId;
  if (inv.netns !== undefined) env.CNI_NETNS = inv.netns;
  if (inv.ifname !== undefined) env.CNI_IFNAME = inv.ifname;
  if (inv.args !== undefined) env.CNI_ARGS = inv.args;
  const input = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  const [cmd, args] = inv.hostNetns ? ['ip', ['netns', 'exec', inv.hostNetns, binary]] : [binary, []];
  const out = await execa(cmd, args, { input, env, extendEnv: false, reject: false, timeout: 30_000 });
  let json: Record<string, any> | undefined;
  try {
    json = out.stdout.trim() ? JSON.parse(out.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { exitCode: out.exitCode ?? -1, stdout: out.stdout, stderr: out.stderr, json };
}

export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Record<string, any>[];
}

/** What the runtime passes as runtimeConfig for the capabilities a plugin declares. */
export interface RuntimeCapabilities {
  portMappings?: { hostPort: number; containerPort: number; protocol: string }[];
  bandwidth?: Record<string, number>;
}

/** A small libcni: ADD in order with prevResult, CHECK with the cached result, DEL in reverse. */
export class ChainRunner {
  private cached?: Record<string, any>;

  constructor(
    private readonly list: Conflist,
    private readonly cniPath: string,
    private readonly capabilities: RuntimeCapabilities = {},
  ) {}

  private pluginConf(plugin: Record<string, any>, prevResult?: Record<string, any>): Record<string, any> {
    const conf: Record<string, any> = { ...plugin, cniVersion: this.list.cniVersion, name: this.list.name };
    const wanted = Object.entries(plugin.capabilities ?? {}).filter(([, on]) => on).map(([k]) => k);
    const runtimeConfig = Object.fromEntries(wanted.filter((k) => k in this.capabilities).map((k) => [k, (this.capabilities as any)[k]]));
    if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
    if (prevResult) conf.prevResult = prevResult;
    return conf;
  }

  private binary(type: string): string {
    return join(this.cniPath, type);
  }

  async add(inv: Omit<Invocation, 'command'>): Promise<PluginOutput> {
    let prev: Record<string, any> | undefined;
    let last: PluginOutput | undefined;
    for (const plugin of this.list.plugins) {
      last = await invoke(this.binary(plugin.type), { ...inv, command: 'ADD' }, this.pluginConf(plugin, prev), this.cniPath);
      if (last.exitCode !== 0) return last;
      prev = last.json ?? prev;
    }
    this.cached = prev;
    return last!;
  }

  /** `skip` names plugin types whose own CHECK is known to be broken upstream. */
  async check(inv: Omit<Invocation, 'command'>, skip: string[] = []): Promise<PluginOutput> {
    let last: PluginOutput | undefined;
    for (const plugin of this.list.plugins.filter((p) => !skip.includes(p.type))) {
      last = await invoke(this.binary(plugin.type), { ...inv, command: 'CHECK' }, this.pluginConf(plugin, this.cached), this.cniPath);
      if (last.exitCode !== 0) return last;
    }
    return last!;
  }

  async del(inv: Omit<Invocation, 'command'>): Promise<PluginOutput> {
    let last: PluginOutput | undefined;
    for (const plugin of [...this.list.plugins].reverse()) {
      last = await invoke(this.binary(plugin.type), { ...inv, command: 'DEL' }, this.pluginConf(plugin, this.cached), this.cniPath);
      if (last.exitCode !== 0) return last;
    }
    return last!;
  }
}
