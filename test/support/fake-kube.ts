// An in-process fake Kubernetes API: list, watch (with real resourceVersions) and status patch for
// Nodes and Lightly's CRDs, enough for @kubernetes/client-node informers. Loopback only.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> }; [k: string]: any };
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface Collection {
  listKind: string;
  items: Map<string, Obj>;
  events: { rv: number; type: EventType; object: Obj }[];
  watchers: Set<ServerResponse>;
}

const COLLECTIONS: Record<string, { apiVersion: string; kind: string }> = {
  '/api/v1/nodes': { apiVersion: 'v1', kind: 'Node' },
  '/apis/lightly.dev/v1alpha1/bgppeers': { apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPPeer' },
  '/apis/lightly.dev/v1alpha1/bgpconfigurations': { apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPConfiguration' },
};

export class FakeKube {
  private server?: Server;
  private rv = 100;
  private readonly collections = new Map<string, Collection>();
  /** Every POST (create) received, for assertions. */
  readonly creates: { path: string; body: any }[] = [];
  /** Every PATCH received, for assertions. */
  readonly patches: { path: string; contentType: string; body: any }[] = [];
  port = 0;

  constructor() {
    for (const [path, meta] of Object.entries(COLLECTIONS)) {
      this.collections.set(path, { listKind: `${meta.kind}List`, items: new Map(), events: [], watchers: new Set() });
    }
  }

  host = '127.0.0.1';
  private control?: Server;

  /**
   * Listens on host:port (loopback and a free port by default). With `controlSocket`, the same API is
   * also served on that unix socket: a test in another network namespace drives it through the file system.
   */
  async start(options: { host?: string; port?: number; controlSocket?: string } = {}): Promise<void> {
    this.host = options.host ?? '127.0.0.1';
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(options.port ?? 0, this.host, () => resolve()));
    this.port = (this.server.address() as { port: number }).port;
    if (options.controlSocket) {
      this.control = createServer((req, res) => this.handle(req, res));
      await new Promise<void>((resolve) => this.control!.listen(options.controlSocket, () => resolve()));
    }
  }

  async stop(): Promise<void> {
    for (const c of this.collections.values()) for (const w of c.watchers) w.end();
    for (const server of [this.server, this.control]) {
      server?.closeAllConnections();
      await new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
    }
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    // Plain HTTP on loopback: client-node 1.4 wants skipTLSVerify set for it.
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://${this.host}:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'fake', token: 'fake-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** A kubeconfig file's text for a separate process (the agent binary). */
  kubeConfigYaml(): string {
    return `apiVersion: v1
kind: Config
clusters: [{ name: fake, cluster: { server: "http://${this.host}:${this.port}", insecure-skip-tls-verify: true } }]
users: [{ name: fake, user: { token: fake-token } }]
contexts: [{ name: fake, context: { cluster: fake, user: fake } }]
current-context: fake
`;
  }

  // ---- test-side mutations ----
  upsert(path: string, object: Omit<Obj, 'apiVersion' | 'kind'>): Obj {
    const c = this.collections.get(path)!;
    const meta = COLLECTIONS[path]!;
    const full = { apiVersion: meta.apiVersion, kind: meta.kind, ...object, metadata: { ...object.metadata, resourceVersion: String(++this.rv) } } as Obj;
    const type: EventType = c.items.has(full.metadata.name) ? 'MODIFIED' : 'ADDED';
    c.items.set(full.metadata.name, full);
    this.emit(c, type, full);
    return full;
  }

  remove(path: string, name: string): void {
    const c = this.collections.get(path)!;
    const existing = c.items.get(name);
    if (!existing) return;
    c.items.delete(name);
    this.emit(c, 'DELETED', { ...existing, metadata: { ...existing.metadata, resourceVersion: String(++this.rv) } });
  }

  get(path: string, name: string): Obj | undefined {
    return this.collections.get(path)!.items.get(name);
  }

  private emit(c: Collection, type: EventType, object: Obj): void {
    c.events.push({ rv: this.rv, type, object });
    for (const w of c.watchers) w.write(JSON.stringify({ type, object }) + '\n');
  }

  // ---- HTTP ----
  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname;
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const collection = this.collections.get(path);
    if (req.method === 'GET' && collection) {
      const watch = url.searchParams.get('watch');
      if (watch === 'true' || watch === '1') {
        const since = Number(url.searchParams.get('resourceVersion') ?? 0);
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        res.flushHeaders(); // a watch client waits for the headers before it counts as started
        for (const e of collection.events) if (e.rv > since) res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
        collection.watchers.add(res);
        req.on('close', () => collection.watchers.delete(res));
        return;
      }
      json(200, { apiVersion: COLLECTIONS[path]!.apiVersion, kind: collection.listKind, metadata: { resourceVersion: String(this.rv) }, items: [...collection.items.values()] });
      return;
    }
    if (req.method === 'POST' && collection) {
      readBody(req, (body) => {
        const name = body?.metadata?.name;
        if (typeof name !== 'string' || !name) return json(422, { kind: 'Status', code: 422, reason: 'Invalid', message: 'metadata.name is required' });
        if (collection.items.has(name)) return json(409, { kind: 'Status', code: 409, reason: 'AlreadyExists', message: `${name} already exists` });
        const { apiVersion: _a, kind: _k, ...rest } = body;
        this.creates.push({ path, body });
        json(201, this.upsert(path, rest));
      });
      return;
    }
    const item = /^(.*)\/([^/]+)\/status$/.exec(path) ?? /^(.*)\/([^/]+)$/.exec(path);
    const owner = item ? this.collections.get(item[1]!) : undefined;
    if (item && owner) {
      const existing = owner.items.get(item[2]!);
      if (!existing) return json(404, { kind: 'Status', code: 404, reason: 'NotFound', message: `${item[2]} not found` });
      if (req.method === 'GET') return json(200, existing);
      if (req.method === 'DELETE') {
        this.remove(item[1]!, item[2]!);
        return json(200, { kind: 'Status', status: 'Success' });
      }
      if (req.method === 'PUT') {
        readBody(req, (body) => {
          const { apiVersion: _a, kind: _k, ...rest } = body;
          json(200, this.upsert(item[1]!, rest));
        });
        return;
      }
      if (req.method === 'PATCH') {
        readBody(req, (patch) => {
          const contentType = req.headers['content-type'] ?? '';
          this.patches.push({ path, contentType, body: patch });
          const updated = structuredClone(existing);
          if (patch.status?.conditions) {
            // strategic merge: conditions merge by type
            const conditions: any[] = updated.status?.conditions ?? [];
            for (const cond of patch.status.conditions) {
              const at = conditions.findIndex((c) => c.type === cond.type);
              if (at >= 0) conditions[at] = { ...conditions[at], ...cond };
              else conditions.push(cond);
            }
            updated.status = { ...updated.status, conditions };
          }
          const { apiVersion: _a, kind: _k, ...rest } = updated;
          json(200, this.upsert(item[1]!, rest));
        });
        return;
      }
    }
    json(404, { kind: 'Status', code: 404, reason: 'NotFound', message: `no route for ${req.method} ${path}` });
  }
}

function readBody(req: IncomingMessage, then: (body: any) => void): void {
  let text = '';
  req.on('data', (c: Buffer) => (text += c));
  req.on('end', () => then(text ? JSON.parse(text) : undefined));
}

export const NODES = '/api/v1/nodes';
export const BGP_PEERS = '/apis/lightly.dev/v1alpha1/bgppeers';
export const BGP_CONFIGURATIONS = '/apis/lightly.dev/v1alpha1/bgpconfigurations';

export function nodeObject(name: string, address: string, podCIDR?: string, labels: Record<string, string> = {}) {
  return {
    metadata: { name, labels },
    spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {},
    status: { addresses: [{ type: 'InternalIP', address }, { type: 'Hostname', address: name }], conditions: [] },
  };
}

/** One API call over a fake's control socket (a fake in another network namespace). */
export function fakeKubeRequest(socketPath: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { 'content-type': 'application/json' }, timeout: 5_000 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 5 s`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
