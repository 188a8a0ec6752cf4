// RFC 7606 (revised error handling for UPDATE) as one table: each malformed attribute and what it costs.
import { describe, expect, it } from 'vitest';
import { BgpError, type CodecContext, type UpdateMessage, decodeMessage } from './index.js';

/** One path attribute on the wire, short or extended length as the value needs. */
function at(flags: number, type: number, value: number[]): Buffer {
  return Buffer.from(value.length > 255 ? [flags | 0x10, type, value.length >> 8, value.length & 0xff, ...value] : [flags, type, value.length, ...value]);
}

const ORIGIN = 1, AS_PATH = 2, NEXT_HOP = 3, MED = 4, LOCAL_PREF = 5, ATOMIC = 6, AGGREGATOR = 7, COMMUNITIES = 8;
const ORIGINATOR_ID = 9, CLUSTER_LIST = 10, MP_REACH = 14, MP_UNREACH = 15, AS4_PATH = 17, AS4_AGGREGATOR = 18;
const FD00_2 = [0xfd, 0, ...Array(13).fill(0), 2];

const VALID: Record<number, Buffer> = {
  [ORIGIN]: at(0x40, ORIGIN, [0]),
  [AS_PATH]: at(0x40, AS_PATH, [2, 1, 0, 0, 0xfd, 0xe8]), // AS_SEQUENCE 65000, 4-octet
  [NEXT_HOP]: at(0x40, NEXT_HOP, [192, 0, 2, 2]),
};
const MP_REACH_V6 = at(0x80, MP_REACH, [0, 2, 1, 16, ...FD00_2, 0, 64, 0xfd, 0, 0, 1, 0, 0, 0, 0]); // fd00:1::/64

interface Row {
  section: string;
  what: string;
  /** Replaces (or with null, leaves out) one of the valid ORIGIN, AS_PATH, NEXT_HOP. */
  replace?: Record<number, Buffer | null>;
  /** Further attributes, or raw bytes, after the valid ones. */
  extra?: Buffer[];
  /** Classic IPv4 NLRI: 10.1.0.0/16 unless told otherwise. */
  nlri?: number[];
  ebgp?: boolean;
  /**
   * ok: routes usable. withdraw: treat-as-withdraw, session kept. discard: attribute dropped, routes
   * usable. ignore: like discard, for an attribute that means nothing here. reset: a NOTIFICATION.
   */
  expect: 'ok' | 'withdraw' | 'discard' | 'ignore' | 'reset';
  /** The attribute (a key of PathAttributes) that must be absent for discard and ignore. */
  gone?: string;
  /** The NOTIFICATION code/subcode for reset. */
  notification?: [number, number];
}

