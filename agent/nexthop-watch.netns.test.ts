// NextHopWatch against a real kernel (RFC 4271 §9.1.2.1), learning changes through the addon's rtnetlink
// watcher and through its `ip monitor` fallback, in a throwaway namespace only.
import { execa, execaSync } from 'execa';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPool, addConnectedLink, ipIn, requireNetworkTools } from '../test/support/netns.js';
import { until } from '../test/support/wait.js';
import { nativeAddon } from '../native/native.js';
import { NextHopWatch, type NextHopWatchOptions } from './nexthop-watch.js';

const pool = new NetnsPool();
let ns = '';

beforeAll(async () => {
  await requireNetworkTools(['ip', 'ps']);
  ns = await pool.create('nhw');
  await addConnectedLink(ns, 'va', 'vb', ['192.0.2.1/24', 'fd00::1/64']);
});
afterAll(async () => {
  await pool.cleanup();
});

/** A watch in the test namespace, its log lines kept. */
async function startWatch(options: Omit<NextHopWatchOptions, 'netns'>) {
  const lines: string[] = [];
  const watch = new NextHopWatch(pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }), { ...options, netns: ns });
  let changes = 0;
  watch.onChange(() => changes++);
  await watch.start();
  return { watch, lines, changes: () => changes };
}

/** The `ip monitor` children of this process. */
async function ipMonitors(): Promise<string[]> {
  const ps = await execa('ps', ['--ppid', String(process.pid), '-o', 'args='], { reject: false });
  return ps.stdout.split('\n').filter((l) => l.includes('ip') && l.includes('monitor'));
}

