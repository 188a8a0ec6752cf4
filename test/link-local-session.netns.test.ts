// Two agents peering over link-local addresses (`fe80::2%eth`), each in its own namespace: RFC 2545 §3
// next hops end to end. With a global address on the link, routes go via it (the global first, the
// link-local after it); on a link with link-local addresses only, via the link-local one alone.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPool, ipIn, requireNetworkTools } from './support/netns.js';
import { until } from './support/wait.js';

const pool = new NetnsPool();
const dir = mkdtempSync(join(tmpdir(), 'lt-llsess-'));
const agents: ChildProcess[] = [];

beforeAll(() => requireNetworkTools(['ip']));
afterAll(async () => {
  for (const a of agents) a.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  for (const a of agents) if (a.exitCode === null) a.kill('SIGKILL');
  await pool.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** Node i's agent in `ns`, peering with the other node's link-local address on `dev`. */
function startAgent(ns: string, i: number, dev: string, peerLinkLocal: string): void {
  const config = join(dir, `${ns}.yaml`);
  writeFileSync(config, stringify({
    nodeName: `ll-${i}`, routerId: `10.0.0.${i}`, asn: 64512, podCIDRs: [`fd00:10:244:${i}::/64`],
    listen: { address: '::', port: 179 }, holdTime: 9, connectRetrySeconds: 0.2,
    peers: [{ address: `${peerLinkLocal}%${dev}`, asn: 64512 }],
    importCIDRs: ['fd00:10:244::/48'], statusSocket: join(dir, `${ns}.sock`), cniServer: { enabled: false }, iprouteDir: join(dir, 'iproute2'),
  }));
  const agent = spawn('ip', ['netns', 'exec', ns, process.execPath, 'dist/bin/lightly-agent.js', '--config', config], { stdio: 'ignore' });
  agents.push(agent);
}

/** Two namespaces joined by a veth (ea–eb) with fe80::1 and fe80::2, and these global addresses when given. */
async function pairWithAgents(globals?: [string, string]): Promise<[string, string]> {
  const a = await pool.create('lla');
  const b = await pool.create('llb');
  await ipIn(a, ['link', 'add', 'ea', 'type', 'veth', 'peer', 'name', 'eb', 'netns', b]);
  for (const [ns, dev, ll, global] of [[a, 'ea', 'fe80::1', globals?.[0]], [b, 'eb', 'fe80::2', globals?.[1]]] as const) {
    await ipIn(ns, ['addr', 'flush', 'dev', dev]);
    await ipIn(ns, ['link', 'set', dev, 'addrgenmode', 'none']); // only the link-local address we give it
    await ipIn(ns, ['-6', 'addr', 'add', `${ll}/64`, 'dev', dev, 'nodad']);
    if (global) await ipIn(ns, ['-6', 'addr', 'add', `${global}/64`, 'dev', dev, 'nodad']);
    await ipIn(ns, ['link', 'set', dev, 'up']);
  }
  startAgent(a, 1, 'ea', 'fe80::2');
  startAgent(b, 2, 'eb', 'fe80::1');
  return [a, b];
}

const routes6 = (ns: string): Promise<string> => ipIn(ns, ['-6', 'route', 'show', 'proto', '201']);

describe('a BGP session over link-local addresses (RFC 2545 §3)', () => {
  it('with global addresses on the link, routes go via the global one (sent first, the link-local after it)', async () => {
    const [a, b] = await pairWithAgents(['fd00:2::1', 'fd00:2::2']);
    // A session can come up before its link is reported up (the kernel sets a link's state up to a
    // second after `ip link set up`), its link-local next hop sent alone at first: the global one follows.
    await until('routes both ways, via the global addresses', async () => (await routes6(a)).includes('fd00:10:244:2::/64 via fd00:2::2') && (await routes6(b)).includes('fd00:10:244:1::/64 via fd00:2::1'), 30_000);
    expect(await routes6(a)).toContain('fd00:10:244:2::/64 via fd00:2::2 dev ea');
    expect(await routes6(b)).toContain('fd00:10:244:1::/64 via fd00:2::1 dev eb');
  }, 60_000);

  it('on a link with link-local addresses only, via the peer\'s link-local address on that link', async () => {
    const [a, b] = await pairWithAgents();
    await until('routes both ways', async () => (await routes6(a)).includes('fd00:10:244:2::/64') && (await routes6(b)).includes('fd00:10:244:1::/64'), 30_000);
    expect(await routes6(a)).toContain('fd00:10:244:2::/64 via fe80::2 dev ea');
    expect(await routes6(b)).toContain('fd00:10:244:1::/64 via fe80::1 dev eb');
  }, 60_000);
});
