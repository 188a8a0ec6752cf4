import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfigError, fromKubeConfigFile, inCluster, loadApiEndpoint } from './kubeconfig.js';

const dirs: string[] = [];
const dir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'lt-kubeconfig-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('API endpoint loading', () => {
  it('reads the current context of a kubeconfig: server, CA data, token, client certificate files relative to it', () => {
    const d = dir();
    writeFileSync(join(d, 'client.crt'), 'CERT');
    writeFileSync(join(d, 'client.key'), 'KEY');
    writeFileSync(join(d, 'config'), `apiVersion: v1
kind: Config
current-context: b
contexts: [{ name: a, context: { cluster: one, user: u1 } }, { name: b, context: { cluster: two, user: u2 } }]
clusters:
  - { name: one, cluster: { server: "https://one:6443" } }
  - { name: two, cluster: { server: "https://two:6443", certificate-authority-data: ${Buffer.from('CA').toString('base64')}, tls-server-name: api } }
users:
  - { name: u1, user: { token: t1 } }
  - { name: u2, user: { token: t2, client-certificate: client.crt, client-key: client.key } }
`);
    const e = fromKubeConfigFile(join(d, 'config'));
    expect(e).toMatchObject({ server: 'https://two:6443', tlsServerName: 'api', insecureSkipTLSVerify: false });
    expect(e.ca?.toString()).toBe('CA');
    expect(e.cert?.toString()).toBe('CERT');
    expect(e.key?.toString()).toBe('KEY');
    expect(e.token?.()).toBe('t2');
  });

  it('refuses exec credentials with a clear message, and a missing cluster', () => {
    const d = dir();
    writeFileSync(join(d, 'config'), 'current-context: a\ncontexts: [{ name: a, context: { cluster: c, user: u } }]\nclusters: [{ name: c, cluster: { server: "https://c" } }]\nusers: [{ name: u, user: { exec: { command: aws } } }]\n');
    expect(() => fromKubeConfigFile(join(d, 'config'))).toThrow(/exec and auth-provider/);
    writeFileSync(join(d, 'config'), 'current-context: a\ncontexts: [{ name: a, context: { cluster: nope } }]\nclusters: []\n');
    expect(() => fromKubeConfigFile(join(d, 'config'))).toThrow(KubeConfigError);
  });

  it('in a pod: the service account, its token read at each use (projected tokens rotate)', () => {
    const d = dir();
    writeFileSync(join(d, 'ca.crt'), 'CA');
    writeFileSync(join(d, 'token'), 'one\n');
    const e = inCluster({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, d);
    expect(e.server).toBe('https://10.96.0.1:443');
    expect(e.token?.()).toBe('one');
    writeFileSync(join(d, 'token'), 'two\n');
    expect(e.token?.()).toBe('two');
    expect(inCluster({ KUBERNETES_SERVICE_HOST: 'fd00::1' }, d).server).toBe('https://[fd00::1]:443');
  });

  it('KUBECONFIG first; nothing at all is a clear error', () => {
    const d = dir();
    writeFileSync(join(d, 'config'), 'clusters: [{ name: c, cluster: { server: "http://127.0.0.1:1" } }]\n');
    expect(loadApiEndpoint({ KUBECONFIG: `${join(d, 'config')}:/nonexistent`, HOME: d }).server).toBe('http://127.0.0.1:1');
    expect(() => loadApiEndpoint({ HOME: d })).toThrow(/KUBERNETES_SERVICE_HOST/);
  });
});

describe('KubeClient over HTTPS', () => {
  it('verifies the server against the CA, sends the bearer token, and refuses an unknown CA', async () => {
    const { execa } = await import('execa');
    const { createServer } = await import('node:https');
    const { readFileSync } = await import('node:fs');
    const { KubeClient } = await import('./client.js');
    const d = dir();
    const openssl = await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(d, 'k.pem'), '-out', join(d, 'c.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { reject: false });
    if (openssl.exitCode !== 0) throw new Error(`openssl is needed for this test: ${openssl.stderr}`);
    let auth = '';
    const server = createServer({ key: readFileSync(join(d, 'k.pem')), cert: readFileSync(join(d, 'c.pem')) }, (req, res) => {
      auth = req.headers.authorization ?? '';
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const server_ = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const good = new KubeClient({ server: server_, ca: readFileSync(join(d, 'c.pem')), token: () => 'secret' });
      expect(await good.call('GET', '/api')).toEqual({ ok: true });
      expect(auth).toBe('Bearer secret');
      const unknownCa = new KubeClient({ server: server_ });
      await expect(unknownCa.call('GET', '/api')).rejects.toThrow(/certificate/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
