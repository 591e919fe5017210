/**
 * The Internet checksum (RFC 1071): one's-complement sum of big-endian 16-bit words, its incremental update
 * (RFC 1624) and the IPv4/IPv6 pseudo-headers that transport and ICMPv6 checksums cover (RFC 768, RFC 8200 §8.1).
 */
import type { Address } from '../addr.ts';

// RFC 1071 §2(B): the one's-complement sum is byte-order independent, so on a little-endian host we can add
// native 32-bit words and swap the two bytes of the folded result once at the end.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
// Below this many bytes, creating a typed-array view costs more than it saves.
const WIDE_MIN = 64;

/**
 * The partial one's-complement sum (RFC 1071) of `data` as big-endian 16-bit words, an odd last byte padded
 * with zero, added to `initial`; not folded or complemented, so sums of consecutive even-length chunks chain.
 */
export function sum16(data: Uint8Array, initial = 0): number {
  const n = data.length;
  if (n < WIDE_MIN || !LITTLE_ENDIAN) return initial + sumBytes(data, 0, n);
  // Bytes before the first 4-aligned address are summed one at a time, tracking whether each is a high byte.
  const head = (4 - (data.byteOffset & 3)) & 3;
  const words = (n - head) >>> 2;
  let s = sumBytes(data, 0, head);
  const wide = wideView(data.buffer, data.byteOffset + head + words * 4);
  const base = (data.byteOffset + head) >>> 2;
  const last = base + words;
  let w = 0;
  // A double holds exact integers to 2^53: fold after each 2^20 words of up to 2^32 each. Two accumulators
  // let the additions overlap.
  for (let i = base; i < last; ) {
    const end = Math.min(last, i + 0x100000);
    let a = 0;
    let b = 0;
    for (; i + 7 < end; i += 8) {
      a += wide[i]! + wide[i + 1]! + wide[i + 2]! + wide[i + 3]!;
      b += wide[i + 4]! + wide[i + 5]! + wide[i + 6]! + wide[i + 7]!;
    }
    for (; i < end; i++) a += wide[i]!;
    w += fold(a + b);
  }
  w = fold(w);
  // The wide words started at an even offset of `data` when head is even; then their bytes were swapped.
  const swapped = (head & 1) === 0 ? ((w & 0xff) << 8) | (w >>> 8) : w;
  s += swapped;
  const tail = head + words * 4;
  // A tail that starts at an odd offset has its first byte in the low position.
  if ((tail & 1) === 0) s += sumBytes(data, tail, n);
  else if (tail < n) s += data[tail]! + sumBytes(data, tail + 1, n);
  return initial + s;
}

// Packets are mostly views of a few shared slabs (alloc.ts): one 32-bit view of the latest buffer serves them
// all, instead of a new view object per call.
let wideBuffer: ArrayBufferLike | null = null;
let wideWords: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

// A Uint32Array over `buffer` from byte 0 that reaches at least byte `end`.
function wideView(buffer: ArrayBufferLike, end: number): Uint32Array {
  if (buffer !== wideBuffer || wideWords.byteLength < end) {
    wideBuffer = buffer;
    wideWords = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
  }
  return wideWords;
}

// Sums data[from, to) as big-endian words starting with a high byte at `from`.
function sumBytes(data: Uint8Array, from: number, to: number): number {
  let s = 0;
  let i = from;
  for (; i + 7 < to; i += 8) {
    s +=
      ((data[i]! << 8) | data[i + 1]!) +
      ((data[i + 2]! << 8) | data[i + 3]!) +
      ((data[i + 4]! << 8) | data[i + 5]!) +
      ((data[i + 6]! << 8) | data[i + 7]!);
  }
  for (; i + 1 < to; i += 2) s += (data[i]! << 8) | data[i + 1]!;
  if (i < to) s += data[i]! << 8;
  return s;
}

// Folds any non-negative integer below 2^53 to 16 bits with end-around carry.
function fold(s: number): number {
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** Folds a partial sum to 16 bits without complementing it (the partial checksum of CHECKSUM_PARTIAL offloads). */
export function foldChecksum(sum: number): number {
  return fold(sum);
}

/** Folds a partial sum and complements it: the 16-bit value to store in a checksum field (RFC 1071 §1). */
export function finishChecksum(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/**
 * The partial sum of the IPv4 (RFC 768) or IPv6 (RFC 8200 §8.1) pseudo-header for an upper-layer packet of
 * `length` bytes; src and dst must be the same family.
 */
export function pseudoHeaderSum(src: Address, dst: Address, protocol: number, length: number): number {
  let s = 0;
  for (let i = 0; i < src.length; i += 2) s += ((src[i]! << 8) | src[i + 1]!) + ((dst[i]! << 8) | dst[i + 1]!);
  // IPv6 carries a 32-bit length; for IPv4 the high half is zero anyway.
  return s + protocol + (length >>> 16) + (length & 0xffff);
}

/**
 * The checksum after one 16-bit word of the covered data changed from oldWord to newWord, by RFC 1624 eqn. 3:
 * HC' = ~(~HC + ~m + m').
 */
export function updateChecksum16(oldChecksum: number, oldWord: number, newWord: number): number {
  return finishChecksum((~oldChecksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff));
}

/** Whether data, checksum field included, sums (with `initial`) to 0xffff after folding (RFC 1071 §1). */
export function verifies(data: Uint8Array, initial = 0): boolean {
  return fold(sum16(data, initial)) === 0xffff;
}
