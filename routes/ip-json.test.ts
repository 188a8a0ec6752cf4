// The streaming splitter of `ip -json` output: any cut of the text gives the same rows as one JSON.parse.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { JsonArraySplitter } from './ip-json.js';

const SAMPLE =
  '[{"dst":"10.1.0.0/24","protocol":"lightly","flags":[],"nexthops":[{"gateway":"192.0.2.3","dev":"va","weight":1,"flags":[]},{"gateway":"192.0.2.2","dev":"va","weight":1,"flags":[]}]},' +
  '{"type":"blackhole","dst":"10.2.0.0/24","protocol":"lightly","flags":[]},{"dst":"10.3.0.0/24","gateway":"192.0.2.2","dev":"we}ird\\"{[","flags":[]}]\n';

describe('JsonArraySplitter', () => {
  it('gives the array elements however the text is cut, braces and quotes inside strings included', () => {
    const whole = JSON.parse(SAMPLE) as unknown[];
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: SAMPLE.length - 1 }), { maxLength: 12 }), (cuts) => {
        const at = [0, ...cuts.sort((a, b) => a - b), SAMPLE.length];
        const splitter = new JsonArraySplitter();
        const rows: unknown[] = [];
        for (let i = 1; i < at.length; i++) rows.push(...splitter.pushParsed(SAMPLE.slice(at[i - 1], at[i])));
        expect(rows).toEqual(whole);
      }),
    );
  });

  it('reads an empty table', () => {
    expect(new JsonArraySplitter().pushParsed('[]\n')).toEqual([]);
    expect(new JsonArraySplitter().pushParsed('')).toEqual([]);
  });
});
