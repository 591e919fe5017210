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
  /**
   * Deemed lost and not delivered since, kept through its retransmission (Linux's TCPCB_LOST, what lost_out and
   * tcpi_lost count).
   */
  markedLost: boolean;
}

/** Linux's net.ipv4.tcp_reordering and tcp_max_reordering defaults: the reordering degree, in segments, and its cap. */
const INITIAL_REORDERING = 3;
const MAX_REORDERING = 300;
/** At most this many acknowledged entries are kept for reuse (one ACK usually drops one or two). */
const SPARE_ENTRIES = 8;

/** The transmission log and RACK state of one sender. */
export class Rack {
  /** Entries covering [SND.UNA, SND.MAX) without overlap, in sequence order. */
  entries: TxEntry[] = [];
  /** RACK.xmit_ts, its transmission order and RACK.rtt of the most recently sent delivered segment (§6.1). */
  xmitTs = -1;
  xmitOrder = -1;
  /** RACK.end_seq: orders the pieces of one transmission cut apart by SACKs (§6.1's end_seq tie-break). */
  xmitEnd = 0;
  rtt = 0;
  private sends = 0;
  /**
   * Entries cumulatively acknowledged and dropped from the log, for record to fill again: a request/response
   * connection sends one and has it acknowledged per exchange, and would otherwise allocate one per send.
   */
  private spare: TxEntry[] = [];
  /** Losses RACK detected, for counters. */
  marked = 0;
  /** Segments ever delivered (cumulatively ACKed or SACKed), for PRR. */
  deliveredPackets = 0;
  /**
   * Bytes the last onDelivered found newly SACKed, and bytes it found cumulatively acknowledged that an earlier
   * ACK had SACKed: with the bytes the ACK moved SND.UNA by, what it delivered (Linux's acked_sacked).
   */
  newlySacked = 0;
  sackedBeforeAcked = 0;
  /** RACK.fack: the highest end of any delivered segment (§6.2 step 3). */
  fack = -1;
  /** ACKs that showed a segment never resent delivered below RACK.fack (Linux's tp->reord_seen, tcpi_reord_seen). */
  reordSeen = 0;
  /**
   * The reordering degree seen, in segments (Linux's tp->reordering, tcpi_reordering): how far above a segment
   * delivered out of order the highest delivered one was, at least the default 3 (tcp_check_sack_reordering).
   */
  reordering = INITIAL_REORDERING;
  /** The most `reordering` may grow to (tcp_max_reordering). */
  maxReordering = MAX_REORDERING;

