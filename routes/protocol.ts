// Registers the `lightly` route protocol name with iproute2 (201 works without it; the name reads better).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROUTE_PROTOCOL, ROUTE_PROTOCOL_NAME } from './protocol-number.js';

/** Writes `<dir>/rt_protos.d/lightly.conf` unless it already names our protocol. Returns whether it wrote. */
export function registerRouteProtocol(iprouteDir = '/etc/iproute2'): boolean {
  const dir = join(iprouteDir, 'rt_protos.d');
  const file = join(dir, `${ROUTE_PROTOCOL_NAME}.conf`);
  const line = `${ROUTE_PROTOCOL}\t${ROUTE_PROTOCOL_NAME}`;
  if (existsSync(file) && readFileSync(file, 'utf8').split('\n').some((l) => l.trim().split(/\s+/).join(' ') === `${ROUTE_PROTOCOL} ${ROUTE_PROTOCOL_NAME}`)) return false;
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, `# route protocol of Lightly's agent and CNI plugin\n${line}\n`);
  return true;
}
