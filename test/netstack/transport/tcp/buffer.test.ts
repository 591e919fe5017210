import t from 'tap';
import { ByteQueue } from '../../../../netstack/transport/tcp/buffer.ts';

// A plain array as the model: what copyOut, peek and consume must agree with.
function model(seed: number, steps: number): { q: ByteQueue; bytes: number[]; ok: boolean; where: string } {
  let x = seed;
  const rnd = (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  const q = new ByteQueue();
  let bytes: number[] = [];
  let next = 0;
  for (let s = 0; s < steps; s++) {
    const op = rnd(3);
    if (op === 0) {
      const n = rnd(40);
      const c = new Uint8Array(n).map(() => next++ & 0xff);
      q.push(c);
      bytes = bytes.concat([...c]);
    } else if (op === 1) {
      const off = rnd(bytes.length + 5);
      const len = rnd(70);
      const dst = new Uint8Array(len + 3).fill(0xee);
      const n = q.copyOut(off, len, dst, 3);
      const want = bytes.slice(off, off + len);
      if (n !== want.length || want.some((b, i) => dst[3 + i] !== b)) return { q, bytes, ok: false, where: `copyOut(${off}, ${len}) at step ${s}` };
    } else {
      const n = rnd(30);
      q.consume(n);
      bytes = bytes.slice(n);
    }
    if (q.length !== bytes.length) return { q, bytes, ok: false, where: `length at step ${s}` };
  }
  return { q, bytes, ok: true, where: '' };
}

t.test('random push, copyOut, consume → same bytes as a plain array', async (t) => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const r = model(seed, 3000);
    t.ok(r.ok, `seed ${seed}: ${r.where}`);
  }
});

t.test('copyOut at increasing offsets across chunks, then after consume → exact bytes', async (t) => {
  const q = new ByteQueue();
  for (let k = 0; k < 4; k++) q.push(new Uint8Array([k * 10, k * 10 + 1, k * 10 + 2]));
  const got = (off: number, len: number) => {
    const d = new Uint8Array(len);
    const n = q.copyOut(off, len, d, 0);
    return [...d.subarray(0, n)];
  };
  t.same(got(0, 2), [0, 1]);
  t.same(got(2, 3), [2, 10, 11]);
  t.same(got(7, 5), [21, 22, 30, 31, 32]);
  t.same(got(1, 1), [1]);
  q.consume(4);
  t.same(got(0, 3), [11, 12, 20]);
  t.same(got(5, 3), [30, 31, 32]);
  q.consume(5);
  t.same(got(0, 9), [30, 31, 32]);
  t.same(got(3, 1), []);
  q.clear();
  q.push(new Uint8Array([9]));
  t.same(got(0, 1), [9]);
});
