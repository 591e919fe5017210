/**
 * The sending half of a connection (RFC 9293 §3.8–3.9): the send buffer between SND.UNA and what the
 * application queued, the send window, ACK processing with RTT sampling (RFC 6298, Karn's algorithm unless
 * timestamps disambiguate, RFC 7323 §4), loss detection by three duplicate ACKs or SACK (RFC 5681 §3.2,
 * RFC 6675, RACK-TLP per RFC 8985 in rack.ts) with NewReno partial-ACK handling (RFC 6582) when SACK is off,
 * the retransmission, persist and tail-loss-probe timers, and the
 * segmentation rules: MSS, sender SWS avoidance (RFC 9293 §3.8.6.2.1), Nagle (RFC 896) and corking.
 */
import * as seq from '../../seqnum.ts';
import { EventErr } from '../../waiter.ts';
import { ByteQueue } from './buffer.ts';
import type { CcContext, CongestionControl } from './congestion/cc.ts';
import { RttEstimator } from './rtt.ts';
import { Rack } from './rack.ts';
import { Scoreboard } from './sack.ts';
import { LazyTimer } from './timer.ts';
import type { TcpEndpoint } from './endpoint.ts';
import { State } from './state.ts';
import { plainOptions, sendWindowProbe, transmitData } from './output.ts';
import { GSO_MAX_SIZE, SKB_PSH, SkbQueue } from './skb.ts';
import { Chrono, ChronoStats } from './chrono.ts';

/** A CcContext the sender fills in place. */
type WritableCc = { -readonly [K in keyof CcContext]: CcContext[K] };

// onAck's congestion-control contexts (see contextInto), one pair for every sender: the stack runs one onAck at a
// time on its thread, and a nested one (none is known) takes contexts of its own. Two per sender were 144 B of
// objects and their boxed numbers on every idle connection. `acking`: an onAck is under way.
const ACK_CTX: WritableCc = { mss: 0, now: 0, srtt: 0, minRtt: 0, una: 0, nxt: 0 };
const RTT_CTX: WritableCc = { mss: 0, now: 0, srtt: 0, minRtt: 0, una: 0, nxt: 0 };
let acking = false;

/** Linux's tcp_reordering: duplicate ACKs (or SACKed segments) that signal a loss (RFC 5681 §3.2 DupThresh). */
export const DUP_THRESH = 3;
/** RFC 8985 §7.2 WCDelAckT: the worst-case delayed-ACK time added to a lone segment's probe timeout. */
export const TLP_DELAYED_ACK_MS = 200;

/** The first `n` bytes' worth of the iovec lengths `frags`. */
function fragsOf(frags: readonly number[], n: number): number[] {
  const out: number[] = [];
  for (const f of frags) {
    if (n <= 0) break;
    out.push(Math.min(f, n));
    n -= f;
  }
  if (n > 0) out.push(n);
  return out;
}

/** The sender state of one connection. */
export class Sender {
  /** Initial send sequence number. */
  iss = 0;
  /** Oldest unacknowledged sequence number (SND.UNA). */
  una = 0;
  /** Next sequence number to send (SND.NXT); rewinds to SND.UNA after a timeout. */
  nxt = 0;
  /** Highest sequence number sent plus one. */
  max = 0;
  /** Send window in bytes, already scaled (SND.WND). */
  wnd = 0;
  /** Segment sequence and acknowledgment numbers of the last window update (SND.WL1, SND.WL2). */
  wl1 = 0;
  wl2 = 0;
  /** The peer's window scale shift (RFC 7323 §2.3); 0 when not negotiated. */
  shift = 0;
  /**
   * Payload bytes per full segment, after the fixed options (Linux's mss_cache): `fullMss` bounded by half the
   * peer's largest window, derived again whenever either changes (Linux's tcp_sync_mss).
   */
  mss = 536;
  private full = 536;
  private maxOffered = 0;
  /** Bytes from SND.UNA on: unacknowledged, then not yet sent. */
  readonly buf = new ByteQueue();
  /** How Linux would have cut those bytes into skbs, which places PSH (skb.ts). */
  readonly skbs = new SkbQueue();
  /** Busy, window-limited and buffer-limited time, for TCP_INFO (chrono.ts). */
  readonly chrono = new ChronoStats();
  /** SO_SNDBUF: most bytes the buffer holds. */
  limit: number;
  /** Send-buffer auto-tuning is on (cleared when the application sets SO_SNDBUF). */
  autoTune = true;
  /** The application closed its sending side: a FIN follows the data. */
  finQueued = false;
  /** The FIN was acknowledged. */
  finAcked = false;
  readonly rtt: RttEstimator;
  cc: CongestionControl;
  /** Consecutive duplicate ACKs. */
  dupAcks = 0;
  /**
   * Proportional Rate Reduction (RFC 6937, Linux's tcp_cwnd_reduction) during SACK recovery, in segments as Linux
   * counts them: cwnd when recovery began, and segments delivered to the peer and sent by us since.
   */
  private priorCwnd = 0;
  private prrDelivered = 0;
  private prrOut = 0;
  /** Segments PRR lets go before the next ACK (Linux's cwnd is in segments, whatever their size). */
  private prrQuota = Infinity;
  /** In fast recovery (RFC 6675 §5 / RFC 6582 §3.2) until `recoveryPoint` is acknowledged. */
  inRecovery = false;
  recoveryPoint = 0;
  readonly sb = new Scoreboard();
  /** RACK-TLP state (RFC 8985); used when SACK was negotiated. */
  readonly rack = new Rack();
  /** The armed probe stands in for the RTO (pushed back behind it), as Linux's single retransmission timer does. */
  private tlpInsteadOfRto = false;
  /** TLP.end_seq: a probe is outstanding until this is acknowledged; -1 when none. */
  private tlpEnd = -1;
  /** TLP.is_retrans, and the D-SACK count when the probe left (to see whether it was spurious). */
  private tlpRetrans = false;
  private tlpDsacks = 0;
  /**
   * RFC 8985 §6.2 step 4's reordering-window adaptation: RACK.reo_wnd_mult grows by one for each round trip in
   * which D-SACKs show that we retransmitted needlessly, and falls back to 1 after 16 recoveries without one;
   * RACK.dsack_round (-1 for None) limits growth to once per round trip.
   */
  private reoWndMult = 1;
  private reoWndPersist = 0;
  private dsackRound = -1;
  private dsacksSeen = 0;
  /** Karn timing: the sequence number being timed, -1 when none (RFC 6298 §3). */
  private rttSeq = -1;
  private rttStart = 0;
  /**
   * Whether the window is in use (Linux's tcp_cwnd_validate, RFC 7661 §4.2): whether cwnd limited a send in the
   * current measurement window, the largest flight seen in it, and the SND.NXT at which the next window starts.
   */
  private cwndLimited = false;
  private maxFlight = 0;
  private cwndUsageSeq = 0;
  /** Time of the last data transmission, for restart after idle (RFC 5681 §4.1). */
  lastSend = 0;
  /** When an acceptable ACK last arrived (Linux's rcv_tstamp, for tcpi_last_ack_recv); 0 before the first. */
  lastAckAt = 0;
  /** Consecutive retransmission timeouts without progress. */
  timeouts = 0;
  /** Time of the first timeout without progress, for TCP_USER_TIMEOUT. */
  firstTimeoutAt = 0;
  /** Consecutive zero-window probes without the window opening. */
  probes = 0;
  /** Counters for TCP_INFO. */
  totalRetrans = 0;
  retransBytes = 0;
  segsOut = 0;
  bytesSent = 0;
  bytesAcked = 0;
  dataSegsOut = 0;
  /** Segments delivered, the handshake's SYN or SYN-ACK counted as one (Linux's tp->delivered, tcpi_delivered). */
  delivered = 0;
  readonly rtxTimer: LazyTimer;
  /** Built when a zero window first stalls the sender: most connections never see one. */
  persistTimer: LazyTimer | null = null;
  /** The tail-loss probe's timer, built when a probe is first armed (tlpTimer): an idle connection never has one. */
  tlpState: LazyTimer | null = null;
  /** Built when RACK first waits out a reordering window. */
  rackTimer: LazyTimer | null = null;

