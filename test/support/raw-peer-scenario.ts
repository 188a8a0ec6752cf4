// Run inside a test namespace (the agent's): raw peers that feed the agent the UPDATEs that used to
// crash it (RFC 4271 §4.3), then report as one JSON line what each peer received.
// Usage: node --import tsx test/support/raw-peer-scenario.ts PORT
import { until } from './wait.js';
import { RawPeer, update4095, v6With90Communities } from '../../bgp/speaker/raw-peer.js';

const port = Number(process.argv[2]);
const V4V6 = [{ afi: 1 as const, safi: 1 }, { afi: 2 as const, safi: 1 }];
const peer = (address: string, asn: number) =>
  RawPeer.establish({ host: '127.0.0.1', port, localAddress: address, asn, routerId: address, holdTime: 9, families: V4V6 });

/** Waits for `check`; gives up quietly at the deadline: the report shows what arrived. */
const settle = (check: () => boolean, ms: number) => until('the routes', async () => check(), ms).catch(() => undefined);

const report = (p: RawPeer) => ({ announced: new Set(p.announced()).size, notifications: p.notifications(), errors: p.received.filter((m) => m.type === 'error').length, closed: p.closed });

const ibgp = await peer('127.0.0.3', 64512);
const ebgp = await peer('127.0.0.2', 65000);
ebgp.sendBytes(update4095('192.0.2.2'));
for (const u of v6With90Communities('fd00::2')) ebgp.send(u);
ebgp.send({ type: 2, withdrawn: [], nlri: ['10.8.0.0/24'], attributes: { origin: 0, asPath: [{ type: 2, asns: [65000] }], nextHop: '192.0.2.2' } });
await settle(() => new Set(ibgp.announced()).size >= 301, 10_000);
// A peer that comes up now gets the whole table grouped at once.
const late = await peer('127.0.0.4', 64512);
await settle(() => new Set(late.announced()).size >= 301, 10_000);
console.log(JSON.stringify({ ibgp: report(ibgp), ebgp: report(ebgp), late: report(late) }));
for (const p of [ibgp, ebgp, late]) p.close();
