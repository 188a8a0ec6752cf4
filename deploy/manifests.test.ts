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
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { Service } from 'kubernetes-models/v1';
import { parseAgentConfig } from '../agent/config.js';
import { desiredBgp } from '../agent/kube/desired.js';
import { startMetricsServer } from '../agent/metrics.js';

/**
 * The part of kustomize the overlays use: `resources` (a directory with a kustomization, or a file)
 * and JSON patches (RFC 6902) on a target kind and name. Neither Debian (its kubectl is 1.20, with a
 * kustomize too old for `labels:`) nor npm has a kustomize, so the overlays are rendered here; any
 * other field makes the rendering fail rather than be ignored. (Checked once by hand against
 * `kubectl kustomize` v5.5: the same DaemonSet.)
 */
function kustomize(dir: string): Manifest[] {
  const k = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Record<string, any>;
  const handled = new Set(['apiVersion', 'kind', 'resources', 'patches', 'namespace', 'labels', 'images']);
  for (const key of Object.keys(k)) if (!handled.has(key)) throw new Error(`${dir}: kustomization field ${key} is not rendered by this test`);
  if (k.namespace || k.labels || k.images) {
    if (!dir.endsWith('kubernetes')) throw new Error(`${dir}: namespace, labels and images belong in the base`);
  }
  const resources: Manifest[] = (k.resources as string[]).flatMap((r) => {
    const path = join(dir, r);
    return existsSync(join(path, 'kustomization.yaml')) ? kustomize(path) : documents(path);
  });
  for (const p of (k.patches ?? []) as { target: { kind: string; name: string }; patch: string }[]) {
    const targets = resources.filter((m) => m.kind === p.target.kind && m.metadata.name === p.target.name);
    if (targets.length !== 1) throw new Error(`${dir}: patch target ${p.target.kind}/${p.target.name} matches ${targets.length}`);
    applyJsonPatch(targets[0]!, parseYaml(p.patch) as JsonPatchOp[]);
  }
  return resources;
}

type JsonPatchOp = { op: 'add' | 'replace' | 'remove' | 'test'; path: string; value?: unknown };

/** RFC 6902 add, replace, remove and test, in place; a failed `test` (section 4.6) fails the whole patch. */
function applyJsonPatch(doc: any, ops: JsonPatchOp[]): void {
  for (const { op, path, value } of ops) {
    const keys = path.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~')); // RFC 6901
    const last = keys.pop()!;
    const parent = keys.reduce((node, key) => {
      if (node?.[key] === undefined) throw new Error(`json patch: ${path}: no ${key}`);
      return node[key];
    }, doc);
    if (op === 'test') {
      expect(parent[last], `json patch test ${path}`).toEqual(value);
    } else if (op === 'remove' || op === 'replace') {
      if (!(last in parent)) throw new Error(`json patch: ${op} ${path}: nothing there`);
      if (op === 'remove') Array.isArray(parent) ? parent.splice(Number(last), 1) : delete parent[last];
      else parent[last] = value;
    } else if (Array.isArray(parent)) {
      parent.splice(last === '-' ? parent.length : Number(last), 0, value);
    } else {
      parent[last] = value;
    }
  }
}

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

function documents(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Manifest;
  });
}

const BASE = 'deploy/kubernetes';
const kustomization = parseYaml(readFileSync(join(BASE, 'kustomization.yaml'), 'utf8')) as { namespace: string; resources: string[]; images: { name: string; newTag: string }[] };
const installed = kustomization.resources.flatMap((r) => documents(join(BASE, r)));
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
  'rbac.authorization.k8s.io/v1/Role': (m) => new Role(m as never),
  'rbac.authorization.k8s.io/v1/RoleBinding': (m) => new RoleBinding(m as never),
  'apiextensions.k8s.io/v1/CustomResourceDefinition': (m) => new CustomResourceDefinition(m as never),
};

