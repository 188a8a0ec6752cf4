import { describe, expect, it } from 'vitest';
import { networkState, routeLookup } from './readiness.js';
import type { PeerStatus } from './status.js';

const peer = (address: string, state: PeerStatus['state']): PeerStatus => ({ address, asn: 64512, type: 'node-mesh', state, uptimeSeconds: 0, prefixesReceived: 0, prefixesAdvertised: 0 });
const blackhole = (prefix: string) => ({ prefix, type: 'blackhole' as const, nextHops: [] });

describe('networkState (readiness and NetworkUnavailable, issue 13 items 6 and 7)', () => {
  it('a blocker wins and names itself', () => {
    expect(networkState([peer('192.0.2.2', 'Established')], [], routeLookup([]), { reason: 'NoPodCIDR', message: 'no pod CIDR' })).toEqual({ ready: false, reason: 'NoPodCIDR', message: 'no pod CIDR' });
  });
  it('needs one Established session, or none configured', () => {
    expect(networkState([peer('192.0.2.2', 'Active'), peer('192.0.2.3', 'Idle')], [], routeLookup([])).reason).toBe('NoBGPSessionEstablished');
    expect(networkState([peer('192.0.2.2', 'Active'), peer('192.0.2.3', 'Established')], [], routeLookup([])).ready).toBe(true);
    expect(networkState([], [], routeLookup([])).ready).toBe(true);
  });
  it('needs the blackholes of our pod CIDRs in the kernel (compared in canonical form)', () => {
    const peers = [peer('192.0.2.2', 'Established')];
    expect(networkState(peers, ['10.244.1.0/24'], routeLookup([])).reason).toBe('RoutesNotProgrammed');
    expect(networkState(peers, ['10.244.1.0/24', 'fd00:244:1::/64'], routeLookup([blackhole('10.244.1.0/24'), blackhole('fd00:244:1:0::/64')]))).toMatchObject({ ready: true, reason: 'LightlyIsUp' });
  });
});
