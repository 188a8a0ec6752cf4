// How the DaemonSet runs the agent (node's flags, MALLOC_ARENA_MAX), read from the manifest, so benches measure what ships.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

export interface AgentRuntime {
  /** Node's own flags, between `node` and the bundle. */
  flags: string[];
  env: Record<string, string>;
}

/** Node's own flags (between `node` and the bundle, plus NODE_OPTIONS) and MALLOC_ARENA_MAX of the DaemonSet's agent container. */
export function shippedRuntime(manifest = 'deploy/kubernetes/daemonset.yaml'): AgentRuntime {
  const docs = parseAllDocuments(readFileSync(manifest, 'utf8')).map((d) => d.toJS());
  const agent = docs.find((d) => d?.kind === 'DaemonSet')?.spec.template.spec.containers.find((c: { name: string }) => c.name === 'agent');
  const command: string[] = agent?.command ?? [];
  const bundle = command.findIndex((a) => a.endsWith('lightly-agent.js'));
  const fromEnv = (name: string): Record<string, string> => {
    const value = (agent?.env ?? []).find((e: { name: string; value?: string }) => e.name === name)?.value;
    return value ? { [name]: value } : {};
  };
  const options = fromEnv('NODE_OPTIONS').NODE_OPTIONS?.split(' ').filter(Boolean) ?? [];
  return { flags: [...command.slice(1, Math.max(1, bundle)), ...options], env: fromEnv('MALLOC_ARENA_MAX') };
}

/**
 * The flags in the environment variable `flagsVar` (and MALLOC_ARENA_MAX from the environment) when
 * it is set, else what the DaemonSet runs; `extraVar` adds flags to either (e.g. --cpu-prof).
 */
export function agentRuntime(flagsVar: string, extraVar?: string): AgentRuntime {
  const extra = (extraVar ? process.env[extraVar] : undefined)?.split(' ').filter(Boolean) ?? [];
  const given = process.env[flagsVar];
  if (given === undefined) {
    const shipped = shippedRuntime();
    return { flags: [...shipped.flags, ...extra], env: shipped.env };
  }
  return { flags: [...given.split(' ').filter(Boolean), ...extra], env: process.env.MALLOC_ARENA_MAX ? { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX } : {} };
}
