// watchKernelChanges over a fake addon: what a burst asks of the consumer, and the fall back to `ip monitor`.
import { describe, expect, it } from 'vitest';
import { ROUTE_PROTOCOL } from './protocol-number.js';
import { watchDrift } from './drift-watch.js';
import type { RouteShell } from './reconciler.js';
import { type KernelChange, type RouteWatchApi, type RouteWatchEvent, type RouteWatchHandle, changeOf, monitorChunkRelevant, watchKernelChanges } from './route-watch.js';

const burst = (e: Partial<RouteWatchEvent>): RouteWatchEvent => ({ routes: 0, ownProtocolRoutes: 0, addresses: 0, links: 0, overflowed: false, ...e });

/** An addon whose one watcher the test drives by hand. */
function fakeAddon() {
  const state = { emit: (_e: RouteWatchEvent): void => undefined, options: undefined as unknown, closed: 0, ports: [] as (number[] | null)[] };
  const api: RouteWatchApi = {
    routeWatchOpen: (onEvent, options) => {
      state.emit = onEvent;
      state.options = options;
      return {} as RouteWatchHandle;
    },
    routeWatchClose: () => void state.closed++,
    routeWatchSetOwnPorts: (_handle, ports) => void state.ports.push(ports),
  };
  return { api, state };
}

describe('changeOf', () => {
  it('asks for a re-read on any counted message, and for a full one when messages were lost', () => {
    expect(changeOf(burst({}))).toBeUndefined();
    expect(changeOf(burst({ routes: 1 }))).toBe('changed');
    expect(changeOf(burst({ addresses: 2 }))).toBe('changed');
    expect(changeOf(burst({ links: 1 }))).toBe('changed');
    expect(changeOf(burst({ ownProtocolRoutes: 5 }))).toBeUndefined(); // someone else's change of our routes decides no reachability
    expect(changeOf(burst({ routes: 3, overflowed: true }))).toBe('lost');
    expect(changeOf(burst({ error: 'route watch: Bad file descriptor' }))).toBe('lost');
  });
});

describe('monitorChunkRelevant', () => {
  it('ignores lines about our own routes (by name or number) and keeps any other', () => {
    expect(monitorChunkRelevant(`10.1.0.0/24 via 192.0.2.2 dev va proto lightly\nDeleted 10.2.0.0/24 via 192.0.2.2 dev va proto ${ROUTE_PROTOCOL}\n`)).toBe(false);
    expect(monitorChunkRelevant('10.1.0.0/24 via 192.0.2.2 dev va proto lightly\n10.9.0.0/24 via 192.0.2.2 dev va proto static\n')).toBe(true);
    expect(monitorChunkRelevant('3: va    inet 198.51.100.1/24 scope global va\n')).toBe(true);
  });
});

describe('watchKernelChanges', () => {
  it('uses the addon’s watcher, dropping our protocol, and passes its bursts on as changes', () => {
    const { api, state } = fakeAddon();
    const seen: KernelChange[] = [];
    const watch = watchKernelChanges({ addon: () => api, netns: 'lt-x', onChange: (c) => seen.push(c) });
    expect(watch.via).toBe('netlink');
    expect(state.options).toEqual({ protocol: ROUTE_PROTOCOL, netnsPath: '/var/run/netns/lt-x', receiveBuffer: undefined });
    state.emit(burst({ routes: 1 }));
    state.emit(burst({ overflowed: true }));
    expect(seen).toEqual(['changed', 'lost']);
    watch.close();
    watch.close();
    state.emit(burst({ routes: 1 }));
    expect(seen).toEqual(['changed', 'lost']);
    expect(state.closed).toBeGreaterThan(0);
  });

  it('falls back to ip monitor, saying why once, when the addon cannot be loaded', () => {
    const why: string[] = [];
    const watch = watchKernelChanges({
      addon: () => {
        throw new Error('lightly native addon not built');
      },
      onChange: () => undefined,
      onFallback: (err) => why.push(err.message),
    });
    try {
      expect(watch.via).toBe('ip monitor');
      expect(why).toEqual(['lightly native addon not built']);
    } finally {
      watch.close();
    }
  });

  it('falls back to ip monitor when the watcher’s socket fails, and asks for a re-read of what it missed', () => {
    const { api, state } = fakeAddon();
    const seen: string[] = [];
    const watch = watchKernelChanges({ addon: () => api, onChange: (c) => seen.push(c), onFallback: (err) => seen.push(`fallback: ${err.message}`) });
    try {
      state.emit(burst({ error: 'route watch: Bad file descriptor' }));
      expect(watch.via).toBe('ip monitor');
      expect(seen).toEqual(['fallback: route watch: Bad file descriptor', 'lost']);
      expect(state.closed).toBeGreaterThan(0);
    } finally {
      watch.close();
    }
  });
});

describe('watchDrift', () => {
  const writer = (ports?: number[]): RouteShell => ({ readRoutes: async () => [], batch: async () => [], ...(ports ? { portIds: () => ports } : {}) });

  it('watches with our writer’s port ids and asks for a comparison on someone else’s change of our routes or a loss, not on other routes', () => {
    const { api, state } = fakeAddon();
    const seen: string[] = [];
    const watch = watchDrift({ addon: () => api, writer: writer([4242]), netns: 'lt-x', onDrift: (why) => seen.push(why) })!;
    expect(state.options).toEqual({ protocol: ROUTE_PROTOCOL, ownPorts: [4242], netnsPath: '/var/run/netns/lt-x' });
    state.emit(burst({ routes: 3, addresses: 1 }));
    state.emit(burst({ ownProtocolRoutes: 2 }));
    state.emit(burst({ overflowed: true }));
    expect(seen).toEqual(['changed', 'lost']);
    watch.setOwnPorts([4243]);
    watch.setOwnPorts([]);
    expect(state.ports).toEqual([[4243], null]);
    watch.close();
    state.emit(burst({ ownProtocolRoutes: 1 }));
    expect(seen).toEqual(['changed', 'lost']);
  });

  it('does not watch for a writer without port ids (ip -batch: a port per process), and says so when the watcher fails', () => {
    const { api, state } = fakeAddon();
    expect(watchDrift({ addon: () => api, writer: writer(), onDrift: () => undefined })).toBeUndefined();
    expect(state.options).toBeUndefined();
    const seen: string[] = [];
    watchDrift({ addon: () => api, writer: writer([7]), onDrift: (why) => seen.push(why), onUnavailable: (err) => seen.push(err.message) });
    state.emit(burst({ error: 'route watch: Bad file descriptor' }));
    state.emit(burst({ ownProtocolRoutes: 1 }));
    expect(seen).toEqual(['route watch: Bad file descriptor', 'lost']);
    expect(state.closed).toBe(1);
  });
});
