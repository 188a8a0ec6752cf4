// NEXT_HOP resolvability (RFC 4271 §9.1.2.1, §6.3) and no transit (RFC 8212), against our Speaker with raw peers.
import { afterEach, describe, expect, it } from 'vitest';
import { type NextHopState, Speaker, type SpeakerConfig } from './speaker.js';
import type { RawPeer } from './raw-peer.js';
import { ASN, Loopback, US, routesOf, sleep, until } from './loopback.js';

const loopback = new Loopback();
afterEach(() => loopback.cleanup());

const IBGP = '127.0.0.2';
const EBGP = '127.0.0.3';
const EBGP2 = '127.0.0.4';
const PREFIX = '10.5.0.0/24';
const routes = routesOf;
const speakerWith = (extra: Partial<SpeakerConfig>, peerList: { address: string; asn: number }[]) =>
  loopback.speaker({ gracefulRestart: { enabled: false, restartTime: 5, restarting: false }, ...extra }, peerList);
const connect = (s: Speaker, address: string, asn: number) => loopback.connect(s, { localAddress: address, asn });

describe('NEXT_HOP resolvability (RFC 4271 §9.1.2.1)', () => {
  it('an unreachable iBGP next hop does not beat a valid eBGP path; when it becomes reachable it wins', async () => {
    const table = new Map<string, NextHopState>([['198.18.9.9', 'unreachable']]);
    const s = await speakerWith({ nextHops: { resolve: (nh) => table.get(nh) ?? 'reachable' } }, [{ address: IBGP, asn: ASN }, { address: EBGP, asn: 65003 }]);
    const ibgp = await connect(s, IBGP, ASN);
    const ebgp = await connect(s, EBGP, 65003);
    ibgp.announce([PREFIX], '198.18.9.9', { localPref: 500 });
    ebgp.announce([PREFIX], EBGP);
    await until('the eBGP path selected', () => routes(s)[PREFIX] === EBGP);
    await sleep(200);
    expect(routes(s)[PREFIX]).toBe(EBGP);
    table.set('198.18.9.9', 'reachable');
    s.nextHopsChanged();
    expect(routes(s)[PREFIX]).toBe('198.18.9.9');
    table.set('198.18.9.9', 'unreachable');
    s.nextHopsChanged();
    expect(routes(s)[PREFIX]).toBe(EBGP);
  });

  it('a NEXT_HOP that is our own address is ignored (RFC 4271 §6.3)', async () => {
    const s = await speakerWith({ nextHops: { resolve: (nh) => (nh === '192.0.2.77' ? 'local' : 'reachable') } }, [{ address: IBGP, asn: ASN }]);
    const p = await connect(s, IBGP, ASN);
    p.announce(['10.6.0.0/24'], US); // the session's own local address
    p.announce(['10.7.0.0/24'], '192.0.2.77'); // another address of ours
    p.announce(['10.8.0.0/24'], IBGP);
    await until('the valid route', () => routes(s)['10.8.0.0/24'] === IBGP);
    await sleep(100);
    expect(routes(s)['10.6.0.0/24']).toBeUndefined();
    expect(routes(s)['10.7.0.0/24']).toBeUndefined();
  });
});

describe('no transit (RFC 8212)', () => {
  it('a route learned from one eBGP peer is not advertised to another; our own and iBGP-learned ones are', async () => {
    const s = await speakerWith({}, [{ address: EBGP, asn: 65003 }, { address: EBGP2, asn: 65004 }, { address: IBGP, asn: ASN }]);
    s.setOriginated(['10.244.1.0/24']);
    const a = await connect(s, EBGP, 65003);
    const b = await connect(s, EBGP2, 65004);
    const i = await connect(s, IBGP, ASN);
    a.announce(['10.50.0.0/24'], EBGP);
    i.announce(['10.60.0.0/24'], IBGP);
    const nlriOf = (p: RawPeer) => p.received.flatMap((m) => (m.type === 2 ? m.nlri : []));
    await until('the iBGP route at the other eBGP peer', () => nlriOf(b).includes('10.60.0.0/24') && nlriOf(b).includes('10.244.1.0/24'));
    await until('the eBGP route at the iBGP peer', () => nlriOf(i).includes('10.50.0.0/24'));
    expect(nlriOf(b)).not.toContain('10.50.0.0/24');
  });
});
