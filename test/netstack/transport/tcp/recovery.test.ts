import t from 'tap';
import type { SackBlock } from '../../../../netstack/wire/tcp.ts';
import { TCP_ACK, TCP_SYN } from '../../../../netstack/wire/tcp.ts';
import { Harness, PEER_PORT, REMOTE, pattern } from './helper.ts';

const A = TCP_ACK;
const MSS = 1460;

t.test('ESTABLISHED SACK loss detection → retransmits each hole once (RFC 6675), recovery ends at the recovery point', async (t) => {
  const h = new Harness({ congestion: 'reno' });
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const p = h.peerNxt;
  ep.write(pattern(10 * MSS));
  for (let i = 0; i < 10; i++) h.expect({ seq: snd + i * MSS, len: MSS });
  const seg = (i: number) => snd + i * MSS;
  const sack = (...r: [number, number][]): { sack: SackBlock[] } => ({
    sack: r.map(([a, b]) => ({ left: seg(a), right: seg(b) })),
  });
  // Segments 0 and 3 are lost; 1, 2, 4 arrive.
  h.send({ flags: A, seq: p, ack: snd, options: sack([1, 2]) });
  h.send({ flags: A, seq: p, ack: snd, options: sack([1, 3]) });
  h.expectNone(0);
  h.send({ flags: A, seq: p, ack: snd, options: sack([4, 5], [1, 3]) });
  t.ok(ep.snd.inRecovery, 'three segments SACKed above SND.UNA start recovery');
  h.expect({ seq: seg(0), len: MSS });
  t.equal(ep.snd.cc.ssthresh, 5 * MSS);
  // Segment 5 arrives: pipe (10 out − 4 SACKed − 1 hole) is still at cwnd.
  h.send({ flags: A, seq: p, ack: snd, options: sack([4, 6], [1, 3]) });
  h.expectNone(0);
  // Segment 6 arrives: pipe drops below cwnd and the next hole (3) goes out.
  h.send({ flags: A, seq: p, ack: snd, options: sack([4, 7], [1, 3]) });
  h.expect({ seq: seg(3), len: MSS });
  h.send({ flags: A, seq: p, ack: snd, options: sack([4, 8], [1, 3]) });
  // Holes are not sent twice; new data follows once pipe allows.
  const more = [];
  while (h.pending) more.push(h.next());
  t.notOk(more.some((r) => r.seq === seg(0) || r.seq === seg(3)), 'no hole resent twice');
  // The retransmission of 0 arrives: cumulative ACK up to 3, still below the recovery point.
  h.send({ flags: A, seq: p, ack: seg(3), options: sack([4, 8]) });
  t.ok(ep.snd.inRecovery);
  h.clearSent();
  h.send({ flags: A, seq: p, ack: seg(10) });
  t.notOk(ep.snd.inRecovery, 'full ACK ends recovery');
  t.equal(ep.snd.cc.cwnd, 5 * MSS, 'cwnd = ssthresh after recovery');
  t.equal(h.tcp.stats.timeouts, 0, 'no RTO needed');
});

t.test('ESTABLISHED D-SACK received → counted in tcpi_dsack_dups, no recovery', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  ep.write(pattern(2 * MSS));
  h.clearSent();
  h.send({ flags: A, seq: h.peerNxt, ack: snd + MSS, options: { sack: [{ left: snd, right: snd + MSS }] } });
  const info = ep.getOption('TCP_INFO') as Record<string, number>;
  t.equal(info['tcpi_dsack_dups'], 1);
  t.notOk(ep.snd.inRecovery);
});

