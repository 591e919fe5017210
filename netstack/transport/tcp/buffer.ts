/**
 * Byte queues of a connection: the send buffer (written by the application, read by the sender at any offset
 * from SND.UNA, released as ACKs arrive) and the receive buffer (in-order bytes waiting for read()). Both keep
 * a list of chunks so that appending and consuming never copy the whole buffer.
 */

// Appended bytes are copied into chunks the queue owns, a power of two between these sizes: small while little is
// queued (an idle or interactive connection pins little), large under a bulk stream, which then allocates one
// array per many segments rather than one per segment.
const FILL_MIN = 2048;
const FILL_MAX = 256 * 1024;
// The most a fresh chunk is sized up for the previous burst before the bytes arrive: what a connection's first
// few unread bytes after a drain can pin beyond what the memory account charges (one GRO'd super-frame's worth).
const BURST_PREALLOC_MAX = 64 * 1024;
// Chunks that no view ever left are kept for reuse by any queue: a bulk stream then takes its chunks from here
// instead of allocating (and zeroing, and making the collector account for) a fresh one per burst, and a
// request/response connection, whose send queue drains after every answer, reuses its small chunk instead of
// allocating one per answer (a third of a keep-alive HTTP server's allocation, issue 15). An idle connection
// still holds nothing. At most POOL_BYTES of each size stay kept, and at least 8 chunks of the large ones.
const POOL_BYTES = 512 * 1024;
// One pool per size, indexed by the size's power of two above FILL_MIN's (an array, not a Map: two lookups per
// request/response exchange and queue).
const FILL_MIN_LOG2 = 31 - Math.clz32(FILL_MIN);
const pools: Uint8Array[][] = [];
for (let size = FILL_MIN; size <= FILL_MAX; size *= 2) pools.push([]);
const POOL_LIMIT = (size: number) => Math.max(8, POOL_BYTES / size);

/** The pool of chunks of `size` bytes (a power of two in [FILL_MIN, FILL_MAX]). */
function poolOf(size: number): Uint8Array[] {
  return pools[31 - Math.clz32(size) - FILL_MIN_LOG2]!;
}

/** How many chunks the shared pool keeps now (for tests and diagnostics). */
export function pooledChunks(): number {
  let n = 0;
  for (const p of pools) n += p.length;
  return n;
}

/**
 * A chunk of `size` bytes (a power of two in [FILL_MIN, FILL_MAX]): a kept one when there is one (its old contents
 * are overwritten before use).
 */
function takeChunk(size: number): Uint8Array {
  return poolOf(size).pop() ?? new Uint8Array(size);
}

// Memory of which `peek` handed out a view: a reader may still hold it, so it never goes back to a pool.
const lentBuffers = new WeakSet<ArrayBufferLike>();

/** Keeps a chunk known to be a whole array of a pool's size that was never lent (a queue's fill). */
function keepWhole(chunk: Uint8Array): void {
  const pool = poolOf(chunk.length);
  if (pool.length < POOL_LIMIT(chunk.length)) pool.push(chunk);
}

/** Whether `n` is a chunk size the pools keep (a power of two in [FILL_MIN, FILL_MAX]), without a lookup. */
function poolSize(n: number): boolean {
  return n >= FILL_MIN && n <= FILL_MAX && (n & (n - 1)) === 0;
}

