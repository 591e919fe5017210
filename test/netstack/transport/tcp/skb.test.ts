// Where PSH goes, as Linux places it: writes cut into skbs (size_goal, forced_push, MSG_MORE, MSG_EOR), GSO
// packets sized by tcp_tso_autosize and half of cwnd, PSH forced on every packet of more than one segment, split
// pieces losing it (skb.ts, snd.ts). The first part drives SkbQueue alone; the second a connection on the scripted
// peer harness, as the eor/ and slow_start/ scripts of upstream packetdrill do.
import t from 'tap';
import * as seq from '../../../../netstack/seqnum.ts';
import { SKB_EOR, SKB_PSH, SKB_ZEROCOPY, SkbQueue } from '../../../../netstack/transport/tcp/skb.ts';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../../../netstack/wire/tcp.ts';
import { Harness, pattern } from './helper.ts';

const P = SKB_PSH;
const E = SKB_EOR;

t.test('SkbQueue write of 2.5 size goals → three skbs, PSH on the one that ends the call', (t) => {
  const q = new SkbQueue();
  q.append(0, 5000, 0, 2000, 1 << 20, false, false);
  t.same(q.list(0), [[0, 2000, 0], [2000, 4000, 0], [4000, 5000, P]]);
  t.end();
});

t.test('SkbQueue MSG_MORE → no PSH; the next write joins the unsent tail up to size_goal and pushes its own end', (t) => {
  const q = new SkbQueue();
  q.append(0, 1500, 0, 2000, 1 << 20, true, false);
  t.same(q.list(0), [[0, 1500, 0]]);
  q.append(1500, 1000, 0, 2000, 1 << 20, false, false);
  t.same(q.list(0), [[0, 2000, 0], [2000, 2500, P]]);
  t.end();
});

t.test('SkbQueue a write joining a pushed unsent tail clears that PSH (it no longer ends a call)', (t) => {
  const q = new SkbQueue();
  q.append(0, 300, 0, 2000, 1 << 20, false, false);
  q.append(300, 300, 0, 2000, 1 << 20, true, false);
  t.same(q.list(0), [[0, 600, 0]], 'one skb, not pushed: the second call was MSG_MORE');
  t.end();
});

t.test('SkbQueue forced_push: past half the largest window since the last mark, each full skb is pushed', (t) => {
  const q = new SkbQueue();
  // A window of 4000: half is 2000, size_goal 2000.
  q.append(0, 10000, 0, 2000, 2000, false, false);
  t.same(q.list(0), [[0, 2000, 0], [2000, 4000, P], [4000, 6000, 0], [6000, 8000, P], [8000, 10000, P]]);
  t.end();
});

t.test('SkbQueue MSG_EOR closes the skb: the next write starts its own, as does a write after the tail was sent', (t) => {
  const q = new SkbQueue();
  q.append(0, 400, 0, 64000, 1 << 20, false, true);
  q.append(400, 400, 0, 64000, 1 << 20, false, false);
  t.same(q.list(0), [[0, 400, P | E], [400, 800, P]]);
  // Everything up to 800 sent: the next call cannot join the (sent) tail.
  q.append(800, 100, 800, 64000, 1 << 20, false, false);
  t.same(q.list(0), [[0, 400, P | E], [400, 800, P], [800, 900, P]]);
  t.end();
});

t.test('SkbQueue take: a packet ending inside an skb splits it, the first piece without PSH or EOR', (t) => {
  const q = new SkbQueue();
  q.append(0, 5000, 0, 64000, 1 << 20, false, true);
  t.equal(q.take(0, 2000), 0, 'first piece: no PSH');
  t.equal(q.take(2000, 2000), 0, 'second piece: no PSH');
  t.equal(q.take(4000, 1000), P | E, 'the piece that ends the skb keeps its flags');
  t.same(q.list(0), [[0, 2000, 0], [2000, 4000, 0], [4000, 5000, P | E]]);
  t.end();
});

t.test('SkbQueue headLength grows the head from its successor (tcp_grow_skb), taking its flags only when taken whole', (t) => {
  const q = new SkbQueue();
  q.append(0, 500, 0, 64000, 1 << 20, false, false); // sent below, so the next call starts a new skb
  q.append(500, 3000, 500, 64000, 1 << 20, false, false);
  q.take(0, 200); // the first 200 bytes left: [200, 500) remains of the first skb
  t.equal(q.headLength(200, 1000), 1000, 'grown by 700 from the next skb');
  t.same(q.list(0), [[0, 200, 0], [200, 1200, P], [1200, 3500, P]], 'a part taken: the head keeps its own flags');
  t.equal(q.headLength(200, 5000), 3300, 'the rest taken whole');
  t.same(q.list(0), [[0, 200, 0], [200, 3500, P]]);
  const r = new SkbQueue();
  r.append(0, 400, 0, 64000, 1 << 20, false, true);
  r.append(400, 400, 0, 64000, 1 << 20, false, false);
  t.equal(r.headLength(0, 2000), 400, 'never across an EOR');
  t.end();
});

