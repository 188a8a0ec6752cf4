// Typed BGP-4 messages and path attributes: the contract between codec, FSM, RIB and speaker.

/** Address family identifiers (RFC 4760) that we speak. */
export const AFI = { IPv4: 1, IPv6: 2 } as const;
export type Afi = (typeof AFI)[keyof typeof AFI];
export const SAFI_UNICAST = 1;

/** An address family + subsequent family pair, e.g. IPv4 unicast. */
export interface Family {
  afi: Afi;
  safi: number;
}

/** An IP prefix in text form: `10.244.1.0/24`, `fd00::/64`. Canonical (host bits zero). */
export type Prefix = string;

export const MessageType = {
  OPEN: 1,
  UPDATE: 2,
  NOTIFICATION: 3,
  KEEPALIVE: 4,
  ROUTE_REFRESH: 5,
} as const;

// ---- Capabilities (RFC 5492) ----
export const CapabilityCode = {
  MULTIPROTOCOL: 1,
  ROUTE_REFRESH: 2,
  GRACEFUL_RESTART: 64,
  FOUR_OCTET_AS: 65,
  ENHANCED_ROUTE_REFRESH: 70,
} as const;

export interface GracefulRestartFamily extends Family {
  /** F bit: forwarding state was preserved for this family across the restart. */
  forwardingPreserved: boolean;
}

export type Capability =
  | { code: 1; family: Family }
  | { code: 2 }
  | { code: 64; restarting: boolean; notification?: boolean; restartTime: number; families: GracefulRestartFamily[] }
  | { code: 65; asn: number }
  | { code: number; raw: Uint8Array }; // any other capability, kept as bytes

// ---- Path attributes ----
export const AttrType = {
  ORIGIN: 1,
  AS_PATH: 2,
  NEXT_HOP: 3,
  MULTI_EXIT_DISC: 4,
  LOCAL_PREF: 5,
  ATOMIC_AGGREGATE: 6,
  AGGREGATOR: 7,
  COMMUNITIES: 8,
  ORIGINATOR_ID: 9,
  CLUSTER_LIST: 10,
  MP_REACH_NLRI: 14,
  MP_UNREACH_NLRI: 15,
  AS4_PATH: 17,
  AS4_AGGREGATOR: 18,
} as const;

export const AttrFlag = {
  OPTIONAL: 0x80,
  TRANSITIVE: 0x40,
  PARTIAL: 0x20,
  EXTENDED_LENGTH: 0x10,
} as const;

export const Origin = { IGP: 0, EGP: 1, INCOMPLETE: 2 } as const;
export type OriginValue = (typeof Origin)[keyof typeof Origin];

export const AsPathSegmentType = { AS_SET: 1, AS_SEQUENCE: 2, AS_CONFED_SEQUENCE: 3, AS_CONFED_SET: 4 } as const;
export interface AsPathSegment {
  type: number; // one of AsPathSegmentType
  asns: number[];
}

/** An attribute we do not interpret, carried on (optional transitive) with the partial bit set. */
export interface UnknownAttribute {
  flags: number;
  type: number;
  value: Uint8Array;
}

/**
 * The path attributes of one route, decoded. AS_PATH is always held with 4-octet ASNs: the codec
 * merges AS4_PATH on decode and splits to AS_TRANS on encode to 2-octet peers (RFC 6793).
 */
export interface PathAttributes {
  origin?: OriginValue;
  asPath?: AsPathSegment[];
  /** IPv4 NEXT_HOP attribute (type 3). */
  nextHop?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: { asn: number; address: string };
  communities?: number[];
  originatorId?: string;
  clusterList?: string[];
  unknown?: UnknownAttribute[];
}

export interface MpReach {
  family: Family;
  /** Next hops: one global, optionally a link-local second for IPv6. */
  nextHops: string[];
  nlri: Prefix[];
}

export interface MpUnreach {
  family: Family;
  withdrawn: Prefix[];
}

// ---- Messages ----
export interface OpenMessage {
  type: 1;
  version: number;
  /** The speaker's real ASN, 4-octet capable (taken from the capability when present). */
  asn: number;
  holdTime: number;
  routerId: string;
  capabilities: Capability[];
}

export interface UpdateMessage {
  type: 2;
  /** IPv4 unicast withdrawals in the classic field. */
  withdrawn: Prefix[];
  attributes: PathAttributes;
  /** IPv4 unicast NLRI in the classic field. */
  nlri: Prefix[];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  /**
   * Set by the decoder when RFC 7606 says treat-as-withdraw: every prefix in this UPDATE must be
   * handled as withdrawn; the session stays up.
   */
  treatAsWithdraw?: boolean;
}