t.test('ESTABLISHED D-SACKs → reordering window multiplier grows once per round trip (RFC 8985 §6.2 step 4)', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  ep.write(pattern(4 * MSS));
  h.clearSent();
  t.equal(ep.snd.reorderMultiplier, 1, 'starts at 1');
  const dsack = (i: number) => ({ sack: [{ left: snd + i * MSS, right: snd + (i + 1) * MSS }] });
  h.send({ flags: A, seq: h.peerNxt, ack: snd + MSS, options: dsack(0) });
  t.equal(ep.snd.reorderMultiplier, 2, 'first D-SACK widens the window');
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 2 * MSS, options: dsack(1) });
  t.equal(ep.snd.reorderMultiplier, 2, 'a second D-SACK in the same round trip does not');
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 4 * MSS });
  ep.write(pattern(MSS));
  h.clearSent();
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 5 * MSS, options: dsack(4) });
  t.equal(ep.snd.reorderMultiplier, 3, 'a D-SACK after the round trip ended widens it again');
});

t.test('ESTABLISHED tail loss → TLP retransmits the last segment after 2·SRTT; its SACK lets RACK repair the rest', async (t) => {
  const h = new Harness({ congestion: 'reno' });
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const seg = (i: number) => snd + i * MSS;
  ep.write(pattern(3 * MSS));
  for (let i = 0; i < 3; i++) h.expect({ seq: seg(i) });
  // SRTT is 1 ms from the handshake: the probe timeout is max(2·SRTT, 10 ms), well before the 200 ms RTO.
  h.expectNone(9);
  h.advance(1);
  h.expect({ seq: seg(2), len: MSS });
  t.equal(h.tcp.stats.tailLossProbes, 1);
  // The probe arrives one RTT later; segments 0 and 1 were lost.
  h.advance(1);
  h.send({ flags: A, seq: h.peerNxt, ack: snd, options: { sack: [{ left: seg(2), right: seg(3) }] } });
  t.ok(ep.snd.inRecovery, 'RACK marked the earlier segments lost');
  // PRR: the one segment delivered lets one go; the next when that one is acknowledged.
  h.expect({ seq: seg(0), len: MSS });
  h.expectNone(0);
  h.advance(1);
  h.send({ flags: A, seq: h.peerNxt, ack: seg(1), options: { sack: [{ left: seg(2), right: seg(3) }] } });
  h.expect({ seq: seg(1), len: MSS });
  h.send({ flags: A, seq: h.peerNxt, ack: seg(3) });
  t.notOk(ep.snd.inRecovery);
  t.equal(h.tcp.stats.timeouts, 0, 'no RTO');
});

t.test('ESTABLISHED lost retransmission → RACK resends it once later data is SACKed, without an RTO', async (t) => {
  const h = new Harness({ congestion: 'reno' });
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const seg = (i: number) => snd + i * MSS;
  const p = h.peerNxt;
  ep.write(pattern(20 * MSS));
  for (let i = 0; i < 10; i++) h.expect({ seq: seg(i) });
  const sackTo = (n: number) => ({ sack: [{ left: seg(1), right: seg(n) }] });
  // The first two duplicate ACKs each let a new segment go (SACKed data is out of the pipe), the third starts
  // recovery.
  h.send({ flags: A, seq: p, ack: snd, options: sackTo(2) });
  h.expect({ seq: seg(10) });
  h.send({ flags: A, seq: p, ack: snd, options: sackTo(3) });
  h.expect({ seq: seg(11) });
  h.send({ flags: A, seq: p, ack: snd, options: sackTo(4) });
  h.expect({ seq: seg(0) });
  h.advance(1);
  // More SACKs shrink the pipe; new data goes out after the retransmission.
  for (let n = 5; n <= 10; n++) h.send({ flags: A, seq: p, ack: snd, options: sackTo(n) });
  const sent = [];
  while (h.pending) sent.push(h.next().seq);
  t.ok(sent.includes(seg(12)), 'new data sent in recovery');
  t.notOk(sent.includes(seg(0)), 'the retransmission is not repeated yet');
  // Segment 12 (sent after the retransmission of 0) is SACKed, but 0 still is not: it was lost again.
  h.send({ flags: A, seq: p, ack: snd, options: { sack: [{ left: seg(1), right: seg(13) }] } });
  h.expect({ seq: seg(0), len: MSS });
  t.equal(h.tcp.stats.timeouts, 0);
});

