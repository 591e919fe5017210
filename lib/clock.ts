/**
 * `NodeClock`: the stack's Clock on Node's monotonic time and timers. Timers wait in the netstack's TimerQueue
 * and only the earliest deadline holds a Node timer, so re-arming a timer costs no Node timer churn.
 */
import { type Clock, type Timer, TimerQueue } from '../netstack/clock.ts';

/** Options for NodeClock. */
export interface NodeClockOptions {
  /** Let the process exit while timers are pending (default false: pending timers keep it alive). */
  unref?: boolean;
}

/** What a disposed clock hands out. */
const DEAD: Timer = { cancel() {} };

/**
 * A Clock on `performance.now()` with one Node timer for the earliest future deadline and one immediate for
 * timers already due. The two are armed independently: a delay-0 timer (the stack's flush after a write outside
 * a receive batch, once per reply of a request/response exchange) adds an immediate and leaves the Node timer of
 * a later deadline (delayed ACK, RTO) where it is, instead of clearing it and setting it again after the
 * immediate (issue 13: TCP round trips).
 */
export class NodeClock implements Clock {
  private readonly timers = new TimerQueue();
  // Deadline the Node timer is set for (Infinity: none).
  private timeoutAt = Infinity;
  private timeout: ReturnType<typeof setTimeout> | null = null;
  private immediate: ReturnType<typeof setImmediate> | null = null;
  private readonly unref: boolean;
  private disposed = false;

  constructor(opts: NodeClockOptions = {}) {
    this.unref = opts.unref ?? false;
  }

  now(): number {
    return performance.now();
  }

  schedule(delayMs: number, fn: () => void): Timer {
    // A stack that outlives its clock (a connection caught mid-close when the test closed both) would otherwise
    // re-arm its retransmission timer for minutes, holding the process open on a clock nobody runs any more.
    if (this.disposed) return DEAD;
    const now = performance.now();
    const at = now + Math.max(0, delayMs);
    const t = this.timers.add(at, fn);
    this.arm(at, now);
    return t;
  }

  /** Number of timers still pending (not fired, not cancelled). */
  get pending(): number {
    return this.timers.pending;
  }

  /** Cancels every pending timer and releases the Node timer; timers scheduled afterwards never fire. */
  dispose(): void {
    this.disposed = true;
    this.timers.clear();
    if (this.timeout !== null) clearTimeout(this.timeout);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timeout = null;
    this.immediate = null;
    this.timeoutAt = Infinity;
  }

  // Makes sure something wakes the clock by `at`: the immediate when it is due, else the Node timer when it is
  // not already set for that deadline or an earlier one (one set earlier fires as a no-op and re-arms).
  private arm(at: number, now: number): void {
    if (at <= now) {
      if (this.immediate === null) {
        this.immediate = setImmediate(this.fire);
        if (this.unref) this.immediate.unref();
      }
      return;
    }
    if (at >= this.timeoutAt) return;
    if (this.timeout !== null) clearTimeout(this.timeout);
    this.timeoutAt = at;
    this.timeout = setTimeout(this.fireTimeout, at - now);
    if (this.unref) this.timeout.unref();
  }

  private readonly fireTimeout = (): void => {
    this.timeout = null;
    this.timeoutAt = Infinity;
    this.run();
  };

  private readonly fire = (): void => {
    this.immediate = null;
    this.run();
  };

  private run(): void {
    // Timers scheduled by callbacks of this pass wait for the next one, so a timer that re-arms itself with
    // delay 0 cannot starve the event loop.
    const lastSeq = this.timers.nextSeq;
    const now = performance.now();
    try {
      for (let fn = this.timers.takeDue(now, lastSeq); fn; fn = this.timers.takeDue(now, lastSeq)) fn();
    } finally {
      const next = this.timers.peek();
      if (next !== undefined) this.arm(next.at, performance.now());
    }
  }
}
