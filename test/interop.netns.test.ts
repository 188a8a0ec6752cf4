// Interop: our agent (its BGP speaker) with BIRD 2 and GoBGP, each in its own namespace, over real TCP on 179.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { NetnsPool, execIn, ipIn, requireNetworkTools } from './support/netns.js';

const pool = new NetnsPool();
const dir = mkdtempSync(join(tmpdir(), 'lt-interop-'));
const children: ChildProcess[] = [];
let us = '';
let bird = '';
/** A second BIRD, in AS 65010, for eBGP (BIRD 2.0 cannot hold two sessions to one neighbour address). */
let birdEbgp = '';
let gobgp = '';

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function startIn(netns: string, cmd: string, args: string[], log: string): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', netns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => out.push(d));
  child.on('exit', () => writeFileSync(join(dir, log), Buffer.concat(out)));
  children.push(child);
  return child;
}

let gobgpd: ChildProcess | undefined;
const startGobgp = (...extra: string[]): void => {
  gobgpd = startIn(gobgp, 'gobgpd', ['-f', join(dir, 'gobgpd.toml'), '--api-hosts', '127.0.0.1:50052', '-l', 'info', ...extra], 'gobgpd.log');
};
const BIRD_PEERS = ['198.51.100.2', 'fd00:51::2'];
const birdc = (...args: string[]) => execa('birdc', ['-s', join(dir, 'bird.ctl'), ...args], { reject: false });
const gobgpCli = (...args: string[]) => execIn(gobgp, 'gobgp', ['--port', '50052', ...args]);
const ourStatus = async () => JSON.parse((await execa(process.execPath, ['dist/bin/lightlyctl.js', '--socket', join(dir, 'agent.sock'), 'bgp', 'status', '--json'])).stdout);
const ourRoutes = (family = '-4') => ipIn(us, [family, 'route', 'show', 'proto', '201']);

function birdConf(extraRoutes: string): string {
  return `router id 198.51.100.2;
log "${join(dir, 'bird.log')}" all;
protocol device {}
protocol kernel k4 { ipv4 { export none; import none; }; }
protocol static s4 { ipv4; ${extraRoutes} }
protocol static s6 { ipv6; route fd00:99::/64 unreachable; }
protocol bgp lightly4 {
  local 198.51.100.2 as 64512; neighbor 198.51.100.1 as 64512; direct;
  hold time 3; graceful restart on; graceful restart time 30;
  ipv4 { import all; export all; next hop self; };
}
protocol bgp lightly6 {
  local fd00:51::2 as 64512; neighbor fd00:51::1 as 64512; direct;
  hold time 3; graceful restart on;
  ipv6 { import all; export all; next hop self; };
}
`;
}