t.test('TLP retransmission acknowledged without D-SACK → a loss was repaired: cwnd reduced (RFC 8985 §7.4)', async (t) => {
  for (const spurious of [false, true]) {
    const h = new Harness({ congestion: 'reno' });
    const ep = h.connect({ mss: MSS, sackPermitted: true });
    const snd = h.iss + 1;
    ep.write(pattern(3 * MSS));
    h.clearSent();
    h.advance(10);
    h.expect({ seq: snd + 2 * MSS, len: MSS });
    h.advance(1);
    const dsack = spurious ? { sack: [{ left: snd + 2 * MSS, right: snd + 3 * MSS }] } : {};
    h.send({ flags: A, seq: h.peerNxt, ack: snd + 3 * MSS, options: dsack });
    if (spurious) {
      t.equal(h.tcp.stats.tailLossRepairs, 0, 'D-SACK: the probe was spurious, no reduction');
      t.ok(ep.snd.cc.cwnd >= 10 * MSS);
    } else {
      t.equal(h.tcp.stats.tailLossRepairs, 1);
      t.equal(ep.snd.cc.cwnd, 2 * MSS, 'Reno halves the flight (3 segments → floor at 2·MSS)');
    }
  }
});

t.test('ESTABLISHED rcv duplicate data → ACK with a D-SACK block for it, reported once (RFC 2883)', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(500) });
  h.expect({ flags: A, ack: p + 500 });
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(500) });
  h.expect({ flags: A, ack: p + 500, options: { sack: [{ left: p, right: p + 500 }] } });
  // Partly old, partly new: the old part is D-SACKed.
  h.send({ flags: A, seq: p + 400, ack: snd, payload: pattern(200, 400) });
  h.expect({ flags: A, ack: p + 600, options: { sack: [{ left: p + 400, right: p + 500 }] } });
  h.send({ flags: A, seq: p + 600, ack: snd, payload: pattern(100, 600) });
  const plain = h.next();
  t.equal(plain.options.sack, undefined, 'no D-SACK repeated');
  t.equal(ep.inQueue(), 700);
});

t.test('tcp_dsack = 0 → duplicate data is acknowledged without a D-SACK block (Linux tcp_dsack_set)', async (t) => {
  const h = new Harness({ dsack: false });
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(500) });
  h.expect({ flags: A, ack: p + 500 });
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(500) });
  t.equal(h.expect({ flags: A, ack: p + 500 }).options.sack, undefined, 'all old: no D-SACK');
  h.send({ flags: A, seq: p + 400, ack: snd, payload: pattern(200, 400) });
  t.equal(h.expect({ flags: A, ack: p + 600 }).options.sack, undefined, 'partly old: no D-SACK');
  t.equal(ep.inQueue(), 600);
});

t.test('SACK recovery → TCP_INFO tcpi_retrans counts segments resent and not yet acknowledged (Linux retrans_out)', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const seg = (i: number) => snd + i * MSS;
  const retrans = () => (ep.getOption('TCP_INFO') as Record<string, number>).tcpi_retrans;
  ep.setOption('TCP_NODELAY', 1);
  ep.write(pattern(5 * MSS));
  while (h.pending) h.next();
  t.equal(retrans(), 0);
  // Segment 0 lost: three SACKs of 1, 1–2, 1–3 start recovery and resend it.
  for (const last of [2, 3, 4]) h.send({ flags: A, seq: h.peerNxt, ack: snd, options: { sack: [{ left: seg(1), right: seg(last) }] } });
  h.expect({ seq: snd, len: MSS });
  t.equal(retrans(), 1, 'the resent segment is out');
  h.send({ flags: A, seq: h.peerNxt, ack: seg(5) });
  t.equal(retrans(), 0, 'acknowledged');
});