  /** Largest window the peer ever offered (RFC 9293 §3.8.6.2.1 and RFC 5961 §5.2 MAX.SND.WND). */
  get maxWnd(): number {
    return this.maxOffered;
  }

  set maxWnd(w: number) {
    this.maxOffered = w;
    this.mss = this.boundToHalfWindow(this.full);
  }

  /** What the peer's MSS, the path and TCP_MAXSEG allow, less the fixed options, before the half-window bound. */
  get fullMss(): number {
    return this.full;
  }

  set fullMss(n: number) {
    this.full = n;
    this.mss = this.boundToHalfWindow(n);
  }

  /**
   * Linux's tcp_bound_to_half_wnd: `size` no larger than half the largest window the peer has offered once that is
   * above 536 bytes (and never below 68 bytes of header and payload), so that a small window still takes two
   * segments. It bounds both the MSS and the size goal.
   */
  private boundToHalfWindow(size: number): number {
    const cutoff = this.maxOffered > 536 ? this.maxOffered >>> 1 : this.maxOffered;
    return cutoff > 0 && size > cutoff ? Math.max(cutoff, 68 - (this.ep.tsOk ? 32 : 20)) : size;
  }

  constructor(
    private readonly ep: TcpEndpoint,
    cc: CongestionControl,
    limit: number,
    rtoMin?: number,
  ) {
    this.cc = cc;
    this.limit = limit;
    this.rtt = new RttEstimator(rtoMin);
    this.rtxTimer = new LazyTimer(ep.clock, () => ep.onRetransmitTimeout());
    this.rack.reordering = ep.proto.config.reordering;
    this.rack.maxReordering = ep.proto.config.maxReordering;
  }

  /** The tail-loss probe's timer (built at first use). */
  get tlpTimer(): LazyTimer {
    return (this.tlpState ??= new LazyTimer(this.ep.clock, () => this.onTlp()));
  }

  /**
   * Drops `n` acknowledged bytes from the front of the send buffer, and completes the MSG_ZEROCOPY sends they
   * end (Linux's sk_error_report wakes the socket with EPOLLERR for each).
   */
  release(n: number): void {
    if (n <= 0) return;
    this.buf.consume(n);
    this.ep.proto.charge(-n);
    this.bytesAcked += n;
    this.skbs.release(this.bytesAcked);
    const zc = this.ep.zcState;
    if (zc !== null && zc.acked(this.bytesAcked)) this.ep.waiter.notify(EventErr);
    const ts = this.ep.tsState;
    if (ts !== null && ts.active && ts.acked(this.bytesAcked, this.ep.clock.now())) this.ep.waiter.notify(EventErr);
  }

  /**
   * Records `n` bytes one write call just appended to the buffer (MSG_MORE `more`, MSG_EOR `eor`) as Linux's
   * tcp_sendmsg_locked cuts them into skbs: of size_goal bytes, pushed at the call's end and when forced_push.
   * `continued` when an earlier part of the same call was recorded already. Returns whether the last skb was
   * pushed (marked PSH).
   */
  queued(n: number, more: boolean, eor: boolean, frags?: readonly number[], continued = false): boolean {
    const at = this.bytesAcked + this.buf.length - n;
    // Linux's tcp_add_write_queue_tail: the first unsent skb starts the busy stopwatch.
    if (this.unsent === n) this.chrono.start(Chrono.Busy, this.ep.clock.now());
    const sent = this.bytesAcked + seq.sub(this.max, this.una);
    if (frags) {
      this.skbs.appendZeroCopy(at, fragsOf(frags, n), sent, this.sizeGoal(), this.maxWnd >>> 1, more, eor);
      return false;
    }
    return this.skbs.append(at, n, sent, this.sizeGoal(), this.maxWnd >>> 1, more, eor, continued);
  }

  /** Whether the last skb queued holds the next byte to send (Linux's skb == tcp_send_head: nothing unsent before it). */
  tailIsSendHead(): boolean {
    return this.offsetOf(this.nxt) >= this.skbs.tailStart();
  }

  /** Bytes the next write may add to the unsent tail skb before a new skb (and Linux's memory check) is needed. */
  tailRoom(): number {
    return this.skbs.tailRoom(this.bytesAcked + seq.sub(this.max, this.una), this.sizeGoal());
  }

  /**
   * Linux's size_goal (tcp_xmit_size_goal): whole MSS up to the GSO limit, bounded by half the peer's largest
   * window once that is above the default MSS (tcp_bound_to_half_wnd).
   */
  sizeGoal(): number {
    const goal = this.boundToHalfWindow(this.gsoMaxSize());
    return Math.max(goal - (goal % this.mss), this.mss);
  }

