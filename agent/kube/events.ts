// Kubernetes Events about objects the agent cannot use (a bad BGPPeer, a Node without a pod CIDR):
// `kubectl describe` shows them beside the object. Each is sent once per object version and reason;
// the name is derived from those, so when every agent reports the same bad object the API keeps one.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { KubeClient } from './client.js';
import type { ObjectRef } from './objects.js';

/** Where Events about cluster-scoped objects go, as the kubelet does for Nodes. */
export const EVENTS_PATH = '/api/v1/namespaces/default/events';

export class EventReporter {
  private readonly sent = new Set<string>();

  constructor(
    private readonly client: KubeClient,
    private readonly nodeName: string,
    private readonly log: Pick<Logger, 'warn'>,
  ) {}

  /** Fire and forget: an Event that cannot be written is logged, never retried in a loop. */
  report(ref: ObjectRef, reason: string, message: string, type: 'Warning' | 'Normal' = 'Warning'): void {
    const key = createHash('sha256').update([ref.kind, ref.name, ref.uid, ref.resourceVersion, reason, message].join('\0')).digest('hex').slice(0, 16);
    if (this.sent.has(key)) return;
    this.sent.add(key);
    const now = new Date().toISOString();
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${ref.name.slice(0, 200)}.${key}`, namespace: ref.namespace ?? 'default' },
      involvedObject: { apiVersion: ref.apiVersion, kind: ref.kind, name: ref.name, uid: ref.uid, resourceVersion: ref.resourceVersion, ...(ref.namespace ? { namespace: ref.namespace } : {}) },
      reason,
      message: message.slice(0, 1024),
      type,
      source: { component: 'lightly-agent', host: this.nodeName },
      reportingComponent: 'lightly.dev/agent',
      reportingInstance: this.nodeName,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    this.client.request('POST', ref.namespace ? `/api/v1/namespaces/${ref.namespace}/events` : EVENTS_PATH, body).then(
      (res) => {
        if (res.status >= 400 && res.status !== 409) this.log.warn({ status: res.status, reason, object: `${ref.kind}/${ref.name}` }, 'cannot write a Kubernetes Event');
      },
      (err: Error) => this.log.warn({ err: err.message, reason, object: `${ref.kind}/${ref.name}` }, 'cannot write a Kubernetes Event'),
    );
  }
}