t.test('ESTABLISHED lone segment whose probe timeout exceeds the RTO → the TLP goes at the RTO time in its place, the RTO one RTO later, not backed off (Linux tcp_schedule_loss_probe)', async (t) => {
  const h = new Harness();
  const ep = h.accept(h.listen(), { mss: 1000, sackPermitted: true, wscale: 7 });
  const snd = h.iss + 1;
  ep.write(pattern(1000));
  h.next();
  h.advance(100);
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 1000 });
  const info = ep.getOption('TCP_INFO') as Record<string, number>;
  const rto = info.tcpi_rto / 1000;
  const srtt = info.tcpi_rtt / 1000;
  t.ok(2 * srtt + 200 > rto, `PTO ${2 * srtt + 200} ms exceeds the RTO ${rto} ms`);
  ep.write(pattern(1000));
  h.expect({ seq: snd + 1000, len: 1000 });
  h.expectNone(rto - 0.01);
  h.advance(0.01);
  h.expect({ seq: snd + 1000, len: 1000 });
  t.equal(ep.stats.tailLossProbes, 1, 'a probe at the RTO time, not a timeout');
  t.equal(ep.stats.timeouts, 0);
  h.expectNone(rto - 0.01);
  h.advance(0.01);
  h.expect({ seq: snd + 1000, len: 1000 });
  t.equal(ep.stats.timeouts, 1, 'then the RTO, one RTO after the probe');
  // After a timeout no probe is scheduled (Linux probes only in TCP_CA_Open): next comes the backed-off RTO.
  h.expectNone(2 * rto - 0.01);
  h.advance(0.01);
  h.expect({ seq: snd + 1000, len: 1000 });
  t.equal(ep.stats.tailLossProbes, 1);
});

t.test('ESTABLISHED SACK of one byte of the last segment → no segment counts as SACKed: no recovery, the TLP resends that segment (Linux tcp_match_skb_to_sack)', async (t) => {
  const h = new Harness();
  const ep = h.accept(h.listen(), { mss: 1000, sackPermitted: true, wscale: 7 });
  const snd = h.iss + 1;
  ep.setOption('TCP_NODELAY', 1);
  h.advance(100);
  ep.write(pattern(1000));
  h.next();
  h.advance(100);
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 1000 });
  ep.write(pattern(4000));
  while (h.pending) h.next();
  h.advance(100);
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 1000, options: { sack: [{ left: snd + 4999, right: snd + 5000 }] } });
  // Until the probe timeout nothing is sent; then the probe, not a retransmission of SND.UNA.
  while (h.pending === 0 && ep.stats.timeouts === 0) h.advance(1);
  t.equal(ep.stats.fastRetransmits, 0, 'a byte SACKed inside a segment is no delivery: RACK marks nothing lost');
  h.expect({ seq: snd + 4000, len: 1000 });
  t.equal(ep.stats.tailLossProbes, 1, 'the probe resends the last segment');
});

t.test('ESTABLISHED first SACKed duplicate ACK → a new segment goes at once: SACKed data left the pipe before recovery too (Linux tcp_packets_in_flight)', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const seg = (i: number) => snd + i * MSS;
  ep.write(pattern(20 * MSS));
  for (let i = 0; i < 10; i++) h.expect({ seq: seg(i) });
  // Before the loss probe's timeout: cwnd is full, nothing goes.
  h.advance(5);
  h.expectNone(0);
  // Segment 4 arrives ahead of 0–3: one duplicate ACK, far from any loss verdict.
  h.send({ flags: A, seq: h.peerNxt, ack: snd, options: { sack: [{ left: seg(4), right: seg(5) }] } });
  t.notOk(ep.snd.inRecovery, 'one SACKed segment starts no recovery');
  h.expect({ seq: seg(10), len: MSS });
  h.expectNone(0);
});

