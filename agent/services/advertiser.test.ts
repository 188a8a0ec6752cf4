// The advertiser against the in-process fake API: the Lease decides who allocates, status is the
// truth, announcements follow status and endpoints on every agent.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { KubeApiError, KubeClient } from '../kube/client.js';
import { ENDPOINT_SLICES, EVENTS_PATH_DEFAULT, FakeKube, LEASES, LOAD_BALANCER_IP_POOLS, SERVICES } from '../../test/support/fake-kube.js';
import { until } from '../../test/support/wait.js';
import { POOLS_PATH, ServiceAdvertiser } from './advertiser.js';
import type { ServiceAnnouncement } from './announce.js';
import { leaseAction } from './lease.js';

const log = pino({ level: 'silent' });
const LEASE = { durationMs: 1_500, retryMs: 150 };
const CONFIG = { clusterIPs: ['10.96.0.0/12'], externalIPs: [], loadBalancerIPs: ['203.0.113.0/24'] };

let api: FakeKube;
const agents: ServiceAdvertiser[] = [];
const seen = new Map<ServiceAdvertiser, ServiceAnnouncement[]>();

function agent(node: string): ServiceAdvertiser {
  const a = new ServiceAdvertiser({ client: new KubeClient(api.apiEndpoint()), nodeName: node, log, lease: LEASE, backoff: { baseMs: 50, capMs: 200 } });
  a.on('announcements', (list) => seen.set(a, list));
  a.setConfig(CONFIG);
  a.start();
  agents.push(a);
  return a;
}

const service = (name: string, spec: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  api.upsert(SERVICES, { metadata: { name, namespace: 'default', creationTimestamp: new Date().toISOString() }, spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], ...spec }, ...extra });
const ingressOf = (name: string): string[] => (api.get(SERVICES, `default/${name}`)?.status?.loadBalancer?.ingress ?? []).map((i: { ip: string }) => i.ip);
const announces = (a: ServiceAdvertiser, prefix: string): boolean => (seen.get(a) ?? []).some((x) => x.prefix === prefix);
const leader = (): ServiceAdvertiser | undefined => agents.find((a) => a.elector.leading);

beforeEach(async () => {
  api = new FakeKube();
  await api.start();
  api.upsert(LOAD_BALANCER_IP_POOLS, { metadata: { name: 'pool' }, spec: { cidrs: ['203.0.113.0/24'] } });
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop({ handBack: false })));
  seen.clear();
  await api.stop();
});

describe('leaseAction (client-go leader election rules)', () => {
  it('creates a missing Lease, renews its own, waits on a live holder, takes over one not renewed for a whole duration', () => {
    const lease = { holder: 'node-1', transitions: 0, resourceVersion: '5' };
    expect(leaseAction(undefined, 'node-2', 0, 0, 15_000)).toBe('create');
    expect(leaseAction(lease, 'node-1', 0, 99_000, 15_000)).toBe('renew');
    expect(leaseAction(lease, 'node-2', 1_000, 15_999, 15_000)).toBe('wait');
    expect(leaseAction(lease, 'node-2', 1_000, 16_000, 15_000)).toBe('take-over');
    expect(leaseAction({ ...lease, holder: undefined }, 'node-2', 1_000, 1_000, 15_000)).toBe('take-over');
  });
});

