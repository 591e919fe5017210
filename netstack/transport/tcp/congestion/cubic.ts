/**
 * CUBIC (RFC 9438): the window grows along W_cubic(t) = C·(t − K)³ + W_max from the last reduction (§4.2),
 * never slower than the Reno-friendly estimate W_est (§4.3), reduces by β = 0.7 on loss (§4.6) with fast
 * convergence (§4.7). Slow start grows by every byte acknowledged, as Linux's tcp_slow_start (no RFC 3465
 * per-ACK limit), and ends early by HyStart as Linux's tcp_cubic (hystart_detect 3: an ACK train spanning half
 * the minimum delay, or a round whose least RTT of 8 samples is an eighth (4–16 ms) above it). Windows are kept in
 * segments internally.
 */
import * as seq from '../../../seqnum.ts';
import { type CcContext, type CongestionControl, initialWindow } from './cc.ts';

const C = 0.4;
const BETA = 0.7;
// Linux tcp_cubic's HyStart constants: hystart_low_window (segments), hystart_ack_delta_us, HYSTART_MIN_SAMPLES,
// HYSTART_DELAY_MIN / _MAX (the clamp of the delay threshold), all in ms here.
const HYSTART_LOW_WINDOW = 16;
const HYSTART_ACK_DELTA = 2;
const HYSTART_MIN_SAMPLES = 8;
const HYSTART_DELAY_MIN = 4;
const HYSTART_DELAY_MAX = 16;
// RFC 9438 §4.3: α_cubic = 3·(1 − β)/(1 + β).
const ALPHA = (3 * (1 - BETA)) / (1 + BETA);

/** CUBIC congestion control (the default, as on Linux). */
export class Cubic implements CongestionControl {
  readonly name = 'cubic';
  cwnd: number;
  ssthresh = Number.MAX_SAFE_INTEGER;
  private wMax = 0;
  private wLastMax = 0;
  private k = 0;
  // Start of the current congestion-avoidance epoch, ms; -1 when none is running.
  private epochStart = -1;
  private wEst = 0;
  // HyStart: the least delay seen (0 for none), and the current round: where it ends (SND.NXT when it began;
  // undefined before the first), when it began, the last ACK of a train, its least RTT and how many samples it had.
  private delayMin = 0;
  private roundEnd: number | undefined;
  private roundStart = 0;
  private lastAck = 0;
  private currRtt = Infinity;
  private samples = 0;

  constructor(mss: number) {
    this.cwnd = initialWindow(mss);
  }

  onRttSample(rtt: number, ctx: CcContext): void {
    // Linux's bictcp_acked: samples within a second of a reduction are discarded.
    if (this.epochStart >= 0 && ctx.now - this.epochStart < 1000) return;
    const delay = Math.max(rtt, 0.001);
    if (this.delayMin === 0 || delay < this.delayMin) this.delayMin = delay;
    if (this.cwnd < this.ssthresh && this.cwnd >= HYSTART_LOW_WINDOW * ctx.mss) this.hystartUpdate(delay, ctx);
  }

  /** Linux's hystart_update: a new round once SND.UNA passes its end; either detector ends slow start at cwnd. */
  private hystartUpdate(delay: number, ctx: CcContext): void {
    if (this.roundEnd === undefined || seq.gt(ctx.una, this.roundEnd)) {
      this.roundEnd = ctx.nxt;
      this.roundStart = ctx.now;
      this.lastAck = ctx.now;
      this.currRtt = Infinity;
      this.samples = 0;
    }
    let found = false;
    if (ctx.now - this.lastAck <= HYSTART_ACK_DELTA) {
      this.lastAck = ctx.now;
      // hystart_ack_delay is 1 ms once there is a pacing rate; halved without a pacing qdisc, as Linux does.
      const threshold = (this.delayMin + (ctx.srtt > 0 ? 1 : 0)) / 2;
      if (ctx.now - this.roundStart > threshold) found = true;
    }
    if (this.currRtt > delay) this.currRtt = delay;
    if (this.samples < HYSTART_MIN_SAMPLES) this.samples++;
    else if (this.currRtt > this.delayMin + Math.min(Math.max(this.delayMin / 8, HYSTART_DELAY_MIN), HYSTART_DELAY_MAX)) found = true;
    if (found) this.ssthresh = this.cwnd;
  }

  onAck(acked: number, _inFlight: number, ctx: CcContext): void {
    const mss = ctx.mss;
    if (this.cwnd < this.ssthresh) {
      this.cwnd = Math.min(this.cwnd + acked, Math.max(this.ssthresh, this.cwnd));
      return;
    }
    const segs = this.cwnd / mss;
    if (this.epochStart < 0) {
      this.epochStart = ctx.now;
      this.wEst = segs;
      if (this.wMax <= segs) {
        this.k = 0;
        this.wMax = segs;
      } else {
        this.k = Math.cbrt((this.wMax - segs) / C);
      }
    }
    const rtt = ctx.srtt > 0 ? ctx.srtt / 1000 : 0.1;
    const t = (ctx.now - this.epochStart) / 1000;
    // §4.2: the target one RTT ahead, clamped to [cwnd, 1.5·cwnd].
    const wCubic = C * (t + rtt - this.k) ** 3 + this.wMax;
    const target = Math.min(Math.max(wCubic, segs), 1.5 * segs);
    // §4.3: Reno-friendly region, growing by α per window of ACKed segments.
    this.wEst += (ALPHA * (acked / mss)) / segs;
    // §4.3: below the Reno-friendly estimate, follow it; else grow toward the cubic target.
    const next = wCubic < this.wEst ? this.wEst : segs + ((target - segs) / segs) * (acked / mss);
    this.cwnd = Math.max(this.cwnd, Math.floor(next * mss));
  }

  onLoss(_inFlight: number, ctx: CcContext): void {
    this.reduce(ctx);
    this.cwnd = this.ssthresh;
  }

  onRecoveryEnd(_ctx: CcContext): void {
    this.cwnd = this.ssthresh;
  }

  onTimeout(_inFlight: number, ctx: CcContext, again = false): void {
    if (!again) this.reduce(ctx);
    this.cwnd = ctx.mss;
    // Linux's bictcp_state on TCP_CA_Loss: HyStart starts over (bictcp_reset, bictcp_hystart_reset).
    this.delayMin = 0;
    this.roundEnd = undefined;
  }

  onIdleRestart(ctx: CcContext): void {
    this.cwnd = Math.min(this.cwnd, initialWindow(ctx.mss));
    this.epochStart = -1;
  }

  private reduce(ctx: CcContext): void {
    const segs = this.cwnd / ctx.mss;
    // §4.7 fast convergence: release bandwidth to newer flows when the window stopped short of the last maximum.
    this.wMax = segs < this.wLastMax ? (segs * (1 + BETA)) / 2 : segs;
    this.wLastMax = segs;
    // §4.6's β from cwnd, not from the flight, as Linux's cubictcp_recalc_ssthresh (cwnd·717/1024 in whole segments,
    // at least two): an application-limited sender keeps the window it had earned.
    this.ssthresh = Math.max(Math.floor((Math.floor(segs) * 717) / 1024), 2) * ctx.mss;
    this.epochStart = -1;
  }
}
