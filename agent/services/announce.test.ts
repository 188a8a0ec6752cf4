import { describe, expect, it } from 'vitest';
import { readyNodesByService, serviceAnnouncements } from './announce.js';
import { type SlimEndpointSlice, type SlimService, slimEndpointSlice, slimService } from './objects.js';

const config = { clusterIPs: ['10.96.0.1/12'], externalIPs: ['198.51.100.0/24'], loadBalancerIPs: ['203.0.113.0/24', '2001:db8:5::/64'] };
const svc = (name: string, spec: Record<string, unknown>, ingress: string[] = []): SlimService =>
  slimService({ metadata: { name, namespace: 'default' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }], ...spec }, status: { loadBalancer: { ingress: ingress.map((ip) => ({ ip })) } } });
const slice = (service: string, endpoints: [node: string, ready: boolean][]): SlimEndpointSlice =>
  slimEndpointSlice({ metadata: { name: `${service}-x`, namespace: 'default', labels: { 'kubernetes.io/service-name': service } }, endpoints: endpoints.map(([nodeName, ready]) => ({ addresses: ['10.244.1.2'], nodeName, conditions: { ready } })) });

const prefixes = (node: string, services: SlimService[], slices: SlimEndpointSlice[] = []) => serviceAnnouncements(node, config, services, readyNodesByService(slices)).announcements.map((a) => a.prefix);

describe('serviceAnnouncements', () => {
  it('the cluster IP range as an aggregate from every node, canonical', () => {
    expect(serviceAnnouncements('node-1', config, [], new Map()).announcements).toEqual([{ prefix: '10.96.0.0/12', origin: 'service-cluster-ip-range', services: [] }]);
  });

  it('externalTrafficPolicy Cluster: the LoadBalancer and external addresses from every node, with the Services that cause them', () => {
    const services = [svc('web', { externalIPs: ['198.51.100.7'] }, ['203.0.113.10', '2001:db8:5::10']), svc('api', { type: 'ClusterIP', externalIPs: ['198.51.100.7'] })];
    const { announcements } = serviceAnnouncements('node-3', config, services, new Map());
    expect(announcements).toEqual([
      { prefix: '10.96.0.0/12', origin: 'service-cluster-ip-range', services: [] },
      { prefix: '198.51.100.7/32', origin: 'service-external-ip', services: ['default/api', 'default/web'] },
      { prefix: '2001:db8:5::10/128', origin: 'service-load-balancer-ip', services: ['default/web'] },
      { prefix: '203.0.113.10/32', origin: 'service-load-balancer-ip', services: ['default/web'] },
    ]);
  });

  it('externalTrafficPolicy Local: only from nodes with a ready local endpoint, following endpoints as they move', () => {
    const web = svc('web', { externalTrafficPolicy: 'Local' }, ['203.0.113.10']);
    const at = (slices: SlimEndpointSlice[]) => ['node-1', 'node-2', 'node-3'].filter((n) => prefixes(n, [web], slices).includes('203.0.113.10/32'));
    expect(at([slice('web', [['node-1', true], ['node-2', true]])])).toEqual(['node-1', 'node-2']);
    expect(at([slice('web', [['node-2', true], ['node-3', true]])])).toEqual(['node-2', 'node-3']);
    expect(at([slice('web', [['node-2', false], ['node-3', true]])])).toEqual(['node-3']); // not ready: not counted
    expect(at([slice('other', [['node-1', true]])])).toEqual([]); // another Service's endpoints
    expect(at([])).toEqual([]); // the last endpoint gone: withdrawn everywhere
  });

  it('an unset ready condition counts as ready (discovery.k8s.io/v1)', () => {
    const s = slimEndpointSlice({ metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, endpoints: [{ addresses: ['10.244.1.2'], nodeName: 'node-1' }] });
    expect(readyNodesByService([s]).get('default/web')).toEqual(new Set(['node-1']));
  });

  it('nothing outside the configured ranges: such addresses are listed as ignored, with the reason for the Event', () => {
    const services = [svc('web', { externalIPs: ['192.0.2.99'] }, ['10.0.0.5'])];
    const { announcements, ignored } = serviceAnnouncements('node-1', config, services, new Map());
    expect(announcements.map((a) => a.prefix)).toEqual(['10.96.0.0/12']);
    expect(ignored.map((i) => [i.address, i.reason])).toEqual([['192.0.2.99', 'ExternalIPNotAdvertised'], ['10.0.0.5', 'LoadBalancerIPNotAdvertised']]);
    expect(serviceAnnouncements('node-1', { clusterIPs: [], externalIPs: [], loadBalancerIPs: [] }, [svc('x', {}, ['203.0.113.10'])], new Map()).announcements).toEqual([]);
  });

  it("another implementation's LoadBalancer (another loadBalancerClass) is not ours to announce", () => {
    expect(prefixes('node-1', [svc('web', { loadBalancerClass: 'example.com/other' }, ['203.0.113.10'])])).toEqual(['10.96.0.0/12']);
    expect(prefixes('node-1', [svc('web', { loadBalancerClass: 'lightly.dev/bgp' }, ['203.0.113.10'])])).toContain('203.0.113.10/32');
  });
});

describe('slimService', () => {
  it('reads requests from the annotation (dual stack) before spec.loadBalancerIP, and refuses bad ones', () => {
    expect(svc('a', { loadBalancerIP: '203.0.113.5' }).requested).toEqual(['203.0.113.5']);
    const annotated = slimService({ metadata: { name: 'a', annotations: { 'lightly.dev/load-balancer-ips': '203.0.113.5, 2001:db8:5::5' } }, spec: { type: 'LoadBalancer', loadBalancerIP: '203.0.113.6' } });
    expect(annotated.requested).toEqual(['203.0.113.5', '2001:db8:5::5']);
    expect(annotated.families).toEqual(['IPv4', 'IPv6']);
    expect(slimService({ metadata: { name: 'a', annotations: { 'lightly.dev/load-balancer-ips': '203.0.113.5,203.0.113.6' } }, spec: { type: 'LoadBalancer' } }).requestError).toMatch(/one address per family/);
    expect(slimService({ metadata: { name: 'a', annotations: { 'lightly.dev/load-balancer-ips': 'nope' } }, spec: { type: 'LoadBalancer' } }).requestError).toMatch(/not an IP/);
  });
});
