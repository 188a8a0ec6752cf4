// Kubernetes label selectors (the string form): `a=b,c!=d,e,!f,g in (x,y),h notin (z)`.

/** Splits on commas that are not inside parentheses. */
function requirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter(Boolean);
}

export class SelectorError extends Error {}

// Label keys (with an optional DNS prefix) and values, as Kubernetes allows them.
const KEY = '[A-Za-z0-9][A-Za-z0-9./_-]*';
const VALUE = '[A-Za-z0-9._-]*';
const SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s+\\(([^)]*)\\)$`);
const EQUALITY = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`);
const EXISTS = new RegExp(`^(!?)(${KEY})$`);

export function matchesSelector(selector: string, labels: Record<string, string>): boolean {
  return requirements(selector).every((req) => {
    let m = SET.exec(req);
    if (m) {
      const values = m[3]!.split(',').map((v) => v.trim());
      const has = m[1]! in labels && values.includes(labels[m[1]!]!);
      return m[2] === 'in' ? has : !has;
    }
    m = EQUALITY.exec(req);
    if (m) {
      const equal = labels[m[1]!] === m[3];
      return m[2] === '!=' ? !equal : equal;
    }
    m = EXISTS.exec(req);
    if (m) return m[1] ? !(m[2]! in labels) : m[2]! in labels;
    throw new SelectorError(`cannot parse label selector requirement ${JSON.stringify(req)}`);
  });
}
