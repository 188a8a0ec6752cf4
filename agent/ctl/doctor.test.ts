// lightlyctl doctor end to end on namespace/pod names (Kubernetes mode): pods looked up in a fake API,
// the source node's facts from its agent's socket, the destination's from a file made with doctor-facts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { startStatusServer, type StatusServer } from '../status-server.js';
import type { FactsQuery } from '../doctor/facts.js';
import { FakeKube, PODS } from '../../test/support/fake-kube.js';
import { FROM, FROM6, TO, TO6, healthy, healthy6 } from '../../test/support/doctor-facts.js';

const CTL = resolve('dist/bin/lightlyctl.js');
const dir = mkdtempSync(join(tmpdir(), 'lt-doctor-ctl-'));
const socket = join(dir, 'agent.sock');
const kubeconfig = join(dir, 'kubeconfig');
const queries: FactsQuery[] = [];
let api: FakeKube;
let server: StatusServer;

beforeAll(async () => {
  api = new FakeKube();
  await api.start();
  writeFileSync(kubeconfig, api.kubeConfigYaml());
  api.upsert(PODS, { metadata: { name: 'web', namespace: 'default' }, spec: { nodeName: 'node-1' }, status: { podIP: FROM } });
  api.upsert(PODS, { metadata: { name: 'db', namespace: 'default' }, spec: { nodeName: 'node-2' }, status: { podIP: TO } });
  // Dual stack: podIPs holds one address of each family, podIP the first.
  api.upsert(PODS, { metadata: { name: 'web6', namespace: 'default' }, spec: { nodeName: 'node-1' }, status: { podIP: FROM, podIPs: [{ ip: FROM }, { ip: FROM6 }] } });
  api.upsert(PODS, { metadata: { name: 'db6', namespace: 'default' }, spec: { nodeName: 'node-2' }, status: { podIP: TO, podIPs: [{ ip: TO }, { ip: TO6 }] } });
  const { src, dst } = healthy();
  const v6 = healthy6();
  // One socket answers for both nodes here: as node-1 for FROM, as node-2 (through doctor-facts) for TO.
  server = await startStatusServer(socket, {
    bgpStatus: () => ({ node: 'node-1', routerId: '192.0.2.1', asn: 64512, peers: [] }),
    routes: () => [],
    node: () => ({ nodeName: 'node-1', podCIDRs: ['10.244.1.0/24'] }),
    doctorFacts: async (q) => {
      queries.push(q);
      return q.local === FROM ? src : q.local === FROM6 ? v6.src : q.local === TO6 ? v6.dst : dst;
    },
  });
});
afterAll(async () => {
  await server?.close();
  await api?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ctl = (args: string[]) => execa(process.execPath, [CTL, '--socket', socket, ...args], { reject: false, env: { KUBECONFIG: kubeconfig } });

describe('lightlyctl doctor with namespace/pod names', () => {
  it('without a way to the destination agent: fails that hop and says what to run on that node', async () => {
    const out = await ctl(['doctor', 'default/web', 'default/db', '--json']);
    expect(out.exitCode).toBe(1);
    const d = JSON.parse(out.stdout);
    expect(d).toMatchObject({ from: FROM, to: TO, ok: false, firstBroken: { id: 'destination-agent', node: 'node-2' } });
    expect(d.firstBroken.fix).toContain(`lightlyctl doctor-facts ${TO} ${FROM} --remote-node 192.0.2.1 > facts.json`);
    expect(d.firstBroken.fix).toContain('the lightly pod on node-2');
    expect(queries.at(-1)).toEqual({ local: FROM, remote: TO });
  });

  it('with the facts gathered on the destination node: the whole path, exit 0', async () => {
    const facts = await ctl(['doctor-facts', TO, FROM, '--remote-node', '192.0.2.1']);
    expect(facts.exitCode).toBe(0);
    expect(queries.at(-1)).toEqual({ local: TO, remote: FROM, remoteNode: '192.0.2.1' });
    writeFileSync(join(dir, 'facts.json'), facts.stdout);
    const out = await ctl(['doctor', 'default/web', 'default/db', '--dest-facts', join(dir, 'facts.json')]);
    expect(out.stdout).toContain('is good');
    expect(out.exitCode).toBe(0);
    expect((await ctl(['doctor', 'default/web', 'default/db', '--dest-socket', socket])).exitCode).toBe(0);
  });

  it('a pod the API does not know, or a name that is neither: an error, not a diagnosis', async () => {
    const missing = await ctl(['doctor', 'default/web', 'default/nope']);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/nope/);
    const bad = await ctl(['doctor', 'web', TO]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('give a pod IP, a namespace/pod name');
  });

  it('--family 6 takes the IPv6 addresses of dual-stack pods (default 4); a pod without one, or mixed families, is an error', async () => {
    const v4 = await ctl(['doctor', 'default/web6', 'default/db6', '--dest-socket', socket, '--json']);
    expect(JSON.parse(v4.stdout)).toMatchObject({ from: FROM, to: TO, ok: true });
    const out = await ctl(['doctor', 'default/web6', 'default/db6', '--family', '6', '--dest-socket', socket, '--json']);
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ from: FROM6, to: TO6, ok: true });
    expect(queries.slice(-2)).toEqual([{ local: FROM6, remote: TO6 }, { local: TO6, remote: FROM6, remoteNode: '192.0.2.1' }]);
    // An IPv6-only pod (its one address IPv6) resolves without --family; asked for IPv4 it is an error.
    api.upsert(PODS, { metadata: { name: 'only6', namespace: 'default' }, spec: { nodeName: 'node-2' }, status: { podIP: TO6, podIPs: [{ ip: TO6 }] } });
    expect(JSON.parse((await ctl(['doctor', 'default/web6', 'default/only6', '--family', '6', '--dest-socket', socket, '--json'])).stdout)).toMatchObject({ to: TO6, ok: true });
    expect((await ctl(['doctor', FROM6, 'default/only6', '--dest-socket', socket, '--json'])).exitCode).toBe(0);
    expect((await ctl(['doctor', FROM6, 'default/only6', '--family', '4'])).stderr).toContain(`pod default/only6 has no IPv4 address (it has ${TO6}): try --family 6`);
    const single = await ctl(['doctor', 'default/web', 'default/db6', '--family', '6']);
    expect(single.exitCode).toBe(1);
    expect(single.stderr).toContain(`pod default/web has no IPv6 address (it has ${FROM}): try --family 4`);
    const mixed = await ctl(['doctor', FROM, TO6]);
    expect(mixed.exitCode).toBe(1);
    expect(mixed.stderr).toContain('different address families');
    expect((await ctl(['doctor', 'default/web6', 'default/db6', '--family', '5'])).stderr).toContain('--family 5: give 4 or 6');
  });
});