  /** The largest GSO packet in bytes: the route's TSO limit, or Linux's software-GSO limit. */
  private gsoMaxSize(): number {
    const route = this.ep.route;
    const max = route?.sendGso && route.gsoMaxSegment ? route.gsoMaxSegment() : 0;
    return max > 0 ? Math.min(max, GSO_MAX_SIZE) : GSO_MAX_SIZE;
  }

  /**
   * Segments per GSO packet (Linux's tcp_tso_autosize): about 1 ms at the pacing rate (cwnd · ratio / SRTT, the
   * slow-start ratio below half ssthresh), plus a share of the GSO limit that halves with each 512 µs of minimum
   * RTT, at least tcp_min_tso_segs.
   */
  gsoSegs(): number {
    const cfg = this.ep.proto.config;
    const mss = this.mss;
    const max = this.gsoMaxSize();
    let bytes = max;
    const srtt = this.rtt.srtt;
    if (srtt > 0) {
      const cwnd = this.cc.cwnd;
      const ratio = cwnd < this.cc.ssthresh / 2 ? cfg.pacingSsRatio : cfg.pacingCaRatio;
      const segs = Math.max(Math.floor(cwnd / mss), Math.ceil(this.inFlight / mss));
      // Bytes per second, then what goes in one pacing slot (sk_pacing_shift 10: 1/1024 s).
      bytes = (((mss * ratio) / 100) * segs * 1000) / srtt / 1024;
      const r = Math.floor((this.rtt.minRtt * 1000) / 512);
      if (r < 32) bytes += Math.floor(max / 2 ** r);
      bytes = Math.min(bytes, max);
    }
    return Math.max(Math.floor(bytes / mss), cfg.minTsoSegs);
  }

  /** Marks PSH on the skb the next new byte is in, as tcp_write_wakeup pushes the segment it sends. */
  pushHead(): void {
    if (this.unsent > 0) this.skbs.push(this.offsetOf(this.nxt));
  }

  /** Stream offset (bytes ever queued before it) of sequence number `s` in the buffer. */
  private offsetOf(s: number): number {
    return this.bytesAcked + seq.sub(s, this.una);
  }

  /** Starts sequence space at `iss`: the SYN takes iss, data starts at iss + 1. */
  init(iss: number): void {
    this.iss = iss;
    this.una = iss;
    this.nxt = iss;
    this.max = iss;
    this.smlEnd = iss;
    this.cwndUsageSeq = iss;
  }

  /** End of the last sub-MSS segment of new data sent (Linux snd_sml), for Minshall's Nagle. */
  smlEnd = 0;

  /** Whether a sub-MSS segment sent earlier is still unacknowledged (Linux tcp_minshall_check). */
  private smallUnacked(): boolean {
    return seq.gt(this.smlEnd, this.una) && seq.le(this.smlEnd, this.nxt);
  }

  /** Bytes sent and not yet acknowledged (flight size, RFC 5681 §2). */
  get inFlight(): number {
    return seq.sub(this.nxt, this.una);
  }

  /** Bytes queued and never sent. */
  get unsent(): number {
    return Math.max(0, this.buf.length - seq.sub(this.nxt, this.una));
  }

  /** Free space in the send buffer. */
  get space(): number {
    return Math.max(0, this.limit - this.buf.length);
  }

  /** The FIN's sequence number (valid once finQueued). */
  get finSeq(): number {
    return seq.add(this.una, this.buf.length);
  }

  /** The context congestion control sees. */
  ccContext(): CcContext {
    return { mss: this.mss, now: this.ep.clock.now(), srtt: this.rtt.srtt, minRtt: this.rtt.minRtt, una: this.una, nxt: this.nxt };
  }

  /**
   * The context congestion control sees, written into `c`: onAck's two (its snapshot from before the ACK, and
   * the RTT sample's) are the module's ACK_CTX and RTT_CTX rather than made per ACK; congestion control keeps no
   * context.
   */
  private contextInto(c: WritableCc): CcContext {
    c.mss = this.mss;
    c.now = this.ep.clock.now();
    c.srtt = this.rtt.srtt;
    c.minRtt = this.rtt.minRtt;
    c.una = this.una;
    c.nxt = this.nxt;
    return c;
  }

  /**
   * RFC 6675 §4 pipe: bytes believed to be in the network. SACKed bytes and holes not yet retransmitted are
   * out; without SACK each duplicate ACK stands for one segment that left the network (as Linux emulates).
   * Before recovery SACKed bytes are out too, as Linux's tcp_packets_in_flight counts them in every state: the
   * first duplicate ACKs let new data go (RFC 6675 §5's limited transmit, beyond RFC 3042's two segments).
   */
  pipe(): number {
    const out = seq.sub(this.max, this.una);
    if (!this.inRecovery) {
      if (!this.ep.sackOk || this.sb.empty) return this.inFlight;
      return Math.max(0, this.inFlight - this.sb.sackedIn(this.una, this.nxt));
    }
    if (this.ep.sackOk) return Math.max(0, out - this.sb.sacked - this.rack.lostBytes(this.sb));
    return Math.max(0, out - Math.min(this.dupAcks * this.mss, out));
  }

