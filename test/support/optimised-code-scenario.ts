// Run under the agent's node flags with --trace-deopt (bgp/speaker/optimised-code.test.ts reads the
// trace): a raw peer announces a table to our speaker one UPDATE at a time, then withdraws it, so
// the full collections that the table's growth sets off fall between UPDATEs, when none of the
// objects an UPDATE makes and drops (best-route changes, change lists, export caches) is alive.
// Now and then the main table is dumped as the agent's next-hop resolution does when the kernel's
// routes or addresses change, through a fake addon handing over a Buffer made in C++ as the real
// one's are (routes/route-dump.ts madeInJs).
// Usage: node FLAGS --import tsx test/support/optimised-code-scenario.ts [PREFIXES]
import v8 from 'node:v8';
import { Loopback, until } from '../../bgp/speaker/loopback.js';
import { dumpRoutes } from '../../routes/route-dump.js';

const PER_UPDATE = 800; // /27s in NLRI: 800 fit one 4,096-byte UPDATE
const prefixes = Math.ceil(Number(process.argv[2] ?? 96_000) / PER_UPDATE) * PER_UPDATE;
const PEER = '127.0.0.2';

/**
 * The full-table lab's generatedPrefix, not imported: what the lab's module loads (execa, file
 * streams) makes short-lived objects of its own, whose code V8 throws away the same way, and the
 * test would count those.
 */
const prefix = (i: number): string => {
  const a = 10 * 2 ** 24 + i * 32;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/27`;
};
const updateOf = (u: number): string[] => Array.from({ length: PER_UPDATE }, (_, i) => prefix(u * PER_UPDATE + i));
/** A turn of the event loop between UPDATEs, as between packets: a collection's last step runs as a task. */
const pause = () => new Promise((r) => setTimeout(r, 1));

/** fe80::/64 dev eth0, as the addon's dump gives a route (ROUTE_RECORD), in a Buffer made in C++ (v8.Serializer's is). */
const addon = {
  routeDump: async (): Promise<Buffer> => {
    const record = Buffer.alloc(40);
    record.set([6, 64, 1, 2]);
    record.write('eth0', 8);
    record.set([0xfe, 0x80], 24);
    const serializer = new v8.Serializer();
    serializer.writeRawBytes(record);
    return serializer.releaseBuffer();
  },
};

const loopback = new Loopback();
try {
  const speaker = await loopback.speaker({ maxPrefixes: 2 * prefixes }, [{ address: PEER, asn: 65001 }]);
  const peer = await loopback.connect(speaker, { localAddress: PEER, asn: 65001, families: [{ afi: 1, safi: 1 }] });
  const received = () => speaker.snapshot().find((p) => p.address === PEER)?.prefixesReceived;
  for (let u = 0; u < prefixes / PER_UPDATE; u++) {
    peer.announce(updateOf(u), PEER);
    if (u % 20 === 10) await dumpRoutes(addon, 201);
    await pause();
  }
  await until('the table received', () => received() === prefixes, 60_000);
  for (let u = 0; u < prefixes / PER_UPDATE; u++) {
    peer.send({ type: 2, withdrawn: updateOf(u), attributes: {}, nlri: [] });
    if (u % 20 === 10) await dumpRoutes(addon, 201);
    await pause();
  }
  await until('the table withdrawn', () => received() === 0, 60_000);
  // On stderr: V8's trace goes to stdout through C's buffer, and a line of ours there could split one of its lines.
  console.error(JSON.stringify({ done: prefixes }));
} finally {
  await loopback.cleanup();
}
