import t from 'tap';
import { ByteQueue, pooledChunks } from '../../../../netstack/transport/tcp/buffer.ts';

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

// append (receive and send buffers): copies into the queue's own chunks, against the same array model, read with
// peek (views lent out, which must survive later appends) or by copy only (chunks go back to the shared pool),
// mixed with push, including arrivals larger than a chunk.
function appendModel(seed: number, steps: number, lend: boolean): string {
  let x = seed;
  const rnd = (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  const q = new ByteQueue();
  const bytes: number[] = [];
  let next = 0;
  const held: { view: Uint8Array; want: number[] }[] = [];
  for (let s = 0; s < steps; s++) {
    const op = rnd(4);
    if (op <= 1) {
      const n = rnd(10) === 0 ? 70_000 + rnd(5000) : rnd(3000);
      const src = new Uint8Array(n).map(() => next++ & 0xff);
      // Mostly appends; sometimes a whole array handed over (the receiver's out-of-order pieces).
      if (rnd(4) === 0) q.push(src);
      else {
        q.append(src);
        src.fill(0); // the caller may reuse its array
      }
      for (let i = 0; i < n; i++) bytes.push((next - n + i) & 0xff);
    } else if (op === 2) {
      const n = rnd(bytes.length + 1);
      if (lend) {
        const v = q.peek(n);
        held.push({ view: v, want: bytes.slice(0, n) });
      }
      q.consume(n);
      bytes.splice(0, n);
    } else {
      const off = rnd(bytes.length + 1);
      const len = rnd(bytes.length - off + 1);
      const out = new Uint8Array(len);
      q.copyOut(off, len, out, 0);
      for (let i = 0; i < len; i++) if (out[i] !== bytes[off + i]) return `step ${s}: copyOut byte ${off + i}`;
    }
    if (q.length !== bytes.length) return `step ${s}: length ${q.length} ≠ ${bytes.length}`;
  }
  for (const [i, h] of held.entries()) {
    for (let j = 0; j < h.want.length; j++) if (h.view[j] !== h.want[j]) return `peeked view ${i} changed at ${j}`;
  }
  return 'ok';
}

for (const lend of [true, false]) {
  t.test(`append, read ${lend ? 'through peek views' : 'by copy only'}: 300 random steps × 20 seeds agree with the array model`, (t) => {
    for (let seed = 1; seed <= 20; seed++) t.equal(appendModel(seed, 300, lend), 'ok', `seed ${seed}`);
    t.end();
  });
}

t.test('append: consecutive small arrivals share one view; a drained queue keeps no chunk', (t) => {
  const q = new ByteQueue();
  for (let i = 0; i < 10; i++) q.append(new Uint8Array(100).fill(i));
  const v = q.peek(1000);
  t.equal(v.length, 1000);
  t.equal(v.buffer.byteLength, 2048, 'one small chunk held the ten arrivals');
  t.same([...v.subarray(95, 105)], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
  q.consume(1000);
  q.append(new Uint8Array(70_000).fill(9));
  const w = q.peek(70_000);
  t.not(w.buffer, v.buffer, 'after draining, the next arrival gets a fresh chunk');
  t.equal(v[999], 9, 'the consumed view is intact');
  t.end();
});

t.test('append: drained after a 64 KB burst → the next burst lands in one chunk of the burst size; a small burst shrinks it back', (t) => {
  const q = new ByteQueue();
  const seg = (k: number) => new Uint8Array(1448).fill(k);
  const burst = (n: number) => {
    for (let i = 0; i < n; i++) q.append(seg(i));
    const v = q.peek(q.length);
    q.consume(v.length);
    return v;
  };
  const first = burst(45);
  t.equal(first.buffer.byteLength, first.length, 'the first burst regrew from the minimum in several chunks, so the read copied');
  const second = burst(45);
  t.equal(second.length, 45 * 1448);
  t.equal(second.buffer.byteLength, 65536, 'one chunk sized to the previous burst, read as a view');
  t.same([second[0], second[1447], second[1448], second[45 * 1448 - 1]], [0, 0, 1, 44]);
  burst(1);
  const small = burst(1);
  t.equal(small.buffer.byteLength, 2048, 'after a one-segment burst, chunks are small again');
  t.equal(second[45 * 1448 - 1], 44, 'views handed out earlier are intact');
  t.end();
});

// The shared chunk pool: chunks no view ever left are reused by any queue; a chunk `peek` lent never is.
t.test('pool: a drained queue read by copy gives its chunk back; another queue reuses it; a lent chunk never returns', (t) => {
  const fill = (q: ByteQueue, n: number, v: number) => q.append(new Uint8Array(n).fill(v));
  const drainByCopy = (q: ByteQueue) => {
    const out = new Uint8Array(q.length);
    q.copyOut(0, out.length, out, 0);
    q.consume(out.length);
    return out;
  };
  // Empty whatever earlier tests left in the pool: take chunks until allocation is fresh.
  const a = new ByteQueue();
  const b = new ByteQueue();
  fill(a, 65536, 1);
  const before = pooledChunks();
  t.same([...new Set(drainByCopy(a))], [1], 'copied out intact');
  t.equal(pooledChunks(), before + 1, 'the drained 64 KiB chunk went to the pool');
  fill(b, 65536, 2);
  t.equal(pooledChunks(), before, 'the next 64 KiB queue took it from the pool');
  const lent = b.peek(65536);
  b.consume(65536);
  t.equal(pooledChunks(), before, 'a chunk peek lent a view of is not given back');
  fill(a, 65536, 3);
  t.same([...new Set(lent)], [2], 'the lent view keeps its bytes while other queues take chunks');
  t.end();
});

t.test('share: the array itself is queued (no copy), read back exactly, and never given to the pool once drained', (t) => {
  const block = new Uint8Array(131072).fill(7); // a whole array of a pool size, from its start
  const q = new ByteQueue();
  q.share(block);
  q.share(block.subarray(1000, 5000));
  t.equal(q.length, 131072 + 4000);
  block[0] = 9; // the queue holds the array, not a copy of it (a keeper never does this)
  const out = new Uint8Array(q.length);
  q.copyOut(0, out.length, out, 0);
  t.equal(out[0], 9, 'the first byte is the array\'s own');
  t.same([...new Set(out.subarray(1))], [7]);
  block[0] = 7;
  const before = pooledChunks();
  q.consume(q.length);
  t.equal(pooledChunks(), before, 'the shared array did not go to the pool');
  const other = new ByteQueue();
  other.append(new Uint8Array(131072).fill(0xff));
  t.same([...new Set(block)], [7], 'another queue\'s bytes did not land in it');
  t.end();
});

t.test('borrow: lent views queued as they are; peek copies rather than lend one on; adopt copies only what is unread', (t) => {
  const lent = new Uint8Array(3000).fill(1);
  const q = new ByteQueue();
  t.equal(q.borrow(lent.subarray(0, 1000)), true, 'the first loan asks to be registered');
  t.equal(q.borrow(lent.subarray(1000, 3000)), false, 'later ones do not');
  q.append(new Uint8Array(100).fill(2));
  lent[0] = 5;
  const seen = q.peek(500);
  t.equal(seen[0], 5, 'the queue reads the lent memory itself');
  lent[1] = 6;
  t.equal(seen[1], 1, 'peek handed out a copy, not a view of the lent memory');
  q.consume(500);
  q.adopt();
  lent.fill(9); // the link reuses its memory
  const out = new Uint8Array(q.length);
  q.copyOut(0, out.length, out, 0);
  t.equal(out.length, 2600);
  t.same([...new Set(out.subarray(0, 2500))], [1], 'the unread rest of both loans, as it was');
  t.same([...new Set(out.subarray(2500))], [2], 'then the appended bytes');
  t.equal(q.borrow(lent.subarray(0, 10)), true, 'after adopt, a new loan asks again');
  t.end();
});

// Several queues at once against the array model, with views lent by peek and reads by copy mixed: the pool must
// never hand a queue memory that a held view (or another queue) still uses.
t.test('pool: 4 queues × 400 random steps × 10 seeds, lending and copying reads mixed → every byte and held view intact', (t) => {
  for (let seed = 1; seed <= 10; seed++) {
    let x = seed;
    const rnd = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return (x >>> 8) % n;
    };
    const qs = [0, 1, 2, 3].map((i) => ({ q: new ByteQueue(), bytes: [] as number[], next: i * 50 }));
    const held: { view: Uint8Array; want: number[] }[] = [];
    let bad = '';
    for (let s = 0; s < 400 && !bad; s++) {
      const m = qs[rnd(4)]!;
      const op = rnd(3);
      if (op === 0) {
        const n = rnd(3) === 0 ? 60_000 + rnd(140_000) : rnd(5000);
        const src = new Uint8Array(n).map(() => m.next++ & 0xff);
        m.q.append(src);
        src.fill(0);
        for (let i = 0; i < n; i++) m.bytes.push((m.next - n + i) & 0xff);
      } else {
        const n = rnd(m.bytes.length + 1);
        if (op === 1 && m !== qs[3]) {
          held.push({ view: m.q.peek(n), want: m.bytes.slice(0, n) });
        } else {
          const out = new Uint8Array(n);
          m.q.copyOut(0, n, out, 0);
          for (let i = 0; i < n && !bad; i++) if (out[i] !== m.bytes[i]) bad = `seed ${seed} step ${s}: byte ${i}`;
        }
        m.q.consume(n);
        m.bytes.splice(0, n);
      }
    }
    for (const [i, h] of held.entries()) {
      for (let j = 0; j < h.want.length && !bad; j++) if (h.view[j] !== h.want[j]) bad = `seed ${seed}: held view ${i} changed at ${j}`;
    }
    t.equal(bad, '', `seed ${seed}`);
  }
  t.end();
});

t.test('gather: views of any range across chunks, in order, equal to copyOut; 0 past max views, past the end, or over a loan', (t) => {
  const q = new ByteQueue();
  const parts = [new Uint8Array(3000).map((_, i) => i & 0xff), new Uint8Array(500).fill(9), new Uint8Array(5000).map((_, i) => (i * 7) & 0xff)];
  for (const p of parts) q.share(p);
  q.consume(100);
  const total = 8500 - 100;
  for (const [off, len] of [[0, total], [10, 2890], [2890, 10], [2899, 600], [0, 1], [total - 1, 1]] as const) {
    const views: Uint8Array[] = [];
    const n = q.gather(off, len, views, 8);
    const want = new Uint8Array(len);
    q.copyOut(off, len, want, 0);
    const got = Buffer.concat(views.slice(0, n));
    t.ok(n > 0 && got.equals(want), `gather(${off}, ${len}) in ${n} views`);
    t.ok(views.slice(0, n).every((v) => parts.some((p) => p.buffer === v.buffer)), 'views of the queued arrays, no copies');
  }
  t.equal(q.gather(0, total, [], 2), 0, 'three views wanted, two allowed');
  t.equal(q.gather(1, total, [], 8), 0, 'past the end');
  const b = new ByteQueue();
  b.append(new Uint8Array(4000));
  b.borrow(new Uint8Array(100));
  t.equal(b.gather(0, 100, [], 8), 0, 'a queue holding a loan copies');
  t.end();
});

t.test('hold: chunks drained while held are parked, not pooled; the last release pools them', (t) => {
  const q = new ByteQueue();
  q.append(new Uint8Array(30000).fill(1));
  const views: Uint8Array[] = [];
  q.gather(0, 30000, views, 8);
  const pooled = pooledChunks();
  q.hold();
  q.hold();
  q.consume(30000);
  t.equal(pooledChunks(), pooled, 'drained while held: the chunk waits');
  const other = new ByteQueue();
  other.append(new Uint8Array(30000).fill(2));
  const otherViews: Uint8Array[] = [];
  other.gather(0, 30000, otherViews, 8);
  t.not(otherViews[0]!.buffer, views[0]!.buffer, 'another queue gets another chunk');
  t.ok(views[0]!.every((b) => b === 1), 'the held bytes unchanged');
  q.release();
  t.equal(pooledChunks(), pooled, 'one hold left');
  q.release();
  t.equal(pooledChunks(), pooled + 1, 'the last release pools it');
  t.end();
});
