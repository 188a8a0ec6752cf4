// An in-process fake Kubernetes API: list (paginated), watch (with real resourceVersions), status patch
// and Events for Nodes and Lightly's CRDs, enough for the agent's reflectors. Loopback only. It can
// go down and come back (refusing or hanging connections) while its control socket stays up.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ApiEndpoint } from '../../agent/kube/kubeconfig.js';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };
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
  '/api/v1/namespaces/default/events': { apiVersion: 'v1', kind: 'Event' },
  '/api/v1/namespaces/default/pods': { apiVersion: 'v1', kind: 'Pod' },
};

/**
 * up: answers; refuse: the port is closed (connection refused); hang: connections are accepted and
 * never answered; fail: every request gets 503 (an overloaded or starting API server).
 */
export type FakeMode = 'up' | 'refuse' | 'hang' | 'fail';

export class FakeKube {
  private server?: Server;
  private rv = 100;
  private readonly collections = new Map<string, Collection>();
  /** Every POST (create) received, for assertions. */
  readonly creates: { path: string; body: any }[] = [];
  /** Collections whose CustomResourceDefinition is not installed: every request for them gets 404. */
  private readonly absent = new Set<string>();
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
  mode: FakeMode = 'up';
  /** Requests on the API port (not the control socket), for counting retries. */
  readonly requests: { method: string; path: string; at: number }[] = [];
  private readonly held = new Set<ServerResponse>();

  /**
   * Listens on host:port (loopback and a free port by default). With `controlSocket`, the same API is
   * also served on that unix socket: a test in another network namespace drives it through the file system.
   */
  async start(options: { host?: string; port?: number; controlSocket?: string } = {}): Promise<void> {
    this.host = options.host ?? '127.0.0.1';
    this.server = createServer((req, res) => this.handleApi(req, res));
    await new Promise<void>((resolve) => this.server!.listen(options.port ?? 0, this.host, () => resolve()));
    this.port = (this.server.address() as { port: number }).port;
    if (options.controlSocket) {
      this.control = createServer((req, res) => this.handleControl(req, res));
      await new Promise<void>((resolve) => this.control!.listen(options.controlSocket, () => resolve()));
    }
  }

  /**
   * Takes the API port down or brings it back. Going down cuts every open connection (watches
   * included), as a crashed or partitioned API server does; the control socket stays up.
   */
  async setMode(mode: FakeMode): Promise<void> {
    if (mode === this.mode) return;
    const was = this.mode;
    this.mode = mode;
    if (mode !== 'up') {
      for (const c of this.collections.values()) for (const w of c.watchers) w.destroy();
      this.server!.closeAllConnections();
    }
    if (mode === 'refuse') await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    if (was === 'refuse') await new Promise<void>((resolve) => this.server!.listen(this.port, this.host, () => resolve()));
    // Requests that hung stay hung after the server is back: only the client's deadline ends them.
    if (mode === 'refuse') {
      for (const res of this.held) res.destroy();
      this.held.clear();
    }
  }