  /**
   * Processes the acknowledgment field of an acceptable segment in a synchronized state (RFC 9293 §3.10.7.4
   * fifth step; SND.UNA < SEG.ACK ≤ SND.MAX already checked by the caller for `acked` > 0). SACK blocks were
   * already merged into the scoreboard.
   */
  onAck(ack: number, tsEcr: number | undefined, dupCandidate: boolean): void {
    this.lastAckAt = this.ep.clock.now();
    const lostBefore = this.rack.marked;
    const deliveredBefore = this.rack.deliveredPackets;
    const acked = seq.sub(ack, this.una);
    // A nested onAck (none is known: replies leave through timers and links) takes a context of its own.
    const nested = acking;
    acking = true;
    const ctx = nested ? this.ccContext() : this.contextInto(ACK_CTX);
    const flightBefore = this.inFlight;
    // Set when this very ACK triggered a window reduction, so it must not also grow the window.
    let reduced = false;
    if (acked > 0) {
      const data = Math.min(acked, this.buf.length);
      this.release(data);
      // Linux's tcp_clean_rtx_queue: everything sent acknowledged stops the busy stopwatch.
      if (this.buf.length === 0 || seq.ge(ack, this.max)) this.chrono.stop(Chrono.Busy, this.ep.clock.now(), this.buf.length === 0);
      // Linux counts delivered skbs by their segments; the bytes in whole MSS are the closest measure kept here.
      this.delivered += data > 0 ? Math.ceil(data / this.mss) : 1;
      if (this.finQueued && acked > data) this.finAcked = true;
      this.una = ack;
      if (seq.lt(this.nxt, this.una)) this.nxt = this.una;
      // New data acknowledged: the next hop is reachable (RFC 4861 §7.3.1, Linux's tcp_ack → dst_confirm).
      this.ep.route?.confirmNeighbor?.(this.lastAckAt);
      const caRtt = this.sampleRtt(ack, tsEcr);
      if (caRtt >= 0 && this.cc.onRttSample) this.cc.onRttSample(caRtt, nested ? this.ccContext() : this.contextInto(RTT_CTX));
      this.sb.advance(ack);
      this.timeouts = 0;
      this.rtt.backoffs = 0;
      if (this.tlpEnd >= 0 && seq.ge(ack, this.tlpEnd)) reduced = this.tlpDone(ctx, flightBefore);
    }
    if (this.ep.sackOk) this.rackUpdate();
    // Segments this ACK newly delivered (acknowledged without having been SACKed, or newly SACKed), and whether
    // RACK marked a new loss: what PRR reckons with (Linux's newly_acked_sacked and newly_lost).
    const delivered = this.rack.deliveredPackets - deliveredBefore;
    const newlyLost = this.rack.marked !== lostBefore;
    if (acked > 0) {
      if (this.inRecovery) {
        if (seq.ge(ack, this.recoveryPoint)) {
          this.inRecovery = false;
          this.reorderRecoveryEnded();
          this.cc.onRecoveryEnd(ctx);
        } else if (this.ep.sackOk) {
          this.prrReduce(delivered, true, newlyLost);
        } else {
          // RFC 6582 §3.2 step 5: a partial ACK means the next segment was lost too.
          this.dupAcks = 0;
          this.retransmitHead();
        }
      } else if (!reduced && this.isCwndLimited()) {
        // Only a window in use grows (RFC 7661 §4.2, Linux's tcp_is_cwnd_limited): a request/response
        // connection's few bytes in flight would otherwise grow cwnd, and the send buffer after it, on every
        // ACK without bound. With SACK it grows by what this ACK delivered (Linux's acked_sacked): bytes an
        // earlier ACK SACKed counted then, or never, not again now.
        const grow = this.ep.sackOk ? Math.max(0, acked - this.rack.sackedBeforeAcked) + this.rack.newlySacked : acked;
        this.cc.onAck(grow, flightBefore, ctx);
        this.tuneBuffer();
      }
      if (!this.inRecovery) this.dupAcks = 0;
      // Everything acknowledged: the timer is only disarmed, its clock timer left to fire as a no-op (Linux's
      // inet_csk_clear_xmit_timer does the same), so that a request/response connection, which empties its
      // flight on every answer, re-arms it for the next one without a clock cancel and schedule per request.
      if (seq.sub(this.max, this.una) > 0) this.rtxTimer.set(this.rtt.rto);
      else this.rtxTimer.disarm();
      this.armTlp();
      this.ep.onSendSpace();
    } else if (dupCandidate && this.max !== this.una) {
      // RFC 5681 §2 duplicate ACK.
      this.dupAcks++;
      // Linux's tcp_may_raise_cwnd: once reordering deeper than tcp_reordering was seen, SACKed data is progress
      // and grows cwnd as acknowledged data would.
      if (!this.inRecovery && this.ep.sackOk && this.rack.newlySacked > 0 && this.rack.reordering > this.ep.proto.config.reordering && this.isCwndLimited()) {
        this.cc.onAck(this.rack.newlySacked, flightBefore, ctx);
      }
      if (!this.inRecovery) {
        const sackLoss = this.ep.sackOk && this.sb.sacked >= DUP_THRESH * this.mss;
        if (this.dupAcks >= DUP_THRESH || sackLoss) this.enterRecovery(delivered, newlyLost);
      } else if (this.ep.sackOk) {
        this.prrReduce(delivered, false, newlyLost);
      }
    } else if (this.inRecovery && this.ep.sackOk) {
      // An ACK that only SACKs (a window update or one below SND.UNA): what it delivered still counts.
      this.prrReduce(delivered, false, newlyLost);
    }
    if (!this.inRecovery && this.ep.sackOk && this.rack.firstLost()) this.enterRecovery(delivered, newlyLost);
    acking = nested;
  }

  /**
   * RFC 8985 §7.4: the probe is acknowledged. If it was a retransmission and no D-SACK showed the original
   * arrived too, the probe repaired a real loss and congestion control must react as for fast recovery.
   */
  private tlpDone(ctx: CcContext, inFlight: number): boolean {
    this.tlpEnd = -1;
    if (!this.tlpRetrans || this.sb.dsacks !== this.tlpDsacks || this.inRecovery) return false;
    this.cc.onLoss(inFlight, ctx);
    this.cc.onRecoveryEnd(ctx);
    this.ep.stats.tailLossRepairs++;
    return true;
  }

  /**
   * Send-buffer auto-tuning (as Linux's tcp_sndbuf_expand): unless SO_SNDBUF was set, keep room for twice the
   * congestion window, so a growing window is never starved by the buffer.
   */
  private tuneBuffer(): void {
    if (!this.autoTune || this.ep.proto.underPressure()) return;
    const want = Math.min(this.ep.proto.config.maxSndBuf, 2 * this.cc.cwnd);
    if (want > this.limit) {
      this.limit = want;
      this.ep.onSendSpace();
    }
  }

  /** RFC 8985 §6.2: update RACK from what this ACK delivered, mark losses, arm the reordering timer. */
  private rackUpdate(): void {
    this.adaptReorderWindow();
    const now = this.ep.clock.now();
    const minRtt = Number.isFinite(this.rtt.minRtt) ? this.rtt.minRtt : 0;
    this.rack.onDelivered(this.una, this.sb, now, minRtt, this.mss);
    this.rackDetect();
  }

  /** RACK.reo_wnd_mult (RFC 8985 §6.2 step 4): how many quarter-min-RTTs the reordering window spans. */
  get reorderMultiplier(): number {
    return this.reoWndMult;
  }

