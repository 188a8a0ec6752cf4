// NLRI prefixes on the wire (RFC 4271 §4.3, RFC 4760): length in bits, then the significant octets.
import { AFI, type Afi, BgpError, type Prefix } from './types.js';

export function addressBytes(afi: Afi): number {
  return afi === AFI.IPv4 ? 4 : 16;
}

export function formatAddress(afi: Afi, bytes: Uint8Array): string {
  if (afi === AFI.IPv4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/**
 * Whether an address can be a next hop at all (RFC 4271 §6.3): not unspecified, not multicast, and
 * for IPv4 not class E either. Whether it is reachable is the RIB's business.
 */
export function isUnicastAddress(afi: Afi, bytes: Uint8Array): boolean {
  if (afi === AFI.IPv4) return bytes[0]! < 224 && (bytes[0]! | bytes[1]! | bytes[2]! | bytes[3]!) !== 0;
  return bytes[0] !== 0xff && bytes.subarray(0, 16).some((b) => b !== 0);
}

/** fe80::/10 in its text form (as formatAddress writes it): a next hop meaningful only on its link (RFC 2545 §3). */
export function isLinkLocal(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address);
}

/** Parses a textual address; throws a plain Error for bad input (callers validate their own config). */
export function parseAddress(text: string): { afi: Afi; bytes: Uint8Array } {
  if (!text.includes(':')) {
    const parts = text.split('.');
    if (parts.length !== 4) throw new Error(`bad IPv4 address ${text}`);
    const bytes = new Uint8Array(parts.map((p) => {
      const n = Number(p);
      if (!/^\d{1,3}$/.test(p) || n > 255) throw new Error(`bad IPv4 address ${text}`);
      return n;
    }));
    return { afi: AFI.IPv4, bytes };
  }
  const [head, tail, extra] = text.split('::');
  if (extra !== undefined) throw new Error(`bad IPv6 address ${text}`);
  const parse = (s: string | undefined): number[] => (s ? s.split(':').map((g) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`bad IPv6 address ${text}`);
    return parseInt(g, 16);
  }) : []);
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const fill = 8 - h.length - t.length;
  if ((tail === undefined && fill !== 0) || fill < 0) throw new Error(`bad IPv6 address ${text}`);
  const groups = [...h, ...new Array(fill).fill(0), ...t];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return { afi: AFI.IPv6, bytes };
}

export function parsePrefix(prefix: Prefix): { afi: Afi; bytes: Uint8Array; length: number } {
  const slash = prefix.indexOf('/');
  const { afi, bytes } = parseAddress(prefix.slice(0, slash));
  const length = Number(prefix.slice(slash + 1));
  if (slash < 0 || !Number.isInteger(length) || length < 0 || length > addressBytes(afi) * 8) throw new Error(`bad prefix ${prefix}`);
  return { afi, bytes, length };
}

/**
 * An IPv4 prefix's address as an unsigned 32-bit number, and its length: for per-prefix checks on
 * a full table, so no substrings, arrays or BigInts. Anything unusual goes through parsePrefix.
 */
export function parseIpv4Prefix(prefix: Prefix): { address: number; length: number } {
  let address = 0;
  let octets = 0;
  let n = -1; // the number being read; -1 before its first digit
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix.charCodeAt(i);
    if (c >= 48 && c <= 57 && n < 256) n = n < 0 ? c - 48 : n * 10 + c - 48;
    else if ((c === 46 || c === 47) && n >= 0 && n < 256 && octets < 4) {
      address = address * 256 + n;
      octets++;
      n = -1;
      if ((c === 47) !== (octets === 4)) break; // the slash comes after the fourth octet, and only there
    } else break;
    if (i === prefix.length - 1 && octets === 4 && n >= 0 && n <= 32) return { address, length: n };
  }
  const { afi, bytes, length } = parsePrefix(prefix); // throws on bad text
  if (afi !== AFI.IPv4) throw new Error(`not an IPv4 prefix: ${prefix}`);
  return { address: ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0, length };
}

