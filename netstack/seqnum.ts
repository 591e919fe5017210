/**
 * 32-bit sequence-number arithmetic with wrap-around (RFC 9293 §3.4, RFC 1982): the one place where TCP
 * sequence numbers (and timestamps, RFC 7323 §5.2) are compared. Values are unsigned 32-bit integers held in
 * JavaScript numbers; a is "less than" b when b − a, taken modulo 2^32, lies in (0, 2^31).
 */

/** A 32-bit sequence number (0 … 2^32 − 1). */
export type Seq = number;

/** The signed distance a − b modulo 2^32, in [−2^31, 2^31). */
export function sub(a: Seq, b: Seq): number {
  return (a - b) | 0;
}

/** a + n modulo 2^32 (n may be negative). */
export function add(a: Seq, n: number): Seq {
  return (a + n) >>> 0;
}

/** a < b in sequence space. */
export function lt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) < 0;
}

/** a ≤ b in sequence space. */
export function le(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) <= 0;
}

/** a > b in sequence space. */
export function gt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) > 0;
}

/** a ≥ b in sequence space. */
export function ge(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) >= 0;
}

/** Whether x lies in [start, start + size) (RFC 9293 §3.4's acceptability tests); always false for size 0. */
export function inWindow(x: Seq, start: Seq, size: number): boolean {
  return size > 0 && ((x - start) >>> 0) < size;
}

/** Whether x lies in [a, b] in sequence space. */
export function inRange(x: Seq, a: Seq, b: Seq): boolean {
  return le(a, x) && le(x, b);
}

/** The later of a and b in sequence space. */
export function max(a: Seq, b: Seq): Seq {
  return lt(a, b) ? b : a;
}

/** The earlier of a and b in sequence space. */
export function min(a: Seq, b: Seq): Seq {
  return lt(a, b) ? a : b;
}
