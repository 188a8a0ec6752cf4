// The CNI server: runs plugin invocations in one long-lived process, so an ADD costs no Node start-up.
//
// Why loopback TCP and not a unix socket: the `lightly` shim is plain bash, which reaches TCP through
// /dev/tcp with builtins only (no extra process), but cannot open a unix socket. Any local process
// may connect to the port, and may bind it once we are gone, so both sides authenticate with secrets
// from the root-only address file (see wire.ts), and nothing is buffered beyond a short hello line
// before the token is checked. Connections are capped, and every stage of one has a deadline.
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { run } from './cni.js';
import { PersistentIpRunner } from './ip-runner.js';
import { ShellIpLauncher, launchedRunner } from './ip-launcher.js';
import { type PodIpRunners, namedNetns } from './dataplane.js';
import { type CniStats, errorCodeOf } from './stats.js';
import {
  MAX_LINE_BYTES,
  type Frame,
  type Outcome,
  type Request,
  ProtocolError,
  encodeReply,
  newSecret,
  parseFrame,
  parseHello,
  splitBody,
} from './wire.js';

/** Connections at once; past this the oldest one still unauthenticated is dropped to make room. */
export const MAX_CONNECTIONS = 64;
/** From connect to a complete request; the shim writes all of it at once. */
const REQUEST_DEADLINE_MS = 5_000;

export type Handler = (request: Request) => Promise<Outcome>;

export interface CniServer {
  port: number;
  /** Open connections and the bytes buffered for them, for tests of the bounds. */
  load(): { connections: number; bufferedBytes: number };
  close(): Promise<void>;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The plugin in this process. A pod namespace this process cannot see as the runtime does (any
 * path but a named one under /run/netns, which the DaemonSet shares; /proc/PID/… would name
 * another process here) is handed back to the shim, which runs the plugin where the runtime is.
 */
function pluginHandler(stats?: CniStats): { handle: Handler; close(): void } {
  const hostIp = new PersistentIpRunner();
  const launcher = new ShellIpLauncher();
  const podIp: PodIpRunners = (netnsPath) => launchedRunner(launcher, ['-n', namedNetns(netnsPath)!]);
  const netnsReachable = (path: string): boolean => namedNetns(path) !== undefined && existsSync(path);
  // Read once: every access to process.env crosses into C++, tens of µs for a whole copy.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CNI_')));
  const handle: Handler = async ({ env, stdin }) => {
    const started = performance.now();
    const { stdout, exitCode, elsewhere } = await run({ ...inherited, ...env }, stdin, { hostIp, podIp, netnsReachable });
    if (elsewhere) return 'fallback'; // the shim runs it, and the time is not ours
    stats?.record(env.CNI_COMMAND ?? 'none', (performance.now() - started) / 1000, exitCode === 0 ? undefined : errorCodeOf(stdout));
    return { exitCode: exitCode === 0 ? 0 : 1, stdout: stdout ? `${stdout}\n` : '' };
  };
  return {
    handle,
    close: () => {
      hostIp.close();
      launcher.close();
    },
  };
}

/** Ports tried, at random: below 1024, in a stretch few services use. */
const PORT_RANGE = [700, 1024] as const;
const PORT_TRIES = 64;

/**
 * Listens on 127.0.0.1 at a port only root may bind (below ip_unprivileged_port_start). Why: after a
 * SIGKILL the address file still names the port, and a process that bound a free one could take
 * every shim's request (token and pod included) and never accept or read it; bash's connect and
 * write have no timeout, so the shim would wait for the kernel's SYN retries (~2 min). On a port
 * it cannot bind, nothing but the next server ever listens.
 */
async function listenPrivileged(server: Server): Promise<number> {
  const unprivileged = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
  const [low, high] = [PORT_RANGE[0], Math.min(PORT_RANGE[1], unprivileged)];
  if (!(high > low)) throw new Error(`ip_unprivileged_port_start is ${unprivileged}: no port here that only root can bind`);
  for (let i = 0; i < PORT_TRIES; i++) {
    const port = low + randomInt(high - low);
    const bound = await new Promise<boolean>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err));
      server.once('error', onError);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', onError);
        resolve(true);
      });
    });
    if (bound) return port;
  }
  throw new Error(`no free port in ${PORT_RANGE.join('-')} after ${PORT_TRIES} tries`);
}

