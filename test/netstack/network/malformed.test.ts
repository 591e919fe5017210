import t from 'tap';
import { PROTO_UDP } from '../../../netstack/transport/protocol.ts';
import { BCAST, MAC_A, MAC_X, eth, eth4, eth6, ipv4, ipv6, udp } from './frames.ts';
import { A4, A6, X4, X6, Recorder, accounting, hex, ip, pattern, single } from './helpers.ts';

const seg = udp(1, 2, pattern(8));
const good4 = ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, seg);
const good6 = ipv6(X6, A6, PROTO_UDP, seg);
const edit = (b: Uint8Array, f: (c: Uint8Array) => void): Uint8Array => {
  const c = b.slice();
  f(c);
  return c;
};
const v4 = (p: Uint8Array, dst = MAC_A) => eth4(dst, MAC_X, p);
const v6 = (p: Uint8Array, dst = MAC_A) => eth6(dst, MAC_X, p);

const cases: [string, Uint8Array][] = [
  ['link.truncated', new Uint8Array(10)],
  ['link.vlanTagged', eth(MAC_A, MAC_X, 0x8100, new Uint8Array([0, 5, 0x08, 0x00, ...good4]))],
  ['link.notForUs', v4(good4, MAC_X)],
  ['link.notForUs', v4(good4, new Uint8Array([1, 0, 0x5e, 1, 2, 3]))],
  ['link.unknownEtherType', eth(MAC_A, MAC_X, 0x88cc, pattern(40))],
  ['link.unknownEtherType', eth(MAC_A, MAC_X, 0x0100, pattern(40))],
  ['ipv4.truncated', v4(good4.subarray(0, 19))],
  ['ipv4.badVersion', v4(edit(good4, (c) => (c[0] = 0x55)))],
  ['ipv4.badHeaderLength', v4(edit(good4, (c) => (c[0] = 0x44)))],
  ['ipv4.badTotalLength', v4(edit(good4, (c) => (c[3] = 10)))],
  ['ipv4.truncated', v4(edit(good4, (c) => (c[3] = 200)))],
  ['ipv4.badChecksum', v4(edit(good4, (c) => (c[10]! ^= 1)))],
  ['ipv4.badOptions', v4(ipv4({ src: X4, dst: A4, protocol: PROTO_UDP, options: new Uint8Array([7, 9, 4, 0]) }, seg))],
  ['ipv4.badSource', v4(ipv4({ src: ip('224.0.0.5'), dst: A4, protocol: PROTO_UDP }, seg))],
  ['ipv4.badSource', v4(ipv4({ src: A4, dst: A4, protocol: PROTO_UDP }, seg))],
  ['ipv4.badSource', v4(ipv4({ src: ip('127.0.0.1'), dst: A4, protocol: PROTO_UDP }, seg))],
  ['ipv4.notForUs', v4(ipv4({ src: X4, dst: ip('198.18.0.50'), protocol: PROTO_UDP }, seg))],
  ['ipv4.notForUs', v4(ipv4({ src: X4, dst: ip('127.0.0.1'), protocol: PROTO_UDP }, seg))],
  ['link.notForUs', v4(ipv4({ src: X4, dst: ip('224.1.2.3'), protocol: PROTO_UDP }, seg), new Uint8Array([1, 0, 0x5e, 1, 2, 3]))],
  ['ipv4.notForUs', v4(ipv4({ src: X4, dst: ip('224.1.2.3'), protocol: PROTO_UDP }, seg), new Uint8Array([1, 0, 0x5e, 0, 0, 1]))],
  ['ipv4.linkBroadcastUnicast', v4(good4, BCAST)],
  ['frag.badLength', v4(ipv4({ src: X4, dst: A4, protocol: PROTO_UDP, moreFragments: true }, pattern(12)))],
  ['ipv6.truncated', v6(good6.subarray(0, 39))],
  ['ipv6.badVersion', v6(edit(good6, (c) => (c[0] = 0x40)))],
  ['ipv6.truncated', v6(edit(good6, (c) => (c[5] = 200)))],
  ['ipv6.badSource', v6(ipv6(ip('ff02::1'), A6, PROTO_UDP, seg))],
  ['ipv6.badSource', v6(ipv6(ip('::1'), A6, PROTO_UDP, seg))],
  ['ipv6.notForUs', v6(ipv6(X6, ip('fd74:7376::50'), PROTO_UDP, seg))],
  ['link.notForUs', v6(ipv6(X6, ip('ff05::1234'), PROTO_UDP, seg), new Uint8Array([0x33, 0x33, 0, 0, 0x12, 0x34]))],
  ['ipv6.notForUs', v6(ipv6(X6, ip('ff05::1234'), PROTO_UDP, seg), new Uint8Array([0x33, 0x33, 0, 0, 0, 1]))],
  ['ipv6.truncatedExtension', v6(ipv6(X6, A6, 0, new Uint8Array([17, 1, 0, 0, 0, 0, 0, 0])))],
  ['ipv6.badHeaderField', v6(ipv6(X6, A6, 43, new Uint8Array([17, 0, 0, 2, 0, 0, 0, 0, ...seg])))],
  ['ipv6.unknownNextHeader', v6(ipv6(X6, A6, 60, new Uint8Array([0, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0, ...seg])))],
  ['ipv6.noNextHeader', v6(ipv6(X6, A6, 59, pattern(8)))],
];

t.test('malformed and misaddressed frames → dropped, each counted once under its reason, nothing delivered', (t) => {
  const { s, link } = single();
  const rec = new Recorder(PROTO_UDP);
  s.registerTransport(rec);
  for (const [reason, frame] of cases) {
    const before = s.stats.snapshot();
    link.deliver(frame);
    const after = s.stats.snapshot();
    t.equal((after[reason] ?? 0) - (before[reason] ?? 0), 1, reason);
    t.equal(after['rx.dropped']! - before['rx.dropped']!, 1, `${reason}: one drop in all`);
  }
  t.equal(rec.packets.length, 0);
  const acc = accounting(s);
  t.equal(acc.received, cases.length);
  t.equal(acc.delivered + acc.drops, acc.received);
  t.end();
});

t.test('IPv4 frame with Ethernet padding → payload cut at Total Length', (t) => {
  const { s, link } = single();
  const rec = new Recorder(PROTO_UDP);
  s.registerTransport(rec);
  const small = ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, new Uint8Array(0)));
  const padded = new Uint8Array(46);
  padded.set(small);
  link.deliver(v4(padded));
  t.equal(rec.packets.length, 1);
  t.equal(hex(rec.packets[0]!.segment), hex(udp(1, 2, new Uint8Array(0))));
  const padded6 = new Uint8Array(good6.length + 10);
  padded6.set(good6);
  link.deliver(v6(padded6));
  t.equal(hex(rec.packets[1]!.segment), hex(seg));
  t.end();
});
