// The CNI server's protocol under attack, with the plugin replaced by a recorder: random bytes,
// random field values and random disconnects, as an unauthenticated and as an authenticated client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CniServer, MAX_CONNECTIONS, startCniServer } from './server.js';
import { FIELDS, MAX_BODY_BYTES, MAX_LINE_BYTES, PROTOCOL, type Request, encodeRequest } from './wire.js';

let dir = '';
let server: CniServer;
let token = '';
let secret = '';
const seen: Request[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lt-cni-server-'));
  const addrFile = join(dir, 'cni.addr');
  server = await startCniServer(addrFile, async (request) => {
    seen.push(request);
    return { exitCode: 0, stdout: `handled ${request.env.CNI_CONTAINERID ?? ''}` };
  });
  expect(statSync(addrFile).mode & 0o777).toBe(0o600);
  [, token, secret] = readFileSync(addrFile, 'utf8').trim().split(' ') as [string, string, string];
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Writes the chunks one event-loop turn apart; hangs up after `cutAfter` of them, or `lingerMs`
 * after the last. Resolves with all it got.
 */
function exchange(chunks: Buffer[], cutAfter?: number, lingerMs?: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const socket = connect(server.port, '127.0.0.1');
    const done = (): void => resolve(Buffer.concat(got));
    socket.on('data', (d: Buffer) => got.push(d));
    socket.on('close', done);
    socket.on('error', () => undefined);
    socket.setTimeout(8_000, () => socket.destroy());
    let i = 0;
    const next = (): void => {
      if (socket.destroyed) return;
      if (cutAfter !== undefined && i >= cutAfter) return void socket.destroy();
      if (i >= chunks.length) {
        if (lingerMs !== undefined) setTimeout(() => socket.destroy(), lingerMs);
        return;
      }
      socket.write(chunks[i++]!, () => setImmediate(next));
    };
    socket.on('connect', next);
  });
}

/** Splits a buffer at the given fractions, so requests arrive in arbitrary pieces. */
function pieces(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => Math.floor(c * buf.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const to of [...at, buf.length]) {
    if (to > from) out.push(buf.subarray(from, to));
    from = Math.max(from, to);
  }
  return out;
}

const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 });
const value = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('\n', '\r', '\0', '=', ' ', ';', '-', 'é', '中', '\u0085', 'a'), maxLength: 40 }),
);
const env = fc.record(Object.fromEntries(FIELDS.map((f) => [f, value])) as Record<(typeof FIELDS)[number], fc.Arbitrary<string>>, { requiredKeys: [] });
const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');

async function stillServes(): Promise<void> {
  const before = seen.length;
  const reply = await exchange([encodeRequest(token, { CNI_COMMAND: 'VERSION', CNI_CONTAINERID: 'probe' }, '{}')]);
  expect(reply.toString()).toBe(`${PROTOCOL} ${secret} 0 0000013\nhandled probe`);
  expect(seen.length).toBe(before + 1);
}

describe('CNI server protocol (property)', () => {
  it('never acts on an unauthenticated request, whatever bytes arrive, and buffers at most a header line for it', async () => {
    const hello = (t: string): Buffer => Buffer.from(`${PROTOCOL} ${t}\n`);
    const attempt = fc.oneof(
      fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b)),
      // Well-formed requests with a wrong or truncated token, or none.
      fc.tuple(env, fc.string({ maxLength: 64 })).map(([e, t]) => encodeRequest(t === token ? `${t}x` : t, e, '{}')),
      fc.string({ unit: 'binary-ascii', minLength: 32, maxLength: 32 }).map((t) => Buffer.concat([hello(t === token ? 'A'.repeat(32) : t), encodeRequest(token, { CNI_COMMAND: 'DEL' }, '{}')])),
      fc.nat({ max: 2 * 1024 * 1024 }).map((n) => Buffer.alloc(n, 0x41)),
    );
    await fc.assert(
      fc.asyncProperty(attempt, cuts, fc.option(fc.nat({ max: 6 })), async (bytes, at, cut) => {
        const before = seen.length;
        const reply = await exchange(pieces(bytes, at), cut ?? undefined, 20);
        expect(reply.length).toBe(0);
        expect(seen.length).toBe(before);
        const { connections, bufferedBytes } = server.load();
        expect(bufferedBytes).toBeLessThanOrEqual(connections * MAX_LINE_BYTES);
      }),
      { numRuns: Number(process.env.CNI_SERVER_FUZZ_RUNS ?? 150) },
    );
    await stillServes();
  }, 120_000);

  it('acts on exactly the request sent (byte for byte, UTF-8), once, and answers with its secret; a cut request is never acted on', async () => {
    const stdin = fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.nat({ max: MAX_BODY_BYTES - 2048 }).map((n) => 'x'.repeat(n)));
    await fc.assert(
      fc.asyncProperty(env, stdin, cuts, fc.boolean(), async (e, input, at, hangUp) => {
        const before = seen.length;
        const request = encodeRequest(token, e, input);
        const parts = pieces(request, at);
        const reply = await exchange(parts, hangUp && parts.length > 1 ? parts.length - 1 : undefined);
        if (hangUp && parts.length > 1) {
          expect(seen.length).toBe(before);
          return;
        }
        expect(seen.length).toBe(before + 1);
        const got = seen[seen.length - 1]!;
        expect(got.env).toEqual(Object.fromEntries(Object.entries(e).map(([k, v]) => [k, utf8(v)])));
        expect(got.stdin).toBe(utf8(input));
        const body = `handled ${utf8(e.CNI_CONTAINERID ?? '')}`;
        expect(reply.toString()).toBe(`${PROTOCOL} ${secret} 0 ${String(Buffer.byteLength(body)).padStart(7, '0')}\n${body}`);
      }),
      { numRuns: Number(process.env.CNI_SERVER_FUZZ_RUNS ?? 150) },
    );
    await stillServes();
  }, 120_000);

  it('refuses requests over its bound, and bytes beyond the frame, without acting', async () => {
    const before = seen.length;
    const big = encodeRequest(token, { CNI_COMMAND: 'ADD' }, 'y'.repeat(MAX_BODY_BYTES + 1));
    expect((await exchange([big])).length).toBe(0);
    const extra = Buffer.concat([encodeRequest(token, { CNI_COMMAND: 'ADD' }, '{}'), Buffer.from('CNI_COMMAND=DEL')]);
    expect((await exchange([extra])).length).toBe(0);
    expect(seen.length).toBe(before);
    await stillServes();
  });

  it('drops a connection that has not sent its whole request within the deadline', async () => {
    const t = performance.now();
    expect((await exchange([Buffer.from('LIGHTLY-CNI 2 ')])).length).toBe(0);
    expect(performance.now() - t).toBeLessThan(7_000);
  });

  it(`holds at most ${MAX_CONNECTIONS} connections; idle unauthenticated ones make room for the client that has the token`, async () => {
    const idle = Array.from({ length: MAX_CONNECTIONS + 40 }, () => {
      const s = connect(server.port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write('LIGHTLY-CNI 2 ');
      return s;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(server.load().connections).toBeLessThanOrEqual(MAX_CONNECTIONS);
    await stillServes();
    for (const s of idle) s.destroy();
  });
});
