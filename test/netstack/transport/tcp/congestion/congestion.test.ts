import t from 'tap';
import type { CcContext, CongestionControl } from '../../../../../netstack/transport/tcp/congestion/cc.ts';
import { Cubic } from '../../../../../netstack/transport/tcp/congestion/cubic.ts';
import { Reno } from '../../../../../netstack/transport/tcp/congestion/reno.ts';

const MSS = 1000;
const ctx = (now: number, srtt = 100, una = 0, nxt = 0): CcContext => ({ mss: MSS, now, srtt, minRtt: srtt, una, nxt });

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

/**
 * Slow start with cwnd 20 segments and one round of 2-segment ACKs 1 ms apart whose RTT samples are `rtts` (ms),
 * after a first sample of `base` ms: as upstream cubic-hystart-delay-*. Returns [cwnd, ssthresh] in segments after
 * each ACK.
 */
function hystartRound(base: number, rtts: number[]): Array<[number, number]> {
  const c = new Cubic(MSS);
  // The first sample comes at IW10, below hystart_low_window: it only sets the least delay.
  c.onRttSample(base, ctx(0, base, 10_000, 30_000));
  c.cwnd = 20 * MSS;
  const out: Array<[number, number]> = [];
  let una = 10_000;
  rtts.forEach((r, i) => {
    una += 2 * MSS;
    const at = ctx(1000 + i, base, una, 30_000);
    c.onRttSample(r, at);
    c.onAck(2 * MSS, c.cwnd, at);
    out.push([Math.floor(c.cwnd / MSS), c.ssthresh === Number.MAX_SAFE_INTEGER ? Infinity : c.ssthresh / MSS]);
  });
  return out;
}

t.test('Cubic HyStart delay: a round whose least RTT of 8 samples is ≥ min + 1/8 (4–16 ms) ends slow start at cwnd (Linux hystart_update)', async (t) => {
  const out = hystartRound(200, [240, 241, 242, 243, 244, 245, 246, 247, 248, 249]);
  t.same(out.slice(0, 8).map(([, ss]) => ss), Array(8).fill(Infinity), 'the first 8 samples are only counted');
  t.same(out[8], [36, 36], 'the 9th checks: 240 > 200 + 16 → ssthresh = cwnd');
  t.same(out[9], [36, 36], 'then congestion avoidance');
});

t.test('Cubic HyStart delay: RTTs within the threshold, or a drop in the minimum, do not end slow start', async (t) => {
  t.same(hystartRound(200, [200, 201, 202, 203, 204, 205, 206, 207, 208, 209]).at(-1), [40, Infinity]);
  t.same(hystartRound(200, [200, 201, 202, 203, 204, 205, 206, 207, 29, 209]).at(-1), [40, Infinity], 'min falls to 29 ms');
});

t.test('Cubic HyStart ACK train: ACKs ≤ 2 ms apart spanning half the least delay end slow start; below 16 segments nothing', async (t) => {
  const c = new Cubic(MSS);
  c.onRttSample(10, ctx(0, 10, 1000, 50_000));
  c.cwnd = 20 * MSS;
  let una = 1000;
  let now = 100;
  // A train from 100 ms: the round started at its first ACK; threshold (10 + 1) / 2 = 5.5 ms.
  for (let i = 0; i < 7; i++) {
    una += MSS;
    c.onRttSample(10, ctx(now, 10, una, 50_000));
    now += 1;
  }
  t.equal(c.ssthresh, c.cwnd, 'ended by the train after 6 ms');
  const small = new Cubic(MSS);
  small.onRttSample(10, ctx(0, 10, 1000, 50_000));
  for (let i = 0; i < 20; i++) small.onRttSample(50, ctx(100 + i, 10, 1000 + i * MSS, 50_000));
  t.equal(small.ssthresh, Number.MAX_SAFE_INTEGER, 'IW10 is below hystart_low_window');
});

t.test('CUBIC: ssthresh is β of cwnd, not of the flight (Linux cubictcp_recalc_ssthresh), once per loss episode', async (t) => {
  // An application-limited sender: cwnd 10 segments, one in flight.
  const cc = new Cubic(MSS);
  cc.onTimeout(MSS, ctx(0));
  t.equal(cc.ssthresh, 7 * MSS, 'RTO: 10·717/1024 = 7 segments');
  t.equal(cc.cwnd, MSS);
  cc.onTimeout(MSS, ctx(0), true);
  t.equal(cc.ssthresh, 7 * MSS, 'a backed-off RTO in the same episode keeps ssthresh');
  const c2 = new Cubic(MSS);
  c2.cwnd = 23 * MSS;
  c2.onLoss(2 * MSS, ctx(0));
  t.equal(c2.ssthresh, 16 * MSS, 'fast recovery: 23·717/1024 = 16 segments');
});
