import t from 'tap';
import { NodeClock } from '../../lib/clock.ts';
import { HANG_MS, waitFor, within } from './wait.ts';

// The tests wait for the callbacks they expect, not for a sleep: on a loaded machine a Node timer of a few ms
// can come before an immediate that was queued earlier, so a fixed sleep may end before the clock has run.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('timers with different delays → fire in deadline order, never early', async (t) => {
  const clock = new NodeClock();
  const order: number[] = [];
  const early: number[] = [];
  for (const d of [30, 5, 20, 0, 10]) {
    const at = clock.now() + d;
    clock.schedule(d, () => {
      order.push(d);
      if (clock.now() < at) early.push(d);
    });
  }
  await waitFor(() => order.length === 5, HANG_MS, 'all five timers');
  t.same(order, [0, 5, 10, 20, 30]);
  t.same(early, []);
  t.equal(clock.pending, 0);
});

t.test('equal deadlines → fire in scheduling order', async (t) => {
  const clock = new NodeClock();
  const order: number[] = [];
  for (let i = 0; i < 5; i++) clock.schedule(0, () => order.push(i));
  await waitFor(() => order.length === 5, HANG_MS, 'all five timers');
  t.same(order, [0, 1, 2, 3, 4]);
});

t.test('delay 0 → not synchronous', async (t) => {
  const clock = new NodeClock();
  let fired = false;
  clock.schedule(0, () => (fired = true));
  t.equal(fired, false);
  await waitFor(() => fired, HANG_MS, 'the timer');
  t.equal(fired, true);
});

t.test('cancelled timer → never fires; cancel after firing is harmless', async (t) => {
  const clock = new NodeClock();
  let a = 0;
  let b = 0;
  const cancelledAt = clock.now() + 5;
  const ta = clock.schedule(5, () => a++);
  const tb = clock.schedule(1, () => b++);
  ta.cancel();
  await waitFor(() => b === 1, HANG_MS, 'the live timer');
  // Past the cancelled one's deadline, and one more turn of the loop for it to (wrongly) fire in.
  await waitFor(() => clock.now() > cancelledAt, HANG_MS, 'its deadline');
  await sleep(5);
  tb.cancel();
  t.equal(a, 0);
  t.equal(b, 1);
  t.equal(clock.pending, 0);
});

t.test('re-armed 10000 times (cancel + schedule later) → only the last fires, heap stays small', async (t) => {
  const clock = new NodeClock();
  let fired = 0;
  let timer = clock.schedule(5, () => fired++);
  for (let i = 0; i < 10000; i++) {
    timer.cancel();
    timer = clock.schedule(5 + i / 1000, () => fired++);
  }
  t.equal(clock.pending, 1);
  t.ok((clock as unknown as { timers: { stored: number } }).timers.stored < 200, 'cancelled entries compacted');
  await waitFor(() => fired > 0, HANG_MS, 'the last timer');
  await sleep(5);
  t.equal(fired, 1);
});

t.test('a timer re-scheduling itself with delay 0 → other callbacks still run', async (t) => {
  const clock = new NodeClock();
  let spins = 0;
  let stop = false;
  const spin = () => {
    spins++;
    if (!stop) clock.schedule(0, spin);
  };
  clock.schedule(0, spin);
  await waitFor(() => spins > 100, HANG_MS, 'the timer to spin');
  // A Node timer still gets its turn while the clock spins.
  await within(sleep(10), HANG_MS, 'a Node timer while the clock spins');
  stop = true;
  t.ok(spins > 100, `spun ${spins} times while the event loop ran`);
});

t.test('a throwing callback → later timers still fire', async (t) => {
  const clock = new NodeClock();
  let later = false;
  const onErr = (e: Error) => t.equal(e.message, 'boom');
  process.once('uncaughtException', onErr);
  clock.schedule(1, () => {
    throw new Error('boom');
  });
  clock.schedule(10, () => (later = true));
  await waitFor(() => later, HANG_MS, 'the later timer');
  process.removeListener('uncaughtException', onErr);
  t.equal(later, true);
});

