// One allocator at a time: leader election over a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection does it. The holder renews the Lease; the others take it over once they have seen
// it unchanged for a whole lease duration (their own clock: no trust in the holder's timestamps).
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.js';

export interface LeaseRecord {
  holder?: string;
  durationSeconds?: number;
  renewTime?: string;
  transitions: number;
  resourceVersion: string;
}

export type LeaseAction = 'create' | 'renew' | 'take-over' | 'wait';

/**
 * Pure: what to do about the Lease. `observedAt` is when we last saw it change (its resourceVersion);
 * a Lease whose holder has not renewed it for a whole duration since then is free.
 */
export function leaseAction(lease: LeaseRecord | undefined, me: string, observedAt: number, now: number, durationMs: number): LeaseAction {
  if (!lease) return 'create';
  if (lease.holder === me) return 'renew';
  if (!lease.holder) return 'take-over'; // released by its last holder
  return now - observedAt >= durationMs ? 'take-over' : 'wait';
}

export interface LeaseElectorOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  /** How long a Lease not renewed stays its holder's (default 15 s, client-go's default). */
  durationMs?: number;
  /** How often the holder renews and the others look (default 2 s). */
  retryMs?: number;
  log: Pick<Logger, 'info' | 'warn'>;
}

/** Emits 'leading' (true/false) when we gain or lose the Lease. */
export class LeaseElector extends EventEmitter<{ leading: [boolean] }> {
  leading = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private observed?: { resourceVersion: string; at: number };
  private lastRenewed = 0;
  private readonly path: string;

  constructor(private readonly options: LeaseElectorOptions) {
    super();
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${options.namespace}/leases`;
  }

  private get durationMs(): number {
    return this.options.durationMs ?? 15_000;
  }

  start(): void {
    void this.tick();
  }

  /**
   * Stops; a holder hands the Lease back (holder cleared) so another takes over at once. Without
   * `handBack` (tests: a crash) the Lease stays until it expires.
   */
  async stop(handBack = true): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading || !handBack) return;
    this.setLeading(false);
    try {
      const current = await this.options.client.call('GET', `${this.path}/${this.options.name}`);
      if (current?.spec?.holderIdentity === this.options.identity) {
        await this.options.client.call('PUT', `${this.path}/${this.options.name}`, { ...current, spec: { ...current.spec, holderIdentity: '' } });
      }
    } catch (err) {
      this.options.log.warn({ err: (err as Error).message }, 'cannot hand back the allocator lease; it expires by itself');
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.attempt();
    } catch (err) {
      this.options.log.warn({ err: (err as Error).message, lease: this.options.name }, 'allocator lease: API call failed');
    }
    // A holder that could not renew for a whole duration must assume another has taken over.
    if (this.leading && Date.now() - this.lastRenewed >= this.durationMs) this.setLeading(false);
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.options.retryMs ?? 2_000);
  }

  private async attempt(): Promise<void> {
    const { client, name, identity } = this.options;
    const res = await client.request('GET', `${this.path}/${name}`);
    if (res.status >= 400 && res.status !== 404) throw new Error(`GET lease: ${res.status}`);
    const raw = res.status === 404 ? undefined : res.body;
    const record: LeaseRecord | undefined = raw && {
      holder: raw.spec?.holderIdentity || undefined,
      durationSeconds: raw.spec?.leaseDurationSeconds,
      renewTime: raw.spec?.renewTime,
      transitions: Number(raw.spec?.leaseTransitions ?? 0),
      resourceVersion: String(raw.metadata?.resourceVersion ?? ''),
    };
    const now = Date.now();
    if (record && record.resourceVersion !== this.observed?.resourceVersion) this.observed = { resourceVersion: record.resourceVersion, at: now };
    const action = leaseAction(record, identity, this.observed?.at ?? now, now, this.durationMs);
    if (action === 'wait') {
      if (this.leading) this.setLeading(false);
      return;
    }
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.durationMs / 1000),
      renewTime: new Date(now).toISOString().replace('Z', '000Z'), // MicroTime
      ...(action === 'renew' ? { acquireTime: raw.spec?.acquireTime, leaseTransitions: record!.transitions } : { acquireTime: new Date(now).toISOString().replace('Z', '000Z'), leaseTransitions: (record?.transitions ?? -1) + 1 }),
    };
    const write =
      action === 'create'
        ? await client.request('POST', this.path, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: this.options.namespace }, spec })
        : await client.request('PUT', `${this.path}/${name}`, { ...raw, spec }); // raw carries the resourceVersion: a race loses with 409
    if (write.status === 409) {
      if (this.leading) this.setLeading(false);
      return;
    }
    if (write.status >= 400) throw new Error(`${action} lease: ${write.status} ${write.body?.message ?? ''}`);
    this.observed = { resourceVersion: String(write.body?.metadata?.resourceVersion ?? ''), at: now };
    this.lastRenewed = now;
    if (!this.leading) {
      this.options.log.info({ lease: name, identity, action }, 'allocator lease acquired: this agent allocates LoadBalancer addresses');
      this.setLeading(true);
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    if (!leading) this.options.log.info({ lease: this.options.name }, 'allocator lease lost');
    this.emit('leading', leading);
  }
}
