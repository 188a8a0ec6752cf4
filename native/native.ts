// Loads the native addon (native/*.c): from dist/native beside a bundle, or native/build when run from source.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** What the addon exports; each part adds its functions here. */
export interface NativeAddon {}

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

/** native/netlink.c: an rtnetlink socket that sends caller-encoded messages (routes/netlink-codec.ts). */
export interface NetlinkAddon {
  /** A NETLINK_ROUTE socket's fd, made inside the namespace at this path (e.g. /var/run/netns/NAME) if given. */
  netlinkOpen(netnsPath?: string): number;
  netlinkClose(fd: number): void;
  /** A link's index in the socket's namespace; 0 when there is none of that name. */
  netlinkIfIndex(fd: number, name: string): number;
  /**
   * Sends the messages on the thread pool, in pieces that each end with a message flagged NLM_F_ACK
   * (the last must be), waiting for each piece's acknowledgement; resolves with the kernel's error
   * replies (NLMSG_ERROR, error ≠ 0) concatenated. One send per fd at a time; the buffer must not change meanwhile.
   */
  netlinkSend(fd: number, messages: Buffer): Promise<Buffer>;
}

// netlink.c's part of the addon (declaration merging keeps each part's lines apart).
export interface NativeAddon extends NetlinkAddon {}
