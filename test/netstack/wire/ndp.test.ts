import t from 'tap';
import { Ipv6Packet } from '../../../netstack/wire/ipv6.ts';
import {
  NDP_NEIGHBOR_ADVERT,
  NDP_NEIGHBOR_SOLICIT,
  NDP_REDIRECT,
  NDP_ROUTER_ADVERT,
  NDP_ROUTER_SOLICIT,
  NdpPacket,
  emitNdp,
  ndpHeaderLength,
  ndpOptions,
  parseNdp,
  type NdpRepr,
} from '../../../netstack/wire/ndp.ts';
import { crafted, hex, linux, toHex } from './frames.ts';

interface Msg {
  ip: Ipv6Packet;
  msg: Uint8Array;
}
function ndp(frame: Uint8Array): Msg {
  const ip = Ipv6Packet.check(frame.subarray(14));
  if (typeof ip === 'string') throw new Error(ip);
  return { ip, msg: ip.payload };
}
function parse(m: Msg, msg = m.msg): NdpRepr | string {
  const p = NdpPacket.check(msg);
  if (typeof p === 'string') return p;
  return parseNdp(p, m.ip.src, m.ip.dst, m.ip.hopLimit);
}
// Applies a change to a copy of the message and fixes its checksum, so only the change is tested.
function mutated(m: Msg, f: (b: Uint8Array) => void, src = m.ip.src, dst = m.ip.dst, hopLimit = m.ip.hopLimit): NdpRepr | string {
  const b = m.msg.slice();
  f(b);
  const p = NdpPacket.check(b);
  if (typeof p === 'string') return p;
  p.fillChecksum(src, dst);
  return parseNdp(p, src, dst, hopLimit);
}

const MA = '02005e00000a';
const MB = '02005e00000b';
const A6 = 'fd747376000000000000000000000001';
const B6 = 'fd747376000000000000000000000002';

const cases: [string, Uint8Array, number, object][] = [
  ['linux DAD probe with a nonce', linux[3]!, NDP_NEIGHBOR_SOLICIT, { kind: 'neighbor-solicit', sourceLinkLayer: undefined, nonce: hex('2ba58138a19c') }],
  ['linux router solicitation', linux[8]!, NDP_ROUTER_SOLICIT, { kind: 'router-solicit' }],
  ['linux neighbour solicitation', linux[16]!, NDP_NEIGHBOR_SOLICIT, { kind: 'neighbor-solicit' }],
  ['linux solicited advertisement', linux[17]!, NDP_NEIGHBOR_ADVERT, { kind: 'neighbor-advert', router: false, solicited: true, override: true }],
  ['scapy router solicitation', crafted('ndp-rs'), NDP_ROUTER_SOLICIT, { kind: 'router-solicit' }],
  ['scapy router advertisement', crafted('ndp-ra'), NDP_ROUTER_ADVERT, { kind: 'router-advert', curHopLimit: 64, managed: false, other: true, routerLifetime: 1800, reachableTime: 30000, retransTimer: 1000, mtu: 1500 }],
  ['scapy DAD probe', crafted('ndp-ns-dad'), NDP_NEIGHBOR_SOLICIT, { kind: 'neighbor-solicit' }],
  ['scapy unsolicited advertisement', crafted('ndp-na-unsolicited'), NDP_NEIGHBOR_ADVERT, { kind: 'neighbor-advert', router: false, solicited: false, override: true }],
  ['scapy redirect', crafted('ndp-redirect'), NDP_REDIRECT, { kind: 'redirect' }],
];