interface Connection {
  socket: Socket;
  authenticated: boolean;
  buffered: number;
}

/**
 * Serves on 127.0.0.1 (of the current network namespace) at a port only root may bind, and writes
 * "port token secret" to addrFile (0600), both secrets new on every start. `handler` replaces the
 * plugin in tests; `stats` counts the plugin's answers.
 */
export async function startCniServer(addrFile: string, handler?: Handler, stats?: CniStats): Promise<CniServer> {
  const token = newSecret(randomBytes);
  const secret = newSecret(randomBytes);
  const plugin = handler ? undefined : pluginHandler(stats);
  const handle = handler ?? plugin!.handle;
  const connections = new Set<Connection>();

  /** Makes room for one more connection, dropping the oldest unauthenticated one if need be. */
  const admit = (): boolean => {
    if (connections.size < MAX_CONNECTIONS) return true;
    const victim = [...connections].find((c) => !c.authenticated);
    if (!victim) return false;
    victim.socket.destroy();
    connections.delete(victim);
    return true;
  };

  const serve = (socket: Socket): void => {
    const conn: Connection = { socket, authenticated: false, buffered: 0 };
    if (!admit()) {
      socket.destroy();
      return;
    }
    connections.add(conn);
    const drop = (): void => {
      connections.delete(conn);
      socket.destroy();
    };
    socket.on('error', drop);
    socket.on('close', () => connections.delete(conn));
    const deadline = setTimeout(drop, REQUEST_DEADLINE_MS);
    socket.on('close', () => clearTimeout(deadline));

    let pending = Buffer.alloc(0);
    let frame: Frame | undefined;
    const body: Buffer[] = [];
    let bodyBytes = 0;

    /** Takes one header line from `pending`; undefined until it is complete. */
    const takeLine = (): string | undefined => {
      const end = pending.indexOf(0x0a);
      if (end < 0) {
        if (pending.length > MAX_LINE_BYTES) throw new ProtocolError('header line too long');
        return undefined;
      }
      if (end > MAX_LINE_BYTES) throw new ProtocolError('header line too long');
      const line = pending.subarray(0, end).toString('latin1');
      pending = pending.subarray(end + 1);
      return line;
    };

    const onData = (chunk: Buffer): void => {
      try {
        if (!frame) {
          pending = Buffer.concat([pending, chunk]);
          if (!conn.authenticated) {
            const hello = takeLine();
            if (hello === undefined) return void (conn.buffered = pending.length);
            if (!sameSecret(parseHello(hello), token)) throw new ProtocolError('wrong token');
            conn.authenticated = true;
          }
          const lengths = takeLine();
          if (lengths === undefined) return void (conn.buffered = pending.length);
          frame = parseFrame(lengths);
          chunk = pending;
          pending = Buffer.alloc(0);
        }
        bodyBytes += chunk.length;
        if (bodyBytes > frame.total) throw new ProtocolError('more bytes than the frame announced');
        body.push(chunk);
        conn.buffered = bodyBytes;
        if (bodyBytes < frame.total) return;
      } catch {
        drop();
        return;
      }
      socket.off('data', onData);
      clearTimeout(deadline);
      const request = splitBody(frame, Buffer.concat(body));
      void handle(request)
        .catch((err: unknown) => {
          // The plugin turns its own failures into CNI errors; anything escaping is ours: let the shim decide.
          process.stderr.write(JSON.stringify({ level: 50, msg: 'cni server handler failed', err: String(err) }) + '\n');
          return 'fallback' as const;
        })
        .then((outcome) => socket.end(encodeReply(secret, outcome)));
    };
    socket.on('data', onData);
  };

  const server: Server = createServer(serve);
  const port = await listenPrivileged(server);
  mkdirSync(dirname(addrFile), { recursive: true, mode: 0o700 });
  const tmp = `${addrFile}.tmp-${process.pid}`;
  writeFileSync(tmp, `${port} ${token} ${secret}\n`, { mode: 0o600 });
  renameSync(tmp, addrFile);
  return {
    port,
    load: () => ({ connections: connections.size, bufferedBytes: [...connections].reduce((n, c) => n + c.buffered, 0) }),
    close: () =>
      new Promise<void>((resolve) => {
        rmSync(addrFile, { force: true });
        plugin?.close();
        for (const c of connections) c.socket.destroy();
        server.close(() => resolve());
      }),
  };
}
