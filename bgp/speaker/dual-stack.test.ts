// IPv6 unicast beside IPv4 (RFC 4760, RFC 2545): two of our speakers over an IPv4 session on loopback, and the next-hop rules, pure.
import { afterEach, describe, expect, it } from 'vitest';
import { AFI } from '../codec/index.js';
import { Speaker, type SpeakerConfig } from './speaker.js';
import { receivedNextHop, selfNextHops } from './next-hop-self.js';
import { routesOf, until } from './loopback.js';

const speakers: Speaker[] = [];
afterEach(async () => {
  for (const s of speakers.splice(0)) await s.stop({ graceful: false });
});

async function pair(a: Partial<SpeakerConfig>, b: Partial<SpeakerConfig>, families?: (1 | 2)[]): Promise<[Speaker, Speaker]> {
  const make = (address: string, extra: Partial<SpeakerConfig>): Speaker => {
    const s = new Speaker({
      asn: 64512, routerId: address, listenAddress: address, listenPort: 0, holdTime: 9, connectRetrySeconds: 0.2,
      gracefulRestart: { enabled: false, restartTime: 5, restarting: false }, importCIDRs: [], allowDefaultRoute: false, maxPrefixes: 1000, ...extra,
    });
    speakers.push(s);
    return s;
  };
  const x = make('127.0.0.1', a);
  const y = make('127.0.0.2', b);
  await x.start();
  await y.start();
  x.setPeers([{ address: '127.0.0.2', asn: 64512, port: y.port, ...(families ? { families } : {}) }]);
  y.setPeers([{ address: '127.0.0.1', asn: 64512, port: x.port }]);
  return [x, y];
}

describe('IPv6 NLRI over an IPv4 session (RFC 4760)', () => {
  it('each side learns the other\'s IPv6 prefix with its global IPv6 next hop, and status counts each family', async () => {
    const [a, b] = await pair({ nextHopSelf: { ipv6: 'fd00:2::1' } }, { nextHopSelf: { ipv6: 'fd00:2::2' } });
    a.setOriginated(['10.244.1.0/24', 'fd00:244:1::/64']);
    b.setOriginated(['10.244.2.0/24', 'fd00:244:2::/64', 'fd00:244:22::/64']);
    await until('both families both ways', () => routesOf(a)['fd00:244:2::/64'] === 'fd00:2::2' && routesOf(b)['fd00:244:1::/64'] === 'fd00:2::1' && routesOf(a)['10.244.2.0/24'] === '127.0.0.2');
    expect(routesOf(a)['fd00:244:22::/64']).toBe('fd00:2::2');
    expect(a.snapshot()[0]).toMatchObject({
      prefixesReceived: 3, prefixesAdvertised: 2,
      families: [
        { family: 'ipv4-unicast', prefixesReceived: 1, prefixesAdvertised: 1 },
        { family: 'ipv6-unicast', prefixesReceived: 2, prefixesAdvertised: 1 },
      ],
    });
    b.setOriginated(['10.244.2.0/24']);
    await until('IPv6 withdrawal (MP_UNREACH_NLRI)', () => routesOf(a)['fd00:244:2::/64'] === undefined);
    expect(routesOf(a)['10.244.2.0/24']).toBe('127.0.0.2');
  });

  it('with no IPv6 address of ours on the link nor configured, IPv6 routes are not advertised (never a wrong next hop); IPv4 ones are', async () => {
    const [a, b] = await pair({}, { nextHopSelf: { ipv6: 'fd00:2::2' } });
    a.setOriginated(['10.244.1.0/24', 'fd00:244:1::/64']);
    b.setOriginated(['fd00:244:2::/64']);
    await until('IPv4 learned', () => routesOf(b)['10.244.1.0/24'] === '127.0.0.1' && routesOf(a)['fd00:244:2::/64'] === 'fd00:2::2');
    expect(routesOf(b)['fd00:244:1::/64']).toBeUndefined();
    expect(a.snapshot()[0]!.families).toEqual([
      { family: 'ipv4-unicast', prefixesReceived: 0, prefixesAdvertised: 1 },
      { family: 'ipv6-unicast', prefixesReceived: 1, prefixesAdvertised: 0 },
    ]);
  });

  it('a peer offered IPv4 unicast alone negotiates IPv4 alone: no IPv6 either way (RFC 4760 §8, RFC 5492)', async () => {
    const [a, b] = await pair({ nextHopSelf: { ipv6: 'fd00:2::1' } }, { nextHopSelf: { ipv6: 'fd00:2::2' } }, [AFI.IPv4]);
    a.setOriginated(['10.244.1.0/24', 'fd00:244:1::/64']);
    b.setOriginated(['10.244.2.0/24', 'fd00:244:2::/64']);
    await until('IPv4 both ways', () => routesOf(a)['10.244.2.0/24'] === '127.0.0.2' && routesOf(b)['10.244.1.0/24'] === '127.0.0.1');
    expect(routesOf(a)['fd00:244:2::/64']).toBeUndefined();
    expect(routesOf(b)['fd00:244:1::/64']).toBeUndefined();
    expect(a.snapshot()[0]!.families.map((f) => f.family)).toEqual(['ipv4-unicast']);
  });
});

