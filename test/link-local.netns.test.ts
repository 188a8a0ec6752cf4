// Link-local next hops against a real kernel, in a throwaway namespace: a route via fe80::… is
// installed with its link, read back as the same route (no churn), and resolves only on that link
// (RFC 2545 §3, RFC 4291 §2.5.6).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPool, addConnectedLink, execIn, ipIn, requireNetworkTools } from './support/netns.js';
import { RouteReconciler } from '../routes/reconciler.js';
import { ReachabilityTable } from '../routes/reachability.js';

const pool = new NetnsPool();
let ns = '';

beforeAll(async () => {
  await requireNetworkTools(['ip']);
  ns = await pool.create('ll');
  await addConnectedLink(ns, 'va', 'vb', ['fe80::1/64']);
});
afterAll(() => pool.cleanup());

describe('link-local next hops in the kernel', () => {
  it('a route via fe80::2%va is installed as `via fe80::2 dev va`, read back unchanged, and removed', async () => {
    const rec = new RouteReconciler({ netns: ns });
    await rec.start();
    rec.setDesired([{ prefix: 'fd00:9::/64', type: 'unicast', nextHops: ['fe80::2%va'] }]);
    await rec.flush();
    expect(await ipIn(ns, ['-6', 'route', 'show', 'proto', '201'])).toContain('fd00:9::/64 via fe80::2 dev va');
    const again = new RouteReconciler({ netns: ns }); // a restarted agent adopts it as the same route
    await again.start();
    expect(again.installed()).toEqual([expect.objectContaining({ prefix: 'fd00:9::/64', nextHops: ['fe80::2%va'] })]);
    rec.stop();
    again.setDesired([]);
    await again.flush();
    again.stop();
    expect(await ipIn(ns, ['-6', 'route', 'show', 'proto', '201'])).toBe('');
  });

  it('resolves on a link with fe80::/64 up, not bare, not on another link, and our own is local', async () => {
    const ip = async (args: string[]) => String((await execIn(ns, 'ip', ['-json', ...args])).stdout);
    const table = ReachabilityTable.fromIpJson([await ip(['-6', 'route', 'show', 'table', 'main'])], await ip(['addr', 'show']));
    expect(table.resolve('fe80::2%va')).toBe('reachable');
    expect(table.resolve('fe80::2')).toBe('unreachable');
    expect(table.resolve('fe80::2%lo')).toBe('unreachable');
    expect(table.resolve('fe80::1%va')).toBe('local');
  });
});
