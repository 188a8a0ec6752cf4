// The whole agent process against raw peers in a namespace: UPDATEs that once crashed it on re-encoding
// past 4096 bytes (RFC 4271 §4.3) leave it running, every session up, the oversized route not sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { NetnsPool, addConnectedLink, execIn, ipIn, requireNetworkTools } from './support/netns.js';

const AGENT = 'dist/bin/lightly-agent.js';
const PORT = 1790;
const pool = new NetnsPool();
const dir = mkdtempSync(join(tmpdir(), 'lt-survive-'));
let ns = '';
let agent: ChildProcess | undefined;
let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
const output: Buffer[] = [];

beforeAll(async () => {
  await requireNetworkTools(['ip']);
  if (!existsSync(AGENT)) throw new Error(`${AGENT} is missing: run npm run build first`);
  ns = await pool.create('survive');
  // The eBGP peer's next hops must resolve (RFC 4271 §9.1.2.1): a connected subnet on a veth pair.
  await addConnectedLink(ns, 'nh0', 'nh1', ['192.0.2.1/24', 'fd00::1/64']);
  writeFileSync(join(dir, 'agent.yaml'), stringify({
    nodeName: 'survivor', routerId: '10.0.0.1', asn: 64512, listen: { address: '127.0.0.1', port: PORT },
    peers: [
      { address: '127.0.0.2', asn: 65000, passive: true },
      { address: '127.0.0.3', asn: 64512, passive: true },
      { address: '127.0.0.4', asn: 64512, passive: true },
    ],
    importCIDRs: ['10.0.0.0/8', 'fd00::/8'], statusSocket: join(dir, 'agent.sock'),
    cniServer: { enabled: false }, iprouteDir: join(dir, 'iproute2'),
  }));
  agent = spawn('ip', ['netns', 'exec', ns, process.execPath, AGENT, '--config', join(dir, 'agent.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout?.on('data', (d: Buffer) => output.push(d));
  agent.stderr?.on('data', (d: Buffer) => output.push(d));
  agent.on('exit', (code, signal) => void (exited = { code, signal }));
  const deadline = Date.now() + 20_000;
  while (!Buffer.concat(output).toString().includes('bgp speaker started')) {
    if (exited || Date.now() > deadline) throw new Error(`agent did not start: ${Buffer.concat(output).toString()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  if (agent && !exited) {
    agent.kill('SIGKILL');
    await new Promise((r) => agent!.once('exit', r));
  }
  await pool.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('the agent process never dies of what a peer sends (RFC 4271 §4.3)', () => {
  it('a 4095-byte UPDATE from eBGP and 300 IPv6 /128s with 90 communities: the agent runs on, sessions up, every UPDATE it sends at most 4096 bytes', async () => {
    const run = await execIn(ns, process.execPath, ['--import', 'tsx', 'test/support/raw-peer-scenario.ts', String(PORT)], { timeout: 40_000 });
    expect(run.exitCode, String(run.stderr)).toBe(0);
    const result = JSON.parse(String(run.stdout).trim().split('\n').pop()!);
    await new Promise((r) => setTimeout(r, 500));
    expect(exited, Buffer.concat(output).toString().slice(-3000)).toBeUndefined();
    // Everything but the route that cannot fit for iBGP (10.9.0.0/24): 300 IPv6 and 10.8.0.0/24.
    for (const peer of ['ibgp', 'late']) expect(result[peer], peer).toEqual({ announced: 301, notifications: [], errors: 0, closed: false });
    expect(result.ebgp).toMatchObject({ notifications: [], closed: false });
    const log = Buffer.concat(output).toString();
    expect(log).toContain('route does not fit one UPDATE for this peer');
    expect(log).not.toContain('bgp session fault');
  }, 60_000);
});
