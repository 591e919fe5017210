import t from 'tap';
import { VirtualClock } from '../../../netstack/clock.ts';
import { FRAGMENT_OVERHEAD, Reassembler } from '../../../netstack/network/reassembly.ts';
import { pattern } from './helpers.ts';

function setup(memoryLimit = 1 << 20, maxFragments = 100) {
  const clock = new VirtualClock();
  const timeouts: (string | undefined)[] = [];
  let evicted = 0;
  const r = new Reassembler<string>(clock, { timeoutMs: 30_000, memoryLimit, maxFragments }, (m) => timeouts.push(m), () => evicted++);
  return { clock, r, timeouts, evicted: () => evicted };
}

const data = pattern(24);
const frag = (offset: number, len: number, more: boolean, key = 'k') => ({
  key,
  offset,
  data: data.subarray(offset, offset + len),
  more,
  maxLength: 65515,
  meta: offset === 0 ? `first-${key}` : undefined,
});

const orders: [string, number[]][] = [
  ['in order', [0, 1, 2]],
  ['reversed', [2, 1, 0]],
  ['last first', [2, 0, 1]],
];
for (const [name, order] of orders) {
  t.test(`three fragments ${name} → one payload, byte-exact, with the first fragment's meta`, (t) => {
    const { r } = setup();
    const parts = [frag(0, 8, true), frag(8, 8, true), frag(16, 8, false)];
    const results = order.map((i) => r.add(parts[i]!));
    t.same(results.slice(0, 2).map((x) => x.kind), ['queued', 'queued']);
    const last = results[2]!;
    t.equal(last.kind, 'complete');
    if (last.kind === 'complete') {
      t.same(last.payload, data);
      t.equal(last.meta, 'first-k');
    }
    t.equal(r.size, 0);
    t.equal(r.memory, 0, 'memory released');
    t.end();
  });
}

t.test('exact duplicate → ignored, datagram still completes', (t) => {
  const { r } = setup();
  r.add(frag(0, 8, true));
  const d = r.add(frag(0, 8, true));
  t.same(d, { kind: 'dropped', reason: 'duplicate' });
  r.add(frag(8, 8, true));
  t.equal(r.add(frag(16, 8, false)).kind, 'complete');
  t.end();
});

const overlaps: [string, ReturnType<typeof frag>][] = [
  ['partial overlap on the left', frag(4, 8, true)],
  ['contained', frag(0, 4, true)],
  ['same offset, other length', frag(0, 16, true)],
  ['same range, other bytes', { ...frag(0, 8, true), data: new Uint8Array(8) }],
];
for (const [name, f] of overlaps) {
  t.test(`${name} → whole datagram discarded (RFC 5722)`, (t) => {
    const { r } = setup();
    r.add(frag(0, 8, true));
    r.add(frag(16, 8, false));
    t.same(r.add(f), { kind: 'dropped', reason: 'overlap' });
    t.equal(r.size, 0);
    t.equal(r.memory, 0);
    t.equal(r.add(frag(8, 8, true)).kind, 'queued', 'a later fragment starts afresh');
    t.end();
  });
}

t.test('two last fragments disagreeing on the end → inconsistent; data beyond the end → inconsistent', (t) => {
  const { r } = setup();
  r.add(frag(16, 8, false));
  t.same(r.add(frag(8, 4, false)), { kind: 'dropped', reason: 'inconsistent' });
  r.add(frag(8, 8, false));
  t.same(r.add(frag(16, 8, true)), { kind: 'dropped', reason: 'inconsistent' });
  t.end();
});

t.test('fragment past the largest datagram → too-big; empty non-last fragment → empty', (t) => {
  const { r } = setup();
  t.same(r.add({ ...frag(0, 8, true), offset: 65512 }), { kind: 'dropped', reason: 'too-big' });
  t.same(r.add({ ...frag(0, 0, true), offset: 8 }), { kind: 'dropped', reason: 'empty' });
  t.end();
});

t.test('timeout → callback with the first fragment meta, or undefined without it', (t) => {
  const { r, clock, timeouts } = setup();
  r.add(frag(0, 8, true, 'a'));
  r.add(frag(8, 8, true, 'b'));
  clock.advance(29_999);
  t.same(timeouts, []);
  clock.advance(1);
  t.same(timeouts, ['first-a', undefined]);
  t.equal(r.size, 0);
  t.equal(r.memory, 0);
  t.end();
});

t.test('memory limit → oldest datagrams evicted first; a fragment larger than the limit → no-memory', (t) => {
  const cost = 8 + FRAGMENT_OVERHEAD;
  const { r, evicted } = setup(cost * 3);
  for (const k of ['a', 'b', 'c']) r.add(frag(0, 8, true, k));
  t.equal(r.size, 3);
  r.add(frag(0, 8, true, 'd'));
  t.equal(evicted(), 1);
  t.equal(r.size, 3);
  t.equal(r.add(frag(16, 8, false, 'a')).kind, 'queued', "'a' was evicted: its last fragment starts a new datagram");
  t.equal(evicted(), 2, "which evicts 'b'");
  t.ok(r.memory <= cost * 3);
  t.same(r.add({ ...frag(0, 8, true, 'z'), data: new Uint8Array(cost * 3) }), { kind: 'dropped', reason: 'no-memory' });
  t.end();
});

t.test('more fragments than allowed → datagram discarded', (t) => {
  const { r } = setup(1 << 20, 2);
  r.add(frag(0, 8, true));
  r.add(frag(8, 8, true));
  t.same(r.add(frag(16, 8, false)), { kind: 'dropped', reason: 'too-many-fragments' });
  t.equal(r.size, 0);
  t.end();
});
