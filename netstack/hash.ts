/**
 * SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012): the keyed hash behind RFC 6528
 * initial sequence numbers, RFC 6056 ephemeral port selection and SYN cookies. 64-bit lanes are kept as pairs
 * of uint32 halves because JavaScript has no cheap 64-bit integer (BigInt would allocate on every step).
 */

// State lanes v0..v3, each as [lo, hi] at indexes 2i and 2i+1; a module scratch keeps hashing allocation-free.
const v = new Uint32Array(8);
const TWO_32 = 0x1_0000_0000;

/** Adds lane b into lane a modulo 2^64. */
function add(a: number, b: number): void {
  const lo = v[a]! + v[b]!;
  v[a] = lo;
  v[a + 1] = v[a + 1]! + v[b + 1]! + (lo >= TWO_32 ? 1 : 0);
}

/** Rotates lane a left by k bits, 0 < k < 32. */
function rotl(a: number, k: number): void {
  const lo = v[a]!;
  const hi = v[a + 1]!;
  v[a] = (lo << k) | (hi >>> (32 - k));
  v[a + 1] = (hi << k) | (lo >>> (32 - k));
}

/** Rotates lane a by 32 bits: swaps its halves. */
function swap(a: number): void {
  const lo = v[a]!;
  v[a] = v[a + 1]!;
  v[a + 1] = lo;
}

/** Xors lane b into lane a. */
function xor(a: number, b: number): void {
  v[a] ^= v[b]!;
  v[a + 1] ^= v[b + 1]!;
}

const V0 = 0;
const V1 = 2;
const V2 = 4;
const V3 = 6;

/** One SipRound (paper §2). */
function sipRound(): void {
  add(V0, V1);
  rotl(V1, 13);
  xor(V1, V0);
  swap(V0);
  add(V2, V3);
  rotl(V3, 16);
  xor(V3, V2);
  add(V0, V3);
  rotl(V3, 21);
  xor(V3, V0);
  add(V2, V1);
  rotl(V1, 17);
  xor(V1, V2);
  swap(V2);
}

function le32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

/** Absorbs one 64-bit message word m = (lo, hi) (paper §2, compression). */
function compress(lo: number, hi: number): void {
  v[V3] ^= lo;
  v[V3 + 1] ^= hi;
  sipRound();
  sipRound();
  v[V0] ^= lo;
  v[V0 + 1] ^= hi;
}

/**
 * SipHash-2-4 of `data` under a 16-byte `key`; returns the 64-bit output as [low 32 bits, high 32 bits] of the
 * little-endian output word (so output byte 0 is `lo & 0xff`).
 */
export function siphash24(key: Uint8Array, data: Uint8Array): [lo: number, hi: number] {
  sipHashInto(key, data, data.length);
  return [(v[0]! ^ v[2]! ^ v[4]! ^ v[6]!) >>> 0, (v[1]! ^ v[3]! ^ v[5]! ^ v[7]!) >>> 0];
}

/** SipHash-2-4 of the first `n` bytes of `data`, leaving the final state in `v` (the output is v0^v1^v2^v3). */
function sipHashInto(key: Uint8Array, data: Uint8Array, n: number): void {
  if (key.length !== 16) throw new RangeError(`siphash24: key must be 16 bytes, got ${key.length}`);
  const k0lo = le32(key, 0);
  const k0hi = le32(key, 4);
  const k1lo = le32(key, 8);
  const k1hi = le32(key, 12);
  // The initialisation constants spell "somepseudorandomlygeneratedbytes".
  v[0] = k0lo ^ 0x70736575;
  v[1] = k0hi ^ 0x736f6d65;
  v[2] = k1lo ^ 0x6e646f6d;
  v[3] = k1hi ^ 0x646f7261;
  v[4] = k0lo ^ 0x6e657261;
  v[5] = k0hi ^ 0x6c796765;
  v[6] = k1lo ^ 0x79746573;
  v[7] = k1hi ^ 0x74656462;

  const whole = n - (n % 8);
  for (let i = 0; i < whole; i += 8) compress(le32(data, i), le32(data, i + 4));

  // The last word carries the 0–7 leftover bytes and the message length mod 256 in its top byte.
  let lo = 0;
  let hi = (n & 0xff) << 24;
  for (let i = whole; i < n; i++) {
    const shift = (i - whole) * 8;
    if (shift < 32) lo |= data[i]! << shift;
    else hi |= data[i]! << (shift - 32);
  }
  compress(lo >>> 0, hi >>> 0);

  v[V2] ^= 0xff;
  sipRound();
  sipRound();
  sipRound();
  sipRound();
}

// keyedHash32's message, built in place: a SYN cookie or ISN is hashed per SYN, and an array of its own each time
// was garbage at flood rates. Grown for longer messages (never in practice: the longest part lists are 44 bytes).
let scratch = new Uint8Array(64);

/**
 * A 32-bit keyed hash of the concatenation of `parts` (numbers as 4 big-endian bytes of their uint32 value),
 * for RFC 6528 §3 ISNs, RFC 6056 §3.3.3 port offsets and SYN cookies; returns the low half of SipHash-2-4.
 */
export function keyedHash32(key: Uint8Array, ...parts: (Uint8Array | number)[]): number {
  let len = 0;
  for (const p of parts) len += typeof p === 'number' ? 4 : p.length;
  if (len > scratch.length) scratch = new Uint8Array(len);
  const buf = scratch;
  let off = 0;
  for (const p of parts) {
    if (typeof p === 'number') {
      const x = p >>> 0;
      buf[off] = x >>> 24;
      buf[off + 1] = (x >>> 16) & 0xff;
      buf[off + 2] = (x >>> 8) & 0xff;
      buf[off + 3] = x & 0xff;
      off += 4;
    } else {
      for (let i = 0; i < p.length; i++) buf[off + i] = p[i]!;
      off += p.length;
    }
  }
  sipHashInto(key, buf, len);
  return (v[0]! ^ v[2]! ^ v[4]! ^ v[6]!) >>> 0;
}
