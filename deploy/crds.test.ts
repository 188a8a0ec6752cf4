// The CRDs refuse at the API server what the agent would skip (issue 13, item 5): malformed addresses,
// ASNs out of 1..4294967295, selectors that do not parse; checked with the CRDs' own schemas.
import { readFileSync } from 'node:fs';
import { Address4, Address6 } from 'ip-address';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { checkBgpConfiguration, checkBgpPeer } from '../agent/kube/objects.js';
import { parseSelector } from '../agent/kube/selector.js';

const crds = parseAllDocuments(readFileSync('deploy/kubernetes/crds.yaml', 'utf8')).map((d) => d.toJS() as { spec: { names: { kind: string }; versions: { schema: { openAPIV3Schema: object } }[] } });
const ajv = new Ajv({ strict: false, allErrors: true });
const schemaOf = (kind: string) => ajv.compile(crds.find((c) => c.spec.names.kind === kind)!.spec.versions[0]!.schema.openAPIV3Schema);
const peerSchema = schemaOf('BGPPeer');
const configSchema = schemaOf('BGPConfiguration');
const peerOk = (spec: Record<string, unknown>): boolean => peerSchema({ apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPPeer', metadata: { name: 'p' }, spec });
const configOk = (spec: Record<string, unknown>): boolean => configSchema({ apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPConfiguration', metadata: { name: 'default' }, spec });
const agentTakesPeer = (spec: Record<string, unknown>): boolean => checkBgpPeer({ metadata: { name: 'p' }, spec }).spec !== undefined;

describe('CRD schemas (issue 13, item 5)', () => {
  it.each([
    [{ peerIP: '10.0.0', asn: 65000 }],
    [{ peerIP: '10.0.0.256', asn: 65000 }],
    [{ peerIP: '10.0.0.1/32', asn: 65000 }],
    [{ peerIP: 'fd00:::1', asn: 65000 }],
    [{ peerIP: 'router-1', asn: 65000 }],
    [{ peerIP: '10.0.0.1', asn: 0 }],
    [{ peerIP: '10.0.0.1', asn: 4_294_967_296 }],
    [{ peerIP: '10.0.0.1', asn: 65000, nodeSelector: 'rack in (r1' }],
    [{ peerIP: '10.0.0.1', asn: 65000, nodeSelector: 'a=b=c' }],
    [{ peerIP: '10.0.0.1', asn: 65000, nodeSelector: 'rack,,zone' }],
    [{ peerIP: '10.0.0.1' }],
    [{ asn: 65000 }],
    [{ peerIP: '10.0.0.1', asn: 65000, peerSelector: 'edge' }],
    [{ peerSelector: 'a=b=c' }],
    [{ peerIP: '10.0.0.1', asn: 65000, password: { secretKeyRef: { name: 'bgp' } } }],
  ])('a BGPPeer with %j is refused, as the agent refuses it', (spec) => {
    expect(peerOk(spec)).toBe(false);
    expect(agentTakesPeer(spec)).toBe(false);
  });

  it.each([
    [{ peerIP: '192.0.2.254', asn: 65000 }],
    [{ peerIP: 'fd00::fe', asn: 4_294_967_295 }],
    [{ peerIP: '2001:db8:0:0:1:0:0:1', asn: 1, nodeSelector: 'rack in (r1, r2),!edge,topology.kubernetes.io/zone=eu-1a' }],
    [{ peerIP: '192.0.2.254', asn: 65000, node: 'node-1.example.com' }],
    [{ peerSelector: 'edge', nodeSelector: 'rack=r1' }],
    [{ peerSelector: 'edge', asn: 65000 }],
    [{ peerIP: '192.0.2.254', asn: 65000, password: { secretKeyRef: { name: 'bgp-passwords', key: 'tor-r1' } } }],
  ])('a BGPPeer with %j is accepted by both', (spec) => {
    expect(peerOk(spec)).toBe(true);
    expect(agentTakesPeer(spec)).toBe(true);
  });

  it('a node name must be one Kubernetes could have (the agent would only never match it)', () => {
    expect(peerOk({ peerIP: '10.0.0.1', asn: 65000, node: 'Node_1' })).toBe(false);
  });

  it('agrees with the agent on IP addresses', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6().filter((a) => !a.includes('.')), fc.ipV4Extended(), fc.string({ maxLength: 20 })), (peerIP) => {
        const agent = (Address4.isValid(peerIP) || Address6.isValid(peerIP)) && !peerIP.includes('/');
        // The agent is the stricter side where they differ (it reads the address); the CRD must never pass what it refuses.
        if (peerOk({ peerIP, asn: 65000 })) expect(agent, peerIP).toBe(true);
        if (!peerIP.includes('.') || /^\d+\.\d+\.\d+\.\d+$/.test(peerIP)) expect(peerOk({ peerIP, asn: 65000 }), peerIP).toBe(agent);
      }),
      { numRuns: 500 },
    );
  });

  it('agrees with the agent on label selectors', () => {
    const key = fc.constantFrom('rack', 'zone', 'constructor', 'topology.kubernetes.io/zone', 'a', 'x-1');
    const value = fc.constantFrom('r1', 'r2', '', 'a.b', 'eu-1a');
    const requirement = fc.oneof(
      key,
      key.map((k) => `!${k}`),
      fc.tuple(key, fc.constantFrom('=', '==', '!='), value).map(([k, op, v]) => `${k}${op}${v}`),
      fc.tuple(key, fc.constantFrom(' in ', ' notin '), fc.array(value, { minLength: 1, maxLength: 3 })).map(([k, op, vs]) => `${k}${op}(${vs.join(',')})`),
      fc.string({ maxLength: 8 }),
    );
    fc.assert(
      fc.property(fc.array(requirement, { minLength: 1, maxLength: 3 }), (reqs) => {
        const selector = reqs.join(',');
        let agent = true;
        try {
          parseSelector(selector);
        } catch {
          agent = false;
        }
        if (peerOk({ peerIP: '10.0.0.1', asn: 65000, nodeSelector: selector })) expect(agent, selector).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('BGPConfiguration import CIDRs must be CIDRs', () => {
    for (const importCIDRs of [['10.244.0.0'], ['10.244.0.0/33'], ['fd00::/129'], ['10.244.0/16']]) {
      expect(configOk({ importCIDRs }), JSON.stringify(importCIDRs)).toBe(false);
      expect(checkBgpConfiguration({ metadata: { name: 'default' }, spec: { importCIDRs } }).invalid).toBeDefined();
    }
    expect(configOk({ importCIDRs: ['10.244.0.0/16', 'fd00:244::/48'], asn: 4_294_967_295 })).toBe(true);
    expect(configOk({ asn: 0 })).toBe(false);
  });
});
