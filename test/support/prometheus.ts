// Debian's Prometheus scraping a lab's agents from inside the lab's fabric namespace (never the host's
// network): a temp data dir, loopback of that namespace only, stopped by the caller; queries through promtool.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { until } from './wait.js';

export const PROMETHEUS_URL = 'http://127.0.0.1:9090';

export interface LabPrometheus {
  /** promtool's answer to an instant query: the samples' labels and values. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  stop(): Promise<void>;
}

/** Starts Prometheus in `netns` scraping `targets` (host:port) every second; bounded to `lifetimeMs`. */
export async function startLabPrometheus(netns: string, dir: string, targets: string[], lifetimeMs = 300_000): Promise<LabPrometheus> {
  mkdirSync(join(dir, 'data'), { recursive: true });
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, [
    'global: { scrape_interval: 1s, evaluation_interval: 1s }',
    'scrape_configs:',
    '  - job_name: lightly',
    `    static_configs: [ { targets: [${targets.map((t) => `'${t}'`).join(', ')}] } ]`,
    '',
  ].join('\n'));
  const proc: ResultPromise = execa('ip', ['netns', 'exec', netns, 'prometheus', `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    '--web.listen-address=127.0.0.1:9090', '--storage.tsdb.retention.time=1h', '--log.level=warn'], { reject: false, timeout: lifetimeMs, cleanup: true, all: true });
  const query = async (expr: string): Promise<{ metric: Record<string, string>; value: number }[]> => {
    const out = await execa('ip', ['netns', 'exec', netns, 'promtool', 'query', 'instant', '-o', 'json', PROMETHEUS_URL, expr], { reject: false, timeout: 15_000 });
    if (out.exitCode !== 0) throw new Error(`promtool query ${expr}: ${out.stderr || out.stdout}`);
    const rows = JSON.parse(out.stdout || '[]') as { metric: Record<string, string>; value: [number, string] }[];
    return rows.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  const stop = async (): Promise<void> => {
    proc.kill('SIGTERM');
    await proc;
  };
  try {
    await until('prometheus to answer', async () => (await query('vector(1)').catch(() => [])).length === 1, 30_000);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; prometheus said: ${String((await proc).all ?? '').slice(-2000)}`);
  }
  return { query, stop };
}
