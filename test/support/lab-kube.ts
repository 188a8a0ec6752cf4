// The fake Kubernetes API as the Kubernetes-mode lab tests run it: its own process in the fabric
// namespace (reachable from every node), driven over a control socket, killed by stop().
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ResultPromise, execa } from 'execa';
import type { LabPlan } from '../../deploy/lab/topology.js';
import { NODES, fakeKubeRequest, kubeConfigYaml, nodeObject } from './fake-kube.js';
import { until } from './wait.js';

export const API_PORT = 6443;

export class FabricApi {
  readonly control: string;
  readonly kubeconfig: string;
  private process?: ResultPromise;

  constructor(dir: string) {
    this.control = join(dir, 'kube.sock');
    this.kubeconfig = join(dir, 'kubeconfig');
  }

  kube(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    return fakeKubeRequest(this.control, method, path, body);
  }

  /** Starts the API in the fabric and registers the plan's nodes, as kubelets would (a LabHooks.afterFabric step). */
  async start(plan: LabPlan): Promise<void> {
    writeFileSync(this.kubeconfig, kubeConfigYaml(`http://${plan.fabricAddress}:${API_PORT}`));
    this.process = execa('ip', ['netns', 'exec', plan.fabricNetns, process.execPath, '--import', 'tsx', 'test/support/fake-kube-main.ts', '--host', plan.fabricAddress, '--port', String(API_PORT), '--control', this.control], { reject: false });
    await until('the fake API', async () => existsSync(this.control), 20_000);
    for (const node of plan.nodes) {
      const created = await this.kube('POST', NODES, { apiVersion: 'v1', kind: 'Node', ...nodeObject(node.name, node.address, node.podCIDR) });
      if (created.status !== 201) throw new Error(`cannot register ${node.name}: ${created.status}`);
    }
  }

  async stop(): Promise<void> {
    this.process?.kill('SIGTERM');
    await this.process;
  }
}
