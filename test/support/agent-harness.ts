// A whole agent in a namespace with raw BGP peers in another: for end-to-end and fuzz tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { type NetnsPool, ipIn } from './netns.js';
import type { DriverCommand, DriverReply } from './peer-driver.js';

export const AGENT = '10.0.1.1';
export const AGENT6 = 'fd00:1::1';

type Command = DriverCommand extends infer C ? (C extends DriverCommand ? Omit<C, 'id'> : never) : never;

/** The peer driver child process, inside the peers' namespace. */
export class Driver {
  private next = 1;
  private readonly waiting = new Map<number, (r: DriverReply) => void>();

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const reply = JSON.parse(line) as DriverReply;
      this.waiting.get(reply.id)?.(reply);
      this.waiting.delete(reply.id);
    });
  }

  async run(command: Command, timeoutMs = 60_000): Promise<DriverReply> {
    const id = this.next++;
    const reply = await new Promise<DriverReply>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`peer driver: no answer to ${command.op} in ${timeoutMs} ms`)), timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.child.stdin!.write(JSON.stringify({ ...command, id }) + '\n');
    });
    if (reply.error) throw new Error(`peer driver ${command.op}: ${reply.error}`);
    return reply;
  }
}

export interface AgentUnderTest {
  ns: string;
  peersNs: string;
  dir: string;
  agent: ChildProcess;
  driver: Driver;
  /** The agent's output, for a failure message. */
  log(): string;
  /** Lines of `ip route show proto 201` in the agent's namespace, IPv4 then IPv6. */
  routes(): Promise<string[]>;
  /** GET on the status socket, with a deadline. */
  status(timeoutMs?: number): Promise<{ peers: { address: string; state: string; prefixesReceived: number }[] }>;
  alive(): boolean;
  close(): Promise<void>;
}

/**
 * The agent's namespace holds 10.0.1.1/24 and fd00:1::1/64 on a veth to the peers' namespace, which
 * holds `peerAddresses` (and their fd00:1:: twins). The agent listens on 179; peers are passive on
 * its side, so the raw peers open every session.
 */
export async function startAgent(pool: NetnsPool, peers: { address: string; asn: number }[], extra: Record<string, unknown> = {}): Promise<AgentUnderTest> {
  const ns = await pool.create('agent');
  const peersNs = await pool.create('peers');
  await ipIn(ns, ['link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peersNs]);
  await ipIn(ns, ['addr', 'add', `${AGENT}/24`, 'dev', 'p0']);
  await ipIn(ns, ['addr', 'add', `${AGENT6}/64`, 'dev', 'p0', 'nodad']);
  await ipIn(ns, ['link', 'set', 'p0', 'up']);
  for (const p of peers) {
    await ipIn(peersNs, ['addr', 'add', `${p.address}/24`, 'dev', 'eth0']);
    await ipIn(peersNs, ['addr', 'add', `fd00:1::${p.address.split('.')[3]}/64`, 'dev', 'eth0', 'nodad']);
  }
  await ipIn(peersNs, ['link', 'set', 'eth0', 'up']);
  const dir = mkdtempSync(join(tmpdir(), 'lt-agent-'));
  const socket = join(dir, 'agent.sock');
  writeFileSync(join(dir, 'agent.yaml'), stringify({
    nodeName: 'fuzz', routerId: AGENT, asn: 64512, podCIDRs: ['10.244.1.0/24'],
    listen: { address: '0.0.0.0', port: 179 }, holdTime: 9, connectRetrySeconds: 0.2,
    peers: peers.map((p) => ({ ...p, passive: true })),
    importCIDRs: ['10.0.0.0/8', 'fd00::/8'], statusSocket: socket, cniServer: { enabled: false }, iprouteDir: join(dir, 'iproute2'),
    gracefulRestart: { enabled: true, restartTime: 30 }, ...extra,
  }));
  const out: Buffer[] = [];
  const agent = spawn('ip', ['netns', 'exec', ns, process.execPath, 'dist/bin/lightly-agent.js', '--config', join(dir, 'agent.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout!.on('data', (d: Buffer) => out.push(d));
  agent.stderr!.on('data', (d: Buffer) => out.push(d));
  let exited = false;
  agent.on('exit', () => (exited = true));
  const driverChild = spawn('ip', ['netns', 'exec', peersNs, process.execPath, '--import', 'tsx', 'test/support/peer-driver.ts'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const status = (timeoutMs = 5_000) =>
    new Promise<any>((resolve, reject) => {
      const req = request({ socketPath: socket, path: '/v1/bgp/status', timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
      });
      req.on('timeout', () => req.destroy(new Error(`status socket: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await status(1_000);
      break;
    } catch (err) {
      if (exited || Date.now() > deadline) throw new Error(`the agent did not start: ${(err as Error).message}\n${Buffer.concat(out).toString()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return {
    ns, peersNs, dir, agent, driver: new Driver(driverChild), status,
    log: () => Buffer.concat(out).toString(),
    routes: async () => {
      const v4 = await ipIn(ns, ['-4', 'route', 'show', 'proto', '201']);
      const v6 = await ipIn(ns, ['-6', 'route', 'show', 'proto', '201']);
      return [...v4.split('\n'), ...v6.split('\n')].map((l) => l.trim()).filter(Boolean);
    },
    alive: () => !exited,
    close: async () => {
      driverChild.stdin!.end();
      driverChild.kill('SIGTERM');
      agent.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      if (!exited) agent.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