  /** Records a transmission of [start, end) at `at`, replacing what the log held for those bytes. */
  record(start: number, end: number, at: number, retransmitted: boolean): void {
    if (!seq.lt(start, end)) return;
    const fresh = this.entry(start, end, at, retransmitted);
    const n = this.entries.length;
    // Not entries[-1] when the log is empty (every send of a request/response connection): a negative index is a
    // named property to V8, looked up in its runtime (~0.1 µs per kept-alive request, issue 15).
    if (n === 0 || seq.ge(start, this.entries[n - 1]!.end)) {
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
      // A retransmission of a lost range stays counted lost until delivered.
      if (retransmitted && (e.lost || e.markedLost) && !e.delivered) fresh.markedLost = true;
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

  /** A new entry for a transmission now, a spare one refilled when there is one. */
  private entry(start: number, end: number, at: number, retransmitted: boolean): TxEntry {
    const e = this.spare.pop();
    if (!e) return { start, end, at, order: ++this.sends, retransmitted, delivered: false, lost: false, markedLost: false };
    e.start = start;
    e.end = end;
    e.at = at;
    e.order = ++this.sends;
    e.retransmitted = retransmitted;
    e.delivered = false;
    e.lost = false;
    e.markedLost = false;
    return e;
  }

  /**
   * Marks entries delivered by the cumulative ACK `una` or wholly SACKed, and advances RACK's most recently
   * sent delivered segment (§6.2 step 2, skipping retransmissions ACKed faster than `minRtt`: ambiguous).
   */
  onDelivered(una: number, sb: Scoreboard, now: number, minRtt: number, mss = 1): void {
    const sacked = !sb.empty;
    // A range SACKed in part (one transmission of many MSS, or a receiver that split it) is cut at the SACK's
    // edges, as Linux fragments a TSO skb, so its delivered part counts and only the rest can be lost.
    if (sacked) this.splitAtSackEdges(sb, mss);
    // Nothing above both SND.UNA and the highest SACKed byte can have been delivered.
    const limit = seq.max(una, sb.highest(una));
    const entries = this.entries;
    // Where the lowest segment delivered out of order (never retransmitted, below what was delivered before it) starts.
    const priorFack = this.fack;
    let reordered = -1;
    this.newlySacked = 0;
    this.sackedBeforeAcked = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (seq.ge(e.start, una)) break;
      if (e.delivered) this.sackedBeforeAcked += seq.sub(seq.min(e.end, una), e.start);
    }
    // As Linux: the SACKed segments first (tcp_sacktag_write_queue), then the cumulatively acknowledged ones in
    // sequence order (tcp_clean_rtx_queue); RACK.rtt is the RTT of the last one taken (tcp_rack_advance sets it
    // for every unambiguous delivery), while RACK.xmit_ts follows the most recently sent.
    // Without SACK blocks the first pass takes nothing: it is skipped.
    for (let pass = sacked ? 0 : 1; pass < 2; pass++) {
      const cumulative = pass === 1;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        if (seq.ge(e.start, limit)) break;
        if (e.delivered) continue;
        const acked = seq.le(e.end, una);
        if (cumulative ? !acked : acked || !(sacked && sb.covers(e.start, e.end))) continue;
        e.delivered = true;
        e.lost = false;
        if (!cumulative) this.newlySacked += seq.sub(e.end, e.start);
        // Linux counts an skb as its segments (tcp_skb_pcount).
        this.deliveredPackets += Math.max(1, Math.ceil(seq.sub(e.end, e.start) / mss));
        // A segment never resent delivered below the highest one delivered was reordered. SACKed segments compare
        // with the highest delivered so far, acknowledged ones with the highest before this ACK (Linux:
        // tcp_sacktag_one, and tcp_clean_rtx_queue's prior_fack: SACKs of this ACK taken first do not count).
        const fack = cumulative ? priorFack : this.fack;
        if (!e.retransmitted && fack !== -1 && seq.lt(e.start, fack) && (reordered === -1 || seq.lt(e.start, reordered))) {
          reordered = e.start;
        }
        if (this.fack === -1 || seq.gt(e.end, this.fack)) this.fack = e.end;
        const rtt = now - e.at;
        if (e.retransmitted && rtt < minRtt) continue;
        this.rtt = rtt;
        if (e.order > this.xmitOrder || (e.order === this.xmitOrder && seq.gt(e.end, this.xmitEnd))) {
          this.xmitTs = e.at;
          this.xmitOrder = e.order;
          this.xmitEnd = e.end;
        }
      }
    }
    if (reordered !== -1) this.noteReordering(reordered, mss);
    while (entries.length > 0 && seq.le(entries[0]!.end, una)) {
      const gone = entries.shift()!;
      if (this.spare.length < SPARE_ENTRIES) this.spare.push(gone);
    }
    if (entries.length > 0 && seq.lt(entries[0]!.start, una)) entries[0]!.start = una;
  }

  /** RACK.reordering_seen (RFC 8985 §6.2 step 3). */
  get reorderingSeen(): boolean {
    return this.reordSeen > 0;
  }

  /**
   * Linux's tcp_check_sack_reordering: a segment starting at `low` was delivered out of order; when the highest
   * delivered byte lies more than the reordering degree above it, the degree becomes that distance in segments.
   */
  private noteReordering(low: number, mss: number): void {
    this.reordSeen++;
    const metric = seq.sub(this.fack, low);
    if (metric > this.reordering * mss) this.reordering = Math.min(Math.ceil(metric / mss), this.maxReordering);
  }

  /**
   * Cuts transmissions where SACK blocks start and end, on whole segments as Linux's tcp_match_skb_to_sack does: a
   * block's left edge inside a segment moves up to that segment's end, its right edge down to its start, so a
   * segment SACKed in part counts as not SACKed at all (and a one-segment transmission is never cut).
   */
  private splitAtSackEdges(sb: Scoreboard, mss: number): void {
    const n = this.entries.length;
    if (n === 0) return;
    const lefts: number[] = [];
    const rights: number[] = [];
    sb.edgesWithin(this.entries[0]!.start, this.entries[n - 1]!.end, lefts, rights);
    for (const x of lefts) this.splitOnSegment(x, mss, true);
    for (const x of rights) this.splitOnSegment(x, mss, false);
  }

