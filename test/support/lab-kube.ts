// The fake API server run in a lab's fabric namespace, so that the nodes' agents reach it as a real
// API server; the test drives it through its control socket (the file system crosses namespaces).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ResultPromise, execa } from 'execa';
import type { LabNode, LabPlan } from '../../deploy/lab/topology.js';
import { FABRIC_ADDRESS6, podCIDRsOf } from '../../deploy/lab/ip-families.js';
import { ROUTER_ID_ANNOTATION } from '../../agent/kube/objects.js';
import { NODES, fakeKubeRequest, kubeConfigYaml, nodeObject } from './fake-kube.js';
import { until } from './wait.js';

export const API_PORT = 6443;

export interface FabricApi {
  kubeconfig: string;
  control: string;
  kube(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** The lab's `afterFabric` hook: starts the API and registers the nodes, as kubelets would. */
  afterFabric(plan: LabPlan): Promise<void>;
  stop(): Promise<void>;
}

/** The Node a kubelet and kube-controller-manager would make for a lab node: its addresses and pod CIDRs of each family. */
export function labNodeObject(node: LabNode): ReturnType<typeof nodeObject> & { metadata: { annotations?: Record<string, string> } } {
  const object = nodeObject(node.name, node.address, node.podCIDR);
  object.spec = { podCIDR: node.podCIDR, podCIDRs: podCIDRsOf(node) };
  if (node.address6) object.status.addresses.push({ type: 'InternalIP', address: node.address6 });
  return node.routerId ? { ...object, metadata: { ...object.metadata, annotations: { [ROUTER_ID_ANNOTATION]: node.routerId } } } : object;
}

export function fabricApi(dir: string): FabricApi {
  const control = join(dir, 'kube.sock');
  const kubeconfig = join(dir, 'kubeconfig');
  let api: ResultPromise | undefined;
  const kube = (method: string, path: string, body?: unknown) => fakeKubeRequest(control, method, path, body);
  return {
    kubeconfig,
    control,
    kube,
    async afterFabric(plan) {
      // An IPv6-only lab's nodes reach the fabric over IPv6 only.
      const host = plan.options.stack === 'ipv6' ? FABRIC_ADDRESS6 : plan.fabricAddress;
      writeFileSync(kubeconfig, kubeConfigYaml(`http://${host.includes(':') ? `[${host}]` : host}:${API_PORT}`));
      api = execa('ip', ['netns', 'exec', plan.fabricNetns, process.execPath, '--import', 'tsx', 'test/support/fake-kube-main.ts', '--host', host, '--port', String(API_PORT), '--control', control], { reject: false });
      await until('the fake API', async () => existsSync(control), 20_000);
      for (const node of plan.nodes) {
        const created = await kube('POST', NODES, { apiVersion: 'v1', kind: 'Node', ...labNodeObject(node) });
        if (created.status !== 201) throw new Error(`cannot register ${node.name}: ${created.status}`);
      }
    },
    async stop() {
      api?.kill('SIGTERM');
      await api;
    },
  };
}
