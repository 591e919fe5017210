import t from 'tap';
import {
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_HEADER_LEN,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAMETER_PROBLEM,
  ICMPV6_PORT_UNREACHABLE,
  ICMPV6_TIME_EXCEEDED,
  Icmpv6Packet,
  emitIcmpv6,
  fillIcmpv6Checksum,
  icmpv6HeaderLength,
  isIcmpv6Error,
  parseIcmpv6,
} from '../../../netstack/wire/icmpv6.ts';
import { Ipv6Packet } from '../../../netstack/wire/ipv6.ts';
import { crafted, hex, linux, toHex } from './frames.ts';

function ip6(frame: Uint8Array): Ipv6Packet {
  const p = Ipv6Packet.check(frame.subarray(14));
  if (typeof p === 'string') throw new Error(p);
  return p;
}

const cases: [string, Uint8Array, number, number, object][] = [
  ['linux echo request', linux[18]!, ICMPV6_ECHO_REQUEST, 0, { kind: 'echo-request', identifier: 0x26ea, sequence: 1 }],
  ['linux echo reply', linux[19]!, ICMPV6_ECHO_REPLY, 0, { kind: 'echo-reply', identifier: 0x26ea, sequence: 1 }],
  ['linux port unreachable', linux[40]!, ICMPV6_DEST_UNREACHABLE, ICMPV6_PORT_UNREACHABLE, { kind: 'dest-unreachable', code: 4 }],
  ['scapy packet too big, MTU 1280', crafted('icmpv6-packet-too-big'), ICMPV6_PACKET_TOO_BIG, 0, { kind: 'packet-too-big', mtu: 1280 }],
  ['scapy time exceeded', crafted('icmpv6-time-exceeded'), ICMPV6_TIME_EXCEEDED, 0, { kind: 'time-exceeded', code: 0 }],
  ['scapy parameter problem, next header at 40', crafted('icmpv6-param-problem'), ICMPV6_PARAMETER_PROBLEM, 1, { kind: 'parameter-problem', code: 1, pointer: 40 }],
];

for (const [name, frame, type, code, want] of cases) {
  t.test(`${name}: check → fields; parse → emit + checksum → same bytes`, async (t) => {
    const ip = ip6(frame);
    const msg = ip.payload;
    const p = Icmpv6Packet.check(msg);
    if (typeof p === 'string') throw new Error(p);
    t.equal(p.type, type);
    t.equal(p.code, code);
    t.equal(p.headerLength, 8);
    t.ok(p.verifyChecksum(ip.src, ip.dst));
    t.notOk(p.verifyChecksum(ip.dst, hex('fd747376000000000000000000000009')), 'other pseudo-header fails');
    const r = parseIcmpv6(p, ip.src, ip.dst);
    if (typeof r === 'string') throw new Error(r);
    t.match(r, want);
    t.equal(toHex(r.data), toHex(msg.subarray(8)));
    t.equal(icmpv6HeaderLength(r), ICMPV6_HEADER_LEN);
    const out = new Uint8Array(8).fill(0xee);
    t.equal(emitIcmpv6(r, out), 8);
    fillIcmpv6Checksum(out, r.data, ip.src, ip.dst);
    t.equal(toHex(out), toHex(msg.subarray(0, 8)));
  });
}

t.test('invoking packet of a port unreachable → the UDP packet Linux got', async (t) => {
  const ip = ip6(linux[40]!);
  const r = parseIcmpv6(new Icmpv6Packet(ip.payload), ip.src, ip.dst);
  if (typeof r === 'string') throw new Error(r);
  t.equal(toHex(r.data), toHex(linux[39]!.subarray(14)));
});

t.test('check: every length below 8 → truncated', async (t) => {
  const msg = ip6(linux[18]!).payload;
  for (let n = 0; n < 8; n++) t.equal(Icmpv6Packet.check(msg.subarray(0, n)), 'truncated', `${n} bytes`);
});

t.test('parse: corrupted byte → bad-checksum; NDP and unknown types → unsupported-type; echo code 1 → bad-code', async (t) => {
  const ip = ip6(linux[18]!);
  const msg = ip.payload.slice();
  msg[30] ^= 1;
  t.equal(parseIcmpv6(new Icmpv6Packet(msg), ip.src, ip.dst), 'bad-checksum');
  const ns = ip6(linux[16]!);
  t.equal(parseIcmpv6(new Icmpv6Packet(ns.payload), ns.src, ns.dst), 'unsupported-type');
  const echo = new Icmpv6Packet(ip.payload.slice());
  echo.code = 1;
  echo.fillChecksum(ip.src, ip.dst);
  t.equal(parseIcmpv6(echo, ip.src, ip.dst), 'bad-code');
});

t.test('fillChecksum on the view → the checksum Linux computed', async (t) => {
  const ip = ip6(linux[19]!);
  const msg = ip.payload.slice();
  const p = new Icmpv6Packet(msg);
  const want = p.checksum;
  p.checksum = 0x1234;
  p.fillChecksum(ip.src, ip.dst);
  t.equal(p.checksum, want);
});

t.test('setters → exact bytes; isIcmpv6Error splits at 128', async (t) => {
  const p = new Icmpv6Packet(new Uint8Array(8));
  p.type = ICMPV6_PACKET_TOO_BIG;
  p.mtu = 1280;
  t.equal(toHex(p.buffer), '0200000000000500');
  p.pointer = 0x01020304;
  t.equal(p.pointer, 0x01020304);
  p.identifier = 7;
  p.sequence = 8;
  t.equal(toHex(p.buffer.subarray(4)), '00070008');
  t.ok(isIcmpv6Error(4));
  t.notOk(isIcmpv6Error(128));
});

t.test('emit every kind → exact 8-byte headers', async (t) => {
  const d = new Uint8Array(0);
  const table: [Parameters<typeof emitIcmpv6>[0], string][] = [
    [{ kind: 'echo-request', identifier: 1, sequence: 2, data: d }, '8000000000010002'],
    [{ kind: 'echo-reply', identifier: 1, sequence: 2, data: d }, '8100000000010002'],
    [{ kind: 'dest-unreachable', code: 1, data: d }, '0101000000000000'],
    [{ kind: 'packet-too-big', mtu: 1400, data: d }, '0200000000000578'],
    [{ kind: 'time-exceeded', code: 1, data: d }, '0301000000000000'],
    [{ kind: 'parameter-problem', code: 2, pointer: 42, data: d }, '040200000000002a'],
  ];
  for (const [r, want] of table) {
    const out = new Uint8Array(8).fill(0xee);
    emitIcmpv6(r, out);
    t.equal(toHex(out), want, r.kind);
  }
});
