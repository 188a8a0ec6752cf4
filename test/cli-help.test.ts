// Every binary answers --help with its usage on stdout and exit 0 (lightly-agent used to log a fatal JSON error).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const BINARIES = ['lightly', 'lightly.js', 'lightly-agent.js', 'lightlyctl.js', 'lightly-lab.js'];

describe('--help on every binary', () => {
  it.each(BINARIES)('%s --help prints usage and exits 0', async (name) => {
    const path = join('dist/bin', name);
    if (!existsSync(path)) throw new Error(`${path} is missing: run npm run build`);
    for (const flag of ['--help', '-h']) {
      // stdin closed at once: the shim must not wait for a network config before looking at its arguments.
      const out = await execa(path, [flag], { input: '', reject: false, timeout: 10_000, env: { LIGHTLY_CNI_ADDR: '/nonexistent' } });
      expect(out.exitCode, out.stderr).toBe(0);
      expect(out.stdout).toMatch(/^usage: /);
      expect(out.stdout).not.toContain('"level"');
    }
  });
});
