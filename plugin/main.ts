// The `lightly` CNI plugin's entry: one CNI invocation (CNI_* + stdin), or
// `serve [--addr-file F] [--exit-with-stdin]`, the long-lived CNI server the bash shim hands
// invocations to. With --exit-with-stdin the server's stdin is a pipe from its parent (the agent)
// and it exits when that closes: the parent exiting in any way, SIGKILL included, closes it.
import { run } from './cni.js';
import { startCniServer } from './server.js';
import { CniStats } from './stats.js';

/** How often at most the counters go to the agent (over the IPC channel it opened): a burst of pods is one message. */
const STATS_EVERY_MS = 1_000;

/** Sends the counters to the parent after requests, at most once per STATS_EVERY_MS. */
function sendStatsToParent(stats: CniStats): void {
  let sent = '';
  const timer = setInterval(() => {
    const snapshot = stats.snapshot();
    const text = JSON.stringify(snapshot);
    if (text === sent || !process.connected) return;
    sent = text;
    process.send!({ cniStats: snapshot });
  }, STATS_EVERY_MS);
  timer.unref();
}

/** Reads stdin as a stream: a runtime may hand us a non-blocking pipe, where a sync read gets EAGAIN. */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function serve(args: string[]): Promise<void> {
  const at = args.indexOf('--addr-file');
  const addrFile = at >= 0 ? args[at + 1] : '/run/lightly/cni.addr';
  if (!addrFile) throw new Error('usage: lightly.js serve [--addr-file FILE]');
  const stats = new CniStats();
  const server = await startCniServer(addrFile, undefined, stats);
  if (process.send) sendStatsToParent(stats);
  process.stderr.write(JSON.stringify({ level: 30, msg: 'cni server listening', port: server.port, addrFile }) + '\n');
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (args.includes('--exit-with-stdin')) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }
}

const USAGE = `usage: CNI_COMMAND=ADD|DEL|CHECK|STATUS|GC|VERSION CNI_CONTAINERID=… CNI_NETNS=… CNI_IFNAME=… CNI_PATH=… lightly.js < netconf.json
       lightly.js serve [--addr-file FILE] [--exit-with-stdin]   (the CNI server, started by lightly-agent)`;

if (process.argv[2] === '--help' || process.argv[2] === '-h') {
  process.stdout.write(`${USAGE}\n`);
} else if (process.argv[2] === 'serve') {
  await serve(process.argv.slice(3));
} else {
  const { stdout, exitCode } = await run(process.env, await readStdin());
  if (stdout) process.stdout.write(stdout + '\n');
  process.exitCode = exitCode;
}
