/**
 * The receiver's out-of-order queue: segments that arrived beyond RCV.NXT, kept as disjoint, sorted,
 * sequence-numbered ranges until the hole before them fills. It also yields the SACK blocks to report
 * (RFC 2018 §4: the block with the most recently received segment first, then the most recently reported).
 */
import * as seq from '../../seqnum.ts';
import type { SackBlock } from '../../wire/tcp.ts';

interface Range {
  start: number;
  data: Uint8Array;
}

/** Out-of-order data above RCV.NXT, bounded by the receive window that admitted it. */
export class Reassembly {
  private ranges: Range[] = [];
  private bytes = 0;
  // Right edges of recently reported blocks, most recent first (RFC 2018 §4).
  private recent: number[] = [];

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
    let end = seq.add(start, data.length);
    // Merge every range that overlaps or touches [start, end) into one new range.
    let lo = 0;
    while (lo < this.ranges.length && seq.lt(this.rangeEnd(this.ranges[lo]!), start)) lo++;
    let hi = lo;
    while (hi < this.ranges.length && seq.le(this.ranges[hi]!.start, end)) hi++;
    let newStart = start;
    if (hi > lo) {
      const first = this.ranges[lo]!;
      const last = this.ranges[hi - 1]!;
      if (seq.lt(first.start, newStart)) newStart = first.start;
      if (seq.gt(this.rangeEnd(last), end)) end = this.rangeEnd(last);
    }
    const merged = new Uint8Array(seq.sub(end, newStart));
    for (let i = lo; i < hi; i++) {
      const r = this.ranges[i]!;
      merged.set(r.data, seq.sub(r.start, newStart));
      this.bytes -= r.data.length;
    }
    // New bytes win over held ones: they are identical unless the peer misbehaves.
    merged.set(data, seq.sub(start, newStart));
    this.ranges.splice(lo, hi - lo, { start: newStart, data: merged });
    this.bytes += merged.length;
    this.noteRecent(end);
  }

  /**
   * Removes and returns the bytes that now continue `rcvNxt` (data at or below it is trimmed); empty when the
   * first range still lies beyond a hole.
   */
  takeFrom(rcvNxt: number): Uint8Array {
    // Drop ranges wholly below rcvNxt (duplicates of data already delivered).
    while (this.ranges.length && seq.le(this.rangeEnd(this.ranges[0]!), rcvNxt)) {
      this.bytes -= this.ranges.shift()!.data.length;
    }
    const r = this.ranges[0];
    if (!r || seq.gt(r.start, rcvNxt)) return new Uint8Array(0);
    this.ranges.shift();
    this.bytes -= r.data.length;
    return r.data.subarray(seq.sub(rcvNxt, r.start));
  }

  /** Up to `max` SACK blocks, the most recently changed first (RFC 2018 §4). */
  sackBlocks(max: number): SackBlock[] {
    const out: SackBlock[] = [];
    const kept: number[] = [];
    for (const right of this.recent) {
      if (out.length >= max) break;
      const r = this.ranges.find((x) => seq.lt(x.start, right) && seq.le(right, this.rangeEnd(x)));
      if (!r) continue;
      const b = { left: r.start, right: this.rangeEnd(r) };
      if (out.some((o) => o.left === b.left)) continue;
      out.push(b);
      kept.push(b.right);
    }
    this.recent = kept;
    return out;
  }

  /** Drops everything. */
  clear(): void {
    this.ranges = [];
    this.bytes = 0;
    this.recent = [];
  }

  private rangeEnd(r: Range): number {
    return seq.add(r.start, r.data.length);
  }

  private noteRecent(right: number): void {
    this.recent = [right, ...this.recent.filter((x) => x !== right)].slice(0, 8);
  }
}
