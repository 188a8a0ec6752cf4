// Route messages byte for byte against what iproute2 6.1 sends for the same `ip route` command
// (captured with `strace -e sendmsg -xx ip …`; its NLM_F_ACK and sequence number aside), and error
// replies back to sequence numbers (RFC 3549 §2.3.2.2: an error message echoes the request's header).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Route } from './desired.js';
import { NLM_F_ACK, NetlinkEncodeError, RouteMessageWriter, decodeErrors, describeError } from './netlink-codec.js';

/** `va` is link 3, as in the namespace the fixtures were captured in. */
const links = (dev: string): number => (dev === 'va' ? 3 : 0);

/** The message iproute2 sent: header fields, then the payload strace printed. */
function ipSent(type: number, flags: number, payload: string): string {
  const body = Buffer.from(payload.replaceAll('\\x', ''), 'hex');
  const header = Buffer.alloc(16);
  header.writeUInt32LE(16 + body.length, 0);
  header.writeUInt16LE(type, 4);
  header.writeUInt16LE(flags, 6);
  return Buffer.concat([header, body]).toString('hex');
}

/** Our message with seq and pid cleared, for comparing. */
function ours(write: (w: RouteMessageWriter) => void): string {
  const w = new RouteMessageWriter(16);
  write(w);
  const b = Buffer.from(w.bytes());
  b.writeUInt32LE(0, 8);
  return b.toString('hex');
}

const NEW = 24;
const DEL = 25;
const ADD_FLAGS = 0x601; // REQUEST|CREATE|EXCL
const REPLACE_FLAGS = 0x501; // REQUEST|CREATE|REPLACE
const u = (prefix: string, ...nextHops: string[]): Route => ({ prefix, type: 'unicast', nextHops });

describe('RouteMessageWriter: the bytes of ip route add|replace|del … proto 201', () => {
  it.each([
    ['route add 10.1.0.0/24 via 192.0.2.2', 'add', u('10.1.0.0/24', '192.0.2.2'), NEW, ADD_FLAGS,
      '\\x02\\x18\\x00\\x00\\xfe\\xc9\\x00\\x01\\x00\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\x0a\\x01\\x00\\x00\\x08\\x00\\x05\\x00\\xc0\\x00\\x02\\x02'],
    ['route replace 10.2.0.0/24 nexthop via 192.0.2.2 nexthop via 192.0.2.3 (ECMP: RTA_MULTIPATH)', 'replace', u('10.2.0.0/24', '192.0.2.2', '192.0.2.3'), NEW, REPLACE_FLAGS,
      '\\x02\\x18\\x00\\x00\\xfe\\xc9\\x00\\x01\\x00\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\x0a\\x02\\x00\\x00\\x24\\x00\\x09\\x00\\x10\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x08\\x00\\x05\\x00\\xc0\\x00\\x02\\x02\\x10\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x08\\x00\\x05\\x00\\xc0\\x00\\x02\\x03'],
    ['route add blackhole 10.3.0.0/24', 'add', { prefix: '10.3.0.0/24', type: 'blackhole', nextHops: [] }, NEW, ADD_FLAGS,
      '\\x02\\x18\\x00\\x00\\xfe\\xc9\\x00\\x06\\x00\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\x0a\\x03\\x00\\x00'],
    ['-6 route add fd00:244:2::/64 via fd00::2', 'add', u('fd00:244:2::/64', 'fd00::2'), NEW, ADD_FLAGS,
      '\\x0a\\x40\\x00\\x00\\xfe\\xc9\\x00\\x01\\x00\\x00\\x00\\x00\\x14\\x00\\x01\\x00\\xfd\\x00\\x02\\x44\\x00\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x14\\x00\\x05\\x00\\xfd\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02'],
    ['route add 10.244.1.7/32 dev va scope link (a device route)', 'add', { prefix: '10.244.1.7/32', type: 'unicast', nextHops: [], dev: 'va' }, NEW, ADD_FLAGS,
      '\\x02\\x20\\x00\\x00\\xfe\\xc9\\xfd\\x01\\x00\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\x0a\\xf4\\x01\\x07\\x08\\x00\\x04\\x00\\x03\\x00\\x00\\x00'],
    ['route add 10.4.0.0/24 via 192.0.2.2 dev va', 'add', { prefix: '10.4.0.0/24', type: 'unicast', nextHops: ['192.0.2.2'], dev: 'va' }, NEW, ADD_FLAGS,
      '\\x02\\x18\\x00\\x00\\xfe\\xc9\\x00\\x01\\x00\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\x0a\\x04\\x00\\x00\\x08\\x00\\x05\\x00\\xc0\\x00\\x02\\x02\\x08\\x00\\x04\\x00\\x03\\x00\\x00\\x00'],
    ['-6 route add fd00:244:3::/64 nexthop via fe80::1 dev va nexthop via fe80::2 dev va (link-local ECMP)', 'add', u('fd00:244:3::/64', 'fe80::1%va', 'fe80::2%va'), NEW, ADD_FLAGS,
      '\\x0a\\x40\\x00\\x00\\xfe\\xc9\\x00\\x01\\x00\\x00\\x00\\x00\\x14\\x00\\x01\\x00\\xfd\\x00\\x02\\x44\\x00\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x3c\\x00\\x09\\x00\\x1c\\x00\\x00\\x00\\x03\\x00\\x00\\x00\\x14\\x00\\x05\\x00\\xfe\\x80\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01\\x1c\\x00\\x00\\x00\\x03\\x00\\x00\\x00\\x14\\x00\\x05\\x00\\xfe\\x80\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02'],
  ] as const)('%s', (_command, op, route, type, flags, payload) => {
    expect(ours((w) => w.route(op, (route as Route).prefix, route as Route, 1, links))).toBe(ipSent(type, flags, payload));
  });

  it('route del 10.1.0.0/24 proto 201: any type and scope of ours', () => {
    expect(ours((w) => w.delete('10.1.0.0/24', 1))).toBe(ipSent(DEL, 0x1, '\\x02\\x18\\x00\\x00\\xfe\\xc9\\xff\\x00\\x00\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\x0a\\x01\\x00\\x00'));
  });

  it('an unknown link refuses the route and leaves no half-written message', () => {
    const w = new RouteMessageWriter();
    w.delete('10.1.0.0/24', 1);
    const before = w.length;
    expect(() => w.route('add', '10.5.0.0/24', { type: 'unicast', nextHops: ['192.0.2.2'], dev: 'nope0' }, 2, links)).toThrow(NetlinkEncodeError);
    expect(w.length).toBe(before);
  });

  it('sequence numbers, lengths and the acknowledgement flag over many messages (growing the buffer)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.boolean()), { minLength: 1, maxLength: 300 }), (specs) => {
        const w = new RouteMessageWriter(8);
        specs.forEach(([a, b, del], i) => (del ? w.delete(`10.${a}.${b}.0/24`, 1000 + i) : w.route('add', `10.${a}.${b}.0/24`, u(`10.${a}.${b}.0/24`, `192.0.2.${a}`), 1000 + i, links)));
        w.ack();
        const bytes = w.bytes();
        let at = 0;
        specs.forEach(([a, b, del], i) => {
          const length = bytes.readUInt32LE(at);
          expect(length).toBe(del ? 36 : 44);
          expect(bytes.readUInt32LE(at + 8)).toBe(1000 + i);
          expect(Boolean(bytes.readUInt16LE(at + 6) & NLM_F_ACK)).toBe(i === specs.length - 1);
          expect([...bytes.subarray(at + 32, at + 35)]).toEqual([10, a, b]);
          at += length;
        });
        expect(at).toBe(bytes.length);
      }),
    );
  });
});

