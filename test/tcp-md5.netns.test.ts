// TCP MD5 session authentication (RFC 2385) between our agent and BIRD 2 and FRR, in both directions
// (we connect to a passive router; a router connects to us, passive): the right password
// establishes, a wrong or missing one never does and `lightlyctl bgp status` says why, and the key
// shows nowhere (log, status, metrics, command line).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { NetnsPool, execIn, ipIn, requireNetworkTools } from './support/netns.js';
import { until } from './support/wait.js';
import { type RouterFiles, birdProtocols, frrNeighbors, routerPids, startBird, startFrr, stopRouters } from '../deploy/lab/routers.js';

const pool = new NetnsPool();
const dir = mkdtempSync(join(tmpdir(), 'lt-md5-'));
const PASSWORD = `lt-md5-${randomBytes(8).toString('hex')}`;
const WRONG = `lt-wrong-${randomBytes(8).toString('hex')}`;
const METRICS_PORT = 9464;
let us = '';
let agent: ChildProcess | undefined;
let agentLog = '';

/** The four routers: BIRD and FRR, each once passive (we connect) and once active (it connects to us). */
interface Router {
  name: string;
  kind: 'bird' | 'frr';
  /** who opens the TCP connection */
  connects: 'we' | 'they';
  asn: number;
  subnet: number;
  netns: string;
  files: RouterFiles;
}
const routers: Router[] = [
  { name: 'birdwe', kind: 'bird', connects: 'we', asn: 65001, subnet: 1 },
  { name: 'birdthey', kind: 'bird', connects: 'they', asn: 65002, subnet: 2 },
  { name: 'frrwe', kind: 'frr', connects: 'we', asn: 65003, subnet: 3 },
  { name: 'frrthey', kind: 'frr', connects: 'they', asn: 65004, subnet: 4 },
].map((r) => ({ ...r, kind: r.kind as Router['kind'], connects: r.connects as Router['connects'], netns: '', files: { dir, name: r.name } }));
const ours = (r: Router) => `10.200.${r.subnet}.1`;
const theirs = (r: Router) => `10.200.${r.subnet}.2`;
/** The IPv6 session with the first BIRD (we connect): on our `::` listener IPv4 peers' keys are v4-mapped. */
const OURS6 = 'fd00:200:1::1';
const THEIRS6 = 'fd00:200:1::2';

function birdConf(r: Router): string {
  return `router id ${theirs(r)};
log "${join(dir, r.name, 'bird.log')}" all;
protocol device {}
protocol static { ipv4; route 10.9${r.subnet}.0.0/24 unreachable; }
protocol bgp lightly {
  local ${theirs(r)} as ${r.asn}; neighbor ${ours(r)} as 64512;
  hold time 3; connect retry time 1; ${r.connects === 'we' ? 'passive on;' : ''}
  password "${PASSWORD}";
  ipv4 { import all; export all; };
}
${r.name === 'birdwe' ? `protocol bgp lightly6 {
  local ${THEIRS6} as ${r.asn}; neighbor ${OURS6} as 64512;
  hold time 3; connect retry time 1; passive on;
  password "${PASSWORD}";
  ipv6 { import all; export none; };
}
` : ''}`;
}

function frrConf(r: Router): string {
  return `hostname ${r.name}
router bgp ${r.asn}
 bgp router-id ${theirs(r)}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor ${ours(r)} remote-as 64512
 neighbor ${ours(r)} password ${PASSWORD}
 neighbor ${ours(r)} timers 1 3
 neighbor ${ours(r)} timers connect 1
${r.connects === 'we' ? ` neighbor ${ours(r)} passive\n` : ''} address-family ipv4 unicast
  network 10.9${r.subnet}.0.0/24
 exit-address-family
`;
}

