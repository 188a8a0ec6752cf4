import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Fifo } from './fifo.js';

describe('Fifo', () => {
  it('gives items back in the order they came, like an array used as a queue', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constant('shift' as const)), { maxLength: 400 }), (ops) => {
        const fifo = new Fifo<number>();
        const model: number[] = [];
        for (const op of ops) {
          if (op === 'shift') expect(fifo.shift()).toBe(model.shift());
          else {
            fifo.push(op);
            model.push(op);
          }
          expect(fifo.size).toBe(model.length);
          for (let i = -1; i <= model.length; i++) expect(fifo.at(i)).toBe(model[i]);
        }
      }),
    );
  });

  it('keeps its array between bursts, moving what is queued to the front rather than growing', () => {
    const fifo = new Fifo<number>();
    const items = (): unknown[] => (fifo as unknown as { items: unknown[] }).items;
    for (let i = 0; i < 1000; i++) fifo.push(i);
    const array = items();
    const capacity = array.length;
    for (let burst = 0; burst < 5; burst++) {
      for (let i = 0; i < 1000; i++) expect(fifo.shift()).toBe(i);
      for (let i = 0; i < 1000; i++) fifo.push(i);
    }
    expect(items()).toBe(array);
    expect(array.length).toBe(capacity);
    // Half taken, then refilled past the end: compacted in place.
    for (let i = 0; i < 600; i++) fifo.shift();
    for (let i = 1000; i < 1500; i++) fifo.push(i);
    expect(items()).toBe(array);
    expect(array.length).toBe(capacity);
    expect(fifo.size).toBe(900);
    expect(fifo.at(0)).toBe(600);
    expect(fifo.at(899)).toBe(1499);
  });

  it('holds nothing it no longer queues', () => {
    const fifo = new Fifo<object>();
    for (let i = 0; i < 100; i++) fifo.push({ i });
    for (let i = 0; i < 60; i++) fifo.shift();
    const items = (fifo as unknown as { items: unknown[] }).items;
    expect(items.filter((x) => x !== undefined)).toHaveLength(40);
    while (fifo.shift()) {
      /* drain */
    }
    expect(items.every((x) => x === undefined)).toBe(true);
  });

  it('lets a very large array go once emptied', () => {
    const fifo = new Fifo<number>();
    for (let i = 0; i < 200_000; i++) fifo.push(i);
    for (let i = 0; i < 200_000; i++) fifo.shift();
    expect((fifo as unknown as { items: unknown[] }).items).toHaveLength(0);
    fifo.push(7);
    expect(fifo.shift()).toBe(7);
  });
});
