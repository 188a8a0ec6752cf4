// `lightly-agent install-cni`: puts the plugin, its bundle and a Node runtime on the host and writes
// the conflist, each by write-then-rename so a runtime never sees half a file. Safe to rerun (upgrades).
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

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
  const confPath = join(options.cniConfDir, options.confName);
  atomicWrite(confPath, JSON.stringify(conflist(options), null, 2) + '\n');
  return [...written.map(([, to]) => to), confPath];
}