t.test('SACK recovery with the pipe above ssthresh → PRR sends ⌈ssthresh·delivered/prior_cwnd⌉ − sent per ACK (RFC 6937, Linux tcp_cwnd_reduction)', async (t) => {
  const h = new Harness({ congestion: 'cubic' });
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const seg = (i: number) => snd + i * MSS;
  const p = h.peerNxt;
  // A window of 20 segments, as slow start would have grown it.
  ep.snd.cc.cwnd = 20 * MSS;
  ep.write(pattern(40 * MSS));
  for (let i = 0; i < 20; i++) h.expect({ seq: seg(i) });
  h.advance(5);
  h.expectNone(0);
  // Segment 0 is lost; 1, 2, 3 arrive: recovery. ssthresh = 20·717/1024 = 14 segments, prior_cwnd 20.
  const sackTo = (n: number) => ({ sack: [{ left: seg(1), right: seg(n) }] });
  h.send({ flags: A, seq: p, ack: snd, options: sackTo(2) });
  h.send({ flags: A, seq: p, ack: snd, options: sackTo(3) });
  h.clearSent();
  h.send({ flags: A, seq: p, ack: snd, options: sackTo(4) });
  t.ok(ep.snd.inRecovery);
  t.equal(ep.snd.cc.ssthresh, 14 * MSS);
  h.expect({ seq: seg(0), len: MSS });
  h.expectNone(0);
  // Each further SACKed segment: the pipe (20 out − SACKed − 0 lost) stays above 14, so PRR's proportion rules:
  // delivered 2, 3, 4, 5 → ⌈14·d/20⌉ = 2, 3, 3, 4 in all, i.e. 1, 1, 0, 1 new segments (1 already resent).
  const out: number[] = [];
  for (let n = 5; n <= 8; n++) {
    h.send({ flags: A, seq: p, ack: snd, options: sackTo(n) });
    let k = 0;
    while (h.pending) {
      h.next();
      k++;
    }
    out.push(k);
  }
  t.same(out, [1, 1, 0, 1], 'sends follow ssthresh/prior_cwnd of what was delivered');
});

t.test('SACK recovery → tcpi_lost counts segments deemed lost until delivered, resent or not; a lost one SACKed later raises tcpi_reordering (Linux lost_out, tcp_check_sack_reordering)', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const seg = (i: number) => snd + i * MSS;
  const info = () => ep.getOption('TCP_INFO') as Record<string, number>;
  const sack = (...r: [number, number][]) => ({ sack: r.map(([a, b]) => ({ left: seg(a), right: seg(b) })) });
  ep.write(pattern(10 * MSS));
  for (let i = 0; i < 10; i++) h.expect({ seq: seg(i) });
  h.advance(5);
  t.equal(info().tcpi_lost, 0);
  t.equal(info().tcpi_reordering, 3, 'Linux\'s default degree');
  t.equal(info().tcpi_reord_seen, 0);
  // Segments 2, 6 and 8 arrive; RACK deems everything sent with them and not delivered lost: 0, 1, 3, 4, 5, 7.
  h.send({ flags: A, seq: h.peerNxt, ack: snd, options: sack([2, 3]) });
  h.send({ flags: A, seq: h.peerNxt, ack: snd, options: sack([2, 3], [6, 7]) });
  h.send({ flags: A, seq: h.peerNxt, ack: snd, options: sack([2, 3], [6, 7], [8, 9]) });
  t.ok(ep.snd.inRecovery);
  h.expect({ seq: seg(0), len: MSS });
  t.equal(info().tcpi_lost, 6, 'the resent segment still counts');
  // Segment 3, deemed lost and never resent, arrives: it was reordered, 8 + 1 − 3 = 6 segments deep.
  h.advance(1);
  h.send({ flags: A, seq: h.peerNxt, ack: snd, options: sack([2, 4], [6, 7], [8, 9]) });
  t.equal(info().tcpi_lost, 5);
  t.equal(info().tcpi_reordering, 6);
  t.equal(info().tcpi_reord_seen, 1, 'one ACK showed reordering');
  h.send({ flags: A, seq: h.peerNxt, ack: seg(1), options: sack([2, 4], [6, 7], [8, 9]) });
  // 0 is delivered; 9, sent with the first flight, is deemed lost now: the resent 0, acknowledged a round trip
  // after it left, moved RACK past it.
  t.equal(info().tcpi_lost, 5, 'the resent segment no longer counts, the tail does');
  h.send({ flags: A, seq: h.peerNxt, ack: seg(10) });
  t.equal(info().tcpi_lost, 0);
  t.equal(info().tcpi_reordering, 6, 'the degree stays');
});

