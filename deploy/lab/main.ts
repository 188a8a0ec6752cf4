// lightly-lab: a whole Lightly cluster as network namespaces on one machine.
//   lightly-lab up --nodes N --pods M [--tor bird] [--json]   lightly-lab status [--json]
//   lightly-lab up --nodes N --racks R --tor frr|bird [--spine frr|bird] [--dual-stack]   (a ToR per rack, one spine)
//   lightly-lab add-node [--json]                             lightly-lab down
import { addNode, down, labView, status, up } from './lab.js';
import type { LabOptions } from './topology.js';

const USAGE = `usage: lightly-lab up --nodes N --pods M [--tor mesh|bird] [--dual-stack | --ipv6-only] [--hold-time S] [--json]
       lightly-lab up --nodes N --pods M --racks R --tor frr|bird [--spine frr|bird] [--dual-stack] [--json]
       lightly-lab status [--json] | lightly-lab add-node [--json] | lightly-lab down
common: --prefix lt- (namespace names)  --state-dir /run/lightly/lab`;

function option(args: string[], name: string, fallback: string): string {
  const at = args.indexOf(name);
  return at >= 0 && args[at + 1] !== undefined ? args[at + 1]! : fallback;
}

async function main(args: string[]): Promise<number> {
  const command = args[0];
  const json = args.includes('--json');
  const prefix = option(args, '--prefix', 'lt-');
  const stateDir = option(args, '--state-dir', '/run/lightly/lab');
  const log = (msg: string): void => void process.stderr.write(`${msg}\n`);
  if (process.getuid?.() !== 0 && command !== undefined && command !== '--help' && command !== '-h') {
    log('lightly-lab: needs root (it creates network namespaces)');
    return 1;
  }
  switch (command) {
    case 'up': {
      const tor = option(args, '--tor', 'mesh');
      if (tor !== 'mesh' && tor !== 'bird' && tor !== 'frr') throw new Error('--tor takes mesh, bird or frr (frr with --racks)');
      const racks = args.includes('--racks') ? Number(option(args, '--racks', '')) : undefined;
      const spine = args.includes('--spine') ? option(args, '--spine', '') : undefined;
      if (spine !== undefined && spine !== 'bird' && spine !== 'frr') throw new Error('--spine takes bird or frr');
      const options: LabOptions = {
        nodes: Number(option(args, '--nodes', '3')),
        pods: Number(option(args, '--pods', '2')),
        prefix,
        stateDir,
        holdTime: Number(option(args, '--hold-time', '9')),
        tor,
        ...(racks !== undefined ? { racks } : {}),
        ...(spine !== undefined ? { spine } : {}),
        ...(args.includes('--dual-stack') ? { stack: 'dual' as const } : args.includes('--ipv6-only') ? { stack: 'ipv6' as const } : {}),
      };
      try {
        const state = await up(options, log);
        if (json) console.log(JSON.stringify(labView(state), null, 2));
        else log(`lab up: ${state.plan.nodes.length} nodes. Explore: ip netns exec ${prefix}pod-1-1 ping <pod ip>; lightlyctl --socket ${state.plan.nodes[0]!.statusSocket} bgp status; tear down: lightly-lab down`);
        return 0;
      } catch (err) {
        log(`lightly-lab up failed: ${(err as Error).message}\n(run lightly-lab down to remove what was made)`);
        return 1;
      }
    }
    case 'add-node': {
      const node = await addNode(stateDir, log);
      if (json) console.log(JSON.stringify({ name: node.name, netns: node.netns, address: node.address, podCIDR: node.podCIDR, pods: node.pods }, null, 2));
      return 0;
    }
    case 'status': {
      const s = status(stateDir);
      if (!s) {
        log(`no lab is up (no state in ${stateDir})`);
        return 1;
      }
      if (json) console.log(JSON.stringify({ ...labView(s.state), agents: s.health }, null, 2));
      else for (const h of s.health) console.log(`${h.name}: agent ${h.agentRunning ? 'running' : 'NOT running'}`);
      return 0;
    }
    case 'down':
      await down(stateDir, prefix, log);
      return 0;
    default:
      if (command === '--help' || command === '-h') {
        console.log(USAGE);
        return 0;
      }
      log(USAGE);
      return 2;
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`lightly-lab: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
