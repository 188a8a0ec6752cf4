// One CNI invocation as a function: environment and stdin in, the text to print and the exit code out.
import { CniCode, CniError, asCniError } from './errors.js';
import { parseEnv } from './env.js';
import { LATEST_VERSION, parseNetConf, requireSupportedVersion } from './spec.js';
import * as verbs from './verbs.js';
import { SpawnIpRunner } from './ip-runner.js';
import type { VerbDeps } from './verbs.js';
import { NetnsElsewhere } from './dataplane.js';

/** The cniVersion to echo in an error: the config's when it can be read, else the newest. */
function versionForErrors(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' ? v : LATEST_VERSION;
  } catch {
    return LATEST_VERSION;
  }
}

/**
 * `deps` says how to run ip in our namespace and in a pod's: the CNI server passes its long-lived
 * runners, else a process per call. `elsewhere` means the pod's namespace is not one this process
 * can enter: nothing was done, and the plugin must run where the runtime is.
 */
export async function run(
  env: NodeJS.ProcessEnv,
  stdin: string,
  deps: VerbDeps = { hostIp: new SpawnIpRunner() },
): Promise<{ stdout: string; exitCode: number; elsewhere?: true }> {
  try {
    const cniEnv = parseEnv(env);
    if (cniEnv.command === 'VERSION') {
      const requested = stdin.trim() ? versionForErrors(stdin) : undefined;
      return { stdout: JSON.stringify(verbs.version(requested)), exitCode: 0 };
    }
    if (!stdin.trim()) throw new CniError(CniCode.DECODE_FAILURE, 'no network configuration on stdin');
    const conf = parseNetConf(stdin);
    const version = requireSupportedVersion(conf.cniVersion);
    const handlers = { ADD: verbs.add, DEL: verbs.del, CHECK: verbs.check, GC: verbs.gc, STATUS: verbs.status };
    const output = await handlers[cniEnv.command](conf, version, cniEnv, deps);
    return { stdout: output ? JSON.stringify(output) : '', exitCode: 0 };
  } catch (err) {
    if (err instanceof NetnsElsewhere) return { stdout: '', exitCode: 1, elsewhere: true };
    const cniError = asCniError(err);
    return { stdout: JSON.stringify(cniError.toJSON(versionForErrors(stdin))), exitCode: 1 };
  }
}
