// The CNI server's shell launcher against real ip, in a throwaway namespace only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsPool, ipIn, requireNetworkTools } from '../test/support/netns.js';
import { ShellIpLauncher } from './ip-launcher.js';

const pool = new NetnsPool();
const launcher = new ShellIpLauncher();
let ns = '';

beforeAll(async () => {
  await requireNetworkTools(['ip']);
  ns = await pool.create('launch');
});
afterAll(async () => {
  launcher.close();
  await pool.cleanup();
});

describe('ShellIpLauncher', () => {
  it('runs a batch inside the named namespace', async () => {
    await launcher.run(['-n', ns], ['link set lo up', 'addr add 192.0.2.1/32 dev lo']);
    expect(await ipIn(ns, ['addr', 'show', 'dev', 'lo'])).toContain('192.0.2.1/32');
  });

  it("rejects with ip's own message and stops at the failing line", async () => {
    await expect(launcher.run(['-n', ns], ['addr add 192.0.2.1/32 dev lo', 'addr add 192.0.2.2/32 dev lo'])).rejects.toThrow(/already assigned|File exists/);
    expect(await ipIn(ns, ['addr', 'show', 'dev', 'lo'])).not.toContain('192.0.2.2');
  });

  it('passes the lines literally: nothing in them reaches the shell', async () => {
    const alias = '$(touch${IFS}/tmp/lt-launcher-pwned)`id`';
    await expect(launcher.run(['-n', ns], [`link set lo alias ${alias}`])).resolves.toBeUndefined();
    expect(await ipIn(ns, ['link', 'show', 'dev', 'lo'])).toContain(`alias ${alias}`);
    expect(existsSync('/tmp/lt-launcher-pwned')).toBe(false);
  });

  it('refuses arguments that are not plain tokens', async () => {
    expect(ShellIpLauncher.accepts(['-n', 'cni-1234'], ['link set lo up'])).toBe(true);
    expect(ShellIpLauncher.accepts(['-n', 'x;reboot'], [])).toBe(false);
    expect(ShellIpLauncher.accepts(['-n', 'a b'], [])).toBe(false);
    await expect(launcher.run(['-n', '$(id)'], ['link set lo up'])).rejects.toThrow(/unsafe/);
  });

  it('queues concurrent batches and answers each', async () => {
    const lines = Array.from({ length: 20 }, (_, i) => [`addr add 198.51.100.${i + 1}/32 dev lo`]);
    await Promise.all(lines.map((l) => launcher.run(['-n', ns], l)));
    const shown = await ipIn(ns, ['addr', 'show', 'dev', 'lo']);
    for (let i = 1; i <= 20; i++) expect(shown).toContain(`198.51.100.${i}/32`);
  });

  it('reports a missing namespace as an error, and keeps working after it', async () => {
    await expect(launcher.run(['-n', 'lt-no-such-namespace'], ['link set lo up'])).rejects.toThrow(/lt-no-such-namespace|No such file/);
    await expect(launcher.run(['-n', ns], ['link set lo up'])).resolves.toBeUndefined();
  });
});

describe('ShellIpLauncher deadlines (a fake ip that can hang)', () => {
  let dir = '';
  let fakeIp = '';
  const log = (): string => (existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8') : '');

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lt-fakeip-'));
    fakeIp = join(dir, 'ip');
    // Called as `ip -n NAME -batch -`: namespaces named stuck* hang for 3 s, then would write "late".
    writeFileSync(fakeIp, `#!/bin/sh\necho "start $2" >> ${dir}/log\ncat > /dev/null\ncase "$2" in stuck*) sleep 3; echo "late $2" >> ${dir}/log;; esac\n`, { mode: 0o755 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('one stuck ip does not hold up the jobs behind it', async () => {
    const l = new ShellIpLauncher({ ip: fakeIp, shells: 2, deadlineMs: 1_500 });
    try {
      const stuck = l.run(['-n', 'stuck-1'], ['link set lo up']);
      const t = performance.now();
      await l.run(['-n', 'ok-1'], ['link set lo up']);
      expect(performance.now() - t).toBeLessThan(1_000);
      await expect(stuck).rejects.toThrow(/did not finish within 1500 ms/);
    } finally {
      l.close();
    }
  });

  it('a timed-out job is killed, one that timed out in the queue never runs, and the launcher goes on', async () => {
    const l = new ShellIpLauncher({ ip: fakeIp, shells: 1, deadlineMs: 500 });
    try {
      const stuck = l.run(['-n', 'stuck-2'], ['link set lo up']);
      const queued = l.run(['-n', 'queued-2'], ['link del eth0']);
      await expect(stuck).rejects.toThrow(/did not finish/);
      await expect(queued).rejects.toThrow(/did not finish/);
      await new Promise((r) => setTimeout(r, 3_500)); // past the fake's sleep
      expect(log()).toContain('start stuck-2');
      expect(log()).not.toContain('late stuck-2'); // killed with its process group
      expect(log()).not.toContain('queued-2'); // never ran
      await l.run(['-n', 'ok-2'], ['link set lo up']);
      expect(log()).toContain('start ok-2');
    } finally {
      l.close();
    }
  }, 15_000);
});
