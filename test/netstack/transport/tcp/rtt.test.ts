import t from 'tap';
import { RttEstimator } from '../../../../netstack/transport/tcp/rtt.ts';

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