  async stop(): Promise<void> {
    for (const res of this.held) res.destroy();
    for (const c of this.collections.values()) for (const w of c.watchers) w.end();
    for (const server of [this.server, this.control]) {
      server?.closeAllConnections();
      if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  /** Where the agent's Kubernetes client finds this fake. */
  apiEndpoint(): ApiEndpoint {
    return { server: `http://${this.host}:${this.port}`, token: () => 'fake-token' };
  }

  /** A kubeconfig file's text for a separate process (the agent binary). */
  kubeConfigYaml(): string {
    return kubeConfigYaml(`http://${this.host}:${this.port}`);
  }

  // ---- test-side mutations ----
  upsert(path: string, object: Omit<Obj, 'apiVersion' | 'kind'>): Obj {
    const c = this.collections.get(path)!;
    const meta = COLLECTIONS[path]!;
    const uid = c.items.get(object.metadata.name)?.metadata.uid ?? object.metadata.uid ?? `uid-${object.metadata.name}-${this.rv}`;
    const full = { apiVersion: meta.apiVersion, kind: meta.kind, ...object, metadata: { ...object.metadata, uid, resourceVersion: String(++this.rv) } } as Obj;
    const type: EventType = c.items.has(full.metadata.name) ? 'MODIFIED' : 'ADDED';
    c.items.set(full.metadata.name, full);
    this.emit(c, type, full);
    return full;
  }

  /**
   * Takes a CRD's collection away (installed: false) or installs it, as `kubectl delete/apply` of the
   * CustomResourceDefinition does: while it is away the API server answers 404 for it, lists and
   * watches included, and its objects are gone.
   */
  setInstalled(path: string, installed: boolean): void {
    if (installed) {
      this.absent.delete(path);
      return;
    }
    this.absent.add(path);
    const c = this.collections.get(path)!;
    c.items.clear();
    c.events.length = 0;
    for (const w of c.watchers) w.end();
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

  /** Items of a collection, for assertions (Events, for instance). */
  list(path: string): Obj[] {
    return [...this.collections.get(path)!.items.values()];
  }

  // ---- HTTP ----
  private handleApi(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push({ method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, at: Date.now() });
    if (this.mode === 'hang') {
      this.held.add(res);
      return;
    }
    if (this.mode === 'fail') {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 503, reason: 'ServiceUnavailable', message: 'fake outage' }));
      return;
    }
    this.handle(req, res);
  }

  /** The control socket: the API itself, plus POST /fake/mode {"mode": "up" | "refuse" | "hang"}. */
  private handleControl(req: IncomingMessage, res: ServerResponse): void {
    if (req.method === 'POST' && req.url === '/fake/mode') {
      readBody(req, (body) => {
        void this.setMode(body.mode as FakeMode).then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ mode: this.mode })));
      });
      return;
    }
    this.handle(req, res);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname;
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if ([...this.absent].some((gone) => path === gone || path.startsWith(`${gone}/`))) {
      return json(404, { kind: 'Status', code: 404, reason: 'NotFound', message: 'the server could not find the requested resource' });
    }
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
      // Pages as the API server cuts them: `limit` items, a `continue` token for the rest (here an offset).
      const all = [...collection.items.values()];
      const limit = Number(url.searchParams.get('limit') ?? 0) || all.length;
      const offset = Number(url.searchParams.get('continue') ?? 0);
      const next = offset + limit < all.length ? String(offset + limit) : undefined;
      json(200, { apiVersion: COLLECTIONS[path]!.apiVersion, kind: collection.listKind, metadata: { resourceVersion: String(this.rv), ...(next ? { continue: next } : {}) }, items: all.slice(offset, offset + limit) });
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

/** A kubeconfig file's text for a fake API at `server` (plain HTTP, a dummy token). */
export function kubeConfigYaml(server: string): string {
  return `apiVersion: v1
kind: Config
clusters: [{ name: fake, cluster: { server: "${server}", insecure-skip-tls-verify: true } }]
users: [{ name: fake, user: { token: fake-token } }]
contexts: [{ name: fake, context: { cluster: fake, user: fake } }]
current-context: fake
`;
}

export const NODES = '/api/v1/nodes';
export const PODS = '/api/v1/namespaces/default/pods';
export const BGP_PEERS = '/apis/lightly.dev/v1alpha1/bgppeers';
export const BGP_CONFIGURATIONS = '/apis/lightly.dev/v1alpha1/bgpconfigurations';

export function nodeObject(name: string, address: string, podCIDR?: string, labels: Record<string, string> = {}) {
  return {
    metadata: { name, labels },
    spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {},
    status: { addresses: [{ type: 'InternalIP', address }, { type: 'Hostname', address: name }], conditions: [] },
  };
}

/**
 * A Node as a real cluster has it, ~11.6 KB of JSON: a kubelet's labels and annotations, managed
 * fields, capacity, conditions, node info and the image list that makes up most of the size.
 */
