import t from 'tap';
import {
  ICMP_HEADER_LEN,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REPLY,
  ICMPV4_ECHO_REQUEST,
  ICMPV4_FRAG_NEEDED,
  ICMPV4_PARAMETER_PROBLEM,
  ICMPV4_PORT_UNREACHABLE,
  ICMPV4_REDIRECT,
  ICMPV4_TIME_EXCEEDED,
  Icmpv4Packet,
  emitIcmpv4,
  fillIcmpv4Checksum,
  icmpv4HeaderLength,
  parseIcmpv4,
} from '../../../netstack/wire/icmpv4.ts';
import { Ipv4Packet } from '../../../netstack/wire/ipv4.ts';
import { crafted, hex, linux, toHex } from './frames.ts';

// The ICMP message inside an Ethernet/IPv4 frame, bounded by the IP total length.
function icmp(frame: Uint8Array): Uint8Array {
  const ip = Ipv4Packet.check(frame.subarray(14));
  if (typeof ip === 'string') throw new Error(ip);
  return ip.payload;
}

const cases: [string, Uint8Array, number, number, object][] = [
  ['linux echo request', icmp(linux[14]!), ICMPV4_ECHO_REQUEST, 0, { kind: 'echo-request', identifier: 0x26e9, sequence: 1 }],
  ['linux echo reply', icmp(linux[15]!), ICMPV4_ECHO_REPLY, 0, { kind: 'echo-reply', identifier: 0x26e9, sequence: 1 }],
  ['linux echo reply with record route', icmp(linux[33]!), ICMPV4_ECHO_REPLY, 0, { kind: 'echo-reply', identifier: 0x26ed, sequence: 1 }],
  ['linux port unreachable', icmp(linux[38]!), ICMPV4_DEST_UNREACHABLE, ICMPV4_PORT_UNREACHABLE, { kind: 'dest-unreachable', code: 3, nextHopMtu: 0 }],
  ['scapy fragmentation needed, MTU 1400', icmp(crafted('icmpv4-frag-needed')), ICMPV4_DEST_UNREACHABLE, ICMPV4_FRAG_NEEDED, { kind: 'dest-unreachable', code: 4, nextHopMtu: 1400 }],
  ['scapy time exceeded', icmp(crafted('icmpv4-time-exceeded')), ICMPV4_TIME_EXCEEDED, 0, { kind: 'time-exceeded', code: 0 }],
  ['scapy parameter problem, pointer 20', icmp(crafted('icmpv4-param-problem')), ICMPV4_PARAMETER_PROBLEM, 0, { kind: 'parameter-problem', code: 0, pointer: 20 }],
  ['scapy host redirect', icmp(crafted('icmpv4-redirect')), ICMPV4_REDIRECT, 1, { kind: 'redirect', code: 1 }],
];

for (const [name, msg, type, code, want] of cases) {
  t.test(`${name}: check → fields; parse → emit + checksum → same bytes`, async (t) => {
    const p = Icmpv4Packet.check(msg);
    if (typeof p === 'string') throw new Error(p);
    t.equal(p.type, type);
    t.equal(p.code, code);
    t.equal(p.headerLength, 8);
    t.ok(p.verifyChecksum());
    t.equal(p.payload.byteOffset, msg.byteOffset + 8, 'payload is a view');
    const r = parseIcmpv4(p);
    if (typeof r === 'string') throw new Error(r);
    t.match(r, want);
    t.equal(toHex(r.data), toHex(msg.subarray(8)));
    t.equal(icmpv4HeaderLength(r), ICMP_HEADER_LEN);
    const out = new Uint8Array(8).fill(0xee);
    t.equal(emitIcmpv4(r, out), 8);
    t.equal(toHex(out.subarray(0, 2)), toHex(msg.subarray(0, 2)));
    fillIcmpv4Checksum(out, r.data);
    t.equal(toHex(out), toHex(msg.subarray(0, 8)));
  });
}