const TABLE: Row[] = [
  { section: '§4', what: 'an attribute whose length runs past the attribute section', extra: [Buffer.from([0x40, LOCAL_PREF, 10, 0, 0, 0, 100])], expect: 'withdraw' },
  { section: '§4', what: 'fewer bytes left than an attribute header', extra: [Buffer.from([0x40, LOCAL_PREF])], expect: 'withdraw' },
  { section: '§4', what: 'an extended-length header cut short', extra: [Buffer.from([0x50, COMMUNITIES, 0])], expect: 'withdraw' },
  { section: '§4 + §5.3', what: 'MP_REACH_NLRI itself overrunning (its NLRI cannot be found)', extra: [Buffer.from([0x80, MP_REACH, 200, 0, 2, 1])], expect: 'reset', notification: [3, 5] },
  { section: '§3(c)', what: 'ORIGIN with the optional flag', replace: { [ORIGIN]: at(0xc0, ORIGIN, [0]) }, expect: 'withdraw' },
  { section: '§3(d)', what: 'NEXT_HOP missing with classic NLRI', replace: { [NEXT_HOP]: null }, expect: 'withdraw' },
  { section: '§3(d)', what: 'AS_PATH missing', replace: { [AS_PATH]: null }, expect: 'withdraw' },
  { section: '§3(g)', what: 'ORIGIN twice: the first counts, the second is discarded', extra: [at(0x40, ORIGIN, [9])], expect: 'ok' },
  { section: '§3(g)', what: 'MP_REACH_NLRI twice', extra: [MP_REACH_V6, MP_REACH_V6], expect: 'reset', notification: [3, 1] },
  { section: 'RFC 4271 §6.3', what: 'an unrecognized well-known attribute', extra: [at(0x40, 99, [1])], expect: 'reset', notification: [3, 2] },
  { section: '§7.1', what: 'ORIGIN value 3', replace: { [ORIGIN]: at(0x40, ORIGIN, [3]) }, expect: 'withdraw' },
  { section: '§7.1', what: 'ORIGIN of length 2', replace: { [ORIGIN]: at(0x40, ORIGIN, [0, 0]) }, expect: 'withdraw' },
  { section: '§7.2', what: 'AS_PATH segment overrunning the attribute', replace: { [AS_PATH]: at(0x40, AS_PATH, [2, 2, 0, 0, 0xfd, 0xe8]) }, expect: 'withdraw' },
  { section: '§7.2', what: 'AS_PATH unknown segment type', replace: { [AS_PATH]: at(0x40, AS_PATH, [9, 1, 0, 0, 0xfd, 0xe8]) }, expect: 'withdraw' },
  { section: '§7.3', what: 'NEXT_HOP of length 5', replace: { [NEXT_HOP]: at(0x40, NEXT_HOP, [192, 0, 2, 2, 0]) }, expect: 'withdraw' },
  { section: '§7.3', what: 'NEXT_HOP 0.0.0.0', replace: { [NEXT_HOP]: at(0x40, NEXT_HOP, [0, 0, 0, 0]) }, expect: 'withdraw' },
  { section: '§7.3 + RFC 4760 §3', what: 'malformed NEXT_HOP in an UPDATE with only MP_REACH_NLRI', replace: { [NEXT_HOP]: at(0x40, NEXT_HOP, [192, 0, 2]) }, extra: [MP_REACH_V6], nlri: [], expect: 'ignore', gone: 'nextHop' },
  { section: 'RFC 4760 §3', what: 'valid NEXT_HOP in an UPDATE with only MP_REACH_NLRI', extra: [MP_REACH_V6], nlri: [], expect: 'ignore', gone: 'nextHop' },
  { section: '§7.4', what: 'MULTI_EXIT_DISC of length 3', extra: [at(0x80, MED, [0, 0, 1])], expect: 'withdraw' },
  { section: '§7.5', what: 'LOCAL_PREF of length 3 from iBGP', extra: [at(0x40, LOCAL_PREF, [0, 0, 100])], expect: 'withdraw' },
  { section: '§7.5', what: 'LOCAL_PREF of length 3 from eBGP', extra: [at(0x40, LOCAL_PREF, [0, 0, 100])], ebgp: true, expect: 'discard', gone: 'localPref' },
  { section: '§7.5', what: 'a valid LOCAL_PREF from eBGP', extra: [at(0x40, LOCAL_PREF, [0, 0, 0, 100])], ebgp: true, expect: 'discard', gone: 'localPref' },
  { section: '§7.6', what: 'ATOMIC_AGGREGATE of length 1', extra: [at(0x40, ATOMIC, [0])], expect: 'discard', gone: 'atomicAggregate' },
  { section: '§7.7', what: 'AGGREGATOR of length 5', extra: [at(0xc0, AGGREGATOR, [0, 0, 0, 1, 192])], expect: 'discard', gone: 'aggregator' },
  { section: '§7.8', what: 'COMMUNITIES of length 5', extra: [at(0xc0, COMMUNITIES, [0, 0, 0, 1, 2])], expect: 'withdraw' },
  { section: '§7.8', what: 'COMMUNITIES of length 0 (not malformed)', extra: [at(0xc0, COMMUNITIES, [])], expect: 'ok' },
  { section: '§7.9', what: 'ORIGINATOR_ID of length 3 from iBGP', extra: [at(0x80, ORIGINATOR_ID, [192, 0, 2])], expect: 'withdraw' },
  { section: '§7.9', what: 'ORIGINATOR_ID from eBGP', extra: [at(0x80, ORIGINATOR_ID, [192, 0, 2])], ebgp: true, expect: 'discard', gone: 'originatorId' },
  { section: '§7.10', what: 'CLUSTER_LIST of length 0 from iBGP', extra: [at(0x80, CLUSTER_LIST, [])], expect: 'withdraw' },
  { section: '§7.10', what: 'CLUSTER_LIST of length 6 from iBGP', extra: [at(0x80, CLUSTER_LIST, [192, 0, 2, 1, 0, 0])], expect: 'withdraw' },
  { section: '§7.10', what: 'CLUSTER_LIST from eBGP', extra: [at(0x80, CLUSTER_LIST, [192, 0, 2])], ebgp: true, expect: 'discard', gone: 'clusterList' },
  { section: '§7.11', what: 'MP_REACH_NLRI next hop of length 5', extra: [at(0x80, MP_REACH, [0, 2, 1, 5, 1, 2, 3, 4, 5, 0])], nlri: [], expect: 'reset', notification: [3, 9] },
  { section: '§7.12', what: 'MP_UNREACH_NLRI with a prefix longer than 128', extra: [at(0x80, MP_UNREACH, [0, 2, 1, 129, ...Array(17).fill(0)])], nlri: [], expect: 'reset', notification: [3, 9] },
  { section: '§7.2 + RFC 5065 §5', what: 'AS_PATH with an AS_CONFED_SEQUENCE from eBGP (we are in no confederation)', replace: { [AS_PATH]: at(0x40, AS_PATH, [3, 1, 0, 0, 0xfd, 0xe9, 2, 1, 0, 0, 0xfd, 0xe8]) }, ebgp: true, expect: 'withdraw' },
  { section: '§7.2 + RFC 5065 §5', what: 'AS_PATH with an AS_CONFED_SET from eBGP', replace: { [AS_PATH]: at(0x40, AS_PATH, [2, 1, 0, 0, 0xfd, 0xe8, 4, 1, 0, 0, 0xfd, 0xe9]) }, ebgp: true, expect: 'withdraw' },
  { section: 'RFC 7607 §2', what: 'AS_PATH holding AS 0', replace: { [AS_PATH]: at(0x40, AS_PATH, [2, 2, 0, 0, 0xfd, 0xe8, 0, 0, 0, 0]) }, expect: 'withdraw' },
  { section: 'RFC 7607 §2', what: 'AGGREGATOR of AS 0', extra: [at(0xc0, AGGREGATOR, [0, 0, 0, 0, 192, 0, 2, 1])], expect: 'discard', gone: 'aggregator' },
  { section: 'RFC 6793 §6', what: 'AS4_PATH malformed', extra: [at(0xc0, AS4_PATH, [2, 3, 0, 0])], expect: 'ok' },
  { section: 'RFC 6793 §6', what: 'AS4_AGGREGATOR of length 7', extra: [at(0xc0, AS4_AGGREGATOR, [0, 0, 0, 1, 192, 0, 2])], expect: 'ok' },
];