  /** RFC 8985 §6.2 step 4: a D-SACK on this ACK, at most once per round trip, widens the reordering window. */
  private adaptReorderWindow(): void {
    if (this.dsackRound !== -1 && seq.ge(this.una, this.dsackRound)) this.dsackRound = -1;
    if (this.dsackRound === -1 && this.sb.dsacks !== this.dsacksSeen) {
      this.dsackRound = this.max;
      this.reoWndMult++;
      this.reoWndPersist = 16;
    }
    this.dsacksSeen = this.sb.dsacks;
  }

  /** RFC 8985 §6.2 step 4: leaving recovery; after 16 without a D-SACK the window multiplier resets. */
  private reorderRecoveryEnded(): void {
    if (--this.reoWndPersist <= 0) this.reoWndMult = 1;
  }

  private rackDetect(): void {
    const now = this.ep.clock.now();
    const timeout = this.rack.detectLoss(now, this.reorderWindow());
    if (timeout > 0) (this.rackTimer ??= new LazyTimer(this.ep.clock, () => this.onRackTimer())).set(timeout);
    else this.rackTimer?.cancel();
  }

  /**
   * RFC 8985 §6.2 step 4: zero while no reordering was seen and the duplicate-ACK threshold is met (or we are
   * in recovery), else a quarter of the minimum RTT times reo_wnd_mult, at most SRTT.
   */
  private reorderWindow(): number {
    if (!Number.isFinite(this.rtt.minRtt)) return 0;
    const thresholdMet = this.inRecovery || this.dupAcks >= DUP_THRESH || this.sb.sacked >= this.rack.reordering * this.mss;
    if (!this.rack.reorderingSeen && thresholdMet) return 0;
    return Math.min((this.rtt.minRtt / 4) * this.reoWndMult, this.rtt.srtt);
  }

  private onRackTimer(): void {
    if (!this.ep.canTransmitData()) return;
    this.rackDetect();
    if (!this.inRecovery && this.rack.firstLost()) this.enterRecovery();
    else this.output();
  }

  /**
   * An ACK carried ECE (RFC 3168 §6.1.2): cwnd and ssthresh are reduced as for a loss, at most once per window of
   * data (Linux's tcp_enter_cwr, until SND.UNA passes what was sent), and not again inside loss recovery; the next
   * new data segment carries CWR.
   */
  onEcnEcho(): void {
    if (this.inRecovery || (this.cwrEnd !== -1 && seq.lt(this.una, this.cwrEnd))) return;
    this.cc.onLoss(this.inFlight, this.ccContext());
    this.cwrEnd = this.nxt;
    this.ep.ecn.queueCwr = true;
    this.ep.stats.ecnReductions++;
  }

  /** SND.NXT when ECE last reduced cwnd (Linux's high_seq in TCP_CA_CWR); -1 before the first. */
  private cwrEnd = -1;

  /** Whether an ECN echo's window reduction is under way (Linux's TCP_CA_CWR): until SND.UNA passes cwrEnd. */
  get inCwr(): boolean {
    return this.cwrEnd !== -1 && seq.lt(this.una, this.cwrEnd);
  }

  /**
   * Starts fast retransmit / fast recovery (RFC 5681 §3.2 steps 2–4, RFC 6675 §5, RFC 8985 §6); `delivered` and
   * `newlyLost` are what the ACK that started it delivered and marked lost.
   */
  enterRecovery(delivered = 0, newlyLost = false): void {
    const prior = this.cc.cwnd;
    this.cc.onLoss(this.inFlight, this.ccContext());
    this.inRecovery = true;
    this.recoveryPoint = this.max;
    this.tlpState?.cancel();
    this.ep.stats.fastRetransmits++;
    if (this.ep.sackOk) {
      // Linux's tcp_init_cwnd_reduction: ssthresh is set, cwnd is left to PRR, which lets at least the first
      // lost segment go at once (the fast retransmit, RFC 6675 §5 step 4.2).
      this.priorCwnd = Math.max(1, Math.floor(prior / this.mss));
      this.prrDelivered = 0;
      this.prrOut = 0;
      this.cc.cwnd = prior;
      // The duplicate-ACK threshold's verdict is the first segment, unless RACK already deemed the head lost (then
      // it is resent as it was sent).
      const head = this.rack.firstLost();
      if (!head || seq.gt(head.start, this.una)) this.rack.markLost(this.una, this.mss);
      // Entered by the RACK timer, Linux reckons one segment delivered (tcp_rack_reo_timeout).
      this.prrReduce(Math.max(delivered, 1), false, newlyLost);
      this.output();
    } else {
      this.retransmitHead();
    }
  }

  /**
   * RFC 6937 PRR as Linux's tcp_cwnd_reduction, in segments: while the pipe is above ssthresh, sending follows
   * ssthresh/prior_cwnd of what was delivered; below it, as much as was delivered (one segment more when SND.UNA
   * advanced without a new loss), up to ssthresh. cwnd becomes the pipe plus what may be sent now, and that many
   * segments may go (`prrQuota`) whatever their size; the first call lets at least one go.
   */
  private prrReduce(delivered: number, unaAdvanced: boolean, newlyLost: boolean): void {
    if (delivered <= 0 || this.priorCwnd <= 0) return;
    const mss = this.mss;
    this.prrDelivered += delivered;
    const pipe = this.pipe();
    const inFlight = Math.ceil(pipe / mss);
    const ssthresh = Math.floor(this.cc.ssthresh / mss);
    const delta = ssthresh - inFlight;
    let sndcnt: number;
    if (delta < 0) {
      sndcnt = Math.floor((ssthresh * this.prrDelivered + this.priorCwnd - 1) / this.priorCwnd) - this.prrOut;
    } else {
      sndcnt = Math.max(this.prrDelivered - this.prrOut, delivered);
      if (unaAdvanced && !newlyLost) sndcnt++;
      sndcnt = Math.min(delta, sndcnt);
    }
    if (this.prrOut === 0) sndcnt = Math.max(sndcnt, 1);
    this.prrQuota = Math.max(0, sndcnt);
    this.cc.cwnd = Math.max(pipe + sndcnt * mss, mss);
  }

