/**
 * The receiver's out-of-order queue: data that arrived beyond RCV.NXT, kept until the hole before it fills.
 * Segments are stored as they came (trimmed to what is not already held), never merged into bigger arrays, so a
 * long run after one loss costs one copy per segment; a separate list of coalesced ranges answers the SACK
 * blocks to report (RFC 2018 §4: the block with the most recently received segment first, then the most
 * recently reported).
 */
import * as seq from '../../seqnum.ts';
import type { SackBlock } from '../../wire/tcp.ts';

interface Chunk {
  start: number;
  data: Uint8Array;
}

interface Range {
  start: number;
  end: number;
}

// What an empty Reassembly holds until its first insert (most connections never get a segment out of order, and
// three empty arrays are 96 B of each idle one). Never written into: insert gives the queue arrays of its own first,
// and the other writers (shift, the first range's start) only touch a non-empty array.
const NO_CHUNKS: Chunk[] = [];
const NO_RANGES: Range[] = [];
const NO_RECENT: number[] = [];

/** Out-of-order data above RCV.NXT, bounded by the receive window that admitted it. */
export class Reassembly {
  // Sorted, non-overlapping stored pieces.
  private chunks: Chunk[] = NO_CHUNKS;
  // Sorted, coalesced coverage of the chunks (numbers only).
  private ranges: Range[] = NO_RANGES;
  private bytes = 0;
  // Right edges of recently reported blocks, most recent first (RFC 2018 §4); replaced, never changed in place.
  private recent: number[] = NO_RECENT;

  /** Bytes held. */
  get length(): number {
    return this.bytes;
  }

  /** Number of disjoint ranges held. */
  get count(): number {
    return this.ranges.length;
  }

  /** Stores a copy of the parts of `data` (starting at sequence `start`) not already held. */
  insert(start: number, data: Uint8Array): void {
    if (data.length === 0) return;
    if (this.chunks === NO_CHUNKS) this.chunks = [];
    if (this.ranges === NO_RANGES) this.ranges = [];
    const end = seq.add(start, data.length);
    // The first chunk that ends after `start`; arrivals are mostly in order, so look from the back first.
    let i = this.chunks.length;
    while (i > 0 && seq.gt(this.chunkEnd(this.chunks[i - 1]!), start)) i--;
    let at = start;
    const pieces: Chunk[] = [];
    let j = i;
    for (; j < this.chunks.length && seq.lt(at, end); j++) {
      const c = this.chunks[j]!;
      if (seq.ge(c.start, end)) break;
      if (seq.lt(at, c.start)) pieces.push(this.piece(data, start, at, c.start));
      const ce = this.chunkEnd(c);
      if (seq.gt(ce, at)) at = ce;
    }
    if (seq.lt(at, end)) pieces.push(this.piece(data, start, at, end));
    if (pieces.length === 0) {
      this.noteRecent(end);
      return;
    }
    // Interleave the new pieces with the chunks they fall between, keeping the order.
    const merged: Chunk[] = [];
    let p = 0;
    for (let k = i; k < j; k++) {
      const c = this.chunks[k]!;
      while (p < pieces.length && seq.lt(pieces[p]!.start, c.start)) merged.push(pieces[p++]!);
      merged.push(c);
    }
    while (p < pieces.length) merged.push(pieces[p++]!);
    this.chunks.splice(i, j - i, ...merged);
    for (const x of pieces) this.bytes += x.data.length;
    this.addRange(start, end);
    this.noteRecent(end);
  }

  /**
   * Removes and returns the bytes that now continue `rcvNxt` (data at or below it is trimmed), one stored
   * piece at a time; empty when the next piece still lies beyond a hole.
   */
  takeFrom(rcvNxt: number): Uint8Array {
    while (this.ranges.length && seq.le(this.ranges[0]!.end, rcvNxt)) this.ranges.shift();
    const r0 = this.ranges[0];
    if (r0 && seq.lt(r0.start, rcvNxt)) r0.start = rcvNxt;
    while (this.chunks.length && seq.le(this.chunkEnd(this.chunks[0]!), rcvNxt)) {
      this.bytes -= this.chunks.shift()!.data.length;
    }
    const c = this.chunks[0];
    if (!c || seq.gt(c.start, rcvNxt)) return new Uint8Array(0);
    this.chunks.shift();
    this.bytes -= c.data.length;
    return c.data.subarray(seq.sub(rcvNxt, c.start));
  }

  /** Up to `max` SACK blocks, the most recently changed first (RFC 2018 §4). */
  sackBlocks(max: number): SackBlock[] {
    const out: SackBlock[] = [];
    const kept: number[] = [];
    for (const right of this.recent) {
      if (out.length >= max) break;
      const r = this.ranges.find((x) => seq.lt(x.start, right) && seq.le(right, x.end));
      if (!r || out.some((o) => o.left === r.start)) continue;
      out.push({ left: r.start, right: r.end });
      kept.push(r.end);
    }
    this.recent = kept;
    return out;
  }

  /** Drops everything. */
  clear(): void {
    this.chunks = NO_CHUNKS;
    this.ranges = NO_RANGES;
    this.bytes = 0;
    this.recent = NO_RECENT;
  }

  private chunkEnd(c: Chunk): number {
    return seq.add(c.start, c.data.length);
  }

  // A copy of data's bytes [from, to) (sequence numbers; data starts at `start`).
  private piece(data: Uint8Array, start: number, from: number, to: number): Chunk {
    return { start: from, data: data.slice(seq.sub(from, start), seq.sub(to, start)) };
  }

  private addRange(start: number, end: number): void {
    const rs = this.ranges;
    let i = rs.length;
    while (i > 0 && seq.ge(rs[i - 1]!.end, start)) i--;
    let j = i;
    let s = start;
    let e = end;
    while (j < rs.length && seq.le(rs[j]!.start, e)) {
      s = seq.min(s, rs[j]!.start);
      e = seq.max(e, rs[j]!.end);
      j++;
    }
    rs.splice(i, j - i, { start: s, end: e });
  }

  private noteRecent(end: number): void {
    this.recent = [end, ...this.recent.filter((x) => x !== end)].slice(0, 8);
  }
}