for (const [name, frame, type, want] of cases) {
  t.test(`${name}: check → parse → emit + checksum → same bytes`, async (t) => {
    const m = ndp(frame);
    const p = NdpPacket.check(m.msg);
    if (typeof p === 'string') throw new Error(p);
    t.equal(p.type, type);
    t.equal(p.code, 0);
    t.ok(p.verifyChecksum(m.ip.src, m.ip.dst));
    const r = parseNdp(p, m.ip.src, m.ip.dst, m.ip.hopLimit);
    if (typeof r === 'string') throw new Error(r);
    t.match(r, want);
    t.equal(ndpHeaderLength(r), m.msg.length);
    const out = new Uint8Array(m.msg.length + 2).fill(0xee);
    t.equal(emitNdp(r, out, 2), m.msg.length);
    const q = new NdpPacket(out.subarray(2));
    q.fillChecksum(m.ip.src, m.ip.dst);
    t.equal(toHex(out.subarray(2)), toHex(m.msg));
  });
}

t.test('field values: targets, link-layer addresses, prefix information', async (t) => {
  const ns = parse(ndp(linux[16]!));
  t.match(ns, { kind: 'neighbor-solicit' });
  if (typeof ns === 'string' || ns.kind !== 'neighbor-solicit') throw new Error(String(ns));
  t.equal(toHex(ns.target), B6);
  t.equal(toHex(ns.sourceLinkLayer!), MA);
  const na = parse(ndp(linux[17]!));
  if (typeof na === 'string' || na.kind !== 'neighbor-advert') throw new Error(String(na));
  t.equal(toHex(na.target), B6);
  t.equal(toHex(na.targetLinkLayer!), MB);
  const ra = parse(ndp(crafted('ndp-ra')));
  if (typeof ra === 'string' || ra.kind !== 'router-advert') throw new Error(String(ra));
  t.equal(toHex(ra.sourceLinkLayer!), MB);
  t.equal(ra.prefixes.length, 1);
  t.match(ra.prefixes[0], { prefixLength: 64, onLink: true, autonomous: true, validLifetime: 86400, preferredLifetime: 14400 });
  t.equal(toHex(ra.prefixes[0]!.prefix), 'fd747376000100000000000000000000');
  const rd = parse(ndp(crafted('ndp-redirect')));
  if (typeof rd === 'string' || rd.kind !== 'redirect') throw new Error(String(rd));
  t.equal(toHex(rd.target), 'fe8000000000000000005efffe00000c');
  t.equal(toHex(rd.destination), 'fd747376000200000000000000000009');
  t.equal(toHex(rd.targetLinkLayer!), '02005e00000c');
  t.equal(rd.redirectedHeader!.length, 48, 'IPv6 + UDP header of the redirected packet');
  t.equal(toHex(rd.redirectedHeader!.subarray(0, 1)), '60');
});

t.test('view getters: RA flags and timers, NA flags, redirect addresses', async (t) => {
  const ra = new NdpPacket(ndp(crafted('ndp-ra')).msg);
  t.match(ra, { curHopLimit: 64, managed: false, other: true, routerLifetime: 1800, reachableTime: 30000, retransTimer: 1000, headerLength: 16 });
  const na = new NdpPacket(ndp(linux[17]!).msg);
  t.match(na, { router: false, solicited: true, override: true, headerLength: 24 });
  const rd = new NdpPacket(ndp(crafted('ndp-redirect')).msg);
  t.equal(rd.headerLength, 40);
  t.equal(toHex(rd.destination), 'fd747376000200000000000000000009');
});

t.test('check: every length below each message minimum → truncated; other types → not-ndp', async (t) => {
  const mins: [Uint8Array, number][] = [
    [crafted('ndp-rs'), 8],
    [crafted('ndp-ra'), 16],
    [linux[16]!, 24],
    [linux[17]!, 24],
    [crafted('ndp-redirect'), 40],
  ];
  for (const [frame, min] of mins) {
    const msg = ndp(frame).msg;
    for (let n = 0; n < min; n++) t.equal(NdpPacket.check(msg.subarray(0, n)), 'truncated', `type ${msg[0]} ${n} bytes`);
    t.type(NdpPacket.check(msg.subarray(0, min)), NdpPacket);
  }
  t.equal(NdpPacket.check(ndp(linux[18]!).msg), 'not-ndp');
});

