// Every manifest in deploy/ checked against Kubernetes' own schemas (kubernetes-models, generated from
// the API's OpenAPI), every custom resource against its CRD's schema, and the pieces against each other
// and against what the agent's code asks of the API.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Ajv } from 'ajv';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { ConfigMap, ServiceAccount } from 'kubernetes-models/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { parseAgentConfig } from '../agent/config.js';
import { desiredBgp } from '../agent/kube/desired.js';

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: any };

function documents(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Manifest;
  });
}

const kustomization = parseYaml(readFileSync('deploy/kustomization.yaml', 'utf8')) as { namespace: string; resources: string[]; images: { name: string; newTag: string }[] };
const installed = kustomization.resources.flatMap((r) => documents(join('deploy', r)));
const examples = readdirSync('deploy/examples').flatMap((f) => documents(join('deploy/examples', f)));
const byKind = (kind: string): Manifest[] => installed.filter((m) => m.kind === kind);
const one = (kind: string): Manifest => {
  const found = byKind(kind);
  expect(found, kind).toHaveLength(1);
  return found[0]!;
};

const VALIDATORS: Record<string, (m: Manifest) => { validate(): void }> = {
  'apps/v1/DaemonSet': (m) => new DaemonSet(m as never),
  'v1/ConfigMap': (m) => new ConfigMap(m as never),
  'v1/ServiceAccount': (m) => new ServiceAccount(m as never),
  'rbac.authorization.k8s.io/v1/ClusterRole': (m) => new ClusterRole(m as never),
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': (m) => new ClusterRoleBinding(m as never),
  'apiextensions.k8s.io/v1/CustomResourceDefinition': (m) => new CustomResourceDefinition(m as never),
};