  /** Retransmits the first unacknowledged segment, regardless of the window (RFC 5681 §3.2 step 2). */
  private retransmitHead(): void {
    const len = Math.min(this.mss, this.buf.length);
    const fin = this.finQueued && len === this.buf.length && seq.gt(this.max, this.finSeq);
    if (len === 0 && !fin) return;
    this.send(this.una, len, fin, true, this.pushes(this.una, len));
    this.rtxTimer.set(this.rtt.rto);
  }

  /**
   * Resends up to `max` bytes (one MSS unless given) from the start of the lost range [start, end), as one packet:
   * Linux's tcp_retransmit_skb sends a lost skb whole, up to what cwnd lets go, and one of more than a segment
   * is a GSO packet (with PSH, as every such packet).
   */
  private retransmitEntry(start: number, end: number, max = this.mss): number {
    const dataEnd = this.finQueued ? seq.min(end, this.finSeq) : end;
    const len = Math.max(0, Math.min(max, seq.sub(dataEnd, start)));
    const fin = this.finQueued && len === seq.sub(dataEnd, start) && seq.gt(end, this.finSeq);
    if (len === 0 && !fin) {
      this.rack.record(start, end, this.ep.clock.now(), true);
      return 0;
    }
    this.send(start, len, fin, true, this.pushes(start, len));
    return len + (fin ? 1 : 0);
  }

  /**
   * Whether the packet of bytes [s, s + len) carries PSH, cutting its skb there as Linux does: a packet of more
   * than one segment always (__tcp_transmit_skb forces it for GRO at the receiver), one segment when it ends an
   * skb that was pushed.
   */
  private pushes(s: number, len: number): boolean {
    if (len <= 0) return false;
    const f = this.skbs.take(this.offsetOf(s), len);
    return len > this.mss || (f & SKB_PSH) !== 0;
  }

  /**
   * Transmits the packet [s, s+len) (and the FIN) and logs it for RACK: one TSO super-segment when the route
   * takes one that large, else cut here as Linux's software GSO cuts it, PSH and FIN on the last piece only.
   */
  private send(s: number, len: number, fin: boolean, retransmit: boolean, psh: boolean): void {
    if (retransmit) this.rttSeq = -1;
    if (this.inRecovery) {
      const segs = Math.max(1, Math.ceil(len / this.mss));
      this.prrOut += segs;
      this.prrQuota -= segs;
    }
    const piece = len > this.mss ? Math.max(this.tsoLimit(), this.mss) : len;
    let at = s;
    let left = len;
    do {
      const n = Math.min(left, piece);
      left -= n;
      const last = left === 0;
      transmitData(this.ep, at, n, fin && last, retransmit, psh && last);
      at = seq.add(at, n + (fin && last ? 1 : 0));
    } while (left > 0);
    // RACK logs the packet as one transmission, as Linux's retransmission queue holds the skb it sent (cut later
    // only at SACK edges): a lost one is resent whole.
    if (this.ep.sackOk) this.rack.record(s, at, this.ep.clock.now(), retransmit);
    // SO_TIMESTAMPING: the packet holding a marked byte passed the queueing layer and went to the device.
    const ts = this.ep.tsState;
    if (ts !== null && ts.active && len > 0 && ts.sent(this.offsetOf(s), this.offsetOf(s) + len, this.ep.clock.now())) {
      this.ep.waiter.notify(EventErr);
    }
  }

  /**
   * Sends what the windows, Nagle and corking allow: in recovery first the segments RACK or the duplicate-ACK
   * threshold marked lost (RFC 6675 §5 NextSeg rule 1), then new data, then the FIN. `one`: a single packet of new
   * data at most (tcp_push_one, as a write sends each skb it fills).
   */
  output(one = false): void {
    const ep = this.ep;
    if (!ep.canTransmitData()) return;
    const now = ep.clock.now();
    const idleRestart = ep.proto.config.slowStartAfterIdle;
    if (idleRestart && this.inFlight === 0 && this.lastSend > 0 && now - this.lastSend > this.rtt.rto && this.unsent > 0) {
      this.cc.onIdleRestart(this.ccContext());
    }
    let sentNew = false;
    let cwndBound = false;
    for (;;) {
      if (this.inRecovery && this.prrQuota <= 0 && this.ep.sackOk) {
        cwndBound = true;
        break;
      }
      const cwndLeft = this.cc.cwnd - this.pipe();
      if (this.inRecovery && ep.sackOk && cwndLeft > 0) {
        const lost = this.rack.firstLost();
        if (lost) {
          // As many whole segments of the lost transmission as cwnd and PRR let go now (tcp_xmit_retransmit_queue's
          // segs = cwnd − in flight), at least one.
          const segs = Math.max(1, Math.min(Math.floor(cwndLeft / this.mss), this.prrQuota, this.gsoSegs()));
          this.retransmitEntry(lost.start, lost.end, segs * this.mss);
          continue;
        }
      }
      const off = seq.sub(this.nxt, this.una);
      const unsent = this.buf.length - off;
      const wndLeft = this.wnd - off;
      if (unsent <= 0) {
        if (this.finQueued && this.nxt === this.finSeq && wndLeft > 0) {
          this.send(this.nxt, 0, true, seq.lt(this.nxt, this.max), false);
          this.advance(1);
          sentNew = true;
        }
        break;
      }
      const retx = seq.lt(this.nxt, this.max);
      const p = this.bytesAcked + off;
      // Linux's packet starts from its send head skb, grown toward what cwnd and the GSO autosize allow (never
      // a resent one); it never reaches past that skb.
      const gsoSegs = retx ? 1 : this.gsoSegs();
      // Linux's tcp_cwnd_test: at most half of cwnd per packet, so that at least two GSO packets are in flight.
      const halfCwnd = Math.max(Math.floor(this.cc.cwnd / this.mss) >>> 1, 1);
      const quota = Math.min(Math.floor(Math.max(0, cwndLeft) / this.mss), halfCwnd, gsoSegs) * this.mss;
      // Grown only for a packet cwnd lets go now, as tcp_write_xmit grows after its cwnd test.
      const skbLen = Math.min(unsent, this.skbs.headLength(p, retx ? 0 : quota));
      let len = Math.min(this.mss, skbLen, wndLeft, cwndLeft);
      if (cwndLeft < Math.min(this.mss, skbLen, wndLeft)) cwndBound = true;
      if (len <= 0) break;
      if (len === this.mss && !retx && skbLen > this.mss) {
        // A GSO packet (Linux's tcp_mss_split_point): as many whole MSS as the quota allows; its partial last
        // segment rides along when the skb is not the queue's tail or when Nagle would not hold it.
        const needed = Math.min(skbLen, wndLeft);
        if (quota <= wndLeft && !this.skbs.isLast(p)) len = Math.min(quota, skbLen);
        else if (quota <= needed) len = quota;
        else {
          const partial = needed % this.mss;
          len = partial > 0 && this.nagleHolds() ? needed - partial : needed;
        }
      }
      if (len < this.mss && len === skbLen && skbLen < unsent) {
        // An skb that ends a write (or an EOR record) before the queue's tail: Linux sends it whole whatever
        // Nagle says (tcp_write_xmit's TCP_NAGLE_PUSH for all but the tail).
      } else if (len < this.mss && len < unsent) {
        // A runt limited by the peer's window or by cwnd waits (sender SWS avoidance, RFC 9293 §3.8.6.2.1, as Linux's
        // tcp_snd_wnd_test: the packet's first segment must fit the window whole); with nothing in flight to
        // open the window, the persist timer sends what it takes (onPersist, Linux's tcp_write_wakeup).
        if (!retx) break;
      } else if (len < this.mss && !retx) {
        // The tail of the queue: Nagle (RFC 896) and corking hold it back while data is unacknowledged.
        if (ep.corked && !this.finQueued) {
          ep.onCorkHold();
          break;
        }
        if (this.nagleHolds()) break;
      }
      len = Math.max(0, len);
      const fin = this.finQueued && len === unsent && wndLeft > len;
      if (!retx && this.rttSeq < 0 && !ep.tsOk) {
        this.rttSeq = this.nxt;
        this.rttStart = now;
      }
      this.send(this.nxt, len, fin, retx, this.pushes(this.nxt, len));
      // Linux's tcp_minshall_update: a packet whose last segment is short (len < pcount · MSS) is the small one.
      if (!retx && (len < this.mss || len % this.mss !== 0)) this.smlEnd = seq.add(this.nxt, len + (fin ? 1 : 0));
      this.lastSend = now;
      this.advance(len + (fin ? 1 : 0));
      sentNew = true;
      if (fin || one) break;
    }
    if (sentNew) this.armTlp();
    if (sentNew || cwndBound) this.cwndValidate(cwndBound || this.pipe() >= this.cc.cwnd);
    // Linux's tcp_write_xmit: limited by the peer's window when the next segment does not fit it while cwnd
    // would let it go.
    const unsentNow = this.unsent;
    const wndNow = this.wnd - seq.sub(this.nxt, this.una);
    const rwndLimited = unsentNow > 0 && this.cc.cwnd - this.pipe() > 0 && wndNow < Math.min(this.mss, unsentNow);
    if (rwndLimited) this.chrono.start(Chrono.RwndLimited, now);
    else this.chrono.stop(Chrono.RwndLimited, now, this.buf.length === 0);
    this.armPersist();
  }

