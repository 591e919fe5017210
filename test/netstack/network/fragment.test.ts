import t from 'tap';
import { multicastMac, solicitedNodeAddress } from '../../../netstack/addr.ts';
import { Err } from '../../../netstack/errors.ts';
import { ImpairEndpoint } from '../../../netstack/link/impair.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import { VirtualClock } from '../../../netstack/clock.ts';
import { Stack } from '../../../netstack/stack.ts';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from '../../../netstack/transport/protocol.ts';
import { Ipv4Packet } from '../../../netstack/wire/ipv4.ts';
import { Ipv6Packet } from '../../../netstack/wire/ipv6.ts';
import { Ipv6FragmentHeader } from '../../../netstack/wire/ipv6ext.ts';
import { MAC_A, MAC_X, arpRequestFrame, eth4, eth6, fragment6, icmp4, icmp6, ipv4, ipv6, ndp, udp } from './frames.ts';
import { A4, A6, B4, B6, X4, X6, Recorder, echoRequest, hex, net, pair, pattern, route, single } from './helpers.ts';

function segment(r: { headroom: number }, seg: Uint8Array): Uint8Array {
  const buf = new Uint8Array(r.headroom + seg.length);
  buf.set(seg, r.headroom);
  return buf;
}

t.test('IPv4 8008-byte UDP datagram, MTU 1500 → 6 fragments of 8-byte multiples, reassembled byte-exact', (t) => {
  const p = pair();
  const rec = new Recorder(PROTO_UDP);
  p.b.registerTransport(rec);
  const seg = udp(1, 2, pattern(8000));
  const r = route(p.a, B4);
  t.equal(r.maxPayload(), 1480);
  t.equal(r.send(PROTO_UDP, segment(r, seg), r.headroom), undefined);
  p.clock.advance(1);
  const frags = p.fromA.filter((f) => f[12] === 0x08 && f[13] === 0).map((f) => new Ipv4Packet(f.subarray(14)));
  t.equal(frags.length, 6);
  const id = frags[0]!.identification;
  let expect = 0;
  frags.forEach((f, i) => {
    t.equal(f.identification, id, `fragment ${i} shares the id`);
    t.equal(f.fragmentOffset, expect, `fragment ${i} offset`);
    t.equal(f.moreFragments, i < 5, `fragment ${i} MF`);
    t.ok(f.totalLength <= 1500);
    if (i < 5) t.equal(f.payload.length % 8, 0);
    t.ok(f.verifyChecksum());
    expect += f.payload.length;
  });
  t.equal(expect, seg.length);
  p.clock.advance(1);
  t.equal(rec.packets.length, 1);
  t.equal(hex(rec.packets[0]!.segment), hex(seg));
  t.end();
});

t.test('IPv6 8008-byte UDP datagram → Fragment headers, 8-byte multiples, one random id, reassembled byte-exact', (t) => {
  const p = pair();
  const rec = new Recorder(PROTO_UDP);
  p.b.registerTransport(rec);
  const seg = udp(1, 2, pattern(8000, 3));
  const r = route(p.a, B6);
  t.equal(r.maxPayload(), 1460);
  t.equal(r.send(PROTO_UDP, segment(r, seg), r.headroom), undefined);
  p.clock.advance(1);
  const frags = p.fromA.filter((f) => f[14 + 6] === 44).map((f) => new Ipv6Packet(f.subarray(14)));
  t.equal(frags.length, 6);
  const hdrs = frags.map((f) => new Ipv6FragmentHeader(f.payload));
  let expect = 0;
  frags.forEach((f, i) => {
    t.equal(f.nextHeader, 44);
    t.equal(hdrs[i]!.nextHeader, PROTO_UDP);
    t.equal(hdrs[i]!.identification, hdrs[0]!.identification);
    t.equal(hdrs[i]!.fragmentOffset, expect);
    t.equal(hdrs[i]!.moreFragments, i < 5);
    t.ok(40 + f.payloadLength <= 1500);
    const n = f.payloadLength - 8;
    if (i < 5) t.equal(n % 8, 0);
    expect += n;
  });
  t.equal(expect, seg.length);
  p.clock.advance(1);
  t.equal(rec.packets.length, 1);
  t.equal(hex(rec.packets[0]!.segment), hex(seg));
  t.end();
});

