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

/**
 * A pending timer in a TimerQueue: a class rather than an object with a closure, because the stack re-arms
 * timers on almost every segment and a closure per timer showed in profiles.
 */
class QueuedTimer implements Timer {
  constructor(
    readonly at: number,
    readonly seq: number,
    public fn: (() => void) | null,
    private readonly queue: TimerQueue,
  ) {}

  cancel(): void {
    if (this.fn === null) return;
    this.fn = null;
    this.queue.onCancel();
  }
}

/**
 * Timers ordered by deadline (then by scheduling order) in a binary heap. Cancelling only marks an entry; the
 * heap is rebuilt when marked entries outnumber live ones, because the stack re-arms timers constantly (every
 * ACK moves a retransmission deadline). Both VirtualClock and the host's NodeClock keep their timers here.
 */
export class TimerQueue {
  private heap: QueuedTimer[] = [];
  private seqNext = 0;
  private cancelled = 0;

  /** Adds a timer due at time `at`. */
  add(at: number, fn: () => void): Timer {
    const t = new QueuedTimer(at, this.seqNext++, fn, this);
    this.push(t);
    return t;
  }

  /** Counts a cancelled entry; rebuilds the heap when they outnumber the live ones. */
  onCancel(): void {
    this.cancelled++;
    if (this.cancelled > 64 && this.cancelled * 2 > this.heap.length) this.compact();
  }

  /** The sequence number the next added timer gets; timers added later compare greater. */
  get nextSeq(): number {
    return this.seqNext;
  }

  /** Entries held, cancelled ones not yet compacted away included (bounded at about twice `pending`). */
  get stored(): number {
    return this.heap.length;
  }

  /** Number of timers neither fired nor cancelled. */
  get pending(): number {
    return this.heap.length - this.cancelled;
  }

  /** The deadline and sequence number of the earliest live timer, or undefined when none is pending. */
  peek(): { readonly at: number; readonly seq: number } | undefined {
    while (this.heap.length > 0 && this.heap[0]!.fn === null) {
      this.pop();
      this.cancelled--;
    }
    return this.heap[0];
  }

  /**
   * Removes the earliest live timer if it is due at or before `now` (and was added before sequence number
   * `beforeSeq`, when given) and returns its callback, marking it fired; otherwise returns undefined.
   */
  takeDue(now: number, beforeSeq = Infinity): (() => void) | undefined {
    const top = this.peek();
    if (top === undefined || top.at > now || top.seq >= beforeSeq) return undefined;
    const t = this.pop()!;
    const fn = t.fn!;
    t.fn = null;
    return fn;
  }

  /** Drops every timer. */
  clear(): void {
    for (const t of this.heap) t.fn = null;
    this.heap = [];
    this.cancelled = 0;
  }

  private compact(): void {
    const live = this.heap.filter((t) => t.fn !== null);
    this.heap = [];
    this.cancelled = 0;
    for (const t of live) this.push(t);
  }

  private push(t: QueuedTimer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const up = h[i]!;
      if (!before(up, h[p]!)) break;
      h[i] = h[p]!;
      h[p] = up;
      i = p;
    }
  }

  private pop(): QueuedTimer | undefined {
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
        const down = h[i]!;
        h[i] = h[m]!;
        h[m] = down;
        i = m;
      }
    }
    return top;
  }
}

function before(a: QueuedTimer, b: QueuedTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * A clock whose time stands still while held, as Linux's tcp_mstamp is taken once per segment received and per
 * send: TCP asks for the time a dozen times for one segment (timestamps, RTT and RACK, timers, keep-alive, quick
 * ACKs), and each read of a host clock is a call into the vDSO. Outside a hold it reads through.
 */
export class HeldClock implements Clock {
  private depth = 0;
  private at = 0;

  constructor(private readonly inner: Clock) {}

  now(): number {
    return this.depth > 0 ? this.at : this.inner.now();
  }

  schedule(delayMs: number, fn: () => void): Timer {
    return this.inner.schedule(delayMs, fn);
  }

  /** Freezes the time (reading it once) until the matching release; holds nest. */
  hold(): void {
    if (this.depth++ === 0) this.at = this.inner.now();
  }

  /** Ends one hold. */
  release(): void {
    this.depth--;
  }

  /**
   * The time the latest hold read (0 before any), without reading the clock: a segment's arrival or departure,
   * as Linux's tcp_mstamp, which a read's receive-buffer tuning takes (tcp_rcv_space_adjust) instead of a clock.
   */
  get lastHeld(): number {
    return this.at;
  }
}

/** A clock that only moves when told to: deterministic tests and the conformance runner use it. */
export class VirtualClock implements Clock {
  private time: number;
  private readonly timers = new TimerQueue();

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  schedule(delayMs: number, fn: () => void): Timer {
    return this.timers.add(this.time + Math.max(0, delayMs), fn);
  }

  /** The time of the earliest pending timer, or undefined when none is pending. */
  nextDeadline(): number | undefined {
    return this.timers.peek()?.at;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order of deadline. */
  advance(ms: number): void {
    this.advanceTo(this.time + ms);
  }

  /** Moves time forward to `target`, firing every timer that falls due, in order of deadline. */
  advanceTo(target: number): void {
    for (;;) {
      const next = this.timers.peek();
      if (next === undefined || next.at > target) break;
      this.time = Math.max(this.time, next.at);
      this.timers.takeDue(next.at)!();
    }
    this.time = Math.max(this.time, target);
  }

  /** Fires every timer due now (deadline ≤ now) without moving time. */
  runDue(): void {
    this.advanceTo(this.time);
  }
}
