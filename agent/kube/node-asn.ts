// Per-node AS numbers (RFC 7938: one AS per rack, or per node) from the Node's lightly.dev/asn label or annotation, pure.
import { asn as asnSchema } from '../config.js';
import { ASN_LABEL } from './objects.js';

/** A node's AS: its label's (or annotation's) when valid, else the cluster's; a bad value is a problem, not a guess. */
export function nodeAsn(node: { asnLabel?: string } | undefined, clusterAsn: number): { asn: number; problem?: string } {
  const value = node?.asnLabel;
  if (value === undefined) return { asn: clusterAsn };
  const parsed = asnSchema.safeParse(/^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN);
  if (parsed.success) return { asn: parsed.data };
  return { asn: clusterAsn, problem: `${ASN_LABEL}=${JSON.stringify(value)} is not an AS number (1 to 4294967295): the cluster's AS ${clusterAsn} is used` };
}