t.test('too large with DF (TCP default) / IPV6_DONTFRAG → MessageTooLong, nothing sent', (t) => {
  const p = pair();
  const r4 = route(p.a, B4);
  t.equal(r4.send(PROTO_TCP, segment(r4, new Uint8Array(1481)), r4.headroom), Err.MessageTooLong);
  t.equal(r4.send(PROTO_UDP, segment(r4, new Uint8Array(1481)), r4.headroom, { dontFragment: true }), Err.MessageTooLong);
  const r6 = route(p.a, B6);
  t.equal(r6.send(PROTO_UDP, segment(r6, new Uint8Array(1461)), r6.headroom, { dontFragment: true }), Err.MessageTooLong);
  t.equal(r4.send(PROTO_UDP, segment(r4, new Uint8Array(65516)), r4.headroom), Err.MessageTooLong, 'over 65535 in all');
  t.equal(p.fromA.length, 0);
  t.end();
});

t.test('IPv4 first fragment only, 30 s → ICMP time exceeded code 1 quoting it (RFC 792)', (t) => {
  const { s, link, clock } = single();
  link.deliver(arpRequestFrame(MAC_X, X4, A4));
  link.take();
  const first = ipv4({ src: X4, dst: A4, protocol: PROTO_UDP, identification: 5, moreFragments: true }, pattern(1000));
  link.deliver(eth4(MAC_A, MAC_X, first));
  clock.advance(29_999);
  t.equal(link.take().length, 0);
  clock.advance(1);
  const out = link.take();
  t.equal(out.length, 1);
  const ip = new Ipv4Packet(out[0]!.subarray(14));
  t.same([ip.protocol, ip.tos, ip.ttl], [PROTO_ICMP, 0xc0, 64]);
  t.same(ip.src, A4);
  t.same(ip.dst, X4);
  t.equal(hex(ip.payload), hex(icmp4(11, 1, 0, first.subarray(0, 548))), 'type 11 code 1, quote up to 576 bytes in all');
  t.equal(s.stats.snapshot()['frag.timeouts'], 1);
  t.end();
});

t.test('IPv6 first fragment only, 60 s → ICMPv6 time exceeded code 1', (t) => {
  const { link, clock } = single();
  const sn = solicitedNodeAddress(A6);
  link.deliver(eth6(multicastMac(sn), MAC_X, ipv6(X6, sn, 58, ndp(X6, sn, { kind: 'neighbor-solicit', target: A6, sourceLinkLayer: MAC_X }), 255)));
  link.take();
  const first = ipv6(X6, A6, 44, fragment6(PROTO_UDP, 0, true, 0xabcd, pattern(1000)));
  link.deliver(eth6(MAC_A, MAC_X, first));
  clock.advance(59_999);
  t.equal(link.take().filter((f) => f[14 + 40] !== 135).length, 0, 'only neighbour probes so far');
  clock.advance(1);
  // X never answered the probes, so the error waits for a new resolution: answer it.
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, A6, 58, ndp(X6, A6, { kind: 'neighbor-advert', router: false, solicited: true, override: true, target: X6, targetLinkLayer: MAC_X }), 255)));
  const out = link.take().filter((f) => f[14 + 6] === 58 && f[14 + 40] === 3);
  t.equal(out.length, 1);
  const ip = new Ipv6Packet(out[0]!.subarray(14));
  t.equal(hex(ip.payload), hex(icmp6(A6, X6, 3, 1, 0, first)), 'type 3 code 1, whole first fragment quoted');
  t.end();
});

t.test('non-first fragment only, timeout → no ICMP, counted', (t) => {
  const { s, link, clock } = single();
  link.deliver(arpRequestFrame(MAC_X, X4, A4));
  link.take();
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP, identification: 6, fragmentOffset: 8 }, pattern(8))));
  clock.advance(30_000);
  t.equal(link.take().length, 0);
  t.equal(s.stats.snapshot()['frag.timeouts'], 1);
  t.end();
});

for (const family of [4, 6] as const) {
  t.test(`IPv${family} overlapping fragments → datagram dropped, nothing delivered`, (t) => {
    const { s, link, clock } = single();
    const rec = new Recorder(PROTO_UDP);
    s.registerTransport(rec);
    const d = pattern(32);
    const f = (off: number, len: number, more: boolean) =>
      family === 4
        ? eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP, identification: 9, fragmentOffset: off, moreFragments: more }, d.subarray(off, off + len)))
        : eth6(MAC_A, MAC_X, ipv6(X6, A6, 44, fragment6(PROTO_UDP, off, more, 9, d.subarray(off, off + len))));
    link.deliver(f(0, 16, true));
    link.deliver(f(8, 16, true));
    link.deliver(f(24, 8, false));
    link.deliver(f(16, 8, true));
    clock.advance(100_000);
    t.equal(rec.packets.length, 0);
    t.equal(s.stats.snapshot()['frag.overlap'], 1);
    t.end();
  });
}

