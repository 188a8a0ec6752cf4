// Registers the `lightly` route protocol name with iproute2 (201 works without it; the name reads better).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROUTE_PROTOCOL, ROUTE_PROTOCOL_NAME } from './protocol-number.js';

export { ROUTE_PROTOCOL, ROUTE_PROTOCOL_NAME, isLightlyProtocol } from './protocol-number.js';

/** Whether an rt_protos file's text maps 201 to `lightly` (any whitespace, comments ignored). */
export function namesLightly(text: string): boolean {
  return text.split('\n').some((line) => {
    const [num, name] = line.replace(/#.*/, '').trim().split(/\s+/);
    return num === String(ROUTE_PROTOCOL) && name === ROUTE_PROTOCOL_NAME;
  });
}

/**
 * Ensures `<iprouteDir>/rt_protos.d/lightly.conf` maps 201 to `lightly`, creating the directory
 * and file when missing. Returns whether it wrote. Written then renamed, so `ip` never reads half a file.
 */
export function registerRouteProtocol(iprouteDir = '/etc/iproute2'): boolean {
  const dir = join(iprouteDir, 'rt_protos.d');
  const file = join(dir, `${ROUTE_PROTOCOL_NAME}.conf`);
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (namesLightly(current)) return false;
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `# route protocol of Lightly's agent and CNI plugin\n${ROUTE_PROTOCOL}\t${ROUTE_PROTOCOL_NAME}\n`);
  renameSync(tmp, file);
  return true;
}
