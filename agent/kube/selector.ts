// Kubernetes label selectors (the string form): `a=b,c!=d,e,!f,g in (x,y),h notin (z)`, parsed once
// as an object arrives (a bad one is that object's error, never the agent's) and matched many times.

export class SelectorError extends Error {
  override name = 'SelectorError';
}

export type Requirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!exists' };

/** Splits on commas that are not inside parentheses; unbalanced parentheses are an error. */
function requirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0 || depth > 1) throw new SelectorError(`unbalanced parentheses in label selector ${JSON.stringify(selector)}`);
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  if (depth !== 0) throw new SelectorError(`unbalanced parentheses in label selector ${JSON.stringify(selector)}`);
  parts.push(current);
  const trimmed = parts.map((p) => p.trim());
  if (trimmed.length > 1 && trimmed.some((p) => !p)) throw new SelectorError(`empty requirement in label selector ${JSON.stringify(selector)}`);
  return trimmed.filter(Boolean);
}

// Label keys and values as Kubernetes validates them: a name of at most 63 characters, alphanumeric at
// both ends, with `-_.` inside; a key may carry a DNS-subdomain prefix and a slash.
const NAME = '[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?';
const PREFIX = '[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?';
export const LABEL_KEY = `(?:${PREFIX}/)?${NAME}`;
export const LABEL_VALUE = `(?:${NAME})?`;
const SET = new RegExp(`^(${LABEL_KEY})\\s+(in|notin)\\s+\\(([^()]*)\\)$`);
const EQUALITY = new RegExp(`^(${LABEL_KEY})\\s*(==|=|!=)\\s*(${LABEL_VALUE})$`);
const EXISTS = new RegExp(`^(!?)\\s*(${LABEL_KEY})$`);
const VALUE = new RegExp(`^${LABEL_VALUE}$`);

/** The selector's requirements (all must hold); throws SelectorError naming what does not parse. */
export function parseSelector(selector: string): Requirement[] {
  return requirements(selector).map((req): Requirement => {
    let m = SET.exec(req);
    if (m) {
      const values = m[3]!.split(',').map((v) => v.trim());
      if (values.some((v) => !VALUE.test(v)) || values.every((v) => !v)) throw new SelectorError(`bad values in label selector requirement ${JSON.stringify(req)}`);
      return { key: m[1]!, op: m[2] as 'in' | 'notin', values };
    }
    m = EQUALITY.exec(req);
    if (m) return { key: m[1]!, op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]!] };
    m = EXISTS.exec(req);
    if (m) return { key: m[2]!, op: m[1] ? '!exists' : 'exists' };
    throw new SelectorError(`cannot parse label selector requirement ${JSON.stringify(req)}`);
  });
}

/**
 * Whether the labels satisfy every requirement. Own properties only: a key such as `constructor` or
 * `toString` is a label like any other, not something every object has.
 */
export function matchesSelector(selector: string | Requirement[], labels: Record<string, string>): boolean {
  const parsed = typeof selector === 'string' ? parseSelector(selector) : selector;
  return parsed.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case 'in':
        return has && r.values.includes(labels[r.key]!);
      case 'notin':
        return !has || !r.values.includes(labels[r.key]!);
    }
  });
}