function frame(row: Row): Buffer {
  const attrs = Buffer.concat([
    ...[ORIGIN, AS_PATH, NEXT_HOP].map((t) => (row.replace && t in row.replace ? row.replace[t] : VALID[t]) ?? Buffer.alloc(0)),
    ...(row.extra ?? []),
  ]);
  const nlri = Buffer.from(row.nlri ?? [16, 10, 1]);
  const body = Buffer.concat([Buffer.from([0, 0, attrs.length >> 8, attrs.length & 0xff]), attrs, nlri]);
  const head = Buffer.alloc(19, 0xff);
  head.writeUInt16BE(19 + body.length, 16);
  head[18] = 2;
  return Buffer.concat([head, body]);
}

describe('RFC 7606 §3, §4 and §7: what each malformed attribute costs', () => {
  it.each(TABLE.map((row) => [`${row.section} ${row.what}: ${row.expect}`, row] as const))('%s', (_name, row) => {
    const ctx: CodecContext = { fourOctetAs: true, ebgp: row.ebgp ?? false };
    let msg: UpdateMessage;
    try {
      msg = decodeMessage(frame(row), ctx) as UpdateMessage;
    } catch (err) {
      if (!(err instanceof BgpError)) throw err;
      expect(row.expect, `unexpected NOTIFICATION ${err.code}/${err.subcode}: ${err.message}`).toBe('reset');
      expect([err.code, err.subcode]).toEqual(row.notification);
      return;
    }
    expect(row.expect, 'decoded, but a NOTIFICATION was due').not.toBe('reset');
    expect(msg.treatAsWithdraw ?? false).toBe(row.expect === 'withdraw');
    // The NLRI are always found, so a withdraw has something to withdraw.
    const prefixes = [...msg.nlri, ...(msg.mpReach?.nlri ?? [])];
    expect(prefixes.length).toBeGreaterThan(0);
    if (row.gone) expect(msg.attributes).not.toHaveProperty(row.gone);
    if (row.expect === 'ok' || row.expect === 'discard' || row.expect === 'ignore') {
      expect(msg.attributes.origin).toBe(0);
      expect(msg.attributes.asPath).toEqual([{ type: 2, asns: [65000] }]);
    }
  });
});

