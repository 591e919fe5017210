/**
 * The receiving half of a connection (RFC 9293 §3.10.7.4, §3.8.6.2.2): RCV.NXT, the receive buffer and the
 * out-of-order queue, the advertised window with scaling (RFC 7323 §2) that never shrinks and grows only in
 * useful steps (receiver SWS avoidance), and delayed ACKs (RFC 9293 §3.8.6.3, RFC 5681 §4.2: an ACK at least
 * every second full-sized segment, else within the delayed-ACK timeout; at once for out-of-order data).
 */
import * as seq from '../../seqnum.ts';
import type { SackBlock } from '../../wire/tcp.ts';
import { ByteQueue } from './buffer.ts';
import { Reassembly } from './reassembly.ts';
import { LazyTimer } from './timer.ts';
import type { TcpEndpoint } from './endpoint.ts';
import { sendAck } from './output.ts';

/** Linux's TCP_DELACK_MIN: how long an ACK may wait for company (RFC 9293 §3.8.6.3 requires under 500 ms). */
export const DELAYED_ACK_MS = 40;
/** Linux's TCP_MAX_QUICKACKS. */
export const MAX_QUICK_ACKS = 16;

/** The receiver state of one connection. */
export class Receiver {
  /** Initial receive sequence number. */
  irs = 0;
  /** Next sequence number expected (RCV.NXT). */
  nxt = 0;
  /** Our window scale shift (RFC 7323 §2.2); 0 when not negotiated. */
  shift = 0;
  /** In-order bytes waiting for read(). */
  readonly buf = new ByteQueue();
  /** Data above RCV.NXT. */
  readonly ooo = new Reassembly();
  /** SO_RCVBUF: the most bytes the window offers. */
  limit: number;
  /** The peer's FIN was received in order. */
  finReceived = false;
  /** TCP_WINDOW_CLAMP: the most any window of ours offers, in bytes; 0 for no bound but the buffer's. */
  clamp = 0;
  /** The right edge of the window last advertised (RCV.NXT + RCV.WND at that time). */
  advRight = 0;
  /** RFC 7323 §4.3 TS.Recent and the time it was stored (for PAWS's 24-day rule, §5.5). */
  tsRecent = 0;
  tsRecentAt = 0;
  /** RFC 7323 §4.3 Last.ACK.sent. */
  lastAckSent = 0;
  /** Full-sized segments received since the last ACK we sent. */
  unackedSegs = 0;
  /** An ACK is owed at once (out-of-order data, a FIN, a window update). */
  ackNow = false;
  /**
   * The ACK owed is for one small in-order segment (a request, say): it may wait for the end of the event-loop turn
   * (TcpProtocol.deferAckToTurn), by when the application's reply, if it has one at once, carries it.
   */
  replyMayCarry = false;
  /** The largest window (bytes) any segment of ours offered. */
  maxOffered = 0;
  /** A duplicate range to report as a D-SACK block in the next ACK (RFC 2883), or null. */
  dsack: SackBlock | null = null;
  /** Counters for TCP_INFO. */
  segsIn = 0;
  dataSegsIn = 0;
  bytesReceived = 0;
  /** The delayed-ACK timer, built when an ACK is first delayed (delackTimer): an idle connection never has one. */
  delackState: LazyTimer | null = null;
  /** Segments still to be ACKed at once (quick-ACK mode), and whether the connection is interactive. */
  quickAcks = 0;
  pingpong = false;
  /** When data last arrived, or the connection started receiving (Linux's lrcvtime, for tcpi_last_data_recv). */
  lastDataAt = 0;
  private lastRecv = -Infinity;
  /** Receive-buffer auto-tuning is on (cleared when the application sets SO_RCVBUF, as Linux's lock). */
  autoTune = true;
  // Dynamic right-sizing: bytes the application read since `tuneStart`, and the best per-RTT amount so far.
  private tuneStart = 0;
  private tuneCopied = 0;
  private tuneSpace = 0;

  constructor(
    private readonly ep: TcpEndpoint,
    limit: number,
  ) {
    this.limit = limit;
  }

  /** The delayed-ACK timer (built at first use). */
  get delackTimer(): LazyTimer {
    return (this.delackState ??= new LazyTimer(this.ep.clock, () => {
      this.onDelayedAckTimer();
      sendAck(this.ep);
    }));
  }

