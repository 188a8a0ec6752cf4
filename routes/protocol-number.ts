// The route protocol number that marks every route Lightly owns (named `lightly` in rt_protos.d).
export const ROUTE_PROTOCOL = 201;
export const ROUTE_PROTOCOL_NAME = 'lightly';
