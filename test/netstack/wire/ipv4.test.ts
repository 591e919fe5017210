import t from 'tap';
import {
  IPV4_HEADER_LEN,
  IPV4_OPT_ROUTER_ALERT,
  Ipv4Packet,
  emitIpv4,
  emitIpv4Basic,
  ipv4HeaderLength,
  ipv4Options,
  parseIpv4,
  type Ipv4Repr,
} from '../../../netstack/wire/ipv4.ts';
import { crafted, hex, linux, toHex } from './frames.ts';

function view(buf: Uint8Array): Ipv4Packet {
  const p = Ipv4Packet.check(buf);
  if (typeof p === 'string') throw new Error(p);
  return p;
}
function repr(p: Ipv4Packet): Ipv4Repr {
  const r = parseIpv4(p);
  if (typeof r === 'string') throw new Error(r);
  return r;
}

interface Case {
  name: string;
  ip: Uint8Array;
  hl: number;
  total: number;
  tos: number;
  id: number;
  df: boolean;
  mf: boolean;
  off: number;
  ttl: number;
  proto: number;
  src: string;
  dst: string;
}
const cases: Case[] = [
  { name: 'linux echo request', ip: linux[14]!.subarray(14), hl: 20, total: 84, tos: 0, id: 0xa3cf, df: true, mf: false, off: 0, ttl: 64, proto: 1, src: 'c6120001', dst: 'c6120002' },
  { name: 'linux first fragment', ip: linux[20]!.subarray(14), hl: 20, total: 1500, tos: 0, id: 0xa3d1, df: false, mf: true, off: 0, ttl: 64, proto: 1, src: 'c6120001', dst: 'c6120002' },
  { name: 'linux middle fragment', ip: linux[21]!.subarray(14), hl: 20, total: 1500, tos: 0, id: 0xa3d1, df: false, mf: true, off: 1480, ttl: 64, proto: 1, src: 'c6120001', dst: 'c6120002' },
  { name: 'linux last fragment', ip: linux[22]!.subarray(14), hl: 20, total: 68, tos: 0, id: 0xa3d1, df: false, mf: false, off: 2960, ttl: 64, proto: 1, src: 'c6120001', dst: 'c6120002' },
  { name: 'linux ping -R (record route)', ip: linux[32]!.subarray(14), hl: 60, total: 124, tos: 0, id: 0xa3d3, df: true, mf: false, off: 0, ttl: 64, proto: 1, src: 'c6120001', dst: 'c6120002' },
  { name: 'linux ping -R reply', ip: linux[33]!.subarray(14), hl: 60, total: 124, tos: 0, id: -1, df: false, mf: false, off: 0, ttl: 64, proto: 1, src: 'c6120002', dst: 'c6120001' },
  { name: 'linux ping -T tsonly', ip: linux[34]!.subarray(14), hl: 60, total: 124, tos: 0, id: 0xa3d4, df: true, mf: false, off: 0, ttl: 64, proto: 1, src: 'c6120001', dst: 'c6120002' },
  { name: 'linux UDP', ip: linux[37]!.subarray(14), hl: 20, total: 39, tos: 0, id: -1, df: true, mf: false, off: 0, ttl: 64, proto: 17, src: 'c6120001', dst: 'c6120002' },
  { name: 'linux ICMP port unreachable', ip: linux[38]!.subarray(14), hl: 20, total: 67, tos: 0xc0, id: 0x5971, df: false, mf: false, off: 0, ttl: 64, proto: 1, src: 'c6120002', dst: 'c6120001' },
  { name: 'scapy RR + router alert, tos 0xb9', ip: crafted('ipv4-rr-ra').subarray(14), hl: 36, total: 48, tos: 0xb9, id: 7, df: false, mf: false, off: 0, ttl: 64, proto: 17, src: 'c6120001', dst: 'c6120002' },
  { name: 'scapy NOP + LSRR + EOL, DF', ip: crafted('ipv4-lsrr').subarray(14), hl: 36, total: 48, tos: 0, id: 8, df: true, mf: false, off: 0, ttl: 64, proto: 17, src: 'c6120001', dst: 'c6120002' },
  { name: 'scapy under an 802.1Q tag', ip: crafted('vlan').subarray(18), hl: 20, total: 38, tos: 0, id: 0x1234, df: false, mf: false, off: 0, ttl: 64, proto: 17, src: 'c6120001', dst: 'c6120002' },
];

for (const c of cases) {
  t.test(`${c.name}: check → fields; parse → emit → same header bytes`, async (t) => {
    const p = view(c.ip);
    t.equal(p.version, 4);
    t.equal(p.headerLength, c.hl);
    t.equal(p.ihl, c.hl / 4);
    t.equal(p.totalLength, c.total);
    t.equal(p.tos, c.tos);
    t.equal(p.dscp, c.tos >> 2);
    t.equal(p.ecn, c.tos & 3);
    if (c.id >= 0) t.equal(p.identification, c.id);
    t.equal(p.dontFragment, c.df);
    t.equal(p.moreFragments, c.mf);
    t.equal(p.fragmentOffset, c.off);
    t.equal(p.isFragment, c.mf || c.off > 0);
    t.equal(p.ttl, c.ttl);
    t.equal(p.protocol, c.proto);
    t.equal(toHex(p.src), c.src);
    t.equal(toHex(p.dst), c.dst);
    t.equal(p.options.length, c.hl - 20);
    t.equal(p.payload.length, c.total - c.hl);
    t.ok(p.verifyChecksum());
    const r = repr(p);
    t.equal(ipv4HeaderLength(r), c.hl);
    const out = new Uint8Array(c.hl + 1).fill(0xee);
    t.equal(emitIpv4(r, out, 1), c.hl);
    t.equal(toHex(out.subarray(1)), toHex(c.ip.subarray(0, c.hl)));
  });
}

