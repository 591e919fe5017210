// The virtual clock and the timer queue both clocks share.
import t from 'tap';
import { HeldClock, TimerQueue, VirtualClock } from '../../netstack/clock.ts';

t.test('VirtualClock fires timers in deadline order, ties in scheduling order', async (t) => {
  const c = new VirtualClock(100);
  const log: string[] = [];
  c.schedule(5, () => log.push('b'));
  c.schedule(1, () => log.push('a'));
  c.schedule(5, () => log.push('c'));
  c.schedule(10, () => log.push('late'));
  c.advance(5);
  t.same(log, ['a', 'b', 'c']);
  t.equal(c.now(), 105);
  t.equal(c.nextDeadline(), 110);
});

t.test('VirtualClock timers see their own deadline as now, and may schedule more', async (t) => {
  const c = new VirtualClock();
  const seen: number[] = [];
  c.schedule(3, () => {
    seen.push(c.now());
    c.schedule(2, () => seen.push(c.now()));
  });
  c.advance(10);
  t.same(seen, [3, 5]);
  t.equal(c.now(), 10);
});

t.test('cancelled timers never fire; runDue fires zero-delay timers without moving time', async (t) => {
  const c = new VirtualClock(7);
  let fired = 0;
  const x = c.schedule(0, () => fired++);
  c.schedule(0, () => fired++);
  x.cancel();
  x.cancel();
  c.runDue();
  t.equal(fired, 1);
  t.equal(c.now(), 7);
  t.equal(c.nextDeadline(), undefined);
});

t.test('TimerQueue compacts cancelled entries and honours beforeSeq', async (t) => {
  const q = new TimerQueue();
  let last = q.add(1, () => {});
  for (let i = 0; i < 10000; i++) {
    last.cancel();
    last = q.add(i + 2, () => {});
  }
  t.equal(q.pending, 1);
  t.ok(q.stored < 200, `stored ${q.stored} stays bounded`);
  const seq = q.nextSeq;
  q.add(0, () => {});
  t.equal(q.takeDue(0, seq), undefined, 'a timer added at or after beforeSeq waits');
  t.type(q.takeDue(0), 'function');
  t.equal(q.takeDue(5), undefined, 'the re-armed timer is not due yet');
  t.type(q.takeDue(1e9), 'function');
  t.equal(q.pending, 0);
});

t.test('HeldClock reads through, stands still while held (nested holds end with the outermost), schedules on the inner clock', async (t) => {
  let reads = 0;
  const inner = new VirtualClock(10);
  const counted = { now: () => (reads++, inner.now()), schedule: (d: number, f: () => void) => inner.schedule(d, f) };
  const c = new HeldClock(counted);
  t.equal(c.now(), 10);
  t.equal(reads, 1, 'unheld: every read goes to the inner clock');
  c.hold();
  inner.advance(5);
  t.equal(c.now(), 10, 'held: the time taken at hold()');
  c.hold();
  t.equal(c.now(), 10, 'a nested hold keeps the outer time');
  c.release();
  t.equal(c.now(), 10, 'still held by the outer hold');
  c.release();
  t.equal(reads, 2, 'one inner read for the whole hold');
  t.equal(c.now(), 15, 'released: reads through again');
  let fired = -1;
  c.schedule(3, () => (fired = inner.now()));
  inner.advance(3);
  t.equal(fired, 18, 'timers run on the inner clock');
});