export interface NotificationMessage {
  type: 3;
  code: number;
  subcode: number;
  data: Uint8Array;
}

export interface KeepaliveMessage {
  type: 4;
}

export interface RouteRefreshMessage {
  type: 5;
  family: Family;
  /** Enhanced route refresh subtype (RFC 7313); 0 for a plain request. */
  subtype: number;
}

export type BgpMessage = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;

/** An UPDATE with no NLRI, no withdrawals and at most an empty MP_UNREACH: End-of-RIB (RFC 4724). */
export function endOfRibFamily(msg: UpdateMessage): Family | undefined {
  const empty = msg.withdrawn.length === 0 && msg.nlri.length === 0 && !msg.mpReach;
  if (!empty) return undefined;
  if (!msg.mpUnreach && Object.keys(msg.attributes).length === 0) return { afi: AFI.IPv4, safi: SAFI_UNICAST };
  if (msg.mpUnreach && msg.mpUnreach.withdrawn.length === 0) return msg.mpUnreach.family;
  return undefined;
}

// ---- NOTIFICATION codes (RFC 4271 §4.5, RFC 4486, RFC 7313, RFC 9687) ----
export const ErrorCode = {
  MESSAGE_HEADER: 1,
  OPEN_MESSAGE: 2,
  UPDATE_MESSAGE: 3,
  HOLD_TIMER_EXPIRED: 4,
  FSM: 5,
  CEASE: 6,
  ROUTE_REFRESH: 7,
  /** RFC 9687: the peer stopped reading what we send. */
  SEND_HOLD_TIMER_EXPIRED: 8,
} as const;

export const HeaderSubcode = { CONNECTION_NOT_SYNCHRONIZED: 1, BAD_MESSAGE_LENGTH: 2, BAD_MESSAGE_TYPE: 3 } as const;
export const OpenSubcode = {
  UNSUPPORTED_VERSION: 1,
  BAD_PEER_AS: 2,
  BAD_BGP_IDENTIFIER: 3,
  UNSUPPORTED_OPTIONAL_PARAMETER: 4,
  UNACCEPTABLE_HOLD_TIME: 6,
  UNSUPPORTED_CAPABILITY: 7,
} as const;
export const UpdateSubcode = {
  MALFORMED_ATTRIBUTE_LIST: 1,
  UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: 2,
  MISSING_WELL_KNOWN_ATTRIBUTE: 3,
  ATTRIBUTE_FLAGS_ERROR: 4,
  ATTRIBUTE_LENGTH_ERROR: 5,
  INVALID_ORIGIN_ATTRIBUTE: 6,
  INVALID_NEXT_HOP_ATTRIBUTE: 8,
  OPTIONAL_ATTRIBUTE_ERROR: 9,
  INVALID_NETWORK_FIELD: 10,
  MALFORMED_AS_PATH: 11,
} as const;
export const CeaseSubcode = {
  MAX_PREFIXES: 1,
  ADMIN_SHUTDOWN: 2,
  PEER_DECONFIGURED: 3,
  ADMIN_RESET: 4,
  CONNECTION_REJECTED: 5,
  OTHER_CONFIG_CHANGE: 6,
  CONNECTION_COLLISION: 7,
  OUT_OF_RESOURCES: 8,
  HARD_RESET: 9,
} as const;

/**
 * A wire error that ends the session: carries the NOTIFICATION to send. The codec throws only
 * this (and never anything else) for bad bytes.
 */
export class BgpError extends Error {
  constructor(
    readonly code: number,
    readonly subcode: number,
    message: string,
    readonly data: Uint8Array = new Uint8Array(0),
  ) {
    super(message);
    this.name = 'BgpError';
  }
}

/** What the codec must know about the session to read and write messages (RFC 6793, RFC 8654). */
export interface CodecContext {
  /** Both sides advertised the 4-octet AS capability: AS_PATH carries 4-octet ASNs. */
  fourOctetAs: boolean;
  /** Whether the peer is external: affects which attributes are allowed (LOCAL_PREF ignored from eBGP). */
  ebgp?: boolean;
}

export const BGP_HEADER_LENGTH = 19;
export const BGP_MAX_MESSAGE_LENGTH = 4096;
export const AS_TRANS = 23456;
export const BGP_PORT = 179;
