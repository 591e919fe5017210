import t from 'tap';
import { IPV6_HEADER_LEN, Ipv6Packet, emitIpv6, ipv6HeaderLength, parseIpv6 } from '../../../netstack/wire/ipv6.ts';
import { crafted, hex, linux, toHex } from './frames.ts';

function view(buf: Uint8Array): Ipv6Packet {
  const p = Ipv6Packet.check(buf);
  if (typeof p === 'string') throw new Error(p);
  return p;
}

const A = 'fd747376000000000000000000000001';
const B = 'fd747376000000000000000000000002';
const cases = [
  { name: 'linux MLDv2 report from ::', ip: linux[1]!.subarray(14), tc: 0, flow: 0, plen: 56, nh: 0, hlim: 1, src: '00'.repeat(16), dst: 'ff020000000000000000000000000016' },
  { name: 'linux neighbour solicitation', ip: linux[16]!.subarray(14), tc: 0, flow: 0, plen: 32, nh: 58, hlim: 255, src: A, dst: 'ff0200000000000000000001ff000002' },
  { name: 'linux echo request with flow label', ip: linux[18]!.subarray(14), tc: 0, flow: 0xbfa28, plen: 64, nh: 58, hlim: 64, src: A, dst: B },
  { name: 'linux first fragment', ip: linux[26]!.subarray(14), tc: 0, flow: 0xbfa28, plen: 1456, nh: 44, hlim: 64, src: A, dst: B },
  { name: 'linux UDP', ip: linux[39]!.subarray(14), tc: 0, flow: 0x94003, plen: 20, nh: 17, hlim: 64, src: A, dst: B },
  { name: 'linux ICMPv6 port unreachable', ip: linux[40]!.subarray(14), tc: 0, flow: 0x70c54, plen: 68, nh: 58, hlim: 64, src: B, dst: A },
  { name: 'scapy under QinQ', ip: crafted('qinq').subarray(22), tc: 0, flow: 0, plen: 19, nh: 17, hlim: 64, src: A, dst: B },
];

for (const c of cases) {
  t.test(`${c.name}: check → fields; parse → emit → same header bytes`, async (t) => {
    const p = view(c.ip);
    t.equal(p.version, 6);
    t.equal(p.trafficClass, c.tc);
    t.equal(p.flowLabel, c.flow);
    t.equal(p.payloadLength, c.plen);
    t.equal(p.nextHeader, c.nh);
    t.equal(p.hopLimit, c.hlim);
    t.equal(toHex(p.src), c.src);
    t.equal(toHex(p.dst), c.dst);
    t.equal(p.headerLength, 40);
    t.equal(p.payload.length, c.plen);
    t.equal(p.payload.byteOffset, c.ip.byteOffset + 40);
    const r = parseIpv6(p);
    if (typeof r === 'string') throw new Error(r);
    t.equal(ipv6HeaderLength(r), 40);
    const out = new Uint8Array(41);
    t.equal(emitIpv6(r, out, 1), 40);
    t.equal(toHex(out.subarray(1)), toHex(c.ip.subarray(0, 40)));
  });
}

t.test('check: every length below 40 → truncated', async (t) => {
  const ip = linux[18]!.subarray(14);
  for (let n = 0; n < IPV6_HEADER_LEN; n++) t.equal(Ipv6Packet.check(ip.subarray(0, n)), 'truncated', `${n} bytes`);
});

t.test('check: version 4 or 0 → bad-version; payload length past the buffer → truncated', async (t) => {
  const ip = linux[18]!.slice(14);
  ip[0] = 0x40;
  t.equal(Ipv6Packet.check(ip), 'bad-version');
  ip[0] = 0x00;
  t.equal(Ipv6Packet.check(ip), 'bad-version');
  const ok = linux[18]!.subarray(14);
  t.equal(Ipv6Packet.check(ok.subarray(0, ok.length - 1)), 'truncated');
  t.type(Ipv6Packet.check(ok.subarray(0, 40 + 64)), Ipv6Packet);
});

t.test('payload is bounded by Payload Length, not by trailing bytes', async (t) => {
  const b = new Uint8Array(100);
  b.set(linux[39]!.subarray(14));
  t.equal(view(b).payload.length, 20);
});

t.test('setters → exact bytes; traffic class and flow label do not disturb each other', async (t) => {
  const p = new Ipv6Packet(new Uint8Array(40));
  p.version = 6;
  p.flowLabel = 0xfffff;
  p.trafficClass = 0xb9;
  t.equal(toHex(p.buffer.subarray(0, 4)), '6b9fffff');
  p.flowLabel = 0x12345;
  t.equal(p.trafficClass, 0xb9);
  t.equal(toHex(p.buffer.subarray(0, 4)), '6b912345');
  p.trafficClass = 0;
  t.equal(p.flowLabel, 0x12345);
  p.payloadLength = 0x1234;
  p.nextHeader = 17;
  p.hopLimit = 255;
  p.src = hex(A);
  p.dst = hex(B);
  t.equal(toHex(p.buffer), '60012345' + '123411ff' + A + B);
});
