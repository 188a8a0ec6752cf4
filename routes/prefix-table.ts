// The route programmer's one table: records by prefix text, IPv4 prefixes found through typed arrays, not a Map.

import { randomBytes } from 'node:crypto';
import { type Ipv4PrefixParts, parseIpv4Prefix } from './desired.js';

/**
 * Records keyed by their own prefix text, iterated in insertion order with a Map's guarantees: what
 * is added while iterating is visited, what is deleted before it is reached is not, the current one
 * may be deleted. A record is added once: a prefix deleted and added again gets a new record.
 *
 * Why not a Map: a full table is looked up once per prefix of every UPDATE, and measured through the
 * whole agent (a CPU profile of 100,000 routes announced again) the Map's get was 37% of the main
 * thread. Its key is a string the codec has just made, so V8 hashes it, follows the bucket to an
 * entry, and compares it with the stored key, another object: three cache misses in random order. A
 * canonical IPv4 prefix (all of a full table's, in the kernel's form) is parsed instead into an
 * address and a length, and found by open addressing in a typed array that holds the keys themselves.
 * Micro-benchmark at 100,000 prefixes, the string parsed each time: 112-128 ns against a Map's
 * 184-195 in insertion order, 213-241 against 291-300 in random order; through the agent, the main
 * thread's CPU for a withdrawal of 100,000 fell by 14%, of 1,000,000 by 35% (docs/concepts.md).
 * Any other text (IPv6, non-canonical forms) goes through a Map.
 *
 * Records sit in an array in insertion order; the indexes hold positions. A delete leaves a hole,
 * and the array and the indexes are made again without them once holes outnumber the records (as a
 * Map shrinks: a swept full table gives its memory back). An iteration under way when that
 * happens goes on along the array it started on (checking that each record is still the table's)
 * and then along the new one past what the compaction copied, so none is lost or visited twice.
 */
export class PrefixTable<V extends { readonly prefix: string }> {
  private segment = new Segment<V>([]);
  private count = 0;
  private holes = 0;
  private readonly others = new Map<string, number>();
  private readonly v4 = new Ipv4Index();

  /** `compactFrom`: the holes there must be, beyond as many as records, before a compaction (tests make it small). */
  constructor(private readonly compactFrom = 1024) {}

  get size(): number {
    return this.count;
  }

  get(prefix: string): V | undefined {
    const at = parseIpv4Prefix(prefix, KEY) ? this.v4.find(KEY.address, KEY.length) : this.others.get(prefix);
    return at === undefined || at < 0 ? undefined : this.segment.entries[at];
  }

  has(prefix: string): boolean {
    return this.get(prefix) !== undefined;
  }

  /** Adds a record for a prefix that has none (a record deleted is not added again: a new one is). */
  add(value: V): void {
    const prefix = value.prefix;
    const isV4 = parseIpv4Prefix(prefix, KEY);
    const at = isV4 ? this.v4.find(KEY.address, KEY.length) : this.others.get(prefix);
    if (at !== undefined && at >= 0) throw new Error(`${prefix} is in the table already`);
    const position = this.segment.entries.length;
    // Positions share an index word with the length (LENGTHS); a Map stops at 2^24 entries too.
    if (position >= MAX_POSITION) throw new RangeError(`the prefix table is full (${this.count} records)`);
    this.segment.entries.push(value);
    this.count++;
    if (isV4) this.v4.insert(KEY.address, KEY.length, position);
    else this.others.set(prefix, position);
  }

  delete(prefix: string): boolean {
    const isV4 = parseIpv4Prefix(prefix, KEY);
    const at = isV4 ? this.v4.remove(KEY.address, KEY.length) : this.others.get(prefix);
    if (at === undefined || at < 0) return false;
    if (!isV4) this.others.delete(prefix);
    this.segment.entries[at] = undefined;
    this.count--;
    this.holes++;
    if (this.count === 0) this.clear();
    else if (this.holes > this.compactFrom && this.holes > this.count) this.compact();
    return true;
  }

  clear(): void {
    this.segment.retire(new Segment<V>([]));
    this.segment = this.segment.next!;
    this.count = 0;
    this.holes = 0;
    this.others.clear();
    this.v4.clear();
  }

  *values(): IterableIterator<V> {
    let segment = this.segment;
    let at = 0;
    for (;;) {
      const entries = segment.entries;
      if (at < entries.length) {
        const value = entries[at++];
        // On a retired segment a record may have been deleted since: only the table's own are visited.
        if (value !== undefined && (segment === this.segment || this.get(value.prefix) === value)) yield value;
      } else if (segment.next) {
        // The next segment starts with copies of this one's records, all passed already.
        at = segment.nextFrom;
        segment = segment.next;
      } else return;
    }
  }

  *entries(): IterableIterator<[string, V]> {
    for (const value of this.values()) yield [value.prefix, value];
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  /**
   * The records in order without the holes, in a new segment; iterations on the old one go on
   * (values()). The keys are not parsed again: the indexes only have their positions renumbered,
   * the IPv4 one made again at its new size in one go (parsing a swept full table's remaining half
   * into an index grown from its smallest size held the event loop 87-91 ms at 1M, against 44-48 ms
   * now and 15 ms for a Map's shrink; the sweep deleting does so a slice at a time).
   */
  private compact(): void {
    const entries = this.segment.entries;
    const live: V[] = [];
    const renumbered = new Int32Array(entries.length);
    for (let at = 0; at < entries.length; at++) {
      const value = entries[at];
      if (value === undefined) continue;
      renumbered[at] = live.length;
      live.push(value);
    }
    this.segment.retire(new Segment(live));
    this.segment = this.segment.next!;
    this.holes = 0;
    this.v4.renumber(renumbered);
    for (const [prefix, at] of this.others) this.others.set(prefix, renumbered[at]!);
  }
}

/** One generation of the record array; a compaction or a clear retires it, pointing to the next. */
class Segment<V> {
  next?: Segment<V>;
  /** Where in `next` the records come that were added after this one was retired. */
  nextFrom = 0;

