// lightlyctl: operators' CLI. `lightlyctl [--socket PATH] bgp status [--json]`, `routes [--json]`, `policy NS/POD [--json]`.
import type { BgpStatus, InstalledRoute } from '../status.js';
import { AgentUnavailableError, getJson } from './client.js';
import { formatAnnounced, formatBgpStatus, formatRoutes } from './format.js';
import type { PodPolicyView } from '../policy/describe.js';
import { formatPodPolicy } from './policy-format.js';

const USAGE = `usage: lightlyctl [--socket PATH] bgp status [--json]
       lightlyctl [--socket PATH] routes [--json]
       lightlyctl [--socket PATH] policy NAMESPACE/POD [--json]   (which NetworkPolicies select the pod, what each allows)
       lightlyctl [--socket PATH] policy status [--json]
The socket defaults to $LIGHTLY_SOCKET or /run/lightly/agent.sock.`;

async function main(argv: string[]): Promise<number> {
  let socket = process.env.LIGHTLY_SOCKET ?? '/run/lightly/agent.sock';
  const words: string[] = [];
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--socket') socket = argv[++i] ?? '';
    else if (arg.startsWith('--socket=')) socket = arg.slice('--socket='.length);
    else if (arg === '--json') json = true;
    else if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      return 0;
    } else words.push(arg);
  }
  const command = words.join(' ');
  try {
    if (command === 'bgp status') {
      const status = await getJson<BgpStatus>(socket, '/v1/bgp/status');
      console.log(json ? JSON.stringify(status, null, 2) : formatBgpStatus(status));
      return 0;
    }
    if (command === 'routes') {
      const routes = await getJson<InstalledRoute[]>(socket, '/v1/routes');
      // The kernel's routes; then what this node announces and why (JSON: `bgp status --json`, field announced).
      const announced = json ? undefined : (await getJson<BgpStatus>(socket, '/v1/bgp/status')).announced;
      console.log(json ? JSON.stringify(routes, null, 2) : `${formatRoutes(routes)}\n${formatAnnounced(announced)}`);
      return 0;
    }
    if (command === 'policy status') {
      const status = await getJson<unknown>(socket, '/v1/policy');
      console.log(JSON.stringify(status, null, 2));
      return 0;
    }
    const pod = /^policy ([^/\s]+\/[^/\s]+)$/.exec(command)?.[1];
    if (pod) {
      const view = await getJson<PodPolicyView | { error: string }>(socket, `/v1/policy/pod?name=${encodeURIComponent(pod)}`);
      if ('error' in view) {
        console.error(`lightlyctl: ${view.error}`);
        return 1;
      }
      console.log(json ? JSON.stringify(view, null, 2) : formatPodPolicy(view));
      return 0;
    }
  } catch (err) {
    console.error(`lightlyctl: ${(err as Error).message}`);
    return err instanceof AgentUnavailableError ? 3 : 1;
  }
  console.error(`lightlyctl: unknown command ${JSON.stringify(command)}\n${USAGE}`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