  /**
   * Receive-buffer auto-tuning (dynamic right-sizing, as Linux's tcp_rcv_space_adjust): once per RTT, when the
   * application read more than ever before in one RTT, grow the buffer to twice that (up to `max`) so the
   * window never limits a sender that the application keeps up with.
   */
  onRead(n: number, now: number, rtt: number, max: number): void {
    if (!this.autoTune || !this.ep.proto.config.moderateRcvbuf) return;
    this.tuneCopied += n;
    if (this.tuneStart === 0) this.tuneStart = now;
    if (now - this.tuneStart < Math.max(rtt, 1)) return;
    if (this.tuneCopied > this.tuneSpace && !this.ep.proto.underPressure()) {
      this.tuneSpace = this.tuneCopied;
      const want = Math.min(max, 2 * this.tuneSpace);
      if (want > this.limit) this.limit = want;
    }
    this.tuneStart = now;
    this.tuneCopied = 0;
  }

  /**
   * The most a read may reopen the window to with an update of its own (endpoint afterRead). A Fast Open child
   * has advertised only its SYN-ACK's window when the application reads the SYN's data, and Linux's window there
   * is bounded by rcv_ssthresh, which only arriving segments grow: no update until data comes (Infinity then).
   */
  updateCap = Infinity;

  /** Starts receive sequence space at the peer's SYN. */
  init(irs: number): void {
    this.irs = irs;
    // Linux starts every connection in quick-ACK mode.
    this.quickAcks = MAX_QUICK_ACKS;
    this.lastDataAt = this.ep.clock.now();
    this.nxt = seq.add(irs, 1);
    this.advRight = this.nxt;
    this.lastAckSent = this.nxt;
  }

  /** Buffer space not taken by in-order or out-of-order data. */
  get free(): number {
    return Math.max(0, this.limit - this.buf.length - this.ooo.length);
  }

  /** RCV.WND as last advertised: bytes the peer may send beyond RCV.NXT. */
  get wnd(): number {
    return Math.max(0, seq.sub(this.advRight, this.nxt));
  }

  /**
   * The window to advertise now, in bytes: the free space rounded down to the scale unit, grown only by at least
   * min(buffer/2, MSS) at a time (RFC 9293 §3.8.6.2.2) and never below what was already offered (§3.8.6.2.2:
   * shrinking the window is strongly discouraged).
   */
  windowToAdvertise(mss: number): number {
    // A shift, not `2 **`: V8 calls the C library's pow for that, on every segment (window scale is at most 14).
    const unit = 1 << this.shift;
    const maxField = 0xffff * unit;
    let w = Math.min(this.free, maxField);
    if (this.clamp > 0 && w > this.clamp) w = this.clamp;
    w -= w % unit;
    const current = this.wnd;
    if (w > current && w - current < Math.min(this.limit / 2, mss) && w < this.limit) w = current;
    return Math.max(w, current);
  }

  /**
   * The window a SYN or SYN-ACK offers, as Linux's tcp_select_initial_window: the receive space (half the default
   * buffer, Linux's initial scaling ratio; all of a buffer SO_RCVBUF set, since Linux doubles that one) rounded down
   * to a whole number of `mss` when larger than one, at most 65535 (a SYN's window is never scaled). With the
   * default 128 KB buffer and MSS 1460 that is 64240, not 65535.
   */
  synWindow(mss: number): number {
    let space = this.autoTune ? Math.floor(this.limit / 2) : this.limit;
    if (this.clamp > 0 && space > this.clamp) space = this.clamp;
    return Math.min(space > mss ? space - (space % mss) : space, 0xffff);
  }

  /** The 16-bit window field for `wnd` bytes (RFC 7323 §2.3: scaled except on SYN segments). */
  windowField(wnd: number, syn: boolean): number {
    return syn ? Math.min(wnd, 0xffff) : Math.min(Math.floor(wnd / (1 << this.shift)), 0xffff);
  }

  /** Records that a segment advertising `wnd` bytes and acknowledging RCV.NXT was sent. */
  onAckSent(wnd: number): void {
    if (wnd > this.maxOffered) this.maxOffered = wnd;
    const right = seq.add(this.nxt, wnd);
    if (seq.gt(right, this.advRight)) this.advRight = right;
    this.lastAckSent = this.nxt;
    this.unackedSegs = 0;
    this.ackNow = false;
    this.replyMayCarry = false;
    this.delackState?.disarm();
  }

