// TCP MD5 (RFC 2385) through the speaker with the native addon, two speakers over loopback: a shared
// password establishes, a changed one resets the session (Cease 6/6) and keeps it down until both
// agree again; the listener holds a key per peer address exactly while that peer has a password.
import { afterEach, describe, expect, it } from 'vitest';
import { Speaker } from '../bgp/speaker/speaker.js';
import type { TcpMd5 } from '../bgp/session/session.js';
import { nativeTcpMd5 } from './tcp-md5.js';
import { until } from '../test/support/wait.js';

const speakers: Speaker[] = [];
afterEach(async () => {
  for (const s of speakers.splice(0)) await s.stop({ graceful: false });
});

/** The native addon, recording the sockets it makes and each key change (fd, address, whether a key is set). */
function recording(): { md5: TcpMd5; keys: [number, string, boolean][]; made: Set<number> } {
  const keys: [number, string, boolean][] = [];
  const made = new Set<number>();
  return {
    keys,
    made,
    md5: {
      tcpSocket: (family) => {
        const fd = nativeTcpMd5.tcpSocket(family);
        made.add(fd);
        return fd;
      },
      setTcpMd5Key: (fd, address, key) => {
        keys.push([fd, address, key !== '']);
        nativeTcpMd5.setTcpMd5Key(fd, address, key);
      },
    },
  };
}

function speaker(address: string, asn: number, md5: TcpMd5): Speaker {
  const s = new Speaker({
    asn, routerId: address, listenAddress: address, listenPort: 0, holdTime: 9, connectRetrySeconds: 0.2,
    gracefulRestart: { enabled: false, restartTime: 5, restarting: false }, importCIDRs: [], allowDefaultRoute: false, maxPrefixes: 1000, tcpMd5: md5,
  });
  speakers.push(s);
  return s;
}

const state = (s: Speaker) => s.snapshot()[0]?.state;

describe('TCP MD5 through the speaker (RFC 2385)', () => {
  it('establishes with the same password, resets with 6/6 on a live change, stays down on a mismatch', async () => {
    const ra = recording();
    const a = speaker('127.0.0.1', 64512, ra.md5);
    const b = speaker('127.0.0.2', 64513, recording().md5);
    await a.start();
    await b.start();
    const toB = { address: '127.0.0.2', asn: 64513, port: b.port };
    const toA = { address: '127.0.0.1', asn: 64512, port: a.port };
    a.setPeers([{ ...toB, password: 'one' }]);
    b.setPeers([{ ...toA, password: 'one' }]);
    await until('Established with the shared password', () => state(a) === 'Established' && state(b) === 'Established', 10_000);
    expect(a.snapshot()[0]!.tcpMd5).toBe(true);
    expect(JSON.stringify(a.snapshot())).not.toContain('one"');

    a.setPeers([{ ...toB, password: 'two' }]);
    await until('b hears Cease 6/6 (other configuration change)', () => b.snapshot()[0]?.info === 'received NOTIFICATION 6/6', 5_000);
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline) {
      expect(state(a)).not.toBe('Established');
      await new Promise((r) => setTimeout(r, 100));
    }
    b.setPeers([{ ...toA, password: 'two' }]);
    await until('Established again once both have the new password', () => state(a) === 'Established' && state(b) === 'Established', 10_000);

    // The listener's key for b: set, replaced (cleared and set) on the change, cleared when b goes.
    a.setPeers([]);
    // (the listener stays open throughout: no connecting socket of ours ever has its fd)
    const listener = ra.keys.filter(([fd, address]) => address === '127.0.0.2' && !ra.made.has(fd)).map(([, , set]) => set);
    expect(ra.made.size).toBeGreaterThan(0); // our connections were keyed sockets of the addon
    expect(listener).toEqual([true, false, true, false]);
  }, 30_000);

  it('a peer with no password cannot reach one that requires it', async () => {
    const a = speaker('127.0.0.1', 64512, nativeTcpMd5);
    const b = speaker('127.0.0.2', 64512, nativeTcpMd5);
    await a.start();
    await b.start();
    a.setPeers([{ address: '127.0.0.2', asn: 64512, port: b.port, password: 'secret' }]);
    b.setPeers([{ address: '127.0.0.1', asn: 64512, port: a.port }]);
    await new Promise((r) => setTimeout(r, 2_000));
    expect([state(a), state(b)]).not.toContain('Established');
  }, 10_000);
});