t.test('dispose → pending timers dropped, later ones never armed', async (t) => {
  const clock = new NodeClock();
  let fired = false;
  clock.schedule(2, () => (fired = true));
  clock.dispose();
  await sleep(10);
  t.equal(fired, false);
  t.equal(clock.pending, 0);
  // A stack still running on it (a connection mid-close) must not arm a Node timer that holds the process.
  const g = globalThis as unknown as { setTimeout: typeof setTimeout; setImmediate: typeof setImmediate };
  const [realSet, realImm] = [g.setTimeout, g.setImmediate];
  let armed = 0;
  g.setTimeout = ((...a: Parameters<typeof setTimeout>) => (armed++, realSet(...a))) as typeof setTimeout;
  g.setImmediate = ((...a: Parameters<typeof setImmediate>) => (armed++, realImm(...a))) as typeof setImmediate;
  try {
    clock.schedule(0, () => (fired = true));
    clock.schedule(200, () => (fired = true)).cancel();
    clock.schedule(200, () => (fired = true));
  } finally {
    g.setTimeout = realSet;
    g.setImmediate = realImm;
  }
  t.equal(armed, 0, 'timers scheduled after dispose arm nothing');
  await sleep(10);
  t.equal(fired, false, 'and never fire');
  t.equal(clock.pending, 0);
});

t.test('now() → monotonic milliseconds', async (t) => {
  const clock = new NodeClock();
  const wallA = Date.now();
  const a = clock.now();
  await sleep(10);
  const b = clock.now();
  const wall = Date.now() - wallA;
  t.ok(b - a >= 9, `advanced ${b - a} ms`);
  // Milliseconds, as the wall clock counts them over the same stretch (however long load made it).
  t.ok(Math.abs(b - a - wall) < 5, `${(b - a).toFixed(1)} ms on the clock, ${wall} ms on the wall`);
});

t.test('delay-0 timers while a later one is pending → its Node timer is neither cleared nor set again', async (t) => {
  // The stack schedules a delay-0 flush after every reply written outside a receive batch; the clock used to
  // clear the delayed-ACK/RTO Node timer for it and set it again after the immediate (issue 13: TCP round trips).
  const clock = new NodeClock();
  const g = globalThis as unknown as { setTimeout: typeof setTimeout; clearTimeout: typeof clearTimeout };
  const [realSet, realClear] = [g.setTimeout, g.clearTimeout];
  let sets = 0;
  let clears = 0;
  let later = 0;
  const lateTimer = clock.schedule(60_000, () => later++);
  // Only Node timers of the long deadline count (waitFor polls with short ones of its own).
  const long = (ms: unknown) => typeof ms === 'number' && ms > 10_000;
  g.setTimeout = ((fn: () => void, ms?: number) => {
    if (long(ms)) sets++;
    return realSet(fn, ms);
  }) as typeof setTimeout;
  g.clearTimeout = ((h: Parameters<typeof clearTimeout>[0]) => {
    if (long((h as { _idleTimeout?: number } | undefined)?._idleTimeout)) clears++;
    realClear(h);
  }) as typeof clearTimeout;
  let fired = 0;
  try {
    for (let i = 0; i < 100; i++) {
      clock.schedule(0, () => fired++);
      await waitFor(() => fired === i + 1, HANG_MS, `delay-0 timer ${i}`);
    }
  } finally {
    g.setTimeout = realSet;
    g.clearTimeout = realClear;
  }
  t.equal(fired, 100, 'every delay-0 timer fired');
  t.equal(sets, 0, 'no Node timer set');
  t.equal(clears, 0, 'no Node timer cleared');
  t.equal(later, 0, 'the later timer has not fired');
  t.equal(clock.pending, 1, 'and is still pending');
  // An earlier deadline than the armed one still gets a Node timer of its own.
  let soon = 0;
  clock.schedule(5, () => soon++);
  await waitFor(() => soon === 1, HANG_MS, 'the 5 ms timer');
  lateTimer.cancel();
  clock.dispose();
});