t.test('invoking packet of a port unreachable → the UDP datagram Linux got', async (t) => {
  const r = parseIcmpv4(new Icmpv4Packet(icmp(linux[38]!)));
  if (typeof r === 'string') throw new Error(r);
  t.equal(r.data.length, 39, 'whole original datagram (RFC 1812 allows more than 8 bytes)');
  t.equal(toHex(r.data), toHex(linux[37]!.subarray(14)));
});

t.test('redirect gateway → 198.18.0.254, copied', async (t) => {
  const msg = icmp(crafted('icmpv4-redirect'));
  const r = parseIcmpv4(new Icmpv4Packet(msg));
  if (typeof r === 'string' || r.kind !== 'redirect') throw new Error(String(r));
  msg.fill(0, 4, 8);
  t.equal(toHex(r.gateway), 'c61200fe');
});

t.test('check: every length below 8 → truncated', async (t) => {
  const msg = icmp(linux[14]!);
  for (let n = 0; n < 8; n++) t.equal(Icmpv4Packet.check(msg.subarray(0, n)), 'truncated', `${n} bytes`);
  t.type(Icmpv4Packet.check(msg.subarray(0, 8)), Icmpv4Packet);
});

t.test('parse: corrupted byte → bad-checksum; unknown type → unsupported-type; echo code 1 → bad-code', async (t) => {
  const msg = icmp(linux[14]!).slice();
  msg[20] ^= 0x10;
  t.equal(parseIcmpv4(new Icmpv4Packet(msg)), 'bad-checksum');
  t.match(parseIcmpv4(new Icmpv4Packet(msg), false), { kind: 'echo-request' });
  const ts = hex('0d00 0000 0001 0001 00000000 00000000 00000000'); // timestamp request
  new Icmpv4Packet(ts).fillChecksum();
  t.equal(parseIcmpv4(new Icmpv4Packet(ts)), 'unsupported-type');
  const echo = icmp(linux[14]!).slice();
  const p = new Icmpv4Packet(echo);
  p.code = 1;
  p.fillChecksum();
  t.equal(parseIcmpv4(p), 'bad-code');
});

t.test('setters and fillChecksum → a verifying message with the fields in place', async (t) => {
  const p = new Icmpv4Packet(new Uint8Array(12));
  p.type = ICMPV4_DEST_UNREACHABLE;
  p.code = ICMPV4_FRAG_NEEDED;
  p.nextHopMtu = 1280;
  p.fillChecksum();
  t.equal(toHex(p.buffer), '0304f7fb' + '00000500' + '00000000');
  t.ok(p.verifyChecksum());
  p.identifier = 0x1234;
  p.sequence = 0x5678;
  t.equal(toHex(p.buffer.subarray(4, 8)), '12345678');
  p.pointer = 9;
  t.equal(p.buffer[4], 9);
  p.gateway = hex('c6120001');
  t.equal(toHex(p.gateway), 'c6120001');
});

t.test('emit every kind → exact 8-byte headers', async (t) => {
  const d = new Uint8Array(0);
  const table: [Parameters<typeof emitIcmpv4>[0], string][] = [
    [{ kind: 'echo-request', identifier: 1, sequence: 2, data: d }, '0800000000010002'],
    [{ kind: 'echo-reply', identifier: 1, sequence: 2, data: d }, '0000000000010002'],
    [{ kind: 'dest-unreachable', code: 4, nextHopMtu: 1400, data: d }, '0304000000000578'],
    [{ kind: 'time-exceeded', code: 1, data: d }, '0b01000000000000'],
    [{ kind: 'parameter-problem', code: 0, pointer: 22, data: d }, '0c00000016000000'],
    [{ kind: 'redirect', code: 1, gateway: hex('c61200fe'), data: d }, '05010000c61200fe'],
  ];
  for (const [r, want] of table) {
    const out = new Uint8Array(8).fill(0xee);
    emitIcmpv4(r, out);
    t.equal(toHex(out), want, r.kind);
  }
});
