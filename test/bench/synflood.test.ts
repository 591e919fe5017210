// The syn-flood row's decisions: a step passes only with every legitimate connection ok; the search rises while
// the sender keeps within 10% of the rate; the figure is the highest achieved rate of the passing steps before
// the first failure; the sender's line is parsed or its absence named.
import t from 'tap';
import type { EchoCheckResult } from '../../bench/echo-check.ts';
import { type FloodStep, floodRates, highestPassing, keepRising, parseFlood, stepPassed } from '../../bench/synflood.ts';

const legit = (ok: number, failed: number): EchoCheckResult => ({ ok, failed, reasons: failed ? { timeout: failed } : {}, p50_ms: 1, max_ms: 2 });
const step = (rate: number, achieved: number, failed = 0): FloodStep => {
  const l = legit(100 - failed, failed);
  return { rate, achieved, sent: achieved, seconds: 1, legit: l, pass: stepPassed(l) };
};

t.test('a step passes with no legitimate connection lost; the search rises while the sender keeps the rate', async (t) => {
  t.ok(stepPassed(legit(100, 0)));
  t.notOk(stepPassed(legit(99, 1)), 'one connection lost');
  t.notOk(stepPassed(legit(0, 0)), 'no connection made at all');
  t.ok(keepRising(step(50_000, 45_000)), 'exactly 90%');
  t.notOk(keepRising(step(50_000, 44_999)), 'a sender that could not keep the rate ends the search');
  t.notOk(keepRising(step(50_000, 50_000, 1)), 'a lost connection ends it');
});

t.test('the figure is the highest achieved rate of the passing steps before the first failure', async (t) => {
  t.equal(highestPassing([step(25_000, 25_010), step(50_000, 49_800), step(100_000, 99_000, 3)]), 49_800);
  t.equal(highestPassing([step(25_000, 25_000), step(50_000, 30_000)]), 30_000, 'a sender-limited step counts at what it achieved');
  t.equal(highestPassing([step(25_000, 24_000, 1)]), 0, 'the lowest rate failed');
  t.equal(highestPassing([]), 0);
  t.equal(highestPassing([step(25_000, 25_000), step(50_000, 50_000)]), 50_000, 'all passed');
});

t.test('rates: the quick run reaches the 50,000 SYN/s floor and beyond', async (t) => {
  for (const quick of [true, false]) {
    const r = floodRates(quick);
    t.same([...r].sort((a, b) => a - b), r, 'rising');
    t.ok(r.includes(50_000) && r[r.length - 1]! >= 200_000);
  }
  // Above 200,000 the full run's steps are at most 50,000 apart, so the figure is not rounded down by a whole 100,000.
  const full = floodRates(false).filter((x) => x >= 200_000);
  t.ok(full.length >= 2 && full.every((x, i) => i === 0 || x - full[i - 1]! <= 50_000), `full run above 200k: ${full}`);
  t.ok(full[full.length - 1]! >= 400_000, 'up to 400,000, where the kernel\'s sender tops out');
});

t.test("the sender's result line", async (t) => {
  t.same(parseFlood('noise\n{"sent":1000,"seconds":0.5,"rate":2000,"errors":0}\n'), { sent: 1000, seconds: 0.5, rate: 2000, errors: 0 });
  t.throws(() => parseFlood('synflood: eth0: No such device\n'), /printed no result: synflood: eth0: No such device/);
});