  /**
   * Takes the (already trimmed to the window) payload of an acceptable segment: in order it is appended and any
   * queued data that now follows it too; out of order it is queued and an immediate ACK requested.
   */
  onData(start: number, data: Uint8Array, mss: number): void {
    if (data.length === 0) return;
    this.updateCap = Infinity;
    // A GRO'd super-segment from the link counts as the MSS-sized segments it was sent as (Linux gso_segs).
    const segs = data.length > mss ? Math.ceil(data.length / mss) : 1;
    this.dataSegsIn += segs;
    this.segsIn += segs - 1;
    this.quickAckCheck(mss);
    const before = this.buf.length + this.ooo.length;
    const inOrder = start === this.nxt && this.ooo.length === 0;
    this.take(start, data, segs);
    this.replyMayCarry = inOrder && segs === 1 && data.length < mss;
    this.ep.proto.charge(this.buf.length + this.ooo.length - before);
  }

  /**
   * Linux's quick-ACK mode: at the start of a transfer, and after a gap longer than the RTO, ACK every segment
   * at once (up to 16 of them, or half the window in segments) so that the sender's slow start is not held
   * back by delayed ACKs; suspended while the connection is interactive (ping-pong), where ACKs ride on replies.
   */
  private quickAckCheck(mss: number): void {
    const now = this.ep.clock.now();
    if (now - this.lastDataAt > this.ep.snd.rtt.rto) {
      this.quickAcks = Math.min(MAX_QUICK_ACKS, Math.max(2, Math.floor(this.limit / (2 * mss))));
    }
    this.lastDataAt = now;
    this.lastRecv = now;
    if (this.quickAcks > 0 && !this.pingpong) {
      this.quickAcks--;
      this.ackNow = true;
    }
  }

  /**
   * The SYN-ACK arrived while a writer may wait for the connection: Linux then saves the ACK in quick-ACK mode
   * (which sets the ACK timeout its ping-pong test needs), so the writer's data, sent at once, makes the
   * connection interactive as a reply to data would. `writerSent` false undoes it: with no writer Linux sent
   * the ACK, and its ping-pong test cannot pass before data arrives (the ACK timeout is still 0).
   */
  synAckWriter(writerSent?: boolean): void {
    if (writerSent === undefined) this.lastRecv = this.ep.clock.now();
    else if (!writerSent) this.lastRecv = -Infinity;
  }

  /** We sent data: a reply soon after data arrived marks the connection interactive (Linux's pingpong). */
  onDataSent(delayedAckMs: number): void {
    if (this.ep.clock.now() - this.lastRecv < delayedAckMs) this.pingpong = true;
  }

  /** The delayed-ACK timer fired: the ACK could not ride on a reply, so leave ping-pong mode. */
  onDelayedAckTimer(): void {
    this.pingpong = false;
  }

  private take(start: number, data: Uint8Array, segs: number): void {
    if (start === this.nxt) {
      // The frame is only lent for this call (LinkDispatcher), so it is copied, into the queue's own chunks, not
      // shared packet slabs: unread data may wait here indefinitely, and must not pin a slab of other packets. A
      // frame lent until the link's returnLoans (RX_LOAN) is queued as it is, and copied then only if still unread.
      const proto = this.ep.proto;
      if (!proto.rxLoan) this.buf.append(data);
      else if (this.buf.borrow(data)) proto.borrowers.push(this.buf);
      this.nxt = seq.add(this.nxt, data.length);
      this.bytesReceived += data.length;
      if (this.ooo.length > 0) {
        // Filling a hole: RFC 5681 §4.2 asks for an immediate ACK.
        this.ackNow = true;
        for (;;) {
          const more = this.ooo.takeFrom(this.nxt);
          if (more.length === 0) break;
          this.buf.push(more);
          this.nxt = seq.add(this.nxt, more.length);
          this.bytesReceived += more.length;
        }
      }
      // RFC 5681 §4.2: at least every second full-sized segment; Linux counts any two segments.
      this.unackedSegs += segs;
      if (this.unackedSegs >= 2) this.ackNow = true;
    } else {
      this.ackNow = true;
      // Under stack-wide memory pressure, out-of-order data is the first to go (Linux prunes it first too).
      if (this.ep.proto.overMemory(data.length)) {
        this.ep.proto.count('memoryDrops');
        return;
      }
      this.ooo.insert(start, data);
    }
  }
}
