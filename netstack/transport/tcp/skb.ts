/**
 * How the send buffer is cut into Linux's skbs, which decides where PSH goes. Linux's tcp_sendmsg_locked cuts
 * one write() into skbs of `size_goal` bytes (whole MSS up to the GSO limit, at most half the peer's largest
 * window), marks PSH on the skb that ends the call (tcp_push, unless MSG_MORE) and on a full skb once more than
 * half that window was queued since the last mark (forced_push), appends a later write to an unsent tail skb
 * (clearing its PSH) unless MSG_EOR closed it; tcp_write_xmit grows the head skb from its successor
 * (tcp_grow_skb) and splits it where the packet ends (tso_fragment: PSH and EOR stay with the tail piece), and
 * __tcp_transmit_skb forces PSH on every packet of more than one segment. A packet therefore carries PSH when it
 * is a GSO/TSO packet or when it ends an skb that was pushed.
 *
 * Positions are stream offsets (bytes ever queued), so they never wrap: the sender turns them into sequence
 * numbers through the bytes already acknowledged.
 */

/** An skb whose end carries PSH (tcp_mark_push). */
export const SKB_PSH = 1;
/** An skb closed by MSG_EOR: nothing later joins it (tcp_skb_can_collapse_to). */
export const SKB_EOR = 2;
/** An skb of MSG_ZEROCOPY frags: another call's zero-copy bytes never join it (skb_zerocopy_iter_stream's -EEXIST). */
export const SKB_ZEROCOPY = 4;

/** Linux's MAX_SKB_FRAGS (net.core.max_skb_frags): page frags one skb holds. */
export const MAX_SKB_FRAGS = 17;
/** The page size pinned zero-copy frags come in. */
const PAGE = 4096;

/** Linux's sk_gso_max_size for a device with GSO (GSO_LEGACY_MAX_SIZE less MAX_TCP_HEADER + 1). */
export const GSO_MAX_SIZE = 65536 - 321;

/** The send buffer's skbs: the stream offset where each ends and its flags, oldest first. */
export class SkbQueue {
  private ends: number[] = [];
  private flags: number[] = [];
  private head = 0;
  /** Linux's pushed_seq, as a stream offset: where the last PSH mark was made. */
  private pushed = 0;
  /** Stream offset where the first held skb starts. */
  private startOfHead = 0;

  /** Number of skbs held (for tests). */
  get count(): number {
    return this.ends.length - this.head;
  }

  /** The [start, end, flags] of every skb held, for tests and tracing. */
  list(start: number): Array<[number, number, number]> {
    const out: Array<[number, number, number]> = [];
    let s = start;
    for (let i = this.head; i < this.ends.length; i++) {
      out.push([s, this.ends[i]!, this.flags[i]!]);
      s = this.ends[i]!;
    }
    return out;
  }

  /**
   * Queues `n` bytes written by one call at stream offset `at` (tcp_sendmsg_locked): they join the tail skb if it
   * is unsent (starts at or after `sentEnd`, the stream offset of SND.MAX) and not closed by EOR, then fill new
   * skbs of `sizeGoal`; `halfWindow` is half the peer's largest window (forced_push), `more` is MSG_MORE.
   * `continued` when these are not the call's first bytes: a PSH mark on the tail is this call's own and stays
   * (tcp_sendmsg_locked clears it only before its first copy). Returns whether the last skb was marked.
   */
  append(at: number, n: number, sentEnd: number, sizeGoal: number, halfWindow: number, more: boolean, eor: boolean, continued = false): boolean {
    if (n <= 0) return false;
    const end = at + n;
    let w = at;
    const covered = this.ends.length > this.head ? this.ends[this.ends.length - 1]! : this.startOfHead;
    // Bytes queued without a write (a Fast Open SYN's): one pushed skb, as Linux's SYN-data skb.
    if (covered < at) this.add(at, SKB_PSH);
    const t = this.ends.length - 1;
    if (t >= this.head) {
      const tailStart = t > this.head ? this.ends[t - 1]! : this.startOfHead;
      const tailLen = this.ends[t]! - tailStart;
      if (tailStart >= sentEnd && (this.flags[t]! & SKB_EOR) === 0 && tailLen < sizeGoal) {
        const c = Math.min(sizeGoal - tailLen, end - w);
        w += c;
        this.ends[t] = w;
        // The call's first bytes went to an skb that ended an earlier call: that end no longer ends a write.
        if (!continued) this.flags[t] = this.flags[t]! & ~SKB_PSH;
        if (w < end && tailLen + c >= sizeGoal && w > this.pushed + halfWindow) this.mark(t, w);
      }
    }
    while (w < end) {
      const c = Math.min(sizeGoal, end - w);
      w += c;
      this.add(w, 0);
      if (w < end && w > this.pushed + halfWindow) this.mark(this.ends.length - 1, w);
    }
    const tail = this.ends.length - 1;
    if (eor) this.flags[tail] = this.flags[tail]! | SKB_EOR;
    if (!more || w > this.pushed + halfWindow) {
      this.mark(tail, w);
      return true;
    }
    return false;
  }

