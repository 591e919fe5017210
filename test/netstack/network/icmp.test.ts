import t from 'tap';
import { multicastMac, solicitedNodeAddress } from '../../../netstack/addr.ts';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../../../netstack/transport/protocol.ts';
import { Ipv4Packet } from '../../../netstack/wire/ipv4.ts';
import { Ipv6Packet } from '../../../netstack/wire/ipv6.ts';
import { BCAST, MAC_A, MAC_X, arpRequestFrame, eth4, eth6, icmp4, icmp6, ipv4, ipv6, ndp, udp } from './frames.ts';
import { A4, A6, X4, X6, Recorder, hex, ip, pattern, route, single } from './helpers.ts';

/** A single stack that already knows X in both families (so errors leave at once). */
function withX(opts = {}) {
  const f = single(opts);
  f.link.deliver(arpRequestFrame(MAC_X, X4, A4));
  const sn = solicitedNodeAddress(A6);
  f.link.deliver(eth6(multicastMac(sn), MAC_X, ipv6(X6, sn, 58, ndp(X6, sn, { kind: 'neighbor-solicit', target: A6, sourceLinkLayer: MAC_X }), 255)));
  f.link.take();
  return f;
}

const icmpOut4 = (frames: Uint8Array[]) =>
  frames.filter((f) => f[12] === 0x08 && f[13] === 0 && f[14 + 9] === PROTO_ICMP).map((f) => new Ipv4Packet(f.subarray(14)));
const icmpOut6 = (frames: Uint8Array[]) =>
  frames.filter((f) => f[12] === 0x86 && f[14 + 6] === 58 && f[14 + 40]! < 128).map((f) => new Ipv6Packet(f.subarray(14)));

t.test('UDP to a closed port → port unreachable quoting the datagram (v4 3/3, 576 bytes at most; v6 1/4)', (t) => {
  const { s, link } = withX();
  const rec = new Recorder(PROTO_UDP);
  rec.result = 'no-endpoint';
  s.registerTransport(rec);
  const p4 = ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(1000)));
  link.deliver(eth4(MAC_A, MAC_X, p4));
  const out4 = icmpOut4(link.take());
  t.equal(out4.length, 1);
  t.same([out4[0]!.src, out4[0]!.dst], [A4, X4]);
  t.equal(out4[0]!.totalLength, 576);
  t.equal(hex(out4[0]!.payload), hex(icmp4(3, 3, 0, p4.subarray(0, 548))));
  const p6 = ipv6(X6, A6, PROTO_UDP, udp(1, 2, pattern(1400)));
  link.deliver(eth6(MAC_A, MAC_X, p6));
  const out6 = icmpOut6(link.take());
  t.equal(out6.length, 1);
  t.equal(40 + out6[0]!.payloadLength, 1280, 'fills the minimum MTU');
  t.equal(hex(out6[0]!.payload), hex(icmp6(A6, X6, 1, 4, 0, p6.subarray(0, 1232))));
  t.equal(s.stats.snapshot()['ipv4.noEndpoint'], 1);
  t.end();
});

t.test('unknown protocol → v4 protocol unreachable (3/2); v6 parameter problem code 1 at the Next Header field', (t) => {
  const { link } = withX();
  const p4 = ipv4({ src: X4, dst: A4, protocol: 200 }, pattern(16));
  link.deliver(eth4(MAC_A, MAC_X, p4));
  t.equal(hex(icmpOut4(link.take())[0]!.payload), hex(icmp4(3, 2, 0, p4)));
  const p6 = ipv6(X6, A6, 200, pattern(16));
  link.deliver(eth6(MAC_A, MAC_X, p6));
  t.equal(hex(icmpOut6(link.take())[0]!.payload), hex(icmp6(A6, X6, 4, 1, 6, p6)), 'pointer 6');
  // Behind a Destination Options header the pointer names that header's Next Header octet.
  const p6b = ipv6(X6, A6, 60, new Uint8Array([200, 0, 1, 4, 0, 0, 0, 0, ...pattern(8)]));
  link.deliver(eth6(MAC_A, MAC_X, p6b));
  t.equal(hex(icmpOut6(link.take())[0]!.payload), hex(icmp6(A6, X6, 4, 1, 40, p6b)), 'pointer 40');
  t.end();
});

