// The long-lived host-side ip runner's deadlines, against a fake ip that speaks its acknowledgement.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PersistentIpRunner, batchLine } from './ip-runner.js';

let dir = '';
let fakeIp = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lt-fakeip-'));
  fakeIp = join(dir, 'ip');
  // Like `ip -force -batch -`: the runner's marker line fails with "does not exist"; "hang" never ends.
  writeFileSync(fakeIp, `#!/bin/sh
while read -r line; do
  case "$line" in
    hang*) exec sleep 5;;
    "link show dev "*) echo "Device \\"\${line#link show dev }\\" does not exist." >&2; echo "Command failed -:1" >&2;;
  esac
done
`, { mode: 0o755 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('PersistentIpRunner', () => {
  it('kills a batch past its deadline, drops the one queued behind it, and goes on with a fresh ip', async () => {
    const runner = new PersistentIpRunner(400, fakeIp);
    try {
      await runner.batch(['link set lo up']);
      const hung = runner.batch(['hang']);
      const behind = runner.batch(['link set lo up']);
      await expect(hung).rejects.toThrow(/did not finish within 400 ms/);
      await expect(behind).rejects.toThrow(/did not finish/);
      await expect(runner.batch(['link set lo up'])).resolves.toBeUndefined();
    } finally {
      runner.close();
    }
  });
});

describe('batchLine', () => {
  it("quotes what ip's batch reader would split, and refuses what it cannot carry", () => {
    expect(batchLine(['link', 'set', 'dev', 'eth0', 'up'])).toBe('link set dev eth0 up');
    expect(batchLine(['dev', "'e1'"])).toBe(`dev "'e1'"`);
    expect(batchLine(['dev', '"q'])).toBe(`dev '"q'`);
    expect(batchLine(['dev', 'a\\'])).toBe('dev "a\\"'); // a line ending in a backslash would join the next
    expect(batchLine(['dev', 'e#1'])).toBeUndefined(); // '#' starts a comment anywhere
    expect(batchLine(['dev', `'a"`])).toBeUndefined();
  });
});
