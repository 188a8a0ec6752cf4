// The CNI fast path is as safe as the in-process plugin (issue #12): each numbered defect of the
// audit, through the shim and the server, and in-process where it applies. Attackers run as nobody
// inside the test's node namespace; everything happens in lt- namespaces and temporary directories.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsPool, createHost, ipIn, requireNetworkTools } from './support/netns.js';
import { LIGHTLY_BIN, LIGHTLY_BUNDLE, REFERENCE_PLUGINS, type Invocation, type RunningCniServer, invoke, startCniServerIn } from './support/cni.js';
import { hostVethName } from '../plugin/dataplane.js';
import { SUPPORTED_VERSIONS } from '../plugin/spec.js';

const pool = new NetnsPool();
let host = '';
let work = ''; // 0755: the attacker's script and a world-writable log directory
let dataDir = ''; // 0700, like /run/lightly: the address file is root's only
let addrFile = '';
let server: RunningCniServer;

// Run as nobody: mode "forge-old" | "forge-new" | "silent" listens on PORT (0: any) and logs what it
// receives; "flood" opens 60 connections to PORT and sends 1 MiB on each without a newline.
const ATTACKER = `
const net = require('node:net'), fs = require('node:fs');
const [mode, port, log] = process.argv.slice(1);
const forged = JSON.stringify({ cniVersion: '1.0.0', interfaces: [], ips: [{ address: '6.6.6.6/32' }], routes: [], dns: {} });
if (mode === 'flood') {
  for (let i = 0; i < 60; i++) { const s = net.connect(Number(port), '127.0.0.1'); s.on('error', () => {}); s.write(Buffer.alloc(1 << 20, 65)); }
  setTimeout(() => process.exit(0), 4000);
} else {
  const srv = net.createServer((s) => {
    let got = '';
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('error', () => {});
    if (mode === 'silent') return;
    setTimeout(() => {
      fs.appendFileSync(log, got + '\\n');
      const reply = mode === 'forge-old' ? '0\\n' + forged + '\\n' : 'LIGHTLY-CNI 2 ' + 'A'.repeat(32) + ' 0 ' + String(forged.length).padStart(7, '0') + '\\n' + forged;
      s.end(reply);
    }, 200);
  });
  srv.listen(Number(port), '127.0.0.1', () => console.log('ready ' + srv.address().port));
}
setTimeout(() => process.exit(0), 60000);
`;

const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

/** A port below 1024 for a fake server run as root (the real one takes 700-1023; the namespace is the test's). */
const privilegedPort = (): number => 600 + Math.floor(Math.random() * 100);

/**
 * Starts the attacker as nobody in the node namespace (as root: a stand-in for a server that went
 * wrong, on a port only root can bind); resolves once it listens (or at once for flood).
 */
async function attacker(mode: string, port: number, user: 'nobody' | 'root' = 'nobody'): Promise<{ proc: ResultPromise; port: number; log: string }> {
  const log = join(work, 'logs', `${mode}-${port}-${user}.log`);
  const proc = execa('ip', ['netns', 'exec', host, ...(user === 'nobody' ? NOBODY : []), process.execPath, '-e', ATTACKER, mode, String(port), log], { reject: false });
  if (mode === 'flood') return { proc, port, log };
  const bound = await new Promise<number>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      const m = /ready (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
    void proc.then((r) => reject(new Error(`attacker exited: ${r.stderr}`)));
  });
  return { proc, port: bound, log };
}

type Mode = 'server' | 'in-process';

/** Through the shim. `fallback`: whether the in-process plugin may run (in server mode a fallback else fails loudly). */
function run(mode: Mode, inv: Invocation, stdin: unknown, opts: { fallback?: boolean; addr?: string; env?: Record<string, string> } = {}) {
  const node = mode === 'in-process' || opts.fallback ? process.execPath : '/nonexistent/node';
  const addr = mode === 'server' ? (opts.addr ?? addrFile) : join(dataDir, 'no-server');
  return invoke(LIGHTLY_BIN, { hostNetns: host, ...inv, env: { LIGHTLY_NODE: node, LIGHTLY_CNI_ADDR: addr, ...opts.env, ...inv.env } }, stdin);
}

function conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.0.0', name: 'lt-hard', type: 'lightly', ipam: { subnet: '10.244.3.0/24' }, dataDir, ...extra };
}

async function hostHasLink(name: string): Promise<boolean> {
  return (await ipIn(host, ['-br', 'link', 'show'])).split('\n').some((line) => line.split(/[\s@]/)[0] === name);
}

async function podLinks(pod: string): Promise<{ ifname: string; ifindex: number; addr_info: { local: string }[] }[]> {
  // ip prints control characters in names raw, which JSON does not allow.
  const text = (await ipIn(pod, ['-j', 'addr', 'show'])).trim().replace(/[\u0000-\u001f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return JSON.parse(text);
}

const attachmentFile = (cid: string, ifname = 'eth0'): string => join(dataDir, 'lt-hard', 'attachments', `${cid}:${ifname}`);

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nsenter', 'setpriv', 'unshare']);
  if (!existsSync(LIGHTLY_BIN)) throw new Error(`${LIGHTLY_BIN} is missing: run npm run build`);
  work = mkdtempSync(join(tmpdir(), 'lt-hard-'));
  chmodSync(work, 0o755);
  mkdirSync(join(work, 'logs'), { mode: 0o777 });
  chmodSync(join(work, 'logs'), 0o777);
  dataDir = mkdtempSync(join(tmpdir(), 'lt-hard-data-'));
  addrFile = join(dataDir, 'cni.addr');
  ({ host } = await createHost(pool));
  server = await startCniServerIn(host, addrFile);
});

