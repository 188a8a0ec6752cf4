// The lab's commands: one helper to run them (a failure names the command and its output), `ip -batch`
// in a namespace, and the bridge namespace that is one L2 segment (the shared fabric, or a rack).
import { execa } from 'execa';

export async function run(cmd: string, args: string[], input?: string): Promise<string> {
  const out = await execa(cmd, args, { input, reject: false, timeout: 60_000 });
  if (out.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${out.stderr || out.stdout}`);
  return out.stdout;
}

export function ipBatch(netns: string, lines: string[]): Promise<string> {
  return run('ip', ['-n', netns, '-batch', '-'], lines.join('\n') + '\n');
}

/** A new namespace with a bridge br0 holding `address`/24: the segment the nodes' veths join, and their gateway. */
export async function addBridgeNamespace(netns: string, address: string, moreAddressLines: string[] = []): Promise<void> {
  await run('ip', ['netns', 'add', netns]);
  await ipBatch(netns, ['link set lo up', 'link add br0 type bridge', `addr add ${address}/24 dev br0`, ...moreAddressLines, 'link set br0 up']);
}
