// Routing daemons inside a namespace, for the rack lab and the interop tests: BIRD 2, and FRR's bgpd
// (with its own zebra when routes must reach the namespace's kernel). Each has a directory of its own.
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './shell.js';

/** Where one daemon keeps its config, control socket, pid and log. */
export interface RouterFiles {
  dir: string;
  name: string;
}

const paths = (r: RouterFiles) => ({
  home: join(r.dir, r.name),
  conf: join(r.dir, r.name, `${r.name}.conf`),
  ctl: join(r.dir, r.name, 'bird.ctl'),
  pid: join(r.dir, r.name, 'router.pid'),
  zebraPid: join(r.dir, r.name, 'zebra.pid'),
  zserv: join(r.dir, r.name, 'zserv.api'),
  log: join(r.dir, r.name, `${r.name}.log`),
});

async function waitForFile(what: string, path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${path})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const pidOf = (file: string): number => Number(readFileSync(file, 'utf8').trim());

/**
 * The daemon's home: mode 0700, its config 0600 (it holds passwords). FRR drops to the frr user
 * before reading its config, so for FRR both belong to frr (the parents must let it pass: 0711).
 */
function prepare(r: RouterFiles, conf: string, owner?: { uid: number; gid: number }): ReturnType<typeof paths> {
  const p = paths(r);
  mkdirSync(p.home, { recursive: true, mode: 0o700 });
  writeFileSync(p.conf, conf, { mode: 0o600 });
  if (owner) for (const f of [p.home, p.conf]) chownSync(f, owner.uid, owner.gid);
  return p;
}

/** BIRD 2 in `netns`, daemonized; returns its pid. The config is `conf` as given (the docs show the same text). */
export async function startBird(netns: string, r: RouterFiles, conf: string): Promise<number> {
  const p = prepare(r, conf);
  await run('ip', ['netns', 'exec', netns, 'bird', '-c', p.conf, '-s', p.ctl, '-P', p.pid]);
  await waitForFile(`BIRD ${r.name}`, p.pid);
  return pidOf(p.pid);
}

/** BIRD re-reads its config file (after `writeRouterConfig`): sessions whose settings changed restart. */
export async function reconfigureBird(r: RouterFiles): Promise<void> {
  await run('birdc', ['-s', paths(r).ctl, 'configure']);
}

export function birdc(r: RouterFiles, ...args: string[]): Promise<string> {
  return run('birdc', ['-s', paths(r).ctl, ...args]);
}

/** BIRD's protocol states by name (`show protocols`): e.g. { tor: 'Established' }. */
export async function birdProtocols(r: RouterFiles): Promise<Record<string, string>> {
  const out = await birdc(r, 'show', 'protocols');
  const states: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^(\S+)\s+BGP\s+\S+\s+\S+\s+\S+\s+(\S+)/.exec(line);
    if (m) states[m[1]!] = m[2]!;
  }
  return states;
}

async function frrIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', 'frr']), run('id', ['-g', 'frr'])]);
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * FRR's bgpd in `netns`, daemonized as the frr user. Without `zebra` it neither installs routes nor
 * talks to a zebra (`-n -Z`): enough for a peer. With it, a zebra of its own in the same namespace
 * installs the best routes into that namespace's kernel (a ToR that forwards). Returns the pids.
 */
export async function startFrr(netns: string, r: RouterFiles, conf: string, options: { zebra?: boolean } = {}): Promise<number[]> {
  const frr = await frrIds();
  const p = prepare(r, conf, frr);
  const common = ['-u', 'frr', '-g', 'frr', '-d', '--vty_socket', p.home, '-P', '0', '--log', `file:${p.log}`];
  const pids: number[] = [];
  if (options.zebra) {
    // zebra reads no config of its own here: an empty one, so it does not look for /etc/frr's.
    const zebraConf = join(p.home, 'zebra.conf');
    writeFileSync(zebraConf, '', { mode: 0o600 });
    chownSync(zebraConf, frr.uid, frr.gid);
    await run('ip', ['netns', 'exec', netns, '/usr/lib/frr/zebra', ...common, '-f', zebraConf, '-i', p.zebraPid, '-z', p.zserv]);
    await waitForFile(`FRR zebra ${r.name}`, p.zebraPid);
    pids.push(pidOf(p.zebraPid));
  }
  const bgpArgs = options.zebra ? ['-z', p.zserv] : ['-n', '-Z'];
  try {
    await run('ip', ['netns', 'exec', netns, '/usr/lib/frr/bgpd', ...common, ...bgpArgs, '-f', p.conf, '-i', p.pid]);
    await waitForFile(`FRR bgpd ${r.name}`, p.pid);
  } catch (err) {
    await stopRouters(pids); // its zebra goes with it
    throw err;
  }
  pids.push(pidOf(p.pid));
  return pids;
}

/** One vtysh command against this instance's bgpd. */
export function vtysh(netns: string, r: RouterFiles, command: string): Promise<string> {
  return run('ip', ['netns', 'exec', netns, 'vtysh', '--vty_socket', paths(r).home, '-d', 'bgpd', '-c', command]);
}

/** FRR's neighbour states (`show bgp neighbors json`): address → bgpState, e.g. 'Established'. */
export async function frrNeighbors(netns: string, r: RouterFiles): Promise<Record<string, string>> {
  const parsed = JSON.parse(await vtysh(netns, r, 'show bgp neighbors json')) as Record<string, { bgpState?: string }>;
  return Object.fromEntries(Object.entries(parsed).map(([address, n]) => [address, n.bgpState ?? '']));
}

/** Replaces a daemon's config file (BIRD: then `reconfigureBird`). */
export function writeRouterConfig(r: RouterFiles, conf: string): void {
  writeFileSync(paths(r).conf, conf, { mode: 0o600 });
}

/** The pids a daemon wrote, whether or not it still runs. */
export function routerPids(r: RouterFiles): number[] {
  const p = paths(r);
  return [p.pid, p.zebraPid].filter((f) => existsSync(f)).map(pidOf);
}

/** Ends the daemons (TERM, then KILL after a bounded wait). */
export async function stopRouters(pids: number[], timeoutMs = 3_000): Promise<void> {
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
}