describe('deploy/ manifests', () => {
  it('kustomization lists files that exist, and only Kubernetes manifests (not the lab)', () => {
    for (const r of kustomization.resources) expect(existsSync(join(BASE, r)), r).toBe(true);
    expect(kustomization.resources.some((r) => r.includes('lab'))).toBe(false);
    expect(kustomization.namespace).toBe('kube-system');
    // `kubectl apply -k deploy/` is the base and nothing else.
    expect(parseYaml(readFileSync('deploy/kustomization.yaml', 'utf8')).resources).toEqual(['kubernetes']);
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
      expect(crds.map((c) => c.metadata.name).sort()).toEqual(['bgpconfigurations.lightly.dev', 'bgppeers.lightly.dev', 'loadbalancerippools.lightly.dev']);
      for (const c of crds) {
        expect(c.metadata.name).toBe(`${c.spec.names.plural}.${c.spec.group}`);
        expect(c.spec.scope).toBe('Cluster');
        expect(c.spec.versions.map((v: { name: string }) => v.name)).toEqual(['v1alpha1']);
      }
    });

    it.each(examples.filter((m) => m.apiVersion.startsWith('lightly.dev/')).map((m) => [`${m.kind} ${m.metadata.name}`, m] as const))('example %s is valid', (_name, m) => {
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

    it('runs on every Linux node in the host network, with the capabilities it needs and no privileged mode', () => {
      expect(pod.hostNetwork).toBe(true);
      expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
      expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
      expect(pod.priorityClassName).toBe('system-node-critical');
      expect(pod.serviceAccountName).toBe(one('ServiceAccount').metadata.name);
      for (const c of [agent, init]) {
        expect(c.securityContext.privileged).not.toBe(true);
        expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
      }
      expect([...agent.securityContext.capabilities.add].sort()).toEqual(['NET_ADMIN', 'NET_BIND_SERVICE', 'SYS_ADMIN']);
      // containerd and CRI-O name pods' namespaces under /var/run/netns: no host pids needed (deploy/cri-dockerd adds them).
      expect(pod.hostPID).toBeUndefined();
      expect(agent.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    });

    it('runs outside AppArmor and SELinux confinement (ip -n remounts /sys; install-cni writes host paths), on every cluster version', () => {
      for (const c of [agent, init]) {
        expect(c.securityContext.appArmorProfile, c.name).toEqual({ type: 'Unconfined' });
        // Before 1.30 only the annotation counts; from 1.30 the API server refuses an annotation that disagrees with the field.
        expect(ds.spec.template.metadata.annotations[`container.apparmor.security.beta.kubernetes.io/${c.name}`], c.name).toBe('unconfined');
        expect(c.securityContext.seLinuxOptions, c.name).toEqual({ type: 'spc_t', level: 's0' });
      }
      const annotated = Object.keys(ds.spec.template.metadata.annotations).filter((k) => k.startsWith('container.apparmor'));
      expect(annotated.map((k) => k.split('/')[1]).sort()).toEqual([...pod.containers, ...pod.initContainers].map((c: { name: string }) => c.name).sort());
    });

    it('stops within a grace period that leaves the successor time inside the graceful restart window', () => {
      const local = parseYaml(one('ConfigMap').data['agent.yaml']) as { gracefulRestart: { enabled: boolean; restartTime: number } };
      expect(local.gracefulRestart.enabled).toBe(true);
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(10);
      // The old pod may take the whole grace period; the new one must still pull, install-cni and reconnect.
      expect(pod.terminationGracePeriodSeconds * 2).toBeLessThanOrEqual(local.gracefulRestart.restartTime);
    });

    it('is scraped by Prometheus on the agent\'s metrics port', () => {
      const annotations = ds.spec.template.metadata.annotations;
      const metricsPort = agent.ports.find((p: { name: string }) => p.name === 'metrics').containerPort;
      expect(annotations['prometheus.io/scrape']).toBe('true');
      expect(Number(annotations['prometheus.io/port'])).toBe(metricsPort);
      expect(annotations['prometheus.io/path']).toBe('/metrics');
      const local = parseYaml(one('ConfigMap').data['agent.yaml']) as { metricsPort: number };
      expect(local.metricsPort).toBe(metricsPort);
    });

    it('the ServiceMonitor example selects a Service over the agents\' metrics port', () => {
      const service = examples.find((m) => m.kind === 'Service')!;
      const monitor = examples.find((m) => m.kind === 'ServiceMonitor')!;
      expect(() => new Service(service as never).validate()).not.toThrow();
      expect(service.spec.selector).toEqual(ds.spec.selector.matchLabels);
      expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
      expect(monitor.spec.namespaceSelector.matchNames).toEqual([service.metadata.namespace]);
      const port = service.spec.ports.find((p: { name: string }) => p.name === monitor.spec.endpoints[0].port);
      expect(agent.ports.map((p: { name: string }) => p.name)).toContain(port.targetPort);
    });

    it('turns ready while a configured peer is down, so one router down does not stop a rolling update', async () => {
      const probe = agent.readinessProbe.httpGet;
      const down = { address: '192.0.2.254', asn: 65000, type: 'global', state: 'Active', uptimeSeconds: 0, prefixesReceived: 0, prefixesAdvertised: 0 };
      const up = { ...down, address: '192.0.2.2', asn: 64512, type: 'node-mesh', state: 'Established' };
      const source = {
        bgpStatus: () => ({ node: 'n1', routerId: '192.0.2.1', asn: 64512, peers: [down, up] }),
        node: () => ({ nodeName: 'n1', podCIDRs: ['10.244.1.0/24'] }),
        routes: () => [{ prefix: '10.244.1.0/24', type: 'blackhole', nextHops: [] }],
      };
      const server = await startMetricsServer(0, '127.0.0.1', source as never);
      try {
        const res = await fetch(`http://127.0.0.1:${server.port}${probe.path}`);
        expect(res.status, probe.path).toBe(200);
      } finally {
        await server.close();
      }
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
        // node, its own flags (the agent's heap settings), then the bundle
        expect(c.command[0]).toBe('node');
        expect(c.command.find((a: string) => !a.startsWith('-') && a !== 'node')).toBe('/opt/lightly/bin/lightly-agent.js');
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
      // agent/policy/enforcer.ts reflects what NetworkPolicy selectors read.
      for (const [group, resource] of [['', 'pods'], ['', 'namespaces'], ['networking.k8s.io', 'networkpolicies']] as const) expect(allowed(group, resource, verb)).toBe(true);
    }
    expect(allowed('', 'nodes/status', 'patch')).toBe(true);
    expect(allowed('lightly.dev', 'bgpconfigurations', 'create')).toBe(true);
    // agent/kube/events.ts POSTs Events about invalid objects and node problems.
    expect(allowed('', 'events', 'create')).toBe(true);
    expect(allowed('', 'nodes', 'patch')).toBe(false);
    const binding = one('ClusterRoleBinding');
    expect(binding.roleRef.name).toBe(one('ClusterRole').metadata.name);
    expect(binding.subjects).toContainEqual({ kind: 'ServiceAccount', name: one('ServiceAccount').metadata.name, namespace: kustomization.namespace });
    // Secrets (BGPPeer passwords, agent/kube/cluster.ts): only in the agent's namespace, only what a reflector does.
    expect(allowed('', 'secrets', 'list') || allowed('', 'secrets', 'get')).toBe(false);
    const role = byKind('Role').find((r) => r.metadata.name === 'lightly-bgp-passwords')!;
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['list', 'watch'] }]);
    // the only Role that grants Secrets (the other one is the LoadBalancer allocator's Lease)
    expect(byKind('Role').filter((r) => JSON.stringify(r.rules).includes('secrets'))).toEqual([role]);
    const roleBinding = byKind('RoleBinding').find((b) => b.roleRef.name === role.metadata.name)!;
    expect(roleBinding.roleRef).toMatchObject({ kind: 'Role', name: role.metadata.name });
    expect(roleBinding.subjects).toContainEqual({ kind: 'ServiceAccount', name: one('ServiceAccount').metadata.name, namespace: kustomization.namespace });
    const agent = one('DaemonSet').spec.template.spec.containers.find((c: { name: string }) => c.name === 'agent');
    expect(agent.env).toContainEqual({ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
  });
});

describe('overlays', () => {
  const daemonSetOf = (dir: string): Manifest => {
    const found = kustomize(dir).filter((m) => m.kind === 'DaemonSet');
    expect(found).toHaveLength(1);
    return found[0]!;
  };
  const hostPathOf = (ds: Manifest, volume: string): string =>
    ds.spec.template.spec.volumes.find((v: { name: string }) => v.name === volume).hostPath.path;
  const base = daemonSetOf(BASE);

  it('deploy/ renders the base unchanged', () => {
    expect(daemonSetOf('deploy')).toEqual(base);
  });

  it('k3s: install-cni writes where k3s\' containerd looks (data/cni, agent/etc/cni/net.d), nothing else changes', () => {
    const k3s = daemonSetOf('deploy/k3s');
    expect(hostPathOf(k3s, 'cni-bin-dir')).toBe('/var/lib/rancher/k3s/data/cni');
    expect(hostPathOf(k3s, 'cni-net-dir')).toBe('/var/lib/rancher/k3s/agent/etc/cni/net.d');
    expect(() => new DaemonSet(k3s as never).validate()).not.toThrow();
    const volumes = (ds: Manifest) => ds.spec.template.spec.volumes.filter((v: { name: string }) => !['cni-bin-dir', 'cni-net-dir'].includes(v.name));
    expect(volumes(k3s)).toEqual(volumes(base));
    expect({ ...k3s.spec.template.spec, volumes: [] }).toEqual({ ...base.spec.template.spec, volumes: [] });
    // Not the hashed data/<hash>/bin that changes on every k3s upgrade, nor its `current` link.
    expect(JSON.stringify(k3s)).not.toMatch(/k3s\/data\/(current|[0-9a-f]{16,})/);
  });

  it('cri-dockerd: adds host pids and SYS_PTRACE to the agent only', () => {
    const docker = daemonSetOf('deploy/cri-dockerd');
    expect(docker.spec.template.spec.hostPID).toBe(true);
    const agent = docker.spec.template.spec.containers.find((c: { name: string }) => c.name === 'agent');
    expect(agent.securityContext.capabilities.add).toContain('SYS_PTRACE');
    expect(() => new DaemonSet(docker as never).validate()).not.toThrow();
  });

  it('a patch whose `test` no longer holds (the base\'s volumes moved) fails the rendering', () => {
    const moved = structuredClone(base);
    moved.spec.template.spec.volumes.reverse();
    const patch = parseYaml(parseYaml(readFileSync('deploy/k3s/kustomization.yaml', 'utf8')).patches[0].patch) as JsonPatchOp[];
    expect(() => applyJsonPatch(moved, patch)).toThrow(/json patch test/);
  });
});
