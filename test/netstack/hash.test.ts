import t from 'tap';
import { keyedHash32, keyedHash32Pair, siphash24 } from '../../netstack/hash.ts';
import { Rng } from '../../netstack/rand.ts';

// The SipHash-2-4 reference vectors (siphash24.c / the paper's appendix): key 00..0f, message 00..(n-1) for
// n = 0..63, each written as the little-endian 64-bit output word.
const VECTORS = [
  '726fdb47dd0e0e31', '74f839c593dc67fd', '0d6c8009d9a94f5a', '85676696d7fb7e2d',
  'cf2794e0277187b7', '18765564cd99a68d', 'cbc9466e58fee3ce', 'ab0200f58b01d137',
  '93f5f5799a932462', '9e0082df0ba9e4b0', '7a5dbbc594ddb9f3', 'f4b32f46226bada7',
  '751e8fbc860ee5fb', '14ea5627c0843d90', 'f723ca908e7af2ee', 'a129ca6149be45e5',
  '3f2acc7f57c29bdb', '699ae9f52cbe4794', '4bc1b3f0968dd39c', 'bb6dc91da77961bd',
  'bed65cf21aa2ee98', 'd0f2cbb02e3b67c7', '93536795e3a33e88', 'a80c038ccd5ccec8',
  'b8ad50c6f649af94', 'bce192de8a85b8ea', '17d835b85bbb15f3', '2f2e6163076bcfad',
  'de4daaaca71dc9a5', 'a6a2506687956571', 'ad87a3535c49ef28', '32d892fad841c342',
  '7127512f72f27cce', 'a7f32346f95978e3', '12e0b01abb051238', '15e034d40fa197ae',
  '314dffbe0815a3b4', '027990f029623981', 'cadcd4e59ef40c4d', '9abfd8766a33735c',
  '0e3ea96b5304a7d0', 'ad0c42d6fc585992', '187306c89bc215a9', 'd4a60abcf3792b95',
  'f935451de4f21df2', 'a9538f0419755787', 'db9acddff56ca510', 'd06c98cd5c0975eb',
  'e612a3cb9ecba951', 'c766e62cfcadaf96', 'ee64435a9752fe72', 'a192d576b245165a',
  '0a8787bf8ecb74b2', '81b3e73d20b49b6f', '7fa8220ba3b2ecea', '245731c13ca42499',
  'b78dbfaf3a8d83bd', 'ea1ad565322a1a0b', '60e61c23a3795013', '6606d7e446282b93',
  '6ca4ecb15c5f91e1', '9f626da15c9625f3', 'e51b38608ef25f57', '958a324ceb064572',
];

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i);

/** The output's 8 bytes in the order the reference code stores them (little-endian). */
function outBytes([lo, hi]: [number, number]): number[] {
  return [lo, lo >>> 8, lo >>> 16, lo >>> 24, hi, hi >>> 8, hi >>> 16, hi >>> 24].map((b) => b & 0xff);
}

function vectorBytes(hex: string): number[] {
  const out: number[] = [];
  for (let i = 14; i >= 0; i -= 2) out.push(parseInt(hex.slice(i, i + 2), 16));
  return out;
}

t.test('siphash24 reference vectors, key 00..0f, message 00..(n-1) → byte-exact output', async (t) => {
  for (let n = 0; n < VECTORS.length; n++) {
    const msg = Uint8Array.from({ length: n }, (_, i) => i);
    t.same(outBytes(siphash24(KEY, msg)), vectorBytes(VECTORS[n]!), `n=${n}`);
  }
});

t.test('siphash24 returns uint32 halves', async (t) => {
  const [lo, hi] = siphash24(KEY, new Uint8Array(0));
  t.equal(lo, 0xdd0e0e31);
  t.equal(hi, 0x726fdb47);
});

t.test('siphash24 on a subarray view → same as on a copy', async (t) => {
  const big = Uint8Array.from({ length: 40 }, (_, i) => i);
  const view = big.subarray(3, 3 + 21);
  t.same(siphash24(KEY, view), siphash24(KEY, view.slice()));
});

t.test('siphash24 with a key that is not 16 bytes → throws', async (t) => {
  t.throws(() => siphash24(new Uint8Array(15), new Uint8Array(1)), RangeError);
});

t.test('keyedHash32 numbers are appended as 4 big-endian bytes', async (t) => {
  const bytes = new Uint8Array([1, 2, 3, 0xc6, 0x12, 0x00, 0x01, 0, 0, 0, 0x50, 0xff, 0xff, 0xff, 0xff]);
  const expected = siphash24(KEY, bytes)[0];
  t.equal(keyedHash32(KEY, new Uint8Array([1, 2, 3]), 0xc6120001, 0x0050, -1), expected);
  t.equal(keyedHash32(KEY, bytes), expected);
});

t.test('keyedHash32 with no parts → low half of the empty-message hash', async (t) => {
  t.equal(keyedHash32(KEY), 0xdd0e0e31);
});

t.test('keyedHash32 depends on the key and on every part', async (t) => {
  const other = KEY.slice();
  other[15] ^= 1;
  const a = keyedHash32(KEY, 1, 2, 3);
  t.not(keyedHash32(other, 1, 2, 3), a);
  t.not(keyedHash32(KEY, 1, 2, 4), a);
  t.not(keyedHash32(KEY, 1, 3, 2), a);
  t.ok(a >= 0 && a <= 0xffffffff && Number.isInteger(a));
});

t.test('keyedHash32 reuses its message buffer without leaking bytes between calls', async (t) => {
  const first = keyedHash32(KEY, 1, 2, 3);
  t.equal(keyedHash32(KEY, new Uint8Array(100).fill(0xab)), siphash24(KEY, new Uint8Array(100).fill(0xab))[0], 'a message longer than the buffer');
  t.equal(keyedHash32(KEY, 1, 2, 3), first, 'a shorter one after it hashes as before');
  t.equal(first, siphash24(KEY, Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3))[0]);
});

t.test('keyedHash32Pair → the same hash as keyedHash32 of the same parts, IPv4 and IPv6, 2,000 random inputs each', async (t) => {
  const rng = new Rng(13);
  const next = (): number => rng.next32();
  const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => next() & 0xff);
  const differ: string[] = [];
  for (const len of [4, 16]) {
    for (let i = 0; i < 2000; i++) {
      const key = bytes(16);
      const a = bytes(len);
      const b = bytes(len);
      const w = [next(), next() & 0xffff, next() & 0xffff, next(), next()];
      const want = keyedHash32(key, w[0]!, a, w[1]!, b, w[2]!, w[3]!, w[4]!);
      const got = keyedHash32Pair(key, w[0]!, a, w[1]!, b, w[2]!, w[3]!, w[4]!);
      if (got !== want) differ.push(`${len}-byte addresses, input ${i}: ${got} ≠ ${want}`);
    }
  }
  t.same(differ.slice(0, 5), [], `every input hashed alike (${differ.length} differed)`);
  // And it is a keyed hash of every part, not a constant.
  const k = bytes(16);
  const a = bytes(4);
  const b = bytes(4);
  t.not(keyedHash32Pair(k, 1, a, 2, b, 3, 4, 5), keyedHash32Pair(k, 1, a, 2, b, 3, 4, 6));
});
