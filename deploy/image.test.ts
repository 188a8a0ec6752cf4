// The image the DaemonSet names, built here without a container registry (scripts/build-image.sh:
// a Debian root filesystem from mmdebstrap, then deploy/Dockerfile with podman), and its install-cni
// run against a temporary host directory: what it installs must work on the host by itself.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireNetworkTools } from '../test/support/netns.js';

const IMAGE = 'localhost/lightly:test';
// crun refuses hybrid-cgroup hosts such as this one; runc runs them (both are Debian packages).
const PODMAN = ['podman', '--runtime', 'runc'];
// No network (podman leaves the host's interfaces and firewall alone); limits a container may set
// without CAP_SYS_RESOURCE.
const RUN = ['run', '--rm', '--network=none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

const podman = (args: string[]) => execa(PODMAN[0]!, [...PODMAN.slice(1), ...args], { reject: false });

let host: string;
beforeAll(async () => {
  await requireNetworkTools(['podman', 'runc', 'mmdebstrap']);
  const started = Date.now();
  // The root filesystem is cached by the hash of its inputs (LIGHTLY_CACHE_DIR), layers by podman.
  const build = await execa('bash', ['scripts/build-image.sh', '--tag', IMAGE], { env: { PODMAN: PODMAN.join(' ') }, reject: false, all: true });
  if (build.exitCode !== 0) throw new Error(`scripts/build-image.sh failed:\n${build.all}`);
  console.log(`image built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  host = mkdtempSync(join(tmpdir(), 'lt-image-host-'));
}, 15 * 60_000);

afterAll(() => {
  if (host) rmSync(host, { recursive: true, force: true });
});

describe('the image', () => {
  it("install-cni puts a plugin on the host that answers VERSION with the image's node, ships portmap, bandwidth and loopback, and keeps the host's newer copy", async () => {
    const bin = join(host, 'opt/cni/bin');
    mkdirSync(bin, { recursive: true });
    const hostsOwn = '#!/bin/sh\necho "CNI bandwidth plugin v9.9.9"\n';
    writeFileSync(join(bin, 'bandwidth'), hostsOwn, { mode: 0o755 });

    // The DaemonSet's init container, with the host's directories under /host.
    const install = await podman([...RUN, '-v', `${host}:/host`, IMAGE, 'install-cni', '--mtu', '1450']);
    expect(install.exitCode, install.stderr).toBe(0);

    // On the host, with no node on the PATH and no agent: the shim falls back to the copied runtime.
    const version = await execa(join(bin, 'lightly'), [], {
      input: '{"cniVersion":"1.0.0"}',
      env: { CNI_COMMAND: 'VERSION', LIGHTLY_HOME: join(host, 'opt/lightly'), LIGHTLY_CNI_ADDR: join(host, 'none') },
      extendEnv: false,
    });
    expect(JSON.parse(version.stdout).supportedVersions).toContain('1.1.0');

    for (const name of ['portmap', 'loopback']) {
      const answer = await execa(join(bin, name), [], { input: '', env: { CNI_COMMAND: 'VERSION' }, extendEnv: false });
      expect(JSON.parse(answer.stdout).supportedVersions, name).toContain('1.0.0');
    }
    expect(readFileSync(join(bin, 'bandwidth'), 'utf8')).toBe(hostsOwn);

    const conf = JSON.parse(readFileSync(join(host, 'etc/cni/net.d/10-lightly.conflist'), 'utf8'));
    expect(conf.plugins.map((p: { type: string }) => p.type)).toEqual(['lightly', 'portmap']);
    expect(conf.plugins[0].mtu).toBe(1450);
  });

  it('has the tools the agent and the plugin run, and Node 20 or later', async () => {
    const out = await podman([...RUN, '--entrypoint', 'sh', IMAGE, '-c', 'for t in ip nft nsenter lightlyctl; do command -v $t || exit 1; done; node -p process.versions.node']);
    expect(out.exitCode, out.stderr).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines).toHaveLength(5);
    expect(Number(lines[4]!.split('.')[0])).toBeGreaterThanOrEqual(20);
  });
});

describe('the image, native addon', () => {
  it('loads the prebuilt TCP MD5 addon beside the agent (no compiler on nodes) and makes a keyed socket', async () => {
    const script = "const a=require('/opt/lightly/native/lightly_native.node'); const fd=a.tcpSocket(4); a.setTcpMd5Key(fd,'192.0.2.1','k'); console.log(typeof fd)";
    const out = await podman([...RUN, '--entrypoint', 'node', IMAGE, '-e', script]);
    expect(out.exitCode, out.stderr).toBe(0);
    expect(out.stdout.trim()).toBe('number');
  });
});
