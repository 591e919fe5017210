/**
 * The congestion-control interface the sender drives (RFC 5681 §3): the algorithm owns cwnd and ssthresh and
 * reacts to ACKs, losses, timeouts and idleness; loss detection and recovery (which segments to resend, the
 * pipe estimate of RFC 6675) stay in the sender so that every algorithm shares them.
 */

/** Context an algorithm may consult on each event. */
export interface CcContext {
  /** The sender's maximum segment size (SMSS), bytes. */
  readonly mss: number;
  /** Now, in milliseconds. */
  readonly now: number;
  /** Smoothed RTT in milliseconds (0 before the first sample). */
  readonly srtt: number;
  /** Smallest RTT seen in milliseconds (Infinity before the first sample). */
  readonly minRtt: number;
  /** SND.UNA after this ACK (rounds of HyStart). */
  readonly una: number;
  /** SND.NXT now. */
  readonly nxt: number;
}

/** A congestion-control algorithm; windows are in bytes. */
export interface CongestionControl {
  /** The TCP_CONGESTION name ("reno", "cubic"). */
  readonly name: string;
  /** Congestion window. */
  cwnd: number;
  /** Slow-start threshold. */
  ssthresh: number;
  /** New data was cumulatively acknowledged while not in loss recovery; `inFlight` is the flight before the ACK. */
  onAck(acked: number, inFlight: number, ctx: CcContext): void;
  /**
   * An ACK of new data gave an RTT sample (ms) from the newest segment it acknowledges, before onAck (Linux's
   * pkts_acked with sample->rtt_us): what delay-based slow-start exits watch.
   */
  onRttSample?(rtt: number, ctx: CcContext): void;
  /** Loss was detected by duplicate ACKs or SACK: set ssthresh and the window to recover with (RFC 5681 §3.2). */
  onLoss(inFlight: number, ctx: CcContext): void;
  /** Fast recovery ended (the recovery point was acknowledged). */
  onRecoveryEnd(ctx: CcContext): void;
  /**
   * The retransmission timer expired (RFC 5681 §3.1 eqn. 4, cwnd to the loss window); `again` when it expired
   * within a loss episode already reduced (a backed-off timeout, or one during fast recovery): ssthresh stays, as
   * Linux's tcp_enter_loss keeps it.
   */
  onTimeout(inFlight: number, ctx: CcContext, again?: boolean): void;
  /** Sending restarts after an idle period longer than the RTO (RFC 5681 §4.1). */
  onIdleRestart(ctx: CcContext): void;
}

/** The initial window, IW10 (RFC 6928 §2). */
export function initialWindow(mss: number): number {
  return 10 * mss;
}

/** Names TCP_CONGESTION accepts. */
export const CONGESTION_ALGORITHMS = ['cubic', 'reno'] as const;
