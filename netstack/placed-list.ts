/**
 * An unordered set of objects held in a plain array, each object keeping its own place in a property of its
 * own (`key`), so that add and delete are O(1) without a Map or Set: V8's Map and Set keep deleted entries alive
 * through young-generation collections, and a set that sees every connection come and go then has each one
 * copied and promoted (issue 13). Delete moves the last object into the hole.
 */

/** An object that can sit in a PlacedList keyed by K: its index there, or -1 / undefined when in none. */
export type Placed<K extends PropertyKey> = { [P in K]?: number };

export class PlacedList<T extends Placed<K>, K extends PropertyKey> {
  private readonly items: T[] = [];

  constructor(private readonly key: K) {}

  /** Objects held. */
  get size(): number {
    return this.items.length;
  }

  /** Adds `x` (nothing if it is in already). */
  add(x: T): void {
    const i = x[this.key];
    if (i !== undefined && i >= 0 && this.items[i] === x) return;
    (x as Placed<K>)[this.key] = this.items.length;
    this.items.push(x);
  }

  /** Removes `x`; whether it was in. */
  delete(x: T): boolean {
    const i = x[this.key];
    if (i === undefined || i < 0 || this.items[i] !== x) return false;
    const last = this.items.pop()!;
    if (last !== x) {
      this.items[i] = last;
      (last as Placed<K>)[this.key] = i;
    }
    (x as Placed<K>)[this.key] = -1;
    return true;
  }

  /** Takes every object out, returning them. */
  drain(): T[] {
    const all = this.items.splice(0);
    for (const x of all) (x as Placed<K>)[this.key] = -1;
    return all;
  }
}
