// TSO out and GRO'd super-segments in, on the scripted-peer harness whose route offers sendGso and cuts each
// super-segment as a link would (helper.ts CaptureNet.gsoMax): super-segments of whole MSS with the partial
// checksum, retransmissions MSS-sized, SACK of part of one transmitted unit, a 64 KB segment received.
import t from 'tap';
import * as seq from '../../../../netstack/seqnum.ts';
import { TCP_ACK, TCP_PSH, emitTcp, tcpHeaderLength } from '../../../../netstack/wire/tcp.ts';
import { Harness, LOCAL, REMOTE, pattern } from './helper.ts';

const MSS = 1448; // 1460 announced, less the 12 bytes of timestamps

function tsoHarness(gsoMax = 65535): Harness {
  const h = new Harness();
  h.net.gsoMax = gsoMax;
  return h;
}

t.test('ESTABLISHED write 20 MSS on a TSO route → IW10 as two 5-MSS super-segments (half of cwnd each), cut byte-exact, PSH on the last of each (Linux forces it on GSO packets)', (t) => {
  const h = tsoHarness();
  const ep = h.connect();
  const data = pattern(20 * MSS);
  t.equal(ep.write(data), data.length);
  t.equal(h.net.gsoSent.length, 2, 'two super-segments for the initial window (tcp_cwnd_test)');
  const g = h.net.gsoSent[0]!;
  t.equal(g.gsoSize, MSS);
  t.equal(g.headerLength, 32);
  t.equal(g.segment.length - 32, 5 * MSS, 'half of IW10');
  t.equal(h.net.gsoSent[1]!.segment.length - 32, 5 * MSS, 'the other half');
  t.equal(h.pending, 10, 'the link cut them into ten segments');
  for (let i = 0; i < 10; i++) {
    const r = h.expect({ flags: i === 4 || i === 9 ? TCP_ACK | TCP_PSH : TCP_ACK, seq: h.iss + 1 + i * MSS, len: MSS });
    t.same(Buffer.from(r.payload), Buffer.from(data.subarray(i * MSS, (i + 1) * MSS)), `segment ${i} bytes`);
  }
  const last = h.net.sent.length;
  t.equal(last, 0);
  h.send({ flags: TCP_ACK, ack: h.iss + 1 + 10 * MSS, options: { tsVal: 300, tsEcr: 0 } });
  t.equal(h.net.gsoSent.length, 3, 'the rest in one more super-segment (cwnd 20: half is 10)');
  t.equal(h.net.gsoSent[2]!.segment.length - 32, 10 * MSS);
  for (let i = 10; i < 20; i++) {
    h.expect({ flags: i === 19 ? TCP_ACK | TCP_PSH : TCP_ACK, seq: h.iss + 1 + i * MSS, len: MSS });
  }
  const info = ep.getOption('TCP_INFO') as Record<string, number>;
  t.equal(info.tcpi_data_segs_out, 20, 'TCP_INFO counts the segments on the wire');
  t.end();
});

t.test('ESTABLISHED TSO route, TCP_NODELAY, write 2.5 MSS → one super-segment with the runt as its last segment (tcp_mss_split_point)', (t) => {
  const h = tsoHarness();
  const ep = h.connect();
  ep.setOption('TCP_NODELAY', 1);
  ep.write(pattern(2 * MSS + 700));
  t.equal(h.net.gsoSent.length, 1);
  t.equal(h.net.gsoSent[0]!.segment.length - 32, 2 * MSS + 700);
  h.expect({ flags: TCP_ACK, seq: h.iss + 1, len: MSS });
  h.expect({ flags: TCP_ACK, seq: h.iss + 1 + MSS, len: MSS });
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: h.iss + 1 + 2 * MSS, len: 700 });
  t.equal(h.pending, 0);
  t.end();
});

