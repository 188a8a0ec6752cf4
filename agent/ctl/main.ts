// lightlyctl: operators' CLI. `bgp status`, `routes`, `policy NS/POD`, `doctor FROM TO`, `doctor-facts`, `completion bash`.
import pkg from '../../package.json' with { type: 'json' };
import type { BgpStatus, InstalledRoute } from '../status.js';
import { formatDiagnosis } from '../doctor/checks.js';
import { AgentUnavailableError, getJson } from './client.js';
import { bashCompletion } from './completion.js';
import { doctor, localFacts } from './doctor.js';
import { formatAnnounced, formatBgpStatus, formatRoutes } from './format.js';
import type { PodPolicyView } from '../policy/describe.js';
import { formatPodPolicy } from './policy-format.js';

const USAGE = `usage: lightlyctl [--socket PATH] bgp status [--json]
       lightlyctl [--socket PATH] routes [--json]
       lightlyctl [--socket PATH] policy NAMESPACE/POD [--json]   (which NetworkPolicies select the pod, what each allows)
       lightlyctl [--socket PATH] policy status [--json]
       lightlyctl [--socket PATH] doctor FROM TO [--family 4|6] [--port N[/tcp|udp]] [--json] [--lab STATE_DIR] [--dest-facts FILE | --dest-socket PATH]
       lightlyctl [--socket PATH] doctor-facts LOCAL_POD_IP REMOTE_POD_IP [--remote-node IP] [--port N[/tcp|udp]]
       lightlyctl completion bash
       lightlyctl --version
The socket defaults to $LIGHTLY_SOCKET or /run/lightly/agent.sock.
doctor walks the path from pod FROM to pod TO hop by hop and names the first broken one; FROM and TO
are pod IPs, namespace/pod names (through KUBECONFIG) or, with --lab, lab pod names. It exits 0 when
the path is good, 1 when a hop is broken. Pods named by name walk their IPv4 address, or with --family 6
their IPv6 one (dual stack); pod IPs say their family themselves. NetworkPolicy verdicts are for --port
(default: is any traffic allowed). doctor-facts prints this node's facts for a doctor run on
another node that cannot reach this agent (pass them there with --dest-facts).`;

/** Options that take a value; the rest are flags or words. */
const VALUED = ['--socket', '--lab', '--dest-facts', '--dest-socket', '--remote-node', '--port', '--family'] as const;

async function main(argv: string[]): Promise<number> {
  const values: Partial<Record<(typeof VALUED)[number], string>> = {};
  const words: string[] = [];
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const valued = VALUED.find((o) => arg === o || arg.startsWith(`${o}=`));
    if (valued) values[valued] = arg === valued ? (argv[++i] ?? '') : arg.slice(valued.length + 1);
    else if (arg === '--json') json = true;
    else if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      return 0;
    } else if (arg === '--version') {
      console.log(`lightlyctl ${pkg.version}`);
      return 0;
    } else words.push(arg);
  }
  const socket = values['--socket'] ?? process.env.LIGHTLY_SOCKET ?? '/run/lightly/agent.sock';
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
    if (command === 'completion bash') {
      process.stdout.write(bashCompletion());
      return 0;
    }
    if (words[0] === 'doctor' && words.length === 3) {
      const diagnosis = await doctor(words[1]!, words[2]!, {
        socket,
        ...(values['--lab'] ? { lab: values['--lab'] } : {}),
        ...(values['--dest-facts'] ? { destFacts: values['--dest-facts'] } : {}),
        ...(values['--dest-socket'] ? { destSocket: values['--dest-socket'] } : {}),
        ...(values['--port'] ? { port: values['--port'] } : {}),
        ...(values['--family'] ? { family: values['--family'] } : {}),
      });
      console.log(json ? JSON.stringify(diagnosis, null, 2) : formatDiagnosis(diagnosis));
      return diagnosis.ok ? 0 : 1;
    }
    if (words[0] === 'doctor-facts' && words.length === 3) {
      console.log(JSON.stringify(await localFacts(socket, words[1]!, words[2]!, values['--remote-node'], values['--port']), null, 2));
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
