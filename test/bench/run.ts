// `npm run bench`: every benchmark, each printing ratios against reference tools measured in the same run.
import { benchCni } from './cni.bench.js';
import { benchBgp } from './bgp.bench.js';
import { benchDataplane } from './dataplane.bench.js';
import { benchKube } from './kube.bench.js';
import { benchPolicy } from './policy.bench.js';
import { benchServices } from './services.bench.js';
import { requireNetworkTools } from '../support/netns.js';

const sections: [string, () => Promise<string[]>][] = [
  ['cni', () => benchCni()],
  ['bgp', () => benchBgp()],
  ['dataplane', () => benchDataplane()],
  ['kube', () => benchKube()],
  ['policy', () => benchPolicy()],
  ['services', () => benchServices()],
];
const only = process.argv[2];

await requireNetworkTools(['ip', 'nsenter', 'bird', 'birdc', 'iperf3']);
for (const [name, bench] of sections) {
  if (only && only !== name) continue;
  try {
    for (const line of await bench()) console.log(line);
  } catch (err) {
    console.log(`${name}: FAILED: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