t.test('ESTABLISHED TSO route, Nagle on, 2.5 MSS after a small segment in flight → two MSS in a super-segment, the runt held', (t) => {
  const h = tsoHarness();
  const ep = h.connect();
  ep.write(pattern(100));
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: h.iss + 1, len: 100 });
  ep.write(pattern(2 * MSS + 700));
  t.equal(h.net.gsoSent.length, 1);
  t.equal(h.net.gsoSent[0]!.segment.length - 32, 2 * MSS, 'Minshall: a small segment is unacknowledged');
  h.expect({ flags: TCP_ACK, seq: h.iss + 101, len: MSS });
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: h.iss + 101 + MSS, len: MSS });
  t.equal(h.pending, 0, 'the runt waits');
  h.send({ flags: TCP_ACK, ack: h.iss + 101, options: { tsVal: 300, tsEcr: 0 } });
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: h.iss + 101 + 2 * MSS, len: 700 });
  t.end();
});

t.test('ESTABLISHED TSO route, write 700 bytes → one segment whose checksum the link completes; a bare ACK summed here', (t) => {
  const h = tsoHarness();
  const ep = h.connect();
  ep.setOption('TCP_NODELAY', 1);
  const before = h.net.partialSent;
  ep.write(pattern(700));
  t.equal(h.net.partialSent, before + 1, 'handed to sendGso with the partial checksum (the harness checks it)');
  t.equal(h.net.gsoSent.length, 0, 'not a super-segment');
  const r = h.expect({ flags: TCP_ACK | TCP_PSH, seq: h.iss + 1, len: 700 });
  t.same(Buffer.from(r.payload), Buffer.from(pattern(700)));
  // Data from the peer, acknowledged by a bare ACK after the delayed-ACK timer: built and summed by TCP itself.
  h.send({ flags: TCP_ACK | TCP_PSH, ack: h.iss + 701, payload: pattern(10), options: { tsVal: 300, tsEcr: 0 } });
  h.advance(500);
  h.expect({ flags: TCP_ACK, len: 0 });
  t.equal(h.net.partialSent, before + 1, 'the bare ACK went out through send');
  t.end();
});

t.test('ESTABLISHED SACK of the middle of one 5-MSS unit → only the two holes below it resent, together as one 2-MSS unit (tcp_retransmit_skb)', (t) => {
  const h = tsoHarness();
  const ep = h.connect();
  const base = h.iss + 1;
  ep.write(pattern(10 * MSS));
  t.equal(h.net.gsoSent.length, 2, 'two 5-MSS units');
  h.clearSent();
  h.advance(5);
  // Segments 0 and 1 were lost; 2–4 arrived; 5–9 are still on their way.
  const sack = [{ left: seq.add(base, 2 * MSS), right: seq.add(base, 5 * MSS) }];
  h.send({ flags: TCP_ACK, ack: base, options: { tsVal: 300, tsEcr: 0, sack } });
  const resent: number[] = [];
  while (h.pending > 0) {
    const r = h.next();
    if (r.payload.length > 0) {
      resent.push(seq.sub(r.seq, base) / MSS);
      t.equal(r.payload.length, MSS, 'the link cuts the retransmission into MSS-sized segments');
      t.same(Buffer.from(r.payload), Buffer.from(pattern(10 * MSS).subarray(seq.sub(r.seq, base), seq.sub(r.seq, base) + MSS)));
    }
  }
  t.same(resent, [0, 1], 'the holes, and not the SACKed part or the part above it');
  // The lost part of the first unit (cut at the SACK's edge) is resent whole: one super-segment of two.
  t.same(h.net.gsoSent.slice(2).map((g) => g.gsoSize), [MSS]);
  t.equal(h.net.gsoSent.length, 3, 'the holes went out as one super-segment');
  // The rest arrives: everything acknowledged, nothing more to send.
  h.send({ flags: TCP_ACK, ack: seq.add(base, 10 * MSS), options: { tsVal: 301, tsEcr: 0 } });
  h.clearSent();
  h.advance(3000);
  t.equal(h.pending, 0, 'no spurious retransmission later');
  const info = ep.getOption('TCP_INFO') as Record<string, number>;
  t.equal(info.tcpi_total_retrans, 2);
  t.end();
});

