/**
 * Seeded randomness for the stack. Protocol code never calls Math.random: anything random (ephemeral ports,
 * initial sequence numbers, impairment decisions) draws from an `Rng` so that a run is reproducible per seed.
 */

/**
 * One step of splitmix32: turns a running counter into a well-mixed 32-bit word, used to expand one seed into
 * xoshiro's 128-bit state (the seeding its authors recommend, so that similar seeds give unrelated streams).
 */
function splitmix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

const GOLDEN = 0x9e3779b9;
const TWO_32 = 0x1_0000_0000;

/** A deterministic pseudo-random generator (xoshiro128**, Blackman & Vigna 2018), not for secrets. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds the generator; any number is accepted and reduced to 32 bits, equal seeds give equal streams. */
  constructor(seed: number) {
    let c = (Number.isFinite(seed) ? Math.trunc(seed) : 0) >>> 0;
    c = (c + GOLDEN) >>> 0;
    this.s0 = splitmix32(c);
    c = (c + GOLDEN) >>> 0;
    this.s1 = splitmix32(c);
    c = (c + GOLDEN) >>> 0;
    this.s2 = splitmix32(c);
    c = (c + GOLDEN) >>> 0;
    this.s3 = splitmix32(c);
    // The all-zero state is xoshiro's one fixed point.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next uniformly distributed unsigned 32-bit integer. */
  next32(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** A uniform float in [0, 1) with 32 bits of precision. */
  nextFloat(): number {
    return this.next32() / TWO_32;
  }

  /** A uniform integer in [0, n), without modulo bias; `n` must be an integer in [1, 2^32]. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_32) throw new RangeError(`Rng.nextInt: bad bound ${n}`);
    // Reject the top partial block of 2^32 so that every residue is equally likely.
    const limit = TWO_32 - (TWO_32 % n);
    for (;;) {
      const x = this.next32();
      if (x < limit) return x % n;
    }
  }

  /** Fills `buf` with random bytes (each word's bytes in little-endian order). */
  fill(buf: Uint8Array): void {
    let i = 0;
    for (; i + 4 <= buf.length; i += 4) {
      const x = this.next32();
      buf[i] = x & 0xff;
      buf[i + 1] = (x >>> 8) & 0xff;
      buf[i + 2] = (x >>> 16) & 0xff;
      buf[i + 3] = x >>> 24;
    }
    if (i < buf.length) {
      let x = this.next32();
      for (; i < buf.length; i++, x >>>= 8) buf[i] = x & 0xff;
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
