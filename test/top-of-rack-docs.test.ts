// docs/top-of-rack.md shows the rack lab's ToR and spine templates verbatim: one source of truth, the
// lab runs exactly what the docs show (issue 14).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const DIR = 'deploy/lab/templates';
const doc = readFileSync('docs/top-of-rack.md', 'utf8');
/** Each fenced block of the doc with the file it names just above it (`deploy/lab/templates/X`:). */
const shown = new Map([...doc.matchAll(/^`(deploy\/lab\/templates\/[\w.]+)`:\n\n```\w*\n([\s\S]*?)^```$/gm)].map((m) => [m[1]!, m[2]!]));

describe('docs/top-of-rack.md', () => {
  const templates = readdirSync(DIR).filter((f) => f.endsWith('.conf'));

  it('has the four router templates (ToR and spine, FRR and BIRD)', () => {
    expect(templates.sort()).toEqual(['spine.bird.conf', 'spine.frr.conf', 'tor.bird.conf', 'tor.frr.conf']);
  });

  it.each(templates)('shows %s exactly as the lab uses it, passwords included', (name) => {
    const path = join(DIR, name);
    expect(shown.get(path), `no block for ${path}`).toBe(readFileSync(path, 'utf8'));
    expect(shown.get(path)).toMatch(/password/);
  });
});