t.test('ESTABLISHED slow start with SACK → cwnd grows by what each ACK delivered: SACKed data once reordering deeper than 3 was seen, never again when acknowledged (Linux acked_sacked, tcp_may_raise_cwnd)', async (t) => {
  const h = new Harness({ congestion: 'reno' });
  // A 20 ms handshake: RACK's reordering window is a quarter of that, so the first SACKs deem nothing lost.
  const ep = h.tcp.newEndpoint(4);
  ep.connect({ address: REMOTE, port: PEER_PORT });
  const syn = h.expect({ flags: TCP_SYN });
  h.iss = syn.seq;
  h.localPort = syn.srcPort;
  h.advance(20);
  h.send({ flags: TCP_SYN | A, ack: h.iss + 1, options: { mss: MSS, sackPermitted: true } });
  h.peerNxt++;
  h.expect({ flags: A });
  const snd = h.iss + 1;
  const seg = (i: number) => snd + i * MSS;
  const sack = (...r: [number, number][]) => ({ sack: r.map(([a, b]) => ({ left: seg(a), right: seg(b) })) });
  ep.write(pattern(10 * MSS));
  for (let i = 0; i < 10; i++) h.expect({ seq: seg(i) });
  h.advance(20);
  h.send({ flags: A, seq: h.peerNxt, ack: snd, options: sack([9, 10]) });
  t.notOk(ep.snd.inRecovery);
  t.equal(ep.snd.cc.cwnd, 10 * MSS, 'a SACK alone grows nothing while reordering is at most 3');
  // Segment 3 arrives 7 segments late: reordering 7, and from now on SACKed data is progress.
  h.send({ flags: A, seq: h.peerNxt, ack: snd, options: sack([3, 4], [9, 10]) });
  t.equal(ep.snd.cc.cwnd, 11 * MSS);
  // The rest arrives: 8 segments newly delivered, the 2 SACKed before not counted again.
  h.send({ flags: A, seq: h.peerNxt, ack: seg(10) });
  t.equal(ep.snd.cc.cwnd, 19 * MSS);
});

t.test('net.ipv4.tcp_reordering and tcp_max_reordering → a connection starts at that degree and grows to at most the cap', async (t) => {
  const h = new Harness({ reordering: 4, maxReordering: 5 });
  const ep = h.connect({ mss: MSS, sackPermitted: true });
  const snd = h.iss + 1;
  const seg = (i: number) => snd + i * MSS;
  const info = () => ep.getOption('TCP_INFO') as Record<string, number>;
  t.equal(info().tcpi_reordering, 4);
  ep.write(pattern(10 * MSS));
  for (let i = 0; i < 10; i++) h.expect({ seq: seg(i) });
  // Segment 9 is SACKed, then everything below it acknowledged: 9 segments of reordering, capped at 5.
  h.send({ flags: A, seq: h.peerNxt, ack: snd, options: { sack: [{ left: seg(9), right: seg(10) }] } });
  h.send({ flags: A, seq: h.peerNxt, ack: seg(10) });
  t.equal(info().tcpi_reordering, 5);
});
