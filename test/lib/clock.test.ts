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

t.test('dispose → pending timers dropped', async (t) => {
  const clock = new NodeClock();
  let fired = false;
  clock.schedule(2, () => (fired = true));
  clock.dispose();
  await sleep(10);
  t.equal(fired, false);
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