/** Our config: each router with `password(r)` (none when undefined); passive where the router connects. */
function writeAgentConfig(password: (r: Router) => string | undefined): void {
  writeFileSync(join(dir, 'agent.yaml'), stringify({
    nodeName: 'md5', routerId: '10.200.1.1', asn: 64512, podCIDRs: ['10.244.1.0/24'],
    listen: { address: '::', port: 179 }, holdTime: 3, connectRetrySeconds: 1,
    peers: [
      ...routers.map((r) => ({ address: theirs(r), asn: r.asn, passive: r.connects === 'they', ...(password(r) ? { password: password(r) } : {}) })),
      { address: THEIRS6, asn: routers[0]!.asn, ...(password(routers[0]!) ? { password: password(routers[0]!) } : {}) },
    ],
    importCIDRs: ['10.0.0.0/8'], statusSocket: join(dir, 'agent.sock'), metricsPort: METRICS_PORT,
    cniServer: { enabled: false }, iprouteDir: join(dir, 'iproute2'), gracefulRestart: { enabled: false, restartTime: 30 },
  }), { mode: 0o600 });
}

const ctl = (...args: string[]) => execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', join(dir, 'agent.sock'), ...args]);
const ourStatus = async (): Promise<{ peers: { address: string; state: string; info?: string; hint?: string }[] }> => JSON.parse((await ctl('bgp', 'status', '--json')).stdout);
const ourState = async (r: Router) => (await ourStatus()).peers.find((p) => p.address === theirs(r))?.state;

const v6Established = async () => (await ourStatus()).peers.find((p) => p.address === THEIRS6)?.state === 'Established' && (await birdProtocols(routers[0]!.files)).lightly6 === 'Established';

async function theirState(r: Router): Promise<string | undefined> {
  if (r.kind === 'bird') return (await birdProtocols(r.files)).lightly;
  return (await frrNeighbors(r.netns, r.files))[ours(r)];
}

const allEstablished = async () => (await Promise.all(routers.map(async (r) => (await ourState(r)) === 'Established' && (await theirState(r)) === 'Established'))).every(Boolean);

