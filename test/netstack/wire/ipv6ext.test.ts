import t from 'tap';
import { Ipv6Packet, emitIpv6 } from '../../../netstack/wire/ipv6.ts';
import {
  IPV6_OPT_PAD1,
  IPV6_OPT_PADN,
  IPV6_OPT_ROUTER_ALERT,
  Ipv6FragmentHeader,
  Ipv6OptionsHeader,
  Ipv6RoutingHeader,
  emitIpv6FragmentHeader,
  emitIpv6RouterAlertHeader,
  ipv6Options,
  parseIpv6FragmentHeader,
  walkIpv6,
} from '../../../netstack/wire/ipv6ext.ts';
import { crafted, hex, linux, toHex } from './frames.ts';

function ip6(frame: Uint8Array, at = 14): Ipv6Packet {
  const p = Ipv6Packet.check(frame.subarray(at));
  if (typeof p === 'string') throw new Error(p);
  return p;
}

const walks: [string, Uint8Array, object][] = [
  ['linux MLDv2 report (hop-by-hop router alert)', linux[1]!, { protocol: 58, payloadOffset: 48, hopByHop: { headerOffset: 40, routerAlert: 0 } }],
  ['linux echo request (no extension headers)', linux[18]!, { protocol: 58, payloadOffset: 40 }],
  ['linux first fragment', linux[26]!, { protocol: 58, payloadOffset: 48, fragment: { offset: 0, more: true, identification: 0xc9e5ba21, headerOffset: 40 } }],
  ['linux middle fragment', linux[27]!, { protocol: 58, payloadOffset: 48, fragment: { offset: 1448, more: true, identification: 0xc9e5ba21, headerOffset: 40 } }],
  ['linux last fragment', linux[28]!, { protocol: 58, payloadOffset: 48, fragment: { offset: 2896, more: false, identification: 0xc9e5ba21, headerOffset: 40 } }],
  ['scapy hop-by-hop + destination options with a skippable option', crafted('ipv6-hbh-dest'), { protocol: 17, payloadOffset: 56, hopByHop: { headerOffset: 40, routerAlert: 0 } }],
  ['scapy routing type 0, segments left 0', crafted('ipv6-routing-0'), { protocol: 17, payloadOffset: 64, routing: { type: 0, segmentsLeft: 0 } }],
  ['scapy routing type 0, segments left 1', crafted('ipv6-routing-1'), { routing: { type: 0, segmentsLeft: 1 }, problem: { code: 0, pointer: 42, icmp: true, icmpIfMulticast: false } }],
  ['scapy unknown option action 01', crafted('ipv6-dest-action01'), { problem: { code: 2, pointer: 42, icmp: false, icmpIfMulticast: false } }],
  ['scapy unknown option action 10 to multicast', crafted('ipv6-dest-action10-mc'), { problem: { code: 2, pointer: 45, icmp: true, icmpIfMulticast: true } }],
  ['scapy unknown option action 11 to multicast', crafted('ipv6-dest-action11-mc'), { problem: { code: 2, pointer: 42, icmp: false, icmpIfMulticast: false } }],
  ['scapy hop-by-hop after destination options', crafted('ipv6-hbh-second'), { problem: { code: 1, pointer: 40, icmp: true, icmpIfMulticast: false } }],
  ['scapy last fragment', crafted('ipv6-frag-last'), { protocol: 17, payloadOffset: 48, fragment: { offset: 1480, more: false, identification: 0xdeadbeef, headerOffset: 40 } }],
];

for (const [name, frame, want] of walks) {
  t.test(`walk ${name} → ${JSON.stringify(want)}`, async (t) => {
    const w = walkIpv6(ip6(frame));
    if (typeof w === 'string') throw new Error(w);
    t.match(w, want);
    if (!('hopByHop' in want)) t.equal(w.hopByHop, undefined);
    if (!('fragment' in want)) t.equal(w.fragment, undefined);
    if (!('problem' in want)) t.equal(w.problem, undefined);
  });
}

