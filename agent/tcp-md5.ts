// TCP MD5 (RFC 2385) in the agent: the native addon as the speaker's TcpMd5, and why a session that
// should be signed (or is signed by the peer) does not come up: the kernel drops such segments silently.
import { readFileSync } from 'node:fs';
import type { TcpMd5 } from '../bgp/session/session.js';
import { nativeAddon } from '../native/native.js';
import type { PeerState } from './status.js';

/** The addon, loaded on first use: an agent whose peers have no password never needs it. */
export const nativeTcpMd5: TcpMd5 = {
  tcpSocket: (family) => nativeAddon().tcpSocket(family),
  setTcpMd5Key: (fd, address, key) => nativeAddon().setTcpMd5Key(fd, address, key),
};

/** The kernel's counts of TCP segments dropped for their MD5 option (TcpExt in /proc/net/netstat, per network namespace). */
export interface Md5Drops {
  /** We have a key for the sender, the segment has no signature. */
  notFound: number;
  /** The segment is signed, we have no key for the sender. */
  unexpected: number;
  /** The signature does not match our key: another password. */
  failure: number;
}

/** Pure: the MD5 counters from /proc/net/netstat's text (a TcpExt header line, then its values). */
export function parseMd5Drops(netstat: string): Md5Drops | undefined {
  const lines = netstat.split('\n').filter((l) => l.startsWith('TcpExt:'));
  if (lines.length < 2) return undefined;
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  const get = (name: string): number => Number(values[names.indexOf(name)] ?? 0) || 0;
  return { notFound: get('TCPMD5NotFound'), unexpected: get('TCPMD5Unexpected'), failure: get('TCPMD5Failure') };
}

export function readMd5Drops(path = '/proc/net/netstat'): Md5Drops | undefined {
  try {
    return parseMd5Drops(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Pure: counts since `base`. */
export function md5DropsSince(now: Md5Drops | undefined, base: Md5Drops | undefined): Md5Drops {
  if (!now) return { notFound: 0, unexpected: 0, failure: 0 };
  const b = base ?? { notFound: 0, unexpected: 0, failure: 0 };
  return { notFound: now.notFound - b.notFound, unexpected: now.unexpected - b.unexpected, failure: now.failure - b.failure };
}

/**
 * Pure: why a peer is not Established, as far as TCP MD5 tells. A mismatch shows no BGP error at all
 * (no connection ever forms), so this is the only word the operator gets. The kernel's counts are
 * for the whole network namespace: they point at a cause, they do not name the peer.
 */
export function md5Hint(peer: { state: PeerState; tcpMd5?: boolean }, drops: Md5Drops): string | undefined {
  if (peer.state === 'Established') return undefined;
  if (peer.tcpMd5) {
    if (drops.failure > 0) return `TCP MD5: the kernel dropped ${drops.failure} segments whose signature did not match: the peer's password differs from the one configured here`;
    if (drops.notFound > 0) return `TCP MD5: the kernel dropped ${drops.notFound} unsigned segments from peers that have a password here: set the same password on the peer`;
    return 'TCP MD5 (RFC 2385) is on for this peer: if its password differs or it has none, each side drops the other\'s segments without a reply; check the password on both sides';
  }
  if (drops.unexpected > 0) return `TCP MD5: the kernel dropped ${drops.unexpected} segments signed with a password (RFC 2385) from peers with none configured here: set the peer's password`;
  return undefined;
}
