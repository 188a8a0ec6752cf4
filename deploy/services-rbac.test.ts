// Service advertisement's RBAC is exactly what the agent calls (issue 15), and its CRD fields validate
// as the agent reads them.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { checkBgpConfiguration } from '../agent/kube/objects.js';
import { checkPool } from '../agent/services/objects.js';

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
const docs = parseAllDocuments(readFileSync('deploy/kubernetes/rbac.yaml', 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[] });
const rulesOf = (kind: string) => docs.find((d) => d.kind === kind)!.rules!;
const verbs = (rules: Rule[], group: string, resource: string) => rules.filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource)).flatMap((r) => r.verbs).sort();

const crds = parseAllDocuments(readFileSync('deploy/kubernetes/crds.yaml', 'utf8')).map((d) => d.toJS() as { spec: { names: { kind: string }; versions: { schema: { openAPIV3Schema: object } }[] } });
const ajv = new Ajv({ strict: false, allErrors: true });
const schemaOf = (kind: string) => ajv.compile(crds.find((c) => c.spec.names.kind === kind)!.spec.versions[0]!.schema.openAPIV3Schema);

describe('Service advertisement RBAC: exactly the verbs used', () => {
  it('services list/watch, services/status patch, endpointslices list/watch, pools list/watch, events create', () => {
    const cluster = rulesOf('ClusterRole');
    expect(verbs(cluster, '', 'services')).toEqual(['list', 'watch']);
    expect(verbs(cluster, '', 'services/status')).toEqual(['patch']);
    expect(verbs(cluster, 'discovery.k8s.io', 'endpointslices')).toEqual(['list', 'watch']);
    expect(verbs(cluster, 'lightly.dev', 'loadbalancerippools')).toEqual(['list', 'watch']);
    expect(verbs(cluster, '', 'events')).toEqual(['create']);
    expect(verbs(cluster, 'coordination.k8s.io', 'leases')).toEqual([]); // only in kube-system, below
  });

  it('the Lease: create in kube-system, get/update of lightly-lb-allocator only', () => {
    const role = docs.find((d) => d.kind === 'Role' && d.metadata.name === 'lightly-lb-allocator')!;
    expect(role.metadata.namespace).toBe('kube-system');
    expect(role.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['lightly-lb-allocator'], verbs: ['get', 'update'] },
    ]);
    expect(docs.some((d) => d.kind === 'RoleBinding' && d.metadata.name === 'lightly-lb-allocator')).toBe(true);
  });
});

describe('CRDs: LoadBalancerIPPool and the BGPConfiguration Service ranges', () => {
  const pool = schemaOf('LoadBalancerIPPool');
  const config = schemaOf('BGPConfiguration');
  const poolOk = (spec: unknown) => pool({ apiVersion: 'lightly.dev/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'p' }, spec });

  it.each([
    [{ cidrs: ['203.0.113.0/24'] }, true],
    [{ cidrs: ['203.0.113.0/24', '2001:db8::/64'], serviceSelector: 'team in (a,b)', allowFirstLastIPs: true }, true],
    [{ cidrs: [] }, false],
    [{ cidrs: ['203.0.113.0'] }, false],
    [{ cidrs: ['203.0.113.0/24'], serviceSelector: 'team in (a' }, false],
  ])('pool %j: API server and agent agree (%s)', (spec, ok) => {
    expect(poolOk(spec)).toBe(ok);
    expect(checkPool({ metadata: { name: 'p' }, spec }).spec !== undefined).toBe(ok);
  });

  it('serviceClusterIPs/serviceExternalIPs/serviceLoadBalancerIPs: lists of {cidr}', () => {
    const spec = { serviceClusterIPs: [{ cidr: '10.96.0.0/12' }], serviceLoadBalancerIPs: [{ cidr: '2001:db8:5::/112' }] };
    expect(config({ apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec })).toBe(true);
    expect(checkBgpConfiguration({ metadata: { name: 'default' }, spec }).spec).toMatchObject(spec);
    const bad = { serviceExternalIPs: [{ cidr: '198.51.100.7' }] };
    expect(config({ apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec: bad })).toBe(false);
    expect(checkBgpConfiguration({ metadata: { name: 'default' }, spec: bad }).invalid).toMatch(/serviceExternalIPs/);
  });
});