afterAll(async () => {
  await server?.stop();
  await pool.cleanup();
  for (const dir of [work, dataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('1: a process that holds the port the address file names cannot answer in the server\'s place', () => {
  // The server's own port is one nobody can bind (1b), a file naming another is not used (1c), and
  // the secret is checked all the same: here a root listener on a port below 1024 that is not the server.
  it('after SIGKILL, a forged reply from that port is refused and the in-process plugin does the ADD; a new server has new secrets', async () => {
    await server.stop();
    const dead = await startCniServerIn(host, addrFile);
    const old = { token: dead.token, secret: dead.secret };
    dead.process.kill('SIGKILL');
    await dead.process;
    expect(existsSync(addrFile)).toBe(true); // a SIGKILL leaves the file behind
    for (const mode of ['forge-old', 'forge-new']) {
      const evil = await attacker(mode, privilegedPort(), 'root');
      try {
        const addr = join(dataDir, `${mode}.addr`);
        writeFileSync(addr, readFileSync(addrFile, 'utf8').replace(/^\d+/, String(evil.port)), { mode: 0o600 });
        const pod = await pool.create('pod');
        const out = await run('server', { command: 'ADD', containerId: `ctr-${mode}`, netns: pool.path(pod), ifname: 'eth0' }, conf(), { fallback: true, addr });
        expect(out.exitCode, out.stdout + out.stderr).toBe(0);
        expect(readFileSync(evil.log, 'utf8')).toContain(`LIGHTLY-CNI 2 ${old.token}`); // it was reached…
        expect(out.json!.ips[0].address).not.toBe('6.6.6.6/32'); // …and not believed
        expect(out.json!.ips[0].address).toMatch(/^10\.244\.3\.\d+\/32$/);
        expect(JSON.stringify(await podLinks(pod))).toContain(out.json!.ips[0].address.split('/')[0]);
      } finally {
        evil.proc.kill('SIGKILL');
        await evil.proc;
      }
    }
    server = await startCniServerIn(host, addrFile);
    expect(server.token).not.toBe(old.token);
    expect(server.secret).not.toBe(old.secret);
  }, 60_000);
});

// Run as nobody: listens on PORT with a backlog of 1 (0 would be Node's default) and never accepts (its only thread blocked), while
// a child fills the accept queue; a connect to PORT then waits on SYN retries (~2 min). Prints
// "refused CODE" when it cannot bind PORT.
const SQUATTER = `
const net = require('node:net'), { spawn } = require('node:child_process');
const port = Number(process.argv[1]);
const s = net.createServer();
s.on('error', (e) => { console.log('refused ' + e.code); process.exit(0); });
s.listen({ port, host: '127.0.0.1', backlog: 1 }, () => {
  spawn(process.execPath, ['-e', "for (let i = 0; i < 6; i++) require('net').connect(" + port + ", '127.0.0.1').on('error', () => {}); setTimeout(() => process.exit(0), 40000)"], { stdio: 'ignore' });
  console.log('squatting');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 40000);
  process.exit(0);
});
`;

describe('1b: the port of a dead server is one only root can bind', () => {
  it('after SIGKILL nobody cannot take it, so it neither learns the token nor stalls the connect past LIGHTLY_CNI_TIMEOUT', async () => {
    await server.stop();
    const dead = await startCniServerIn(host, addrFile);
    dead.process.kill('SIGKILL');
    await dead.process;
    const squat = execa('ip', ['netns', 'exec', host, ...NOBODY, process.execPath, '-e', SQUATTER, String(dead.port)], { reject: false });
    try {
      const said = await new Promise<string>((resolve) => squat.stdout!.on('data', (d: Buffer) => resolve(d.toString().trim())));
      await new Promise((r) => setTimeout(r, 500)); // the queue fills
      const pod = await pool.create('pod');
      const t = performance.now();
      const out = await run('server', { command: 'ADD', containerId: 'ctr-squat', netns: pool.path(pod), ifname: 'eth0' }, conf(), { fallback: true, env: { LIGHTLY_CNI_TIMEOUT: '2' } });
      expect(out.exitCode, out.stdout + out.stderr).toBe(0);
      expect(performance.now() - t).toBeLessThan(20_000);
      expect(said).toBe('refused EACCES');
    } finally {
      squat.kill('SIGKILL');
      await squat;
      server = await startCniServerIn(host, addrFile);
    }
  }, 60_000);
});

describe('1c: an address file nobody but root can have written still names a port only root can bind', () => {
  // The shim takes the first "cniServer" key anywhere in the config, and a runtime may put keys a pod
  // author chose in it (Multus cni-args go to args.cni). /proc/PID/cmdline of a set-uid program is
  // owned by root, and its first line is whatever argv[0] the caller chose: "PORT TOKEN SECRET\n".
  it('a forged address file in /proc/PID/cmdline of passwd, naming a nobody port and its own secret, is not believed', async () => {
    if (!existsSync('/usr/bin/passwd')) throw new Error('this test needs the set-uid /usr/bin/passwd');
    const evil = await attacker('forge-new', 0);
    const argv0 = `${evil.port} ${'T'.repeat(32)} ${'A'.repeat(32)}\n`;
    // passwd waits on its stdin, a pipe nobody writes to; ip, setpriv and bash exec, so the pid is passwd's.
    const setuid = execa('ip', ['netns', 'exec', host, ...NOBODY, 'bash', '-c', 'exec -a "$0" /usr/bin/passwd', argv0], { reject: false, stdin: 'pipe' });
    try {
      const cmdline = `/proc/${setuid.pid}/cmdline`;
      for (let i = 0; i < 100 && !readFileSync(cmdline, 'latin1').startsWith(argv0); i++) await new Promise((r) => setTimeout(r, 20));
      expect(readFileSync(cmdline, 'latin1').startsWith(argv0)).toBe(true);
      const pod = await pool.create('pod');
      const out = await run('server', { command: 'ADD', containerId: 'ctr-cmdline', netns: pool.path(pod), ifname: 'eth0' }, conf({ args: { cni: { cniServer: cmdline } } }), { fallback: true, env: { LIGHTLY_CNI_ADDR: '' } });
      expect(out.exitCode, out.stdout + out.stderr).toBe(0);
      expect(out.json!.ips[0].address).toMatch(/^10\.244\.3\.\d+\/32$/);
      expect(JSON.stringify(await podLinks(pod))).toContain(out.json!.ips[0].address.split('/')[0]);
      expect(existsSync(evil.log), 'the attacker was sent the request').toBe(false);
    } finally {
      setuid.kill('SIGKILL');
      evil.proc.kill('SIGKILL');
      await Promise.all([setuid, evil.proc]);
    }
  }, 60_000);
});

describe('1d: an address file that never ends or never opens', () => {
  // Same way in (a "cniServer" key a pod author chose): root's /dev/zero has no newline to end the
  // read, and a FIFO of root's (like /run/initctl) blocks the open until someone writes to it.
  it('/dev/zero or a FIFO as the address file costs no wait: the in-process plugin answers', async () => {
    const fifo = join(dataDir, 'fifo');
    await execa('mkfifo', ['-m', '0600', fifo]);
    const t = performance.now();
    const outs = await Promise.all(
      ['/dev/zero', fifo].map((cniServer) => run('server', { command: 'VERSION' }, { cniVersion: '1.0.0', args: { cni: { cniServer } } }, { fallback: true, env: { LIGHTLY_CNI_ADDR: '' } })),
    );
    for (const out of outs) expect(out.json?.supportedVersions, `exit ${out.exitCode} ${out.stderr}`).toEqual([...SUPPORTED_VERSIONS]);
    expect(performance.now() - t).toBeLessThan(20_000);
  }, 60_000);
});

describe.each(['server', 'in-process'] as Mode[])('2: the request is the one sent (%s)', (mode) => {
  it('a newline in CNI_ARGS cannot turn an ADD into a DEL of another container', async () => {
    const victimPod = await pool.create('pod');
    const victim = { containerId: `victim-${mode}`, netns: pool.path(victimPod), ifname: 'eth0' };
    expect((await run(mode, { ...victim, command: 'ADD' }, conf())).exitCode).toBe(0);
    const pod = await pool.create('pod');
    const args = `K8S_POD_NAME=x\nCNI_COMMAND=DEL\nCNI_CONTAINERID=${victim.containerId}`;
    const out = await run(mode, { command: 'ADD', containerId: `evil-${mode}`, netns: pool.path(pod), ifname: 'eth0', args }, conf());
    expect(out.exitCode, out.stdout).toBe(0);
    expect(await hostHasLink(hostVethName(victim.containerId, 'eth0'))).toBe(true);
    expect(existsSync(attachmentFile(victim.containerId))).toBe(true);
    expect(await hostHasLink(hostVethName(`evil-${mode}`, 'eth0'))).toBe(true);
  });

  it('a non-ASCII interface name gives the same veth name and IPAM key as in-process (UTF-8)', async () => {
    const pod = await pool.create('pod');
    const inv = { containerId: `ctr-utf-${mode}`, netns: pool.path(pod), ifname: 'ë1' };
    const out = await run(mode, { ...inv, command: 'ADD' }, conf());
    expect(out.exitCode, out.stdout).toBe(0);
    expect(out.json!.interfaces[0].name).toBe(hostVethName(inv.containerId, 'ë1'));
    expect(existsSync(attachmentFile(inv.containerId, 'ë1'))).toBe(true);
    expect((await podLinks(pod)).map((l) => l.ifname)).toContain('ë1');
    expect((await run(mode, { ...inv, command: 'DEL' }, conf())).exitCode).toBe(0);
  });
});

describe('3: no hangs', () => {
  it('a listener that accepts and never answers costs a bounded wait, then the in-process plugin answers', async () => {
    const silent = await attacker('silent', privilegedPort(), 'root');
    try {
      const addr = join(dataDir, 'silent.addr');
      writeFileSync(addr, `${silent.port} ${'T'.repeat(32)} ${'S'.repeat(32)}\n`, { mode: 0o600 });
      const t = performance.now();
      const out = await run('server', { command: 'VERSION' }, { cniVersion: '1.0.0' }, { fallback: true, addr, env: { LIGHTLY_CNI_TIMEOUT: '2' } });
      expect(out.exitCode, out.stderr).toBe(0);
      expect(out.json!.supportedVersions).toEqual([...SUPPORTED_VERSIONS]);
      expect(performance.now() - t).toBeLessThan(20_000);
    } finally {
      silent.proc.kill('SIGKILL');
      await silent.proc;
    }
  }, 40_000);
});

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

describe('4: memory before authentication', () => {
  it('60 connections sending 1 MiB each without the token do not grow the server, and it still serves', async () => {
    const pid = server.process.pid!;
    const before = rssKb(pid);
    const flood = await attacker('flood', server.port);
    let peak = before;
    for (let i = 0; i < 30; i++) {
      peak = Math.max(peak, rssKb(pid));
      await new Promise((r) => setTimeout(r, 100));
    }
    await flood.proc;
    expect(peak - before, `RSS ${before} kB → peak ${peak} kB`).toBeLessThan(30 * 1024);
    const out = await run('server', { command: 'VERSION' }, { cniVersion: '1.0.0' });
    expect(out.exitCode).toBe(0);
  }, 30_000);
});

describe('5: exit codes and framing', () => {
  it('a config over 1 MiB works every time (it goes in-process), with nothing on stderr', async () => {
    for (let i = 0; i < 4; i++) {
      const pod = await pool.create('pod');
      const out = await run('server', { command: 'ADD', containerId: `ctr-big-${i}`, netns: pool.path(pod), ifname: 'eth0' }, conf({ padding: 'p'.repeat(1_500_000) }), { fallback: true });
      expect(out.exitCode, out.stderr).toBe(0);
      expect(out.json!.ips[0].address).toMatch(/^10\.244\.3\./);
      expect(out.stderr).toBe('');
    }
  }, 60_000);

  it('when the server is gone the shim prints no bash errors and falls back', async () => {
    const addr = join(dataDir, 'gone.addr');
    writeFileSync(addr, `1 ${'T'.repeat(32)} ${'S'.repeat(32)}\n`, { mode: 0o600 }); // nothing listens on port 1
    const out = await run('server', { command: 'VERSION' }, { cniVersion: '1.0.0' }, { fallback: true, addr });
    expect(out.exitCode).toBe(0);
    expect(out.stderr).toBe('');
  });

  it('a reply code other than 0 or 1, even with the right secret, is a protocol error: fallback', async () => {
    const addr = join(dataDir, 'code.addr');
    const secret = 'S'.repeat(32);
    const fake = execa('ip', ['netns', 'exec', host, process.execPath, '-e',
      `const s=require('net').createServer((c)=>{c.on('data',()=>{});c.end('LIGHTLY-CNI 2 ${secret} 7 0000002\\n{}')}).listen(${privilegedPort()},'127.0.0.1',()=>console.log('ready '+s.address().port));setTimeout(()=>process.exit(0),20000)`], { reject: false });
    try {
      const port = await new Promise<number>((resolve) => fake.stdout!.on('data', (d: Buffer) => resolve(Number(/ready (\d+)/.exec(d.toString())![1]))));
      writeFileSync(addr, `${port} ${'T'.repeat(32)} ${secret}\n`, { mode: 0o600 });
      const out = await run('server', { command: 'VERSION' }, { cniVersion: '1.0.0' }, { fallback: true, addr });
      expect(out.exitCode).toBe(0);
      expect(out.json!.supportedVersions).toEqual([...SUPPORTED_VERSIONS]);
    } finally {
      fake.kill('SIGKILL');
      await fake;
    }
  });
});

describe('6: one container, concurrently or twice', () => {
  it('concurrent ADDs of one container (server and in-process mixed) agree, and the address in use keeps its IPAM record', async () => {
    const pod = await pool.create('pod');
    const inv = { command: 'ADD' as const, containerId: 'ctr-same', netns: pool.path(pod), ifname: 'eth0' };
    const outs = await Promise.all(Array.from({ length: 6 }, (_, i) => run(i % 2 ? 'in-process' : 'server', inv, conf())));
    for (const out of outs) expect(out.exitCode, out.stdout).toBe(0);
    const ips = new Set(outs.map((o) => o.json!.ips[0].address));
    expect(ips.size).toBe(1);
    const [ip] = [...ips] as string[];
    expect(JSON.parse(readFileSync(attachmentFile('ctr-same'), 'utf8')).ips).toEqual([ip!.split('/')[0]]);
    expect((await podLinks(pod)).find((l) => l.ifname === 'eth0')!.addr_info.map((a) => a.local)).toContain(ip!.split('/')[0]);
  }, 60_000);

  it('ADD racing DEL leaves all (interface, host veth, IPAM record) or nothing', async () => {
    for (let round = 0; round < 8; round++) {
      const pod = await pool.create('pod');
      const inv = { containerId: `ctr-race-${round}`, netns: pool.path(pod), ifname: 'eth0' };
      // Both through the server, or both in-process, so that they really overlap; DEL a little later each round.
      const mode: Mode = round % 2 ? 'in-process' : 'server';
      await Promise.all([
        run(mode, { ...inv, command: 'ADD' }, conf()),
        new Promise((r) => setTimeout(r, round * 2)).then(() => run(mode, { ...inv, command: 'DEL' }, conf())),
      ]);
      const parts = [
        (await podLinks(pod)).some((l) => l.ifname === 'eth0'),
        await hostHasLink(hostVethName(inv.containerId, 'eth0')),
        existsSync(attachmentFile(inv.containerId)),
      ];
      expect(new Set(parts).size, `round ${round}: eth0, host veth, record = ${parts}`).toBe(1);
    }
  }, 60_000);

  it.each(['server', 'in-process'] as Mode[])('a repeated ADD of a healthy attachment returns the same result and leaves the interface alone (%s)', async (mode) => {
    const pod = await pool.create('pod');
    const inv = { command: 'ADD' as const, containerId: `ctr-again-${mode}`, netns: pool.path(pod), ifname: 'eth0' };
    const first = await run(mode, inv, conf());
    expect(first.exitCode).toBe(0);
    await ipIn(pod, ['addr', 'add', '192.0.2.77/32', 'dev', 'eth0']); // added after ADD, e.g. by another plugin
    const before = (await podLinks(pod)).find((l) => l.ifname === 'eth0')!;
    const again = await run(mode, inv, conf());
    expect(again.exitCode, again.stdout).toBe(0);
    expect(again.json).toEqual(first.json);
    const after = (await podLinks(pod)).find((l) => l.ifname === 'eth0')!;
    expect(after.ifindex).toBe(before.ifindex);
    expect(after.addr_info.map((a) => a.local)).toContain('192.0.2.77');
  });
});

describe('8: interface names are what the kernel and ptp take, passed so ip never re-parses them', () => {
  const names = ["'e1'", 'e#1', 'help', 'type', "'a''up'", '"q', 'a\\', 'x\u0001y', 'ë1', 'a b', 'a/b', 'a:b', '..', 'x'.repeat(16), 'à', 'é'.repeat(8)];

  async function ptpAccepts(name: string, i: number): Promise<boolean> {
    const pod = await pool.create('ptp');
    const ptpConf = { cniVersion: '1.0.0', name: 'lt-ptp', type: 'ptp', ipam: { type: 'host-local', subnet: '10.250.0.0/24', dataDir: join(dataDir, 'host-local') } };
    const inv = { containerId: `ptp-${i}`, netns: pool.path(pod), ifname: name, hostNetns: host };
    const cniPath = REFERENCE_PLUGINS;
    const out = await invoke(join(REFERENCE_PLUGINS, 'ptp'), { ...inv, command: 'ADD' }, ptpConf, cniPath);
    await invoke(join(REFERENCE_PLUGINS, 'ptp'), { ...inv, command: 'DEL' }, ptpConf, cniPath);
    return out.exitCode === 0;
  }

  it.each(['server', 'in-process'] as Mode[])('%s: each name works exactly when ptp takes it, under exactly that name', async (mode) => {
    for (const [i, name] of names.entries()) {
      const pod = await pool.create('pod');
      const inv = { containerId: `ctr-name-${mode}-${i}`, netns: pool.path(pod), ifname: name };
      const out = await run(mode, { ...inv, command: 'ADD' }, conf());
      const expected = await ptpAccepts(name, i);
      expect(out.exitCode === 0, `${JSON.stringify(name)}: ${out.stdout}`).toBe(expected);
      if (!expected) {
        expect(out.json?.code, JSON.stringify(name)).toBe(4);
        continue;
      }
      const link = (await podLinks(pod)).find((l) => l.ifname === name);
      expect(link, JSON.stringify(name)).toBeDefined();
      expect(link!.addr_info.map((a) => `${a.local}/32`)).toContain(out.json!.ips[0].address);
      const check = await run(mode, { ...inv, command: 'CHECK' }, conf({ prevResult: out.json }));
      expect(check.exitCode, `${JSON.stringify(name)}: ${check.stdout}`).toBe(0);
      expect((await run(mode, { ...inv, command: 'DEL' }, conf())).exitCode).toBe(0);
      expect((await podLinks(pod)).map((l) => l.ifname)).not.toContain(name);
    }
  }, 120_000);
});

describe('9: lifecycle', () => {
  it('the CNI server exits when its agent is SIGKILLed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lt-hard-agent-'));
    const agentAddr = join(dir, 'cni.addr');
    const config = { nodeName: 'lt-agent', routerId: '192.0.2.1', listen: { address: '127.0.0.1', port: 0 }, statusSocket: join(dir, 'agent.sock'), cniServer: { addrFile: agentAddr }, iprouteDir: dir };
    writeFileSync(join(dir, 'agent.json'), JSON.stringify(config));
    const agent = execa('ip', ['netns', 'exec', host, process.execPath, LIGHTLY_BUNDLE.replace(/lightly\.js$/, 'lightly-agent.js'), '--config', join(dir, 'agent.json')], { reject: false });
    let serverPid: number | undefined;
    try {
      for (let i = 0; i < 200 && !existsSync(agentAddr); i++) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(agentAddr)).toBe(true);
      const children = readdirSync(`/proc/${agent.pid}/task`).flatMap((t) => readFileSync(`/proc/${agent.pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean));
      serverPid = children.map(Number).find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('serve'));
      expect(serverPid).toBeDefined();
      agent.kill('SIGKILL');
      await agent;
      let alive = true;
      for (let i = 0; i < 100 && alive; i++) {
        alive = existsSync(`/proc/${serverPid}`) && !/State:\s+Z/.test(readFileSync(`/proc/${serverPid}/status`, 'utf8'));
        if (alive) await new Promise((r) => setTimeout(r, 50));
      }
      expect(alive).toBe(false);
    } finally {
      agent.kill('SIGKILL');
      // A surviving server holds the agent's output open: end it here, not at the test's timeout.
      if (serverPid) execa('kill', ['-9', String(serverPid)], { reject: false }).catch(() => undefined);
      await agent;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('a shim reached through a symlink finds its lightly.js', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lt-hard-bin-'));
    try {
      symlinkSync(LIGHTLY_BIN, join(dir, 'lightly'));
      const out = await invoke(join(dir, 'lightly'), { command: 'VERSION', env: { LIGHTLY_NODE: process.execPath, LIGHTLY_HOME: '/nonexistent', LIGHTLY_CNI_ADDR: join(dir, 'none') } }, { cniVersion: '1.0.0' });
      expect(out.exitCode, out.stderr).toBe(0);
      expect(out.json!.supportedVersions).toEqual([...SUPPORTED_VERSIONS]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(['server', 'in-process'] as Mode[])('a container id of 4096 characters works (the spec sets no limit) (%s)', async (mode) => {
    const pod = await pool.create('pod');
    const inv = { containerId: `c${mode}`.padEnd(4096, 'x'), netns: pool.path(pod), ifname: 'eth0' };
    const out = await run(mode, { ...inv, command: 'ADD' }, conf());
    expect(out.exitCode, out.stdout).toBe(0);
    expect(await hostHasLink(out.json!.interfaces[0].name)).toBe(true);
    expect((await run(mode, { ...inv, command: 'DEL' }, conf())).exitCode).toBe(0);
    expect(await hostHasLink(out.json!.interfaces[0].name)).toBe(false);
  });

  it('a CNI_NETNS path outside the server\'s mount namespace falls back to the in-process plugin', async () => {
    const hidden = mkdtempSync(join(tmpdir(), 'lt-hard-ns-'));
    const addr = join(dataDir, 'private.addr');
    // The server sees a fresh tmpfs over `hidden`; the runtime (this test) sees the netns bind mount in it.
    const private_ = await startCniServerIn(host, addr, ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs lt-hidden ${hidden} && exec "$@"`, 'sh']);
    const pod = await pool.create('pod');
    const nsPath = join(hidden, 'pod-ns');
    writeFileSync(nsPath, '');
    await execa('mount', ['--bind', pool.path(pod), nsPath]);
    try {
      const out = await run('server', { command: 'ADD', containerId: 'ctr-elsewhere', netns: nsPath, ifname: 'eth0' }, conf(), { fallback: true, addr });
      expect(out.exitCode, out.stdout).toBe(0);
      expect((await podLinks(pod)).map((l) => l.ifname)).toContain('eth0');
    } finally {
      await execa('umount', [nsPath], { reject: false });
      await private_.stop();
      rmSync(hidden, { recursive: true, force: true });
    }
  }, 30_000);
});

describe.each(['server', 'in-process'] as Mode[])('10: validation like host-local (%s)', (mode) => {
  it('VERSION answers with the versions it supports whatever cniVersion asks', async () => {
    for (const asked of ['0.2.0', '99.0.0', '1.1.0']) {
      const out = await run(mode, { command: 'VERSION' }, { cniVersion: asked });
      expect(out.exitCode).toBe(0);
      expect(out.json!.supportedVersions).toEqual([...SUPPORTED_VERSIONS]);
      expect(SUPPORTED_VERSIONS).toContain(out.json!.cniVersion);
    }
  });

  it('a pool with host bits set is refused (7); GC without cni.dev/valid-attachments removes nothing', async () => {
    const pod = await pool.create('pod');
    const bad = await run(mode, { command: 'ADD', containerId: `ctr-bits-${mode}`, netns: pool.path(pod), ifname: 'eth0' }, conf({ ipam: { subnet: '10.244.3.7/24' } }));
    expect(bad.json).toMatchObject({ code: 7, msg: expect.stringContaining('host bits') });
    const gcConf = conf({ cniVersion: '1.1.0', name: `lt-gc-${mode}` });
    const inv = { containerId: `ctr-gc-${mode}`, netns: pool.path(pod), ifname: 'eth0' };
    const added = await run(mode, { ...inv, command: 'ADD' }, gcConf);
    expect(added.exitCode).toBe(0);
    expect((await run(mode, { command: 'GC' }, gcConf)).exitCode).toBe(0);
    expect(await hostHasLink(added.json!.interfaces[0].name)).toBe(true);
    expect((await run(mode, { command: 'GC' }, { ...gcConf, 'cni.dev/valid-attachments': [] })).exitCode).toBe(0);
    expect(await hostHasLink(added.json!.interfaces[0].name)).toBe(false);
  });
});
