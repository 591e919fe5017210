import t from 'tap';
import * as seq from '../../../../netstack/seqnum.ts';
import { RttEstimator } from '../../../../netstack/transport/tcp/rtt.ts';
import { TCP_ACK, TCP_PSH } from '../../../../netstack/wire/tcp.ts';
import { Harness, pattern } from './helper.ts';

t.test('RFC 6298: initial RTO 1 s; first sample sets SRTT=R, RTTVAR=R/2; later samples smooth', async (t) => {
  const e = new RttEstimator(200, 120_000);
  t.equal(e.rto, 1000);
  e.sample(100);
  t.equal(e.srtt, 100);
  t.equal(e.rttvar, 50);
  t.equal(e.rto, 300);
  e.sample(200);
  t.equal(e.rttvar, 0.75 * 50 + 0.25 * 100);
  t.equal(e.srtt, 0.875 * 100 + 0.125 * 200);
  t.equal(e.rto, e.srtt + 4 * e.rttvar);
});

t.test('RTO is SRTT plus at least the minimum (Linux) and backs off exponentially to the maximum', async (t) => {
  const e = new RttEstimator(200, 1000);
  e.sample(1);
  t.equal(e.rto, 201, 'SRTT 1 + the 200 ms floor of the variation term');
  e.backoff();
  t.equal(e.rto, 402);
  e.backoff();
  e.backoff();
  t.equal(e.rto, 1000);
  e.sample(1);
  t.equal(e.rto, 201, 'a new sample clears the backoff');
  const slow = new RttEstimator(200, 120_000);
  slow.sample(100);
  t.equal(slow.rto, 300, 'RTT 100 ms: 100 + max(4 · 50, 200), as the upstream scripts say ("RTO = RTT + 200ms")');
  slow.sample(100);
  t.equal(slow.rto, 300, 'the variation decays below the floor: still SRTT + 200');
  const varying = new RttEstimator(200, 120_000);
  varying.sample(300);
  t.equal(varying.rto, 900, 'the first sample: 300 + 4 · 150');
});

t.test('ESTABLISHED SACK without timestamps, ACKs of one flight → each ACK is a sample from its oldest new byte (Linux tcp_clean_rtx_queue)', async (t) => {
  const h = new Harness();
  h.peerWindow = 257;
  const ep = h.accept(h.listen(), { mss: 1000, sackPermitted: true, wscale: 7 });
  const snd = seq.add(h.iss, 1);
  const rttMs = () => (ep.getOption('TCP_INFO') as Record<string, number>).tcpi_rtt / 1000;
  h.advance(10);
  ep.write(pattern(10000));
  while (h.pending) h.next();
  h.advance(10);
  h.send({ flags: TCP_ACK, ack: seq.add(snd, 2000) });
  while (h.pending) h.next();
  const first = rttMs();
  h.advance(10);
  // Bytes 2000–3999 left 20 ms ago: Karn's one timed segment per flight would give no sample here.
  h.send({ flags: TCP_ACK, ack: seq.add(snd, 4000) });
  // TCP_INFO gives whole µs.
  t.ok(Math.abs(rttMs() - (first + (20 - first) / 8)) <= 0.001, `SRTT ${rttMs()} moved from ${first} toward the 20 ms sample`);
});

t.test('ESTABLISHED SACK, ACK covering a retransmitted segment → no sample (Karn, per segment)', async (t) => {
  const h = new Harness();
  const ep = h.accept(h.listen(), { mss: 1000, sackPermitted: true, wscale: 7 });
  const snd = seq.add(h.iss, 1);
  const srtt = () => (ep.getOption('TCP_INFO') as Record<string, number>).tcpi_rtt;
  ep.write(pattern(1000));
  h.next();
  const before = srtt();
  h.advance(1500);
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: snd, len: 1000 });
  h.send({ flags: TCP_ACK, ack: seq.add(snd, 1000) });
  t.equal(srtt(), before, 'the retransmission makes the sample ambiguous');
});
