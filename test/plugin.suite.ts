// The `lightly` plugin end to end, inside throwaway namespaces: every verb, version and error code.
// Run twice: through the CNI server (how nodes run it) and in-process (the shim's fallback).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsPool, createHost, ipIn, ping, requireNetworkTools } from './support/netns.js';
import { LIGHTLY_BIN, type Invocation, type RunningCniServer, invoke, startCniServerIn } from './support/cni.js';
import { hostVethName } from '../plugin/dataplane.js';

export function pluginSuite(mode: 'server' | 'in-process'): void {
  const pool = new NetnsPool();
  let host = '';
  let dataDir = '';

  let addrFile = '';
  let server: RunningCniServer | undefined;

  function conf(version: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: version, name: 'lt-net', type: 'lightly', ipam: { subnet: '10.244.1.0/24' }, dataDir, cniServer: addrFile, ...extra };
  }

  /** `fallback`: the server may hand this one back to the in-process plugin (a namespace it cannot see). */
  function run(inv: Invocation, stdin: unknown, fallback = false) {
    // In server mode a fallback to in-process Node would fail loudly: the server must answer.
    const node = fallback ? process.execPath : '/nonexistent/node';
    const env = mode === 'server' ? { LIGHTLY_NODE: node, LIGHTLY_CNI_ADDR: addrFile } : undefined;
    return invoke(LIGHTLY_BIN, { hostNetns: host, env, ...inv }, stdin);
  }

  async function hostVethOf(result: Record<string, any>): Promise<string> {
    return result.interfaces[0].name as string;
  }

  /** Whether the test host namespace has a link (not /sys: that shows the test process's namespace). */
  async function hostHasLink(name: string): Promise<boolean> {
    return (await ipIn(host, ['-br', 'link', 'show'])).split('\n').some((line) => line.split(/[\s@]/)[0] === name);
  }

  beforeAll(async () => {
    await requireNetworkTools(['ip', 'nsenter', 'ping']);
    if (!existsSync(LIGHTLY_BIN)) throw new Error(`${LIGHTLY_BIN} is missing: run npm run build (scripts/test.sh does)`);
    dataDir = mkdtempSync(join(tmpdir(), 'lt-plugin-data-'));
    ({ host } = await createHost(pool));
    addrFile = join(dataDir, 'cni.addr'); // in-process mode: never written, so the shim falls back
    if (mode === 'server') server = await startCniServerIn(host, addrFile);
  });

  afterAll(async () => {
    await server?.stop();
    await pool.cleanup();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  describe.each(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'])('cniVersion %s', (version) => {
    it('ADD wires a routed pod that the host reaches, CHECK passes where defined, DEL removes everything', async () => {
      const pod = await pool.create('pod');
      const inv = { containerId: `ctr-${version.replace(/\./g, '')}`, netns: pool.path(pod), ifname: 'eth0' };
      const added = await run({ ...inv, command: 'ADD' }, conf(version));
      expect(added.exitCode, added.stdout).toBe(0);
      const result = added.json!;
      expect(result.cniVersion).toBe(version);
      expect(result.interfaces).toHaveLength(2);
      expect(result.interfaces[0]).toEqual({ name: expect.stringMatching(/^lxc[0-9a-f]{11}$/), mac: 'ee:ee:ee:ee:ee:ee' });
      expect(result.interfaces[1]).toMatchObject({ name: 'eth0', sandbox: pool.path(pod) });
      const ip = result.ips[0];
      expect(ip.address).toMatch(/^10\.244\.1\.\d+\/32$/);
      expect(ip.gateway).toBe('169.254.1.1');
      expect(ip.interface).toBe(1);
      if (version.startsWith('0.')) expect(ip.version).toBe('4');
      else expect(ip).not.toHaveProperty('version');
      expect(result.routes).toEqual([{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);

      const podIp = ip.address.split('/')[0];
      const hostVeth = await hostVethOf(result);
      expect(await hostHasLink(hostVeth)).toBe(true);
      expect(await ipIn(host, ['route', 'show', `${podIp}/32`])).toMatch(new RegExp(`dev ${hostVeth} proto (lightly|201) scope link`));
      const podRoutes = await ipIn(pod, ['route', 'show']);
      expect(podRoutes).toContain('default via 169.254.1.1 dev eth0');
      expect(podRoutes).toContain('169.254.1.1 dev eth0 scope link');
      expect(await ping(host, podIp)).toBe(true);
      expect(await ping(pod, '192.0.2.1')).toBe(true);

      const check = await run({ ...inv, command: 'CHECK' }, conf(version, { prevResult: result }));
      if (version === '0.3.0' || version === '0.3.1') expect(check.json?.code).toBe(1);
      else expect(check.exitCode, check.stdout).toBe(0);

      const deleted = await run({ ...inv, command: 'DEL' }, conf(version, { prevResult: result }));
      expect(deleted.exitCode, deleted.stdout).toBe(0);
      expect(deleted.stdout).toBe('');
      expect(await hostHasLink(hostVeth)).toBe(false);
      expect(await ipIn(host, ['route', 'show', `${podIp}/32`])).toBe('');
      expect(await ipIn(pod, ['link', 'show'])).not.toContain('eth0');
      // DEL again: nothing left to remove is not an error
      expect((await run({ ...inv, command: 'DEL' }, conf(version))).exitCode).toBe(0);
    });
  });

  describe('VERSION', () => {
    it('lists every supported version and echoes the requested one', async () => {
      const out = await run({ command: 'VERSION' }, { cniVersion: '0.4.0' });
      expect(out.json).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    });
  });

  describe('DEL is idempotent', () => {
    it('succeeds with a missing netns, a missing interface and no allocation', async () => {
      expect((await run({ command: 'DEL', containerId: 'never-added', ifname: 'eth0', netns: '/var/run/netns/lt-gone' }, conf('1.0.0'))).exitCode).toBe(0);
      expect((await run({ command: 'DEL', containerId: 'never-added', ifname: 'eth0' }, conf('1.0.0'))).exitCode).toBe(0);
    });

    it('cleans up after the pod namespace was deleted first', async () => {
      const pod = await pool.create('pod');
      const inv = { containerId: 'ctr-nsgone', netns: pool.path(pod), ifname: 'eth0' };
      const added = await run({ ...inv, command: 'ADD' }, conf('1.0.0'));
      expect(added.exitCode).toBe(0);
      const hostVeth = await hostVethOf(added.json!);
      await ipIn(pod, ['link', 'del', 'eth0']);
      expect((await run({ ...inv, command: 'DEL' }, conf('1.0.0'))).exitCode).toBe(0);
      expect(await hostHasLink(hostVeth)).toBe(false);
    });
  });

  describe('secondary attachment (defaultRoute: false)', () => {
    it('adds only the /32 and the link route, with its own host veth', async () => {
      const pod = await pool.create('pod');
      const eth0 = { containerId: 'ctr-multi', netns: pool.path(pod), ifname: 'eth0' };
      const net1 = { ...eth0, ifname: 'net1' };
      const first = await run({ ...eth0, command: 'ADD' }, conf('1.0.0'));
      const second = await run({ ...net1, command: 'ADD' }, conf('1.0.0', { defaultRoute: false }));
      expect(second.exitCode, second.stdout).toBe(0);
      expect(second.json!.routes).toEqual([]);
      expect(second.json!.ips[0]).not.toHaveProperty('gateway');
      expect(second.json!.interfaces[0].name).not.toBe(first.json!.interfaces[0].name);
      const routes = await ipIn(pod, ['route', 'show', 'dev', 'net1']);
      expect(routes).not.toContain('default');
      expect(routes).toContain('169.254.1.1 scope link');
      expect((await run({ ...net1, command: 'DEL' }, conf('1.0.0'))).exitCode).toBe(0);
      expect((await run({ ...eth0, command: 'DEL' }, conf('1.0.0'))).exitCode).toBe(0);
    });
  });

  describe('dual stack (ipam.ranges)', () => {
    it('gives one IPv4 and one IPv6 address, each reachable, with the host veth link-local as IPv6 gateway', async () => {
      const pod = await pool.create('pod');
      const inv = { containerId: 'ctr-dual', netns: pool.path(pod), ifname: 'eth0' };
      const dual = conf('1.0.0', { name: 'lt-dual', ipam: { ranges: [[{ subnet: '10.244.9.0/24' }], [{ subnet: 'fd00:10:244:9::/120' }]] } });
      const added = await run({ ...inv, command: 'ADD' }, dual);
      expect(added.exitCode, added.stdout).toBe(0);
      expect(added.json!.ips.map((i: { address: string }) => i.address)).toEqual(['10.244.9.2/32', 'fd00:10:244:9::2/128']);
      expect(added.json!.routes).toEqual([
        { dst: '0.0.0.0/0', gw: '169.254.1.1' },
        { dst: '::/0', gw: 'fe80::ecee:eeff:feee:eeee' },
      ]);
      expect(await ipIn(pod, ['-6', 'route', 'show', 'default'])).toContain('via fe80::ecee:eeff:feee:eeee dev eth0');
      expect(await ipIn(host, ['-6', 'route', 'show', 'fd00:10:244:9::2'])).toMatch(/dev lxc[0-9a-f]{11} proto (lightly|201)/);
      expect(await ping(host, 'fd00:10:244:9::2')).toBe(true);
      expect(await ping(host, '10.244.9.2')).toBe(true);
      expect((await run({ ...inv, command: 'CHECK' }, { ...dual, prevResult: added.json })).exitCode).toBe(0);
      expect((await run({ ...inv, command: 'DEL' }, dual)).exitCode).toBe(0);
    });
  });

  describe('CHECK reports what is wrong', () => {
    it('fails with code 102 when the default route, the address or the host route is gone', async () => {
      const pod = await pool.create('pod');
      const inv = { containerId: 'ctr-check', netns: pool.path(pod), ifname: 'eth0' };
      const added = await run({ ...inv, command: 'ADD' }, conf('1.0.0'));
      const prevResult = added.json!;
      const podIp = prevResult.ips[0].address as string;

      await ipIn(pod, ['route', 'del', 'default']);
      let check = await run({ ...inv, command: 'CHECK' }, conf('1.0.0', { prevResult }));
      expect(check.json).toMatchObject({ code: 102, msg: expect.stringContaining('0.0.0.0/0 via 169.254.1.1') });
      await ipIn(pod, ['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
      expect((await run({ ...inv, command: 'CHECK' }, conf('1.0.0', { prevResult }))).exitCode).toBe(0);

      await ipIn(host, ['route', 'del', podIp]);
      check = await run({ ...inv, command: 'CHECK' }, conf('1.0.0', { prevResult }));
      expect(check.json).toMatchObject({ code: 102, msg: expect.stringContaining('host route') });

      await ipIn(pod, ['addr', 'del', podIp, 'dev', 'eth0']);
      check = await run({ ...inv, command: 'CHECK' }, conf('1.0.0', { prevResult }));
      expect(check.json?.code).toBe(102);
      expect(check.json?.details).toContain(`address ${podIp} is missing`);

      expect((await run({ ...inv, command: 'CHECK' }, conf('1.0.0'))).json?.code).toBe(7); // no prevResult
      expect((await run({ ...inv, command: 'DEL' }, conf('1.0.0'))).exitCode).toBe(0);
    });
  });

  describe('errors carry the spec codes', () => {
    const inv = { containerId: 'ctr-err', ifname: 'eth0', netns: '/var/run/netns/lt-does-not-exist' };

    it('1: unsupported version', async () => {
      const out = await run({ ...inv, command: 'ADD' }, conf('0.2.0'));
      expect(out.exitCode).not.toBe(0);
      expect(out.json).toMatchObject({ cniVersion: '0.2.0', code: 1, msg: expect.stringContaining('0.2.0') });
    });
    it('4: missing or invalid environment', async () => {
      expect((await run({ command: 'ADD', ifname: 'eth0', netns: '/x' }, conf('1.0.0'))).json).toMatchObject({ code: 4, msg: expect.stringContaining('CNI_CONTAINERID') });
      expect((await run({ ...inv, command: 'ADD', ifname: 'this-name-is-far-too-long' }, conf('1.0.0'))).json?.code).toBe(4);
      expect((await run({ ...inv, command: 'FROB' as any }, conf('1.0.0'))).json?.code).toBe(4);
    });
    it('6: stdin is not JSON', async () => {
      expect((await run({ ...inv, command: 'ADD' }, '{"cniVersion": ')).json).toMatchObject({ code: 6 });
    });
    it('7: config does not fit the schema', async () => {
      expect((await run({ ...inv, command: 'ADD' }, conf('1.0.0', { mtu: 'big' }))).json).toMatchObject({ code: 7, msg: expect.stringContaining('mtu') });
      expect((await run({ ...inv, command: 'ADD' }, conf('1.0.0', { ipam: { subnet: '10.0.0.0/33' } }))).json).toMatchObject({ code: 7 });
      expect((await run({ ...inv, command: 'ADD' }, { cniVersion: '1.0.0', type: 'lightly', ipam: { subnet: '10.0.0.0/24' } })).json).toMatchObject({ code: 7, msg: expect.stringContaining('name') });
    });
    it('3: the pod namespace does not exist, and nothing is allocated', async () => {
      // The server cannot tell a missing namespace from one outside its mount namespace: it hands
      // the call back, and the plugin where the runtime is says 3.
      const out = await run({ ...inv, command: 'ADD' }, conf('1.0.0'), true);
      expect(out.json).toMatchObject({ code: 3, msg: expect.stringContaining('lt-does-not-exist') });
      expect(existsSync(join(dataDir, 'lt-net', 'attachments', 'ctr-err:eth0'))).toBe(false);
    });
    it('103: no subnet and no agent to ask', async () => {
      const out = await run({ ...inv, command: 'ADD' }, conf('1.0.0', { ipam: undefined, agentSocket: '/run/lt-no-agent.sock' }));
      expect(out.json).toMatchObject({ code: 103, msg: expect.stringContaining('/run/lt-no-agent.sock') });
    });
    it('100: full pool; and nothing is half-created', async () => {
      const small = (extra = {}) => conf('1.0.0', { name: 'lt-small', ipam: { subnet: '10.99.0.0/30' }, ...extra });
      const podA = await pool.create('pod');
      const podB = await pool.create('pod');
      const a = await run({ command: 'ADD', containerId: 'ctr-a', netns: pool.path(podA), ifname: 'eth0' }, small());
      expect(a.exitCode).toBe(0);
      const b = await run({ command: 'ADD', containerId: 'ctr-b', netns: pool.path(podB), ifname: 'eth0' }, small());
      expect(b.json).toMatchObject({ code: 100, msg: expect.stringContaining('10.99.0.0/30') });
      expect(await ipIn(podB, ['link', 'show'])).not.toContain('eth0');
      expect((await run({ command: 'STATUS' }, small({ cniVersion: '1.1.0' }))).json).toMatchObject({ code: 50, msg: expect.stringContaining('exhausted') });
      expect((await run({ command: 'DEL', containerId: 'ctr-a', netns: pool.path(podA), ifname: 'eth0' }, small())).exitCode).toBe(0);
      expect((await run({ command: 'STATUS' }, small({ cniVersion: '1.1.0' }))).exitCode).toBe(0);
    });
    it('101: a dataplane failure midway releases the address and leaves no veth', async () => {
      const pod = await pool.create('pod');
      await ipIn(pod, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'squat']); // the name is taken
      const out = await run({ command: 'ADD', containerId: 'ctr-clash', netns: pool.path(pod), ifname: 'eth0' }, conf('1.0.0'));
      expect(out.json).toMatchObject({ code: 101 });
      expect(existsSync(join(dataDir, 'lt-net', 'attachments', 'ctr-clash:eth0'))).toBe(false);
      expect(await ipIn(host, ['link', 'show'])).not.toContain(hostVethName('ctr-clash', 'eth0'));
    });
    it('11: the attachment is held by another operation', async () => {
      const pod = await pool.create('pod');
      // A lock held by a live process (this one) in the same pid namespace.
      const lock = join(dataDir, 'lt-net', 'locks', 'ctr-busy:eth0');
      mkdirSync(join(lock, '..'), { recursive: true });
      const start = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[19];
      writeFileSync(lock, JSON.stringify({ pidns: readlinkSync('/proc/self/ns/pid'), pid: process.pid, start }));
      const out = await run({ command: 'ADD', containerId: 'ctr-busy', netns: pool.path(pod), ifname: 'eth0' }, conf('1.0.0'));
      expect(out.json).toMatchObject({ code: 11 });
      expect(existsSync(join(dataDir, 'lt-net', 'attachments', 'ctr-busy:eth0'))).toBe(false);
      rmSync(lock);
    }, 30_000);
  });

  describe('GC and STATUS (1.1.0)', () => {
    it('GC releases every attachment not listed as valid, with its host veth', async () => {
      const gcConf = (extra = {}) => conf('1.1.0', { name: 'lt-gc', ...extra });
      const pods = await Promise.all([0, 1, 2].map(() => pool.create('pod')));
      const results = [];
      for (const [i, pod] of pods.entries()) {
        const out = await run({ command: 'ADD', containerId: `ctr-gc${i}`, netns: pool.path(pod), ifname: 'eth0' }, gcConf());
        expect(out.exitCode).toBe(0);
        results.push(out.json!);
      }
      const gc = await run({ command: 'GC' }, gcConf({ 'cni.dev/valid-attachments': [{ containerID: 'ctr-gc1', ifname: 'eth0' }] }));
      expect(gc.exitCode, gc.stdout).toBe(0);
      expect(await hostHasLink(results[0]!.interfaces[0].name)).toBe(false);
      expect(await hostHasLink(results[2]!.interfaces[0].name)).toBe(false);
      expect(await hostHasLink(results[1]!.interfaces[0].name)).toBe(true);
      expect(existsSync(join(dataDir, 'lt-gc', 'attachments', 'ctr-gc0:eth0'))).toBe(false);
      expect(existsSync(join(dataDir, 'lt-gc', 'attachments', 'ctr-gc1:eth0'))).toBe(true);
      // the older field name is accepted too
      expect((await run({ command: 'GC' }, gcConf({ 'cni.dev/attachments': [] }))).exitCode).toBe(0);
      expect(existsSync(join(dataDir, 'lt-gc', 'attachments', 'ctr-gc1:eth0'))).toBe(false);
      expect((await run({ command: 'GC' }, conf('1.0.0'))).json?.code).toBe(1);
    });

    it('STATUS fails with 50 when the data dir is unusable', async () => {
      expect((await run({ command: 'STATUS' }, conf('1.1.0'))).exitCode).toBe(0);
      const file = join(dataDir, 'not-a-dir');
      writeFileSync(file, '');
      expect((await run({ command: 'STATUS' }, conf('1.1.0', { dataDir: file }))).json).toMatchObject({ code: 50 });
      expect((await run({ command: 'STATUS' }, conf('1.0.0'))).json?.code).toBe(1);
    });
  });

  describe('concurrency', () => {
    it('50 parallel ADDs never hand out one address twice', async () => {
      const pods = await Promise.all(Array.from({ length: 50 }, () => pool.create('cc')));
      const confC = conf('1.0.0', { name: 'lt-conc' });
      const outs = await Promise.all(pods.map((pod, i) => run({ command: 'ADD', containerId: `ctr-c${i}`, netns: pool.path(pod), ifname: 'eth0' }, confC)));
      for (const out of outs) expect(out.exitCode, out.stdout + out.stderr).toBe(0);
      const ips = outs.map((o) => o.json!.ips[0].address);
      expect(new Set(ips).size).toBe(50);
      const dels = await Promise.all(pods.map((pod, i) => run({ command: 'DEL', containerId: `ctr-c${i}`, netns: pool.path(pod), ifname: 'eth0' }, confC)));
      for (const out of dels) expect(out.exitCode, out.stdout + out.stderr).toBe(0);
    }, 180_000);
  });
}
