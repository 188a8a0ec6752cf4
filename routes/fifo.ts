// A first-in first-out queue that keeps its array between bursts.
//
// The reconciler queued changed prefixes on a plain array and replaced it with an empty one each time
// the queue ran dry, so every burst grew a new array from nothing: for 100,000 changes about 2.4 MB of
// backing stores, the large ones made straight in the old generation (a sampling heap profile of the
// whole agent through a withdrawal and through a load). Garbage there is what triggers full
// collections, each of which marks the whole table. This queue grows its array only past its
// largest size so far, and empties taken slots so it holds nothing it no longer queues.

/** Above this many slots an emptied queue lets its array go (a million-route burst), rather than keep megabytes for good. */
const KEEP_SLOTS = 1 << 17;

export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  private tail = 0;

  get size(): number {
    return this.tail - this.head;
  }

  push(item: T): void {
    if (this.tail === this.items.length && this.head > 0 && this.head >= this.items.length >> 1) {
      // At least half the array is taken slots: move what is queued to the front instead of growing.
      this.items.copyWithin(0, this.head, this.tail);
      this.items.fill(undefined, this.tail - this.head, this.tail);
      this.tail -= this.head;
      this.head = 0;
    }
    if (this.tail === this.items.length) this.items.push(item);
    else this.items[this.tail] = item;
    this.tail++;
  }

  /** The oldest item, taken out; undefined when empty. */
  shift(): T | undefined {
    if (this.head === this.tail) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.tail) this.reset();
    return item;
  }

  /** The i-th oldest item (0: the next shift()), without taking it. */
  at(i: number): T | undefined {
    return i >= 0 && i < this.size ? this.items[this.head + i] : undefined;
  }

  private reset(): void {
    this.head = this.tail = 0;
    if (this.items.length > KEEP_SLOTS) this.items = [];
  }
}