t.test('walk: unknown option action 11 to a unicast destination → ICMP is sent', async (t) => {
  const f = crafted('ipv6-dest-action11-mc');
  f.set(hex('fd747376000000000000000000000002'), 14 + 24);
  t.match(walkIpv6(ip6(f)), { problem: { code: 2, pointer: 42, icmp: true, icmpIfMulticast: false } });
});

t.test('walk: header problems to a multicast destination → no ICMP (RFC 4443 §2.4 e.3)', async (t) => {
  const f = crafted('ipv6-hbh-second');
  f.set(hex('ff020000000000000000000000000001'), 14 + 24);
  t.match(walkIpv6(ip6(f)), { problem: { code: 1, pointer: 40, icmp: false } });
});

t.test('walk: non-final fragment whose length is not a multiple of 8 → code 0 at Payload Length', async (t) => {
  const f = crafted('ipv6-frag-last');
  f[14 + 40 + 3] |= 1; // M = 1, 18 data bytes
  t.match(walkIpv6(ip6(f)), { fragment: { more: true }, problem: { code: 0, pointer: 4, icmp: true } });
});

t.test('walk: fragment reaching past 65535 bytes → code 0 at Fragment Offset', async (t) => {
  const f = crafted('ipv6-frag-last');
  f[14 + 42] = 0xff;
  f[14 + 43] = 0xf8; // offset 65528, 18 data bytes
  t.match(walkIpv6(ip6(f)), { fragment: { offset: 65528 }, problem: { code: 0, pointer: 42 } });
});

t.test('walk: the 65535 limit counts unfragmentable headers before the Fragment header', async (t) => {
  const build = (withDestOpts: boolean) => {
    const ext = withDestOpts ? 8 : 0;
    const b = new Uint8Array(40 + ext + 8 + 16);
    emitIpv6({ src: hex('fd747376000000000000000000000001'), dst: hex('fd747376000000000000000000000002'), nextHeader: withDestOpts ? 60 : 44, hopLimit: 64, payloadLength: ext + 24 }, b);
    if (withDestOpts) b.set(hex('2c00 0104 00000000'), 40);
    emitIpv6FragmentHeader({ nextHeader: 17, fragmentOffset: 65512, moreFragments: false, identification: 1 }, b, 40 + ext);
    return ip6(b, 0);
  };
  const fits = walkIpv6(build(false));
  t.match(fits, { fragment: { offset: 65512, headerOffset: 40 } }, '0 + 65512 + 16 fits');
  t.equal(typeof fits !== 'string' && fits.problem, undefined);
  t.match(walkIpv6(build(true)), { fragment: { offset: 65512, headerOffset: 48 }, problem: { code: 0, pointer: 50 } }, '8 more bytes do not');
});

t.test('walk: an extension header cut by Payload Length → truncated', async (t) => {
  for (const [name, plen] of [['hop-by-hop', 7], ['fragment', 7]] as const) {
    const f = name === 'fragment' ? crafted('ipv6-frag-last') : linux[1]!.slice();
    f[14 + 4] = 0;
    f[14 + 5] = plen;
    t.equal(walkIpv6(ip6(f)), 'truncated', name);
  }
  const r = crafted('ipv6-routing-0');
  r[14 + 41] = 5; // Hdr Ext Len 5: 48 bytes in a 34-byte payload
  t.equal(walkIpv6(ip6(r)), 'truncated', 'routing');
});

t.test('walk: an option overrunning its header → code 0 at the option', async (t) => {
  const f = crafted('ipv6-dest-action01');
  f[14 + 43] = 5; // option length 5 in a 6-byte area
  t.match(walkIpv6(ip6(f)), { problem: { code: 0, pointer: 42 } });
});