// What `loans` and `parked` are until their first chunk: most queues never get one, and an empty array each is 64 B
// of every idle connection's two queues. Never pushed into (its length stays 0, so `length = 0` leaves it so).
const NO_CHUNKS: Uint8Array[] = [];

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
  // The chunk `append` copies into and its first unwritten byte.
  private fill: Uint8Array | null = null;
  private fillPos = 0;
  // Whether `peek` lent a view of `fill` (known here, so that giving the fill back asks no WeakSet, and reads no
  // `.buffer`, which is a call into V8's runtime, twice per drained queue: one request/response each way).
  private fillLent = false;
  // Whether the last chunk is a view of `fill` from `openStart` that appends widen: lazily, since a new view per
  // segment costs more than the copy. `sealedEnd` is where that view ends now; `seal` catches it up to fillPos.
  private open = false;
  private openStart = 0;
  private sealedEnd = 0;
  // Bytes appended since the queue was last drained, and that count for the burst before: a reader that drains
  // every so often gets its next chunk sized to a whole burst, not regrown from FILL_MIN by doubling (which
  // allocates, and zeroes, about twice the burst in several arrays each time).
  private burst = 0;
  private lastBurst = 0;
  // Chunks that are views of a link's lent memory (borrow), in queue order: never lent on by peek, never pooled,
  // and copied by adopt when the link ends its loans.
  private loans: Uint8Array[] = NO_CHUNKS;
  // Frames a link still points at (gather, see `hold`), and the whole chunks consumed meanwhile: they go to the
  // pool, where another queue would write into them, only once no link points at this queue's bytes.
  private holds = 0;
  private parked: Uint8Array[] = NO_CHUNKS;

  /** Bytes queued. */
  get length(): number {
    return this.size;
  }

  /** Appends a chunk; the queue keeps the array, so callers pass one they no longer modify. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.seal();
    this.open = false;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /**
   * Appends `view` of memory a link lent (RX_LOAN) without copying it; `adopt` copies what is left of it before the
   * loan ends. True when the queue held no loan before, so the caller registers it once for the adopt call.
   */
  borrow(view: Uint8Array): boolean {
    if (view.length === 0) return false;
    this.push(view);
    if (this.loans === NO_CHUNKS) this.loans = [];
    this.loans.push(view);
    return this.loans.length === 1;
  }

  /** Replaces what is still queued of borrowed views by copies of it: the link is about to reuse their memory. */
  adopt(): void {
    const loans = this.loans;
    if (loans.length === 0) return;
    const chunks = this.chunks;
    let k = 0;
    for (let i = 0; i < chunks.length && k < loans.length; i++) {
      if (chunks[i] !== loans[k]) continue;
      k++;
      if (i === 0 && this.head > 0) {
        chunks[0] = chunks[0]!.slice(this.head);
        this.head = 0;
      } else {
        chunks[i] = chunks[i]!.slice();
      }
    }
    loans.length = 0;
    // The copy cursor counts from chunks[0]'s first byte, which may have moved: start it over.
    this.cursorIdx = 0;
    this.cursorBase = 0;
  }

  /**
   * Appends `chunk` itself rather than a copy, for an owner that never changes it again (a sender of one constant
   * block): it is never given to the pool, where another queue would write into it.
   */
  share(chunk: Uint8Array): void {
    // Only a chunk of a pool's size from its array's start can pass for a whole kept array (see consume).
    if (chunk.byteOffset === 0 && poolSize(chunk.byteLength)) lentBuffers.add(chunk.buffer);
    this.push(chunk);
  }

  /**
   * Appends a copy of `data` (the caller may reuse it): bytes go into the queue's own fill chunk, after what it
   * already holds, so consecutive appends grow one view instead of adding an array each. Bytes once appended
   * are never overwritten, so views handed out by `peek` stay valid.
   */
  append(data: Uint8Array): void {
    let from = 0;
    const total = data.length;
    while (from < total) {
      let f = this.fill;
      if (f === null || this.fillPos === f.length) {
        this.seal();
        this.open = false;
        // Sized to what the queue holds with this arrival, so unread bytes never pin more than about twice
        // themselves, while a bulk stream (or a GRO'd 64 KB segment) gets big chunks.
        const want = Math.max(this.size + total - from, Math.min(this.lastBurst, BURST_PREALLOC_MAX));
        let size = FILL_MIN;
        while (size < want && size < FILL_MAX) size *= 2;
        f = this.fill = takeChunk(size);
        this.fillLent = false;
        this.fillPos = 0;
      }
      const pos = this.fillPos;
      const n = Math.min(total - from, f.length - pos);
      f.set(from === 0 && n === total ? data : data.subarray(from, from + n), pos);
      this.fillPos = pos + n;
      from += n;
      this.size += n;
      this.burst += n;
      if (!this.open) {
        this.chunks.push(f.subarray(pos, pos + n));
        this.open = true;
        this.openStart = pos;
        this.sealedEnd = pos + n;
      }
      // Otherwise the open last chunk already starts in `f` and ends at the old fillPos: seal() widens it.
    }
  }

  // Brings the open last chunk's view up to everything appended (indices and the copy cursor stay valid).
  private seal(): void {
    if (this.open && this.sealedEnd !== this.fillPos) {
      this.chunks[this.chunks.length - 1] = this.fill!.subarray(this.openStart, this.fillPos);
      this.sealedEnd = this.fillPos;
    }
  }

  /**
   * Moves the cursor to the chunk holding byte `pos` (counted from the first chunk's start; it must be queued) and
   * returns where in that chunk it lies. The cursor is where the last copyOut or gather ended, so a sender walking
   * forward through the queue finds its next segment's chunk without counting from the front.
   */
  private seek(pos: number): number {
    const chunks = this.chunks;
    let i = this.cursorIdx;
    let base = this.cursorBase;
    if (pos < base || i >= chunks.length) {
      i = 0;
      base = 0;
    }
    while (pos >= base + chunks[i]!.length) base += chunks[i++]!.length;
    this.cursorIdx = i;
    this.cursorBase = base;
    return pos - base;
  }

  /** Copies `len` bytes starting `offset` bytes from the front into `dst` at `at`; returns bytes copied. */
  copyOut(offset: number, len: number, dst: Uint8Array, at: number): number {
    len = Math.min(len, this.size - offset);
    if (len <= 0) return 0;
    this.seal();
    const chunks = this.chunks;
    let skip = this.seek(offset + this.head);
    let i = this.cursorIdx;
    let base = this.cursorBase;
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

  /**
   * Views of the `len` bytes starting `offset` bytes from the front, in order, into `out` (from index 0); returns
   * how many, or 0 when they would take more than `max` views or lie in borrowed memory, which the link takes back
   * (the caller then copies). The views stay valid while the bytes are queued, and after they are consumed for as
   * long as a `hold` lasts.
   */
  gather(offset: number, len: number, out: Uint8Array[], max: number): number {
    if (len <= 0 || offset + len > this.size || this.loans.length > 0) return 0;
    this.seal();
    const chunks = this.chunks;
    let skip = this.seek(offset + this.head);
    let i = this.cursorIdx;
    let base = this.cursorBase;
    let done = 0;
    let n = 0;
    for (;;) {
      if (n === max) return 0;
      const c = chunks[i]!;
      const take = Math.min(c.length - skip, len - done);
      out[n++] = take === c.length ? c : c.subarray(skip, skip + take);
      done += take;
      if (done === len) break;
      base += c.length;
      i++;
      skip = 0;
    }
    this.cursorIdx = i;
    this.cursorBase = base;
    return n;
  }

  /** A link points at views `gather` gave: consumed chunks wait, unpooled, until as many `release` calls. */
  hold(): void {
    this.holds++;
  }

  /** A link no longer points at the views of one `hold`; the chunks parked meanwhile go to the pool after the last. */
  release(): void {
    if (--this.holds > 0) return;
    const parked = this.parked;
    for (let k = 0; k < parked.length; k++) keepWhole(parked[k]!);
    parked.length = 0;
  }

  /** Keeps a whole chunk for the pool, or parks it while a link points at this queue's bytes. */
  private keep(chunk: Uint8Array): void {
    if (this.holds > 0) (this.parked === NO_CHUNKS ? (this.parked = []) : this.parked).push(chunk);
    else keepWhole(chunk);
  }

  /** The first `len` bytes as one array (a view when they sit in one chunk, else a copy), without consuming. */
  peek(len: number): Uint8Array {
    len = Math.min(len, this.size);
    this.seal();
    const first = this.chunks[0];
    // A borrowed view is not lent on: its memory goes back to the link.
    if (first && first.length - this.head >= len && (this.loans.length === 0 || first !== this.loans[0])) {
      lentBuffers.add(first.buffer);
      if (this.fill !== null && first.buffer === this.fill.buffer) this.fillLent = true;
      return first.subarray(this.head, this.head + len);
    }
    const out = new Uint8Array(len);
    this.copyOut(0, len, out, 0);
    return out;
  }

  /** Drops `n` bytes from the front. */
  consume(n: number): void {
    n = Math.min(n, this.size);
    this.seal();
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
      if (this.loans.length > 0 && gone === this.loans[0]) {
        this.loans.shift();
        if (this.cursorIdx > 0) {
          this.cursorIdx--;
          this.cursorBase -= gone.length;
        }
        continue;
      }
      // A whole chunk all consumed, of which no view was handed out, goes back to the pool. Only a chunk of a
      // pool's size can be a whole kept array (views of a fill are smaller): most consumed chunks need no look at
      // their buffer (`.buffer` is a call into V8's runtime), and it is read once.
      if (poolSize(gone.byteLength) && gone.byteOffset === 0) {
        const buf = gone.buffer;
        if (gone.byteLength === buf.byteLength && buf !== this.fill?.buffer && !lentBuffers.has(buf)) this.keep(gone);
      }
      if (this.cursorIdx > 0) {
        this.cursorIdx--;
        this.cursorBase -= gone.length;
      }
    }
    if (this.size === 0) {
      this.lastBurst = this.burst;
      this.burst = 0;
      this.releaseFill();
    }
  }

  // Drained: an idle connection keeps no chunk (those nobody holds a view of go to the shared pool).
  private releaseFill(): void {
    this.open = false;
    // A fill is always a whole array of a pool's size (takeChunk's).
    if (this.fill !== null && !this.fillLent) this.keep(this.fill);
    this.fill = null;
    this.fillPos = 0;
    this.fillLent = false;
  }

  /** Drops everything. */
  clear(): void {
    this.chunks = [];
    this.loans.length = 0;
    this.head = 0;
    this.size = 0;
    this.cursorIdx = 0;
    this.cursorBase = 0;
    this.burst = 0;
    this.lastBurst = 0;
    this.releaseFill();
  }
}