t.test('SkbQueue MSG_ZEROCOPY: 18 one-byte iovecs → an skb of 17 frags pushed, then one of 1 (upstream zerocopy/maxfrags)', (t) => {
  const Z = SKB_ZEROCOPY;
  const q = new SkbQueue();
  q.appendZeroCopy(0, new Array(18).fill(1), 0, 64000, 1 << 20, false, false);
  t.same(q.list(0), [[0, 17, P | Z], [17, 18, P | Z]]);
  // One 20 KB iovec is five page frags: no cut. A second zero-copy call never joins the first's (unsent) skb.
  const r = new SkbQueue();
  r.appendZeroCopy(0, [20480], 0, 64000, 1 << 20, true, false);
  r.appendZeroCopy(20480, [100], 0, 64000, 1 << 20, false, false);
  t.same(r.list(0), [[0, 20480, P | Z], [20480, 20580, P | Z]], 'the first pushed when the second could not join it');
  t.equal(r.headLength(0, 30000), 20480, 'zero-copy skbs never grow (skb_shift moves no zero-copy frags)');
  // 40 one-page iovecs: cut every 17 frags.
  const u = new SkbQueue();
  u.appendZeroCopy(0, new Array(40).fill(4096), 0, 1 << 20, 1 << 30, false, false);
  t.same(u.list(0).map(([a, b]) => (b - a) / 4096), [17, 17, 6]);
  t.end();
});

t.test('SkbQueue release drops acknowledged skbs; the one acked into starts at the ACK', (t) => {
  const q = new SkbQueue();
  q.append(0, 6000, 0, 2000, 1 << 20, false, false);
  q.release(3000);
  t.same(q.list(3000), [[3000, 4000, 0], [4000, 6000, P]]);
  t.equal(q.count, 2);
  q.release(6000);
  t.equal(q.count, 0);
  t.end();
});

/**
 * A passive open as upstream's eor/ scripts make it: MSS 1000, no timestamps, the handshake's RTT `rttMs`, the
 * peer's window `window` << `wscale` (514 << 10 by default), on a route with TSO (super-segments recorded whole in
 * h.net.gsoSent).
 */
function server(rttMs: number, wscale = 10, window = 514): { h: Harness; ep: ReturnType<Harness['accept']>; base: number } {
  const h = new Harness();
  h.net.gsoMax = 65535;
  const l = h.listen();
  h.send({ flags: TCP_SYN, window: 32792, options: { mss: 1000, sackPermitted: true, wscale } });
  const synAck = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.iss = synAck.seq;
  h.peerNxt = seq.add(h.peerNxt, 1);
  h.advance(rttMs);
  h.send({ flags: TCP_ACK, ack: seq.add(h.iss, 1), window });
  const a = l.accept();
  if ('errno' in a) throw new Error('accept failed');
  return { h, ep: a.endpoint as ReturnType<Harness['accept']>, base: seq.add(h.iss, 1) };
}

/** The data segments sent so far as [offset from base, length, PSH]. */
function drain(h: Harness, base: number): Array<[number, number, boolean]> {
  const out: Array<[number, number, boolean]> = [];
  while (h.pending > 0) {
    const r = h.next();
    if (r.payload.length > 0) out.push([seq.sub(r.seq, base), r.payload.length, (r.flags & TCP_PSH) !== 0]);
  }
  return out;
}

t.test('ESTABLISHED (RTT 10 ms) write 10400 → five 2-segment GSO packets, each with PSH on its last segment; the 400 left waits for cwnd', (t) => {
  const { h, ep, base } = server(10);
  t.equal(ep.snd.gsoSegs(), 2, 'about 1 ms at 2·cwnd/SRTT is under two segments: tcp_min_tso_segs');
  t.equal(ep.write(pattern(10400)), 10400);
  t.same(h.net.gsoSent.map((g) => g.segment.length - 20), [2000, 2000, 2000, 2000, 2000], 'five super-segments');
  const segs = drain(h, base);
  t.same(segs, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => [i * 1000, 1000, i % 2 === 1]));
  t.end();
});

