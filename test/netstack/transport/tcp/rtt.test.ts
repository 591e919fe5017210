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

t.test('RTO is clamped to the minimum and backs off exponentially to the maximum', async (t) => {
  const e = new RttEstimator(200, 1000);
  e.sample(1);
  t.equal(e.rto, 200);
  e.backoff();
  t.equal(e.rto, 400);
  e.backoff();
  e.backoff();
  t.equal(e.rto, 1000);
  e.sample(1);
  t.equal(e.rto, 200, 'a new sample clears the backoff');
});
