import t from 'tap';
import { allocPacket } from '../../../netstack/wire/alloc.ts';
import { parseTcpOptions } from '../../../netstack/wire/tcp.ts';

t.test('allocPacket of packet sizes → zeroed, disjoint, exact length', async (t) => {
  const seen: Uint8Array[] = [];
  for (const n of [0, 1, 54, 1514, 9000, 16384]) {
    const a = allocPacket(n);
    t.equal(a.length, n, `length ${n}`);
    t.ok(a.every((b) => b === 0), `zeroed ${n}`);
    a.fill(0xab);
    seen.push(a);
  }
  // Earlier ranges are never handed out again: writing the new ones left the old ones intact.
  for (let i = 0; i < 200; i++) allocPacket(1514).fill(0xcd);
  for (const a of seen) t.ok(a.every((b) => b === 0xab), `still 0xab (${a.length})`);
});

t.test('allocPacket past a slab → new zeroed slab; over the pool limit → own buffer', async (t) => {
  const many = Array.from({ length: 300 }, () => allocPacket(1000));
  t.ok(many.every((a) => a.length === 1000 && a.every((b) => b === 0)));
  const big = allocPacket(65536 + 54);
  t.equal(big.byteOffset, 0);
  t.equal(big.buffer.byteLength, 65536 + 54);
});

t.test('parseTcpOptions NOP NOP TS (fast path) → same record as the general parser', async (t) => {
  const fast = new Uint8Array([1, 1, 8, 10, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xfe]);
  t.same(parseTcpOptions(fast), { tsVal: 7, tsEcr: 0xfffffffe });
  // The same option with a different padding layout takes the general path.
  const slow = new Uint8Array([8, 10, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xfe, 1, 0]);
  t.same(parseTcpOptions(slow), { tsVal: 7, tsEcr: 0xfffffffe });
  // A bad TS length in the 12-byte layout is still refused.
  t.equal(parseTcpOptions(new Uint8Array([1, 1, 8, 9, 0, 0, 0, 7, 0, 0, 0, 0])), 'bad-timestamp-option');
  t.same(parseTcpOptions(new Uint8Array(0)), {});
});
