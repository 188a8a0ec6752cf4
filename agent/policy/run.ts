// Kubernetes mode's network policy from the node-local settings: started beside the BGP side, stopped after it.
import type { Logger } from 'pino';
import type { ApiEndpoint } from '../kube/kubeconfig.js';
import type { StatusRoute } from '../status-server.js';
import type { FlowPort, PolicyFacts } from '../doctor/facts.js';
import { PolicyEnforcer, PolicySettings } from './enforcer.js';

export { removePolicyTable } from './enforcer.js';

/** undefined when `networkPolicy.enabled` is false in the node-local settings. */
export function startPolicy(deps: { api: ApiEndpoint; nodeName: string; local: Record<string, unknown>; log: Logger }): { routes: Record<string, StatusRoute>; flowFacts(local: string, remote: string, port?: FlowPort): PolicyFacts; stop(): Promise<void> } | undefined {
  const settings = PolicySettings.parse(deps.local.networkPolicy ?? {});
  if (!settings.enabled) {
    deps.log.info({}, 'network policy enforcement disabled (networkPolicy.enabled: false)');
    return undefined;
  }
  const enforcer = new PolicyEnforcer({ api: deps.api, nodeName: deps.nodeName, log: deps.log.child({ part: 'policy' }) });
  enforcer.start();
  return { routes: enforcer.statusRoutes(), flowFacts: (local, remote, port) => enforcer.flowFacts(local, remote, port), stop: () => enforcer.stop(settings.removeOnStop) };
}
