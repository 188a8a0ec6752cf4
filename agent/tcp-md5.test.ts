// The pure parts of TCP MD5 diagnosis: the kernel's counters, and what they tell about a peer that is down.
import { describe, expect, it } from 'vitest';
import { md5DropsSince, md5Hint, parseMd5Drops } from './tcp-md5.js';

const NETSTAT = `TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPSackShifted
TcpExt: 0 2 3 5 7
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
`;

describe('TCP MD5 diagnosis (RFC 2385)', () => {
  it('reads the three MD5 drop counters of TcpExt', () => {
    expect(parseMd5Drops(NETSTAT)).toEqual({ notFound: 2, unexpected: 3, failure: 5 });
    expect(parseMd5Drops('IpExt: a\nIpExt: 1\n')).toBeUndefined();
  });

  it('counts from a base', () => {
    expect(md5DropsSince({ notFound: 2, unexpected: 3, failure: 5 }, { notFound: 1, unexpected: 3, failure: 0 })).toEqual({ notFound: 1, unexpected: 0, failure: 5 });
    expect(md5DropsSince(undefined, undefined)).toEqual({ notFound: 0, unexpected: 0, failure: 0 });
  });

  it('names the likely cause for a peer that is not Established, and nothing once it is', () => {
    const none = { notFound: 0, unexpected: 0, failure: 0 };
    expect(md5Hint({ state: 'Established', tcpMd5: true }, { ...none, failure: 9 })).toBeUndefined();
    expect(md5Hint({ state: 'Active', tcpMd5: true }, { ...none, failure: 9 })).toMatch(/password differs/);
    expect(md5Hint({ state: 'Active', tcpMd5: true }, { ...none, notFound: 1 })).toMatch(/set the same password on the peer/);
    expect(md5Hint({ state: 'Connect', tcpMd5: true }, none)).toMatch(/check the password on both sides/);
    expect(md5Hint({ state: 'Active' }, { ...none, unexpected: 4 })).toMatch(/set the peer's password/);
    expect(md5Hint({ state: 'Active' }, none)).toBeUndefined();
  });
});