t.test('options of linux ping -R → NOP, then record-route with one recorded hop', async (t) => {
  const opts = [...ipv4Options(view(linux[32]!.subarray(14)).options)];
  t.equal(opts.length, 2);
  t.match(opts[0], { kind: 'nop', offset: 0 });
  const rr = opts[1]!;
  if (rr.kind !== 'record-route') throw new Error(rr.kind);
  t.equal(rr.offset, 1);
  t.equal(rr.pointer, 8);
  t.equal(rr.route.length, 36);
  t.equal(toHex(rr.route.subarray(0, 4)), 'c6120001');
});

t.test('options of linux ping -T tsonly → timestamp flag 0, pointer 9', async (t) => {
  const opts = [...ipv4Options(view(linux[34]!.subarray(14)).options)];
  t.match(opts[0], { kind: 'timestamp', type: 68, offset: 0, pointer: 9, overflow: 0, flag: 0 });
  t.equal(opts[0]!.kind === 'timestamp' && opts[0].data.length, 36);
});

t.test('options of scapy frames → RR, router alert, NOP, LSRR, unknown', async (t) => {
  const a = [...ipv4Options(view(crafted('ipv4-rr-ra').subarray(14)).options)];
  t.same(a.map((o) => o.kind), ['record-route', 'router-alert', 'eol']);
  t.match(a[1], { kind: 'router-alert', type: IPV4_OPT_ROUTER_ALERT, offset: 11, value: 0 });
  const b = [...ipv4Options(view(crafted('ipv4-lsrr').subarray(14)).options)];
  t.same(b.map((o) => o.kind), ['nop', 'lsrr', 'eol']);
  const lsrr = b[1]!;
  if (lsrr.kind !== 'lsrr') throw new Error(lsrr.kind);
  t.equal(lsrr.pointer, 4);
  t.equal(toHex(lsrr.route), 'c6120101c6120002');
  const c = [...ipv4Options(view(crafted('ipv4-unknown-opt').subarray(14)).options)];
  t.equal(c.length, 1);
  t.match(c[0], { kind: 'unknown', type: 0x9e, offset: 0 });
  t.equal(c[0]!.kind === 'unknown' && toHex(c[0].data), 'abcd');
});

t.test('malformed options → one malformed item with the offending offset, then the end', async (t) => {
  const table: [string, string, number, number, string][] = [
    ['type without length', '01 07', 1, 1, 'truncated'],
    ['length 1', '07 01 00 00', 1, 0, 'bad-length'],
    ['length overruns the area', '07 0b 04 00 00 00 00 00', 1, 0, 'bad-length'],
    ['RR length not 3 + 4n', '07 04 04 00', 1, 0, 'bad-length'],
    ['RR pointer below 4', '07 07 03 00 00 00 00 00', 2, 0, 'bad-pointer'],
    ['LSRR pointer 0', '01 83 07 00 00 00 00 00', 3, 1, 'bad-pointer'],
    ['timestamp length 3', '44 03 05 00', 1, 0, 'bad-length'],
    ['timestamp pointer 4', '44 08 04 00 00 00 00 00', 2, 0, 'bad-pointer'],
    ['router alert length 6', '94 06 00 00 00 00 00 00', 1, 0, 'bad-length'],
  ];
  for (const [name, bytes, offset, start, reason] of table) {
    const items = [...ipv4Options(hex(bytes))];
    const last = items[items.length - 1]!;
    t.match(last, { kind: 'malformed', offset, start, reason }, name);
  }
  t.same([...ipv4Options(hex('00 07 01'))].map((o) => o.kind), ['eol'], 'nothing after EOL is read');
  t.same([...ipv4Options(hex(''))], []);
});

t.test('check: every length below 20 → truncated', async (t) => {
  const ip = linux[14]!.subarray(14);
  for (let n = 0; n < IPV4_HEADER_LEN; n++) t.equal(Ipv4Packet.check(ip.subarray(0, n)), 'truncated', `${n} bytes`);
});

