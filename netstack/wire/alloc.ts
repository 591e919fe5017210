/**
 * Packet memory: fresh byte ranges carved from large shared slabs (as Node's Buffer.allocUnsafe pool).
 * A `new Uint8Array(n)` of packet size gets its own off-heap backing store, which costs an allocation, zeroing
 * and garbage-collector bookkeeping per packet; a view into a slab costs one small heap object. A range is never
 * handed out twice, so links may keep written frames: a slab is freed by the garbage collector once no view of
 * it is left.
 */

// Big enough that slab creation is rare at line rate, small enough that a few long-lived views pin little.
const SLAB_SIZE = 128 * 1024;
// Larger requests get their own buffer, so that one allocation never wastes most of a slab.
const POOLED_MAX = SLAB_SIZE >>> 3;

let slab = new ArrayBuffer(SLAB_SIZE);
let used = 0;

/**
 * A fresh, zero-filled `n`-byte array (slab memory starts zeroed and no range is handed out twice), like
 * `new Uint8Array(n)` but cheaper; its `.buffer` is the shared slab, so use `byteOffset` with it.
 */
export function allocPacket(n: number): Uint8Array {
  if (n > POOLED_MAX) return new Uint8Array(n);
  if (used + n > SLAB_SIZE) {
    slab = new ArrayBuffer(SLAB_SIZE);
    used = 0;
  }
  const out = new Uint8Array(slab, used, n);
  // 8-byte alignment keeps the checksum's 32-bit reads aligned for most header layouts.
  used = (used + n + 7) & ~7;
  return out;
}
