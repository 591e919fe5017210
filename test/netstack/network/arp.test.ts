import t from 'tap';
import { PROTO_UDP } from '../../../netstack/transport/protocol.ts';
import { ARP_REPLY, ARP_REQUEST } from '../../../netstack/wire/arp.ts';
import { ETHERTYPE_ARP } from '../../../netstack/wire/ethernet.ts';
import { BCAST, MAC_A, MAC_B, MAC_X, arp, arpRequestFrame, eth, udp } from './frames.ts';
import { A4, B4, X4, Recorder, accounting, echoRequest, hex, ip, net, pair, pattern, route, single } from './helpers.ts';

const ZERO = new Uint8Array(6);

function sendUdp(s: ReturnType<typeof single>['s'], to: Uint8Array, n = 10) {
  const r = route(s, to);
  const seg = udp(1000, 2000, pattern(n));
  const buf = new Uint8Array(r.headroom + seg.length);
  buf.set(seg, r.headroom);
  return r.send(PROTO_UDP, buf, r.headroom);
}

function replyFromX(): Uint8Array {
  return eth(MAC_A, MAC_X, ETHERTYPE_ARP, arp(ARP_REPLY, MAC_X, X4, MAC_A, A4));
}

t.test('unknown neighbour, packet sent → broadcast request; reply → REACHABLE and the queued packet goes out', (t) => {
  const p = pair();
  const r = route(p.a, B4);
  r.send(1, echoRequest(r, 1, 1, pattern(8)), r.headroom);
  t.equal(p.fromA.length, 1, 'only the request is sent while resolving');
  t.equal(hex(p.fromA[0]!), hex(eth(BCAST, MAC_A, ETHERTYPE_ARP, arp(ARP_REQUEST, MAC_A, A4, ZERO, B4))), 'request byte-exact');
  p.clock.advance(1);
  t.equal(hex(p.fromB[0]!), hex(eth(MAC_A, MAC_B, ETHERTYPE_ARP, arp(ARP_REPLY, MAC_B, B4, MAC_A, A4))), 'reply byte-exact');
  const entry = p.a.neighbors(p.nicA, 4)[0]!;
  t.equal(entry.state, 'reachable');
  t.same(entry.mac, MAC_B);
  t.equal(p.fromA.length, 2, 'queued packet sent');
  t.same(p.fromA[1]!.subarray(0, 6), MAC_B, 'to B');
  t.equal(p.b.neighbors(p.nicB, 4)[0]!.state, 'delay', 'B learned A from the request (STALE) and used it for the echo reply (DELAY)');
  t.end();
});

t.test('address added → gratuitous ARP request announcing it (RFC 5227 §3)', (t) => {
  const { s, link, nic } = single();
  s.addAddress(nic, net('198.18.1.7/24'));
  const a = ip('198.18.1.7');
  t.same(link.take().map(hex), [hex(eth(BCAST, MAC_A, ETHERTYPE_ARP, arp(ARP_REQUEST, MAC_A, a, ZERO, a)))]);
  t.end();
});

t.test('INCOMPLETE, no reply → 3 requests 1 s apart, then FAILED: queue dropped, host unreachable to the sender', (t) => {
  const { s, link, clock } = single();
  const rec = new Recorder(PROTO_UDP);
  s.registerTransport(rec);
  t.equal(sendUdp(s, X4), undefined);
  t.equal(link.take().length, 1, 'first request at once');
  clock.advance(999);
  t.equal(link.take().length, 0);
  clock.advance(1);
  t.equal(link.take().length, 1, 'second request after 1 s');
  clock.advance(1000);
  t.equal(link.take().length, 1, 'third request after 2 s');
  t.equal(rec.controls.length, 0);
  clock.advance(1000);
  t.equal(link.take().length, 0, 'nothing more');
  t.equal(s.neighbors(1, 4)[0]!.state, 'failed');
  t.equal(rec.controls.length, 1, 'sender told');
  const c = rec.controls[0]!;
  t.equal(c.msg.kind, 'host-unreachable');
  t.equal(c.msg.family, 4);
  t.same(c.local, A4);
  t.same(c.remote, X4);
  t.equal(hex(c.quoted), hex(udp(1000, 2000, pattern(10))), 'quoted transport segment');
  t.equal(s.stats.snapshot()['arp.resolutionFailures'], 1);
  t.end();
});

t.test('FAILED entry, new packet → resolution starts again', (t) => {
  const { s, link, clock } = single();
  sendUdp(s, X4);
  clock.advance(3000);
  link.take();
  sendUdp(s, X4);
  t.equal(link.take().length, 1, 'a new request');
  t.equal(s.neighbors(1, 4)[0]!.state, 'incomplete');
  t.end();
});

