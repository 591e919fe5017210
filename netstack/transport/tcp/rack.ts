/**
 * RACK-TLP loss detection (RFC 8985) over a log of transmissions: one entry per byte range, holding the time of
 * its latest (re)transmission. A segment is deemed lost once a segment sent sufficiently later (by the
 * reordering window) has been delivered (§6.2); a timer covers the case where nothing later is delivered
 * (§6.2 step 5), and the tail loss probe (§7) elicits an ACK when the tail of a flight may be lost.
 */
import * as seq from '../../seqnum.ts';
import type { Scoreboard } from './sack.ts';

/** One transmitted range [start, end) and when it was last sent. */
export interface TxEntry {
  start: number;
  end: number;
  /** Time of the latest transmission, ms. */
  at: number;
  /** Transmission counter at that time: orders sends that share a timestamp (RFC 8985 uses end_seq ties). */
  order: number;
  /** Sent more than once. */
  retransmitted: boolean;
  /** Delivered (cumulatively ACKed or wholly SACKed). */
  delivered: boolean;
  /** Deemed lost and not yet retransmitted. */
  lost: boolean;
}

/** The transmission log and RACK state of one sender. */
export class Rack {
  /** Entries covering [SND.UNA, SND.MAX) without overlap, in sequence order. */
  entries: TxEntry[] = [];
  /** RACK.xmit_ts, its transmission order and RACK.rtt of the most recently sent delivered segment (§6.1). */
  xmitTs = -1;
  xmitOrder = -1;
  rtt = 0;
  private sends = 0;
  /** Losses RACK detected, for counters. */
  marked = 0;
  /** RACK.fack: the highest end of any delivered segment (§6.2 step 3). */
  fack = -1;
  /** RACK.reordering_seen: a segment was delivered below RACK.fack without having been retransmitted. */
  reorderingSeen = false;

  /** Records a transmission of [start, end) at `at`, replacing what the log held for those bytes. */
  record(start: number, end: number, at: number, retransmitted: boolean): void {
    if (!seq.lt(start, end)) return;
    const fresh: TxEntry = { start, end, at, order: ++this.sends, retransmitted, delivered: false, lost: false };
    const last = this.entries[this.entries.length - 1];
    if (!last || seq.ge(start, last.end)) {
      // New data: the common case appends.
      this.entries.push(fresh);
      return;
    }
    const out: TxEntry[] = [];
    let inserted = false;
    for (const e of this.entries) {
      if (seq.le(e.end, start) || seq.ge(e.start, end)) {
        if (!inserted && seq.ge(e.start, end)) {
          out.push(fresh);
          inserted = true;
        }
        out.push(e);
        continue;
      }
      // Overlap: keep the parts of the old entry outside [start, end).
      if (seq.lt(e.start, start)) out.push({ ...e, end: start });
      if (!inserted) {
        out.push(fresh);
        inserted = true;
      }
      if (seq.gt(e.end, end)) out.push({ ...e, start: end });
    }
    if (!inserted) out.push(fresh);
    if (retransmitted) fresh.retransmitted = true;
    this.entries = out;
  }

  /**
   * Marks entries delivered by the cumulative ACK `una` or wholly SACKed, and advances RACK's most recently
   * sent delivered segment (§6.2 step 2, skipping retransmissions ACKed faster than `minRtt`: ambiguous).
   */
  onDelivered(una: number, sb: Scoreboard, now: number, minRtt: number): void {
    // Nothing above both SND.UNA and the highest SACKed byte can have been delivered.
    const limit = seq.max(una, sb.highest(una));
    for (const e of this.entries) {
      if (seq.ge(e.start, limit)) break;
      if (e.delivered) continue;
      if (!(seq.le(e.end, una) || sb.covers(e.start, e.end))) continue;
      e.delivered = true;
      e.lost = false;
      if (this.fack === -1 || seq.gt(e.end, this.fack)) this.fack = e.end;
      else if (!e.retransmitted) this.reorderingSeen = true;
      const rtt = now - e.at;
      if (e.retransmitted && rtt < minRtt) continue;
      if (e.order > this.xmitOrder) {
        this.xmitTs = e.at;
        this.xmitOrder = e.order;
        this.rtt = rtt;
      }
    }
    while (this.entries.length && seq.le(this.entries[0]!.end, una)) this.entries.shift();
    const first = this.entries[0];
    if (first && seq.lt(first.start, una)) first.start = una;
  }

  /**
   * §6.2 step 5: marks as lost every undelivered entry sent before RACK's segment by more than the reordering
   * window; returns the delay until the earliest entry that may still become lost (0 when none), and whether
   * anything new was marked.
   */
  detectLoss(now: number, reoWnd: number): { timeout: number; marked: boolean } {
    let timeout = 0;
    let marked = false;
    if (this.xmitTs < 0) return { timeout, marked };
    for (const e of this.entries) {
      if (this.beyond(e)) break;
      if (e.delivered || e.lost) continue;
      if (e.order > this.xmitOrder) continue;
      const remaining = e.at + this.rtt + reoWnd - now;
      if (remaining <= 0) {
        e.lost = true;
        marked = true;
        this.marked++;
      } else {
        timeout = Math.max(timeout, remaining);
      }
    }
    return { timeout, marked };
  }

  /**
   * Whether `e` and every entry after it were sent after RACK's segment: an entry never retransmitted was
   * first sent after everything below it, and everything above it was first sent later still, so the scan
   * for losses can stop there (keeps per-ACK work proportional to the losses, not to the flight).
   */
  private beyond(e: TxEntry): boolean {
    return !e.retransmitted && e.order > this.xmitOrder && !e.lost;
  }

  /** The first lost, undelivered entry, or undefined. */
  firstLost(): TxEntry | undefined {
    for (const e of this.entries) {
      if (this.beyond(e)) return undefined;
      if (e.lost && !e.delivered) return e;
    }
    return undefined;
  }

  /** Bytes in lost entries not yet retransmitted (and not SACKed). */
  lostBytes(sb: Scoreboard): number {
    let n = 0;
    for (const e of this.entries) {
      if (this.beyond(e)) break;
      if (e.lost && !e.delivered) n += seq.sub(e.end, e.start) - sb.sackedIn(e.start, e.end);
    }
    return n;
  }

  /** Marks the entry holding `s` lost (the duplicate-ACK threshold's verdict, RFC 6675 §5). */
  markLost(s: number): void {
    const e = this.entries.find((x) => seq.le(x.start, s) && seq.lt(s, x.end));
    if (e && !e.delivered) e.lost = true;
  }

  /** The last entry sent, for a tail loss probe. */
  last(): TxEntry | undefined {
    return this.entries[this.entries.length - 1];
  }

  /** Forgets everything (after a retransmission timeout everything is resent). */
  clear(): void {
    this.entries = [];
  }
}
