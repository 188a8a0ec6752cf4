// lightlyctl end to end against a status server over a real unix socket, plus its pure formatting.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { startStatusServer, type StatusServer } from '../status-server.js';
import type { BgpStatus, InstalledRoute } from '../status.js';
import { formatAnnounced, formatBgpStatus, formatDuration, formatRoutes } from './format.js';

const CTL = resolve('dist/bin/lightlyctl.js');
const status: BgpStatus = {
  node: 'node-1', routerId: '192.0.2.1', asn: 64512,
  peers: [
    { address: '192.0.2.2', asn: 64512, type: 'node-mesh', state: 'Established', uptimeSeconds: 42, prefixesReceived: 3, prefixesAdvertised: 2,
      families: [{ family: 'ipv4-unicast', prefixesReceived: 1, prefixesAdvertised: 1 }, { family: 'ipv6-unicast', prefixesReceived: 2, prefixesAdvertised: 1 }] },
    { address: '192.0.2.254', asn: 65000, type: 'global', state: 'Active', uptimeSeconds: 0, prefixesReceived: 0, prefixesAdvertised: 0, info: 'connection refused' },
  ],
};
const routes: InstalledRoute[] = [
  { prefix: '10.244.1.0/24', type: 'blackhole', nextHops: [] },
  { prefix: '10.244.2.0/24', type: 'unicast', nextHops: ['192.0.2.2'] },
];

let dir = '';
let server: StatusServer;
beforeAll(async () => {
  if (!existsSync(CTL)) throw new Error(`${CTL} is missing: run npm run build (scripts/test.sh does)`);
  dir = mkdtempSync(join(tmpdir(), 'lt-ctl-'));
  server = await startStatusServer(join(dir, 'agent.sock'), {
    bgpStatus: () => status, routes: () => routes, node: () => ({ nodeName: 'node-1', podCIDRs: ['10.244.1.0/24'] }),
  });
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('lightlyctl', () => {
  it('bgp status --json prints the architecture shape', async () => {
    const out = await execa(process.execPath, [CTL, '--socket', join(dir, 'agent.sock'), 'bgp', 'status', '--json']);
    expect(JSON.parse(out.stdout)).toEqual(status);
  });
  it('bgp status prints a table with every peer', async () => {
    const out = await execa(process.execPath, [CTL, '--socket', join(dir, 'agent.sock'), 'bgp', 'status']);
    expect(out.stdout).toContain('| PEER ADDRESS | PEER TYPE');
    expect(out.stdout).toMatch(/\| 192\.0\.2\.2\s+\| node-to-node mesh \| up\s+\| 42s\s+\| 3\/2\s+\| ipv4 1\/1, ipv6 2\/1 \| Established/);
    expect(out.stdout).toMatch(/\| 192\.0\.2\.254\s+\| global\s+\| start \| -\s+\| 0\/0\s+\| -\s+\| Active: connection refused/);
  });
  it('routes lists what is installed', async () => {
    const out = await execa(process.execPath, [CTL, '--socket', join(dir, 'agent.sock'), 'routes']);
    expect(out.stdout).toMatch(/10\.244\.2\.0\/24\s+\| unicast\s+\| 192\.0\.2\.2/);
    const json = await execa(process.execPath, [CTL, `--socket=${join(dir, 'agent.sock')}`, 'routes', '--json']);
    expect(JSON.parse(json.stdout)).toEqual(routes);
  });
  it('says clearly when the agent is not running', async () => {
    const out = await execa(process.execPath, [CTL, '--socket', join(dir, 'nothing.sock'), 'bgp', 'status'], { reject: false });
    expect(out.exitCode).toBe(3);
    expect(out.stderr).toContain('cannot reach the lightly agent');
    expect(out.stderr).toContain('Is lightly-agent running');
  });
  it('rejects unknown commands with usage', async () => {
    const out = await execa(process.execPath, [CTL, 'frobnicate'], { reject: false });
    expect(out.exitCode).toBe(2);
    expect(out.stderr).toContain('usage: lightlyctl');
  });
  it('--help and --version print and exit 0', async () => {
    const help = await execa(process.execPath, [CTL, '--help']);
    expect(help.stdout).toContain('lightlyctl [--socket PATH] doctor FROM TO');
    const version = await execa(process.execPath, [CTL, '--version']);
    expect(version.stdout).toMatch(/^lightlyctl \d+\.\d+\.\d+$/);
  });
  it('completion bash completes commands and their options in a real bash', async () => {
    const script = (await execa(process.execPath, [CTL, 'completion', 'bash'])).stdout;
    const complete = async (line: string): Promise<string[]> => {
      const words = line.split(' ');
      const out = await execa('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _lightlyctl; echo "\${COMPREPLY[@]}"`]);
      return out.stdout.trim().split(/\s+/).filter(Boolean);
    };
    expect(await complete('lightlyctl d')).toEqual(['doctor', 'doctor-facts']);
    expect(await complete('lightlyctl bgp ')).toEqual(['status']);
    expect(await complete('lightlyctl --socket /x doctor a b --')).toEqual(['--json', '--lab', '--dest-facts', '--dest-socket', '--port', '--family']);
  });
  it('doctor-facts refuses what is not an address, before any command runs', async () => {
    const out = await execa(process.execPath, [CTL, '--socket', join(dir, 'agent.sock'), 'doctor-facts', '10.0.0.1', '10.0.0.2;reboot'], { reject: false });
    expect(out.exitCode).toBe(1);
    expect(out.stderr).toContain('is not an IP address');
    const { getJson } = await import('./client.js');
    await expect(getJson(join(dir, 'agent.sock'), '/v1/doctor/facts?local=10.0.0.1&remote=x')).rejects.toThrow(/400.*remote must be an IP address/);
  });
  it('the socket is root-only', () => {
    expect(statSync(join(dir, 'agent.sock')).mode & 0o777).toBe(0o600);
  });
});

describe('formatting', () => {
  it('durations', () => {
    expect([0, 42, 61, 3725, 90061].map(formatDuration)).toEqual(['0s', '42s', '1m1s', '1h2m', '1d1h']);
  });
  it('no peers, no routes', () => {
    expect(formatBgpStatus({ ...status, peers: [] })).toContain('No BGP peers configured.');
    expect(formatRoutes([])).toBe('No routes installed by Lightly.');
    const announced = formatAnnounced([{ prefix: '10.244.1.0/24', origin: 'pod-cidr' }, { prefix: '203.0.113.10/32', origin: 'service-load-balancer-ip', services: ['default/web', 'shop/api'] }]);
    expect(announced).toMatch(/203\.0\.113\.10\/32 +\| service-load-balancer-ip \| default\/web, shop\/api/);
    expect(formatBgpStatus({ ...status, announced: [{ prefix: '10.96.0.0/12', origin: 'service-cluster-ip-range' }] })).toContain('10.96.0.0/12     | service-cluster-ip-range | -');
  });
});