  constructor(readonly entries: (V | undefined)[]) {}

  retire(next: Segment<V>): void {
    this.next = next;
    this.nextFrom = next.entries.length;
  }
}

/** The last key parsed (one object, written in place: a key costs no allocation). */
const KEY: Ipv4PrefixParts = { address: 0, length: 0 };

const EMPTY = -1;
const DELETED = -2;
const MIN_CAPACITY = 64;
/** A slot's second word: position * LENGTHS + length. */
const LENGTHS = 64;
/** Positions below this fit that word (2^31 / LENGTHS): ~33M, with holes at most as many as records. */
const MAX_POSITION = 2 ** 31 / LENGTHS;

/**
 * Open addressing with linear probing over one typed array, two words a slot (the address; the
 * position and length, or EMPTY or DELETED): a look-up reads one cache line and no object, and the
 * array is off the JS heap, nothing for the garbage collector to trace. Kept at most half full,
 * deleted slots included.
 */
class Ipv4Index {
  private mask = MIN_CAPACITY - 1;
  private slots = Ipv4Index.emptySlots(MIN_CAPACITY);
  private live = 0;
  private used = 0;
  /**
   * Mixed into every key's slot: the prefixes come from peers, and were the slots the same in every
   * agent, /32s chosen to start probing at one slot would make each look-up walk all of them (hash
   * flooding; V8 seeds a Map's hash at random for the same reason).
   */
  private readonly seed = randomBytes(4).readInt32LE(0);

  private static emptySlots(capacity: number): Int32Array {
    const slots = new Int32Array(2 * capacity);
    for (let i = 1; i < slots.length; i += 2) slots[i] = EMPTY;
    return slots;
  }

  /** The position stored for the key, or -1. */
  find(address: number, length: number): number {
    const i = this.locate(address, length);
    return i < 0 ? -1 : (this.slots[2 * i + 1]! - length) / LENGTHS;
  }

  /** Stores the key's position; the key must not be there yet. */
  insert(address: number, length: number, position: number): void {
    const capacity = this.mask + 1;
    if (2 * (this.used + 1) > capacity) this.rebuild(4 * (this.live + 1) > capacity ? capacity * 2 : capacity);
    const { slots, mask } = this;
    let i = slotOf(address ^ this.seed, length, mask);
    while (slots[2 * i + 1]! >= 0) i = (i + 1) & mask;
    if (slots[2 * i + 1] === EMPTY) this.used++;
    slots[2 * i] = address;
    slots[2 * i + 1] = position * LENGTHS + length;
    this.live++;
  }

  /** Removes the key; its position, or -1 when it was not there. */
  remove(address: number, length: number): number {
    const i = this.locate(address, length);
    if (i < 0) return -1;
    const meta = this.slots[2 * i + 1]!;
    this.slots[2 * i + 1] = DELETED;
    this.live--;
    return (meta - length) / LENGTHS;
  }

  /** The slot holding the key, or -1: probing from its first slot to an empty one, over deleted ones. */
  private locate(address: number, length: number): number {
    const { slots, mask } = this;
    for (let i = slotOf(address ^ this.seed, length, mask); ; i = (i + 1) & mask) {
      const meta = slots[2 * i + 1]!;
      if (meta === EMPTY) return -1;
      if (meta >= 0 && slots[2 * i] === address && meta % LENGTHS === length) return i;
    }
  }

  clear(): void {
    this.mask = MIN_CAPACITY - 1;
    this.slots = Ipv4Index.emptySlots(MIN_CAPACITY);
    this.live = 0;
    this.used = 0;
  }

  /** The live keys again, at the positions `renumbered` gives them, in as few slots as they need (a compaction). */
  renumber(renumbered: Int32Array): void {
    let capacity = MIN_CAPACITY;
    while (2 * (this.live + 1) > capacity) capacity *= 2;
    this.rebuild(capacity, renumbered);
  }

  /** The live keys again, in `capacity` slots, without the deleted ones (at new positions, when given). */
  private rebuild(capacity: number, renumbered?: Int32Array): void {
    const old = this.slots;
    this.mask = capacity - 1;
    this.slots = Ipv4Index.emptySlots(capacity);
    this.live = 0;
    this.used = 0;
    for (let i = 1; i < old.length; i += 2) {
      const meta = old[i]!;
      if (meta < 0) continue;
      const length = meta % LENGTHS;
      const at = (meta - length) / LENGTHS;
      this.insert(old[i - 1]!, length, renumbered ? renumbered[at]! : at);
    }
  }
}

/** The slot a key starts probing at: address (seeded) and length mixed (murmur3's finaliser), so the consecutive prefixes of a table spread over the slots. */
function slotOf(address: number, length: number, mask: number): number {
  let h = address ^ Math.imul(length + 1, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) & mask;
}
