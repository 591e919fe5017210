import t from 'tap';
import { Reassembly } from '../../../../netstack/transport/tcp/reassembly.ts';

const bytes = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

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
  t.same(r.takeFrom(at(22)), bytes(22, 28), 'trimmed to rcv.nxt');
  t.equal(r.length, 0);
});

t.test('takeFrom drops ranges wholly below rcv.nxt', async (t) => {
  const r = new Reassembly();
  r.insert(100, bytes(100, 10));
  r.insert(200, bytes(200, 10));
  t.same(r.takeFrom(205), bytes(205, 5));
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
