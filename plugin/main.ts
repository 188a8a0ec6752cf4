// The `lightly` CNI plugin's entry: reads CNI_* and the config on stdin, runs one verb, prints the result.
import { readFileSync } from 'node:fs';
import { run } from './cni.js';

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

const { stdout, exitCode } = await run(process.env, readStdin());
if (stdout) process.stdout.write(stdout + '\n');
process.exitCode = exitCode;