t.test('ESTABLISHED send(400, MSG_EOR) after a write → joins its unsent tail; the next write never shares a packet with it', (t) => {
  const { h, ep, base } = server(10);
  ep.write(pattern(10400));
  drain(h, base);
  t.equal(ep.write(pattern(400), { eor: true }), 400);
  t.equal(ep.write(pattern(10000)), 10000);
  t.equal(h.pending, 0, 'cwnd is full');
  h.advance(1);
  h.send({ flags: TCP_ACK, ack: seq.add(base, 10000), window: 514 });
  const segs = drain(h, base);
  t.same(segs[0], [10000, 800, true], 'the 400 left of the write and the EOR record: one pushed segment');
  t.ok(segs.slice(1).every(([off]) => off >= 10800), 'nothing after the record joins it');
  const last = segs.at(-1)!;
  t.same([last[0] + last[1], last[2]], [20800, true], 'the last write ends pushed');
  t.end();
});

t.test('ESTABLISHED write with MSG_MORE → full segments go, GSO packets pushed, single ones not; the corked tail waits', (t) => {
  const { h, ep, base } = server(10);
  ep.setOption('TCP_NODELAY', 1);
  t.equal(ep.write(pattern(3100), { more: true }), 3100);
  t.same(drain(h, base), [[0, 1000, false], [1000, 1000, true], [2000, 1000, false]], 'a 2-segment packet, then one segment cut from the unpushed skb');
  // An ACK releases the rest by Nagle's rule alone (TCP_NODELAY): MSG_MORE corked only its own call.
  h.advance(10);
  h.send({ flags: TCP_ACK, ack: seq.add(base, 2000), window: 514 });
  t.same(drain(h, base), [[3000, 100, false]], 'sent at the ACK, without PSH: no call ended there');
  t.end();
});

t.test('ESTABLISHED slow start: an ACK of one segment opens two → one 2-segment packet with PSH (upstream slow-start-ack-per-1pkt)', (t) => {
  const { h, ep, base } = server(100);
  t.equal(ep.write(pattern(30000)), 30000);
  t.equal(drain(h, base).length, 10);
  h.advance(105);
  h.send({ flags: TCP_ACK, ack: seq.add(base, 1000), window: 514 });
  t.same(drain(h, base), [[10000, 1000, false], [11000, 1000, true]]);
  t.equal(ep.snd.cc.cwnd, 11000, 'slow start grew cwnd by the segment acknowledged');
  t.end();
});

t.test('ESTABLISHED write of many skbs with cwnd 2 → each full skb is sent as it fills, the unsent rest takes the next bytes and keeps its forced_push PSH (tcp_sendmsg_locked, tso_fragment; upstream cubic-rto-ss-ca-cwnd-bump)', (t) => {
  // The peer's largest window is 257 << 7 = 32896: skbs of 16000 bytes, forced_push once more than 16448 bytes
  // were queued since the last mark.
  const { h, ep, base } = server(100, 7, 257);
  ep.snd.cc.cwnd = 2 * ep.snd.mss;
  t.equal(ep.write(pattern(40000)), 40000);
  // Half of cwnd per packet: two 1-segment packets, the first as the first skb filled (tcp_push_one), the second
  // at the forced push of the skb that took the rest of it and 1000 more.
  t.same(drain(h, base), [[0, 1000, false], [1000, 1000, false]]);
  // That skb, sent down to 2000, took 1000 more and carries its PSH to 18000; the next mark is at 34000.
  const pushed = ep.snd.skbs.list(ep.snd.bytesAcked).filter(([, , f]) => f & P).map(([, e]) => e);
  t.same(pushed, [18000, 34000, 40000]);
  t.end();
});

t.test('ESTABLISHED SACK recovery → a lost 2-segment GSO packet is resent whole, as one 2-segment packet with PSH (tcp_retransmit_skb; upstream sack-route-refresh-ip-tos)', (t) => {
  const { h, ep, base } = server(10);
  t.equal(ep.write(pattern(10000)), 10000);
  t.same(drain(h, base).length, 10, 'five 2-segment packets');
  h.net.gsoSent.length = 0;
  h.advance(10);
  // The first packet arrives, the second is lost, the other three arrive: RACK deems [2000, 4000) lost.
  h.send({ flags: TCP_ACK, seq: h.peerNxt, ack: seq.add(base, 2000), window: 514, options: { sack: [{ left: seq.add(base, 4000), right: seq.add(base, 10000) }] } });
  t.ok(ep.snd.inRecovery);
  t.same(h.net.gsoSent.map((g) => g.segment.length - 20), [2000], 'one super-segment of two');
  t.same(drain(h, base), [[2000, 1000, false], [3000, 1000, true]]);
  t.end();
});
