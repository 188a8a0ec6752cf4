// Every command block in the docs marked ```sh lab runs here as written, on a node of a lab: in the
// node's network namespace, with a throwaway view of its files (/etc, /opt, /var/lib and /run through
// overlays, so `rm -rf /opt/lightly` or install-cni change nothing on this machine) and the node's
// agent socket at the default /run/lightly/agent.sock. A block passes when bash -euo pipefail does.
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { down, up } from '../deploy/lab/lab.js';
import type { LabNode } from '../deploy/lab/topology.js';
import { requireNetworkTools } from './support/netns.js';

/** The blocks a reader can run on a node: ```sh lab … ``` in docs/*.md and README.md. */
function labBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh lab\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

const files = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
const blocks = files.flatMap((file) => labBlocks(readFileSync(file, 'utf8')).map((text, i) => ({ file, index: i + 1, text })));

// Run as root inside `ip netns exec NODE unshare --mount --propagation private`: nothing mounted here
// leaves that mount namespace.
const NODE_VIEW = `
set -euo pipefail
scratch=$1 socket=$2 bindir=$3
mount -t tmpfs lightly-docs "$scratch"
for dir in etc opt var/lib run; do
  mkdir -p "$scratch/upper/$dir" "$scratch/work/$dir"
  mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$scratch/upper/$dir,workdir=$scratch/work/$dir" "/$dir"
done
mkdir -p /run/lightly && ln -s "$socket" /run/lightly/agent.sock
export PATH="$bindir:$PATH"
cd /
`;

const prefix = `lt-${randomBytes(2).toString('hex')}-`;
const work = mkdtempSync(join(tmpdir(), 'lt-docs-'));
const stateDir = join(work, 'state');
let node: LabNode;

beforeAll(async () => {
  await requireNetworkTools(['ip', 'nsenter', 'unshare', 'nft']);
  // The commands the docs use, as an operator has them on the PATH.
  const bin = join(work, 'bin');
  mkdirSync(bin);
  for (const name of ['lightlyctl', 'lightly-agent', 'lightly-lab']) symlinkSync(resolve(`dist/bin/${name}.js`), join(bin, name));
  const state = await up({ nodes: 2, pods: 1, prefix, stateDir, holdTime: 3, tor: 'mesh' }, () => undefined);
  node = state.plan.nodes[0]!;
}, 120_000);

afterAll(async () => {
  await down(stateDir, prefix, () => undefined);
  rmSync(work, { recursive: true, force: true });
}, 60_000);

/** Runs a block on the lab node, in a fresh view of its files. */
async function runOnNode(text: string) {
  const script = join(work, `block-${randomBytes(3).toString('hex')}.sh`);
  writeFileSync(script, NODE_VIEW + text);
  const view = mkdtempSync(join(work, 'view-'));
  return execa(
    'ip', ['netns', 'exec', node.netns, 'unshare', '--mount', '--propagation', 'private', 'bash', script, view, node.statusSocket, join(work, 'bin')],
    { reject: false, all: true, timeout: 60_000 },
  );
}

describe('docs commands marked `sh lab`', () => {
  it('there are such blocks in install, operations and troubleshooting', () => {
    expect(new Set(blocks.map((b) => b.file))).toEqual(new Set(['docs/install.md', 'docs/operations.md', 'docs/troubleshooting.md']));
  });

  it.each(blocks.map((b) => [`${b.file} block ${b.index}`, b] as const))('%s runs as written on a lab node', async (_name, block) => {
    const run = await runOnNode(block.text);
    expect(run.exitCode, `${block.text}\n---\n${run.all}`).toBe(0);
  });

  it('the harness can fail: a block that fails, or reaches for a missing command, is caught', async () => {
    for (const text of ['false\n', 'lightlyctl no-such-verb\n', 'no-such-command\n']) {
      expect((await runOnNode(text)).exitCode, text).not.toBe(0);
    }
  });
});
