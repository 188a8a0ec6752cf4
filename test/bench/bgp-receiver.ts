// Benchmark helper: our speaker receiving a full table; prints one JSON line when N prefixes are in.
import { Speaker } from '../../bgp/speaker/speaker.js';

const [address, peer, wanted] = [process.argv[2]!, process.argv[3]!, Number(process.argv[4])];
const speaker = new Speaker({
  asn: 64512, routerId: address, listenAddress: address, listenPort: 179, holdTime: 90, connectRetrySeconds: 1,
  gracefulRestart: { enabled: false, restartTime: 120, restarting: false }, importCIDRs: [], allowDefaultRoute: false, maxPrefixes: 10_000_000,
});
let count = 0;
let first = 0;
speaker.on('routes', (changes) => {
  if (!first) first = Date.now();
  for (const c of changes) count += c.nextHops.length ? 1 : 0;
  if (count >= wanted) {
    console.log(JSON.stringify({ done: Date.now(), firstUpdate: first, count, rssMB: Math.round(process.memoryUsage().rss / 1e6) }));
    void speaker.stop({ graceful: false }).then(() => process.exit(0));
  }
});
await speaker.start();
speaker.setPeers([{ address: peer, asn: 65000, passive: true }]);
console.log(JSON.stringify({ ready: Date.now() }));