describe('deploy/ manifests', () => {
  it('kustomization lists files that exist, and only Kubernetes manifests (not the lab)', () => {
    for (const r of kustomization.resources) expect(existsSync(join('deploy', r)), r).toBe(true);
    expect(kustomization.resources.some((r) => r.includes('lab'))).toBe(false);
    expect(kustomization.namespace).toBe('kube-system');
  });

  it.each(installed.map((m) => [`${m.kind} ${m.metadata.name}`, m] as const))('%s is valid against the Kubernetes schema', (_name, m) => {
    const make = VALIDATORS[`${m.apiVersion}/${m.kind}`];
    expect(make, `no validator for ${m.apiVersion} ${m.kind}`).toBeDefined();
    expect(() => make!(m).validate()).not.toThrow();
  });

  it('the schema check can fail: a DaemonSet with a wrong field type is refused', () => {
    const broken = structuredClone(one('DaemonSet'));
    broken.spec.template.spec.hostNetwork = 'yes';
    expect(() => new DaemonSet(broken as never).validate()).toThrow(/hostNetwork/);
  });

  describe('custom resources against their CRDs', () => {
    const crds = byKind('CustomResourceDefinition');
    const ajv = new Ajv({ strict: false, allErrors: true });
    const validatorFor = (apiVersion: string, kind: string) => {
      const crd = crds.find((c) => c.spec.names.kind === kind && apiVersion === `${c.spec.group}/${c.spec.versions[0].name}`);
      if (!crd) throw new Error(`no CRD for ${apiVersion} ${kind}`);
      return ajv.compile(crd.spec.versions[0].schema.openAPIV3Schema);
    };

    it('CRD names are <plural>.<group> and match what the agent watches', () => {
      expect(crds.map((c) => c.metadata.name).sort()).toEqual(['bgpconfigurations.lightly.dev', 'bgppeers.lightly.dev']);
      for (const c of crds) {
        expect(c.metadata.name).toBe(`${c.spec.names.plural}.${c.spec.group}`);
        expect(c.spec.scope).toBe('Cluster');
        expect(c.spec.versions.map((v: { name: string }) => v.name)).toEqual(['v1alpha1']);
      }
    });

    it.each(examples.map((m) => [`${m.kind} ${m.metadata.name}`, m] as const))('example %s is valid', (_name, m) => {
      const validate = validatorFor(m.apiVersion, m.kind);
      expect(validate(m), JSON.stringify(validate.errors)).toBe(true);
    });

    it('refuses what the agent would refuse: hold time 2, a missing peerIP, a string ASN', () => {
      const config = validatorFor('lightly.dev/v1alpha1', 'BGPConfiguration');
      const peer = validatorFor('lightly.dev/v1alpha1', 'BGPPeer');
      expect(config({ apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPConfiguration', metadata: {}, spec: { holdTime: 2 } })).toBe(false);
      expect(config({ apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPConfiguration', metadata: {}, spec: { asn: '64512' } })).toBe(false);
      expect(peer({ apiVersion: 'lightly.dev/v1alpha1', kind: 'BGPPeer', metadata: {}, spec: { asn: 65000 } })).toBe(false);
    });

    it('the examples mean what their comments say', () => {
      const node = (name: string, ip: string, labels: Record<string, string> = {}) => ({ name, labels, internalIPs: [ip], podCIDRs: [] });
      const tor = examples.find((m) => m.kind === 'BGPPeer')!;
      const nodes = [node('n1', '192.0.2.1', { rack: 'r1' }), node('n2', '192.0.2.2', { rack: 'r2' })];
      const peers = [{ name: tor.metadata.name, ...tor.spec }];
      expect(desiredBgp('n1', nodes, {}, peers).peers.map((p) => p.address)).toContain(tor.spec.peerIP);
      expect(desiredBgp('n2', nodes, {}, peers).peers.map((p) => p.address)).not.toContain(tor.spec.peerIP);
    });
  });

  describe('the DaemonSet', () => {
    const ds = one('DaemonSet');
    const pod = ds.spec.template.spec;
    const agent = pod.containers.find((c: { name: string }) => c.name === 'agent');
    const init = pod.initContainers.find((c: { name: string }) => c.name === 'install-cni');

    it('runs on every node in the host network, with the capabilities it needs and no privileged mode', () => {
      expect(pod.hostNetwork).toBe(true);
      expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
      expect(pod.serviceAccountName).toBe(one('ServiceAccount').metadata.name);
      for (const c of [agent, init]) {
        expect(c.securityContext.privileged).not.toBe(true);
        expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
      }
      expect(agent.securityContext.capabilities.add.sort()).toEqual(['NET_ADMIN', 'NET_BIND_SERVICE', 'SYS_ADMIN', 'SYS_PTRACE']);
      expect(agent.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    });

    it('mounts what the agent, the CNI server and install-cni use, from declared volumes', () => {
      const volumes = new Map(pod.volumes.map((v: { name: string }) => [v.name, v]));
      for (const c of [agent, init]) for (const m of c.volumeMounts) expect(volumes.has(m.name), `${c.name}: ${m.name}`).toBe(true);
      const hostPaths = (c: { volumeMounts: { name: string; mountPath: string }[] }) =>
        Object.fromEntries(c.volumeMounts.map((m) => [m.mountPath, (volumes.get(m.name) as { hostPath?: { path: string } }).hostPath?.path]));
      expect(hostPaths(init)).toMatchObject({ '/host/opt/cni/bin': '/opt/cni/bin', '/host/etc/cni/net.d': '/etc/cni/net.d', '/host/opt/lightly': '/opt/lightly' });
      expect(hostPaths(agent)).toMatchObject({ '/run/lightly': '/run/lightly', '/var/lib/cni': '/var/lib/cni', '/var/run/netns': '/var/run/netns', '/host/proc/sys/net': '/proc/sys/net' });
      expect(agent.env).toContainEqual({ name: 'LIGHTLY_SYSCTL_NET', value: '/host/proc/sys/net' });
      expect(init.args).toEqual(expect.arrayContaining(['--cni-bin-dir', '/host/opt/cni/bin', '--cni-conf-dir', '/host/etc/cni/net.d', '--lightly-dir', '/host/opt/lightly']));
    });

    it('runs the built binaries with the ConfigMap settings, which the agent accepts', () => {
      for (const c of [agent, init]) {
        expect(c.command.slice(0, 2)).toEqual(['node', '/opt/lightly/bin/lightly-agent.js']);
        expect(c.image.split(':')[0]).toBe(kustomization.images[0]!.name);
      }
      expect(agent.command).toEqual(expect.arrayContaining(['--kubernetes', '--config', '/etc/lightly/agent.yaml']));
      const configMap = one('ConfigMap');
      expect(pod.volumes.find((v: { name: string }) => v.name === 'config').configMap.name).toBe(configMap.metadata.name);
      const local = parseYaml(configMap.data['agent.yaml']) as Record<string, unknown>;
      const config = parseAgentConfig({ ...local, nodeName: 'n1', routerId: '192.0.2.1' }, 'configmap');
      expect(config.metricsPort).toBe(agent.readinessProbe.httpGet.port);
      expect(config.statusSocket.startsWith('/run/lightly/')).toBe(true);
      expect(Number(configMap.data.mtu)).toBeGreaterThan(0);
    });
  });

  it('RBAC grants what ClusterWatch uses, bound to the DaemonSet service account', () => {
    const rules = one('ClusterRole').rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    const allowed = (group: string, resource: string, verb: string) =>
      rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    for (const verb of ['get', 'list', 'watch']) {
      expect(allowed('', 'nodes', verb)).toBe(true);
      expect(allowed('lightly.dev', 'bgppeers', verb)).toBe(true);
      expect(allowed('lightly.dev', 'bgpconfigurations', verb)).toBe(true);
    }
    expect(allowed('', 'nodes/status', 'patch')).toBe(true);
    expect(allowed('lightly.dev', 'bgpconfigurations', 'create')).toBe(true);
    expect(allowed('', 'nodes', 'patch')).toBe(false);
    const binding = one('ClusterRoleBinding');
    expect(binding.roleRef.name).toBe(one('ClusterRole').metadata.name);
    expect(binding.subjects).toContainEqual({ kind: 'ServiceAccount', name: one('ServiceAccount').metadata.name, namespace: kustomization.namespace });
  });
});
