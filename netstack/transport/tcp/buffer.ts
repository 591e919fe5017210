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
    let skip = offset + this.head;
    let done = 0;
    for (const c of this.chunks) {
      if (skip >= c.length) {
        skip -= c.length;
        continue;
      }
      const n = Math.min(c.length - skip, len - done);
      dst.set(c.subarray(skip, skip + n), at + done);
      done += n;
      skip = 0;
      if (done === len) break;
    }
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
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** Drops everything. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.size = 0;
  }
}