describe('ServiceAdvertiser', () => {
  it('one agent allocates (the Lease holder); every agent announces the address from status', async () => {
    const [a, b] = [agent('node-1'), agent('node-2')];
    await until('a leader', () => !!leader(), 5_000);
    expect(agents.filter((x) => x.elector.leading)).toHaveLength(1);
    service('web');
    await until('an address in status', () => ingressOf('web').length === 1, 5_000);
    expect(ingressOf('web')).toEqual(['203.0.113.1']);
    await until('both announce it', () => announces(a, '203.0.113.1/32') && announces(b, '203.0.113.1/32'), 5_000);
    expect(seen.get(a)!.find((x) => x.prefix === '203.0.113.1/32')!.services).toEqual(['default/web']);
    expect(api.get(LEASES, `kube-system/lightly-lb-allocator`)?.spec.holderIdentity).toBe(leader()!.options.nodeName);
  });

  it('failover: the leader killed (Lease not handed back), another agent takes over within the lease time and allocates', async () => {
    agent('node-1');
    agent('node-2');
    await until('a leader', () => !!leader(), 5_000);
    const first = leader()!;
    service('before');
    await until('first allocation', () => ingressOf('before').length === 1, 5_000);
    const killedAt = Date.now();
    await first.stop({ handBack: false });
    agents.splice(agents.indexOf(first), 1);
    const took = await until('another leader', () => !!leader(), LEASE.durationMs + 3 * LEASE.retryMs + 2_000);
    expect(took).toBeLessThanOrEqual(LEASE.durationMs + 3 * LEASE.retryMs + 2_000);
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(LEASE.durationMs - LEASE.retryMs); // not before the Lease ran out
    service('after');
    await until('allocation by the new leader', () => ingressOf('after').length === 1, 5_000);
    expect(ingressOf('after')).toEqual(['203.0.113.2']);
    expect(ingressOf('before')).toEqual(['203.0.113.1']); // rebuilt from status: nothing moved
  });

  it('answers current() with the ranges just set, not the ones before: the agent starts its speaker with that answer', async () => {
    service('old', {}, { status: { loadBalancer: { ingress: [{ ip: '203.0.113.50' }] } } });
    const a = new ServiceAdvertiser({ client: new KubeClient(api.apiEndpoint()), nodeName: 'node-1', log, lease: LEASE, backoff: { baseMs: 50, capMs: 200 } });
    agents.push(a);
    a.start(); // no ranges yet: nothing to announce
    await until('listed', () => a.current() !== undefined, 5_000);
    expect(a.current()).toEqual([]);
    // The cluster's BGPConfiguration arrives, and the agent asks at once (agent/kube/run.ts). Answered
    // after a 20 ms coalescing delay, the list lacked the Service: restarted so, the agent's first
    // announcement and End-of-RIB went without its /32, and the top of rack dropped the prefix it
    // held for us under graceful restart (test/lab-services.netns.test.ts, seen in CI).
    a.setConfig(CONFIG);
    expect(a.current()?.map((x) => x.prefix)).toContain('203.0.113.50/32');
  });

  it('announces from status and endpoints when the LoadBalancerIPPools cannot be listed: the pools are the allocator\'s, and a restart must not start BGP without the Service /32', async () => {
    // A ClusterRole from before the pools (403), or the CRD's handler failing (5xx): not a missing CRD
    // (404, taken as empty). Announcements need only Services, EndpointSlices and the BGPConfiguration;
    // gated on the pools list, current() stays undefined, agent/kube/run.ts starts the speaker after
    // its 10 s bound with no Service prefix, and a top of rack under graceful restart drops the /32 at
    // our End-of-RIB (the race ca0f2a5 fixed for the ranges), then nothing is announced at all.
    service('old', {}, { status: { loadBalancer: { ingress: [{ ip: '203.0.113.50' }] } } });
    class PoolsForbidden extends KubeClient {
      override async call(method: string, path: string, body?: unknown, contentType?: string): Promise<any> {
        if (path.startsWith(POOLS_PATH)) throw new KubeApiError('loadbalancerippools.lightly.dev is forbidden', 403);
        return super.call(method, path, body, contentType);
      }
    }
    const a = new ServiceAdvertiser({ client: new PoolsForbidden(api.apiEndpoint()), nodeName: 'node-1', log, lease: LEASE, backoff: { baseMs: 50, capMs: 200 } });
    agents.push(a);
    a.setConfig(CONFIG);
    a.start();
    await until('Services and EndpointSlices announced', () => a.current() !== undefined, 5_000);
    expect(a.current()?.map((x) => x.prefix)).toContain('203.0.113.50/32');
  });

  it('restart from status: a fresh leader keeps every address and writes nothing for them; delete and type change release', async () => {
    service('old', {}, { status: { loadBalancer: { ingress: [{ ip: '203.0.113.50' }] } } });
    service('req', { loadBalancerIP: '203.0.113.60' });
    service('lan', { type: 'ClusterIP' });
    agent('node-1');
    await until('allocated', () => ingressOf('req').length === 1, 5_000);
    expect(ingressOf('old')).toEqual(['203.0.113.50']);
    expect(ingressOf('req')).toEqual(['203.0.113.60']);
    expect(api.patches.filter((p) => p.path.includes('/services/old/'))).toEqual([]);
    expect(ingressOf('lan')).toEqual([]);
    // Type change: the address goes back; delete: likewise; the next Service gets the freed one.
    const req = api.get(SERVICES, 'default/req')!;
    api.upsert(SERVICES, { ...req, spec: { ...req.spec, type: 'ClusterIP', loadBalancerIP: undefined } });
    await until('released on type change', () => ingressOf('req').length === 0, 5_000);
    api.remove(SERVICES, 'default/old');
    service('next', { loadBalancerIP: '203.0.113.50' });
    await until('the freed address reused', () => ingressOf('next')[0] === '203.0.113.50', 5_000);
  });

  it('a conflicting request gets no address and an Event; Local policy follows EndpointSlices', async () => {
    const [a, b] = [agent('node-1'), agent('node-2')];
    await until('a leader', () => !!leader(), 5_000);
    service('one', { loadBalancerIP: '203.0.113.9' });
    await until('one allocated', () => ingressOf('one').length === 1, 5_000);
    service('two', { loadBalancerIP: '203.0.113.9' });
    await until('an AllocationFailed Event', () => api.list(EVENTS_PATH_DEFAULT).some((e) => e.reason === 'AllocationFailed' && e.involvedObject.name === 'two'), 5_000);
    expect(ingressOf('two')).toEqual([]);
    const one = api.get(SERVICES, 'default/one')!;
    api.upsert(SERVICES, { ...one, spec: { ...one.spec, externalTrafficPolicy: 'Local' } });
    await until('withdrawn without local endpoints', () => !announces(a, '203.0.113.9/32') && !announces(b, '203.0.113.9/32'), 5_000);
    api.upsert(ENDPOINT_SLICES, { metadata: { name: 'one-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'one' } }, endpoints: [{ addresses: ['10.244.2.5'], nodeName: 'node-2', conditions: { ready: true } }] });
    await until('node-2 alone announces', () => announces(b, '203.0.113.9/32') && !announces(a, '203.0.113.9/32'), 5_000);
  });

  it('sharing refused for the traffic policy: the Service gets an address of its own and a SharedIPRefused Event naming the other Service', async () => {
    agent('node-1');
    await until('a leader', () => !!leader(), 5_000);
    const shared = { 'lightly.dev/allow-shared-ip': 'dns' };
    const dns = (name: string, protocol: string, policy: string) =>
      api.upsert(SERVICES, { metadata: { name, namespace: 'default', annotations: shared, creationTimestamp: new Date().toISOString() }, spec: { type: 'LoadBalancer', selector: { app: 'dns' }, externalTrafficPolicy: policy, ports: [{ port: 53, protocol }] } });
    dns('dns-udp', 'UDP', 'Local');
    await until('dns-udp allocated', () => ingressOf('dns-udp').length === 1, 5_000);
    dns('dns-tcp', 'TCP', 'Cluster');
    await until('dns-tcp allocated', () => ingressOf('dns-tcp').length === 1, 5_000);
    expect(ingressOf('dns-tcp')).not.toEqual(ingressOf('dns-udp'));
    await until('a SharedIPRefused Event', () => api.list(EVENTS_PATH_DEFAULT).some((e) => e.reason === 'SharedIPRefused' && e.involvedObject.name === 'dns-tcp'), 5_000);
    const event = api.list(EVENTS_PATH_DEFAULT).find((e) => e.reason === 'SharedIPRefused')!;
    expect(event.message).toContain(`not sharing ${ingressOf('dns-udp')[0]}: default/dns-udp has externalTrafficPolicy Local`);
    // Same policy and selector: they share (an allocated Service keeps its address, so a new one shows it).
    dns('dns-tcp-local', 'TCP', 'Local');
    await until('dns-tcp-local allocated', () => ingressOf('dns-tcp-local').length === 1, 5_000);
    expect(ingressOf('dns-tcp-local')).toEqual(ingressOf('dns-udp'));
  });
});
