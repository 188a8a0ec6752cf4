// Splits a TCP byte stream into BGP frames, checking each header before its body arrives.
import { checkHeaderFields } from './messages.js';
import { BGP_HEADER_LENGTH } from './types.js';

export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Bytes pushed and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): void {
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.buffered += chunk.byteLength;
  }

  /** The next whole frame, or undefined while it is incomplete; throws BgpError(1, …) on a bad header. */
  nextFrame(): Buffer | undefined {
    if (this.buffered < BGP_HEADER_LENGTH) return undefined;
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    const buf = this.chunks[0]!;
    const length = buf.readUInt16BE(16);
    // Check marker, type and length bounds now, so a bogus length never makes us wait for bytes.
    checkHeaderFields(buf);
    if (buf.length < length) return undefined;
    const frame = buf.subarray(0, length);
    const rest = buf.subarray(length);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return frame;
  }
}