t.test('error rules (RFC 1122 §3.2.2, RFC 4443 §2.4 e): cases that must stay silent, and the exceptions', (t) => {
  const { s, link } = withX();
  const rec = new Recorder(PROTO_UDP);
  rec.result = 'no-endpoint';
  s.registerTransport(rec);
  const badOpts = new Uint8Array([68, 2, 0, 0]);
  const cases: [string, Uint8Array, number][] = [
    ['v4 broadcast destination', eth4(BCAST, MAC_X, ipv4({ src: X4, dst: ip('198.18.0.255'), protocol: PROTO_UDP }, udp(1, 2, pattern(4)))), 0],
    ['v4 limited broadcast', eth4(BCAST, MAC_X, ipv4({ src: X4, dst: ip('255.255.255.255'), protocol: PROTO_UDP }, udp(1, 2, pattern(4)))), 0],
    ['v4 source 0.0.0.0', eth4(MAC_A, MAC_X, ipv4({ src: ip('0.0.0.0'), dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(4)))), 0],
    ['v4 bad options on an ICMP error', eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_ICMP, options: badOpts }, icmp4(3, 3, 0, pattern(28)))), 0],
    ['v4 bad options on an echo request → parameter problem', eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_ICMP, options: badOpts }, icmp4(8, 0, 0, pattern(8)))), 1],
    ['v6 multicast destination', eth6(multicastMac(ip('ff02::1')), MAC_X, ipv6(X6, ip('ff02::1'), PROTO_UDP, udp(1, 2, pattern(4)))), 0],
    ['v6 unknown option action 11 to multicast', eth6(multicastMac(ip('ff02::1')), MAC_X, ipv6(X6, ip('ff02::1'), 60, new Uint8Array([17, 0, 0xc0, 4, 0, 0, 0, 0, ...udp(1, 2, pattern(4))]))), 0],
    ['v6 unknown option action 10 to multicast → sent', eth6(multicastMac(ip('ff02::1')), MAC_X, ipv6(X6, ip('ff02::1'), 60, new Uint8Array([17, 0, 0x80, 4, 0, 0, 0, 0, ...udp(1, 2, pattern(4))]))), 1],
    ['v6 unknown option action 01 → silent discard', eth6(MAC_A, MAC_X, ipv6(X6, A6, 60, new Uint8Array([17, 0, 0x40, 4, 0, 0, 0, 0, ...udp(1, 2, pattern(4))]))), 0],
    ['v6 about an ICMPv6 error', eth6(MAC_A, MAC_X, ipv6(X6, A6, 60, new Uint8Array([58, 0, 0x80, 4, 0, 0, 0, 0, ...icmp6(X6, A6, 1, 4, 0, pattern(40))]))), 0],
  ];
  for (const [name, frame, n] of cases) {
    link.deliver(frame);
    const out = link.take().filter((f) => (f[12] === 0x08 && f[14 + 9] === 1) || (f[12] === 0x86 && f[14 + 6] === 58 && f[14 + 40]! < 128));
    t.equal(out.length, n, name);
  }
  t.end();
});

t.test('100 errors due at once → 50 sent (burst), 50 suppressed and counted; 1 s later the bucket is full again', (t) => {
  const { s, link, clock } = withX();
  const rec = new Recorder(PROTO_UDP);
  rec.result = 'no-endpoint';
  s.registerTransport(rec);
  const f = eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(4))));
  for (let i = 0; i < 100; i++) link.deliver(f);
  t.equal(icmpOut4(link.take()).length, 50);
  t.equal(s.stats.snapshot()['icmpv4.rateLimited'], 50);
  clock.advance(1000);
  for (let i = 0; i < 100; i++) link.deliver(f);
  t.equal(icmpOut4(link.take()).length, 50);
  const echo = eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_ICMP }, icmp4(8, 0, 1, pattern(4))));
  for (let i = 0; i < 100; i++) link.deliver(echo);
  t.equal(icmpOut4(link.take()).length, 100, 'echo replies are not limited');
  t.end();
});

t.test('received port unreachable → deliverControl to the quoted packet’s transport (v4 and v6)', (t) => {
  const { s, link } = withX();
  const rec = new Recorder(PROTO_UDP);
  s.registerTransport(rec);
  const sent4 = ipv4({ src: A4, dst: X4, protocol: PROTO_UDP }, udp(1000, 2000, pattern(20)));
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_ICMP }, icmp4(3, 3, 0, sent4))));
  const sent6 = ipv6(A6, X6, PROTO_UDP, udp(1000, 2000, pattern(20)));
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, A6, 58, icmp6(X6, A6, 1, 4, 0, sent6))));
  t.equal(rec.controls.length, 2);
  const [c4, c6] = rec.controls;
  t.same(c4!.msg, { kind: 'port-unreachable', type: 3, code: 3, family: 4, from: X4, mtu: 0 });
  t.same([c4!.local, c4!.remote], [A4, X4]);
  t.equal(hex(c4!.quoted), hex(udp(1000, 2000, pattern(20))));
  t.same(c6!.msg, { kind: 'port-unreachable', type: 1, code: 4, family: 6, from: X6, mtu: 0 });
  t.same([c6!.local, c6!.remote], [A6, X6]);
  t.equal(hex(c6!.quoted), hex(udp(1000, 2000, pattern(20))));
  const foreign = ipv4({ src: ip('198.18.0.77'), dst: X4, protocol: PROTO_UDP }, udp(1, 2, pattern(4)));
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_ICMP }, icmp4(3, 3, 0, foreign))));
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_ICMP }, icmp4(3, 3, 0, sent4.subarray(0, 24)))));
  t.equal(rec.controls.length, 2, 'not about our packet / quote too short: ignored');
  t.equal(s.stats.snapshot()['icmpv4.badQuote'], 2);
  t.end();
});