describe.each([
  // Changes through the addon's watcher, reads through its route dump.
  { via: 'netlink', addon: nativeAddon, dump: nativeAddon },
  // Neither: `ip monitor` and `ip -json` reads.
  { via: 'ip monitor', addon: undefined, dump: undefined },
] as const)('NextHopWatch through $via (RFC 4271 §9.1.2.1)', ({ via, addon, dump }) => {
  it('sees a next hop become unreachable when the non-BGP route to it goes, and reachable on a new address', async () => {
    await ipIn(ns, ['route', 'add', '10.9.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
    await ipIn(ns, ['-6', 'route', 'add', 'fd00:9::/64', 'via', 'fd00::2', 'proto', 'static']);
    const { watch, lines, changes } = await startWatch({ addon, dump });
    try {
      expect(watch.via).toBe(via);
      expect((await ipMonitors()).length).toBe(via === 'netlink' ? 0 : 1);
      expect([watch.resolve('10.9.0.5'), watch.resolve('fd00:9::5')]).toEqual(['reachable', 'reachable']);
      // Far inside the 30 s poll: only a reported change explains a re-read this soon.
      await ipIn(ns, ['route', 'del', '10.9.0.0/24']);
      await until('10.9.0.5 unreachable', () => watch.resolve('10.9.0.5') === 'unreachable', 10_000);
      await ipIn(ns, ['-6', 'route', 'del', 'fd00:9::/64']);
      await until('fd00:9::5 unreachable', () => watch.resolve('fd00:9::5') === 'unreachable', 10_000);
      await ipIn(ns, ['addr', 'add', '198.51.100.1/24', 'dev', 'va']);
      await until('198.51.100.7 reachable on the new subnet', () => watch.resolve('198.51.100.7') === 'reachable', 10_000);
      expect(changes()).toBeGreaterThanOrEqual(3);
      expect(lines.join('')).not.toContain('unavailable');
    } finally {
      watch.stop();
      await ipIn(ns, ['addr', 'flush', 'to', '198.51.100.0/24']);
      for (const family of ['-4', '-6']) await ipIn(ns, [family, 'route', 'flush', 'proto', 'static']);
    }
    await until('no ip monitor left behind', async () => (await ipMonitors()).length === 0, 5_000);
  });
});

describe('NextHopWatch, netlink', () => {
  it('reads everything again when notifications were lost (ENOBUFS)', async () => {
    const { watch, lines } = await startWatch({ addon: nativeAddon, receiveBuffer: 1 });
    try {
      expect(watch.resolve('10.8.0.1')).toBe('unreachable');
      // Written while our event loop is blocked: the tiny buffer overruns before anything is read.
      execaSync('ip', ['-n', ns, '-batch', '-'], { input: Array.from({ length: 256 }, (_, i) => `route add 10.8.${i}.0/24 via 192.0.2.2 proto static`).join('\n') });
      await until('the loss logged', () => lines.join('').includes('kernel change notifications were lost'), 10_000);
      await until('the last route of the burst read', () => watch.resolve('10.8.255.1') === 'reachable', 10_000);
    } finally {
      watch.stop();
      await ipIn(ns, ['route', 'flush', 'proto', 'static']);
    }
  });

  it('reads routes through the addon\'s dump, and through ip when the dump fails, saying so', async () => {
    await ipIn(ns, ['route', 'add', '10.9.0.0/24', 'via', '192.0.2.2', 'proto', 'static']);
    let dumps = 0;
    let failing = false;
    const { watch, lines } = await startWatch({
      addon: nativeAddon,
      dump: () => ({
        routeDump: (path, skip) => {
          dumps++;
          return failing ? Promise.reject(new Error('route dump: recv: No buffer space available')) : nativeAddon().routeDump(path, skip);
        },
      }),
    });
    try {
      expect(dumps).toBe(1);
      expect(watch.resolve('10.9.0.5')).toBe('reachable');
      failing = true;
      await ipIn(ns, ['route', 'del', '10.9.0.0/24']);
      await until('10.9.0.5 unreachable, read through ip', () => watch.resolve('10.9.0.5') === 'unreachable', 10_000);
      expect(dumps).toBe(2);
      expect(lines.filter((l) => l.includes('native route dump failed') && l.includes('No buffer space available'))).toHaveLength(1);
    } finally {
      watch.stop();
      await ipIn(ns, ['route', 'flush', 'proto', 'static']);
    }
    const { watch: without, lines: said } = await startWatch({
      addon: nativeAddon,
      dump: () => {
        throw new Error('lightly native addon not built');
      },
    });
    without.stop();
    expect(said.filter((l) => l.includes('native route dump unavailable') && l.includes('not built'))).toHaveLength(1);
  });

  it('falls back to ip monitor, and says why, when the addon cannot be had', async () => {
    const { watch, lines } = await startWatch({
      addon: () => {
        throw new Error('lightly native addon not built');
      },
    });
    try {
      expect(watch.via).toBe('ip monitor');
      expect(lines.filter((l) => l.includes('netlink route watcher unavailable') && l.includes('lightly native addon not built'))).toHaveLength(1);
    } finally {
      watch.stop();
    }
  });
});

describe('NextHopWatch under link churn beside a large table of our routes', () => {
  it('spends at most about a tenth of the time reading the kernel while pods come and go', async () => {
    // Each read streams the whole main table through ip, our routes included (dropped unparsed):
    // 20,000 of them here, every veth pair coming or going a change.
    execaSync('ip', ['-n', ns, '-batch', '-'], { input: Array.from({ length: 20_000 }, (_, i) => `route add 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 via 192.0.2.2 proto 201`).join('\n') });
    const { watch } = await startWatch({ addon: nativeAddon });
    try {
      const before = { reads: watch.reads, ms: watch.readingMs };
      const start = performance.now();
      for (let i = 0; i < 30; i++) {
        await ipIn(ns, ['link', 'add', `ch${i}`, 'type', 'veth', 'peer', 'name', `chp${i}`]);
        await ipIn(ns, ['link', 'del', `ch${i}`]);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const window = performance.now() - start;
      const reads = watch.reads - before.reads;
      const spent = watch.readingMs - before.ms;
      console.log(JSON.stringify({ windowMs: Math.round(window), reads, readingMs: Math.round(spent) }));
      expect(reads).toBeGreaterThan(0);
      // A tenth of the window, plus the read under way when it ended and one more of slack.
      expect(spent).toBeLessThan(window * 0.1 + 2 * (spent / reads) + 100);
    } finally {
      watch.stop();
      await ipIn(ns, ['route', 'flush', 'proto', '201']);
    }
  }, 60_000);
});
