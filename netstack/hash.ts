/**
 * SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012): the keyed hash behind RFC 6528
 * initial sequence numbers, RFC 6056 ephemeral port selection and SYN cookies. 64-bit lanes are kept as pairs
 * of uint32 halves because JavaScript has no cheap 64-bit integer (BigInt would allocate on every step).
 */

// The output of the last hash: the four state lanes' xor, as its low and high 32 bits.
let outLo = 0;
let outHi = 0;

function le32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

/**
 * SipHash-2-4 of `data` under a 16-byte `key`; returns the 64-bit output as [low 32 bits, high 32 bits] of the
 * little-endian output word (so output byte 0 is `lo & 0xff`).
 */
export function siphash24(key: Uint8Array, data: Uint8Array): [lo: number, hi: number] {
  sipHashInto(key, data, data.length);
  return [outLo, outHi];
}

/**
 * SipHash-2-4 of the first `n` bytes of `data`; leaves the output in outLo/outHi. Each 64-bit lane is a pair of
 * int32 locals (l, h), so a hash touches no memory but its input: a round is the paper's (§2) add–rotate–xor
 * network written on the halves, an add carrying from the low half when it wrapped (unsigned sum below an addend),
 * a rotation by k < 32 moving bits across the halves, one by 32 swapping them.
 */
function sipHashInto(key: Uint8Array, data: Uint8Array, n: number): void {
  if (key.length !== 16) throw new RangeError(`siphash24: key must be 16 bytes, got ${key.length}`);
  const k0l = le32(key, 0);
  const k0h = le32(key, 4);
  const k1l = le32(key, 8);
  const k1h = le32(key, 12);
  // The initialisation constants spell "somepseudorandomlygeneratedbytes".
  let v0l = k0l ^ 0x70736575;
  let v0h = k0h ^ 0x736f6d65;
  let v1l = k1l ^ 0x6e646f6d;
  let v1h = k1h ^ 0x646f7261;
  let v2l = k0l ^ 0x6e657261;
  let v2h = k0h ^ 0x6c796765;
  let v3l = k1l ^ 0x79746573;
  let v3h = k1h ^ 0x74656462;

  const whole = n - (n % 8);
  // Message words, then the finalisation: a word is absorbed with 2 rounds, the end takes 4.
  for (let i = 0; ; i += 8) {
    let ml = 0;
    let mh = 0;
    let rounds = 2;
    if (i < whole) {
      ml = le32(data, i);
      mh = le32(data, i + 4);
    } else if (i === whole) {
      // The last word carries the 0–7 leftover bytes and the message length mod 256 in its top byte.
      mh = (n & 0xff) << 24;
      for (let j = whole; j < n; j++) {
        const shift = (j - whole) * 8;
        if (shift < 32) ml |= data[j]! << shift;
        else mh |= data[j]! << (shift - 32);
      }
    } else {
      v2l ^= 0xff;
      rounds = 4;
    }
    v3l ^= ml;
    v3h ^= mh;
    for (let r = 0; r < rounds; r++) {
      let t: number;
      let s: number;
      // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
      s = (v0l + v1l) | 0;
      v0h = (v0h + v1h + ((s >>> 0) < (v1l >>> 0) ? 1 : 0)) | 0;
      v0l = s;
      t = v1l;
      v1l = (t << 13) | (v1h >>> 19);
      v1h = (v1h << 13) | (t >>> 19);
      v1l ^= v0l;
      v1h ^= v0h;
      t = v0l;
      v0l = v0h;
      v0h = t;
      // v2 += v3; v3 <<<= 16; v3 ^= v2
      s = (v2l + v3l) | 0;
      v2h = (v2h + v3h + ((s >>> 0) < (v3l >>> 0) ? 1 : 0)) | 0;
      v2l = s;
      t = v3l;
      v3l = (t << 16) | (v3h >>> 16);
      v3h = (v3h << 16) | (t >>> 16);
      v3l ^= v2l;
      v3h ^= v2h;
      // v0 += v3; v3 <<<= 21; v3 ^= v0
      s = (v0l + v3l) | 0;
      v0h = (v0h + v3h + ((s >>> 0) < (v3l >>> 0) ? 1 : 0)) | 0;
      v0l = s;
      t = v3l;
      v3l = (t << 21) | (v3h >>> 11);
      v3h = (v3h << 21) | (t >>> 11);
      v3l ^= v0l;
      v3h ^= v0h;
      // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
      s = (v2l + v1l) | 0;
      v2h = (v2h + v1h + ((s >>> 0) < (v1l >>> 0) ? 1 : 0)) | 0;
      v2l = s;
      t = v1l;
      v1l = (t << 17) | (v1h >>> 15);
      v1h = (v1h << 17) | (t >>> 15);
      v1l ^= v2l;
      v1h ^= v2h;
      t = v2l;
      v2l = v2h;
      v2h = t;
    }
    if (i > whole) break;
    v0l ^= ml;
    v0h ^= mh;
  }
  outLo = (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
  outHi = (v0h ^ v1h ^ v2h ^ v3h) >>> 0;
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
      off = putWord(buf, off, p);
    } else {
      for (let i = 0; i < p.length; i++) buf[off + i] = p[i]!;
      off += p.length;
    }
  }
  sipHashInto(key, buf, len);
  return outLo;
}

/**
 * SipHash-2-4's low 32 bits of a message of two addresses between 32-bit words, `tag a w1 b w2 w3 w4` (each word
 * 4 big-endian bytes): keyedHash32(key, tag, a, w1, b, w2, w3, w4) without its argument array, for the hash a SYN
 * cookie takes per flood SYN.
 */
export function keyedHash32Pair(key: Uint8Array, tag: number, a: Uint8Array, w1: number, b: Uint8Array, w2: number, w3: number, w4: number): number {
  const len = 20 + a.length + b.length;
  if (len > scratch.length) scratch = new Uint8Array(len);
  const buf = scratch;
  let off = putWord(buf, 0, tag);
  buf.set(a, off);
  off = putWord(buf, off + a.length, w1);
  buf.set(b, off);
  off = putWord(buf, off + b.length, w2);
  off = putWord(buf, off, w3);
  putWord(buf, off, w4);
  sipHashInto(key, buf, len);
  return outLo;
}

function putWord(buf: Uint8Array, off: number, w: number): number {
  buf[off] = w >>> 24;
  buf[off + 1] = w >>> 16;
  buf[off + 2] = w >>> 8;
  buf[off + 3] = w;
  return off + 4;
}
