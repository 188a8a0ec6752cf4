// The CNI server's shell launcher against real ip, in a throwaway namespace only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
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
