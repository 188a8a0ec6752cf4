// A peer with hold time 0 that dies silently (RFC 4271 §4.2: no KEEPALIVEs, no hold timer): TCP
// keepalive on our BGP sockets ends the session and its routes. In a throwaway namespace; the probe
// interval and count are shortened there (per-namespace sysctls) for a libuv that leaves them to the
// kernel; Node 20's libuv sets 1 s and 10 probes itself, so the loss shows ~11 s after the drop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPool, execIn, requireNetworkTools } from './support/netns.js';

const pool = new NetnsPool();
let ns = '';

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nft', 'sysctl']);
  ns = await pool.create('silent');
  for (const setting of ['net.ipv4.tcp_keepalive_intvl=1', 'net.ipv4.tcp_keepalive_probes=3']) {
    const r = await execIn(ns, 'sysctl', ['-w', setting]);
    if (r.exitCode !== 0) throw new Error(`sysctl ${setting} in ${ns}: ${String(r.stderr)}`);
  }
});

afterAll(() => pool.cleanup());

describe('hold time 0 and a silently dead peer (RFC 4271 §4.2, §8.2.2 TcpConnectionFails)', () => {
  it('the speaker notices through TCP keepalive: the session goes down and its routes with it', async () => {
    const run = await execIn(ns, process.execPath, ['--import', 'tsx', 'test/support/silent-peer-scenario.ts', '1', '20000'], { timeout: 50_000 });
    expect(run.exitCode, String(run.stderr)).toBe(0);
    const result = JSON.parse(String(run.stdout).trim().split('\n').pop()!);
    // Idle 1 s, then the probes: ~11 s measured; 20 s is the generous bound of a loaded machine.
    expect(result).toMatchObject({ noticed: true, routes: 0 });
    expect(result.state).not.toBe('Established');
  }, 60_000);
});
