/**
 * The sender's SACK scoreboard (RFC 2018 §5, RFC 6675 §3): which ranges above SND.UNA the peer reported as
 * received, merged and sorted. It answers how many bytes are SACKed, the highest SACKed sequence and where the
 * holes are, and it recognises D-SACK blocks (RFC 2883 §4: a first block below SND.UNA or inside another block).
 */
import * as seq from '../../seqnum.ts';
import type { SackBlock } from '../../wire/tcp.ts';

/** SACKed ranges [left, right) above SND.UNA. */
export class Scoreboard {
  private blocks: { left: number; right: number }[] = [];
  /** Bytes covered by the blocks. */
  sacked = 0;
  /** D-SACK blocks received (RFC 2883), for TCP_INFO and spurious-retransmission accounting. */
  dsacks = 0;

  /** Whether nothing is SACKed. */
  get empty(): boolean {
    return this.blocks.length === 0;
  }

  /** The highest SACKed sequence (right edge of the last block), or `una` when none. */
  highest(una: number): number {
    // Checked first: reading past an array's end takes V8's slow path, and this runs on every ACK.
    const n = this.blocks.length;
    return n > 0 ? this.blocks[n - 1]!.right : una;
  }

  /**
   * The SACKed ranges that start (into `lefts`) or end (into `rights`) strictly inside (from, to): where a
   * transmitted range must split.
   */
  edgesWithin(from: number, to: number, lefts: number[], rights: number[] = lefts): void {
    for (const b of this.blocks) {
      if (seq.lt(from, b.left) && seq.lt(b.left, to)) lefts.push(b.left);
      if (seq.lt(from, b.right) && seq.lt(b.right, to)) rights.push(b.right);
    }
  }

  /**
   * Adds the blocks of one ACK (cumulative acknowledgment `ack`) that lie within (una, sndMax]; returns whether
   * anything new was SACKed. A first block that is a D-SACK is counted and otherwise ignored.
   */
  update(sack: readonly SackBlock[], una: number, sndMax: number, ack = una): boolean {
    let changed = false;
    if (seq.gt(ack, una) && seq.le(ack, sndMax)) una = ack;
    for (let i = 0; i < sack.length; i++) {
      let { left, right } = sack[i]!;
      if (!seq.lt(left, right)) continue;
      if (i === 0 && this.isDsack(sack, una)) {
        this.dsacks++;
        continue;
      }
      if (seq.gt(right, sndMax) || seq.le(right, una)) continue;
      if (seq.lt(left, una)) left = una;
      if (this.add(left, right)) changed = true;
    }
    return changed;
  }

  /** Forgets everything at or below the new SND.UNA. */
  advance(una: number): void {
    while (this.blocks.length) {
      const b = this.blocks[0]!;
      if (seq.le(b.right, una)) {
        this.sacked -= seq.sub(b.right, b.left);
        this.blocks.shift();
      } else {
        if (seq.lt(b.left, una)) {
          this.sacked -= seq.sub(una, b.left);
          b.left = una;
        }
        break;
      }
    }
  }

  /** Forgets everything (RFC 2018 §8: after a timeout the receiver may have reneged). */
  clear(): void {
    this.blocks = [];
    this.sacked = 0;
  }

  /** Whether sequence x lies in a SACKed block. */
  isSacked(x: number): boolean {
    return this.blocks.some((b) => seq.le(b.left, x) && seq.lt(x, b.right));
  }

  /** Whether [start, end) lies wholly within one SACKed block. */
  covers(start: number, end: number): boolean {
    return this.blocks.some((b) => seq.le(b.left, start) && seq.le(end, b.right));
  }

  /** SACKed bytes within [start, end). */
  sackedIn(start: number, end: number): number {
    let n = 0;
    for (const b of this.blocks) {
      const l = seq.max(b.left, start);
      const r = seq.min(b.right, end);
      if (seq.lt(l, r)) n += seq.sub(r, l);
    }
    return n;
  }

  /** The first un-SACKed hole [start, end) at or after `from` and below the highest SACKed sequence, or null. */
  nextHole(from: number, una: number): { start: number; end: number } | null {
    let start = seq.max(from, una);
    for (const b of this.blocks) {
      if (seq.le(b.right, start)) continue;
      if (seq.lt(start, b.left)) return { start, end: b.left };
      start = b.right;
    }
    return null;
  }

  /** Bytes in holes below the highest SACKed sequence, from `from` on. */
  holeBytes(from: number, una: number): number {
    let n = 0;
    let start = seq.max(from, una);
    for (const b of this.blocks) {
      if (seq.le(b.right, start)) continue;
      if (seq.lt(start, b.left)) n += seq.sub(b.left, start);
      start = b.right;
    }
    return n;
  }

  /** The blocks, for tests. */
  list(): { left: number; right: number }[] {
    return this.blocks.map((b) => ({ ...b }));
  }

  private isDsack(sack: readonly SackBlock[], una: number): boolean {
    const first = sack[0]!;
    if (seq.le(first.right, una)) return true;
    const second = sack[1];
    return !!second && seq.le(second.left, first.left) && seq.ge(second.right, first.right);
  }

  private add(left: number, right: number): boolean {
    const before = this.sacked;
    const out: { left: number; right: number }[] = [];
    let placed = false;
    for (const b of this.blocks) {
      if (seq.lt(b.right, left)) out.push(b);
      else if (seq.lt(right, b.left)) {
        if (!placed) {
          out.push({ left, right });
          placed = true;
        }
        out.push(b);
      } else {
        left = seq.min(left, b.left);
        right = seq.max(right, b.right);
      }
    }
    if (!placed) out.push({ left, right });
    this.blocks = out;
    this.sacked = out.reduce((n, b) => n + seq.sub(b.right, b.left), 0);
    return this.sacked !== before;
  }
}