  /**
   * Whether Nagle holds a partial segment at the queue's tail (Linux's tcp_nagle_check): corked, or with Minshall's
   * refinement only while an earlier small segment is in flight; never once the FIN is queued.
   */
  private nagleHolds(): boolean {
    if (this.finQueued) return false;
    return this.ep.corked || (!this.ep.nodelay && this.inFlight > 0 && this.smallUnacked());
  }

  /**
   * Linux's tcp_cwnd_validate: remembers, per window of data, whether cwnd limited sending, or else the largest
   * flight, which is what decides whether ACKs may grow cwnd (isCwndLimited).
   */
  private cwndValidate(limited: boolean): void {
    const flight = this.inFlight;
    if (seq.ge(this.una, this.cwndUsageSeq) || limited || (!this.cwndLimited && flight > this.maxFlight)) {
      this.cwndLimited = limited;
      this.maxFlight = flight;
      this.cwndUsageSeq = this.nxt;
    }
  }

  /**
   * Whether ACKs may grow cwnd (Linux's tcp_is_cwnd_limited): cwnd limited a send in this window, or in slow start
   * the flight reached half of cwnd (so slow start still doubles what was actually sent).
   */
  private isCwndLimited(): boolean {
    if (this.cwndLimited) return true;
    return this.cc.cwnd < this.cc.ssthresh && this.cc.cwnd < 2 * this.maxFlight;
  }

  /**
   * The largest payload of one TSO super-segment, a whole number of MSS (0 when the route has no TSO, or when
   * SACK blocks are owed: those ride on segments built one by one). Linux sizes TSO bursts to ~1 ms of pacing;
   * without pacing the route's limit is the only bound besides the windows.
   */
  private tsoLimit(): number {
    const route = this.ep.route;
    if (!route || !route.sendGso || !route.gsoMaxSegment || !plainOptions(this.ep)) return 0;
    const max = route.gsoMaxSegment() - (this.ep.tsOk ? 32 : 20);
    return max >= 2 * this.mss ? max - (max % this.mss) : 0;
  }

  /**
   * RFC 8985 §7.2: after new data, schedule a tail loss probe at 2·SRTT (plus the worst-case delayed ACK when
   * only one segment is out), never later than the RTO.
   */
  private armTlp(): void {
    const flight = seq.sub(this.max, this.una);
    // Linux probes only in TCP_CA_Open: not in recovery, nor after an RTO until new data is acknowledged.
    if (!this.ep.sackOk || this.inRecovery || this.timeouts > 0 || this.tlpEnd >= 0 || flight <= 0) {
      // Disarmed, not cancelled, for the same reason as the retransmission timer in onAck.
      this.tlpState?.disarm();
      return;
    }
    let pto = this.rtt.hasSample ? 2 * this.rtt.srtt : 1000;
    if (flight <= this.mss) pto += TLP_DELAYED_ACK_MS;
    pto = Math.max(pto, 10);
    const rtoLeft = this.rtxTimer.armed ? this.rtxTimer.at - this.ep.clock.now() : this.rtt.rto;
    if (pto >= rtoLeft) {
      // Linux's tcp_schedule_loss_probe: a probe due after the RTO goes when the RTO would have fired, in its place
      // (Linux has one timer for both); the RTO is re-armed after the probe.
      this.tlpInsteadOfRto = true;
      this.rtxTimer.set(rtoLeft + this.rtt.rto);
      this.tlpTimer.set(Math.max(0, rtoLeft));
      return;
    }
    this.tlpInsteadOfRto = false;
    this.tlpTimer.set(pto);
  }

