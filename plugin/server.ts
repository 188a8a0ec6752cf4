// The CNI server: runs plugin invocations in one long-lived process, so an ADD costs no Node start-up.
//
// Why loopback TCP and not a unix socket: the `lightly` shim is plain bash, which reaches TCP through
// /dev/tcp with builtins only (no extra process), but cannot open a unix socket. Only root can read
// the address file, and a request without its token is refused, so other local users gain nothing
// from the port being open.
//
// Wire format, request:  "LIGHTLY-CNI 1 <token>\n" then "KEY=VALUE\n" lines for CNI_* and a blank
// line, then "<n>\n" and n bytes of stdin. Reply: "<exit code>\n" then the plugin's stdout; close.
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { run } from './cni.js';
import { PersistentIpRunner } from './ip-runner.js';
import { ShellIpLauncher, launchedRunner } from './ip-launcher.js';
import { type PodIpRunners, ipIntoNetns, spawnPodIp } from './dataplane.js';

const MAX_REQUEST_BYTES = 1 << 20;
const PASSED_ENV = /^CNI_[A-Z]+$/;

export interface CniServer {
  port: number;
  close(): Promise<void>;
}

interface ParsedRequest {
  token: string;
  env: Record<string, string>;
  stdin: string;
}

/** Returns the request once complete, undefined while bytes are missing; throws on a malformed one. */
export function parseRequest(buf: Buffer): ParsedRequest | undefined {
  const text = buf.toString('latin1');
  const headerEnd = text.indexOf('\n\n');
  if (headerEnd < 0) return undefined;
  const lines = text.slice(0, headerEnd).split('\n');
  const hello = /^LIGHTLY-CNI 1 (\S+)$/.exec(lines[0] ?? '');
  if (!hello) throw new Error('not a lightly CNI request');
  const env: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    if (eq > 0 && PASSED_ENV.test(key)) env[key] = line.slice(eq + 1);
  }
  const lengthEnd = text.indexOf('\n', headerEnd + 2);
  if (lengthEnd < 0) return undefined;
  const length = Number(text.slice(headerEnd + 2, lengthEnd));
  if (!Number.isInteger(length) || length < 0 || length > MAX_REQUEST_BYTES) throw new Error('bad stdin length');
  const body = buf.subarray(lengthEnd + 1);
  if (body.length < length) return undefined;
  return { token: hello[1]!, env, stdin: body.subarray(0, length).toString('utf8') };
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Serves on 127.0.0.1 (of the current network namespace) and writes "port token" to addrFile (0600). */
export async function startCniServer(addrFile: string): Promise<CniServer> {
  const token = randomBytes(18).toString('base64url');
  const hostIp = new PersistentIpRunner();
  const launcher = new ShellIpLauncher();
  const podIp: PodIpRunners = (netnsPath) => {
    const args = ipIntoNetns(netnsPath);
    // `ip -n NAME` through the shell; a namespace given by another path keeps nsenter, run directly.
    return args[0] === 'ip' && ShellIpLauncher.accepts(args.slice(1), []) ? launchedRunner(launcher, args.slice(1)) : spawnPodIp(netnsPath);
  };
  const server: Server = createServer((socket: Socket) => {
    let buf = Buffer.alloc(0);
    socket.setTimeout(30_000, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      let request: ParsedRequest | undefined;
      try {
        if (buf.length > MAX_REQUEST_BYTES + 4096) throw new Error('request too large');
        request = parseRequest(buf);
      } catch {
        socket.destroy();
        return;
      }
      if (!request) return;
      socket.removeAllListeners('data');
      if (!sameToken(request.token, token)) {
        socket.destroy();
        return;
      }
      const env = { ...process.env, ...request.env };
      void run(env, request.stdin, hostIp, podIp).then(({ stdout, exitCode }) => {
        socket.end(`${exitCode}\n${stdout ? stdout + '\n' : ''}`);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  mkdirSync(dirname(addrFile), { recursive: true, mode: 0o700 });
  const tmp = `${addrFile}.tmp-${process.pid}`;
  writeFileSync(tmp, `${port} ${token}\n`, { mode: 0o600 });
  renameSync(tmp, addrFile);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        rmSync(addrFile, { force: true });
        hostIp.close();
        launcher.close();
        server.close(() => resolve());
      }),
  };
}
