// Throwaway network namespaces for tests: unique lt-* names, always deleted, never the root namespace.
import { randomBytes } from 'node:crypto';
import { execa, type Options } from 'execa';

/** Fails loudly (never skips) when the machine cannot run network tests. */
export async function requireNetworkTools(tools: string[] = ['ip', 'nsenter']): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('network tests need root: run the README test command as root');
  for (const tool of tools) {
    const found = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
    if (found.exitCode !== 0) throw new Error(`network tests need ${tool}: run scripts/setup.sh (it installs it)`);
  }
}

export function uniqueName(prefix: string): string {
  return `lt-${prefix}-${randomBytes(3).toString('hex')}`;
}

/** Runs `ip` in a namespace and throws with its stderr on failure. */
export async function ipIn(netns: string, args: string[]): Promise<string> {
  const out = await execa('ip', ['-n', netns, ...args], { reject: false });
  if (out.exitCode !== 0) throw new Error(`ip -n ${netns} ${args.join(' ')}: ${out.stderr}`);
  return out.stdout;
}

/**
 * A connected subnet inside one namespace: a veth pair `link`–`peer` (no dummy module on every machine),
 * `addresses` on `link` (IPv6 without duplicate address detection), both ends up.
 */
export async function addConnectedLink(netns: string, link: string, peer: string, addresses: string[]): Promise<void> {
  await ipIn(netns, ['link', 'add', link, 'type', 'veth', 'peer', 'name', peer]);
  for (const a of addresses) await ipIn(netns, a.includes(':') ? ['-6', 'addr', 'add', a, 'dev', link, 'nodad'] : ['addr', 'add', a, 'dev', link]);
  for (const l of [link, peer]) await ipIn(netns, ['link', 'set', l, 'up']);
}

/** Runs a command inside a namespace. */
export function execIn(netns: string, cmd: string, args: string[], options: Options = {}) {
  return execa('ip', ['netns', 'exec', netns, cmd, ...args], { ...options, reject: false });
}

/** A set of namespaces a test creates; `cleanup()` removes every one, whatever state they are in. */
export class NetnsPool {
  readonly names: string[] = [];

  async create(prefix: string): Promise<string> {
    const name = uniqueName(prefix);
    await execa('ip', ['netns', 'add', name]);
    this.names.push(name);
    await ipIn(name, ['link', 'set', 'lo', 'up']);
    return name;
  }

  path(name: string): string {
    return `/var/run/netns/${name}`;
  }

  async cleanup(): Promise<void> {
    for (const name of this.names.splice(0)) {
      await execa('ip', ['netns', 'del', name], { reject: false });
    }
  }
}

/** SIGKILLs every process left in these namespaces (an agent's children included), before they are deleted. */
export async function killProcessesIn(names: string[]): Promise<void> {
  for (const ns of names) {
    const pids = (await execa('ip', ['netns', 'pids', ns], { reject: false })).stdout.split('\n').filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/**
 * A namespace acting as a node's host: reaches an upstream namespace over a veth and has a default
 * route, because Linux answers proxy ARP (the pods' 169.254.1.1 gateway) only for routable targets.
 */
export async function createHost(pool: NetnsPool, prefix = 'host'): Promise<{ host: string; upstream: string }> {
  const host = await pool.create(prefix);
  const upstream = await pool.create(`${prefix}up`);
  await ipIn(host, ['link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1', 'netns', upstream]);
  await ipIn(host, ['addr', 'add', '192.0.2.1/24', 'dev', 'up0']);
  await ipIn(host, ['link', 'set', 'up0', 'up']);
  await ipIn(upstream, ['addr', 'add', '192.0.2.254/24', 'dev', 'up1']);
  await ipIn(upstream, ['link', 'set', 'up1', 'up']);
  await ipIn(host, ['route', 'add', 'default', 'via', '192.0.2.254']);
  return { host, upstream };
}

/** Pings from a namespace; a few bounded tries, so a first packet lost to neighbour resolution is not a failure. */
export async function ping(netns: string, target: string, count = 3): Promise<boolean> {
  const args = target.includes(':') ? ['-6'] : [];
  const out = await execIn(netns, 'ping', [...args, '-c', String(count), '-i', '0.2', '-W', '1', target], { timeout: 10_000 });
  return out.exitCode === 0;
}
