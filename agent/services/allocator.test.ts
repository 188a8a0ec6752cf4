import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type Allocation, type LbRequest, LoadBalancerAllocator } from './allocator.js';
import { parseSelector } from '../kube/selector.js';
import type { PoolSpec } from './objects.js';

const pool = (name: string, cidrs: string[], extra: Partial<PoolSpec> = {}): PoolSpec => ({ name, cidrs, allowFirstLastIPs: false, ...extra });
const req = (key: string, extra: Partial<LbRequest> = {}): LbRequest => ({ key, created: '2026-11-30T10:00:00Z', labels: {}, families: ['IPv4'], requested: [], ports: [{ protocol: 'TCP', port: 80 }], externalTrafficPolicy: 'Cluster', selector: { app: 'web' }, current: [], ...extra });
const addresses = (a: Allocation): string[] => ('addresses' in a ? a.addresses : []);
const failure = (a: Allocation): string | undefined => ('reason' in a ? a.reason : undefined);

function allocator(...pools: PoolSpec[]): LoadBalancerAllocator {
  const a = new LoadBalancerAllocator();
  a.setPools(pools);
  return a;
}

describe('LoadBalancerAllocator', () => {
  it('gives the first usable address of the pool, skipping the network and broadcast address unless allowFirstLastIPs', () => {
    const a = allocator(pool('p', ['203.0.113.0/30']));
    expect(addresses(a.assign(req('ns/a')))).toEqual(['203.0.113.1']);
    expect(addresses(a.assign(req('ns/b')))).toEqual(['203.0.113.2']);
    expect(failure(a.assign(req('ns/c')))).toBe('PoolExhausted');
    const all = allocator(pool('p', ['203.0.113.0/30'], { allowFirstLastIPs: true }));
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => addresses(all.assign(req(k)))[0])).toEqual(['203.0.113.0', '203.0.113.1', '203.0.113.2', '203.0.113.3', undefined]);
  });

  it('dual stack: one address per family, from the pools of each family', () => {
    const a = allocator(pool('v4', ['203.0.113.0/24']), pool('v6', ['2001:db8:5::/120']));
    expect(addresses(a.assign(req('ns/a', { families: ['IPv4', 'IPv6'] })))).toEqual(['203.0.113.1', '2001:db8:5::']);
    expect(addresses(a.assign(req('ns/b', { families: ['IPv6'] })))).toEqual(['2001:db8:5::1']);
  });

  it('serviceSelector: a pool only serves the Services it selects', () => {
    const a = allocator(pool('blue', ['198.51.100.0/24'], { serviceSelector: parseSelector('team=blue') }), pool('shared', ['203.0.113.0/24']));
    expect(addresses(a.assign(req('ns/blue', { labels: { team: 'blue' } })))).toEqual(['198.51.100.1']);
    expect(addresses(a.assign(req('ns/red', { labels: { team: 'red' } })))).toEqual(['203.0.113.1']);
    const only = allocator(pool('blue', ['198.51.100.0/24'], { serviceSelector: parseSelector('team=blue') }));
    expect(failure(only.assign(req('ns/red', { labels: { team: 'red' } })))).toBe('NoMatchingPool');
  });

  it('honours a requested address when free and in a selected pool; refuses it otherwise', () => {
    const a = allocator(pool('p', ['203.0.113.0/24']));
    expect(addresses(a.assign(req('ns/a', { requested: ['203.0.113.77'] })))).toEqual(['203.0.113.77']);
    expect(failure(a.assign(req('ns/b', { requested: ['203.0.113.77'] })))).toBe('AddressInUse');
    expect(failure(a.assign(req('ns/c', { requested: ['198.51.100.7'] })))).toBe('AddressNotInPool');
    expect(failure(a.assign(req('ns/d', { requested: ['203.0.113.0'] })))).toBe('AddressNotInPool'); // the network address
    // automatic allocation steps over the requested one
    for (let i = 1; i < 77; i++) a.assign(req(`ns/auto-${i}`));
    expect(addresses(a.assign(req('ns/next')))).toEqual(['203.0.113.78']);
  });

  it('sharing (MetalLB rule): same key and disjoint ports share one address; overlapping ports or another key do not', () => {
    const a = allocator(pool('p', ['203.0.113.0/24']));
    const dns = { sharingKey: 'dns' };
    expect(addresses(a.assign(req('ns/udp', { ...dns, ports: [{ protocol: 'UDP', port: 53 }] })))).toEqual(['203.0.113.1']);
    expect(addresses(a.assign(req('ns/tcp', { ...dns, ports: [{ protocol: 'TCP', port: 53 }] })))).toEqual(['203.0.113.1']);
    expect(addresses(a.assign(req('ns/udp2', { ...dns, ports: [{ protocol: 'UDP', port: 53 }] })))).toEqual(['203.0.113.2']);
    expect(failure(a.assign(req('ns/web', { sharingKey: 'web', requested: ['203.0.113.1'], ports: [{ protocol: 'TCP', port: 80 }] })))).toBe('AddressInUse');
    expect(failure(a.assign(req('ns/nokey', { requested: ['203.0.113.1'], ports: [{ protocol: 'TCP', port: 80 }] })))).toBe('AddressInUse');
    // the address stays held until the last sharer goes
    a.release('ns/udp');
    expect(failure(a.assign(req('ns/other', { requested: ['203.0.113.1'] })))).toBe('AddressInUse');
    a.release('ns/tcp');
    expect(addresses(a.assign(req('ns/other', { requested: ['203.0.113.1'] })))).toEqual(['203.0.113.1']);
  });

  it('sharing and traffic policy (MetalLB rule): both Cluster, or both Local selecting the same pods; otherwise no share, and the Service is told why', () => {
    const a = allocator(pool('p', ['203.0.113.0/24']));
    const dns = { sharingKey: 'dns' };
    const tcp = [{ protocol: 'TCP', port: 53 }];
    const udp = [{ protocol: 'UDP', port: 53 }];
    expect(addresses(a.assign(req('ns/udp', { ...dns, ports: udp, externalTrafficPolicy: 'Local', selector: { app: 'dns' } })))).toEqual(['203.0.113.1']);
    // Local, same selector in another order of keys: the same pods, the same announcing nodes, one address.
    expect(addresses(a.assign(req('ns/tcp', { ...dns, ports: tcp, externalTrafficPolicy: 'Local', selector: { app: 'dns' } })))).toEqual(['203.0.113.1']);
    // Cluster beside Local: announced from every node, it would draw the Local Service's traffic to nodes without its pods.
    const cluster = a.assign(req('ns/cluster', { ...dns, ports: [{ protocol: 'TCP', port: 853 }], externalTrafficPolicy: 'Cluster' }));
    expect(addresses(cluster)).toEqual(['203.0.113.2']);
    expect(cluster.refused).toEqual([{ address: '203.0.113.1', holder: 'ns/udp', message: expect.stringMatching(/ns\/udp has externalTrafficPolicy Local with selector \{app=dns\}, this Service externalTrafficPolicy Cluster/) }]);
    // Local with another selector: other pods, other nodes.
    const other = a.assign(req('ns/other', { ...dns, ports: [{ protocol: 'UDP', port: 5353 }], externalTrafficPolicy: 'Local', selector: { app: 'dns', tier: 'edge' } }));
    expect(addresses(other)).toEqual(['203.0.113.3']);
    expect(other.refused?.map((r) => r.address)).toEqual(['203.0.113.1', '203.0.113.2']);
    // Local without a selector (hand-made endpoints): which nodes is unknowable ahead, it shares with nobody.
    const bare = a.assign(req('ns/bare', { ...dns, ports: [{ protocol: 'TCP', port: 1 }], externalTrafficPolicy: 'Local', selector: {}, requested: ['203.0.113.1'] }));
    expect(bare).toMatchObject({ reason: 'AddressInUse', message: expect.stringContaining('one announcement cannot serve both') });
    // A requested share refused for the policy: AddressInUse, with the policy named.
    const asked = a.assign(req('ns/asked', { ...dns, ports: [{ protocol: 'TCP', port: 2 }], externalTrafficPolicy: 'Cluster', requested: ['203.0.113.1'] }));
    expect(asked).toMatchObject({ reason: 'AddressInUse', message: expect.stringContaining('externalTrafficPolicy Local with selector {app=dns}') });
    // A sharer whose policy changes leaves the address to the others, and is told why.
    const moved = a.assign(req('ns/tcp', { ...dns, ports: tcp, externalTrafficPolicy: 'Cluster' }));
    expect(addresses(moved)).toEqual(['203.0.113.2']); // now beside ns/cluster, which it may share with
    expect(moved.refused?.[0]).toMatchObject({ address: '203.0.113.1', holder: 'ns/udp' });
    expect(a.addressesOf('ns/udp')).toEqual(['203.0.113.1']);
  });

  it('restore: of two sharers whose policies no longer agree the older keeps the address, the younger gets another', () => {
    const a = allocator(pool('p', ['203.0.113.0/24']));
    const got = a.restore([
      req('ns/young', { created: '2026-11-30T11:00:00Z', sharingKey: 'k', ports: [{ protocol: 'UDP', port: 53 }], externalTrafficPolicy: 'Local', current: ['203.0.113.9'] }),
      req('ns/old', { created: '2026-11-30T09:00:00Z', sharingKey: 'k', ports: [{ protocol: 'TCP', port: 53 }], current: ['203.0.113.9'] }),
    ]);
    expect(addresses(got.get('ns/old')!)).toEqual(['203.0.113.9']);
    expect(addresses(got.get('ns/young')!)).toEqual(['203.0.113.1']);
    expect(got.get('ns/young')!.refused?.[0]).toMatchObject({ address: '203.0.113.9', holder: 'ns/old' });
  });

  it('releases on delete: the address goes to the next Service', () => {
    const a = allocator(pool('p', ['203.0.113.0/30']));
    a.assign(req('ns/a'));
    a.assign(req('ns/b'));
    a.release('ns/a');
    expect(addresses(a.assign(req('ns/c')))).toEqual(['203.0.113.1']);
  });

  it('keeps what a Service holds when it is assigned again, and moves it when its pool goes', () => {
    const a = allocator(pool('p', ['203.0.113.0/24']), pool('q', ['198.51.100.0/24']));
    a.assign(req('ns/a', { requested: ['198.51.100.9'] }));
    expect(addresses(a.assign(req('ns/a')))).toEqual(['198.51.100.9']);
    a.setPools([pool('p', ['203.0.113.0/24'])]);
    expect(addresses(a.assign(req('ns/a')))).toEqual(['203.0.113.1']);
  });

  it('restores from Service status after a restart: nothing moves; of two Services claiming one address the older keeps it', () => {
    const a = allocator(pool('p', ['203.0.113.0/24']));
    const got = a.restore([
      req('ns/new', { created: '2026-11-30T12:00:00Z' }),
      req('ns/young', { created: '2026-11-30T11:00:00Z', current: ['203.0.113.9'] }),
      req('ns/old', { created: '2026-11-30T09:00:00Z', current: ['203.0.113.9'] }),
      req('ns/b', { created: '2026-11-30T09:30:00Z', current: ['203.0.113.1'] }),
    ]);
    expect(addresses(got.get('ns/old')!)).toEqual(['203.0.113.9']);
    expect(addresses(got.get('ns/b')!)).toEqual(['203.0.113.1']);
    expect(addresses(got.get('ns/young')!)).toEqual(['203.0.113.2']);
    expect(addresses(got.get('ns/new')!)).toEqual(['203.0.113.3']);
  });

  it('property: whatever the order of assign and release, no address is held by two Services unless they share a key with disjoint ports and compatible traffic policies, and every address is in a pool', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('assign' as const), svc: fc.integer({ min: 0, max: 7 }), key: fc.constantFrom(undefined, 'k1', 'k2'), port: fc.constantFrom(53, 80, 443), req: fc.option(fc.integer({ min: 0, max: 9 }), { nil: undefined }), policy: fc.constantFrom('Cluster' as const, 'Local' as const), app: fc.constantFrom('', 'a', 'b') }),
      fc.record({ kind: fc.constant('release' as const), svc: fc.integer({ min: 0, max: 7 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const a = allocator(pool('p', ['203.0.113.0/29']));
        const meta = new Map<string, { key?: string; port: number; policy: string; app: string }>();
        for (const o of ops) {
          const k = `ns/s${o.svc}`;
          if (o.kind === 'release') {
            a.release(k);
            meta.delete(k);
            continue;
          }
          const selector: Record<string, string> = o.app ? { app: o.app } : {};
          const r = a.assign(req(k, { ...(o.key ? { sharingKey: o.key } : {}), ports: [{ protocol: 'TCP', port: o.port }], externalTrafficPolicy: o.policy, selector, ...(o.req !== undefined ? { requested: [`203.0.113.${o.req}`] } : {}) }));
          if ('addresses' in r) meta.set(k, { ...(o.key ? { key: o.key } : {}), port: o.port, policy: o.policy, app: o.app });
          else meta.delete(k);
        }
        const byAddress = new Map<string, string[]>();
        for (const k of meta.keys()) for (const ip of a.addressesOf(k)) byAddress.set(ip, [...(byAddress.get(ip) ?? []), k]);
        for (const [ip, ks] of byAddress) {
          const last = Number(ip.split('.')[3]);
          expect(last >= 1 && last <= 6).toBe(true);
          for (const x of ks) for (const y of ks) if (x !== y) {
            expect(meta.get(x)!.key).toBeDefined();
            expect(meta.get(x)!.key).toBe(meta.get(y)!.key);
            expect(meta.get(x)!.port).not.toBe(meta.get(y)!.port);
            // One announcement for both: both Cluster, or both Local with the same, non-empty selector.
            expect(meta.get(x)!.policy).toBe(meta.get(y)!.policy);
            if (meta.get(x)!.policy === 'Local') {
              expect(meta.get(x)!.app).not.toBe('');
              expect(meta.get(x)!.app).toBe(meta.get(y)!.app);
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
