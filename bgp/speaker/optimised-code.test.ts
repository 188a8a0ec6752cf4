// The speaker's optimised code outlives full collections under the node flags the DaemonSet runs
// the agent with: no code thrown away because an object it was compiled for died (see Change in
// bgp/rib/rib.ts, and madeInJs in routes/route-dump.ts for the addon's Buffers). Each time costs a
// compilation on V8's helper threads, which during a full table compete with the route writes on
// the node's cores.
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { shippedRuntime } from '../../test/support/agent-runtime.js';

/** Functions `--trace-deopt` marked for deoptimisation because an object embedded in their code died. */
const weakObjectDeopts = (trace: string): string[] =>
  [...trace.matchAll(/^\[marking dependent code .*<SharedFunctionInfo ?([^>]*)>.*reason: weak objects\]$/gm)].map((m) => m[1] || '(anonymous)');

/** Functions TurboFan optimised (`--trace-opt`): code never optimised is never thrown away either, so none thrown away says nothing without them. */
const optimised = (trace: string): string[] => [...trace.matchAll(/^\[completed optimizing .*?<JSFunction ([^ >]+)/gm)].map((m) => m[1]!);

describe('optimised code under the shipped node flags', () => {
  it('a table announced and withdrawn UPDATE by UPDATE throws no optimised code away for dead objects', async () => {
    const { flags } = shippedRuntime();
    expect(flags).toContain('--optimize-for-size'); // the flag that makes every full collection a memory-reducing one
    const run = await execa(process.execPath, [...flags, '--trace-deopt', '--trace-opt', '--import', 'tsx', 'test/support/optimised-code-scenario.ts', '96000'], { reject: false, timeout: 90_000 });
    expect(run.stderr, run.stdout.slice(-2000)).toContain('{"done":96000}');
    expect(optimised(run.stdout)).toEqual(expect.arrayContaining(['Change', 'learn', 'select', 'advertise']));
    expect(weakObjectDeopts(run.stdout)).toEqual([]);
  }, 120_000);
});
