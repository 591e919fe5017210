/**
 * Parked calls: a blocking accept, connect or receive is not answered until the SocketFile's wait settles, and
 * is kept meanwhile by notification id. Two things end a parked call early:
 * - the target's exit (its pidfd became readable): the wait is aborted before it consumes anything;
 * - a signal the thread would handle: a watchdog reads /proc/<tid>/status (every 5 ms, backing off to 50 ms),
 *   and when a thread-directed signal is pending, unblocked and caught (or a process-directed one has stayed so
 *   for 20 ms, in case another thread takes it), the call is answered -ERESTARTSYS: the kernel then runs the
 *   handler and restarts the call (SA_RESTART, trapped again) or returns EINTR, exactly as for a blocking call.
 * Fatal signals need nothing: WAIT_KILLABLE_RECV ends the wait by itself.
 */
import { readFileSync } from 'node:fs';

/** The kernel's internal "restart the call or give EINTR" errno, which seccomp passes through to signal handling. */
export const ERESTARTSYS = 512;

const FIRST_POLL_MS = 5;
const MAX_POLL_MS = 50;
/** How long a process-directed signal may wait for another thread before this call gives way. */
const SHARED_GRACE_MS = 20;

/** Signal masks of one thread, from /proc/<tid>/status. */
export interface SigState {
  /** Pending for this thread (SigPnd). */
  pending: bigint;
  /** Pending for the process (ShdPnd). */
  shared: bigint;
  blocked: bigint;
  caught: bigint;
}

/** Parses the signal lines of a /proc/<tid>/status text; undefined when they are missing (the thread is gone). */
export function parseSigState(status: string): SigState | undefined {
  const hex = (name: string) => {
    const m = new RegExp(`^${name}:\\s*([0-9a-f]+)`, 'm').exec(status);
    return m ? BigInt('0x' + m[1]) : undefined;
  };
  const pending = hex('SigPnd');
  const shared = hex('ShdPnd');
  const blocked = hex('SigBlk');
  const caught = hex('SigCgt');
  if (pending === undefined || shared === undefined || blocked === undefined || caught === undefined) return undefined;
  return { pending, shared, blocked, caught };
}

/** Which kind of deliverable, caught signal is pending: 'thread', 'shared' or none. */
export function deliverable(s: SigState): 'thread' | 'shared' | undefined {
  const live = s.caught & ~s.blocked;
  if (s.pending & live) return 'thread';
  if (s.shared & live) return 'shared';
  return undefined;
}

/** A parked call's handle. */
export interface Parked {
  readonly id: bigint;
  readonly tid: number;
  /** Aborted when the call is to end (exit, signal, Sentry close): waits pass it on. */
  readonly signal: AbortSignal;
}

/** How a parked call ended early. */
export type ParkEnd = 'exit' | 'signal' | 'closed';

/** The parked calls of one Sentry. */
export class ParkedCalls {
  private readonly calls = new Map<bigint, {
    ctl: AbortController;
    timer: ReturnType<typeof setTimeout> | null;
    onEnd: (why: ParkEnd) => void;
    /** Takes the exit listener off the target's signal, which outlives the call. */
    unwatchExit: () => void;
  }>();

  /** Test hook: reads a thread's status text (default: /proc). */
  constructor(private readonly readStatus: (tid: number) => string | undefined = procStatus) {}

  /** Calls parked now. */
  get size(): number {
    return this.calls.size;
  }

  /**
   * Parks call `id` of thread `tid`. `exit` is the target's exit signal. `onEnd` runs once if the call ends
   * early (after the returned signal is aborted); otherwise the caller calls `done(id)` when it answers.
   */
  park(id: bigint, tid: number, exit: AbortSignal, onEnd: (why: ParkEnd) => void): Parked {
    const ctl = new AbortController();
    const onExit = () => end('exit');
    const entry = { ctl, timer: null as ReturnType<typeof setTimeout> | null, onEnd, unwatchExit: () => exit.removeEventListener('abort', onExit) };
    this.calls.set(id, entry);
    const end = (why: ParkEnd) => {
      if (this.calls.get(id) !== entry) return;
      this.done(id);
      ctl.abort();
      onEnd(why);
    };
    if (exit.aborted) queueMicrotask(onExit);
    else exit.addEventListener('abort', onExit, { once: true });
    let delay = FIRST_POLL_MS;
    let sharedSince = -1;
    const watch = () => {
      if (this.calls.get(id) !== entry) return;
      const text = this.readStatus(tid);
      const st = text === undefined ? undefined : parseSigState(text);
      if (!st) return end('exit');
      const d = deliverable(st);
      const now = performance.now();
      if (d === 'thread') return end('signal');
      if (d === 'shared') {
        if (sharedSince < 0) sharedSince = now;
        else if (now - sharedSince >= SHARED_GRACE_MS) return end('signal');
      } else sharedSince = -1;
      delay = sharedSince >= 0 ? FIRST_POLL_MS : Math.min(MAX_POLL_MS, delay * 2);
      entry.timer = setTimeout(watch, delay);
      entry.timer.unref();
    };
    entry.timer = setTimeout(watch, delay);
    entry.timer.unref();
    return { id, tid, signal: ctl.signal };
  }

  /** The call was answered: stop watching it. */
  done(id: bigint): void {
    const e = this.calls.get(id);
    if (!e) return;
    this.calls.delete(id);
    if (e.timer) clearTimeout(e.timer);
    // A process parks call after call (a server's blocking accept): one listener each would pile up until it exits.
    e.unwatchExit();
  }

  /** Ends every parked call (the Sentry is closing). */
  closeAll(): void {
    for (const [id, e] of [...this.calls]) {
      this.done(id);
      e.ctl.abort();
      e.onEnd('closed');
    }
  }
}

function procStatus(tid: number): string | undefined {
  try {
    return readFileSync(`/proc/${tid}/status`, 'latin1');
  } catch {
    return undefined;
  }
}
