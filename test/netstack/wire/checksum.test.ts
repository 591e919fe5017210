import t from 'tap';
import { parseAddress } from '../../../netstack/addr.ts';
import { finishChecksum, pseudoHeaderSum, sum16, updateChecksum16, verifies } from '../../../netstack/wire/checksum.ts';
import { hex, linux, rng } from './frames.ts';

// The obvious definition, to compare the fast path against.
function reference(data: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < data.length; i += 2) s += (data[i]! << 8) | (data[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}
function folded(s: number): number {
  return ~finishChecksum(s) & 0xffff;
}
const A = (s: string) => parseAddress(s)!;

t.test('RFC 1071 §3 numerical example → folded sum 0xddf2', async (t) => {
  const data = hex('0001 f203 f4f5 f6f7');
  t.equal(folded(sum16(data)), 0xddf2);
  t.equal(finishChecksum(sum16(data)), 0x220d);
});

t.test('odd length → last byte padded with zero', async (t) => {
  t.equal(sum16(hex('01')), 0x0100);
  t.equal(sum16(hex('0102 03')), 0x0102 + 0x0300);
  t.equal(sum16(new Uint8Array(0), 7), 7);
});

t.test('initial value chains even-length chunks', async (t) => {
  const data = hex('4500 0054 26e9 4000 4001 0000 c612 0001 c612 0002');
  t.equal(folded(sum16(data.subarray(8), sum16(data.subarray(0, 8)))), reference(data));
});

t.test('sum16 equals the reference at every alignment and length (wide path included)', async (t) => {
  const r = rng(1071);
  const backing = new Uint8Array(70_100);
  for (let i = 0; i < backing.length; i++) backing[i] = r() & 0xff;
  let bad = 0;
  for (let start = 0; start < 8; start++) {
    for (const len of [0, 1, 2, 3, 7, 63, 64, 65, 66, 67, 100, 255, 1500, 1501, 65535, 70_000]) {
      const d = backing.subarray(start, start + len);
      if (folded(sum16(d)) !== reference(d)) bad++;
    }
  }
  t.equal(bad, 0);
  const ones = new Uint8Array(70_000).fill(0xff);
  t.equal(folded(sum16(ones)), 0xffff, 'all-ones data sums to 0xffff without losing carries');
});

t.test('finishChecksum: a computed 0 stays 0, sum 0 becomes 0xffff', async (t) => {
  t.equal(finishChecksum(0xffff), 0);
  t.equal(finishChecksum(0x1fffe), 0);
  t.equal(finishChecksum(0), 0xffff);
  t.equal(finishChecksum(0x2ddf0), 0x220d);
});

t.test('RFC 1624 §4 example: eqn. 3 gives 0x0000 where eqn. 2 gave 0xffff', async (t) => {
  t.equal(updateChecksum16(0xdd2f, 0x5555, 0x3285), 0x0000);
});

t.test('RFC 1624 eqn. 3: decrementing the TTL of a captured IPv4 header', async (t) => {
  const ip = linux[14]!.slice(14, 34); // ICMP echo request 198.18.0.1 → 198.18.0.2, TTL 64
  const old = (ip[10]! << 8) | ip[11]!;
  const oldWord = (ip[8]! << 8) | ip[9]!;
  ip[8] = ip[8]! - 1;
  const inc = updateChecksum16(old, oldWord, (ip[8]! << 8) | ip[9]!);
  ip[10] = 0;
  ip[11] = 0;
  t.equal(inc, finishChecksum(sum16(ip)));
});

t.test('property: incremental update equals recomputation on random data', async (t) => {
  const r = rng(1624);
  let bad = 0;
  for (let trial = 0; trial < 2000; trial++) {
    const len = 2 * (1 + (r() % 40));
    const d = new Uint8Array(len);
    for (let i = 0; i < len; i++) d[i] = r() & 0xff;
    const before = finishChecksum(sum16(d));
    const w = 2 * (r() % (len / 2));
    const oldWord = (d[w]! << 8) | d[w + 1]!;
    const newWord = r() & 0xffff;
    d[w] = newWord >>> 8;
    d[w + 1] = newWord & 0xff;
    if (updateChecksum16(before, oldWord, newWord) !== finishChecksum(sum16(d))) bad++;
  }
  t.equal(bad, 0);
});

t.test('pseudoHeaderSum: IPv4 and IPv6 by hand', async (t) => {
  // 198.18.0.1 → 198.18.0.2, UDP, 19 bytes: c612 + 0001 + c612 + 0002 + 0011 + 0013.
  t.equal(pseudoHeaderSum(A('198.18.0.1'), A('198.18.0.2'), 17, 19), 0xc612 + 1 + 0xc612 + 2 + 17 + 19);
  // A 32-bit IPv6 length contributes both halves.
  const s = pseudoHeaderSum(A('fd74:7376::1'), A('fd74:7376::2'), 58, 0x12345);
  t.equal(s, 2 * (0xfd74 + 0x7376) + 1 + 2 + 58 + 0x1 + 0x2345);
});

t.test('verifies: captured IPv4 headers and UDP with pseudo-header', async (t) => {
  for (const n of [14, 15, 20, 21, 22, 32, 33, 37, 38]) t.ok(verifies(linux[n]!.subarray(14, 34 + (n === 32 || n === 33 ? 40 : 0))), `frame ${n}`);
  const udp = linux[37]!.subarray(34, 34 + 19);
  t.ok(verifies(udp, pseudoHeaderSum(A('198.18.0.1'), A('198.18.0.2'), 17, 19)));
  const broken = udp.slice();
  broken[9] = broken[9]! ^ 1;
  t.notOk(verifies(broken, pseudoHeaderSum(A('198.18.0.1'), A('198.18.0.2'), 17, 19)));
});
