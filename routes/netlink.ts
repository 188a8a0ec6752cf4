// The thin shell around native/netlink.c: writes a chunk of route changes as rtnetlink messages on one
// socket, the kernel's refusals mapped back to the change by sequence number. Reads our routes through
// the addon's dump (native/route_dump.c), or `ip -json` when the addon has none or it fails.
import { type BatchFailure, Ip } from './ip.js';
import { type KernelRoute, type RouteWrite, renderWrite } from './desired.js';
import { NetlinkEncodeError, RouteMessageWriter, decodeErrors, describeError } from './netlink-codec.js';
import type { RouteShell } from './reconciler.js';
import { type RouteDumpApi, dumpOwnRouteSlices, madeInJs } from './route-dump.js';
import { ROUTE_PROTOCOL } from './protocol-number.js';

/**
 * What the writer needs of native/netlink.c (the addon, `nativeAddon()` in native/native.ts; routes/
 * does not load it: the agent hands it in). An NETLINK_ROUTE socket that sends caller-encoded messages.
 */
export interface NetlinkSocketApi {
  /** A NETLINK_ROUTE socket's fd, made inside the namespace at this path (e.g. /var/run/netns/NAME) if given. */
  netlinkOpen(netnsPath?: string): number;
  netlinkClose(fd: number): void;
  /** The socket's netlink port id: nlmsg_pid of the kernel's notifications of the changes it asks for. */
  netlinkPortId(fd: number): number;
  /** A link's index in the socket's namespace; 0 when there is none of that name. */
  netlinkIfIndex(fd: number, name: string): number;
  /**
   * Sends the messages on the thread pool, in pieces that each end with a message flagged NLM_F_ACK
   * (the last must be), waiting for each piece's acknowledgement; resolves with the kernel's error
   * replies (NLMSG_ERROR, error ≠ 0) concatenated. One send per fd at a time; the buffer must not change meanwhile.
   */
  netlinkSend(fd: number, messages: Buffer): Promise<Buffer>;
}

/** The path the addon enters for a named namespace (`ip netns add` makes it); none: our own. */
export const netnsPath = (netns?: string): string | undefined => (netns ? `/var/run/netns/${netns}` : undefined);

export interface NetlinkShellOptions {
  /** Write inside this named namespace (labs, tests); default: our own. */
  netns?: string;
  /** With routeDump (the real addon has it), the comparison with the kernel reads through it. */
  addon: NetlinkSocketApi & Partial<RouteDumpApi>;
  /** The dump failed and this read goes through `ip -json` (slower, the same routes). */
  onDumpFailed?(err: Error): void;
}

/**
 * Messages per acknowledged piece: the kernel answers only the last (and any refused), so a piece's
 * refusals are bounded and fit the socket's receive buffer (4 MiB asked for, ~1 KB per reply).
 */
const ACK_EVERY = 256;

export class NetlinkRouteShell implements RouteShell {
  private readonly addon: NetlinkSocketApi & Partial<RouteDumpApi>;
  private readonly netns?: string;
  private readonly onDumpFailed?: (err: Error) => void;
  private fd: number;
  private readonly ip: Ip;
  private seq = 0;
  /** Sends go one at a time on the socket; each waits for the one before. */
  private tail: Promise<unknown> = Promise.resolve();

  /** Throws when the socket cannot be opened (the caller decides what to fall back to). */
  constructor(options: NetlinkShellOptions) {
    this.addon = options.addon;
    this.netns = options.netns;
    this.onDumpFailed = options.onDumpFailed;
    this.fd = this.addon.netlinkOpen(netnsPath(options.netns));
    this.ip = new Ip({ netns: options.netns });
  }

  /**
   * The netlink port ids the kernel's notifications of our changes carry (routes/drift-watch.ts
   * tells them from someone else's by these). One socket, opened once; none once closed.
   */
  portIds(): number[] {
    return this.fd >= 0 ? [this.addon.netlinkPortId(this.fd)] : [];
  }

  /** Our routes, through `ip -json` (readRouteSlices reads them through the addon's dump). */
  readRoutes(): Promise<KernelRoute[]> {
    return this.ip.readRoutes();
  }

