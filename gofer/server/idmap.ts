/**
 * User and group id mapping between the client's ids (inside the sandbox) and the owners of the host's files,
 * written as /proc/PID/uid_map is: `INSIDE:OUTSIDE:COUNT`. Without ranges, ids map to themselves.
 */

/** One contiguous range of ids. */
export interface IdRange {
  readonly inside: number;
  readonly outside: number;
  readonly count: number;
}

/** The id Linux shows for an owner with no mapping (overflowuid / overflowgid). */
export const OVERFLOW_ID = 65534;

/** A set of ranges mapping client ids to host ids and back. */
export class IdMap {
  constructor(readonly ranges: readonly IdRange[] = []) {}

  /** Parses `INSIDE:OUTSIDE:COUNT`; throws an Error naming the problem. */
  static parseRange(text: string): IdRange {
    const m = /^(\d+):(\d+):(\d+)$/.exec(text);
    if (!m) throw new Error(`'${text}' is not INSIDE:OUTSIDE:COUNT`);
    const [inside, outside, count] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (count === 0 || inside + count > 2 ** 32 - 1 || outside + count > 2 ** 32 - 1) {
      throw new Error(`'${text}': the range is empty or runs past 4294967294`);
    }
    return { inside, outside, count };
  }

  /** Whether any ranges are set (without them every id maps to itself). */
  get identity(): boolean {
    return this.ranges.length === 0;
  }

  /** The host id of a client id, or undefined when it has no mapping. */
  toHost(id: number): number | undefined {
    if (this.ranges.length === 0) return id;
    for (const r of this.ranges) if (id >= r.inside && id < r.inside + r.count) return r.outside + (id - r.inside);
    return undefined;
  }

  /** The client id of a host id; OVERFLOW_ID when it has none. */
  toClient(id: number): number {
    if (this.ranges.length === 0) return id;
    for (const r of this.ranges) if (id >= r.outside && id < r.outside + r.count) return r.inside + (id - r.outside);
    return OVERFLOW_ID;
  }
}
