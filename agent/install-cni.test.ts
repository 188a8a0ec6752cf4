import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { installCni } from './install-cni.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('install-cni', () => {
  it('installs shim, bundle, runtime and conflist; reruns safely; the installed plugin answers VERSION', async () => {
    const host = mkdtempSync(join(tmpdir(), 'lt-host-'));
    dirs.push(host);
    const options = {
      sourceDir: resolve('dist/bin'), nodeBinary: process.execPath,
      cniBinDir: join(host, 'opt/cni/bin'), lightlyDir: join(host, 'opt/lightly'), cniConfDir: join(host, 'etc/cni/net.d'),
      podCIDR: '10.244.3.0/24', mtu: 1450, confName: '10-lightly.conflist',
    };
    if (!existsSync(join(options.sourceDir, 'lightly'))) throw new Error('dist/bin is missing: run npm run build');
    const written = installCni(options);
    expect(written).toHaveLength(4);
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
});
