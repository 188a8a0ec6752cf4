// The shim ↔ CNI server protocol, pure: framing of requests and replies, no I/O.
//
// Every field carries its length (as BGP's do), so no byte of a value is ever read as structure:
//   request  "LIGHTLY-CNI 2 <token>\n"                               (checked before anything else)
//            "<len|-> ×6 <stdin len>\n"  for CNI_COMMAND … CNI_PATH, "-" when unset
//            the six values' bytes, then stdin's bytes, back to back
//   reply    "LIGHTLY-CNI 2 <server secret> <0|1|F> <len as 7 digits>\n" then len bytes of stdout
//            (F: run the in-process plugin instead). The header has a fixed size (REPLY_HEADER_BYTES)
//            so that bash reads it in one read(2) with `read -N`, not a byte at a time.
// The token proves the client read the root-only address file; the server secret, from the same
// file and rotated on every server start, proves the answer came from the server and not from a
// process that bound the port after the server died. Lengths count bytes; values are UTF-8.

export const PROTOCOL = 'LIGHTLY-CNI 2';
export const FIELDS = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;
/** Longest header line accepted: buffered before the token is checked, so kept tiny. */
export const MAX_LINE_BYTES = 128;
/** Largest request body the server takes; the shim sends bigger ones to the in-process plugin. */
export const MAX_BODY_BYTES = 256 * 1024;

const SECRET = /^[A-Za-z0-9_-]{32}$/;

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** The token of a hello line, or a ProtocolError. */
export function parseHello(line: string): string {
  const token = line.startsWith(`${PROTOCOL} `) ? line.slice(PROTOCOL.length + 1) : '';
  if (!SECRET.test(token)) throw new ProtocolError('not a lightly CNI hello');
  return token;
}

export interface Frame {
  /** Byte length of each of FIELDS, undefined when the variable was unset. */
  fields: (number | undefined)[];
  stdin: number;
  total: number;
}

const LENGTH = /^(?:0|[1-9][0-9]{0,6})$/;

export function parseFrame(line: string): Frame {
  const parts = line.split(' ');
  if (parts.length !== FIELDS.length + 1) throw new ProtocolError('wrong number of lengths');
  const lengths = parts.map((p, i) => {
    if (p === '-' && i < FIELDS.length) return undefined;
    if (!LENGTH.test(p)) throw new ProtocolError(`bad length ${JSON.stringify(p.slice(0, 16))}`);
    return Number(p);
  });
  const total = lengths.reduce<number>((sum, n) => sum + (n ?? 0), 0);
  if (total > MAX_BODY_BYTES) throw new ProtocolError('request too large');
  return { fields: lengths.slice(0, FIELDS.length), stdin: lengths[FIELDS.length]!, total };
}

export interface Request {
  env: Partial<Record<(typeof FIELDS)[number], string>>;
  stdin: string;
}

/** Cuts a complete body (exactly frame.total bytes) into its fields. */
export function splitBody(frame: Frame, body: Buffer): Request {
  if (body.length !== frame.total) throw new ProtocolError('body length does not match its frame');
  const env: Request['env'] = {};
  let at = 0;
  FIELDS.forEach((name, i) => {
    const n = frame.fields[i];
    if (n === undefined) return;
    env[name] = body.subarray(at, at + n).toString('utf8');
    at += n;
  });
  return { env, stdin: body.subarray(at).toString('utf8') };
}

/** The inverse of the three parsers, as the shim writes it; for tests and tools. */
export function encodeRequest(token: string, env: Request['env'], stdin: Buffer | string): Buffer {
  const values = FIELDS.map((name) => (env[name] === undefined ? undefined : Buffer.from(env[name]!, 'utf8')));
  const input = Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin, 'utf8');
  const lengths = [...values.map((v) => (v ? String(v.length) : '-')), String(input.length)].join(' ');
  const present = values.flatMap((v) => (v ? [v] : []));
  return Buffer.concat([Buffer.from(`${PROTOCOL} ${token}\n${lengths}\n`), ...present, input]);
}

export type Outcome = { exitCode: 0 | 1; stdout: string } | 'fallback';

export const REPLY_HEADER_BYTES = PROTOCOL.length + 1 + 32 + 3 + 7 + 1;
const MAX_REPLY_BYTES = 9_999_999;

export function encodeReply(secret: string, outcome: Outcome): Buffer {
  const code = outcome === 'fallback' ? 'F' : String(outcome.exitCode);
  let body = Buffer.from(outcome === 'fallback' ? '' : outcome.stdout, 'utf8');
  if (body.length > MAX_REPLY_BYTES) return encodeReply(secret, 'fallback');
  const header = `${PROTOCOL} ${secret} ${code} ${String(body.length).padStart(7, '0')}\n`;
  return Buffer.concat([Buffer.from(header), body]);
}

export function newSecret(random: (n: number) => Buffer): string {
  return random(24).toString('base64url');
}
