/**
 * NewReno's window arithmetic (RFC 5681 §3.1, RFC 6582): slow start by every byte acknowledged (as Linux's
 * tcp_slow_start, which dropped RFC 3465's L = 2·SMSS limit: a delayed or stretched ACK grows cwnd by all it
 * covers), linear growth of one SMSS per window in congestion avoidance, halving on loss.
 */
import { type CcContext, type CongestionControl, initialWindow } from './cc.ts';

/** NewReno congestion control. */
export class Reno implements CongestionControl {
  readonly name: string = 'reno';
  cwnd: number;
  ssthresh = Number.MAX_SAFE_INTEGER;
  // Bytes acknowledged since cwnd last grew in congestion avoidance.
  protected acc = 0;

  constructor(mss: number) {
    this.cwnd = initialWindow(mss);
  }

  onAck(acked: number, _inFlight: number, ctx: CcContext): void {
    if (this.cwnd < this.ssthresh) {
      this.cwnd = Math.min(this.cwnd + acked, Math.max(this.ssthresh, this.cwnd));
      return;
    }
    this.acc += acked;
    if (this.acc >= this.cwnd) {
      this.acc -= this.cwnd;
      this.cwnd += ctx.mss;
    }
  }

  onLoss(inFlight: number, ctx: CcContext): void {
    // RFC 5681 eqn. 4.
    this.ssthresh = Math.max(Math.floor(inFlight / 2), 2 * ctx.mss);
    this.cwnd = this.ssthresh;
    this.acc = 0;
  }

  onRecoveryEnd(_ctx: CcContext): void {
    this.cwnd = this.ssthresh;
  }

  onTimeout(inFlight: number, ctx: CcContext, again = false): void {
    if (!again) this.ssthresh = Math.max(Math.floor(inFlight / 2), 2 * ctx.mss);
    this.cwnd = ctx.mss;
    this.acc = 0;
  }

  onIdleRestart(ctx: CcContext): void {
    this.cwnd = Math.min(this.cwnd, initialWindow(ctx.mss));
  }
}
