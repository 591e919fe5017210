/**
 * Time for the stack. Protocol code never reads the wall clock or calls setTimeout: it asks its `Clock`.
 * A host driver (lib/) maps the clock onto Node's timers; tests use `VirtualClock` and advance it by hand.
 */

/** A scheduled callback that can be cancelled. */
export interface Timer {
  /** Cancels the timer; harmless if it already fired or was cancelled. */
  cancel(): void;
}

/** The stack's source of time and timers. Times are milliseconds (fractions allowed) on a monotonic scale. */
export interface Clock {
  /** The current time in milliseconds. */
  now(): number;
  /** Runs `fn` once, `delayMs` from now (0 or less: as soon as possible, never synchronously). */
  schedule(delayMs: number, fn: () => void): Timer;
}

interface VirtualTimer extends Timer {
  at: number;
  seq: number;
  fn: (() => void) | null;
}

/** A clock that only moves when told to: deterministic tests and the conformance runner use it. */
export class VirtualClock implements Clock {
  private time: number;
  private seq = 0;
  private heap: VirtualTimer[] = [];

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  schedule(delayMs: number, fn: () => void): Timer {
    const t: VirtualTimer = {
      at: this.time + Math.max(0, delayMs),
      seq: this.seq++,
      fn,
      cancel() {
        t.fn = null;
      },
    };
    this.push(t);
    return t;
  }

  /** The time of the earliest pending timer, or undefined when none is pending. */
  nextDeadline(): number | undefined {
    while (this.heap.length && this.heap[0]!.fn === null) this.pop();
    return this.heap.length ? this.heap[0]!.at : undefined;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order of deadline. */
  advance(ms: number): void {
    this.advanceTo(this.time + ms);
  }

  /** Moves time forward to `target`, firing every timer that falls due, in order of deadline. */
  advanceTo(target: number): void {
    for (;;) {
      const next = this.nextDeadline();
      if (next === undefined || next > target) break;
      const t = this.pop()!;
      this.time = Math.max(this.time, t.at);
      const fn = t.fn!;
      t.fn = null;
      fn();
    }
    this.time = Math.max(this.time, target);
  }

  /** Fires every timer due now (deadline ≤ now) without moving time. */
  runDue(): void {
    this.advanceTo(this.time);
  }

  private push(t: VirtualTimer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): VirtualTimer | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: VirtualTimer, b: VirtualTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
