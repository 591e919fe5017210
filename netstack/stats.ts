/**
 * Counters for every drop, error and state change. Each layer registers a group of plain numeric fields and
 * increments them directly (cheap); `snapshot()` flattens them to "group.field" for the CLI and the API.
 * An optional tracer hears why each packet died, at no cost when unset.
 */

/** A drop or state change, given to a tracer. */
export interface TraceEvent {
  /** The counter group, e.g. "ipv4". */
  readonly group: string;
  /** The counter that was incremented, e.g. "badChecksum". */
  readonly counter: string;
  /** Optional human-readable detail. */
  readonly detail?: string;
}

/** The stack's registry of counter groups. */
export class Stats {
  private readonly groups = new Map<string, Record<string, number>>();
  /** When set, hears every `count()` call; leave unset on hot paths for speed. */
  tracer: ((e: TraceEvent) => void) | undefined;

  /** Registers (or returns the existing) group, whose fields start at the given values. */
  group<T extends Record<string, number>>(name: string, init: T): T {
    const existing = this.groups.get(name);
    if (existing) return existing as T;
    const g = { ...init };
    this.groups.set(name, g);
    return g;
  }

  /** Increments one counter of a group and tells the tracer, if any. */
  count(group: Record<string, number>, groupName: string, counter: string, detail?: string): void {
    group[counter] = (group[counter] ?? 0) + 1;
    if (this.tracer) this.tracer({ group: groupName, counter, detail });
  }

  /** All counters as "group.field" → value, sorted by name. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of [...this.groups.keys()].sort()) {
      const g = this.groups.get(name)!;
      for (const k of Object.keys(g).sort()) out[`${name}.${k}`] = g[k]!;
    }
    return out;
  }
}
