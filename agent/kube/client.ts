// The agent's few Kubernetes API calls over node:http(s): every request has an idle deadline (a hung
// API server is an error, not a wait forever) and bodies are parsed as plain JSON (no generated model
// classes: those doubled the memory of a Node list).
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import type { ApiEndpoint } from './kubeconfig.js';

export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    message: string,
    /** The HTTP status, or 0 when there was no answer (refused, reset, timed out). */
    readonly code: number,
  ) {
    super(message);
  }
}

export interface KubeResponse {
  status: number;
  body: any;
}

export interface WatchHandle {
  /** Settles when the stream ends (resolves: the server closed it) or fails (rejects). */
  done: Promise<void>;
  abort(): void;
}

export class KubeClient {
  private readonly agent?: Agent;

  constructor(
    private readonly endpoint: ApiEndpoint,
    /** No byte for this long fails a request. */
    private readonly idleMs = 15_000,
  ) {
    if (endpoint.server.startsWith('https:')) {
      this.agent = new Agent({
        keepAlive: true,
        ...(endpoint.ca ? { ca: endpoint.ca } : {}),
        ...(endpoint.cert ? { cert: endpoint.cert } : {}),
        ...(endpoint.key ? { key: endpoint.key } : {}),
        ...(endpoint.tlsServerName ? { servername: endpoint.tlsServerName } : {}),
        rejectUnauthorized: !endpoint.insecureSkipTLSVerify,
      });
    }
  }

  private async open(method: string, path: string, headers: Record<string, string>, idleMs: number): Promise<ReturnType<typeof httpRequest>> {
    const url = new URL(this.endpoint.server.replace(/\/$/, '') + path);
    let token: string | undefined;
    try {
      token = this.endpoint.token?.();
    } catch (err) {
      throw new KubeApiError(`cannot read the API token: ${(err as Error).message}`, 0);
    }
    const options = { method, timeout: idleMs, headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } };
    // Plain HTTP is only for tests and the lab.
    const req = this.agent ? httpsRequest(url, { ...options, agent: this.agent }) : httpRequest(url, options);
    req.on('timeout', () => req.destroy(new KubeApiError(`${method} ${url.pathname}: no answer for ${idleMs} ms`, 0)));
    req.on('socket', (socket) => socket.setKeepAlive(true, 30_000));
    return req;
  }

  /** One call; any answer is returned (the caller decides about 404 or 409); no answer throws KubeApiError. */
  async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<KubeResponse> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = await this.open(method, path, text === undefined ? {} : { 'content-type': contentType }, this.idleMs);
    return new Promise<KubeResponse>((resolve, reject) => {
      req.on('error', (err) => reject(err instanceof KubeApiError ? err : new KubeApiError(`${method} ${path}: ${err.message}`, 0)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(new KubeApiError(`${method} ${path}: ${err.message}`, 0)));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = raw ? JSON.parse(raw) : undefined;
          } catch {
            parsed = raw;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.end(text);
    });
  }

  /** Like request, but a status of 400 or more throws KubeApiError with that status. */
  async call(method: string, path: string, body?: unknown, contentType?: string): Promise<any> {
    const res = await this.request(method, path, body, contentType);
    if (res.status >= 400) throw new KubeApiError(`${method} ${path}: ${res.status} ${res.body?.message ?? ''}`.trim(), res.status);
    return res.body;
  }

  /**
   * A watch stream: `onEvent` gets each line's event. The server ends it after timeoutSeconds; silence
   * for longer than that (plus a margin) is a dead connection.
   */
  async watch(path: string, params: Record<string, string>, onEvent: (event: { type: string; object: any }) => void): Promise<WatchHandle> {
    const query = new URLSearchParams({ ...params, watch: 'true' }).toString();
    const timeoutSeconds = Number(params.timeoutSeconds ?? 300);
    // The usual deadline until the server answers; then silence may last until its own timeout.
    const req = await this.open('GET', `${path}?${query}`, {}, this.idleMs);
    let res: IncomingMessage | undefined;
    const done = new Promise<void>((resolve, reject) => {
      req.on('error', (err) => reject(err instanceof KubeApiError ? err : new KubeApiError(`watch ${path}: ${err.message}`, 0)));
      req.on('response', (response) => {
        res = response;
        req.setTimeout((timeoutSeconds + 30) * 1000);
        if ((response.statusCode ?? 0) >= 400) {
          response.resume();
          reject(new KubeApiError(`watch ${path}: ${response.statusCode}`, response.statusCode ?? 0));
          return;
        }
        let buffered = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          buffered += chunk;
          let newline: number;
          while ((newline = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, newline);
            buffered = buffered.slice(newline + 1);
            if (!line.trim()) continue;
            try {
              onEvent(JSON.parse(line) as { type: string; object: any });
            } catch (err) {
              req.destroy(err instanceof KubeApiError ? err : new KubeApiError(`watch ${path}: ${(err as Error).message}`, 0));
              return;
            }
          }
        });
        response.on('end', () => resolve());
        response.on('error', (err) => reject(new KubeApiError(`watch ${path}: ${err.message}`, 0)));
        response.on('aborted', () => reject(new KubeApiError(`watch ${path}: connection lost`, 0)));
      });
      req.end();
    });
    return {
      done,
      abort: () => {
        res?.destroy();
        req.destroy();
      },
    };
  }
}
