/**
 * Byte queues of a connection: the send buffer (written by the application, read by the sender at any offset
 * from SND.UNA, released as ACKs arrive) and the receive buffer (in-order bytes waiting for read()). Both keep
 * a list of chunks so that appending and consuming never copy the whole buffer.
 */

/** A FIFO of bytes held as chunks, with random-access copy-out from the front. */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  // Bytes of chunks[0] already consumed.
  private head = 0;
  private size = 0;
  // The sender copies out at increasing offsets deep into a long queue: remember where the last copy ended
  // (chunk index and the position of that chunk's first byte, counted from chunks[0]'s first byte) so that
  // each copy does not walk every chunk from the front.
  private cursorIdx = 0;
  private cursorBase = 0;

  /** Bytes queued. */
  get length(): number {
    return this.size;
  }

  /** Appends a chunk; the queue keeps the array, so callers pass one they no longer modify. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** Copies `len` bytes starting `offset` bytes from the front into `dst` at `at`; returns bytes copied. */
  copyOut(offset: number, len: number, dst: Uint8Array, at: number): number {
    len = Math.min(len, this.size - offset);
    if (len <= 0) return 0;
    const chunks = this.chunks;
    const pos = offset + this.head;
    let i = this.cursorIdx;
    let base = this.cursorBase;
    if (pos < base || i >= chunks.length) {
      i = 0;
      base = 0;
    }
    while (pos >= base + chunks[i]!.length) base += chunks[i++]!.length;
    let skip = pos - base;
    let done = 0;
    for (;;) {
      const c = chunks[i]!;
      const n = Math.min(c.length - skip, len - done);
      dst.set(n === c.length ? c : c.subarray(skip, skip + n), at + done);
      done += n;
      if (done === len) break;
      base += c.length;
      i++;
      skip = 0;
    }
    this.cursorIdx = i;
    this.cursorBase = base;
    return done;
  }

  /** The first `len` bytes as one array (a view when they sit in one chunk, else a copy), without consuming. */
  peek(len: number): Uint8Array {
    len = Math.min(len, this.size);
    const first = this.chunks[0];
    if (first && first.length - this.head >= len) return first.subarray(this.head, this.head + len);
    const out = new Uint8Array(len);
    this.copyOut(0, len, out, 0);
    return out;
  }

  /** Drops `n` bytes from the front. */
  consume(n: number): void {
    n = Math.min(n, this.size);
    this.size -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const left = c.length - this.head;
      if (n < left) {
        this.head += n;
        return;
      }
      n -= left;
      const gone = this.chunks.shift()!;
      this.head = 0;
      if (this.cursorIdx > 0) {
        this.cursorIdx--;
        this.cursorBase -= gone.length;
      }
    }
  }

  /** Drops everything. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.size = 0;
    this.cursorIdx = 0;
    this.cursorBase = 0;
  }
}
