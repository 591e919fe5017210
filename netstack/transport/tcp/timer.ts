/**
 * A restartable one-shot timer on the stack's clock. TCP re-arms its retransmission, delayed-ACK and keepalive
 * timers on almost every segment; this keeps one clock timer and moves only a deadline, rescheduling lazily
 * when the old timer fires early, so that the common re-arm costs no clock operation.
 */
import type { Clock, Timer } from '../../clock.ts';

/** A one-shot timer whose deadline can be moved cheaply. */
export class LazyTimer {
  private timer: Timer | null = null;
  private scheduledAt = Infinity;
  private deadline = Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly fn: () => void,
  ) {}

  /** Whether the timer is armed. */
  get armed(): boolean {
    return this.deadline !== Infinity;
  }

  /** The absolute deadline in ms, Infinity when disarmed. */
  get at(): number {
    return this.deadline;
  }

  /** Arms (or re-arms) the timer to fire `delayMs` from now. */
  set(delayMs: number): void {
    this.deadline = this.clock.now() + Math.max(0, delayMs);
    if (this.timer && this.scheduledAt <= this.deadline) return;
    this.timer?.cancel();
    this.schedule(this.deadline);
  }

  /** Arms the timer unless it is already armed. */
  ensure(delayMs: number): void {
    if (!this.armed) this.set(delayMs);
  }

  /**
   * Disarms the timer but leaves its clock timer queued (it fires as a no-op, or is reused by the next `set`):
   * for a short timer stopped and restarted on almost every segment, like the delayed ACK, where a clock
   * cancel and schedule per ACK cost more than the spurious wake-up.
   */
  disarm(): void {
    this.deadline = Infinity;
  }

  /** Disarms the timer and removes it from the clock. */
  cancel(): void {
    this.deadline = Infinity;
    this.timer?.cancel();
    this.timer = null;
    this.scheduledAt = Infinity;
  }

  private schedule(at: number): void {
    this.scheduledAt = at;
    this.timer = this.clock.schedule(at - this.clock.now(), () => this.fire());
  }

  private fire(): void {
    this.timer = null;
    this.scheduledAt = Infinity;
    if (this.deadline === Infinity) return;
    if (this.clock.now() < this.deadline) {
      this.schedule(this.deadline);
      return;
    }
    this.deadline = Infinity;
    this.fn();
  }
}
