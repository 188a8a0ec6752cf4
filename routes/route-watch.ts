// Tells when the kernel's routes, addresses or links change, our own routes aside: the addon's rtnetlink
// watcher (native/route_watch.c, our protocol dropped in the kernel), or `ip monitor` when it cannot be had.
import { execa, type ResultPromise } from 'execa';
import { ROUTE_PROTOCOL, ROUTE_PROTOCOL_NAME } from './protocol-number.js';
import { netnsPath } from './netlink.js';

/** What the watcher hands over per readable burst: counts of the messages that passed its filter. */
export interface RouteWatchEvent {
  /** Route messages of other protocols. */
  routes: number;
  /**
   * Route messages of the watched protocol (ours) that passed: only with `ownPorts`, someone else's
   * change of our routes (never counted in `routes`: they decide no reachability).
   */
  ownProtocolRoutes: number;
  addresses: number;
  links: number;
  /** The socket's buffer overran (ENOBUFS): notifications were lost, so read everything again. */
  overflowed: boolean;
  /** The socket failed and the watcher stopped reading. */
  error?: string;
}

export interface RouteWatchOptions {
  /** Route messages of this protocol are dropped in the kernel (ours: ROUTE_PROTOCOL). */
  protocol: number;
  /**
   * Our route writer's netlink port ids (at most 16): then only the messages of `protocol` that it
   * (or the kernel itself, port 0) caused are dropped, and device routes (the CNI plugin's); the rest
   * pass as `ownProtocolRoutes`. Without: every message of `protocol` is dropped.
   */
  ownPorts?: number[];
  /** Watch inside the namespace at this path (e.g. /var/run/netns/NAME); default: our own. */
  netnsPath?: string;
  /** Receive buffer in bytes (default 4 MiB); tests make it tiny to force an overflow. */
  receiveBuffer?: number;
}

declare const watchHandle: unique symbol;
/** An open watcher, for routeWatchClose. */
export type RouteWatchHandle = { readonly [watchHandle]: true };

/** What native/route_watch.c exports (the addon is handed in, as for routes/netlink.ts). */
export interface RouteWatchApi {
  /** Throws when the socket cannot be made. The watcher does not keep the process alive. */
  routeWatchOpen(onEvent: (event: RouteWatchEvent) => void, options: RouteWatchOptions): RouteWatchHandle;
  /** Stops the watcher and closes its socket; again does nothing. */
  routeWatchClose(handle: RouteWatchHandle): void;
  /** Filters with these port ids from now on (our writer reopened), or none (null). Throws once closed. */
  routeWatchSetOwnPorts(handle: RouteWatchHandle, ownPorts: number[] | null): void;
}

/** Why the kernel should be read again: something changed, or changes were lost. */
export type KernelChange = 'changed' | 'lost';

/** What a burst of the watcher asks for (pure). */
export function changeOf(event: RouteWatchEvent): KernelChange | undefined {
  if (event.overflowed || event.error) return 'lost';
  return event.routes + event.addresses + event.links > 0 ? 'changed' : undefined;
}

/** Whether a chunk of `ip monitor` text has a line about something other than our own routes (pure). */
export function monitorChunkRelevant(chunk: string): boolean {
  return chunk.split('\n').some((line) => line.trim() && !line.includes(`proto ${ROUTE_PROTOCOL_NAME}`) && !line.includes(`proto ${ROUTE_PROTOCOL}`));
}

export interface KernelWatchOptions {
  /** The addon (`nativeAddon` of native/native.ts); without it, or when it fails, `ip monitor`. */
  addon?: () => RouteWatchApi;
  /** Watch inside this named namespace; default: our own. */
  netns?: string;
  /** Tests only: the watcher's receive buffer. */
  receiveBuffer?: number;
  onChange(change: KernelChange): void;
  /** The addon's watcher could not be had or failed: `ip monitor` from now on. */
  onFallback?(err: Error): void;
  /** `ip monitor` ended: no more changes will be reported. */
  onEnded?(exitCode: number | undefined): void;
}

export interface KernelWatch {
  readonly via: 'netlink' | 'ip monitor';
  close(): void;
}

/** Starts watching: the addon's watcher if it opens, else `ip monitor`. */
export function watchKernelChanges(options: KernelWatchOptions): KernelWatch {
  let current: KernelWatch | undefined;
  let closed = false;
  const fallBack = (err: Error): void => {
    current?.close();
    options.onFallback?.(err);
    if (!closed) current = monitorWatch(options);
  };
  if (options.addon) {
    try {
      current = netlinkWatch(options.addon(), options, (error) => {
        fallBack(new Error(error));
        options.onChange('lost'); // the socket died at some point: what it missed is read again
      });
    } catch (err) {
      fallBack(err as Error);
    }
  } else {
    current = monitorWatch(options);
  }
  return {
    get via() {
      return current!.via;
    },
    close: () => {
      closed = true;
      current?.close();
    },
  };
}

/** An open addon watcher: its events until it fails (then closed, and `onFailed` told once) or is closed. */
export interface OpenRouteWatch {
  readonly handle: RouteWatchHandle;
  readonly open: boolean;
  close(): void;
}

/** Opens the addon's watcher (throws when the socket cannot be made), inside the named namespace if given. */
export function openRouteWatch(
  addon: RouteWatchApi,
  options: Omit<RouteWatchOptions, 'netnsPath'> & { netns?: string },
  onEvent: (event: RouteWatchEvent) => void,
  onFailed: (error: string) => void,
): OpenRouteWatch {
  const { netns, ...rest } = options;
  let open = true;
  const handle = addon.routeWatchOpen(
    (event) => {
      if (!open) return;
      if (event.error) {
        open = false;
        addon.routeWatchClose(handle);
        onFailed(event.error);
      } else onEvent(event);
    },
    { ...rest, netnsPath: netnsPath(netns) },
  );
  return {
    handle,
    get open() {
      return open;
    },
    close: () => {
      open = false;
      addon.routeWatchClose(handle);
    },
  };
}

function netlinkWatch(addon: RouteWatchApi, options: KernelWatchOptions, onFailed: (error: string) => void): KernelWatch {
  const watch = openRouteWatch(
    addon,
    { protocol: ROUTE_PROTOCOL, netns: options.netns, receiveBuffer: options.receiveBuffer },
    (event) => {
      const change = changeOf(event);
      if (change) options.onChange(change);
    },
    onFailed,
  );
  return { via: 'netlink', close: () => watch.close() };
}

function monitorWatch(options: KernelWatchOptions): KernelWatch {
  let stopped = false;
  const args = [...(options.netns ? ['-n', options.netns] : []), 'monitor', 'route', 'address'];
  const monitor: ResultPromise = execa('ip', args, { buffer: false, reject: false, cleanup: true });
  monitor.stdout?.setEncoding('utf8');
  monitor.stdout?.on('data', (chunk: string) => {
    if (monitorChunkRelevant(chunk)) options.onChange('changed');
  });
  void monitor.then((r) => {
    if (!stopped) options.onEnded?.(r.exitCode);
  });
  return {
    via: 'ip monitor',
    close: () => {
      stopped = true;
      monitor.kill();
    },
  };
}
