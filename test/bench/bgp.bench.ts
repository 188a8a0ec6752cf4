// BGP: BIRD senders announce N IPv4 prefixes to our speaker and to a BIRD receiver at once.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { build } from 'esbuild';
import { NetnsPool, execIn, ipIn } from '../support/netns.js';
import { percentile, ratioLine } from './stats.js';

async function startBird(netns: string, dir: string, name: string): Promise<void> {
  const out = await execIn(netns, 'bird', ['-c', join(dir, `${name}.conf`), '-s', join(dir, `${name}.ctl`), '-P', join(dir, `${name}.pid`)]);
  if (out.exitCode !== 0) throw new Error(`bird (${name}) did not start: ${out.stderr}`);
}

interface Round {
  /** From the first route in to the last, per receiver. */
  oursMs: number;
  birdMs: number;
  /** From the senders' start (both identical, started together) to the last route in. */
  oursEndToEndMs: number;
  birdEndToEndMs: number;
  rssMB: number;
}

/** Several rounds and their medians: one round on these noisy machines swings by 2x either way. */
export async function benchBgp(prefixes = Number(process.env.BENCH_PREFIXES ?? 100_000), rounds = Number(process.env.BENCH_BGP_ROUNDS ?? 5)): Promise<string[]> {
  const results: Round[] = [];
  for (let i = 0; i < rounds; i++) results.push(await bgpRound(prefixes));
  const median = (pick: (r: Round) => number): number => percentile(results.map(pick), 50);
  const [ours, bird, ours2, bird2] = [median((r) => r.oursMs), median((r) => r.birdMs), median((r) => r.oursEndToEndMs), median((r) => r.birdEndToEndMs)];
  return [
    `BGP: ${prefixes} IPv4 prefixes from BIRD senders (one each, identical) to our speaker and to a BIRD receiver at once; medians of ${rounds} rounds (ms; BIRD polled every 20 ms with birdc)`,
    `  first route to all: ours ${ours}, BIRD ${bird}; sender start to all: ours ${ours2}, BIRD ${bird2}; our RSS ${Math.max(...results.map((r) => r.rssMB))} MB at most (goal < 80 MB)`,
    `  rounds (ours/BIRD, first route to all): ${results.map((r) => `${r.oursMs}/${r.birdMs}`).join(' ')}`,
    '  ' + ratioLine('first route to full table, ours vs BIRD', ours, bird, '<= 1.0x'),
    '  ' + ratioLine('sender start to full table, ours vs BIRD', ours2, bird2, '<= 1.0x'),
  ];
}

async function bgpRound(prefixes: number): Promise<Round> {
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
    // One BIRD sender process per receiver, identical but for the session: a single BIRD feeding two
    // sessions serves one after the other, and the second receiver would be timed on the first's turn.
    // `strict bind`: two BIRDs in one namespace cannot both listen on *:179.
    const senderConf = (name: string, local: string, remote: string, asn: number) => `router id ${local};
protocol device {}
protocol static { ipv4; ${routes.join('\n')} }
protocol bgp ${name} { connect delay time 0; strict bind on; local ${local} as 65000; neighbor ${remote} as ${asn}; ipv4 { export all; import none; }; }
`;
    writeFileSync(join(dir, 'sender-ours.conf'), senderConf('to_ours', '198.51.100.1', '198.51.100.2', 64512));
    writeFileSync(join(dir, 'sender-bird.conf'), senderConf('to_bird', '203.0.113.1', '203.0.113.2', 64513));
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
    await Promise.all([startBird(sender, dir, 'sender-ours'), startBird(sender, dir, 'sender-bird')]);
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
    return { oursMs: o.done - o.firstUpdate, birdMs: birdDone - birdFirst, oursEndToEndMs: o.done - t0, birdEndToEndMs: birdDone - t0, rssMB: o.rssMB };
  } finally {
    ours?.kill();
    for (const ctl of ['sender-ours.ctl', 'sender-bird.ctl', 'receiver.ctl']) await execa('birdc', ['-s', join(dir, ctl), 'down'], { reject: false });
    await pool.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
