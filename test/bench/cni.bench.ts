// CNI ADD/DEL latency: the lightly plugin against the reference ptp + host-local, interleaved in one run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsPool, createHost } from '../support/netns.js';
import { invoke, makeCniPath } from '../support/cni.js';
import { ratioLine, summary } from './stats.js';

export async function benchCni(pods = Number(process.env.BENCH_PODS ?? 30)): Promise<string[]> {
  const pool = new NetnsPool();
  const dataDir = mkdtempSync(join(tmpdir(), 'lt-bench-cni-'));
  const cniPath = makeCniPath();
  const times = { lightlyAdd: [] as number[], lightlyDel: [] as number[], refAdd: [] as number[], refDel: [] as number[] };
  try {
    const { host } = await createHost(pool, 'bhost');
    const ours = { cniVersion: '1.0.0', name: 'lt-bench', type: 'lightly', ipam: { subnet: '10.244.0.0/16' }, dataDir };
    const reference = {
      cniVersion: '1.0.0', name: 'lt-bench-ref', type: 'ptp', ipMasq: false,
      ipam: { type: 'host-local', subnet: '10.245.0.0/16', dataDir: join(dataDir, 'host-local') },
    };
    const plugins = [
      { conf: ours, binary: join(cniPath, 'lightly'), add: times.lightlyAdd, del: times.lightlyDel },
      { conf: reference, binary: join(cniPath, 'ptp'), add: times.refAdd, del: times.refDel },
    ];
    for (let i = 0; i < pods; i++) {
      // Alternate which goes first so drift on a noisy machine hits both alike.
      for (const p of i % 2 ? [...plugins].reverse() : plugins) {
        const pod = await pool.create('bpod');
        const inv = { containerId: `bench-${p.conf.type}-${i}`, netns: pool.path(pod), ifname: 'eth0', hostNetns: host };
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
    await pool.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(cniPath, { recursive: true, force: true });
  }
  const rows = [
    summary('lightly ADD', times.lightlyAdd), summary('ptp+host-local ADD', times.refAdd),
    summary('lightly DEL', times.lightlyDel), summary('ptp+host-local DEL', times.refDel),
  ];
  return [
    `CNI: ${pods} pods each, ADD then DEL, run through 'ip netns exec' on both sides (ms)`,
    ...rows.map((r) => `  ${r.name.padEnd(20)} p50 ${r.p50.toFixed(1).padStart(7)}  p95 ${r.p95.toFixed(1).padStart(7)}`),
    '  ' + ratioLine('ADD p50', rows[0]!.p50, rows[1]!.p50, '<= 1.0x'),
    '  ' + ratioLine('DEL p50', rows[2]!.p50, rows[3]!.p50, '<= 1.0x'),
  ];
}