  /** Stream offset where the last skb starts (Infinity when none is held). */
  tailStart(): number {
    const t = this.ends.length - 1;
    if (t < this.head) return Infinity;
    return t > this.head ? this.ends[t - 1]! : this.startOfHead;
  }

  /**
   * Bytes a write may still add to the tail skb without starting a new one (tcp_sendmsg_locked's `copy` before
   * new_segment): room up to `sizeGoal` in an unsent tail (starting at or after `sentEnd`) not closed by EOR.
   */
  tailRoom(sentEnd: number, sizeGoal: number): number {
    const t = this.ends.length - 1;
    if (t < this.head) return 0;
    const tailStart = t > this.head ? this.ends[t - 1]! : this.startOfHead;
    if (tailStart < sentEnd || (this.flags[t]! & (SKB_EOR | SKB_ZEROCOPY)) !== 0) return 0;
    return Math.max(0, sizeGoal - (this.ends[t]! - tailStart));
  }

  /**
   * Queues a MSG_ZEROCOPY call's bytes, `frags` the lengths of its iovecs, as tcp_sendmsg_locked's zero-copy path
   * does: each iovec's pages are frags of the skb (one per 4 KB page), an skb full of MAX_SKB_FRAGS frags is pushed
   * and the next starts (tcp_mark_push), and the call never joins another call's zero-copy skb (which it pushes).
   * Otherwise as `append`.
   */
  appendZeroCopy(at: number, frags: readonly number[], sentEnd: number, sizeGoal: number, halfWindow: number, more: boolean, eor: boolean): void {
    let w = at;
    const end = at + frags.reduce((a, b) => a + b, 0);
    if (end <= at) return;
    const covered = this.ends.length > this.head ? this.ends[this.ends.length - 1]! : this.startOfHead;
    if (covered < at) this.add(at, SKB_PSH);
    let cur = -1;
    let used = 0;
    const t = this.ends.length - 1;
    if (t >= this.head) {
      const tailStart = t > this.head ? this.ends[t - 1]! : this.startOfHead;
      if (tailStart >= sentEnd && (this.flags[t]! & SKB_EOR) === 0 && this.ends[t]! - tailStart < sizeGoal) {
        if (this.flags[t]! & SKB_ZEROCOPY) this.mark(t, w);
        else {
          // Copied bytes sit in one page frag of their own.
          cur = t;
          used = 1;
          this.flags[t] = this.flags[t]! & ~SKB_PSH;
        }
      }
    }
    const start = (): void => {
      this.add(w, SKB_ZEROCOPY);
      cur = this.ends.length - 1;
      used = 0;
    };
    const lengthOf = (i: number): number => this.ends[i]! - (i > this.head ? this.ends[i - 1]! : this.startOfHead);
    // Each turn takes one frag: the rest of a page of the iovec, or what still fits the skb.
    for (const len of frags) {
      let left = len;
      let inPage = 0;
      while (left > 0) {
        if (cur < 0) start();
        else if (lengthOf(cur) >= sizeGoal) {
          if (w > this.pushed + halfWindow) this.mark(cur, w);
          start();
        } else if (used >= MAX_SKB_FRAGS) {
          this.mark(cur, w);
          start();
        }
        const c = Math.min(left, PAGE - inPage, sizeGoal - lengthOf(cur));
        w += c;
        left -= c;
        this.ends[cur] = w;
        used++;
        inPage = (inPage + c) % PAGE;
      }
    }
    const tail = this.ends.length - 1;
    if (eor) this.flags[tail] = this.flags[tail]! | SKB_EOR;
    if (!more || w > this.pushed + halfWindow) this.mark(tail, w);
  }

