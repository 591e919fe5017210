/**
 * A token bucket for ICMP error messages (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)); the defaults are Linux's
 * global limit, net.ipv4.icmp_msgs_per_sec = 1000 with icmp_msgs_burst = 50.
 */
import type { Clock } from '../clock.ts';

/** A token bucket refilled continuously from the clock. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly clock: Clock,
    /** Tokens added per second. */
    private readonly ratePerSecond = 1000,
    /** Bucket depth. */
    private readonly burst = 50,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  /** Takes one token; false when the bucket is empty and the message must be suppressed. */
  take(): boolean {
    const now = this.clock.now();
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.ratePerSecond) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
