// Service advertisement at scale: 1,000 LoadBalancer Services with 3 endpoints each (one on this node,
// policy Local) created in a fake API; the time from the first creation until the BIRD top-of-rack
// has all 1,000 /32s in its kernel, next to the time the API itself took to take the objects in the
// same run, and the agent's RSS before and after. Everything runs in throwaway namespaces.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type ResultPromise, execa } from 'execa';
import { agentRuntime } from '../support/agent-runtime.js';
import { BGP_CONFIGURATIONS, BGP_PEERS, LOAD_BALANCER_IP_POOLS, fakeKubeRequest, kubeConfigYaml } from '../support/fake-kube.js';
import { NetnsPool, execIn, ipIn, killProcessesIn } from '../support/netns.js';
import { until } from '../support/wait.js';
import { rssOf } from './kube.bench.js';

const MB = 1024 * 1024;

async function torRoutes(tor: string): Promise<number> {
  return (await ipIn(tor, ['route', 'show', 'root', '203.0.112.0/22'])).split('\n').filter(Boolean).length;
}

export async function benchServices(count = Number(process.env.BENCH_SERVICES ?? 1000)): Promise<string[]> {
  if (!existsSync('dist/bin/lightly-agent.js')) throw new Error('dist/bin/lightly-agent.js is missing: run npm run build');
  const pool = new NetnsPool();
  const dir = mkdtempSync(join(tmpdir(), 'lt-bench-svc-'));
  const control = join(dir, 'kube.sock');
  const kube = (method: string, path: string, body?: unknown) => fakeKubeRequest(control, method, path, body);
  let api: ResultPromise | undefined;
  let agent: ResultPromise | undefined;
  try {
    const node = await pool.create('svcnode');
    const tor = await pool.create('svctor');
    await ipIn(node, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', tor]);
    await ipIn(node, ['addr', 'add', '10.0.0.1/24', 'dev', 'eth0']);
    await ipIn(tor, ['addr', 'add', '10.0.0.254/24', 'dev', 'eth0']);
    for (const ns of [node, tor]) await ipIn(ns, ['link', 'set', 'eth0', 'up']);
    // The ToR: BIRD, every route it learns into its kernel.
    writeFileSync(join(dir, 'bird.conf'), `router id 10.0.0.254;
protocol device { scan time 10; }
protocol kernel { ipv4 { import none; export all; }; }
protocol bgp node_1 { local 10.0.0.254 as 65000; neighbor 10.0.0.1 as 64512; connect retry time 1; ipv4 { import all; export none; }; }
`);
    const bird = await execIn(tor, 'bird', ['-c', join(dir, 'bird.conf'), '-s', join(dir, 'bird.ctl'), '-P', join(dir, 'bird.pid')]);
    if (bird.exitCode !== 0) throw new Error(`bird: ${bird.stderr}`);

    api = execIn(node, process.execPath, ['--import', 'tsx', 'test/support/fake-kube-main.ts', '--port', '6443', '--nodes', '1', '--control', control], { timeout: 900_000 });
    await until('the fake API', async () => existsSync(control), 30_000);
    await kube('POST', BGP_CONFIGURATIONS, { apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: { asn: 64512, serviceLoadBalancerIPs: [{ cidr: '203.0.112.0/22' }] } });
    await kube('POST', BGP_PEERS, { apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPPeer', metadata: { name: 'tor' }, spec: { peerIP: '10.0.0.254', asn: 65000 } });
    await kube('POST', LOAD_BALANCER_IP_POOLS, { apiVersion: 'lightly.dev/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'bench' }, spec: { cidrs: ['203.0.112.0/22'] } });

    writeFileSync(join(dir, 'kubeconfig'), kubeConfigYaml('http://127.0.0.1:6443'));
    const sock = join(dir, 'agent.sock');
    writeFileSync(join(dir, 'agent.yaml'), JSON.stringify({ statusSocket: sock, listen: { address: '10.0.0.1', port: 179 }, iprouteDir: dir, cniServer: { enabled: false }, connectRetrySeconds: 1 }));
    const { flags, env } = agentRuntime('BENCH_KUBE_NODE_FLAGS');
    agent = execIn(node, process.execPath, [...flags, resolve('dist/bin/lightly-agent.js'), '--kubernetes', '--config', join(dir, 'agent.yaml')], { env: { KUBECONFIG: join(dir, 'kubeconfig'), NODE_NAME: 'node-1', ...env }, timeout: 900_000 });
    const established = async (): Promise<boolean> => {
      if (!existsSync(sock)) return false;
      const out = await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', sock, 'bgp', 'status', '--json'], { reject: false });
      return out.exitCode === 0 && (JSON.parse(out.stdout) as { peers: { state: string }[] }).peers.some((p) => p.state === 'Established');
    };
    await until('the agent peered with the ToR', established, 60_000);
    await new Promise((r) => setTimeout(r, 5_000));
    const before = rssOf(agent.pid!).rss;

    const t0 = Date.now();
    for (let i = 0; i < count; i++) {
      const name = `svc-${i}`;
      await kube('POST', '/api/v1/namespaces/default/services', {
        apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default', creationTimestamp: new Date().toISOString() },
        spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ port: 80, protocol: 'TCP' }] },
      });
      await kube('POST', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4', metadata: { name: `${name}-a`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
        endpoints: ['node-1', 'node-2', 'node-3'].map((nodeName, j) => ({ addresses: [`10.64.${j}.${(i % 250) + 2}`], nodeName, conditions: { ready: true } })),
      });
    }
    const createdMs = Date.now() - t0;
    await until(`${count} /32s at the ToR`, async () => (await torRoutes(tor)) >= count, 600_000, { pollMs: 250 });
    const announcedMs = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 10_000)); // settle
    let rss = 0;
    for (let i = 0; i < 3; i++) {
      rss = Math.max(rss, rssOf(agent.pid!).rss);
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const peak = rssOf(agent.pid!).hwm;
    const pid = Number(readFileSync(join(dir, 'bird.pid'), 'utf8').trim());
    process.kill(pid, 'SIGTERM');
    return [
      `Service advertisement: ${count} LoadBalancer Services (policy Local, 3 endpoints each, one on this node) created in a fake API, one agent allocating and announcing to a BIRD ToR`,
      `  created in the API in ${createdMs} ms; all ${count} /32s in the ToR's kernel ${announcedMs} ms after the first creation (ratio ${(announcedMs / createdMs).toFixed(2)}x the API's own time)`,
      `  agent RSS ${Math.round(before / MB)} MB before, ${Math.round(rss / MB)} MB with ${count} Services (peak ${Math.round(peak / MB)} MB)`,
    ];
  } finally {
    await killProcessesIn(pool.names); // the agent, the API and BIRD
    agent?.kill('SIGKILL');
    api?.kill('SIGKILL');
    await Promise.allSettled([agent, api]);
    await pool.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
