// Which next hop we send for our routes (and eBGP-advertised ones) on one session, per address family, pure.
import { AFI, type Afi } from '../codec/types.js';
import { isLinkLocal } from '../codec/prefix.js';

/** Addresses the operator gives as ours, per family: used where the session's own address is of the other family. */
export interface ConfiguredNextHops {
  ipv4?: string;
  ipv6?: string;
}

const bare = (address: string): string => address.replace(/%.*$/, '');
const isV6 = (address: string): boolean => address.includes(':');

/**
 * Our next hops for routes of `afi` on a session whose local end is `localAddress`, `onLink` being
 * the addresses of the interface holding it. Empty: we have no address of that family on the link,
 * and routes of that family are not advertised on this session.
 *
 * IPv6 (RFC 2545 §3, RFC 4760 §3): a global address, first; a link-local address only when the
 * session itself runs over link-local addresses, and then after the global one when the link has one,
 * alone only when it has none. Over an IPv4 session the global IPv6 address comes from the
 * configuration, else from the same link.
 */
export function selfNextHops(afi: Afi, localAddress: string, onLink: readonly string[], configured: ConfiguredNextHops = {}): string[] {
  const local = bare(localAddress);
  if (afi === AFI.IPv4) {
    if (local && !isV6(local)) return [local];
    const v4 = configured.ipv4 ?? onLink.find((a) => !isV6(a));
    return v4 ? [v4] : [];
  }
  if (local && isV6(local) && !isLinkLocal(local)) return [local];
  const global = configured.ipv6 ?? onLink.find((a) => isV6(a) && !isLinkLocal(a) && bare(a) !== '::1');
  if (local && isLinkLocal(local)) return global ? [global, local] : [local];
  return global ? [global] : [];
}

/** `::ffff:a.b.c.d` as formatAddress writes it (RFC 4291 §2.5.5.2). */
const IPV4_MAPPED = /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/i;

/**
 * RFC 2545 §3 from the receiving side: the next hop a route of the peer's is installed with, or
 * undefined when the announced ones cannot be used. The global one is used when there is one; a
 * link-local address alone only on a session over link-local addresses (it then names the peer on
 * that link and is kept zoned with it, `fe80::1%eth0`, the form the kernel route needs). An
 * IPv4-mapped address, what a speaker with no IPv6 address of its own sends over an IPv4 session, is
 * no IPv6 next hop: nothing can forward to it.
 */
export function receivedNextHop(announced: string, sessionLocal: string, device: string | undefined): string | undefined {
  if (IPV4_MAPPED.test(announced)) return undefined;
  if (!isLinkLocal(announced)) return announced;
  if (!isLinkLocal(bare(sessionLocal)) || !device) return undefined;
  return `${announced}%${device}`;
}
