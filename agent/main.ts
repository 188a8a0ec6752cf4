// lightly-agent: `--config FILE` (standalone), `--kubernetes [--config FILE]`, `install-cni` or `uninstall-policy`.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { type AgentConfig, ConfigError, loadAgentConfig } from './config.js';
import { AgentDaemon, type DaemonDeps } from './daemon.js';
import { installCni } from './install-cni.js';
import { loadApiEndpoint } from './kube/kubeconfig.js';
import { KubernetesMode } from './kube/run.js';
import { createSpeaker } from './speaker-adapter.js';
import { createRouteSink } from './route-adapter.js';
import { NextHopWatch } from './nexthop-watch.js';
import { nativeAddon } from '../native/native.js';
import { startPolicy, removePolicyTable } from './policy/run.js';
import type { StatusRoute } from './status-server.js';
import type { AnnouncedPrefix } from './status.js';
import { type CniStatsSnapshot, parseCniStats } from './event-metrics.js';

const log = pino({ base: { component: 'lightly-agent' }, timestamp: pino.stdTimeFunctions.isoTime });
const here = dirname(fileURLToPath(import.meta.url));

function flag(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}

/** Runs `lightly.js serve` beside this bundle as a child; restarts it if it dies (bounded back-off). */
async function startCniServer(addrFile: string): Promise<{ close(): Promise<void>; stats(): CniStatsSnapshot | undefined }> {
  const bundle = [join(here, 'lightly.js'), '/opt/lightly/lib/lightly.js'].find((p) => existsSync(p));
  if (!bundle) {
    log.warn({}, 'lightly.js not found: no CNI server, the plugin will run in-process');
    return { close: async () => undefined, stats: () => undefined };
  }
  let stats: CniStatsSnapshot | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  let closing = false;
  let delay = 500;
  const launch = (): void => {
    // Its stdin is a pipe from us: however we exit, the pipe closes and the server exits with us.
    // The IPC channel carries its counters to our /metrics; a restarted server starts them from zero.
    child = spawn(process.execPath, [bundle, 'serve', '--addr-file', addrFile, '--exit-with-stdin'], { stdio: ['pipe', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (message) => (stats = parseCniStats(message) ?? stats));
    const started = Date.now();
    child.on('exit', (code) => {
      if (closing) return;
      delay = Date.now() - started > 60_000 ? 500 : Math.min(delay * 2, 30_000);
      log.warn({ code, retryMs: delay }, 'cni server exited; restarting');
      setTimeout(launch, delay);
    });
  };
  launch();
  const deadline = Date.now() + 10_000;
  while (!existsSync(addrFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return {
    close: async () => {
      closing = true;
      child?.kill('SIGTERM');
    },
    stats: () => stats,
  };
}

/** The node-local settings file of Kubernetes mode (statusSocket, listen, metricsPort…); optional. */
function readLocalSettings(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  try {
    return (parseYaml(readFileSync(path, 'utf8')) ?? {}) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
}

async function startDaemon(config: AgentConfig, statusRoutes?: Record<string, StatusRoute>, policyFacts?: DaemonDeps['policyFacts'], services: AnnouncedPrefix[] = []): Promise<AgentDaemon> {
  const daemon = new AgentDaemon(config, {
    statusRoutes,
    ...(policyFacts ? { policyFacts } : {}),
    log,
    makeSpeaker: (settings) => createSpeaker(settings, log),
    routes: createRouteSink(config, log),
    nextHops: new NextHopWatch(log, { addon: nativeAddon, dump: nativeAddon }),
    startCniServer,
  });
  daemon.setServiceAnnouncements(services); // in the first announcement (graceful restart keeps them at the peers)
  await daemon.start();
  return daemon;
}

/**
 * SIGTERM/SIGINT stop gracefully: routes stay, peers hold ours. The listeners stay registered (`on`,
 * not `once`): execa's child clean-up (signal-exit) re-raises a signal once it sees no other listener,
 * which killed the agent in the middle of its own graceful stop whenever it had subscribed first.
 */
function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping (graceful: routes stay, peers hold ours)');
    void stop().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err: err.message }, 'stopping failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}

const USAGE = `usage: lightly-agent --config FILE                 standalone: peers, ASN and pod CIDRs from FILE (YAML or JSON)
       lightly-agent --kubernetes [--config FILE]  from Nodes and the CRDs (KUBECONFIG or in-cluster; NODE_NAME set);
                                                   FILE then holds only node-local settings
       lightly-agent install-cni [--source-dir D] [--cni-bin-dir D] [--lightly-dir D] [--cni-conf-dir D]
                                 [--pod-cidr CIDR] [--mtu N] [--conf-name NAME]
       lightly-agent uninstall-policy              removes the NetworkPolicy table (inet lightly-policy) of this host
SIGHUP reloads the standalone config; SIGTERM stops gracefully (routes stay). Logs are pino JSON on stdout.`;

async function main(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (args[0] === 'install-cni') {
    const written = installCni({
      sourceDir: flag(args, '--source-dir') ?? here,
      nodeBinary: process.execPath,
      cniBinDir: flag(args, '--cni-bin-dir') ?? '/host/opt/cni/bin',
      lightlyDir: flag(args, '--lightly-dir') ?? '/host/opt/lightly',
      cniConfDir: flag(args, '--cni-conf-dir') ?? '/host/etc/cni/net.d',
      podCIDR: flag(args, '--pod-cidr'),
      mtu: Number(flag(args, '--mtu') ?? 1500),
      confName: flag(args, '--conf-name') ?? '10-lightly.conflist',
    });
    log.info({ written }, 'cni installed');
    return;
  }
  if (args[0] === 'uninstall-policy') {
    await removePolicyTable();
    log.info({}, 'network policy table removed');
    return;
  }
  const configPath = flag(args, '--config');
  if (args.includes('--kubernetes')) {
    const nodeName = process.env.NODE_NAME;
    if (!nodeName) throw new ConfigError('--kubernetes needs NODE_NAME (downward API: spec.nodeName)');
    const local = readLocalSettings(configPath);
    const api = loadApiEndpoint(); // KUBECONFIG, ~/.kube/config, or the in-cluster service account
    const policy = startPolicy({ api, nodeName, local, log });
    const mode = new KubernetesMode({ api, nodeName, local, log, startDaemon: (config, services) => startDaemon(config, policy?.routes, policy?.flowFacts, services) });
    await mode.start();
    stopOnSignals(async () => {
      await mode.stop(true);
      await policy?.stop();
    });
    return;
  }
  if (!configPath) throw new ConfigError(USAGE);
  const daemon = await startDaemon(loadAgentConfig(configPath));
  stopOnSignals(() => daemon.stop(true));
  process.on('SIGHUP', () => {
    try {
      void daemon.reload(loadAgentConfig(configPath)).catch((err: Error) => log.error({ err: err.message }, 'reload failed'));
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reload refused: the new config is invalid; keeping the old one');
    }
  });
}

try {
  await main(process.argv.slice(2));
} catch (err) {
  log.fatal({ err: (err as Error).message }, 'lightly-agent cannot start');
  process.exitCode = 1;
}
