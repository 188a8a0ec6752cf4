import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { debianUpstreamVersion, installCni, pluginAction, reportedPluginVersion, SHIPPED_PLUGINS } from './install-cni.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A stand-in for a containernetworking plugin: answers --version as the upstream builds do. */
function fakePlugin(path: string, version: string): void {
  writeFileSync(path, `#!/bin/sh\necho "CNI $(basename "$0") plugin ${version}"\necho "CNI protocol versions supported: 0.1.0, 1.0.0"\n`, { mode: 0o755 });
}

/** What the image's /opt/lightly/cni holds: the three plugins and Debian's package version. */
function shippedPlugins(root: string, debianVersion = '1.1.1+ds1-3+b5'): string {
  const dir = join(root, 'shipped');
  mkdirSync(dir, { recursive: true });
  for (const name of SHIPPED_PLUGINS) fakePlugin(join(dir, name), 'version unknown');
  writeFileSync(join(dir, 'VERSION'), `${debianVersion}\n`);
  return dir;
}

function tempHost(): string {
  const host = mkdtempSync(join(tmpdir(), 'lt-host-'));
  dirs.push(host);
  return host;
}

const optionsFor = (host: string) => ({
  sourceDir: resolve('dist/bin'), nodeBinary: process.execPath, pluginsDir: shippedPlugins(host),
  cniBinDir: join(host, 'opt/cni/bin'), lightlyDir: join(host, 'opt/lightly'), cniConfDir: join(host, 'etc/cni/net.d'),
  podCIDR: '10.244.3.0/24', mtu: 1450, confName: '10-lightly.conflist',
});

describe('install-cni', () => {
  it('installs shim, bundle, runtime and conflist; reruns safely; the installed plugin answers VERSION', async () => {
    const host = tempHost();
    const options = optionsFor(host);
    if (!existsSync(join(options.sourceDir, 'lightly'))) throw new Error('dist/bin is missing: run npm run build');
    const written = installCni(options);
    expect(written).toHaveLength(4 + SHIPPED_PLUGINS.length);
    expect(statSync(join(host, 'opt/cni/bin/lightly')).mode & 0o111).not.toBe(0);
    const conf = JSON.parse(readFileSync(join(host, 'etc/cni/net.d/10-lightly.conflist'), 'utf8'));
    expect(conf.plugins[0]).toEqual({ type: 'lightly', ipam: { subnet: '10.244.3.0/24' }, mtu: 1450, dataDir: '/var/lib/cni/lightly' });
    expect(conf.plugins[1].type).toBe('portmap');

    installCni({ ...options, podCIDR: undefined }); // upgrade in place
    expect(JSON.parse(readFileSync(join(host, 'etc/cni/net.d/10-lightly.conflist'), 'utf8')).plugins[0].ipam).toBeUndefined();
    expect(readdirSync(join(host, 'etc/cni/net.d'))).toEqual(['10-lightly.conflist']); // no temp files left

    // The installed copy runs alone: the shim finds no server, falls back to the copied runtime + bundle.
    const out = await execa(join(host, 'opt/cni/bin/lightly'), [], {
      input: '{"cniVersion":"1.0.0"}',
      env: { CNI_COMMAND: 'VERSION', PATH: '/nonexistent', LIGHTLY_CNI_ADDR: join(host, 'none'), LIGHTLY_HOME: join(host, 'opt/lightly') },
      extendEnv: false,
    });
    expect(JSON.parse(out.stdout).supportedVersions).toContain('1.1.0');
  });

  describe('the CNI plugins the conflist chains (portmap; bandwidth, loopback)', () => {
    const textOf = (path: string) => readFileSync(path, 'utf8');

    it('installs the shipped ones where the host has none, executable', () => {
      const host = tempHost();
      const written = installCni(optionsFor(host));
      for (const name of SHIPPED_PLUGINS) {
        const path = join(host, 'opt/cni/bin', name);
        expect(written).toContain(path);
        expect(statSync(path).mode & 0o111).not.toBe(0);
      }
    });

    it("never overwrites a host's newer, equal, silent or symlinked copy; replaces an older one", () => {
      const host = tempHost();
      const bin = join(host, 'opt/cni/bin');
      mkdirSync(bin, { recursive: true });
      fakePlugin(join(bin, 'portmap'), 'v1.6.0'); // newer than the shipped 1.1.1
      fakePlugin(join(bin, 'bandwidth'), 'v0.8.6'); // older
      symlinkSync('/nonexistent/k3s/data/bin/cni', join(bin, 'loopback')); // k3s' multi-call link, dangling in the container
      const before = textOf(join(bin, 'portmap'));
      const written = installCni(optionsFor(host));
      expect(textOf(join(bin, 'portmap'))).toBe(before);
      expect(written).not.toContain(join(bin, 'portmap'));
      expect(textOf(join(bin, 'bandwidth'))).toContain('version unknown'); // ours now
      expect(lstatSync(join(bin, 'loopback')).isSymbolicLink()).toBe(true);

      fakePlugin(join(bin, 'bandwidth'), 'version unknown'); // says nothing: the host's
      writeFileSync(join(bin, 'bandwidth'), textOf(join(bin, 'bandwidth')) + '# the host\'s own\n');
      installCni(optionsFor(host));
      expect(textOf(join(bin, 'bandwidth'))).toContain("# the host's own");
    });

    it('fails when portmap is neither on the host nor shipped (every ADD would fail), and only then', () => {
      const host = tempHost();
      const options = optionsFor(host);
      rmSync(join(options.pluginsDir, 'portmap'));
      expect(() => installCni(options)).toThrow(/chains portmap/);
      mkdirSync(options.cniBinDir, { recursive: true });
      fakePlugin(join(options.cniBinDir, 'portmap'), 'v1.0.0');
      expect(() => installCni(options)).not.toThrow();
    });

    it('reads versions as Debian and the plugins write them', () => {
      expect(debianUpstreamVersion('1.1.1+ds1-3+b5\n')).toEqual([1, 1, 1]);
      expect(debianUpstreamVersion('1:2.10.0-1')).toEqual([2, 10, 0]);
      expect(reportedPluginVersion('CNI portmap plugin v1.6.0-k3s1\nCNI protocol versions supported: 0.1.0')).toEqual([1, 6, 0]);
      expect(reportedPluginVersion('CNI portmap plugin version unknown\nCNI protocol versions supported: 0.1.0, 1.0.0')).toBeUndefined();
      expect(pluginAction({ kind: 'file', version: [1, 10, 0] }, [1, 9, 9])).toBe('keep');
      expect(pluginAction({ kind: 'file', version: [1, 1, 0] }, [1, 1, 1])).toBe('upgrade');
      expect(pluginAction({ kind: 'file', version: [1, 1, 1] }, [1, 1, 1])).toBe('keep');
      expect(pluginAction({ kind: 'file', version: [0, 9, 0] }, undefined)).toBe('keep');
      expect(pluginAction({ kind: 'missing' }, undefined)).toBe('install');
    });
  });
});
