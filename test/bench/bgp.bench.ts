// BGP: a BIRD sender announces N IPv4 prefixes to our speaker and to a BIRD receiver at once.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { build } from 'esbuild';
import { NetnsPool, execIn, ipIn } from '../support/netns.js';
import { ratioLine } from './stats.js';

async function startBird(netns: string, dir: string, name: string): Promise<void> {
  const out = await execIn(netns, 'bird', ['-c', join(dir, `${name}.conf`), '-s', join(dir, `${name}.ctl`), '-P', join(dir, `${name}.pid`)]);
  if (out.exitCode !== 0) throw new Error(`bird (${name}) did not start: ${out.stderr}`);
}

export async function benchBgp(prefixes = Number(process.env.BENCH_PREFIXES ?? 100_000)): Promise<string[]> {
  const pool = new NetnsPool();
  const dir = mkdtempSync(join(tmpdir(), 'lt-bench-bgp-'));
  let ours: ReturnType<typeof execa> | undefined;
  try {
    const sender = await pool.create('bsend');
    const usNs = await pool.create('bours');
    const birdNs = await pool.create('bbird');
    for (const [ns, dev, local, remote] of [[usNs, 'tous', '198.51.100.1', '198.51.100.2'], [birdNs, 'tobird', '203.0.113.1', '203.0.113.2']] as const) {
      await ipIn(sender, ['link', 'add', dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ipIn(sender, ['addr', 'add', `${local}/24`, 'dev', dev]);
      await ipIn(sender, ['link', 'set', dev, 'up']);
      await ipIn(ns, ['addr', 'add', `${remote}/24`, 'dev', 'eth0']);
      await ipIn(ns, ['link', 'set', 'eth0', 'up']);
    }
    const routes: string[] = [];
    for (let i = 0; i < prefixes; i++) routes.push(`route 10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 unreachable;`);
    writeFileSync(join(dir, 'sender.conf'), `router id 198.51.100.1;
protocol device {}
protocol static { ipv4; ${routes.join('\n')} }
protocol bgp to_ours { connect delay time 1; local 198.51.100.1 as 65000; neighbor 198.51.100.2 as 64512; ipv4 { export all; import none; }; }
protocol bgp to_bird { connect delay time 1; local 203.0.113.1 as 65000; neighbor 203.0.113.2 as 64513; ipv4 { export all; import none; }; }
`);
    writeFileSync(join(dir, 'receiver.conf'), `router id 203.0.113.2;
protocol device {}
protocol bgp sender { local 203.0.113.2 as 64513; neighbor 203.0.113.1 as 65000; passive; ipv4 { import all; export none; }; }
`);
    await startBird(birdNs, dir, 'receiver');
    // Bundled and run by plain node, as the agent runs: tsx's loader alone would add tens of MB of RSS.
    await build({ entryPoints: ['test/bench/bgp-receiver.ts'], outfile: join(dir, 'receiver.mjs'), bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning',
      banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" } });
    ours = execa('ip', ['netns', 'exec', usNs, process.execPath, join(dir, 'receiver.mjs'), '198.51.100.2', '198.51.100.1', String(prefixes)], { reject: false, timeout: 300_000 });
    await new Promise<void>((resolve) => ours!.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    const t0 = Date.now();
    await startBird(sender, dir, 'sender');
    let birdDone = 0;
    let birdFirst = 0;
    const deadline = t0 + 300_000;
    while (!birdDone && Date.now() < deadline) {
      const out = await execa('birdc', ['-s', join(dir, 'receiver.ctl'), 'show', 'route', 'count'], { reject: false });
      const n = Number(/(\d+) of \d+ routes/.exec(String(out.stdout))?.[1] ?? 0);
      if (n > 0 && !birdFirst) birdFirst = Date.now();
      if (n >= prefixes) birdDone = Date.now();
      else await new Promise((r) => setTimeout(r, 20));
    }
    const result = await ours;
    const line = String(result.stdout).split('\n').find((l) => l.includes('"done"'));
    if (!line || !birdDone) throw new Error(`a receiver did not finish: ours ${line ?? result.stderr}, bird ${birdDone}`);
    const o = JSON.parse(line) as { done: number; firstUpdate: number; rssMB: number };
    // From the first route received to the last: session set-up (BIRD's connect delay) is left out.
    const oursMs = o.done - o.firstUpdate;
    const birdMs = birdDone - birdFirst;
    return [
      `BGP: ${prefixes} IPv4 prefixes from one BIRD sender, to our speaker and to a BIRD receiver at once (ms from first route in to all in; BIRD polled every 20 ms with birdc)`,
      `  ours ${oursMs} ms, RSS ${o.rssMB} MB (goal < 80 MB); BIRD ${birdMs} ms; from sender start: ours ${o.done - t0} ms, BIRD ${birdDone - t0} ms`,
      '  ' + ratioLine('time to full table, ours vs BIRD', oursMs, birdMs, '<= 1.0x'),
    ];
  } finally {
    ours?.kill();
    for (const ctl of ['sender.ctl', 'receiver.ctl']) await execa('birdc', ['-s', join(dir, ctl), 'down'], { reject: false });
    await pool.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