t.test('IPv6 atomic fragment (offset 0, M=0) → delivered at once, apart from reassembly (RFC 6946)', (t) => {
  const { s, link } = single();
  const rec = new Recorder(PROTO_UDP);
  s.registerTransport(rec);
  const seg = udp(5, 6, pattern(20));
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, A6, 44, fragment6(PROTO_UDP, 0, false, 1, seg))));
  t.equal(rec.packets.length, 1);
  t.equal(hex(rec.packets[0]!.segment), hex(seg));
  t.equal(s.stats.snapshot()['frag.atomic'], 1);
  t.end();
});

t.test('reassembly memory limit → oldest datagrams evicted and counted, memory stays under the limit', (t) => {
  const { s, link } = single({ reassembly: { v4: { memoryLimit: 16 * 1024 } } });
  for (let id = 0; id < 40; id++) {
    link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP, identification: id, moreFragments: true }, pattern(1024))));
  }
  t.ok(s.stats.snapshot()['frag.evicted']! >= 25, `evicted ${s.stats.snapshot()['frag.evicted']}`);
  t.ok(s.ipv4.reassembler.memory <= 16 * 1024);
  t.end();
});

for (const family of [4, 6] as const) {
  t.test(`IPv${family} 8000-byte pings over a link with loss, duplication and reordering → replies byte-exact after retries`, (t) => {
    const clock = new VirtualClock();
    const [la, lb] = ChannelEndpoint.pair({ clock });
    const ia = new ImpairEndpoint(la, clock, { loss: 0.05, dup: 0.1, reorder: 0.2, seed: 11 + family });
    const a = new Stack({ clock, seed: 1 });
    const b = new Stack({ clock, seed: 2 });
    const na = a.addNic(ia);
    const nb = b.addNic(lb);
    a.addAddress(na, net('198.18.0.1/24'));
    b.addAddress(nb, net('198.18.0.2/24'));
    a.addAddress(na, net('fd74:7376::1/64'));
    b.addAddress(nb, net('fd74:7376::2/64'));
    clock.advance(5000);
    const rec = new Recorder(family === 4 ? PROTO_ICMP : PROTO_ICMPV6);
    a.registerTransport(rec);
    const r = route(a, family === 4 ? B4 : B6);
    const data = pattern(8000, 9);
    let ok = 0;
    for (let seq = 0; seq < 30 && ok < 3; seq++) {
      r.send(rec.protocolNumber, echoRequest(r, 77, seq, data), r.headroom);
      clock.advance(500);
      for (const p of rec.packets.splice(0)) {
        const m = p.segment;
        t.equal(hex(m.subarray(8)), hex(data), 'reply data byte-exact');
        if (((m[6]! << 8) | m[7]!) === seq) ok++;
      }
    }
    t.equal(ok, 3, 'three replies made it');
    t.ok(ia.counters.dropped + ia.counters.duplicated + ia.counters.reordered > 0, 'the link did impair');
    void A4;
    void A6;
    void MAC_A;
    t.end();
  });
}

t.test('IPv4 options on a fragmented datagram → first fragment keeps all, later ones only copied options (RFC 791 §3.2)', (t) => {
  const p = pair();
  const rec = new Recorder(PROTO_UDP);
  p.b.registerTransport(rec);
  const path = p.a.findPath(B4);
  if (!('headroom' in path)) throw new Error('no path');
  // Router Alert (type 148: copied) + Record Route (type 7: not copied) + End of Option List.
  const options = new Uint8Array([148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0]);
  const seg = udp(1, 2, pattern(3000));
  t.equal(p.a.ipv4.send(path, PROTO_UDP, segment(path, seg), path.headroom, undefined, options), undefined);
  p.clock.advance(1);
  const frags = p.fromA.filter((f) => f[12] === 0x08 && f[13] === 0).map((f) => new Ipv4Packet(f.subarray(14)));
  t.equal(frags.length, 3);
  t.equal(hex(frags[0]!.options), hex(options));
  for (const f of frags.slice(1)) t.equal(hex(f.options), hex(new Uint8Array([148, 4, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0])));
  t.ok(frags.every((f) => f.totalLength <= 1500 && f.headerLength === 32));
  t.equal(rec.packets.length, 1);
  t.equal(hex(rec.packets[0]!.segment), hex(seg), 'reassembled across the options');
  t.end();
});
