// The `lightly` CNI plugin's entry: reads CNI_* and the config on stdin, runs one verb, prints the result.
import { run } from './cni.js';

/** Reads stdin as a stream: a runtime may hand us a non-blocking pipe, where a sync read gets EAGAIN. */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const { stdout, exitCode } = await run(process.env, await readStdin());
if (stdout) process.stdout.write(stdout + '\n');
process.exitCode = exitCode;
