import t from 'tap';
import { Reassembly } from '../../../../netstack/transport/tcp/reassembly.ts';

const bytes = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

/** Takes everything contiguous from `nxt` (the receiver's loop). */
function drain(r: Reassembly, nxt: number): Uint8Array {
  const parts: number[] = [];
  for (;;) {
    const d = r.takeFrom(nxt);
    if (d.length === 0) return Uint8Array.from(parts);
    parts.push(...d);
    nxt = (nxt + d.length) >>> 0;
  }
}

t.test('out-of-order ranges merge, overlap and fill across the 2^32 wrap', async (t) => {
  const base = 0xfffffff0;
  const r = new Reassembly();
  const at = (off: number) => (base + off) >>> 0;
  r.insert(at(20), bytes(20, 10));
  r.insert(at(40), bytes(40, 10));
  t.equal(r.count, 2);
  t.equal(r.length, 20);
  r.insert(at(25), bytes(25, 20)); // bridges both
  t.equal(r.count, 1);
  t.equal(r.length, 30);
  t.equal(r.takeFrom(at(0)).length, 0, 'hole before the range');
  t.same(drain(r, at(22)), bytes(22, 28), 'trimmed to rcv.nxt');
  t.equal(r.length, 0);
});

t.test('takeFrom drops ranges wholly below rcv.nxt', async (t) => {
  const r = new Reassembly();
  r.insert(100, bytes(100, 10));
  r.insert(200, bytes(200, 10));
  t.same(drain(r, 205), bytes(205, 5));
  t.equal(r.count, 0);
});

t.test('SACK blocks: most recently changed first (RFC 2018 §4)', async (t) => {
  const r = new Reassembly();
  r.insert(1000, bytes(0, 100));
  r.insert(3000, bytes(0, 100));
  r.insert(2000, bytes(0, 100));
  t.same(r.sackBlocks(4), [
    { left: 2000, right: 2100 },
    { left: 3000, right: 3100 },
    { left: 1000, right: 1100 },
  ]);
  r.insert(1100, bytes(0, 50));
  t.same(r.sackBlocks(2), [
    { left: 1000, right: 1150 },
    { left: 2000, right: 2100 },
  ]);
});

t.test('random overlapping inserts reassemble exactly (model check, across the wrap)', async (t) => {
  let x = 12345;
  const rnd = (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x % n;
  };
  for (let round = 0; round < 50; round++) {
    const base = (0xffffffff - rnd(5000)) >>> 0;
    const total = 2000 + rnd(3000);
    const src = bytes(round, total);
    const r = new Reassembly();
    const have = new Uint8Array(total);
    for (let k = 0; k < 40; k++) {
      const off = 1 + rnd(total - 1);
      const len = 1 + rnd(Math.min(300, total - off));
      r.insert((base + off) >>> 0, src.slice(off, off + len));
      have.fill(1, off, off + len);
    }
    const held = have.reduce((a, b) => a + b, 0);
    if (r.length !== held) t.fail(`round ${round}: holds ${r.length}, model ${held}`);
    // Fill [0, first gap) and drain: exactly the contiguous prefix comes out, byte-exact.
    r.insert(base, src.slice(0, 1));
    have[0] = 1;
    let nxt = (base + 1) >>> 0;
    const out: number[] = [src[0]!];
    for (;;) {
      const d = r.takeFrom(nxt);
      if (d.length === 0) break;
      out.push(...d);
      nxt = (nxt + d.length) >>> 0;
    }
    const prefix = have.indexOf(0) < 0 ? total : have.indexOf(0);
    if (out.length !== prefix || !src.subarray(0, prefix).every((b, i) => b === out[i])) {
      t.fail(`round ${round}: drained ${out.length}, expected ${prefix}`);
    }
  }
  t.pass('50 random rounds');
});

t.test('a long in-order run after a hole is stored piecewise (no quadratic merging)', async (t) => {
  const r = new Reassembly();
  const n = 20000;
  const chunk = bytes(0, 1000);
  const start = performance.now();
  // Merging into one array per insert would copy about 200 GB here; piecewise storage copies 20 MB.
  for (let i = 1; i <= n; i++) r.insert(i * 1000, chunk);
  t.equal(r.count, 1);
  t.equal(r.length, n * 1000);
  t.same(r.sackBlocks(1), [{ left: 1000, right: (n + 1) * 1000 }]);
  t.ok(performance.now() - start < 5000, `fast (${Math.round(performance.now() - start)} ms)`);
});