t.test('walk: No Next Header → protocol 59', async (t) => {
  const f = crafted('ipv6-dest-action01');
  f[14 + 40] = 59;
  f[14 + 42] = 0x1e; // make the option skippable
  t.match(walkIpv6(ip6(f)), { protocol: 59, payloadOffset: 48 });
});

t.test('options iterator: Pad1, PadN, router alert and unknown options with offsets', async (t) => {
  const opts = [...ipv6Options(hex('00 01 00 05 02 00 00 1e 02 01 02 00'))];
  t.same(
    opts.map((o) => [o.type, o.offset, toHex(o.data), o.malformed ?? false]),
    [
      [IPV6_OPT_PAD1, 0, '', false],
      [IPV6_OPT_PADN, 1, '', false],
      [IPV6_OPT_ROUTER_ALERT, 3, '0000', false],
      [0x1e, 7, '0102', false],
      [IPV6_OPT_PAD1, 11, '', false],
    ],
  );
  t.same([...ipv6Options(hex('01 04 00 00'))].map((o) => [o.offset, o.malformed]), [[0, true]]);
  t.same([...ipv6Options(hex('00 01'))].map((o) => [o.offset, o.malformed ?? false]), [[0, false], [1, true]]);
});

t.test('header views: every length below the header → truncated', async (t) => {
  const hbh = linux[1]!.subarray(54);
  for (let n = 0; n < 8; n++) {
    t.equal(Ipv6OptionsHeader.check(hbh.subarray(0, n)), 'truncated');
    t.equal(Ipv6RoutingHeader.check(hbh.subarray(0, n)), 'truncated');
    t.equal(Ipv6FragmentHeader.check(hbh.subarray(0, n)), 'truncated');
  }
  const rt = crafted('ipv6-routing-0').subarray(54);
  for (let n = 8; n < 24; n++) t.equal(Ipv6RoutingHeader.check(rt.subarray(0, n)), 'truncated', `routing ${n}`);
  const h = Ipv6RoutingHeader.check(rt);
  if (typeof h === 'string') throw new Error(h);
  t.match(h, { nextHeader: 17, hdrExtLen: 2, headerLength: 24, routingType: 0, segmentsLeft: 0 });
  t.equal(h.data.length, 20);
  const o = Ipv6OptionsHeader.check(hbh);
  if (typeof o === 'string') throw new Error(o);
  t.match(o, { nextHeader: 58, hdrExtLen: 0, headerLength: 8 });
  t.equal(toHex(o.options), '050200000100');
});

t.test('fragment headers of linux fragments: parse → emit → same 8 bytes', async (t) => {
  for (const n of [26, 27, 28]) {
    const bytes = linux[n]!.subarray(54, 62);
    const h = Ipv6FragmentHeader.check(bytes);
    if (typeof h === 'string') throw new Error(h);
    const r = parseIpv6FragmentHeader(h);
    const out = new Uint8Array(9);
    t.equal(emitIpv6FragmentHeader(r, out, 1), 8);
    t.equal(toHex(out.subarray(1)), toHex(bytes), `frame ${n}`);
  }
});

t.test('fragment header setters → exact bytes', async (t) => {
  const h = new Ipv6FragmentHeader(new Uint8Array(8));
  h.nextHeader = 17;
  h.fragmentOffset = 1480;
  h.moreFragments = true;
  h.identification = 0xdeadbeef;
  t.equal(toHex(h.buffer), '110005c9deadbeef');
  h.moreFragments = false;
  t.equal(h.fragmentOffset, 1480);
  t.equal(toHex(h.buffer), '110005c8deadbeef');
});

t.test('emitIpv6RouterAlertHeader → the bytes Linux puts in MLD reports', async (t) => {
  const out = new Uint8Array(8);
  t.equal(emitIpv6RouterAlertHeader(58, 0, out), 8);
  t.equal(toHex(out), toHex(linux[1]!.subarray(54, 62)));
});
