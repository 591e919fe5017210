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

/** A Clock on `performance.now()` with one Node timer (or immediate) for the earliest pending deadline. */
export class NodeClock implements Clock {
  private readonly timers = new TimerQueue();
  private armedAt = Infinity;
  private timeout: ReturnType<typeof setTimeout> | null = null;
  private immediate: ReturnType<typeof setImmediate> | null = null;
  private readonly unref: boolean;

  constructor(opts: NodeClockOptions = {}) {
    this.unref = opts.unref ?? false;
  }

  now(): number {
    return performance.now();
  }

  schedule(delayMs: number, fn: () => void): Timer {
    const at = performance.now() + Math.max(0, delayMs);
    const t = this.timers.add(at, fn);
    if (at < this.armedAt) this.arm(at);
    return t;
  }

  /** Number of timers still pending (not fired, not cancelled). */
  get pending(): number {
    return this.timers.pending;
  }

  /** Cancels every pending timer and releases the Node timer. */
  dispose(): void {
    this.timers.clear();
    this.disarm();
  }

  private arm(at: number): void {
    this.disarm();
    this.armedAt = at;
    const delay = at - performance.now();
    if (delay <= 0) {
      this.immediate = setImmediate(this.fire);
      if (this.unref) this.immediate.unref();
    } else {
      this.timeout = setTimeout(this.fire, delay);
      if (this.unref) this.timeout.unref();
    }
  }

  private disarm(): void {
    if (this.timeout !== null) clearTimeout(this.timeout);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timeout = null;
    this.immediate = null;
    this.armedAt = Infinity;
  }

  private readonly fire = (): void => {
    this.timeout = null;
    this.immediate = null;
    this.armedAt = Infinity;
    // Timers scheduled by callbacks of this pass wait for the next one, so a timer that re-arms itself with
    // delay 0 cannot starve the event loop.
    const lastSeq = this.timers.nextSeq;
    const now = performance.now();
    try {
      for (let fn = this.timers.takeDue(now, lastSeq); fn; fn = this.timers.takeDue(now, lastSeq)) fn();
    } finally {
      const next = this.timers.peek();
      if (next !== undefined && next.at < this.armedAt) this.arm(next.at);
    }
  };
}
