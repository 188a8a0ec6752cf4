// When NextHopWatch reads again after a change (pure part): soon for the first change, spaced so that
// reads of a large main table take at most a tenth of the time, never later than 10 s.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pollDue, readDelay } from './nexthop-watch.js';

describe('readDelay', () => {
  it('reads 100 ms after a first change, and after a quiet spell', () => {
    expect(readDelay(1_000, -Infinity, 0)).toBe(100);
    expect(readDelay(60_000, 1_000, 400)).toBe(100);
  });

  it('after a read of 400 ms that just ended, waits nine times that (reads a tenth of the time)', () => {
    expect(readDelay(5_000, 5_000, 400)).toBe(3_600);
    expect(readDelay(6_000, 5_000, 400)).toBe(2_600);
  });

  it('never waits more than 10 s, nor less than 100 ms', () => {
    expect(readDelay(0, 0, 5_000)).toBe(10_000);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e7 }), fc.integer({ min: 0, max: 1e7 }), fc.integer({ min: 0, max: 60_000 }), (now, end, ms) => {
        const d = readDelay(now, end, ms);
        return d >= 100 && d <= 10_000;
      }),
    );
  });
});

describe('pollDue: the safety net re-reads the main table (a full table of ours in it) only as often as the watch needs', () => {
  it('with the addon watcher: about every 5 minutes, since it reports its own overruns and failures', () => {
    expect(pollDue('netlink', true, 30_000)).toBe(false);
    expect(pollDue('netlink', true, 240_000)).toBe(false);
    expect(pollDue('netlink', true, 290_000)).toBe(true);
    expect(pollDue('netlink', true, Infinity)).toBe(true);
  });

  it('every poll (30 s) through ip monitor, which drops lines unseen, and while no read has succeeded yet', () => {
    expect(pollDue('ip monitor', true, 30_000)).toBe(true);
    expect(pollDue(undefined, true, 30_000)).toBe(true);
    expect(pollDue('netlink', false, 30_000)).toBe(true);
  });
});
