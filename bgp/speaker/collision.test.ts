// Connection collisions (RFC 4271 §6.8) between two of our speakers opening at once, with router ids
// ordered against their addresses, the way a top-of-rack with a loopback router id peers.
import { afterEach, describe, expect, it } from 'vitest';
import { Speaker } from './speaker.js';

const speakers: Speaker[] = [];
afterEach(async () => {
  for (const s of speakers.splice(0)) await s.stop({ graceful: false });
});

function speaker(address: string, routerId: string): Speaker {
  const s = new Speaker({
    asn: 64512, routerId, listenAddress: address, listenPort: 0, holdTime: 9, connectRetrySeconds: 0.2,
    gracefulRestart: { enabled: false, restartTime: 5, restarting: false }, importCIDRs: [], allowDefaultRoute: false, maxPrefixes: 1000,
  });
  speakers.push(s);
  return s;
}

const established = (s: Speaker): boolean => s.snapshot().every((p) => p.state === 'Established');

describe('connection collision', () => {
  it.each([
    ['router ids ordered like the addresses', '10.0.0.1', '10.0.0.2'],
    ['router ids ordered against the addresses', '10.0.0.9', '10.0.0.1'],
  ])('two speakers opening at once end with one session that stays up (%s)', async (_name, idA, idB) => {
    for (let round = 0; round < 3; round++) {
      const a = speaker('127.0.0.1', idA);
      const b = speaker('127.0.0.2', idB);
      await a.start();
      await b.start();
      let ups = 0;
      for (const s of [a, b]) s.on('peerState', (_peer: string, _from: string, to: string) => void (to === 'Established' && ups++));
      // Both sides are told of each other in the same tick: both connect, both accept.
      a.setPeers([{ address: '127.0.0.2', asn: 64512, port: b.port, type: 'node-mesh' }]);
      b.setPeers([{ address: '127.0.0.1', asn: 64512, port: a.port, type: 'node-mesh' }]);
      const deadline = Date.now() + 10_000;
      while (!(established(a) && established(b)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(established(a) && established(b), `round ${round}: ${JSON.stringify([a.snapshot(), b.snapshot()])}`).toBe(true);
      await new Promise((r) => setTimeout(r, 500));
      expect(established(a) && established(b)).toBe(true);
      for (const s of speakers.splice(0)) await s.stop({ graceful: false });
      expect(ups, 'each side established exactly once: no flap after the collision').toBe(2);
    }
  }, 40_000);
});
