/**
 * Where a connection's sending time goes, as Linux's tcp_chrono_* keep it for TCP_INFO (tcpi_busy_time,
 * tcpi_rwnd_limited, tcpi_sndbuf_limited): one stopwatch that runs for the most telling of busy (data queued or in
 * flight), limited by the peer's window, and limited by the send buffer, with a total per kind.
 */

/** The kinds, in Linux's order of precedence (a later one takes the stopwatch from an earlier). */
export const Chrono = { Idle: 0, Busy: 1, RwndLimited: 2, SndbufLimited: 3 } as const;
/** One of the kinds. */
export type Chrono = (typeof Chrono)[keyof typeof Chrono];

/** The stopwatch of one connection; times in milliseconds of the stack's clock. */
export class ChronoStats {
  private kind: Chrono = Chrono.Idle;
  private since = 0;
  private readonly total = [0, 0, 0];

  /** `kind` starts, if it is more telling than the one running (tcp_chrono_start). */
  start(kind: Chrono, now: number): void {
    if (kind > this.kind) this.set(kind, now);
  }

  /**
   * `kind` stopped (tcp_chrono_stop): with nothing queued or in flight the stopwatch stops; else, if `kind` was the
   * one running, plain busy time goes on.
   */
  stop(kind: Chrono, now: number, empty: boolean): void {
    if (empty) this.set(Chrono.Idle, now);
    else if (kind === this.kind) this.set(Chrono.Busy, now);
  }

  /** Milliseconds spent in `kind` so far, the running stretch included. */
  time(kind: Exclude<Chrono, 0>, now: number): number {
    return this.total[kind - 1]! + (kind === this.kind ? now - this.since : 0);
  }

  private set(kind: Chrono, now: number): void {
    if (this.kind !== Chrono.Idle) this.total[this.kind - 1] = this.total[this.kind - 1]! + now - this.since;
    this.since = now;
    this.kind = kind;
  }
}
