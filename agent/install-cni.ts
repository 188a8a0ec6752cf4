// `lightly-agent install-cni`: puts the plugin, its bundle and a Node runtime on the host, the CNI
// plugins the conflist chains where the host lacks them, and writes the conflist, each by
// write-then-rename so a runtime never sees half a file. Safe to rerun (upgrades).
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execaSync } from 'execa';

export interface InstallOptions {
  /** Where the built binaries are (dist/bin, or /opt/lightly/lib in the image). */
  sourceDir: string;
  /** The Node runtime to copy for the plugin's in-process fallback. */
  nodeBinary: string;
  cniBinDir: string;
  lightlyDir: string;
  cniConfDir: string;
  /** Embedded as ipam.subnet; absent, the plugin asks the agent for the node's pod CIDR. */
  podCIDR?: string;
  mtu: number;
  confName: string;
  /** The CNI plugins to ship and their VERSION file; default: see defaultPluginsDir. */
  pluginsDir?: string;
}

/** From Debian's containernetworking-plugins, installed on hosts that lack them (k3s and kubeadm hosts may). */
export const SHIPPED_PLUGINS = ['portmap', 'bandwidth', 'loopback'] as const;
/** Chained in the conflist: without it every ADD fails, so install-cni fails instead. */
const REQUIRED_PLUGINS: ReadonlySet<string> = new Set(['portmap']);

type Version = readonly [number, number, number];

/** The upstream x.y.z of a Debian package version (`1.1.1+ds1-3+b5`, `1:2.0.0-1`). */
export function debianUpstreamVersion(text: string): Version | undefined {
  const m = /^(?:\d+:)?(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** What a containernetworking plugin prints for --version: `CNI portmap plugin v1.6.0-k3s1` (Debian's builds: `version unknown`). */
export function reportedPluginVersion(output: string): Version | undefined {
  const m = /\bplugin v(\d+)\.(\d+)\.(\d+)/.exec(output);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

function older(a: Version, b: Version): boolean {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

export type HostPlugin = { kind: 'missing' } | { kind: 'symlink' } | { kind: 'file'; version?: Version };

/**
 * Whether our copy goes onto the host. Only over a regular file that says it is older than ours: a
 * copy that is newer, the same, silent about its version, or a symlink (k3s links its multi-call
 * binary) belongs to the host and stays.
 */
export function pluginAction(host: HostPlugin, ours: Version | undefined): 'install' | 'upgrade' | 'keep' {
  if (host.kind === 'missing') return 'install';
  if (host.kind === 'file' && host.version && ours && older(host.version, ours)) return 'upgrade';
  return 'keep';
}

function hostPlugin(path: string): HostPlugin {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat) return { kind: 'missing' };
  if (stat.isSymbolicLink()) return { kind: 'symlink' };
  // Bounded: a host binary that hangs must not hold the init container.
  const run = execaSync(path, ['--version'], { env: {}, extendEnv: false, reject: false, timeout: 5000, all: true });
  return { kind: 'file', version: reportedPluginVersion(String(run.all ?? '')) };
}

/**
 * The image's /opt/lightly/cni (beside the bundles), else Debian's containernetworking-plugins in
 * /usr/lib/cni for a standalone install from a clone (no VERSION there: it only fills what is missing).
 */
function defaultPluginsDir(sourceDir: string): string {
  const beside = join(sourceDir, '..', 'cni');
  return existsSync(beside) ? beside : '/usr/lib/cni';
}

function installPlugins(pluginsDir: string, cniBinDir: string): string[] {
  const versionFile = join(pluginsDir, 'VERSION');
  const ours = existsSync(versionFile) ? debianUpstreamVersion(readFileSync(versionFile, 'utf8')) : undefined;
  const written: string[] = [];
  for (const name of SHIPPED_PLUGINS) {
    const target = join(cniBinDir, name);
    const source = join(pluginsDir, name);
    const host = hostPlugin(target);
    if (pluginAction(host, ours) === 'keep') continue;
    if (!existsSync(source)) {
      if (host.kind === 'missing' && REQUIRED_PLUGINS.has(name)) {
        throw new Error(`install-cni: the conflist chains ${name}, which is neither in ${cniBinDir} nor shipped in ${pluginsDir}`);
      }
      continue;
    }
    atomicCopy(source, target, 0o755);
    written.push(target);
  }
  return written;
}

function atomicCopy(from: string, to: string, mode: number): void {
  if (!existsSync(from)) throw new Error(`install-cni: ${from} is missing`);
  mkdirSync(dirname(to), { recursive: true });
  const tmp = `${to}.tmp-${process.pid}`;
  copyFileSync(from, tmp);
  chmodSync(tmp, mode);
  renameSync(tmp, to);
}

function atomicWrite(to: string, text: string): void {
  mkdirSync(dirname(to), { recursive: true });
  const tmp = `${to}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, to);
}

export function conflist(options: Pick<InstallOptions, 'podCIDR' | 'mtu'>): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'lightly',
    plugins: [
      { type: 'lightly', ...(options.podCIDR ? { ipam: { subnet: options.podCIDR } } : {}), mtu: options.mtu, dataDir: '/var/lib/cni/lightly' },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

/** Returns the paths written. */
export function installCni(options: InstallOptions): string[] {
  const written = [
    [join(options.sourceDir, 'lightly.js'), join(options.lightlyDir, 'lib', 'lightly.js'), 0o644],
    [options.nodeBinary, join(options.lightlyDir, 'bin', 'node'), 0o755],
    // The shim last: once it is there, runtimes may call it, and what it falls back to is in place.
    [join(options.sourceDir, 'lightly'), join(options.cniBinDir, 'lightly'), 0o755],
  ] as const;
  for (const [from, to, mode] of written) atomicCopy(from, to, mode);
  // Before the conflist: once it is there, runtimes chain portmap.
  const plugins = installPlugins(options.pluginsDir ?? defaultPluginsDir(options.sourceDir), options.cniBinDir);
  const confPath = join(options.cniConfDir, options.confName);
  atomicWrite(confPath, JSON.stringify(conflist(options), null, 2) + '\n');
  return [...written.map(([, to]) => to), ...plugins, confPath];
}
