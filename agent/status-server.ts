// The agent's status API: HTTP on a unix socket that only root can open (mode 0600).
import { createServer, type Server } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { StatusSource } from './status.js';

export interface StatusServer {
  close(): Promise<void>;
}

/** A status route's handler; it reads its query from the URL. */
export type StatusRoute = (url: URL) => unknown;

export async function startStatusServer(socketPath: string, source: StatusSource, extra: Record<string, StatusRoute> = {}): Promise<StatusServer> {
  const routes: Record<string, StatusRoute> = {
    '/v1/bgp/status': () => source.bgpStatus(),
    '/v1/routes': () => source.routes(),
    '/v1/node': () => source.node(),
    ...extra,
  };
  const server: Server = createServer((req, res) => {
    const handler = req.method === 'GET' ? routes[(req.url ?? '').split('?')[0]!] : undefined;
    if (!handler) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
      return;
    }
    try {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(handler(new URL(req.url ?? '/', 'http://agent'))));
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
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
