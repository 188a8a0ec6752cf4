// lightlyctl doctor run against a lab, as the doctor netns tests drive it: one path, broken and mended in turn.
import { expect } from 'vitest';
import { execa } from 'execa';
import type { Diagnosis } from '../../agent/doctor/checks.js';
import { until } from './lab.js';

export interface LabDoctor {
  run(): Promise<{ exitCode: number; diagnosis: Diagnosis }>;
  /** Doctor names `id` on `node` as the first broken hop (waiting, bounded, for the control plane to notice), and exits 1. */
  expectBroken(id: string, node: string, timeoutMs?: number): Promise<Diagnosis>;
  /** Doctor finds the path good and exits 0 (waiting, bounded, for a mended path to settle). */
  expectGood(timeoutMs?: number): Promise<void>;
}

/** `lightlyctl doctor FROM TO --lab STATE_DIR --json` plus `extra` (e.g. --family 6), from dist/. */
export function labDoctor(stateDir: string, from: string, to: string, extra: string[] = []): LabDoctor {
  const run = async (): Promise<{ exitCode: number; diagnosis: Diagnosis }> => {
    const out = await execa(process.execPath, ['dist/bin/lightlyctl.js', 'doctor', from, to, '--lab', stateDir, '--json', ...extra], { reject: false, timeout: 60_000 });
    if (!out.stdout) throw new Error(`doctor printed nothing: ${out.stderr}`);
    return { exitCode: out.exitCode ?? -1, diagnosis: JSON.parse(out.stdout) as Diagnosis };
  };
  return {
    run,
    async expectBroken(id, node, timeoutMs = 1) {
      let last: Diagnosis | undefined;
      await until(`doctor to name ${id} on ${node}`, async () => {
        last = (await run()).diagnosis;
        return last.firstBroken?.id === id;
      }, timeoutMs).catch(() => undefined);
      expect(last?.firstBroken, last?.summary).toMatchObject({ id, node, status: 'FAIL' });
      expect(last!.summary).toContain(`breaks at ${node}`);
      expect(last!.firstBroken!.fix).toBeTruthy();
      const { exitCode } = await run();
      expect(exitCode).toBe(1);
      return last!;
    },
    async expectGood(timeoutMs = 30_000) {
      let last: { exitCode: number; diagnosis: Diagnosis } | undefined;
      await until('doctor to find the path good', async () => {
        last = await run();
        return last.exitCode === 0;
      }, timeoutMs).catch(() => undefined);
      expect(last?.diagnosis.summary).toMatch(/is good/);
      expect(last?.exitCode).toBe(0);
    },
  };
}
