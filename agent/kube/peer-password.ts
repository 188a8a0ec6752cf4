// A BGPPeer's TCP MD5 password (RFC 2385) from the Secret it names, pure: the value goes to the
// speaker only; what is reported when it cannot be found names the Secret and key, never a value.
import type { SlimSecret } from './objects.js';

export interface SecretKeyRef {
  name: string;
  key: string;
}

/** The kernel keeps at most 80 bytes of a TCP MD5 key (TCP_MD5SIG_MAXKEYLEN). */
const MAX_KEY_BYTES = 80;

export function peerPassword(ref: SecretKeyRef, secrets: ReadonlyMap<string, SlimSecret>, namespace: string): { password?: string; problem?: string } {
  const secret = secrets.get(ref.name);
  if (!secret) return { problem: `password: no Secret ${ref.name} in namespace ${namespace} (or the agent may not read Secrets there)` };
  const encoded = secret.data[ref.key];
  if (encoded === undefined) return { problem: `password: Secret ${namespace}/${ref.name} has no key ${ref.key}` };
  const bytes = Buffer.from(encoded, 'base64');
  const password = bytes.toString('utf8').replace(/\r?\n$/, ''); // `kubectl create secret --from-file` keeps a file's last newline
  if (!password) return { problem: `password: key ${ref.key} of Secret ${namespace}/${ref.name} is empty` };
  if (Buffer.byteLength(password) > MAX_KEY_BYTES) return { problem: `password: key ${ref.key} of Secret ${namespace}/${ref.name} is longer than ${MAX_KEY_BYTES} bytes (the kernel's TCP MD5 limit)` };
  return { password };
}
