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
    let head = this.joined(BGP_HEADER_LENGTH);
    // Check marker, type and length bounds now, so a bogus length never makes us wait for bytes.
    checkHeaderFields(head);
    const length = head.readUInt16BE(16);
    if (this.buffered < length) return undefined;
    head = this.joined(length);
    const frame = head.subarray(0, length);
    if (head.length === length) this.chunks.shift();
    else this.chunks[0] = head.subarray(length);
    this.buffered -= length;
    return frame;
  }

  /**
   * The first chunk, made at least `bytes` long by joining only the chunks it needs: a peer that
   * keeps megabytes buffered must not make us copy all of them for every frame taken off the front.
   */
  private joined(bytes: number): Buffer {
    if (this.chunks[0]!.length >= bytes) return this.chunks[0]!;
    let count = 0;
    let total = 0;
    while (total < bytes) total += this.chunks[count++]!.length;
    const merged = Buffer.concat(this.chunks.slice(0, count), total);
    this.chunks.splice(0, count, merged);
    return merged;
  }
}
