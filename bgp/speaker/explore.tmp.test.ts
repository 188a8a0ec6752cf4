import { afterEach, describe, expect, it } from 'vitest';
import { type RawPeerOptions, unicast } from './raw-peer.js';
import { ASN, Loopback, routesOf, sleep, until } from './loopback.js';
import type { Speaker } from './speaker.js';
import { encodeMessage } from '../codec/index.js';

const loopback = new Loopback();
afterEach(() => loopback.cleanup());
const PEER = '127.0.0.2';
const EBGP = '127.0.0.3';
const st = (s: Speaker, a: string) => s.snapshot().find((p) => p.address === a)?.state;
const notes = (p: any) => p.received.filter((m: any) => m.type === 3).map((m: any) => `${m.code}/${m.subcode}`);

function frame(type: number, body: Buffer, length = 19 + body.length): Buffer {
  const h = Buffer.alloc(19, 0xff); h.writeUInt16BE(length, 16); h[18] = type; return Buffer.concat([h, body]);
}

describe('explore', () => {
  it('lengths', async () => {
    const results: string[] = [];
    for (const [what, bytes] of [
      ['keepalive 19', frame(4, Buffer.alloc(0))],
      ['keepalive 20', frame(4, Buffer.alloc(1))],
      ['update 22', frame(2, Buffer.alloc(3))],
      ['update 23 (eor)', frame(2, Buffer.alloc(4))],
      ['refresh 24', frame(5, Buffer.from([0, 1, 0, 1, 0]))],
      ['len 4097', frame(2, Buffer.alloc(4), 4097)],
      ['len 18', frame(4, Buffer.alloc(0), 18)],
      ['notif 20', frame(3, Buffer.alloc(1))],
      ['type 0', frame(0, Buffer.alloc(0))],
      ['update 4096 withdrawals', (() => { const n = 4096 - 23; const wl = Buffer.alloc(n); for (let i = 0; i + 2 <= n; i += 2) { wl[i] = 8; wl[i + 1] = 10; } if (n % 2) wl[n - 1] = 0; const b = Buffer.alloc(2 + n + 2); b.writeUInt16BE(n, 0); wl.copy(b, 2); return frame(2, b); })()],
    ] as [string, Buffer][]) {
      const s = await loopback.speaker({}, [{ address: PEER, asn: ASN }]);
      const p = await loopback.connect(s, { localAddress: PEER, asn: ASN });
      p.sendRaw(bytes);
      await sleep(300);
      results.push(`${what}: ${st(s, PEER)} ${notes(p)}`);
      await loopback.cleanup();
    }
    console.log(results.join('\n'));
  });

  it('loops, reflector, dup, 255 segments, ext-len', async () => {
    const s = await loopback.speaker({ clusterId: '1.1.1.1' }, [{ address: PEER, asn: ASN, routeReflectorClient: true }, { address: EBGP, asn: 65003 }, { address: '127.0.0.4', asn: ASN }]);
    const p = await loopback.connect(s, { localAddress: PEER, asn: ASN });
    const e = await loopback.connect(s, { localAddress: EBGP, asn: 65003 });
    const i = await loopback.connect(s, { localAddress: '127.0.0.4', asn: ASN });
    p.announce(['10.1.0.0/24'], PEER, { originatorId: '127.0.0.1' });
    p.announce(['10.2.0.0/24'], PEER, { clusterList: ['9.9.9.9', '1.1.1.1'] });
    e.send({ type: 2, withdrawn: [], attributes: { origin: 0, asPath: [{ type: 2, asns: [65003, ASN, 65009] }], nextHop: EBGP }, nlri: ['10.3.0.0/24'] });
    e.send({ type: 2, withdrawn: [], attributes: { origin: 0, asPath: [{ type: 1, asns: [65009, ASN] }], nextHop: EBGP }, nlri: ['10.4.0.0/24'] });
    // withdrawn and announced in the same UPDATE
    e.send({ type: 2, withdrawn: ['10.5.0.0/24'], attributes: { origin: 0, asPath: [{ type: 2, asns: [65003] }], nextHop: EBGP }, nlri: ['10.5.0.0/24', '10.5.0.0/24'] });
    // 255 segments
    const segs = Array.from({ length: 255 }, (_, k) => ({ type: 2, asns: [65100 + k] }));
    e.send({ type: 2, withdrawn: [], attributes: { origin: 0, asPath: [{ type: 2, asns: [65003] }, ...segs], nextHop: EBGP }, nlri: ['10.6.0.0/24'] });
    // thousands of withdrawals never announced
    const many = Array.from({ length: 800 }, (_, k) => `10.${100 + (k >> 8)}.${k & 255}.0/24`);
    e.send({ type: 2, withdrawn: many, attributes: {}, nlri: [] });
    // MP_UNREACH + MP_REACH same prefix
    e.send({ type: 2, withdrawn: [], attributes: { origin: 0, asPath: [{ type: 2, asns: [65003] }] }, nlri: [], mpReach: { family: unicast(2), nextHops: ['fd00::3', 'fe80::3'], nlri: ['fd00:7::/64'] }, mpUnreach: { family: unicast(2), withdrawn: ['fd00:7::/64'] } });
    // IPv6 next hop on IPv4 prefix (RFC 8950) via MP_REACH AFI 1 with 16-byte next hop: hand built
    await sleep(800);
    console.log(JSON.stringify(routesOf(s)), st(s, PEER), st(s, EBGP), notes(p), notes(e));
    console.log('to ibgp 127.0.0.4:', JSON.stringify(i.received.filter((m: any) => m.type === 2).map((m: any) => [m.nlri, m.mpReach?.nlri, m.attributes.asPath?.length])));
  });

  it('rfc8950', async () => {
    const s = await loopback.speaker({}, [{ address: PEER, asn: ASN }]);
    const p = await loopback.connect(s, { localAddress: PEER, asn: ASN });
    // MP_REACH AFI1 SAFI1 nh len 16 fd00::2, NLRI 10.8.0.0/16
    const mp = Buffer.from([0, 1, 1, 16, 0xfd, 0, ...Array(13).fill(0), 2, 0, 16, 10, 8]);
    const attrs = Buffer.concat([Buffer.from([0x40, 1, 1, 0]), Buffer.from([0x40, 2, 0]), Buffer.from([0x80, 14, mp.length]), mp]);
    const body = Buffer.concat([Buffer.from([0, 0, attrs.length >> 8, attrs.length & 255]), attrs]);
    p.sendRaw(frame(2, body));
    await sleep(400);
    console.log('rfc8950', JSON.stringify(routesOf(s)), st(s, PEER), notes(p));
  });
});