  /**
   * Our routes a slice at a time through the addon's dump (the kernel filters them by protocol;
   * at a million routes a tenth of `ip -json`'s CPU, and none of them kept beyond its slice);
   * through `ip -json` when the addon has no dump or it fails (the same routes, slower).
   */
  async *readRouteSlices(): AsyncIterable<KernelRoute[]> {
    let slices: AsyncGenerator<KernelRoute[], void, void> | undefined;
    let first: IteratorResult<KernelRoute[], void> | undefined;
    if (this.addon.routeDump) {
      try {
        slices = dumpOwnRouteSlices(this.addon as RouteDumpApi, ROUTE_PROTOCOL, this.netns);
        first = await slices.next(); // the dump runs here: a failure is known before anything is compared
      } catch (err) {
        slices = undefined; // read by `ip` instead: a comparison that fails would leave drift unrepaired
        this.onDumpFailed?.(err as Error);
      }
    }
    if (!slices || !first) {
      yield await this.ip.readRoutes();
      return;
    }
    if (!first.done) yield first.value;
    yield* slices;
  }

  /** Only through write(): lines of `ip` are not what this shell speaks. */
  batch(): Promise<BatchFailure[]> {
    return Promise.reject(new Error('NetlinkRouteShell writes route changes, not ip lines'));
  }

  /**
   * Encodes the changes now (a flush as one delete per prefix it covers) and sends them after the
   * previous write. A change that cannot be encoded (its link is gone) is refused without being sent.
   */
  write(changes: readonly RouteWrite[]): Promise<BatchFailure[]> {
    const writer = new RouteMessageWriter(Math.min(64 + changes.length * 56, 1 << 24));
    const base = this.seq;
    let messages = 0;
    for (const c of changes) messages += c.op === 'flush' ? (c.covers?.length ?? 1) : 1;
    /** The change (0-based) of each message, by seq - base - 1: a typed array, not a growing list per chunk. */
    const changeOf = new Uint32Array(messages);
    let encoded = 0;
    const failures: BatchFailure[] = [];
    const ifIndexOf = (dev: string): number => this.addon.netlinkIfIndex(this.fd, dev);
    // One message of change i: its sequence number. Once per change of a full table, so a plain loop
    // and this one function rather than a closure (and its context) made per change.
    const message = (i: number): number => {
      changeOf[encoded++] = i;
      if (encoded % ACK_EVERY === 0) writer.ack();
      return base + encoded;
    };
    for (let i = 0; i < changes.length; i++) {
      const c = changes[i]!;
      try {
        if (c.op === 'flush') for (const prefix of c.covers ?? [c.prefix]) writer.delete(prefix, message(i));
        else if (c.op === 'delete') writer.delete(c.prefix, message(i));
        else {
          writer.route(c.op, c.prefix, c.route!, base + encoded + 1, ifIndexOf);
          message(i);
        }
      } catch (err) {
        if (!(err instanceof NetlinkEncodeError)) throw err;
        failures.push({ line: i + 1, command: renderWrite(c), error: err.message });
      }
    }
    this.seq = (base + encoded + 1) >>> 0;
    if (encoded === 0) return Promise.resolve(failures);
    writer.ack();
    const bytes = writer.bytes();
    const sent = this.tail.then(() => this.addon.netlinkSend(this.fd, bytes));
    this.tail = sent.catch(() => undefined);
    return sent.then((replies) => {
      const refused = new Set<number>();
      for (const e of decodeErrors(madeInJs(replies))) {
        const at = (e.seq - base - 1) >>> 0;
        if (at >= encoded) continue;
        const i = changeOf[at]!;
        if (refused.has(i)) continue;
        refused.add(i);
        failures.push({ line: i + 1, command: renderWrite(changes[i]!), error: describeError(e) });
      }
      return failures.sort((a, b) => a.line - b.line);
    });
  }

  /** Closes the socket once the writes already queued are done. */
  close(): void {
    const fd = this.fd;
    if (fd >= 0) void this.tail.then(() => this.addon.netlinkClose(fd));
    this.fd = -1;
    this.ip.close();
  }
}