  /** RFC 8985 §7.3: send one new segment if allowed, else retransmit the last one, to elicit an ACK. */
  private onTlp(): void {
    const ep = this.ep;
    const replaced = this.tlpInsteadOfRto;
    this.tlpInsteadOfRto = false;
    // Linux probes no Fast Open child before its handshake completes (tcp_schedule_loss_probe).
    if (!ep.canTransmitData() || ep.state === State.SynReceived || this.inRecovery || seq.sub(this.max, this.una) <= 0) {
      // A probe that took the RTO's place and cannot go leaves the RTO to fire now.
      if (replaced && seq.sub(this.max, this.una) > 0) ep.onRetransmitTimeout();
      return;
    }
    const off = seq.sub(this.nxt, this.una);
    const unsent = this.buf.length - off;
    if (unsent > 0 && this.wnd - off > 0) {
      const len = Math.min(this.mss, unsent, this.wnd - off);
      this.send(this.nxt, len, false, seq.lt(this.nxt, this.max), this.pushes(this.nxt, len));
      this.advance(len);
      this.tlpRetrans = false;
    } else {
      const last = this.rack.last();
      if (!last) return;
      const start = seq.max(last.start, seq.add(last.end, -this.mss));
      this.retransmitEntry(start, last.end);
      this.tlpRetrans = true;
    }
    this.tlpDsacks = this.sb.dsacks;
    this.tlpEnd = this.max;
    ep.stats.tailLossProbes++;
    this.rtxTimer.set(this.rtt.rto);
  }

  /** Moves SND.NXT (and SND.MAX) forward after a send, arming the retransmission timer (RFC 6298 §5.1). */
  private advance(n: number): void {
    this.nxt = seq.add(this.nxt, n);
    if (seq.gt(this.nxt, this.max)) this.max = this.nxt;
    if (!this.rtxTimer.armed) this.rtxTimer.set(this.rtt.rto);
  }

  /** RFC 6298 §5.4–5.6 for data: back off, collapse the window, resend from SND.UNA. */
  onTimeout(): void {
    // Linux's tcp_enter_loss reduces ssthresh once per loss episode (`timeouts` counts this one already): not again
    // on a backed-off timeout, nor when fast recovery already reduced it for this window.
    this.cc.onTimeout(this.inFlight, this.ccContext(), this.timeouts > 1 || this.inRecovery);
    this.rtt.backoff();
    this.inRecovery = false;
    this.dupAcks = 0;
    this.sb.clear();
    this.rack.clear();
    this.tlpEnd = -1;
    this.tlpState?.cancel();
    this.rackTimer?.cancel();
    this.rttSeq = -1;
    this.nxt = this.una;
    this.ep.stats.timeouts++;
    this.output();
    if (seq.sub(this.max, this.una) > 0) this.rtxTimer.set(this.rtt.rto);
  }

  /** Whether the window is closed with data (or a FIN) waiting and nothing in flight to elicit an update. */
  private zeroWindowStall(): boolean {
    const waiting = this.unsent > 0 || (this.finQueued && this.nxt === this.finSeq);
    if (!waiting || this.max !== this.una) return false;
    // Zero, or too small for the next segment's first bytes: nothing in flight will open it.
    const wndLeft = this.wnd - seq.sub(this.nxt, this.una);
    return wndLeft <= 0 || wndLeft < Math.min(this.mss, this.unsent);
  }

  /** Arms the persist timer when the peer's zero window stalls us (RFC 9293 §3.8.6.1). */
  armPersist(): void {
    if (this.zeroWindowStall()) {
      this.persistTimer ??= new LazyTimer(this.ep.clock, () => this.onPersist());
      this.persistTimer.ensure(Math.min(this.rtt.rto * 2 ** this.probes, 120_000));
    } else {
      this.persistTimer?.cancel();
      this.probes = 0;
    }
  }

  private onPersist(): void {
    if (!this.zeroWindowStall()) return;
    const wndLeft = this.wnd - seq.sub(this.nxt, this.una);
    if (wndLeft > 0 && this.unsent > 0) {
      // Linux's tcp_write_wakeup: a window too small for a segment gets as much as it takes, pushed; the
      // retransmission timer then covers it.
      const len = Math.min(wndLeft, this.mss, this.unsent);
      this.skbs.take(this.offsetOf(this.nxt), len);
      this.send(this.nxt, len, false, false, true);
      this.lastSend = this.ep.clock.now();
      this.advance(len);
      this.armPersist();
      return;
    }
    sendWindowProbe(this.ep);
    this.probes++;
    this.armPersist();
  }

  /**
   * Takes this ACK's RTT samples: the estimator's (timestamps when on; else, with SACK, every ACK from the oldest
   * segment it newly acknowledges, as Linux's tcp_clean_rtx_queue; else Karn's one timed segment), and returns
   * congestion control's (Linux's ca_rtt_us, from the newest segment it newly acknowledges), or -1 for none. No
   * sample from an ACK that covers a retransmission (Karn, per segment).
   */
  private sampleRtt(ack: number, tsEcr: number | undefined): number {
    const now = this.ep.clock.now();
    let ca = -1;
    let oldest = -1;
    if (this.ep.sackOk) {
      let newest = -1;
      for (const e of this.rack.entries) {
        if (!seq.lt(e.start, ack)) break;
        if (e.retransmitted) {
          oldest = newest = -1;
          break;
        }
        if (!e.delivered) {
          if (oldest < 0) oldest = e.at;
          newest = e.at;
        }
      }
      if (newest >= 0) ca = now - newest;
    }
    if (this.ep.tsOk && tsEcr !== undefined && tsEcr !== 0) {
      const r = seq.sub(this.ep.tsNow(), tsEcr);
      this.rtt.sample(r);
      return this.ep.sackOk ? ca : r;
    }
    if (this.ep.sackOk) {
      if (oldest >= 0) this.rtt.sample(now - oldest);
      return ca;
    }
    if (this.rttSeq >= 0 && seq.gt(ack, this.rttSeq)) {
      const r = now - this.rttStart;
      this.rtt.sample(r);
      this.rttSeq = -1;
      return r;
    }
    return -1;
  }

  /** Forgets Karn timing (a retransmission makes the timed segment ambiguous). */
  cancelTiming(): void {
    this.rttSeq = -1;
  }
}
