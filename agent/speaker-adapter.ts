// The agent's SpeakerPort over bgp/'s Speaker.
import type { Logger } from 'pino';
import { Speaker } from '../bgp/speaker/speaker.js';
import { AFI } from '../bgp/codec/types.js';
import type { SpeakerPort, SpeakerSettings } from './ports.js';
import type { PeerState, PeerStatus } from './status.js';
import type { PeerType } from './config.js';
import { md5DropsSince, md5Hint, nativeTcpMd5, readMd5Drops } from './tcp-md5.js';
import { sessionFlaps } from './event-metrics.js';

export function createSpeaker(settings: SpeakerSettings, log: Logger): SpeakerPort {
  const speaker = new Speaker({
    asn: settings.asn, routerId: settings.routerId, listenAddress: settings.listenAddress, listenPort: settings.listenPort,
    holdTime: settings.holdTime, connectRetrySeconds: settings.connectRetrySeconds, gracefulRestart: settings.gracefulRestart,
    importCIDRs: settings.importCIDRs, allowDefaultRoute: settings.allowDefaultRoute, maxPrefixes: settings.maxPrefixes,
    ...(settings.clusterId ? { clusterId: settings.clusterId } : {}), log,
    ...(settings.rejectCIDRs?.length ? { rejectCIDRs: settings.rejectCIDRs } : {}),
    ...(settings.nextHops ? { nextHops: settings.nextHops } : {}),
    ...(settings.nextHopSelf ? { nextHopSelf: settings.nextHopSelf } : {}),
    ...(settings.ribSlots ? { ribSlots: settings.ribSlots } : {}),
    tcpMd5: nativeTcpMd5,
  });
  // TCP MD5 drops counted from here on: older ones say nothing of this speaker's peers.
  const md5Base = readMd5Drops();
  speaker.on('peerState', (peer, from, to) => {
    log.info({ peer, from, to }, 'bgp peer state changed');
    if (from === 'Established') sessionFlaps.inc({ peer });
  });
  speaker.on('deferralEnded', (reason) => log.info({ reason }, 'graceful restart: route selection no longer deferred'));
  return {
    start: () => speaker.start(),
    setPeers: (peers) =>
      speaker.setPeers(peers.map((p) => ({
        address: p.address, asn: p.asn, port: p.port, passive: p.passive, routeReflectorClient: p.routeReflectorClient, type: p.type,
        ...(p.holdTime !== undefined ? { holdTime: p.holdTime } : {}), ...(p.maxPrefixes !== undefined ? { maxPrefixes: p.maxPrefixes } : {}),
        ...(p.password ? { password: p.password } : {}),
        ...(p.families ? { families: p.families.map((f) => (f === 'ipv6' ? AFI.IPv6 : AFI.IPv4)) } : {}),
      }))),
    setOriginated: (prefixes) => speaker.setOriginated(prefixes),
    setImportPolicy: (policy) => speaker.setImportPolicy(policy),
    onBestRoutes: (listener) => void speaker.on('routes', listener),
    nextHopsChanged: () => speaker.nextHopsChanged(),
    onSelectionDone: (listener) => void speaker.on('deferralEnded', () => listener()),
    peerStatus: (): PeerStatus[] => {
      const drops = md5DropsSince(readMd5Drops(), md5Base);
      return speaker.snapshot().map((p) => {
        const hint = md5Hint({ state: p.state as PeerState, tcpMd5: p.tcpMd5 }, drops);
        return {
          address: p.address, asn: p.asn, type: (p.type ?? (p.asn === settings.asn ? 'node-mesh' : 'global')) as PeerType,
          state: p.state as PeerState, uptimeSeconds: p.uptimeSeconds, prefixesReceived: p.prefixesReceived, prefixesAdvertised: p.prefixesAdvertised,
          families: p.families,
          ...(p.info ? { info: p.info } : {}),
          ...(hint ? { hint } : {}),
        };
      });
    },
    lookup: (address) => speaker.lookup(address),
    stop: (options) => speaker.stop(options),
  };
}
