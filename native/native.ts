// Loads the native addon (native/*.c): from dist/native beside a bundle, or native/build when run from source.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NetlinkSocketApi } from '../routes/netlink.js';
import type { RouteWatchApi } from '../routes/route-watch.js';
import type { RouteDumpApi } from '../routes/route-dump.js';

/** What the addon exports; each part adds its functions here. */
export interface NativeAddon {
  /** tcp_md5.c: an unconnected, non-blocking TCP socket of this family, for `new net.Socket({ fd })`. */
  tcpSocket(family: 4 | 6): number;
  /** tcp_md5.c: sets (or with an empty key removes) the TCP MD5 key (RFC 2385) for a peer address on a socket. */
  setTcpMd5Key(fd: number, address: string, key: string): void;
}

const candidates = [
  // a bundle in dist/bin: the build copies the addon to dist/native
  new URL('../native/lightly_native.node', import.meta.url),
  // run from source (tsx, vitest): node-gyp's output
  new URL('./build/Release/lightly_native.node', import.meta.url),
];

let loaded: NativeAddon | undefined;

/** The addon; throws with the paths tried when it was not built (`npm run build` builds it). */
export function nativeAddon(): NativeAddon {
  if (loaded) return loaded;
  const path = candidates.map((u) => fileURLToPath(u)).find((p) => existsSync(p));
  if (!path) throw new Error(`lightly native addon not built: run npm run build (looked for ${candidates.map((u) => fileURLToPath(u)).join(', ')})`);
  loaded = createRequire(import.meta.url)(path) as NativeAddon;
  return loaded;
}

// netlink.c's part of the addon (declaration merging keeps each part's lines apart): what routes/netlink.ts uses.
export interface NativeAddon extends NetlinkSocketApi {}

// route_watch.c's part: the kernel change watcher routes/route-watch.ts uses.
export interface NativeAddon extends RouteWatchApi {}

// route_dump.c's part: the main table without our routes, for next-hop resolution (routes/route-dump.ts).
export interface NativeAddon extends RouteDumpApi {}
