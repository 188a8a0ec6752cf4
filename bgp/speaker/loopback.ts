// Our Speaker on loopback with scripted raw peers (sessions it waits for): test support for the speaker's own tests.
import { Speaker, type SpeakerConfig } from './speaker.js';
import { RawPeer, type RawPeerOptions } from './raw-peer.js';

export const US = '127.0.0.1';
export const ASN = 64512;

export async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The speaker's best routes with next hops, prefix → comma-joined next hops. */
export const routesOf = (s: Speaker) => Object.fromEntries(s.bestRoutes().filter((r) => r.nextHops.length).map((r) => [r.prefix, r.nextHops.join(',')]));

/** Speakers and raw peers made by a test file; `cleanup()` in afterEach. */
export class Loopback {
  private readonly speakers: Speaker[] = [];
  private readonly peers: RawPeer[] = [];

  /** A started speaker on 127.0.0.1 whose peers are passive: the raw peers open every session. */
  async speaker(extra: Partial<SpeakerConfig>, peers: { address: string; asn: number; routeReflectorClient?: boolean }[]): Promise<Speaker> {
    const s = new Speaker({
      asn: ASN, routerId: US, listenAddress: US, listenPort: 0, holdTime: 9, connectRetrySeconds: 0.1,
      gracefulRestart: { enabled: true, restartTime: 5, restarting: false }, importCIDRs: [], allowDefaultRoute: false, maxPrefixes: 1000, ...extra,
    });
    this.speakers.push(s);
    await s.start();
    s.setPeers(peers.map((p) => ({ ...p, passive: true })));
    return s;
  }

  /**
   * Connects a raw peer once the speaker waits for it (Active): while Idle after a loss it refuses
   * connections, and a refused connection it never reads stays half-open on its side.
   */
  async connect(s: Speaker, options: Omit<RawPeerOptions, 'host' | 'port'>): Promise<RawPeer> {
    await until('the speaker waiting for the peer', () => s.snapshot().find((p) => p.address === options.localAddress)?.state === 'Active');
    const p = await RawPeer.establish({ host: US, port: s.port, ...options }, 5_000);
    this.peers.push(p);
    return p;
  }

  async cleanup(): Promise<void> {
    for (const p of this.peers.splice(0)) p.drop();
    for (const s of this.speakers.splice(0)) await s.stop({ graceful: false });
  }
}