t.test('options iterator: zero length, overrun and wrong sizes → the whole packet is invalid', async (t) => {
  t.equal(ndpOptions(hex('0100 0000 0000 0000')), 'zero-length-option');
  t.equal(ndpOptions(hex('0101 02005e00000a 0100')), 'zero-length-option', 'zero-length after a good one');
  t.equal(ndpOptions(hex('0102 02005e00000a')), 'truncated-option');
  t.equal(ndpOptions(hex('0101 02005e00000a 01')), 'truncated-option', 'a lone type octet');
  t.equal(ndpOptions(hex('0502 0000 000005dc 0000000000000000')), 'bad-option-length', 'MTU of 16 bytes');
  t.equal(ndpOptions(hex('0303' + '00'.repeat(22))), 'bad-option-length', 'prefix info of 24 bytes');
  t.same(ndpOptions(hex('')), []);
  const u = ndpOptions(hex('1f01 aabbccddeeff'));
  t.match(u, [{ kind: 'unknown', type: 0x1f }]);
  t.equal(typeof u !== 'string' && u[0]!.kind === 'unknown' && toHex(u[0].data), 'aabbccddeeff');
  t.match(ndpOptions(hex('0501 0000 000005dc')), [{ kind: 'mtu', mtu: 1500 }]);
});

t.test('parse: RFC 4861 validity rules → drop reasons', async (t) => {
  const ns = ndp(linux[16]!);
  const nsDad = ndp(crafted('ndp-ns-dad'));
  const na = ndp(linux[17]!);
  const naMc = ndp(crafted('ndp-na-unsolicited'));
  const ra = ndp(crafted('ndp-ra'));
  const rs = ndp(crafted('ndp-rs'));
  const rd = ndp(crafted('ndp-redirect'));
  const mc = hex('ff020000000000000000000000000001');
  const table: [string, NdpRepr | string, string][] = [
    ['hop limit 254', mutated(ns, () => {}, ns.ip.src, ns.ip.dst, 254), 'bad-hop-limit'],
    ['code 1', mutated(ns, (b) => (b[1] = 1)), 'bad-code'],
    ['zero-length option', mutated(ns, (b) => (b[25] = 0)), 'zero-length-option'],
    ['NS multicast target', mutated(ns, (b) => b.set(mc, 8)), 'multicast-target'],
    ['DAD probe carrying a source link-layer address', mutated(ns, () => {}, nsDad.ip.src, nsDad.ip.dst), 'bad-dad-probe'],
    ['DAD probe to all-nodes', mutated(nsDad, () => {}, nsDad.ip.src, mc), 'bad-dad-probe'],
    ['NA multicast target', mutated(na, (b) => b.set(mc, 8)), 'multicast-target'],
    ['solicited NA to multicast', mutated(naMc, (b) => (b[4] |= 0x40)), 'solicited-to-multicast'],
    ['RA from a global address', mutated(ra, () => {}, hex(A6), ra.ip.dst), 'source-not-link-local'],
    ['RS from :: with a source link-layer address', mutated(rs, () => {}, new Uint8Array(16), rs.ip.dst), 'sll-from-unspecified'],
    ['redirect from a global address', mutated(rd, () => {}, hex(B6), rd.ip.dst), 'source-not-link-local'],
    ['redirect to a multicast destination', mutated(rd, (b) => b.set(mc, 24)), 'multicast-destination'],
    ['prefix option cut to 3 units', mutated(ra, (b) => (b[b.length - 31] = 3)), 'bad-option-length'],
  ];
  for (const [name, got, want] of table) t.equal(got, want, name);
  const bad = ns.msg.slice();
  bad[10] ^= 1;
  t.equal(parse(ns, bad), 'bad-checksum');
});

t.test('emit: a solicited NA without options → 24 exact bytes', async (t) => {
  const out = new Uint8Array(24).fill(0xee);
  const n = emitNdp({ kind: 'neighbor-advert', router: true, solicited: true, override: false, target: hex(B6) }, out);
  t.equal(n, 24);
  t.equal(toHex(out), '88000000c0000000' + B6);
});