describe('our next hop per family (RFC 2545 §3, RFC 4760 §3)', () => {
  const link = ['192.0.2.1', 'fd00:2::1', 'fe80::1'];
  it('IPv6 over IPv4: the configured address, else the link\'s global one, never its link-local one alone', () => {
    expect(selfNextHops(AFI.IPv6, '192.0.2.1', link)).toEqual(['fd00:2::1']);
    expect(selfNextHops(AFI.IPv6, '192.0.2.1', link, { ipv6: '2001:db8::1' })).toEqual(['2001:db8::1']);
    expect(selfNextHops(AFI.IPv6, '192.0.2.1', ['192.0.2.1', 'fe80::1'])).toEqual([]);
  });
  it('over a global IPv6 session, its address alone; over a link-local one, global then link-local, or link-local alone', () => {
    expect(selfNextHops(AFI.IPv6, 'fd00:2::1', link)).toEqual(['fd00:2::1']);
    expect(selfNextHops(AFI.IPv6, 'fe80::1%eth0', link)).toEqual(['fd00:2::1', 'fe80::1']);
    expect(selfNextHops(AFI.IPv6, 'fe80::1', ['fe80::1'])).toEqual(['fe80::1']);
  });
  it('IPv4 over IPv6: the configured IPv4 address or the link\'s, else none', () => {
    expect(selfNextHops(AFI.IPv4, '192.0.2.1', link)).toEqual(['192.0.2.1']);
    expect(selfNextHops(AFI.IPv4, 'fd00:2::1', link)).toEqual(['192.0.2.1']);
    expect(selfNextHops(AFI.IPv4, 'fd00:2::1', ['fd00:2::1'])).toEqual([]);
  });
  it('a received link-local next hop alone counts only on a link-local session, zoned with its link', () => {
    expect(receivedNextHop('fd00:2::2', '192.0.2.1', 'eth0')).toBe('fd00:2::2');
    expect(receivedNextHop('fe80::2', 'fe80::1', 'eth0')).toBe('fe80::2%eth0');
    expect(receivedNextHop('fe80::2', 'fd00:2::1', 'eth0')).toBeUndefined();
    expect(receivedNextHop('fe80::2', '192.0.2.1', 'eth0')).toBeUndefined();
    expect(receivedNextHop('fe80::2', 'fe80::1', undefined)).toBeUndefined();
    expect(receivedNextHop('::ffff:c000:202', '192.0.2.1', 'eth0')).toBeUndefined(); // IPv4-mapped: no IPv6 next hop
    expect(receivedNextHop('::ffff:1:c000:202', '192.0.2.1', 'eth0')).toBe('::ffff:1:c000:202'); // not mapped, just zeros first
  });
});