t.test('check: bad version, IHL and total length → reasons', async (t) => {
  const base = linux[14]!.subarray(14, 14 + 84);
  const with_ = (f: (b: Uint8Array) => void, len = 84) => {
    const b = base.slice(0, len);
    f(b);
    return Ipv4Packet.check(b);
  };
  t.equal(with_((b) => (b[0] = 0x65)), 'bad-version');
  t.equal(with_((b) => (b[0] = 0x05)), 'bad-version');
  for (let ihl = 0; ihl < 5; ihl++) t.equal(with_((b) => (b[0] = 0x40 | ihl)), 'bad-header-length', `ihl ${ihl}`);
  t.equal(with_((b) => (b[0] = 0x4f), 40), 'truncated', 'IHL 15 in a 40-byte buffer');
  t.equal(with_((b) => (b[3] = 19)), 'bad-total-length');
  t.equal(with_((b) => (b[3] = 85)), 'truncated', 'total length one past the buffer');
  t.equal(with_(() => {}, 83), 'truncated');
  t.type(with_((b) => (b[3] = 20)), Ipv4Packet, 'header-only datagram');
});

t.test('payload is bounded by total length, not by Ethernet padding', async (t) => {
  const padded = new Uint8Array(60);
  padded.set(linux[37]!.subarray(14));
  const p = view(padded);
  t.equal(p.payload.length, 19);
  t.equal(p.payload.byteOffset, padded.byteOffset + 20);
});

t.test('parse: a flipped header bit → bad-checksum, unless checksum checking is off', async (t) => {
  const ip = linux[14]!.slice(14);
  ip[8] = 63;
  t.equal(parseIpv4(view(ip)), 'bad-checksum');
  t.match(parseIpv4(view(ip), false), { ttl: 63 });
});

t.test('setters then fillChecksum → the bytes Linux sent', async (t) => {
  const p = new Ipv4Packet(new Uint8Array(20));
  p.version = 4;
  p.headerLength = 20;
  p.totalLength = 1500;
  p.identification = 0xa3d1;
  p.moreFragments = true;
  p.fragmentOffset = 1480;
  p.ttl = 64;
  p.protocol = 1;
  p.src = hex('c6120001');
  p.dst = hex('c6120002');
  p.fillChecksum();
  t.equal(toHex(p.buffer), toHex(linux[21]!.subarray(14, 34)));
  p.moreFragments = false;
  p.dontFragment = true;
  p.dscp = 46;
  p.ecn = 1;
  t.equal(toHex(p.buffer.subarray(0, 8)), '45b905dca3d140b9');
  p.fragmentOffset = 0;
  p.dontFragment = false;
  t.equal(toHex(p.buffer.subarray(6, 8)), '0000');
});

t.test('emit: options are padded with EOL to a 4-byte multiple', async (t) => {
  const out = new Uint8Array(24).fill(0xee);
  const r: Ipv4Repr = { src: hex('c6120001'), dst: hex('c6120002'), protocol: 17, ttl: 1, payloadLength: 0, options: hex('9404') };
  t.equal(ipv4HeaderLength(r), 24);
  t.equal(emitIpv4(r, out), 24);
  t.equal(toHex(out.subarray(0, 2)), '4600');
  t.equal(toHex(out.subarray(20)), '94040000');
  t.ok(view(out).verifyChecksum());
  t.throws(() => emitIpv4({ ...r, options: new Uint8Array(41) }, new Uint8Array(64)), RangeError);
});

t.test('emitIpv4Basic → the same 20 bytes as emitIpv4, at an offset, for a table of headers', async (t) => {
  const rows: [string, string, number, number, number, number, boolean, number][] = [
    // src, dst, protocol, ttl, tos, identification, DF, payload length
    ['c6120001', 'c6120002', 6, 64, 0, 0, true, 1460],
    ['c6120001', 'c6120002', 1, 64, 0, 0xa3d1, false, 1480],
    ['ffffffff', 'ffffffff', 17, 255, 0xff, 0xffff, true, 65515],
    ['00000000', '00000000', 0, 0, 0, 0, false, 0],
    ['c612fe7f', 'c6130080', 6, 1, 0xb9, 0x8000, true, 536],
    ['80808080', '7f7f7f7f', 6, 128, 2, 0x0001, false, 40000],
  ];
  for (const [src, dst, protocol, ttl, tos, ident, df, len] of rows) {
    const want = new Uint8Array(27).fill(0xee);
    emitIpv4(
      { src: hex(src), dst: hex(dst), protocol, ttl, dscp: tos >>> 2, ecn: tos & 3, identification: ident, dontFragment: df, payloadLength: len },
      want,
      7,
    );
    const got = new Uint8Array(27).fill(0xee);
    emitIpv4Basic(got, 7, hex(src), hex(dst), protocol, ttl, tos, ident, df, len);
    t.equal(toHex(got), toHex(want), `${src}→${dst} proto ${protocol} ttl ${ttl} tos ${tos} id ${ident} df ${df} len ${len}`);
  }
  const linuxFrag = new Uint8Array(20);
  emitIpv4Basic(linuxFrag, 0, hex('c6120001'), hex('c6120002'), 1, 64, 0, 0xa3d1, false, 1480);
  const sent = linux[21]!.subarray(14, 34);
  t.equal(toHex(linuxFrag.subarray(0, 6)), toHex(sent.subarray(0, 6)), 'version to identification as Linux sent them');
  t.equal(toHex(linuxFrag.subarray(8)), '4001' + '4528' + 'c6120001c6120002', 'TTL, protocol, the checksum without MF and offset, the addresses');
});