t.test('INCOMPLETE queue over its byte limit → oldest packets dropped and counted', (t) => {
  const { s, link } = single({ neighbor: { queueBytes: 300 } });
  for (let i = 0; i < 5; i++) sendUdp(s, X4, 100 + i);
  link.take();
  // Each frame is 14 + 20 + 8 + ~100 bytes: two fit in 300.
  t.equal(s.stats.snapshot()['arp.queueDrops'], 3);
  link.deliver(replyFromX());
  const sent = link.take();
  t.equal(sent.length, 2);
  t.same(sent.map((f) => f.length), [14 + 20 + 8 + 103, 14 + 20 + 8 + 104], 'the two newest survive');
  t.end();
});

t.test('REACHABLE → STALE after ReachableTime; send → DELAY; 5 s → PROBE (unicast); reply → REACHABLE', (t) => {
  const { s, link, clock } = single();
  sendUdp(s, X4);
  link.deliver(replyFromX());
  link.take();
  t.equal(s.neighbors(1, 4)[0]!.state, 'reachable');
  clock.advance(45_000);
  t.equal(s.neighbors(1, 4)[0]!.state, 'stale', 'at most 1.5 × 30 s');
  sendUdp(s, X4);
  t.equal(link.take().length, 1, 'STALE still sends at once');
  t.equal(s.neighbors(1, 4)[0]!.state, 'delay');
  clock.advance(5000);
  t.equal(s.neighbors(1, 4)[0]!.state, 'probe');
  const probes = link.take();
  t.equal(probes.length, 1);
  t.equal(hex(probes[0]!), hex(eth(MAC_X, MAC_A, ETHERTYPE_ARP, arp(ARP_REQUEST, MAC_A, A4, ZERO, X4))), 'unicast probe');
  link.deliver(replyFromX());
  t.equal(s.neighbors(1, 4)[0]!.state, 'reachable');
  t.end();
});

t.test('PROBE, no reply → 3 unicast probes, then FAILED', (t) => {
  const { s, link, clock } = single();
  sendUdp(s, X4);
  link.deliver(replyFromX());
  clock.advance(45_000);
  sendUdp(s, X4);
  clock.advance(5000);
  link.take();
  clock.advance(1000);
  clock.advance(1000);
  t.equal(link.take().length, 2, 'probes 2 and 3');
  t.equal(s.neighbors(1, 4)[0]!.state, 'probe');
  clock.advance(1000);
  t.equal(s.neighbors(1, 4)[0]!.state, 'failed');
  t.end();
});

t.test('request for another host → no reply, counted; request for us → reply and STALE entry', (t) => {
  const { s, link } = single();
  link.deliver(arpRequestFrame(MAC_X, X4, ip('198.18.0.50')));
  t.equal(link.take().length, 0);
  t.equal(s.stats.snapshot()['arp.notForUs'], 1);
  t.equal(s.neighbors(1, 4).length, 0, 'not learned: not addressed to us');
  link.deliver(arpRequestFrame(MAC_X, X4, A4));
  t.same(link.take().map(hex), [hex(eth(MAC_X, MAC_A, ETHERTYPE_ARP, arp(ARP_REPLY, MAC_A, A4, MAC_X, X4)))]);
  t.equal(s.neighbors(1, 4)[0]!.state, 'stale');
  t.same(s.neighbors(1, 4)[0]!.mac, MAC_X);
  t.end();
});

t.test('known neighbour, gratuitous ARP with a new MAC → entry updated to STALE', (t) => {
  const { s, link } = single();
  sendUdp(s, X4);
  link.deliver(replyFromX());
  const newMac = new Uint8Array([2, 0, 0, 0, 0, 0x77]);
  link.deliver(eth(BCAST, newMac, ETHERTYPE_ARP, arp(ARP_REQUEST, newMac, X4, ZERO, X4)));
  t.equal(s.neighbors(1, 4)[0]!.state, 'stale');
  t.same(s.neighbors(1, 4)[0]!.mac, newMac);
  t.end();
});

t.test('malformed ARP → dropped with a reason; someone claiming our address → conflict counted', (t) => {
  const { s, link } = single();
  const good = arpRequestFrame(MAC_X, X4, A4);
  const cases: [string, Uint8Array][] = [
    ['arp.truncated', good.subarray(0, 14 + 20)],
    ['arp.unsupported', (() => { const f = good.slice(); f[14 + 1] = 6; return f; })()],
    ['arp.badOperation', (() => { const f = good.slice(); f[14 + 7] = 9; return f; })()],
    ['arp.badSender', eth(BCAST, MAC_X, ETHERTYPE_ARP, arp(ARP_REQUEST, BCAST, X4, ZERO, A4))],
    ['arp.conflict', eth(BCAST, MAC_X, ETHERTYPE_ARP, arp(ARP_REQUEST, MAC_X, A4, ZERO, A4))],
  ];
  for (const [reason, f] of cases) {
    const before = s.stats.snapshot()[reason] ?? 0;
    link.deliver(f);
    t.equal(s.stats.snapshot()[reason], before + 1, reason);
  }
  t.equal(link.take().length, 0, 'nothing answered');
  const acc = accounting(s);
  t.equal(acc.delivered + acc.drops, acc.received);
  t.end();
});
