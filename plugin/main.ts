// The `lightly` CNI plugin's entry: one CNI invocation (CNI_* + stdin), or
// `serve [--addr-file F] [--exit-with-stdin]`, the long-lived CNI server the bash shim hands
// invocations to. With --exit-with-stdin the server's stdin is a pipe from its parent (the agent)
// and it exits when that closes: the parent exiting in any way, SIGKILL included, closes it.
import { run } from './cni.js';
import { startCniServer } from './server.js';

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
  const server = await startCniServer(addrFile);
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