export function realisticNode(name: string, address: string, podCIDR: string) {
  const node = nodeObject(name, address, podCIDR, {
    'beta.kubernetes.io/arch': 'amd64', 'beta.kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'kubernetes.io/hostname': name,
    'kubernetes.io/os': 'linux', 'node.kubernetes.io/instance-type': 'm5.2xlarge', 'topology.kubernetes.io/region': 'eu-west-1',
    'topology.kubernetes.io/zone': 'eu-west-1a', rack: `r${name.length % 8}`,
  });
  const time = '2026-11-30T08:00:00Z';
  const images = Array.from({ length: 40 }, (_, i) => ({
    names: [`registry.example.com/team-${i}/service-${i}@sha256:${'0123456789abcdef'.repeat(4)}`, `registry.example.com/team-${i}/service-${i}:v1.${i}.0`],
    sizeBytes: 123_456_789 + i,
  }));
  const fields = (manager: string, extra: Record<string, unknown>) => ({ manager, operation: 'Update', apiVersion: 'v1', time, fieldsType: 'FieldsV1', fieldsV1: extra });
  return {
    ...node,
    metadata: {
      ...node.metadata,
      creationTimestamp: time,
      annotations: {
        'kubeadm.alpha.kubernetes.io/cri-socket': 'unix:///run/containerd/containerd.sock',
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
      managedFields: [
        fields('kubelet', { 'f:metadata': { 'f:annotations': { '.': {}, 'f:kubeadm.alpha.kubernetes.io/cri-socket': {}, 'f:volumes.kubernetes.io/controller-managed-attach-detach': {} }, 'f:labels': { '.': {}, 'f:beta.kubernetes.io/arch': {}, 'f:beta.kubernetes.io/os': {}, 'f:kubernetes.io/arch': {}, 'f:kubernetes.io/hostname': {}, 'f:kubernetes.io/os': {} } } }),
        fields('kube-controller-manager', { 'f:metadata': { 'f:annotations': { 'f:node.alpha.kubernetes.io/ttl': {} } }, 'f:spec': { 'f:podCIDR': {}, 'f:podCIDRs': { '.': {}, [`v:"${podCIDR}"`]: {} } } }),
        fields('kubelet-status', { 'f:status': { 'f:conditions': { 'k:{"type":"DiskPressure"}': { 'f:lastHeartbeatTime': {} }, 'k:{"type":"MemoryPressure"}': { 'f:lastHeartbeatTime': {} }, 'k:{"type":"PIDPressure"}': { 'f:lastHeartbeatTime': {} }, 'k:{"type":"Ready"}': { 'f:lastHeartbeatTime': {}, 'f:lastTransitionTime': {}, 'f:message': {}, 'f:reason': {}, 'f:status': {} } }, 'f:images': {}, 'f:nodeInfo': { 'f:bootID': {}, 'f:containerRuntimeVersion': {}, 'f:kernelVersion': {} } } }),
      ],
    },
    spec: { ...node.spec, providerID: `aws:///eu-west-1a/i-0${name.replace(/\D/g, '').padStart(16, '0')}` },
    status: {
      ...node.status,
      capacity: { cpu: '8', 'ephemeral-storage': '101430960Ki', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '32408708Ki', pods: '110' },
      allocatable: { cpu: '7910m', 'ephemeral-storage': '93478772582', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '31391876Ki', pods: '110' },
      conditions: ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready'].map((type) => ({
        type, status: type === 'Ready' ? 'True' : 'False', lastHeartbeatTime: time, lastTransitionTime: time,
        reason: type === 'Ready' ? 'KubeletReady' : `KubeletHasNo${type}`, message: type === 'Ready' ? 'kubelet is posting ready status' : `kubelet has no ${type.toLowerCase()}`,
      })),
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        architecture: 'amd64', bootID: '6e0d5d8c-5b7e-4a40-9d3e-0f5e1f2c3a4b', containerRuntimeVersion: 'containerd://1.7.22', kernelVersion: '6.1.0-27-cloud-amd64',
        kubeProxyVersion: 'v1.31.2', kubeletVersion: 'v1.31.2', machineID: 'ec2d8f0e4d6a4f1f9a3b2c1d0e9f8a7b', operatingSystem: 'linux', osImage: 'Debian GNU/Linux 12 (bookworm)',
        systemUUID: 'ec2d8f0e-4d6a-4f1f-9a3b-2c1d0e9f8a7b',
      },
      images,
    },
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
