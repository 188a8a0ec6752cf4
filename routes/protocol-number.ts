// The route protocol number that marks every route Lightly owns (named `lightly` in rt_protos.d).
export const ROUTE_PROTOCOL = 201;
export const ROUTE_PROTOCOL_NAME = 'lightly';

/** `ip` prints the name when rt_protos.d registers it and the number when not: both are ours. */
export function isLightlyProtocol(value: string | number): boolean {
  return String(value) === String(ROUTE_PROTOCOL) || value === ROUTE_PROTOCOL_NAME;
}
