// PlacedList: add/delete in O(1) with each object's place kept on it; the last object fills a hole.
import t from 'tap';
import { PlacedList } from '../../netstack/placed-list.ts';

interface Item {
  name: string;
  at?: number;
}

t.test('add, delete from the middle and the end, re-add, drain', (t) => {
  const l = new PlacedList<Item, 'at'>('at');
  const [a, b, c] = ['a', 'b', 'c'].map((name) => ({ name }) as Item);
  l.add(a!);
  l.add(b!);
  l.add(c!);
  l.add(b!);
  t.equal(l.size, 3, 'adding one already in changes nothing');
  t.ok(l.delete(a!));
  t.equal(a!.at, -1);
  t.equal(c!.at, 0, 'the last took the hole');
  t.notOk(l.delete(a!), 'not in any more');
  t.notOk(l.delete({ name: 'stranger', at: 1 }), 'one claiming a place it does not hold');
  t.ok(l.delete(b!));
  t.equal(l.size, 1);
  l.add(a!);
  t.same(l.drain().map((x) => x.name), ['c', 'a']);
  t.equal(l.size, 0);
  t.same([a!.at, c!.at], [-1, -1], 'drained objects hold no place');
  t.end();
});

t.test('against a Set under random adds and deletes', (t) => {
  const l = new PlacedList<Item, 'at'>('at');
  const ref = new Set<Item>();
  const pool = Array.from({ length: 50 }, (_, i) => ({ name: String(i) }) as Item);
  let x = 12345;
  for (let step = 0; step < 5000; step++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const it = pool[x % pool.length]!;
    if ((x >>> 16) & 1) {
      l.add(it);
      ref.add(it);
    } else t.equal(l.delete(it), ref.delete(it));
  }
  t.equal(l.size, ref.size);
  t.same(new Set(l.drain()), ref);
  t.end();
});
