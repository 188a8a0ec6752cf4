// Kernel routes as values, pure: normalise, diff desired against actual, render `ip -batch` lines, parse `ip -json`.
import { ROUTE_PROTOCOL } from './protocol-number.js';

export interface Route {
  prefix: string;
  type: 'unicast' | 'blackhole';
  /** Gateways; more than one is ECMP. Empty for blackholes. */
  nextHops: string[];
}

/** The same route whatever the order of its next hops. */
export function routeKey(route: Route): string {
  return `${route.type} ${route.prefix} ${[...route.nextHops].sort().join(',')}`;
}

export interface RouteDiff {
  /** Routes to `replace` (new, or changed next hops or type). */
  replace: Route[];
  /** Routes to delete (in the kernel with our protocol, not desired). */
  remove: Route[];
}

export function diffRoutes(desired: Iterable<Route>, actual: Iterable<Route>): RouteDiff {
  const actualByPrefix = new Map<string, Route>();
  for (const r of actual) actualByPrefix.set(r.prefix, r);
  const desiredPrefixes = new Set<string>();
  const replace: Route[] = [];
  for (const r of desired) {
    desiredPrefixes.add(r.prefix);
    const current = actualByPrefix.get(r.prefix);
    if (!current || routeKey(current) !== routeKey(r)) replace.push(r);
  }
  const remove = [...actualByPrefix.values()].filter((r) => !desiredPrefixes.has(r.prefix));
  return { replace, remove };
}

/**
 * A type change (blackhole ↔ unicast) is a delete then an add: `replace` matches on type, so it
 * would add a second route beside the old one.
 */
export function renderBatch(diff: RouteDiff, actual: Map<string, Route>): string[] {
  const lines: string[] = [];
  for (const r of diff.remove) lines.push(renderDelete(r));
  for (const r of diff.replace) {
    const current = actual.get(r.prefix);
    if (current && current.type !== r.type) lines.push(renderDelete(current));
    lines.push(renderReplace(r));
  }
  return lines;
}

export function renderReplace(r: Route): string {
  if (r.type === 'blackhole') return `route replace blackhole ${r.prefix} proto ${ROUTE_PROTOCOL}`;
  if (r.nextHops.length === 1) return `route replace ${r.prefix} proto ${ROUTE_PROTOCOL} via ${r.nextHops[0]}`;
  const hops = [...r.nextHops].sort().map((h) => `nexthop via ${h}`).join(' ');
  return `route replace ${r.prefix} proto ${ROUTE_PROTOCOL} ${hops}`;
}

export function renderDelete(r: Route): string {
  return `route del ${r.type === 'blackhole' ? 'blackhole ' : ''}${r.prefix} proto ${ROUTE_PROTOCOL}`;
}

interface IpJsonRoute {
  dst: string;
  type?: string;
  gateway?: string;
  nexthops?: { gateway?: string }[];
}

/** Parses `ip -json route show proto 201` (either family); host routes get their /32 or /128. */
export function parseIpJson(text: string): Route[] {
  const rows = text.trim() ? (JSON.parse(text) as IpJsonRoute[]) : [];
  const routes: Route[] = [];
  for (const row of rows) {
    const prefix = row.dst === 'default' ? (row.gateway?.includes(':') ? '::/0' : '0.0.0.0/0') : row.dst.includes('/') ? row.dst : `${row.dst}/${row.dst.includes(':') ? 128 : 32}`;
    if (row.type === 'blackhole') routes.push({ prefix, type: 'blackhole', nextHops: [] });
    else if (row.type && row.type !== 'unicast') continue; // unreachable, prohibit…: not ours to manage
    else {
      const nextHops = (row.nexthops ? row.nexthops.map((h) => h.gateway).filter((g): g is string => !!g) : row.gateway ? [row.gateway] : []);
      // Without a gateway it is a device route: the CNI plugin's /32 to a pod, not the reconciler's.
      if (nextHops.length > 0) routes.push({ prefix, type: 'unicast', nextHops });
    }
  }
  return routes;
}
