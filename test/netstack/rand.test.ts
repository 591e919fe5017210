import t from 'tap';
import { Rng } from '../../netstack/rand.ts';

// Computed once with an independent C build of xoshiro128** (the authors' reference step) seeded through
// splitmix32 on seed + k·0x9e3779b9, k = 1..4.
const FIXED: [number, number[]][] = [
  [0, [0xe308dc58, 0x4392d0e4, 0x03318f97, 0xac593a63, 0x08535f0a, 0x83532d1f, 0x063f9b44, 0x5e9c32a6]],
  [1, [0x9190299e, 0xc1017b27, 0xe3af522f, 0x7d71fb05, 0x787816c2, 0xfbbe0c00, 0x5a5c175a, 0x89063de1]],
  [42, [0xa91e1cac, 0x207b36e9, 0x1c987ffa, 0xd09fde9e, 0x14404494, 0x06bee32a, 0x03e4c0b2, 0x424bc820]],
  [0xffffffff, [0x31d28326, 0x728481f8, 0x8c70d5d1, 0x7066baf4, 0x3a707f2c, 0x3ed16aa6, 0xdb308f61, 0x92e32daa]],
];

t.test('next32 with a fixed seed → the precomputed stream', async (t) => {
  for (const [seed, want] of FIXED) {
    const r = new Rng(seed);
    t.same(Array.from(want, () => r.next32()), want, `seed ${seed}`);
  }
});

t.test('seed -1 is reduced to 32 bits → same stream as 0xffffffff', async (t) => {
  const r = new Rng(-1);
  t.equal(r.next32(), 0x31d28326);
});

t.test('equal seeds → equal streams; different seeds → different streams', async (t) => {
  const a = new Rng(7);
  const b = new Rng(7);
  const c = new Rng(8);
  const sa = Array.from({ length: 100 }, () => a.next32());
  t.same(Array.from({ length: 100 }, () => b.next32()), sa);
  t.not(Array.from({ length: 100 }, () => c.next32()).join(), sa.join());
});

t.test('fill → bytes of successive words, little-endian, tail from one more word', async (t) => {
  const buf = new Uint8Array(7);
  new Rng(0).fill(buf);
  t.same(Array.from(buf), [0x58, 0xdc, 0x08, 0xe3, 0xe4, 0xd0, 0x92]);
  const r = new Rng(0);
  r.fill(new Uint8Array(5));
  t.equal(r.next32(), 0x03318f97, 'a partial tail consumes a whole word');
});

t.test('nextFloat → in [0,1), mean about 1/2', async (t) => {
  const r = new Rng(123);
  const n = 100_000;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const f = r.nextFloat();
    if (!(f >= 0 && f < 1)) t.fail(`out of range: ${f}`);
    sum += f;
  }
  // The mean of n uniforms has standard deviation 1/sqrt(12n) ≈ 0.0009; allow 5 sigma.
  t.ok(Math.abs(sum / n - 0.5) < 0.0046, `mean ${sum / n}`);
});

t.test('nextInt(10) over 100k draws → chi-square within bounds', async (t) => {
  const r = new Rng(99);
  const k = 10;
  const n = 100_000;
  const counts = new Array<number>(k).fill(0);
  for (let i = 0; i < n; i++) counts[r.nextInt(k)]!++;
  const e = n / k;
  const chi2 = counts.reduce((s, c) => s + ((c - e) * (c - e)) / e, 0);
  // 9 degrees of freedom: P(chi2 > 27.9) ≈ 0.001.
  t.ok(chi2 < 27.9, `chi2 ${chi2.toFixed(2)} counts ${counts.join(',')}`);
});

t.test('next32 bits → each bit set about half the time', async (t) => {
  const r = new Rng(5);
  const n = 20_000;
  const ones = new Array<number>(32).fill(0);
  for (let i = 0; i < n; i++) {
    const x = r.next32();
    for (let b = 0; b < 32; b++) if ((x >>> b) & 1) ones[b]!++;
  }
  // Binomial sd = sqrt(n)/2 ≈ 71; allow 5 sigma.
  for (let b = 0; b < 32; b++) t.ok(Math.abs(ones[b]! - n / 2) < 355, `bit ${b}: ${ones[b]}`);
});

t.test('nextInt edge bounds', async (t) => {
  const r = new Rng(1);
  for (let i = 0; i < 100; i++) t.equal(r.nextInt(1), 0);
  const big = r.nextInt(2 ** 32);
  t.ok(big >= 0 && big < 2 ** 32);
  t.throws(() => r.nextInt(0), RangeError);
  t.throws(() => r.nextInt(1.5), RangeError);
  t.throws(() => r.nextInt(2 ** 32 + 1), RangeError);
});