t.test('ESTABLISHED SACK of the head of one unit, then of its tail → the hole between resent once', (t) => {
  const h = tsoHarness();
  const ep = h.connect();
  const base = h.iss + 1;
  ep.write(pattern(10 * MSS));
  h.clearSent();
  h.advance(5);
  h.send({ flags: TCP_ACK, ack: seq.add(base, 3 * MSS), options: { tsVal: 300, tsEcr: 0 } });
  h.clearSent(); // new data (none left) or nothing
  const sack = [{ left: seq.add(base, 5 * MSS), right: seq.add(base, 10 * MSS) }];
  h.send({ flags: TCP_ACK, ack: seq.add(base, 3 * MSS), options: { tsVal: 301, tsEcr: 0, sack } });
  const resent: number[] = [];
  while (h.pending > 0) {
    const r = h.next();
    if (r.payload.length > 0) resent.push(seq.sub(r.seq, base) / MSS);
  }
  t.same(resent, [3, 4], 'segments 3 and 4 of the partly ACKed, partly SACKed unit');
  h.send({ flags: TCP_ACK, ack: seq.add(base, 10 * MSS), options: { tsVal: 302, tsEcr: 0 } });
  h.clearSent();
  h.advance(3000);
  t.equal(h.pending, 0);
  t.end();
});

t.test('ESTABLISHED rcv one 64 KB segment → byte-exact, counted as 46 segments, ACKed at once', (t) => {
  const h = new Harness();
  const ep = h.connect();
  // Use up Linux's initial quick ACKs so that only the every-second-segment rule sends ACKs at once.
  for (let i = 0; i < 16; i++) {
    h.send({ flags: TCP_ACK, ack: h.iss + 1, payload: pattern(10, i), options: { tsVal: 200 + i, tsEcr: 0 } });
    h.peerNxt = seq.add(h.peerNxt, 10);
  }
  h.clearSent();
  t.equal((ep.read() as { data: Uint8Array }).data.length, 160);
  h.clearSent();
  h.send({ flags: TCP_ACK, ack: h.iss + 1, payload: pattern(MSS), options: { tsVal: 300, tsEcr: 0 } });
  h.peerNxt = seq.add(h.peerNxt, MSS);
  t.equal(h.pending, 0, 'one full segment waits for the delayed ACK');
  h.advance(40);
  h.expect({ flags: TCP_ACK, ack: h.peerNxt });
  const before = ep.rcv.dataSegsIn;
  const big = pattern(65536, 7);
  h.send({ flags: TCP_ACK, ack: h.iss + 1, payload: big, options: { tsVal: 301, tsEcr: 0 } });
  h.peerNxt = seq.add(h.peerNxt, big.length);
  h.expect({ flags: TCP_ACK, ack: h.peerNxt });
  t.equal(ep.rcv.dataSegsIn - before, Math.ceil(65536 / MSS), 'data segments counted as the MSS-sized ones sent');
  const r = ep.read() as { data: Uint8Array };
  t.equal(r.data.length, MSS + 65536);
  t.same(Buffer.from(r.data.subarray(MSS)), Buffer.from(big), 'byte-exact');
  t.ok(h.tcp.stats.headerPredicted > 0, 'the in-order segments took header prediction');
  t.end();
});

t.test('ESTABLISHED rcv data with a wrong checksum → dropped, unless the link marked it verified (csumVerified)', (t) => {
  const h = new Harness();
  const ep = h.connect();
  const segment = (payload: Uint8Array): Uint8Array => {
    const repr = {
      srcPort: h.peerPort,
      dstPort: h.localPort,
      seq: h.peerNxt,
      ack: h.iss + 1,
      flags: TCP_ACK,
      window: 65535,
      urgentPointer: 0,
      options: { tsVal: 400, tsEcr: 0 },
      payload,
    };
    const buf = new Uint8Array(tcpHeaderLength(repr) + payload.length);
    emitTcp(repr, buf, 0, REMOTE, LOCAL);
    buf[16] ^= 0x5a; // as a partial checksum from a TSO peer would look
    return buf;
  };
  const info = { nicId: 1, src: REMOTE, dst: LOCAL, ttl: 64, tos: 0, broadcast: false };
  h.tcp.deliver(info, segment(pattern(100)));
  t.equal(h.tcp.stats.badChecksum, 1, 'unverified: the bad checksum drops it');
  t.equal(ep.inQueue(), 0);
  h.tcp.deliver({ ...info, csumVerified: true }, segment(pattern(100)));
  t.equal(h.tcp.stats.badChecksum, 1, 'verified by the link: not checked again');
  t.equal(ep.inQueue(), 100, 'and the data is taken');
  t.end();
});
