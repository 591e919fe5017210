/**
 * `NodeClock`: the stack's Clock on Node's monotonic time and timers.
 * The stack re-arms timers constantly (every ACK moves a retransmission deadline), so timers live in one heap
 * and only the earliest deadline holds a Node timer; cancelling just marks the entry, and the heap is rebuilt
 * when marked entries outnumber live ones.
 */
import type { Clock, Timer } from '../netstack/clock.ts';

interface Entry extends Timer {
  at: number;
  seq: number;
  fn: (() => void) | null;
}

/** Options for NodeClock. */
export interface NodeClockOptions {
  /** Let the process exit while timers are pending (default false: pending timers keep it alive). */
  unref?: boolean;
}

/** A Clock on `performance.now()` with one Node timer (or immediate) for the earliest pending deadline. */
export class NodeClock implements Clock {
  private heap: Entry[] = [];
  private seq = 0;
  private cancelled = 0;
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
    const e: Entry = {
      at: performance.now() + Math.max(0, delayMs),
      seq: this.seq++,
      fn,
      cancel: () => {
        if (e.fn === null) return;
        e.fn = null;
        this.cancelled++;
        if (this.cancelled > 64 && this.cancelled * 2 > this.heap.length) this.compact();
      },
    };
    this.push(e);
    if (e.at < this.armedAt) this.arm(e.at);
    return e;
  }

  /** Number of timers still pending (not fired, not cancelled). */
  get pending(): number {
    return this.heap.length - this.cancelled;
  }

  /** Cancels every pending timer and releases the Node timer. */
  dispose(): void {
    for (const e of this.heap) e.fn = null;
    this.heap = [];
    this.cancelled = 0;
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
    const lastSeq = this.seq;
    const now = performance.now();
    try {
      for (;;) {
        const top = this.peek();
        if (top === undefined || top.at > now || top.seq >= lastSeq) break;
        this.pop();
        const fn = top.fn!;
        top.fn = null;
        fn();
      }
    } finally {
      const next = this.peek();
      if (next !== undefined && next.at < this.armedAt) this.arm(next.at);
    }
  };

  /** The earliest live entry, dropping cancelled ones from the top. */
  private peek(): Entry | undefined {
    while (this.heap.length > 0 && this.heap[0]!.fn === null) {
      this.pop();
      this.cancelled--;
    }
    return this.heap[0];
  }

  private compact(): void {
    const live = this.heap.filter((e) => e.fn !== null);
    this.heap = [];
    this.cancelled = 0;
    for (const e of live) this.push(e);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
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

function before(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
