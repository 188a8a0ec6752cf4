// The agent's status API: HTTP on a unix socket that only root can open (mode 0600).
import { createServer, type Server } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { isIP } from 'node:net';
import type { StatusSource } from './status.js';
import { flowPortSchema } from './doctor/facts.js';

export interface StatusServer {
  close(): Promise<void>;
}

class BadRequest extends Error {}

/** `?local=IP&remote=IP[&remoteNode=IP][&port=N/proto]`: addresses only, since they end up as `ip` arguments. */
function doctorFacts(source: StatusSource, query: URLSearchParams): Promise<unknown> {
  const address = (name: string, required: boolean): string | undefined => {
    const value = query.get(name) ?? undefined;
    if (value === undefined && !required) return undefined;
    if (value === undefined || isIP(value) === 0) throw new BadRequest(`${name} must be an IP address`);
    return value;
  };
  const [local, remote, remoteNode] = [address('local', true)!, address('remote', true)!, address('remoteNode', false)];
  const port = query.get('port') ?? undefined;
  if (port !== undefined && !flowPortSchema.safeParse(port).success) throw new BadRequest('port must be N, N/tcp, N/udp or N/sctp');
  if (!source.doctorFacts) throw new BadRequest('this agent cannot gather doctor facts');
  return source.doctorFacts({ local, remote, ...(remoteNode ? { remoteNode } : {}), ...(port ? { port } : {}) });
}

/** A status route's handler; it reads its query from the URL and may answer with a promise. */
export type StatusRoute = (url: URL) => unknown;

export async function startStatusServer(socketPath: string, source: StatusSource, extra: Record<string, StatusRoute> = {}): Promise<StatusServer> {
  const routes: Record<string, StatusRoute> = {
    '/v1/bgp/status': () => source.bgpStatus(),
    '/v1/routes': () => source.routes(),
    '/v1/node': () => source.node(),
    '/v1/doctor/facts': (url) => doctorFacts(source, url.searchParams),
    ...extra,
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    const handler = req.method === 'GET' ? routes[url.pathname] : undefined;
    if (!handler) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
      return;
    }
    const fail = (err: Error): void => {
      res.writeHead(err instanceof BadRequest ? 400 : 500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message }));
    };
    try {
      Promise.resolve(handler(url)).then((body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)), fail);
    } catch (err) {
      fail(err as Error);
    }
  });
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  rmSync(socketPath, { force: true }); // a socket file left by a crashed agent
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        rmSync(socketPath, { force: true });
      }),
  };
}
