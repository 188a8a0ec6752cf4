// Run inside a test namespace: a session with hold time 0 whose peer then goes silent (every TCP
// segment dropped by nftables in this namespace); reports as one JSON line whether and when our
// speaker noticed. Usage: node --import tsx test/support/silent-peer-scenario.ts KEEPALIVE_IDLE_SECONDS WAIT_MS
import { execa } from 'execa';
import { Speaker } from '../../bgp/speaker/speaker.js';
import { RawPeer } from '../../bgp/speaker/raw-peer.js';
import { until } from './wait.js';

const idle = Number(process.argv[2]);
const waitMs = Number(process.argv[3]);
const PEER = '127.0.0.2';
const s = new Speaker({
  asn: 64512, routerId: '10.0.0.1', listenAddress: '127.0.0.1', listenPort: 0, holdTime: 9, connectRetrySeconds: 1,
  gracefulRestart: { enabled: false, restartTime: 5, restarting: false }, importCIDRs: ['10.0.0.0/8'], allowDefaultRoute: false, maxPrefixes: 100,
  tcpKeepaliveIdleSeconds: idle,
});
await s.start();
s.setPeers([{ address: PEER, asn: 65000, passive: true }]);
const stateOf = () => s.snapshot()[0]?.state;
// Hold time 0 (RFC 4271 §4.2): no KEEPALIVEs, no hold timer; only TCP can tell the peer is gone.
const peer = await RawPeer.establish({ host: '127.0.0.1', port: s.port, localAddress: PEER, asn: 65000, routerId: PEER, holdTime: 0, families: [{ afi: 1, safi: 1 }] });
peer.send({ type: 2, withdrawn: [], nlri: ['10.9.0.0/24'], attributes: { origin: 0, asPath: [{ type: 2, asns: [65000] }], nextHop: PEER } });
await until('Established with the route', async () => stateOf() === 'Established' && s.bestRoutes().length === 1, 10_000);
const nft = (rule: string) => execa('nft', [rule]);
await nft('add table inet lt_silent');
await nft('add chain inet lt_silent input { type filter hook input priority 0; policy accept; }');
await nft('add rule inet lt_silent input meta l4proto tcp drop');
const dropped = Date.now();
const noticed = await until('the session down', async () => stateOf() !== 'Established', waitMs).then(() => true, () => false);
console.log(JSON.stringify({ noticed, afterMs: Date.now() - dropped, state: stateOf(), routes: s.bestRoutes().length }));
peer.close();
await s.stop({ graceful: false });
process.exit(0);