/** Host bits are zeroed: the canonical form every table keys on. */
export function formatPrefix(afi: Afi, bytes: Uint8Array, length: number): Prefix {
  const full = new Uint8Array(addressBytes(afi));
  full.set(bytes.subarray(0, Math.min(bytes.length, full.length)));
  const whole = length >> 3;
  if (whole < full.length) {
    full[whole] = full[whole]! & ((0xff << (8 - (length & 7))) & 0xff);
    full.fill(0, whole + 1);
  }
  return `${formatAddress(afi, full)}/${length}`;
}

export function encodePrefixes(afi: Afi, prefixes: Prefix[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of prefixes) {
    const { bytes, length } = parsePrefix(p);
    const octets = (length + 7) >> 3;
    const b = Buffer.alloc(1 + octets);
    b[0] = length;
    b.set(bytes.subarray(0, octets), 1);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/** Decodes a run of prefixes; a length past the family or the field is an error with the given subcode. */
export function decodePrefixes(afi: Afi, data: Uint8Array, subcode: number, code = 3): Prefix[] {
  const max = addressBytes(afi) * 8;
  // Checked and counted first, so the list is made at its size: grown by push, a full table's
  // UPDATEs (~1,000 prefixes each) made three times the list's size in arrays thrown away.
  let count = 0;
  for (let i = 0; i < data.length; count++) {
    const length = data[i]!;
    const octets = (length + 7) >> 3;
    if (length > max || i + 1 + octets > data.length) throw new BgpError(code, subcode, `malformed prefix at offset ${i}`);
    i += 1 + octets;
  }
  const out = new Array<Prefix>(count);
  for (let i = 0, n = 0; n < count; n++) {
    const length = data[i]!;
    const octets = (length + 7) >> 3;
    out[n] = afi === AFI.IPv4 ? ipv4PrefixAt(data, i + 1, length) : formatPrefix(afi, data.subarray(i + 1, i + 1 + octets), length);
    i += 1 + octets;
  }
  return out;
}

/**
 * The IPv4 prefix whose significant octets start at `at`, as canonical text. The hot path of a
 * full table: reads the octets in place, with no subarray, address copy or intermediate strings.
 */
function ipv4PrefixAt(data: Uint8Array, at: number, length: number): Prefix {
  const octets = (length + 7) >> 3;
  let address = 0;
  for (let k = 0; k < 4; k++) address = address * 256 + (k < octets ? data[at + k]! : 0);
  const network = length === 0 ? 0 : (address & (-1 << (32 - length))) >>> 0;
  return formatIpv4Prefix(network, length);
}

/** Room for the longest IPv4 prefix text, `255.255.255.255/32`. */
const ipv4Text = Buffer.alloc(18);

function writeDecimal(n: number, at: number): number {
  if (n >= 100) ipv4Text[at++] = 48 + Math.floor(n / 100);
  if (n >= 10) ipv4Text[at++] = 48 + (Math.floor(n / 10) % 10);
  ipv4Text[at++] = 48 + (n % 10);
  return at;
}

/**
 * `a.b.c.d/len` for an address given as an unsigned 32-bit number. Written as bytes and read back
 * as one latin1 string: that makes a single flat string, where concatenating the parts would leave
 * a tree of string pieces per prefix (more memory, and flattened again on every lookup).
 */
export function formatIpv4Prefix(address: number, length: number): Prefix {
  let at = writeDecimal(address >>> 24, 0);
  ipv4Text[at++] = 46; // '.'
  at = writeDecimal((address >>> 16) & 255, at);
  ipv4Text[at++] = 46;
  at = writeDecimal((address >>> 8) & 255, at);
  ipv4Text[at++] = 46;
  at = writeDecimal(address & 255, at);
  ipv4Text[at++] = 47; // '/'
  at = writeDecimal(length, at);
  return ipv4Text.toString('latin1', 0, at);
}
