import t from 'tap';
import { finishChecksum, pseudoHeaderSum, sum16 } from '../../../netstack/wire/checksum.ts';
import { Ipv4Packet } from '../../../netstack/wire/ipv4.ts';
import { Ipv6Packet } from '../../../netstack/wire/ipv6.ts';
import { walkIpv6 } from '../../../netstack/wire/ipv6ext.ts';
import { UDP_HEADER_LEN, UdpPacket, emitUdp, fillUdpChecksum, parseUdp, udpHeaderLength } from '../../../netstack/wire/udp.ts';
import { crafted, hex, linux, toHex } from './frames.ts';

interface Dgram {
  src: Uint8Array;
  dst: Uint8Array;
  udp: Uint8Array;
}
function v4(frame: Uint8Array, at = 14): Dgram {
  const ip = Ipv4Packet.check(frame.subarray(at));
  if (typeof ip === 'string') throw new Error(ip);
  return { src: ip.src, dst: ip.dst, udp: ip.payload };
}
function v6(frame: Uint8Array, at = 14): Dgram {
  const ip = Ipv6Packet.check(frame.subarray(at));
  if (typeof ip === 'string') throw new Error(ip);
  const w = walkIpv6(ip);
  if (typeof w === 'string') throw new Error(w);
  return { src: ip.src, dst: ip.dst, udp: ip.buffer.subarray(w.payloadOffset, 40 + ip.payloadLength) };
}

const cases: [string, Dgram, number, number, string][] = [
  ['linux IPv4 datagram', v4(linux[37]!), 40000, 9, 'hello-wire\n'],
  ['linux IPv6 datagram', v6(linux[39]!), 40000, 9, 'hello-wire6\n'],
  ['scapy IPv4 under 802.1Q', v4(crafted('vlan'), 18), 40000, 9, 'hello-wire'],
  ['scapy IPv6 under QinQ', v6(crafted('qinq'), 22), 40000, 9, 'hello-wire6'],
  ['scapy IPv4 with options', v4(crafted('ipv4-rr-ra')), 5000, 9, 'opts'],
  ['scapy IPv6 after hop-by-hop and destination options', v6(crafted('ipv6-hbh-dest')), 40000, 9, 'ext'],
];

for (const [name, d, sport, dport, text] of cases) {
  t.test(`${name}: check → fields; parse → emit + checksum → same bytes`, async (t) => {
    const p = UdpPacket.check(d.udp);
    if (typeof p === 'string') throw new Error(p);
    t.equal(p.srcPort, sport);
    t.equal(p.dstPort, dport);
    t.equal(p.length, 8 + text.length);
    t.equal(p.headerLength, 8);
    t.equal(Buffer.from(p.payload).toString(), text);
    t.ok(p.verifyChecksum(d.src, d.dst));
    const r = parseUdp(p, d.src, d.dst);
    if (typeof r === 'string') throw new Error(r);
    t.same(r, { srcPort: sport, dstPort: dport, payloadLength: text.length });
    t.equal(udpHeaderLength(r), UDP_HEADER_LEN);
    const out = new Uint8Array(8).fill(0xee);
    t.equal(emitUdp(r, out), 8);
    t.equal(toHex(out.subarray(0, 6)), toHex(d.udp.subarray(0, 6)));
    t.equal(toHex(out.subarray(6)), '0000');
    fillUdpChecksum(out, p.payload, d.src, d.dst);
    t.equal(toHex(out), toHex(d.udp.subarray(0, 8)));
    const whole = d.udp.slice(0, p.length);
    const q = new UdpPacket(whole);
    q.checksum = 0xbeef;
    q.fillChecksum(d.src, d.dst);
    t.equal(toHex(whole), toHex(d.udp.subarray(0, p.length)));
  });
}

t.test('check: every length below 8 → truncated; Length below 8 → bad-length; past the buffer → truncated', async (t) => {
  const udp = v4(linux[37]!).udp;
  for (let n = 0; n < 8; n++) t.equal(UdpPacket.check(udp.subarray(0, n)), 'truncated', `${n} bytes`);
  for (let len = 0; len < 8; len++) {
    const b = udp.slice();
    b[4] = 0;
    b[5] = len;
    t.equal(UdpPacket.check(b), 'bad-length', `Length ${len}`);
  }
  t.equal(UdpPacket.check(udp.subarray(0, 18)), 'truncated');
  t.type(UdpPacket.check(udp.subarray(0, 19)), UdpPacket);
});

t.test('payload is bounded by Length', async (t) => {
  const b = new Uint8Array(40);
  b.set(v4(linux[37]!).udp);
  const p = UdpPacket.check(b);
  if (typeof p === 'string') throw new Error(p);
  t.equal(p.payload.length, 11);
});

t.test('zero checksum → accepted over IPv4, zero-checksum over IPv6 (RFC 8200 §8.1)', async (t) => {
  const d4 = v4(linux[37]!);
  const b4 = d4.udp.slice();
  b4[6] = b4[7] = 0;
  t.match(parseUdp(new UdpPacket(b4), d4.src, d4.dst), { srcPort: 40000 });
  const d6 = v6(linux[39]!);
  const b6 = d6.udp.slice();
  b6[6] = b6[7] = 0;
  t.equal(parseUdp(new UdpPacket(b6), d6.src, d6.dst), 'zero-checksum');
});

t.test('corrupted payload → bad-checksum, unless checking is off', async (t) => {
  const d = v6(linux[39]!);
  const b = d.udp.slice();
  b[10] ^= 0x20;
  t.equal(parseUdp(new UdpPacket(b), d.src, d.dst), 'bad-checksum');
  t.match(parseUdp(new UdpPacket(b), d.src, d.dst, false), { dstPort: 9 });
});

t.test('a checksum that computes to 0 → sent as 0xffff and still verifies', async (t) => {
  const src = hex('c6120001');
  const dst = hex('c6120002');
  const b = new Uint8Array(10);
  emitUdp({ srcPort: 1, dstPort: 2, payloadLength: 2 }, b);
  // Choose the data word that makes the folded sum 0xffff.
  const s = sum16(b, pseudoHeaderSum(src, dst, 17, 10));
  const w = 0xffff - (~finishChecksum(s) & 0xffff);
  b[8] = w >>> 8;
  b[9] = w & 0xff;
  const p = new UdpPacket(b);
  p.fillChecksum(src, dst);
  t.equal(p.checksum, 0xffff);
  t.ok(p.verifyChecksum(src, dst));
  const h = b.slice(0, 8);
  fillUdpChecksum(h, b.subarray(8), src, dst);
  t.equal(toHex(h.subarray(6)), 'ffff');
});

t.test('setters → exact bytes', async (t) => {
  const p = new UdpPacket(new Uint8Array(8));
  p.srcPort = 40000;
  p.dstPort = 53;
  p.length = 8;
  p.checksum = 0x1234;
  t.equal(toHex(p.buffer), '9c40003500081234');
});
