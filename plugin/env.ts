// The CNI_* environment variables, checked per verb (spec "Parameters"); bad ones are code 4.
import { CniCode, CniError } from './errors.js';

export const VERBS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type Verb = (typeof VERBS)[number];

export interface CniEnv {
  command: Verb;
  containerId: string;
  netns: string;
  ifname: string;
  args: Record<string, string>;
  path: string[];
}

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/**
 * Exactly the names the kernel takes (dev_valid_name in net/core/dev.c), and so ptp: 1 to 15 bytes,
 * not . or .., no '/', ':' or byte that the kernel's isspace() takes (\t \n \v \f \r, space, 0xa0).
 */
export function validIfname(name: string): boolean {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0 || bytes.length > 15 || name === '.' || name === '..') return false;
  return !bytes.some((b) => b === 0x2f || b === 0x3a || b === 0x20 || b === 0xa0 || (b >= 0x09 && b <= 0x0d));
}

function invalid(msg: string): CniError {
  return new CniError(CniCode.INVALID_ENV, msg);
}

/** Which variables each verb needs: DEL works without a netns (the pod may be gone already). */
const REQUIRED: Record<Verb, ('CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME')[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  GC: [],
  STATUS: [],
  VERSION: [],
};

export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND;
  if (!command) throw invalid('CNI_COMMAND is not set');
  if (!(VERBS as readonly string[]).includes(command)) throw invalid(`unknown CNI_COMMAND ${command}`);
  const verb = command as Verb;
  for (const name of REQUIRED[verb]) {
    if (!env[name]) throw invalid(`${name} is required for ${verb}`);
  }
  const containerId = env.CNI_CONTAINERID ?? '';
  if (containerId && !CONTAINER_ID.test(containerId)) throw invalid(`invalid CNI_CONTAINERID ${JSON.stringify(containerId)}`);
  const ifname = env.CNI_IFNAME ?? '';
  if (ifname && !validIfname(ifname)) throw invalid(`invalid CNI_IFNAME ${JSON.stringify(ifname)}`);
  const args: Record<string, string> = {};
  for (const pair of (env.CNI_ARGS ?? '').split(';').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw invalid(`invalid CNI_ARGS entry ${JSON.stringify(pair)}`);
    args[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { command: verb, containerId, netns: env.CNI_NETNS ?? '', ifname, args, path: (env.CNI_PATH ?? '').split(':').filter(Boolean) };
}