beforeAll(async () => {
  await requireNetworkTools(['ip', 'bird', 'birdc', 'gobgpd', 'gobgp']);
  us = await pool.create('us');
  bird = await pool.create('bird');
  birdEbgp = await pool.create('birde');
  gobgp = await pool.create('gobgp');
  const links = [[bird, 'tobird', '198.51.100.1', '198.51.100.2', 'fd00:51::'], [gobgp, 'togobgp', '203.0.113.1', '203.0.113.2', 'fd00:52::'], [birdEbgp, 'tobirde', '198.18.0.1', '198.18.0.2', 'fd00:53::']] as const;
  for (const [peer, dev, ours, theirs, v6] of links) {
    await ipIn(us, ['link', 'add', dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer]);
    await ipIn(us, ['addr', 'add', `${ours}/24`, 'dev', dev]);
    await ipIn(us, ['addr', 'add', `${v6}1/64`, 'dev', dev, 'nodad']);
    await ipIn(us, ['link', 'set', dev, 'up']);
    await ipIn(peer, ['addr', 'add', `${theirs}/24`, 'dev', 'eth0']);
    await ipIn(peer, ['addr', 'add', `${v6}2/64`, 'dev', 'eth0', 'nodad']);
    await ipIn(peer, ['link', 'set', 'eth0', 'up']);
  }
  writeFileSync(join(dir, 'bird.conf'), birdConf('route 10.99.1.0/24 unreachable; route 10.99.2.0/24 unreachable;'));
  await execIn(bird, 'bird', ['-c', join(dir, 'bird.conf'), '-s', join(dir, 'bird.ctl'), '-P', join(dir, 'bird.pid')]);
  writeFileSync(join(dir, 'birde.conf'), `router id 198.18.0.2;
protocol device {}
protocol static { ipv4; route 10.98.0.0/24 unreachable; }
protocol bgp lightly { local 198.18.0.2 as 65010; neighbor 198.18.0.1 as 64512; hold time 3; ipv4 { import all; export all; }; }
`);
  const started = await execIn(birdEbgp, 'bird', ['-c', join(dir, 'birde.conf'), '-s', join(dir, 'birde.ctl'), '-P', join(dir, 'birde.pid')]);
  if (started.exitCode !== 0) throw new Error(`the eBGP BIRD did not start: ${started.stderr}`);
  // GoBGP: eBGP over IPv4 as AS 65001 with graceful restart, and iBGP over IPv6 in our AS (local-as).
  writeFileSync(join(dir, 'gobgpd.toml'), `[global.config]
  as = 65001
  router-id = "203.0.113.2"
  port = 179
[[neighbors]]
  [neighbors.config]
    neighbor-address = "203.0.113.1"
    peer-as = 64512
  [neighbors.timers.config]
    hold-time = 9
    connect-retry = 1
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 30
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
[[neighbors]]
  [neighbors.config]
    neighbor-address = "fd00:52::1"
    peer-as = 64512
    local-as = 64512
  [neighbors.timers.config]
    hold-time = 9
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
`);
  startGobgp();
  writeFileSync(join(dir, 'agent.yaml'), stringify({
    nodeName: 'interop', routerId: '198.51.100.1', asn: 64512, podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'],
    listen: { address: '0.0.0.0', port: 179 }, holdTime: 3, connectRetrySeconds: 1,
    peers: [
      { address: '198.51.100.2', asn: 64512 }, { address: 'fd00:51::2', asn: 64512 }, { address: '198.18.0.2', asn: 65010 },
      { address: '203.0.113.2', asn: 65001, holdTime: 9 }, { address: 'fd00:52::2', asn: 64512, holdTime: 9 },
    ],
    importCIDRs: ['10.0.0.0/8', 'fd00::/8'], statusSocket: join(dir, 'agent.sock'),
    cniServer: { enabled: false }, iprouteDir: join(dir, 'iproute2'), gracefulRestart: { enabled: true, restartTime: 30 },
  }));
  startIn(us, process.execPath, ['dist/bin/lightly-agent.js', '--config', join(dir, 'agent.yaml')], 'agent.log');
  await until('our status socket', async () => (await execa('test', ['-S', join(dir, 'agent.sock')], { reject: false })).exitCode === 0, 15_000);
}, 60_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGTERM');
  await execIn(bird, 'birdc', ['-s', join(dir, 'bird.ctl'), 'down']);
  await execIn(birdEbgp, 'birdc', ['-s', join(dir, 'birde.ctl'), 'down']);
  await new Promise((r) => setTimeout(r, 300));
  await pool.cleanup();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('interop', () => {
  it('BIRD 2, iBGP over IPv4 and IPv6: routes both ways into the kernel, and into BIRD', async () => {
    await until('sessions with BIRD', async () => (await ourStatus()).peers.filter((p: any) => BIRD_PEERS.includes(p.address)).every((p: any) => p.state === 'Established'));
    await until('BIRD routes in our kernel', async () => {
      const r4 = await ourRoutes();
      return r4.includes('10.99.1.0/24 via 198.51.100.2') && r4.includes('10.99.2.0/24 via 198.51.100.2');
    });
    await until('BIRD IPv6 route in our kernel', async () => (await ourRoutes('-6')).includes('fd00:99::/64 via fd00:51::2'));
    await until('our prefixes in BIRD', async () => {
      const out = String((await birdc('show', 'route', 'protocol', 'lightly4')).stdout) + String((await birdc('show', 'route', 'protocol', 'lightly6')).stdout);
      return out.includes('10.244.1.0/24') && out.includes('fd00:244:1::/64');
    });
  }, 60_000);

  it('BIRD 2, eBGP: routes both ways, our AS in the path it receives', async () => {
    await until('eBGP route from BIRD in our kernel', async () => (await ourRoutes()).includes('10.98.0.0/24 via 198.18.0.2'));
    const birdeRoute = () => execa('birdc', ['-s', join(dir, 'birde.ctl'), 'show', 'route', '10.244.1.0/24', 'all'], { reject: false });
    await until('our prefix in BIRD over eBGP with AS path 64512', async () => /BGP\.as_path: 64512\s/.test(String((await birdeRoute()).stdout)));
  }, 60_000);

  it('GoBGP, iBGP over IPv6: routes both ways', async () => {
    await until('IPv6 session with GoBGP', async () => (await ourStatus()).peers.find((p: any) => p.address === 'fd00:52::2')?.state === 'Established');
    await gobgpCli('global', 'rib', 'add', '-a', 'ipv6', 'fd00:77::/64', 'nexthop', 'fd00:52::2');
    await until('GoBGP IPv6 route in our kernel', async () => (await ourRoutes('-6')).includes('fd00:77::/64 via fd00:52::2'));
    await until('our IPv6 prefix in GoBGP', async () => String((await gobgpCli('global', 'rib', '-a', 'ipv6')).stdout).includes('fd00:244:1::/64'));
    await gobgpCli('global', 'rib', 'del', '-a', 'ipv6', 'fd00:77::/64');
    await until('GoBGP IPv6 withdrawal', async () => !(await ourRoutes('-6')).includes('fd00:77::/64'));
  }, 60_000);

  it('GoBGP, eBGP: routes both ways, our AS prepended', async () => {
    await until('session with GoBGP', async () => (await ourStatus()).peers.find((p: any) => p.address === '203.0.113.2')?.state === 'Established');
    await gobgpCli('global', 'rib', 'add', '-a', 'ipv4', '10.77.0.0/16', 'nexthop', '203.0.113.2');
    await until('GoBGP route in our kernel', async () => (await ourRoutes()).includes('10.77.0.0/16 via 203.0.113.2'));
    await until('our prefix in GoBGP with our AS', async () => {
      const out = String((await gobgpCli('global', 'rib', '-a', 'ipv4')).stdout);
      return /10\.244\.1\.0\/24\s+203\.0\.113\.1\s+64512/.test(out);
    });
    // and what BIRD gave us (iBGP) goes on to GoBGP (eBGP) with our AS prepended
    await until('BIRD routes reach GoBGP through us', async () => /10\.99\.1\.0\/24\s+203\.0\.113\.1\s+64512/.test(String((await gobgpCli('global', 'rib', '-a', 'ipv4')).stdout)));
    await gobgpCli('global', 'rib', 'del', '-a', 'ipv4', '10.77.0.0/16');
    await until('GoBGP withdrawal', async () => !(await ourRoutes()).includes('10.77.0.0/16'));
  }, 60_000);

  it('a withdrawal from BIRD removes the route; sessions stay up over several hold times', async () => {
    writeFileSync(join(dir, 'bird.conf'), birdConf('route 10.99.1.0/24 unreachable;'));
    await birdc('configure');
    await until('BIRD withdrawal', async () => !(await ourRoutes()).includes('10.99.2.0/24'));
    const before = (await ourStatus()).peers.map((p: any) => p.uptimeSeconds);
    await new Promise((r) => setTimeout(r, 10_000)); // more than three of BIRD's 3 s hold times
    const after = await ourStatus();
    expect(after.peers.every((p: any) => p.state === 'Established')).toBe(true);
    after.peers.forEach((p: any, i: number) => expect(p.uptimeSeconds).toBeGreaterThanOrEqual(before[i] + 9));
  }, 60_000);

  it('BIRD restarting gracefully: we keep its routes until it comes back and sends End-of-RIB', async () => {
    await birdc('graceful', 'restart'); // BIRD 2: close sessions without NOTIFICATION and exit
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await ourRoutes()).toContain('10.99.1.0/24 via 198.51.100.2'); // held (stale) while BIRD is away
    await execIn(bird, 'bird', ['-R', '-c', join(dir, 'bird.conf'), '-s', join(dir, 'bird.ctl'), '-P', join(dir, 'bird.pid')]);
    await until('BIRD back', async () => (await ourStatus()).peers.filter((p: any) => BIRD_PEERS.includes(p.address)).every((p: any) => p.state === 'Established'));
    expect(await ourRoutes()).toContain('10.99.1.0/24 via 198.51.100.2');
    const log = readFileSync(join(dir, 'bird.log'), 'utf8');
    expect(log).toMatch(/[Gg]raceful restart/);
  }, 60_000);

  it('GoBGP restarting gracefully: its routes stay while it is away, and go after its End-of-RIB when it no longer has them', async () => {
    await gobgpCli('global', 'rib', 'add', '-a', 'ipv4', '10.78.0.0/16', 'nexthop', '203.0.113.2');
    await until('GoBGP route in our kernel', async () => (await ourRoutes()).includes('10.78.0.0/16 via 203.0.113.2'));
    gobgpd!.kill('SIGKILL'); // no NOTIFICATION: a crash, as a restarting speaker looks to its peers
    await until('the session down', async () => (await ourStatus()).peers.find((p: any) => p.address === '203.0.113.2')?.state !== 'Established');
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await ourRoutes()).toContain('10.78.0.0/16 via 203.0.113.2'); // stale, kept for GoBGP's restart time
    startGobgp('-r'); // restarting: R bit set; its RIB (routes added over its API) is gone
    await until('GoBGP back', async () => (await ourStatus()).peers.find((p: any) => p.address === '203.0.113.2')?.state === 'Established');
    await until('the stale route flushed after End-of-RIB', async () => !(await ourRoutes()).includes('10.78.0.0/16'), 20_000);
  }, 60_000);
});