t.test('fragmentation needed → PMTU lowered (not raised, not below 68), honoured by maxPayload and fragmentation, expires after 10 min', (t) => {
  const { s, link, clock } = withX();
  const rec = new Recorder(PROTO_TCP);
  s.registerTransport(rec);
  const r = route(s, X4);
  t.equal(r.maxPayload(), 1480);
  const sent = ipv4({ src: A4, dst: X4, protocol: PROTO_TCP, dontFragment: true }, pattern(1480));
  const fragNeeded = (mtu: number) => eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_ICMP }, icmp4(3, 4, mtu, sent.subarray(0, 28))));
  link.deliver(fragNeeded(0));
  t.equal(r.maxPayload(), 1492 - 20, 'MTU 0 from an old router → the RFC 1191 plateau below the sent length');
  link.deliver(fragNeeded(1400));
  t.equal(r.maxPayload(), 1380);
  t.same(rec.controls[1]!.msg, { kind: 'packet-too-big', type: 3, code: 4, family: 4, from: X4, mtu: 1400 });
  link.deliver(fragNeeded(1450));
  t.equal(r.maxPayload(), 1380, 'increases ignored');
  link.deliver(fragNeeded(20));
  t.equal(r.maxPayload(), 48, 'clamped to 68');
  // UDP (DF off) is fragmented to the path MTU.
  const u = route(s, X4);
  link.take();
  const seg = udp(1, 2, pattern(200));
  const buf = new Uint8Array(u.headroom + seg.length);
  buf.set(seg, u.headroom);
  u.send(PROTO_UDP, buf, u.headroom);
  const frags = link.take().map((f) => new Ipv4Packet(f.subarray(14)));
  t.ok(frags.length === 5 && frags.every((f) => f.totalLength <= 68), `5 fragments of ≤ 68 bytes (${frags.map((f) => f.totalLength)})`);
  clock.advance(600_000);
  t.equal(r.maxPayload(), 1480, 'expired');
  t.end();
});

t.test('packet too big (v6) → PMTU lowered, never below 1280; expires', (t) => {
  const { s, link, clock } = withX();
  const rec = new Recorder(PROTO_TCP);
  s.registerTransport(rec);
  const r = route(s, X6);
  t.equal(r.maxPayload(), 1460);
  const sent = ipv6(A6, X6, PROTO_TCP, pattern(1460));
  const ptb = (mtu: number) => eth6(MAC_A, MAC_X, ipv6(X6, A6, 58, icmp6(X6, A6, 2, 0, mtu, sent.subarray(0, 1232))));
  link.deliver(ptb(1300));
  t.equal(r.maxPayload(), 1260);
  t.same(rec.controls[0]!.msg, { kind: 'packet-too-big', type: 2, code: 0, family: 6, from: X6, mtu: 1300 });
  link.deliver(ptb(1000));
  t.equal(r.maxPayload(), 1240, 'clamped to 1280');
  clock.advance(600_000);
  t.equal(r.maxPayload(), 1460);
  t.end();
});

t.test('time exceeded and parameter problem received → control messages of those kinds', (t) => {
  const { s, link } = withX();
  const rec = new Recorder(PROTO_UDP);
  s.registerTransport(rec);
  const sent4 = ipv4({ src: A4, dst: X4, protocol: PROTO_UDP }, udp(1, 2, pattern(4)));
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_ICMP }, icmp4(11, 0, 0, sent4))));
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_ICMP }, icmp4(12, 0, 0x08000000, sent4))));
  const sent6 = ipv6(A6, X6, PROTO_UDP, udp(1, 2, pattern(4)));
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, A6, 58, icmp6(X6, A6, 3, 0, 0, sent6))));
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, A6, 58, icmp6(X6, A6, 4, 0, 7, sent6))));
  t.same(rec.controls.map((c) => `${c.msg.family}:${c.msg.kind}`), ['4:time-exceeded', '4:parameter-problem', '6:time-exceeded', '6:parameter-problem']);
  t.end();
});

t.test('v4 echo request to a broadcast address → ignored (Linux icmp_echo_ignore_broadcasts)', (t) => {
  const { s, link } = withX();
  link.deliver(eth4(BCAST, MAC_X, ipv4({ src: X4, dst: ip('198.18.0.255'), protocol: PROTO_ICMP }, icmp4(8, 0, 1, pattern(4)))));
  t.equal(link.take().length, 0);
  t.equal(s.stats.snapshot()['icmpv4.broadcastEcho'], 1);
  t.end();
});
