// One CNI invocation as a function: environment and stdin in, the text to print and the exit code out.
import { CniCode, CniError, asCniError } from './errors.js';
import { parseEnv } from './env.js';
import { LATEST_VERSION, parseNetConf, requireSupportedVersion } from './spec.js';
import * as verbs from './verbs.js';
import { type IpRunner, SpawnIpRunner } from './ip-runner.js';
import type { PodIpRunners } from './dataplane.js';

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
 * `hostIp` runs ip in our namespace and `podIp` in a pod's: the CNI server passes its long-lived
 * ones, else a process per call.
 */
export async function run(
  env: NodeJS.ProcessEnv,
  stdin: string,
  hostIp: IpRunner = new SpawnIpRunner(),
  podIp?: PodIpRunners,
): Promise<{ stdout: string; exitCode: number }> {
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
    const output = await handlers[cniEnv.command](conf, version, cniEnv, { hostIp, ...(podIp ? { podIp } : {}) });
    return { stdout: output ? JSON.stringify(output) : '', exitCode: 0 };
  } catch (err) {
    const cniError = asCniError(err);
    return { stdout: JSON.stringify(cniError.toJSON(versionForErrors(stdin))), exitCode: 1 };
  }
}
