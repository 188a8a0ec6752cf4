// The import rules of ARCHITECTURE.md's layout table, checked on the source: bgp/ imports nothing
// outside bgp/, routes/ only execa and ip-address, and no production file imports test code (the
// raw BGP peer and the loopback fixture beside the speaker included).
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const TEST_FIXTURES = ['bgp/speaker/raw-peer.ts', 'bgp/speaker/loopback.ts', 'bgp/codec/fuzz.ts'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => normalize(join(e.parentPath, e.name)));
}

const isTest = (file: string) => file.endsWith('.test.ts') || TEST_FIXTURES.includes(file);

/** What a file imports: package names, and repository paths for relative imports (.js read as .ts). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gm)].map((m) => {
    const spec = (m[1] ?? m[2])!;
    return spec.startsWith('.') ? normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts') : spec;
  });
}

const production = (dir: string) => sources(dir).filter((f) => !isTest(f));
const packageOf = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);

describe('ARCHITECTURE.md layout: who may import what', () => {
  it('bgp/ production code imports nothing outside bgp/ but Node built-ins, and no test fixture', () => {
    const bad = production('bgp').flatMap((f) => importsOf(f).filter((i) => !i.startsWith('node:') && (!i.startsWith('bgp/') || TEST_FIXTURES.includes(i))).map((i) => `${f} -> ${i}`));
    expect(bad).toEqual([]);
  });

  it('routes/ production code imports only routes/, Node built-ins, execa and ip-address', () => {
    const bad = production('routes').flatMap((f) => importsOf(f).filter((i) => !i.startsWith('node:') && !i.startsWith('routes/') && !['execa', 'ip-address'].includes(packageOf(i))).map((i) => `${f} -> ${i}`));
    expect(bad).toEqual([]);
  });

  it('no production file imports test code', () => {
    const bad = ['bgp', 'routes', 'plugin', 'agent', 'deploy'].flatMap(production).flatMap((f) => importsOf(f).filter((i) => i.startsWith('test/') || TEST_FIXTURES.includes(i)).map((i) => `${f} -> ${i}`));
    expect(bad).toEqual([]);
  });
});
