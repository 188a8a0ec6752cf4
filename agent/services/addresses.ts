// Address arithmetic of Service ranges and LoadBalancer pools, pure: membership, canonical CIDRs, and
// walking a CIDR's addresses in order (BigInt, so IPv6 pools work the same as IPv4 ones).
import { Address4, Address6 } from 'ip-address';

type Parsed = Address4 | Address6;
const parse = (s: string): Parsed => (s.includes(':') ? new Address6(s) : new Address4(s));
const fromBig = (v6: boolean, n: bigint): string => (v6 ? Address6.fromBigInt(n).correctForm() : Address4.fromBigInt(n).correctForm());

/** A CIDR with its host bits cleared, as the speaker and the kernel write it: 10.96.0.1/12 → 10.96.0.0/12. */
export function canonicalCidr(cidr: string): string {
  const a = parse(cidr);
  return `${fromBig(a instanceof Address6, a.startAddress().bigInt())}/${a.subnetMask}`;
}

/** Whether `address` (no length) lies in `cidr`; addresses of the other family never do. */
export function inCidr(address: string, cidr: string): boolean {
  if (address.includes(':') !== cidr.includes(':')) return false;
  return parse(address).isInSubnet(parse(cidr) as never);
}

export const inAnyCidr = (address: string, cidrs: readonly string[]): boolean => cidrs.some((c) => inCidr(address, c));

/** A CIDR's first and last address as numbers, and its family. */
export function cidrRange(cidr: string): { v6: boolean; first: bigint; last: bigint } {
  const a = parse(cidr);
  return { v6: a instanceof Address6, first: a.startAddress().bigInt(), last: a.endAddress().bigInt() };
}

export const addressAt = (v6: boolean, n: bigint): string => fromBig(v6, n);
export const addressValue = (address: string): bigint => parse(address).bigInt();
/** The canonical text of an address (IPv6 compressed, lower case), so equal addresses compare equal. */
export const canonicalAddress = (address: string): string => fromBig(address.includes(':'), addressValue(address));
