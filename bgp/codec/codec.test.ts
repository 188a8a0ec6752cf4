import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePrefixes, parseIpv4Prefix } from './prefix.js';
import { AFI, BgpError, MessageReader, type BgpMessage, type CodecContext, decodeMessage, encodeMessage, endOfRib, endOfRibFamily, keepalive, capabilitiesOf, formatPrefix, parsePrefix } from './index.js';

const four: CodecContext = { fourOctetAs: true };
const two: CodecContext = { fourOctetAs: false };
const roundTrip = (m: BgpMessage, ctx = four) => decodeMessage(encodeMessage(m, ctx), ctx);

function errorOf(fn: () => unknown): BgpError {
  try {
    fn();
  } catch (err) {
    if (err instanceof BgpError) return err;
    throw err;
  }
  throw new Error('expected a BgpError');
}

describe('codec', () => {
  it('KEEPALIVE is 19 bytes of marker, length and type 4', () => {
    expect(keepalive().toString('hex')).toBe('ff'.repeat(16) + '001304');
  });

  it('OPEN round-trips with capabilities; a 4-byte ASN goes as AS_TRANS plus the capability', () => {
    const open: BgpMessage = {
      type: 1, version: 4, asn: 4_200_000_001, holdTime: 90, routerId: '192.0.2.1',
      capabilities: [
        { code: 1, family: { afi: 1, safi: 1 } }, { code: 1, family: { afi: 2, safi: 1 } }, { code: 2 },
        { code: 64, restarting: true, notification: false, restartTime: 120, families: [{ afi: 1, safi: 1, forwardingPreserved: true }] },
        { code: 65, asn: 4_200_000_001 },
      ],
    };
    const bytes = encodeMessage(open, four);
    expect(bytes.readUInt16BE(19 + 1)).toBe(23456);
    const back = roundTrip(open);
    expect(back).toEqual(open);
    expect(capabilitiesOf(back as any)).toMatchObject({ fourOctetAs: 4_200_000_001, routeRefresh: true, families: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }] });
  });

  it('OPEN errors carry their NOTIFICATION codes', () => {
    const open = encodeMessage({ type: 1, version: 4, asn: 65000, holdTime: 90, routerId: '192.0.2.1', capabilities: [] }, four);
    const v3 = Buffer.from(open); v3[19] = 3;
    expect(errorOf(() => decodeMessage(v3, four))).toMatchObject({ code: 2, subcode: 1 });
    const hold2 = Buffer.from(open); hold2.writeUInt16BE(2, 22);
    expect(errorOf(() => decodeMessage(hold2, four))).toMatchObject({ code: 2, subcode: 6 });
    const id0 = Buffer.from(open); id0.fill(0, 24, 28);
    expect(errorOf(() => decodeMessage(id0, four))).toMatchObject({ code: 2, subcode: 3 });
  });

  it('UPDATE round-trips IPv4 NLRI and IPv6 via MP_REACH, withdrawals both ways, communities and unknown transitive', () => {
    const update: BgpMessage = {
      type: 2, withdrawn: ['10.9.0.0/16'], nlri: ['10.244.2.0/24', '10.244.3.128/25'],
      attributes: { origin: 0, asPath: [{ type: 2, asns: [65000, 4_200_000_001] }], nextHop: '192.0.2.2', med: 5, localPref: 200,
        communities: [0xfde80001], originatorId: '192.0.2.9', clusterList: ['192.0.2.254'],
        unknown: [{ flags: 0xe0, type: 99, value: new Uint8Array([1, 2, 3]) }] },
      mpReach: { family: { afi: 2, safi: 1 }, nextHops: ['fd00::2', 'fe80::1'], nlri: ['fd00:244:2::/64', '2001:db8::/32'] },
    };
    expect(roundTrip(update)).toEqual(update);
    const unreach: BgpMessage = { type: 2, withdrawn: [], nlri: [], attributes: {}, mpUnreach: { family: { afi: 2, safi: 1 }, withdrawn: ['fd00:244:2::/64'] } };
    expect(roundTrip(unreach)).toEqual(unreach);
  });

  it('an MP_REACH_NLRI next hop that is unspecified or multicast decodes as none: its routes are ignored (RFC 4271 §6.3)', () => {
    const reach = (afi: 1 | 2, nextHops: string[], nlri: string[]) => roundTrip({ type: 2, withdrawn: [], nlri: [], attributes: { origin: 0, asPath: [] }, mpReach: { family: { afi, safi: 1 }, nextHops, nlri } }) as any;
    expect(reach(2, ['::'], ['fd00:1::/64']).mpReach).toEqual({ family: { afi: 2, safi: 1 }, nextHops: [], nlri: ['fd00:1::/64'] });
    expect(reach(2, ['ff02::1', 'fe80::1'], ['fd00:1::/64']).mpReach.nextHops).toEqual([]);
    expect(reach(1, ['0.0.0.0'], ['10.1.0.0/16']).mpReach.nextHops).toEqual([]);
    expect(reach(1, ['240.0.0.1'], ['10.1.0.0/16']).mpReach.nextHops).toEqual([]);
    expect(reach(2, ['fd00::2', 'fe80::1'], ['fd00:1::/64']).mpReach.nextHops).toEqual(['fd00::2', 'fe80::1']);
    expect(reach(1, ['192.0.2.2'], ['10.1.0.0/16']).mpReach.nextHops).toEqual(['192.0.2.2']);
  });

  it('speaks 2-octet AS to old peers with AS4_PATH, and merges it back', () => {
    const update: BgpMessage = { type: 2, withdrawn: [], nlri: ['10.1.0.0/16'], attributes: { origin: 0, nextHop: '192.0.2.2', asPath: [{ type: 2, asns: [65001, 4_200_000_001, 65002] }] } };
    const back = roundTrip(update, two) as any;
    expect(back.attributes.asPath).toEqual([{ type: 2, asns: [65001, 4_200_000_001, 65002] }]);
  });

  it('normalises host bits of received prefixes', () => {
    const bytes = encodeMessage({ type: 2, withdrawn: [], nlri: ['10.1.2.0/23'], attributes: { origin: 0, asPath: [], nextHop: '192.0.2.2' } }, four);
    bytes[bytes.length - 1] = 3; // 10.1.3.0/23: the last bit is a host bit
    expect((decodeMessage(bytes, four) as any).nlri).toEqual(['10.1.2.0/23']);
  });

  it('End-of-RIB for IPv4 and IPv6', () => {
    expect(endOfRibFamily(decodeMessage(endOfRib({ afi: 1, safi: 1 }, four), four) as any)).toEqual({ afi: 1, safi: 1 });
    expect(endOfRibFamily(decodeMessage(endOfRib({ afi: 2, safi: 1 }, four), four) as any)).toEqual({ afi: 2, safi: 1 });
  });

  describe('RFC 7606', () => {
    const base = (): Buffer => encodeMessage({ type: 2, withdrawn: [], nlri: ['10.1.0.0/16'], attributes: { origin: 0, asPath: [{ type: 2, asns: [65000] }], nextHop: '192.0.2.2' } }, four);
    // attributes start at 19 + 2 + 2 = 23: ORIGIN (40 01 01 00) at 23, AS_PATH (40 02 06 ...) at 27
    it('a bad ORIGIN value is treat-as-withdraw, keeping the prefixes', () => {
      const b = base(); b[26] = 9;
      expect(decodeMessage(b, four)).toMatchObject({ treatAsWithdraw: true, nlri: ['10.1.0.0/16'] });
    });
    it('wrong attribute flags are treat-as-withdraw', () => {
      const b = base(); b[23] = 0xc0;
      expect(decodeMessage(b, four)).toMatchObject({ treatAsWithdraw: true });
    });
    it('a missing NEXT_HOP with NLRI is treat-as-withdraw', () => {
      const m = encodeMessage({ type: 2, withdrawn: [], nlri: ['10.1.0.0/16'], attributes: { origin: 0, asPath: [] } }, four);
      expect(decodeMessage(m, four)).toMatchObject({ treatAsWithdraw: true });
    });
    it('an attribute overrunning the list is treat-as-withdraw (RFC 7606 §4), the NLRI found by the total length', () => {
      const b = base(); b[29] = 200;
      expect(decodeMessage(b, four)).toMatchObject({ treatAsWithdraw: true, nlri: ['10.1.0.0/16'] });
    });
    it('a malformed AGGREGATOR is discarded', () => {
      const m = encodeMessage({ type: 2, withdrawn: [], nlri: ['10.1.0.0/16'], attributes: { origin: 0, asPath: [], nextHop: '192.0.2.2', aggregator: { asn: 1, address: '192.0.2.1' } } }, four);
      const at = m.indexOf(Buffer.from([0xc0, 7, 8]));
      m[at + 2] = 7; // length 7: now malformed, and the next byte is read as the following attribute's flags… so rebuild instead
      const fixed = Buffer.concat([m.subarray(0, at + 2), Buffer.from([6]), m.subarray(at + 3, at + 9), m.subarray(at + 11)]);
      fixed.writeUInt16BE(fixed.length, 16);
      fixed.writeUInt16BE(fixed.readUInt16BE(21) - 2, 21);
      const d = decodeMessage(fixed, four) as any;
      expect(d.treatAsWithdraw).toBeUndefined();
      expect(d.attributes.aggregator).toBeUndefined();
    });
    it('an unknown well-known attribute is 3/2', () => {
      const b = base(); b[23 + 1] = 77; // ORIGIN's type → 77 with well-known flags
      expect(errorOf(() => decodeMessage(b, four))).toMatchObject({ code: 3, subcode: 2 });
    });
  });

  it('header errors: marker, length, type', () => {
    const k = keepalive();
    const m = Buffer.from(k); m[0] = 0;
    expect(errorOf(() => decodeMessage(m, four))).toMatchObject({ code: 1, subcode: 1 });
    const l = Buffer.concat([k, Buffer.alloc(1)]); l.writeUInt16BE(20, 16);
    expect(errorOf(() => decodeMessage(l, four))).toMatchObject({ code: 1, subcode: 2 });
    const t = Buffer.from(k); t[18] = 9;
    expect(errorOf(() => decodeMessage(t, four))).toMatchObject({ code: 1, subcode: 3 });
  });

  it('the reader splits a stream at any chunking', () => {
    const stream = Buffer.concat([keepalive(), encodeMessage({ type: 3, code: 6, subcode: 2, data: new Uint8Array() }, four), keepalive()]);
    const reader = new MessageReader();
    const frames: Buffer[] = [];
    for (const byte of stream) {
      reader.push(Buffer.from([byte]));
      for (let f = reader.nextFrame(); f; f = reader.nextFrame()) frames.push(f);
    }
    expect(frames.map((f) => f[18])).toEqual([4, 3, 4]);
  });

  it('the reader splits a stream at any chunking: frames of every size, chunks of every size', () => {
    const message = fc.integer({ min: 0, max: 4096 - 21 }).map((n) => encodeMessage({ type: 3, code: 6, subcode: 0, data: new Uint8Array(n).fill(n & 0xff) }, four));
    fc.assert(fc.property(fc.array(message, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 20 }), (messages, cuts) => {
      const stream = Buffer.concat(messages);
      const reader = new MessageReader();
      const frames: Buffer[] = [];
      for (let at = 0, k = 0; at < stream.length; k++) {
        const size = cuts[k % cuts.length]!;
        reader.push(stream.subarray(at, at + size));
        at += size;
        for (let f = reader.nextFrame(); f; f = reader.nextFrame()) frames.push(Buffer.from(f));
      }
      expect(Buffer.concat(frames)).toEqual(stream);
      expect(frames.length).toBe(messages.length);
      expect(reader.bufferedBytes).toBe(0);
    }), { numRuns: 100 });
  });

  it('the reader hands out a frame without copying what is buffered behind it (a peer\'s backlog of megabytes costs nothing per frame)', () => {
    const first = Buffer.alloc(38); // not from the pool: its own ArrayBuffer
    keepalive().copy(first, 0);
    keepalive().copy(first, 19);
    const reader = new MessageReader();
    reader.push(first);
    for (let i = 0; i < 64; i++) reader.push(Buffer.alloc(65_536 - 65_536 % 19).fill(keepalive()));
    // Compared by identity: a diff of two 4 MiB ArrayBuffers would take minutes to print.
    expect(reader.nextFrame()!.buffer === first.buffer).toBe(true);
    expect(reader.nextFrame()!.buffer === first.buffer).toBe(true);
    expect(reader.bufferedBytes).toBe(64 * (65_536 - 65_536 % 19));
  });
});

