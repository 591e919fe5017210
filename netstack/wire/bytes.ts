/**
 * Big-endian (network byte order, RFC 791 appendix B) integer access for the wire views; internal to wire/.
 */

/** Reads an unsigned 16-bit big-endian integer at `off`. */
export function get16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

/** Writes the low 16 bits of `v` big-endian at `off`. */
export function set16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 0xff;
  b[off + 1] = v & 0xff;
}

/** Reads an unsigned 32-bit big-endian integer at `off`. */
export function get32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

/** Writes the low 32 bits of `v` big-endian at `off`. */
export function set32(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 24) & 0xff;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}
