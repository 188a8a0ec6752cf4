// Where the API server is and how to authenticate to it: KUBECONFIG, ~/.kube/config, or the pod's
// service account, in that order (as client-go and client-node look). Only what an agent needs:
// tokens, token files, client certificates, CAs. Not client-node's loader: it alone is ~22 MB of RSS.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export interface ApiEndpoint {
  /** https://host:port (http only for tests and the lab). */
  server: string;
  ca?: Buffer;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
  cert?: Buffer;
  key?: Buffer;
  /** The bearer token, read at each request: projected service-account tokens rotate. */
  token?(): string | undefined;
}

export class KubeConfigError extends Error {
  override name = 'KubeConfigError';
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

const Cluster = z.object({
  server: z.string().url(),
  'certificate-authority': z.string().optional(),
  'certificate-authority-data': z.string().optional(),
  'insecure-skip-tls-verify': z.boolean().optional(),
  'tls-server-name': z.string().optional(),
});
const User = z.object({
  token: z.string().optional(),
  tokenFile: z.string().optional(),
  'client-certificate': z.string().optional(),
  'client-certificate-data': z.string().optional(),
  'client-key': z.string().optional(),
  'client-key-data': z.string().optional(),
  exec: z.unknown().optional(),
  'auth-provider': z.unknown().optional(),
});
const KubeConfigFile = z.object({
  'current-context': z.string().optional(),
  contexts: z.array(z.object({ name: z.string(), context: z.object({ cluster: z.string(), user: z.string().optional() }) })).default([]),
  clusters: z.array(z.object({ name: z.string(), cluster: Cluster })).default([]),
  users: z.array(z.object({ name: z.string(), user: User })).default([]),
});

/** A file's bytes, or inline base64 data; relative paths are relative to the kubeconfig file. */
function material(base: string, path: string | undefined, data: string | undefined): Buffer | undefined {
  if (data) return Buffer.from(data, 'base64');
  if (!path) return undefined;
  return readFileSync(isAbsolute(path) ? path : join(base, path));
}

export function fromKubeConfigFile(file: string): ApiEndpoint {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new KubeConfigError(`cannot read kubeconfig ${file}: ${(err as Error).message}`);
  }
  const parsed = KubeConfigFile.safeParse(raw);
  if (!parsed.success) throw new KubeConfigError(`invalid kubeconfig ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const config = parsed.data;
  const context = config.contexts.find((c) => c.name === config['current-context'])?.context ?? config.contexts[0]?.context;
  const cluster = config.clusters.find((c) => c.name === context?.cluster)?.cluster ?? (context ? undefined : config.clusters[0]?.cluster);
  if (!cluster) throw new KubeConfigError(`kubeconfig ${file}: no cluster for its current context`);
  const user = config.users.find((u) => u.name === context?.user)?.user ?? {};
  if (user.exec || user['auth-provider']) throw new KubeConfigError(`kubeconfig ${file}: exec and auth-provider credentials are not supported; use a token or a client certificate`);
  const base = dirname(file);
  const tokenFile = user.tokenFile ? (isAbsolute(user.tokenFile) ? user.tokenFile : join(base, user.tokenFile)) : undefined;
  const staticToken = user.token;
  return {
    server: cluster.server,
    ca: material(base, cluster['certificate-authority'], cluster['certificate-authority-data']),
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] ?? false,
    ...(cluster['tls-server-name'] ? { tlsServerName: cluster['tls-server-name'] } : {}),
    cert: material(base, user['client-certificate'], user['client-certificate-data']),
    key: material(base, user['client-key'], user['client-key-data']),
    ...(staticToken || tokenFile ? { token: () => staticToken ?? readFileSync(tokenFile!, 'utf8').trim() } : {}),
  };
}

/** The pod's service account, as every in-cluster client finds it. */
export function inCluster(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT): ApiEndpoint {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new KubeConfigError('no KUBECONFIG, no ~/.kube/config, and not in a pod (KUBERNETES_SERVICE_HOST is unset)');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(dir, 'ca.crt')),
    token: () => readFileSync(join(dir, 'token'), 'utf8').trim(),
  };
}

/** KUBECONFIG (its first file), else ~/.kube/config, else the service account. */
export function loadApiEndpoint(env: NodeJS.ProcessEnv = process.env): ApiEndpoint {
  const fromEnv = env.KUBECONFIG?.split(':').find(Boolean);
  if (fromEnv) return fromKubeConfigFile(fromEnv);
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return fromKubeConfigFile(home);
  return inCluster(env);
}