  /** Cuts the entry holding x at the segment boundary at or after (`up`) or at or before x, counted from its start. */
  private splitOnSegment(x: number, mss: number, up: boolean): void {
    const e = this.entries.find((y) => seq.lt(y.start, x) && seq.lt(x, y.end));
    if (!e) return;
    const off = seq.sub(x, e.start);
    const cut = (up ? Math.ceil(off / mss) : Math.floor(off / mss)) * mss;
    if (cut > 0 && cut < seq.sub(e.end, e.start)) this.splitAt(seq.add(e.start, cut));
  }

  /** Cuts the entry holding x strictly inside into [start, x) and [x, end), both keeping its send record. */
  private splitAt(x: number): void {
    const es = this.entries;
    let lo = 0;
    let hi = es.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = es[mid]!;
      if (seq.le(e.end, x)) lo = mid + 1;
      else if (seq.gt(e.start, x)) hi = mid - 1;
      else {
        if (e.start !== x) {
          const tail: TxEntry = { ...e, start: x };
          e.end = x;
          es.splice(mid + 1, 0, tail);
        }
        return;
      }
    }
  }

  /**
   * §6.2 step 5: marks as lost every undelivered entry sent before RACK's segment by more than the reordering
   * window (counted in `marked`); returns the delay until the earliest entry that may still become lost (0 when
   * none).
   */
  detectLoss(now: number, reoWnd: number): number {
    let timeout = 0;
    if (this.xmitTs < 0) return timeout;
    for (const e of this.entries) {
      if (this.beyond(e)) break;
      if (e.delivered || e.lost) continue;
      if (this.sentAfter(e)) continue;
      const remaining = e.at + this.rtt + reoWnd - now;
      if (remaining <= 0) {
        e.lost = true;
        e.markedLost = true;
        this.marked++;
      } else {
        timeout = Math.max(timeout, remaining);
      }
    }
    return timeout;
  }

  /**
   * Whether `e` and every entry after it were sent after RACK's segment: an entry never retransmitted was
   * first sent after everything below it, and everything above it was first sent later still, so the scan
   * for losses can stop there (keeps per-ACK work proportional to the losses, not to the flight).
   */
  private beyond(e: TxEntry): boolean {
    return !e.retransmitted && this.sentAfter(e) && !e.lost;
  }

  /** Whether `e` left after RACK's segment: a later send, or a later piece of the same one (RFC 8985 §6.2). */
  private sentAfter(e: TxEntry): boolean {
    return e.order > this.xmitOrder || (e.order === this.xmitOrder && seq.ge(e.start, this.xmitEnd));
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

  /**
   * Marks the entry holding `s` lost (the duplicate-ACK threshold's verdict, RFC 6675 §5), first cutting it
   * after `len` bytes when it is longer, so that one segment of a many-MSS transmission is resent, not all.
   */
  markLost(s: number, len = Infinity): void {
    if (Number.isFinite(len)) this.splitAt(seq.add(s, len));
    const e = this.entries.find((x) => seq.le(x.start, s) && seq.lt(s, x.end));
    if (e && !e.delivered) {
      e.lost = true;
      e.markedLost = true;
    }
  }

  /** Segments deemed lost and not delivered since, retransmitted or not (Linux's lost_out, tcpi_lost). */
  lostOut(mss: number): number {
    let n = 0;
    for (const e of this.entries) if (e.markedLost && !e.delivered) n += Math.max(1, Math.ceil(seq.sub(e.end, e.start) / mss));
    return n;
  }

  /**
   * Segments retransmitted and neither acknowledged nor SACKed since (Linux's retrans_out, TCP_INFO's
   * tcpi_retrans), counting a range as its MSS-sized segments.
   */
  retransOut(mss: number): number {
    let n = 0;
    for (const e of this.entries) if (e.retransmitted && !e.delivered) n += Math.max(1, Math.ceil(seq.sub(e.end, e.start) / mss));
    return n;
  }

  /** The last entry sent, for a tail loss probe. */
  last(): TxEntry | undefined {
    const n = this.entries.length;
    return n > 0 ? this.entries[n - 1] : undefined;
  }

  /** Forgets everything (after a retransmission timeout everything is resent). */
  clear(): void {
    this.entries = [];
  }
}