beforeAll(async () => {
  await requireNetworkTools(['ip', 'bird', 'birdc', '/usr/lib/frr/bgpd', 'vtysh', 'curl']);
  chmodSync(dir, 0o711); // FRR, as the frr user, reaches its own 0700 directory below
  us = await pool.create('md5us');
  for (const r of routers) {
    r.netns = await pool.create(r.name);
    await ipIn(us, ['link', 'add', `to${r.name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', r.netns]);
    await ipIn(us, ['addr', 'add', `${ours(r)}/24`, 'dev', `to${r.name}`]);
    await ipIn(us, ['link', 'set', `to${r.name}`, 'up']);
    await ipIn(r.netns, ['addr', 'add', `${theirs(r)}/24`, 'dev', 'eth0']);
    await ipIn(r.netns, ['link', 'set', 'eth0', 'up']);
    if (r.name === 'birdwe') {
      await ipIn(us, ['-6', 'addr', 'add', `${OURS6}/64`, 'dev', `to${r.name}`, 'nodad']);
      await ipIn(r.netns, ['-6', 'addr', 'add', `${THEIRS6}/64`, 'dev', 'eth0', 'nodad']);
    }
    if (r.kind === 'bird') await startBird(r.netns, r.files, birdConf(r));
    else await startFrr(r.netns, r.files, frrConf(r));
  }
  writeAgentConfig(() => PASSWORD);
  agent = spawn('ip', ['netns', 'exec', us, process.execPath, 'dist/bin/lightly-agent.js', '--config', join(dir, 'agent.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout!.on('data', (d: Buffer) => (agentLog += d.toString()));
  agent.stderr!.on('data', (d: Buffer) => (agentLog += d.toString()));
  await until('our status socket', async () => (await execa('test', ['-S', join(dir, 'agent.sock')], { reject: false })).exitCode === 0, 15_000);
}, 60_000);

afterAll(async () => {
  agent?.kill('SIGTERM');
  await stopRouters(routers.flatMap((r) => routerPids(r.files)));
  await pool.cleanup();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

/** SIGHUP: the agent applies its edited config live. */
async function reload(password: (r: Router) => string | undefined): Promise<void> {
  writeAgentConfig(password);
  agent!.kill('SIGHUP');
}

describe('TCP MD5 (RFC 2385)', () => {
  it('the right password: sessions with BIRD and FRR come up, we connecting and they connecting, and routes flow', async () => {
    await until('all four sessions Established on both sides', allEstablished, 30_000, { context: () => agentLog.slice(-2000) });
    await until('the IPv6 session with BIRD Established', v6Established, 15_000);
    const routes = await ipIn(us, ['route', 'show', 'proto', '201']);
    for (const r of routers) expect(routes).toContain(`10.9${r.subnet}.0.0/24 via ${theirs(r)}`);
  }, 60_000);

  it('the key shows in no log line, status output, metric or command line', async () => {
    const pid = Number((await execa('pgrep', ['-f', `lightly-agent.js --config ${join(dir, 'agent.yaml')}`])).stdout.split('\n')[0]);
    const places: Record<string, string> = {
      log: agentLog,
      'status --json': (await ctl('bgp', 'status', '--json')).stdout,
      status: (await ctl('bgp', 'status')).stdout,
      metrics: String((await execIn(us, 'curl', ['-s', `http://127.0.0.1:${METRICS_PORT}/metrics`])).stdout),
      cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8'),
      environ: readFileSync(`/proc/${pid}/environ`, 'utf8'),
    };
    expect(places.metrics).toContain('lightly'); // the scrape worked
    for (const [place, text] of Object.entries(places)) expect(text.includes(PASSWORD), `password in ${place}`).toBe(false);
  }, 30_000);

  it('a wrong password: the live change resets the sessions (Cease 6/6), they never come back, and the status says why', async () => {
    await reload(() => WRONG);
    await until('every session down', async () => (await ourStatus()).peers.every((p) => p.state !== 'Established'), 15_000);
    // RFC 4486: a peer whose settings changed gets Cease, Other Configuration Change (6/6).
    await until('BIRD received 6/6', () => routers.filter((r) => r.kind === 'bird').every((r) => /Received: Other configuration change/.test(readFileSync(join(dir, r.name, 'bird.log'), 'utf8'))), 10_000);
    const deadline = Date.now() + 8_000;
    while (Date.now() < deadline) {
      expect((await Promise.all(routers.map(ourState))).filter((s) => s === 'Established')).toEqual([]);
      await new Promise((r) => setTimeout(r, 500));
    }
    const status = await ourStatus();
    for (const p of status.peers) expect(p.hint, p.address).toMatch(/password/);
    // where the router connects, our kernel saw its signature fail: the hint says the passwords differ
    for (const r of routers.filter((x) => x.connects === 'they')) expect(status.peers.find((p) => p.address === theirs(r))?.hint).toMatch(/did not match/);
    expect((await ctl('bgp', 'status')).stdout).toMatch(/TCP MD5/);
    expect(agentLog.includes(WRONG)).toBe(false);
  }, 60_000);

  it('no password here while the routers have one: never established, and the status names the cause', async () => {
    await reload(() => undefined);
    const deadline = Date.now() + 8_000;
    while (Date.now() < deadline) {
      expect((await Promise.all(routers.map(ourState))).filter((s) => s === 'Established')).toEqual([]);
      await new Promise((r) => setTimeout(r, 500));
    }
    const status = await ourStatus();
    for (const p of status.peers) expect(p.hint ?? p.info, p.address).toMatch(/password/);
  }, 30_000);

  it('the right password again, changed live: every session comes back', async () => {
    await reload(() => PASSWORD);
    await until('all four sessions Established again', allEstablished, 30_000);
    await until('the IPv6 session too', v6Established, 15_000);
  }, 40_000);
});
