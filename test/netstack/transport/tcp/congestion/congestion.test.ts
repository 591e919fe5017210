import t from 'tap';
import type { CcContext, CongestionControl } from '../../../../../netstack/transport/tcp/congestion/cc.ts';
import { Cubic } from '../../../../../netstack/transport/tcp/congestion/cubic.ts';
import { Reno } from '../../../../../netstack/transport/tcp/congestion/reno.ts';

const MSS = 1000;
const ctx = (now: number, srtt = 100): CcContext => ({ mss: MSS, now, srtt, minRtt: srtt });

/** Acks one full window per RTT for `rtts` round trips; returns cwnd after each. */
function run(cc: CongestionControl, rtts: number, start = 0, rtt = 100): number[] {
  const out: number[] = [];
  for (let i = 0; i < rtts; i++) {
    const segs = Math.floor(cc.cwnd / MSS);
    for (let s = 0; s < segs; s++) cc.onAck(MSS, cc.cwnd, ctx(start + i * rtt + (s * rtt) / segs, rtt));
    out.push(cc.cwnd);
  }
  return out;
}

for (const C of [Reno, Cubic]) {
  t.test(`${C.name}: IW10, slow start doubles per RTT up to ssthresh`, async (t) => {
    const cc = new C(MSS);
    t.equal(cc.cwnd, 10 * MSS);
    t.same(run(cc, 3), [20_000, 40_000, 80_000]);
  });

  t.test(`${C.name}: RTO → cwnd 1 MSS, ssthresh the flight times β (½ Reno, 0.7 CUBIC)`, async (t) => {
    const cc = new C(MSS);
    cc.cwnd = 40_000;
    cc.onTimeout(40_000, ctx(0));
    t.equal(cc.cwnd, MSS);
    t.equal(cc.ssthresh, C === Reno ? 20_000 : 28_000);
    cc.onIdleRestart(ctx(0));
    t.equal(cc.cwnd, MSS, 'idle restart never grows the window');
  });
}

t.test('Reno: loss halves (RFC 5681 eqn. 4), then +1 MSS per RTT', async (t) => {
  const cc = new Reno(MSS);
  cc.cwnd = 40_000;
  cc.onLoss(40_000, ctx(0));
  t.equal(cc.ssthresh, 20_000);
  t.equal(cc.cwnd, 20_000);
  cc.onRecoveryEnd(ctx(0));
  t.same(run(cc, 3), [21_000, 22_000, 23_000]);
});

t.test('CUBIC: loss multiplies by β = 0.7 and regrows concave toward W_max, then convex beyond it', async (t) => {
  const cc = new Cubic(MSS);
  cc.cwnd = 100_000;
  cc.ssthresh = 100_000;
  cc.onLoss(100_000, ctx(0));
  t.equal(cc.cwnd, 70_000);
  t.equal(cc.ssthresh, 70_000);
  cc.onRecoveryEnd(ctx(0));
  // K = cbrt(W_max·(1−β)/C) = cbrt(100·0.3/0.4) ≈ 4.2 s: the window approaches 100 segments around then.
  const w = run(cc, 80, 1000, 100);
  const at = (s: number) => w[Math.round(s * 10) - 1]!;
  t.ok(at(1) > 70_000 && at(1) < 100_000, `growing after 1 s: ${at(1)}`);
  t.ok(at(4) >= 95_000 && at(4) <= 102_000, `plateau near W_max around K: ${at(4)}`);
  const growthEarly = at(2) - at(1);
  const growthLate = at(4) - at(3);
  t.ok(growthLate < growthEarly, 'concave region slows down near W_max');
  t.ok(at(8) > 110_000, `convex probing beyond W_max: ${at(8)}`);
  cc.onLoss(cc.cwnd, ctx(9000));
  const w2 = cc.cwnd;
  cc.onLoss(cc.cwnd, ctx(9100));
  t.ok(cc.cwnd < w2, 'a second loss reduces again');
});
