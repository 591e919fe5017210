/**
 * Readiness: every socket endpoint owns a `WaiterQueue`; it notifies subscribers with poll(2) event bits when
 * it becomes readable, writable, errored or hung up. The Sentry's pump and the Node adapter both wait on it.
 */

/** poll(2) event bits, with Linux's values. */
export const EventIn = 0x1;
export const EventPri = 0x2;
export const EventOut = 0x4;
export const EventErr = 0x8;
export const EventHUp = 0x10;
export const EventRdHUp = 0x2000;

/**
 * A subscriber. `fn` is called as the entry's method, so an object of the caller's may be the entry itself (`add`)
 * rather than a closure and an entry made for it (`subscribe`).
 */
export interface Waiter {
  mask: number;
  fn(events: number): void;
  /** Cleared by unsubscribe. */
  live: boolean;
}

type Entry = Waiter;

/** A set of subscribers waiting for readiness events. */
export class WaiterQueue {
  // Replaced, never changed in place, on (un)subscribe: notify walks the array it found, so subscribers added or
  // removed by a callback take effect from the next notify, without a copy per notify (several per segment).
  private entries: readonly Entry[] = [];

  /** Calls `fn(events)` whenever an event in `mask` is notified; returns the unsubscribe function. */
  subscribe(mask: number, fn: (events: number) => void): () => void {
    const e: Entry = { mask, fn, live: true };
    this.add(e);
    return () => this.remove(e);
  }

  /**
   * Adds `w` (live, not added before) as a subscriber until `remove(w)`: for a subscriber kept per connection, which
   * needs no unsubscribe closure.
   */
  add(w: Waiter): void {
    // concat makes an array of exactly the new length; a spread grows one with room for 16 more (152 B of elements
    // for one subscriber, which every idle connection's endpoint kept).
    this.entries = this.entries.concat([w]);
  }

  /** Takes `w` off (once; later calls do nothing). */
  remove(w: Waiter): void {
    if (!w.live) return;
    w.live = false;
    this.entries = this.entries.filter((x) => x !== w);
  }

  /** Tells every subscriber whose mask intersects `events`. */
  notify(events: number): void {
    const list = this.entries;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      const hit = e.mask & events;
      // One unsubscribed by an earlier callback of this notify is not called.
      if (hit && e.live) e.fn(hit);
    }
  }

  /** Number of subscribers, for tests. */
  get size(): number {
    return this.entries.length;
  }
}
