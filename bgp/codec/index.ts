// The BGP-4 wire codec: pure functions, bytes in and typed messages out; errors carry their NOTIFICATION.
import { type BgpError, type Capability, CapabilityCode, type Family, type NotificationMessage, type OpenMessage } from './types.js';

export * from './types.js';
export { encodeMessage, decodeMessage, keepalive, endOfRib } from './messages.js';
export { MessageReader } from './reader.js';
export { formatPrefix, parsePrefix, parseAddress, formatAddress, isLinkLocal } from './prefix.js';

export interface OpenCapabilities {
  fourOctetAs?: number;
  families: Family[];
  routeRefresh: boolean;
  gracefulRestart?: Extract<Capability, { code: 64 }>;
}

export function capabilitiesOf(open: OpenMessage): OpenCapabilities {
  const result: OpenCapabilities = { families: [], routeRefresh: false };
  for (const c of open.capabilities) {
    if ('raw' in c) continue;
    if (c.code === CapabilityCode.MULTIPROTOCOL) result.families.push(c.family);
    else if (c.code === CapabilityCode.ROUTE_REFRESH) result.routeRefresh = true;
    else if (c.code === CapabilityCode.FOUR_OCTET_AS) result.fourOctetAs = c.asn;
    else if (c.code === CapabilityCode.GRACEFUL_RESTART) result.gracefulRestart = c;
  }
  return result;
}

export function notificationFor(err: BgpError): NotificationMessage {
  return { type: 3, code: err.code, subcode: err.subcode, data: err.data };
}