describe('IPv4 prefix fast paths', () => {
  it('decodes every length to the same canonical text as formatPrefix, host bits cleared', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 32 }), fc.uint8Array({ minLength: 4, maxLength: 4 }), (length, bytes) => {
      const octets = (length + 7) >> 3;
      const wire = Uint8Array.from([length, ...bytes.subarray(0, octets)]);
      expect(decodePrefixes(AFI.IPv4, wire, 10)).toEqual([formatPrefix(AFI.IPv4, bytes, length)]);
    }));
  });

  it('parseIpv4Prefix reads what parsePrefix reads, and refuses what it refuses', () => {
    for (const text of ['0.0.0.0/0', '10.244.1.0/24', '255.255.255.255/32', '192.0.2.1/32', '01.2.3.4/8']) {
      const { bytes, length } = parsePrefix(text);
      expect(parseIpv4Prefix(text)).toEqual({ address: ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0, length });
    }
    for (const text of ['1.2.3.4/33', '1.2.3/8', '1.2.3.4.5/8', '256.0.0.0/8', 'fd00::/8', '1.2.3.4', 'x']) expect(() => parseIpv4Prefix(text)).toThrow();
  });
});

describe('decodePrefixes (RFC 4271 §4.3, RFC 4760 §5)', () => {
  /** The one-pass decoder it replaced (fc68c3a), through formatPrefix for both families: the reference. */
  function decodeOnePass(afi: typeof AFI.IPv4 | typeof AFI.IPv6, data: Uint8Array, subcode: number, code = 3): string[] {
    const out: string[] = [];
    const max = afi === AFI.IPv4 ? 32 : 128;
    for (let i = 0; i < data.length; ) {
      const length = data[i]!;
      const octets = (length + 7) >> 3;
      if (length > max || i + 1 + octets > data.length) throw new BgpError(code, subcode, `malformed prefix at offset ${i}`);
      out.push(formatPrefix(afi, data.subarray(i + 1, i + 1 + octets), length));
      i += 1 + octets;
    }
    return out;
  }
  const outcome = (fn: () => string[]): { prefixes: string[] } | { code: number; subcode: number; message: string; data: number[] } => {
    try {
      const prefixes = fn();
      // Made at its size and filled: no holes, nothing past the prefixes found.
      for (let i = 0; i < prefixes.length; i++) expect(i in prefixes && typeof prefixes[i] === 'string').toBe(true);
      return { prefixes };
    } catch (err) {
      const e = errorOf(() => {
        throw err;
      });
      return { code: e.code, subcode: e.subcode, message: e.message, data: [...e.data] };
    }
  };

  it('decodes and refuses exactly as the one-pass decoder: any bytes, well-formed runs (lengths 0 to the family maximum) and runs cut short or overlong, in a view of a larger buffer', () => {
    const family = fc.constantFrom(AFI.IPv4, AFI.IPv6);
    // A run of well-formed prefixes for the family, then maybe cut short or followed by stray bytes.
    const run = family.chain((afi) => {
      const max = afi === AFI.IPv4 ? 32 : 128;
      const prefix = fc.tuple(fc.integer({ min: 0, max }), fc.uint8Array({ minLength: 16, maxLength: 16 })).map(([length, bytes]) => [length, ...bytes.subarray(0, (length + 7) >> 3)]);
      const bytes = fc.tuple(fc.array(prefix, { maxLength: 12 }), fc.integer({ min: -3, max: 0 }), fc.uint8Array({ maxLength: 3 })).map(([ps, cut, extra]) => {
        const wire = ps.flat();
        return Uint8Array.from([...wire.slice(0, Math.max(0, wire.length + cut)), ...(cut === 0 ? extra : [])]);
      });
      return fc.tuple(fc.constant(afi), fc.oneof(bytes, fc.uint8Array({ maxLength: 40 })));
    });
    fc.assert(
      fc.property(run, fc.uint8Array({ maxLength: 4 }), fc.uint8Array({ maxLength: 4 }), fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 6 }), ([afi, bytes], before, after, subcode, code) => {
        const whole = Buffer.from([...before, ...bytes, ...after]);
        const view = whole.subarray(before.length, before.length + bytes.length);
        expect(outcome(() => decodePrefixes(afi, view, subcode, code))).toEqual(outcome(() => decodeOnePass(afi, view, subcode, code)));
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes an empty field to no prefixes, and lengths 0 and the family maximum', () => {
    expect(decodePrefixes(AFI.IPv4, new Uint8Array(0), 10)).toEqual([]);
    expect(decodePrefixes(AFI.IPv4, Uint8Array.from([0, 32, 192, 0, 2, 1]), 10)).toEqual(['0.0.0.0/0', '192.0.2.1/32']);
    expect(decodePrefixes(AFI.IPv6, Uint8Array.from([0, 128, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 10)).toEqual(['::/0', '2001:db8::1/128']);
    // Past the family's maximum, or past the field's end: refused, with the offset of the prefix.
    expect(errorOf(() => decodePrefixes(AFI.IPv4, Uint8Array.from([24, 10, 0, 0, 33, 1, 2, 3, 4, 5]), 10))).toMatchObject({ code: 3, subcode: 10, message: 'malformed prefix at offset 4' });
    expect(errorOf(() => decodePrefixes(AFI.IPv6, Uint8Array.from([0, 129]), 9, 3))).toMatchObject({ code: 3, subcode: 9, message: 'malformed prefix at offset 1' });
    expect(errorOf(() => decodePrefixes(AFI.IPv4, Uint8Array.from([8, 10, 24, 10, 0]), 10))).toMatchObject({ message: 'malformed prefix at offset 2' });
  });
});
