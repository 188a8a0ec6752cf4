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
  const out: Prefix[] = [];
  const max = addressBytes(afi) * 8;
  for (let i = 0; i < data.length; ) {
    const length = data[i]!;
    const octets = (length + 7) >> 3;
    if (length > max || i + 1 + octets > data.length) throw new BgpError(code, subcode, `malformed prefix at offset ${i}`);
    out.push(formatPrefix(afi, data.subarray(i + 1, i + 1 + octets), length));
    i += 1 + octets;
  }
  return out;
}
