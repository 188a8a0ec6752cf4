// The session's send queue against a raw peer that stops reading: bounded, and in order once it drains.
import { type Server, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MessageReader, encodeMessage, endOfRib } from '../codec/index.js';
import { RawPeer } from '../speaker/raw-peer.js';
import { until } from '../../test/support/wait.js';
import { Session } from './session.js';

let server: Server | undefined;
let session: Session | undefined;
let peer: RawPeer | undefined;
afterEach(() => {
  peer?.close();
  session?.stop();
  server?.close();
});

describe('Session send queue (RFC 9687, RFC 4724 §2)', () => {
  it('an End-of-RIB sent while the queue is full goes after the UPDATEs owed on drain, not before them', async () => {
    const s = new Session({
      localAsn: 64512, routerId: '10.0.0.1', peerAddress: '127.0.0.2', peerAsn: 64512, port: 179,
      holdTime: 90, connectRetrySeconds: 5, passive: true, families: [{ afi: 1, safi: 1 }],
    });
    session = s;
    const listener = createServer((socket) => s.acceptIncoming(socket));
    server = listener;
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    s.start();
    peer = await RawPeer.establish({ host: '127.0.0.1', port: (listener.address() as { port: number }).port, localAddress: '127.0.0.2', asn: 64512, routerId: '10.0.0.2' });
    await until('Established', async () => s.state === 'Established', 5000);
    // The peer stops reading; we fill kernel buffers and our queue with 4 KB UPDATEs.
    const p = peer;
    p.socket.removeAllListeners('data');
    p.socket.pause();
    const ctx = { fourOctetAs: true };
    const big = encodeMessage({ type: 2, withdrawn: [], nlri: ['10.1.0.0/24'], attributes: { origin: 0, asPath: [], nextHop: '10.0.0.1', communities: Array.from({ length: 1000 }, (_, i) => i) } }, ctx);
    let sent = 0;
    while (sent < 20_000 && s.sendUpdate(big)) sent++;
    expect(sent).toBeLessThan(20_000); // the queue filled
    const owed = encodeMessage({ type: 2, withdrawn: [], nlri: ['10.99.99.0/24'], attributes: { origin: 0, asPath: [], nextHop: '10.0.0.1' } }, ctx);
    s.once('drain', () => expect(s.sendUpdate(owed)).toBe(true)); // what the speaker sends on drain
    s.sendRaw(endOfRib({ afi: 1, safi: 1 }, ctx));
    // The peer reads again: the small frames, in arrival order.
    const small: Buffer[] = [];
    const reader = new MessageReader();
    p.socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      for (let f = reader.nextFrame(); f; f = reader.nextFrame()) if (f[18] === 2 && f.length < 100) small.push(Buffer.from(f));
    });
    p.socket.resume();
    await until('End-of-RIB', async () => small.some((f) => f.length === 23), 20_000);
    expect(small.map((f) => (f.length === 23 ? 'End-of-RIB' : 'owed UPDATE'))).toEqual(['owed UPDATE', 'End-of-RIB']);
  }, 40_000);
});
