import t from 'tap';
import * as seq from '../../netstack/seqnum.ts';

t.test('comparisons across the wrap', async (t) => {
  const cases: [number, number, boolean][] = [
    [0, 1, true],
    [1, 0, false],
    [0xffffffff, 0, true],
    [0xfffffff0, 0x10, true],
    [0x10, 0xfffffff0, false],
    [0, 0x7fffffff, true],
    [0x7fffffff, 0, false],
    [5, 5, false],
  ];
  for (const [a, b, lt] of cases) {
    t.equal(seq.lt(a, b), lt, `lt(${a.toString(16)}, ${b.toString(16)})`);
    t.equal(seq.gt(b, a), lt, `gt(${b.toString(16)}, ${a.toString(16)})`);
    t.equal(seq.ge(a, b), !lt, `ge(${a.toString(16)}, ${b.toString(16)})`);
  }
  t.ok(seq.le(5, 5));
  t.ok(seq.ge(5, 5));
  t.notOk(seq.le(6, 5));
});

t.test('add and sub wrap modulo 2^32', async (t) => {
  t.equal(seq.add(0xffffffff, 1), 0);
  t.equal(seq.add(0xfffffffe, 5), 3);
  t.equal(seq.add(3, -5), 0xfffffffe);
  t.equal(seq.sub(3, 0xfffffffe), 5);
  t.equal(seq.sub(0xfffffffe, 3), -5);
  t.equal(seq.sub(0x80000000, 0), -0x80000000);
});

t.test('inWindow is [start, start+size)', async (t) => {
  t.ok(seq.inWindow(0xfffffff0, 0xfffffff0, 1));
  t.notOk(seq.inWindow(0xfffffff1, 0xfffffff0, 1));
  t.ok(seq.inWindow(5, 0xfffffff0, 22));
  t.notOk(seq.inWindow(6, 0xfffffff0, 22));
  t.notOk(seq.inWindow(0xffffffef, 0xfffffff0, 22));
  t.notOk(seq.inWindow(7, 7, 0), 'empty window holds nothing');
  t.ok(seq.inRange(0, 0xffffffff, 1));
  t.notOk(seq.inRange(2, 0xffffffff, 1));
});

t.test('max and min', async (t) => {
  t.equal(seq.max(0xffffffff, 2), 2);
  t.equal(seq.min(0xffffffff, 2), 0xffffffff);
  t.equal(seq.max(7, 7), 7);
});
