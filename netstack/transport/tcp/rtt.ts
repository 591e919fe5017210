/**
 * The retransmission timeout estimator of RFC 6298 §2: smoothed RTT and variance from samples (Karn's
 * algorithm is the caller's: no samples from retransmitted segments unless timestamps disambiguate),
 * exponential backoff on expiry (§5.5), and a maximum. The minimum (Linux's 200 ms by default) bounds the variation
 * term as Linux does, not the sum: RTO = SRTT + max(4·RTTVAR, minimum).
 */

/** Linux's TCP_RTO_MIN: RFC 6298 §2.4 allows a lower minimum than 1 s. */
export const DEFAULT_RTO_MIN = 200;
/** Linux's TCP_RTO_MAX (RFC 6298 §2.5 allows a maximum of at least 60 s). */
export const DEFAULT_RTO_MAX = 120_000;
/** The initial RTO of RFC 6298 §2.1. */
export const INITIAL_RTO = 1000;

/** RTT state and the current retransmission timeout, in milliseconds. */
export class RttEstimator {
  /** Smoothed RTT (SRTT); 0 until the first sample. */
  srtt = 0;
  /** RTT variation (RTTVAR). */
  rttvar = 0;
  /** The latest sample. */
  latest = 0;
  /** The smallest sample seen. */
  minRtt = Infinity;
  /** Backoff exponent: RTO doublings since the last new sample. */
  backoffs = 0;
  private base = INITIAL_RTO;

  constructor(
    private readonly rtoMin = DEFAULT_RTO_MIN,
    private readonly rtoMax = DEFAULT_RTO_MAX,
  ) {}

  /** Whether a sample has been taken. */
  get hasSample(): boolean {
    return this.srtt > 0;
  }

  /** The current RTO with backoff applied (RFC 6298 §5.5). */
  get rto(): number {
    // Read on every segment sent: without backoff no power is taken (V8 calls the C library's pow for `**`).
    return this.backoffs === 0 ? Math.min(this.rtoMax, this.base) : Math.min(this.rtoMax, this.base * 2 ** this.backoffs);
  }

  /** Folds in one RTT measurement (RFC 6298 §2.2–2.3, alpha 1/8, beta 1/4, G taken as 1 ms). */
  sample(r: number): void {
    if (!(r >= 0)) return;
    r = Math.max(r, 1);
    this.latest = r;
    if (r < this.minRtt) this.minRtt = r;
    if (this.srtt === 0) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    // Linux's tcp_set_rto: SRTT plus the variation, which is never taken below the minimum (rttvar_us ≥
    // tcp_rto_min), so a path's RTT adds to the 200 ms where RFC 6298 §2.4 would clamp the sum instead.
    this.base = Math.min(this.rtoMax, this.srtt + Math.max(this.rtoMin, 4 * this.rttvar));
    this.backoffs = 0;
  }

  /** Doubles the RTO after an expiry (RFC 6298 §5.5). */
  backoff(): void {
    if (this.rto < this.rtoMax) this.backoffs++;
  }

  /** RFC 6298 §5.7: after the handshake's SYN was retransmitted, the RTO restarts at 3 s if no sample exists. */
  resetAfterSynLoss(): void {
    if (!this.hasSample) this.base = 3000;
    this.backoffs = 0;
  }
}
