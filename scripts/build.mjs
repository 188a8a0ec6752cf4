// Bundles each binary into one self-contained file in dist/bin, so it runs when copied alone.
import { build } from 'esbuild';
import { existsSync, mkdirSync, chmodSync, copyFileSync, readdirSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';

const entries = {
  lightly: 'plugin/main.ts',
  'lightly-agent': 'agent/main.ts',
  lightlyctl: 'agent/ctl/main.ts',
  'lightly-lab': 'deploy/lab/main.ts',
};

mkdirSync('dist/bin', { recursive: true });
for (const [name, entry] of Object.entries(entries)) {
  if (!existsSync(entry)) continue;
  const outfile = `dist/bin/${name}.js`;
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    // ASCII and no indentation: V8 holds a source with any non-Latin-1 character as a two-byte
    // string, twice the size (the agent's bundle: 13 MB resident instead of under 4 MB). Names stay, for stack traces.
    charset: 'ascii',
    minifyWhitespace: true,
    sourcemap: false,
    legalComments: 'none',
    // ESM bundles of CommonJS dependencies need a real require.
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __lightlyRequire } from 'node:module'; const require = __lightlyRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  chmodSync(outfile, 0o755);
  console.log(`built ${outfile}`);
}

// The plugin as runtimes call it: the bash shim, beside the bundle it falls back to.
copyFileSync('plugin/shim.sh', 'dist/bin/lightly');
chmodSync('dist/bin/lightly', 0o755);
console.log('built dist/bin/lightly (shim)');

// The native addon (native/*.c: the socket options and netlink socket Node lacks), built with the
// node-gyp that npm ships, against this Node's own headers, and copied beside the bundles so an image
// or a copied dist needs no compiler. Rebuilt only when a source is newer than the addon.
const addon = 'native/build/Release/lightly_native.node';
const sources = readdirSync('native').filter((f) => /\.(c|h|gyp)$/.test(f)).map((f) => join('native', f));
if (!existsSync(addon) || sources.some((f) => statSync(f).mtimeMs > statSync(addon).mtimeMs)) {
  execFileSync(process.execPath, [nodeGyp(), 'rebuild', '--silent', '--directory', 'native'], { stdio: 'inherit' });
}
mkdirSync('dist/native', { recursive: true });
copyFileSync(addon, 'dist/native/lightly_native.node');
console.log('built dist/native/lightly_native.node');

function nodeGyp() {
  const npmCli = process.env.npm_execpath; // set when run by `npm run build`
  const roots = [npmCli ? join(dirname(npmCli), '..') : undefined, join(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm')];
  for (const root of roots) {
    const gyp = root && join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (gyp && existsSync(gyp)) return gyp;
  }
  throw new Error('node-gyp not found beside npm: the native addon cannot be built');
}