describe('RFC 7607 §2 and RFC 6793 §3, §6: AS 0 or confederation segments in AS4_PATH, AS 0 in AS4_AGGREGATOR, from a 2-octet peer', () => {
  const two: CodecContext = { fourOctetAs: false, ebgp: true };
  const update = (...extra: Buffer[]) => frame({ section: '', what: '', replace: { [AS_PATH]: at(0x40, AS_PATH, [2, 2, 0x5b, 0xa0, 0xfd, 0xe8]) }, extra, expect: 'ok' });
  it('an AS4_PATH holding AS 0 is discarded: the path stays AS_PATH as sent (AS_TRANS and all), routes usable', () => {
    const msg = decodeMessage(update(at(0xc0, AS4_PATH, [2, 1, 0, 0, 0, 0])), two) as UpdateMessage;
    expect(msg.treatAsWithdraw ?? false).toBe(false);
    expect(msg.attributes.asPath).toEqual([{ type: 2, asns: [23456, 65000] }]);
  });
  it('confederation segments in an AS4_PATH are dropped, the rest merged (RFC 6793 §3)', () => {
    const msg = decodeMessage(frame({ section: '', what: '', replace: { [AS_PATH]: at(0x40, AS_PATH, [2, 2, 0xfd, 0xea, 0x5b, 0xa0]) }, extra: [at(0xc0, AS4_PATH, [3, 1, 0, 0, 0xfd, 0xe9, 2, 1, 0xfa, 0x56, 0xea, 0x01])], expect: 'ok' }), two) as UpdateMessage;
    expect(msg.attributes.asPath).toEqual([{ type: 2, asns: [65002] }, { type: 2, asns: [4_200_000_001] }]);
  });
  it('an AS4_AGGREGATOR of AS 0 is discarded: AGGREGATOR stays as sent', () => {
    const msg = decodeMessage(update(at(0xc0, AGGREGATOR, [0x5b, 0xa0, 192, 0, 2, 1]), at(0xc0, AS4_AGGREGATOR, [0, 0, 0, 0, 192, 0, 2, 1])), two) as UpdateMessage;
    expect(msg.attributes.aggregator).toEqual({ asn: 23456, address: '192.0.2.1' });
  });
});
