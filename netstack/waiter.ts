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

interface Entry {
  mask: number;
  fn: (events: number) => void;
}

/** A set of subscribers waiting for readiness events. */
export class WaiterQueue {
  private readonly entries = new Set<Entry>();

  /** Calls `fn(events)` whenever an event in `mask` is notified; returns the unsubscribe function. */
  subscribe(mask: number, fn: (events: number) => void): () => void {
    const e: Entry = { mask, fn };
    this.entries.add(e);
    return () => {
      this.entries.delete(e);
    };
  }

  /** Tells every subscriber whose mask intersects `events`. */
  notify(events: number): void {
    if (this.entries.size === 0) return;
    for (const e of [...this.entries]) {
      const hit = e.mask & events;
      if (hit && this.entries.has(e)) e.fn(hit);
    }
  }

  /** Number of subscribers, for tests. */
  get size(): number {
    return this.entries.size;
  }
}