/** An NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK and NETLINK_EXT_ACK. */
function errorReply(seq: number, errno: number, message?: string): Buffer {
  const text = message === undefined ? Buffer.alloc(0) : Buffer.from(`${message}\0`);
  const tlv = message === undefined ? 0 : (4 + text.length + 3) & ~3;
  const b = Buffer.alloc(16 + 4 + 16 + tlv);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(2, 4); // NLMSG_ERROR
  b.writeUInt16LE(0x100 | (message === undefined ? 0 : 0x200), 6); // CAPPED, ACK_TLVS
  b.writeUInt32LE(seq, 8);
  b.writeInt32LE(-errno, 16);
  b.writeUInt32LE(36, 20); // the echoed request's header
  b.writeUInt16LE(24, 24);
  b.writeUInt32LE(seq, 28);
  if (message !== undefined) {
    b.writeUInt16LE(4 + text.length, 36);
    b.writeUInt16LE(1, 38); // NLMSGERR_ATTR_MSG
    text.copy(b, 40);
  }
  return b;
}

describe('decodeErrors', () => {
  it('maps each refusal to its sequence number, with the kernel\'s reason, and skips acknowledgements', () => {
    const ack = errorReply(7, 0);
    const replies = Buffer.concat([errorReply(5, 17), ack, errorReply(6, 101, 'Nexthop has invalid gateway')]);
    const errors = decodeErrors(replies);
    expect(errors).toEqual([{ seq: 5, errno: 17 }, { seq: 6, errno: 101, message: 'Nexthop has invalid gateway' }]);
    expect(describeError(errors[0]!)).toBe('RTNETLINK answers: File exists');
    expect(describeError(errors[1]!)).toBe('RTNETLINK answers: Network is unreachable (Nexthop has invalid gateway)');
  });

  it('never throws on truncated or garbled replies', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => void decodeErrors(Buffer.from(bytes))));
  });
});