  /** Forgets everything: the buffer starts at stream offset `at` (a new connection). */
  reset(at: number): void {
    this.ends = [];
    this.flags = [];
    this.head = 0;
    this.pushed = at;
    this.startOfHead = at;
  }

  /** Drops the skbs wholly below stream offset `acked`; the one it falls into starts there now (tcp_trim_head). */
  release(acked: number): void {
    while (this.head < this.ends.length && this.ends[this.head]! <= acked) this.head++;
    if (acked > this.startOfHead) this.startOfHead = acked;
    if (this.head > 64 && this.head * 2 > this.ends.length) {
      this.ends = this.ends.slice(this.head);
      this.flags = this.flags.slice(this.head);
      this.head = 0;
    }
    if (this.head === this.ends.length) this.startOfHead = acked;
  }

  /** Index of the skb holding stream offset `p`, or -1 past the last one. */
  private find(p: number): number {
    let lo = this.head;
    let hi = this.ends.length - 1;
    if (hi < lo || this.ends[hi]! <= p) return -1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid]! <= p) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Bytes from `p` to the end of the skb holding it (Linux's send head from SND.NXT), after growing that skb
   * toward `want` bytes from its successor as tcp_grow_skb does: one successor per call, only when the skb is not
   * closed by EOR and neither holds zero-copy frags (skb_shift moves none); a successor taken whole gives its flags
   * to the grown skb. `Infinity` past the last skb.
   */
  headLength(p: number, want: number): number {
    const i = this.find(p);
    if (i < 0) return Infinity;
    let len = this.ends[i]! - p;
    const j = i + 1;
    if (len < want && j < this.ends.length && (this.flags[i]! & (SKB_EOR | SKB_ZEROCOPY)) === 0 && (this.flags[j]! & SKB_ZEROCOPY) === 0) {
      const nextLen = this.ends[j]! - this.ends[i]!;
      const take = Math.min(want - len, nextLen);
      if (take === nextLen) {
        this.flags[i] = this.flags[i]! | this.flags[j]!;
        this.ends[i] = this.ends[j]!;
        this.ends.splice(j, 1);
        this.flags.splice(j, 1);
      } else {
        this.ends[i] = this.ends[i]! + take;
      }
      len += take;
    }
    return len;
  }

  /** Whether the skb holding `p` is the last one (Linux's write-queue tail, where Nagle applies). */
  isLast(p: number): boolean {
    const i = this.find(p);
    return i < 0 || i === this.ends.length - 1;
  }

  /**
   * The flags a packet of bytes [p, p + len) carries, splitting the skb it starts in at its end as tso_fragment
   * and tcp_fragment do: the first piece loses PSH and EOR, which stay with the rest. A packet reaching past the
   * skb (bytes not cut into skbs) is pushed.
   */
  take(p: number, len: number): number {
    const i = this.find(p);
    if (i < 0) return SKB_PSH;
    const e = p + len;
    const end = this.ends[i]!;
    if (e === end) return this.flags[i]!;
    if (e > end) return this.flags[i]! | SKB_PSH;
    this.ends.splice(i, 0, e);
    this.flags.splice(i, 0, 0);
    return 0;
  }

  /** Sets PSH on the skb holding stream offset `p` (tcp_write_wakeup's push of the segment it sends). */
  push(p: number): void {
    const i = this.find(p);
    if (i >= 0) this.mark(i, Math.max(this.pushed, this.ends[i]!));
  }

  private add(end: number, flags: number): void {
    this.ends.push(end);
    this.flags.push(flags);
  }

  private mark(i: number, w: number): void {
    this.flags[i] = this.flags[i]! | SKB_PSH;
    this.pushed = w;
  }
}
