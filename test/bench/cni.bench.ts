// CNI ADD/DEL latency: the lightly plugin against the reference ptp + host-local, interleaved in one run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsPool, createHost } from '../support/netns.js';
import { type RunningCniServer, invoke, makeCniPath, startCniServerIn } from '../support/cni.js';
import { ratioLine, summary } from './stats.js';

export async function benchCni(pods = Number(process.env.BENCH_PODS ?? 30)): Promise<string[]> {
  const pool = new NetnsPool();
  const dataDir = mkdtempSync(join(tmpdir(), 'lt-bench-cni-'));
  const cniPath = makeCniPath();
  const times = {
    serverAdd: [] as number[], serverDel: [] as number[], inprocAdd: [] as number[], inprocDel: [] as number[],
    refAdd: [] as number[], refDel: [] as number[],
  };
  const addrFile = join(dataDir, 'cni.addr');
  let server: RunningCniServer | undefined;
  try {
    const { host } = await createHost(pool, 'bhost');
    server = await startCniServerIn(host, addrFile);
    const ours = { cniVersion: '1.0.0', name: 'lt-bench', type: 'lightly', ipam: { subnet: '10.244.0.0/16' }, dataDir, cniServer: addrFile };
    const oursInProcess = { ...ours, name: 'lt-bench-inproc', ipam: { subnet: '10.246.0.0/16' }, cniServer: join(dataDir, 'no-server') };
    const reference = {
      cniVersion: '1.0.0', name: 'lt-bench-ref', type: 'ptp', ipMasq: false,
      ipam: { type: 'host-local', subnet: '10.245.0.0/16', dataDir: join(dataDir, 'host-local') },
    };
    const plugins = [
      { conf: ours, binary: join(cniPath, 'lightly'), add: times.serverAdd, del: times.serverDel },
      { conf: reference, binary: join(cniPath, 'ptp'), add: times.refAdd, del: times.refDel },
      { conf: oursInProcess, binary: join(cniPath, 'lightly'), add: times.inprocAdd, del: times.inprocDel },
    ];
    for (let i = 0; i < pods; i++) {
      // Alternate which goes first so drift on a noisy machine hits both alike.
      for (const p of i % 2 ? [...plugins].reverse() : plugins) {
        const pod = await pool.create('bpod');
        const inv = { containerId: `bench-${p.conf.name}-${i}`, netns: pool.path(pod), ifname: 'eth0', hostNetns: host };
        let t = performance.now();
        const added = await invoke(p.binary, { ...inv, command: 'ADD' }, p.conf, cniPath);
        p.add.push(performance.now() - t);
        if (added.exitCode !== 0) throw new Error(`${p.conf.type} ADD failed: ${added.stdout}${added.stderr}`);
        t = performance.now();
        const deleted = await invoke(p.binary, { ...inv, command: 'DEL' }, p.conf, cniPath);
        p.del.push(performance.now() - t);
        if (deleted.exitCode !== 0) throw new Error(`${p.conf.type} DEL failed: ${deleted.stdout}`);
      }
    }
  } finally {
    await server?.stop();
    await pool.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(cniPath, { recursive: true, force: true });
  }
  const rows = [
    summary('lightly ADD (server)', times.serverAdd), summary('lightly ADD (in-process)', times.inprocAdd),
    summary('ptp+host-local ADD', times.refAdd),
    summary('lightly DEL (server)', times.serverDel), summary('lightly DEL (in-process)', times.inprocDel),
    summary('ptp+host-local DEL', times.refDel),
  ];
  const [srvAdd, inAdd, refAdd, srvDel, inDel, refDel] = rows.map((r) => r.p50) as number[];
  return [
    `CNI: ${pods} pods each, ADD then DEL, every call through 'ip netns exec' into the node namespace (ms)`,
    ...rows.map((r) => `  ${r.name.padEnd(26)} p50 ${r.p50.toFixed(1).padStart(7)}  p95 ${r.p95.toFixed(1).padStart(7)}`),
    '  ' + ratioLine('ADD p50, server vs ptp+host-local', srvAdd!, refAdd!, '<= 1.0x'),
    '  ' + ratioLine('DEL p50, server vs ptp+host-local', srvDel!, refDel!, '<= 1.0x'),
    '  ' + ratioLine('ADD p50, in-process fallback vs ptp+host-local', inAdd!, refAdd!, 'none; fallback only'),
    '  ' + ratioLine('DEL p50, in-process fallback vs ptp+host-local', inDel!, refDel!, 'none; fallback only'),
  ];
}
