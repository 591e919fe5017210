// The readiness queue every endpoint owns.
import t from 'tap';
import { EventIn, EventOut, WaiterQueue } from '../../netstack/waiter.ts';

t.test('notify calls the subscribers whose mask intersects, with the intersection', async (t) => {
  const q = new WaiterQueue();
  const got: string[] = [];
  q.subscribe(EventIn, (ev) => got.push(`in ${ev}`));
  q.subscribe(EventOut, (ev) => got.push(`out ${ev}`));
  q.subscribe(EventIn | EventOut, (ev) => got.push(`both ${ev}`));
  q.notify(EventIn);
  t.same(got, [`in ${EventIn}`, `both ${EventIn}`]);
  t.equal(q.size, 3);
});

t.test('a callback that unsubscribes a later one, or subscribes a new one: the change holds from the next notify', async (t) => {
  const q = new WaiterQueue();
  const got: string[] = [];
  let offB = () => {};
  q.subscribe(EventIn, () => {
    got.push('a');
    offB();
    q.subscribe(EventIn, () => got.push('c'));
  });
  offB = q.subscribe(EventIn, () => got.push('b'));
  q.notify(EventIn);
  t.same(got, ['a'], 'b was unsubscribed before its turn; c subscribed during the notify is not called by it');
  got.length = 0;
  offB = () => {};
  q.notify(EventIn);
  t.same(got, ['a', 'c'], 'c from the next notify on (and a subscribes another c)');
  t.equal(q.size, 3);
});

t.test('unsubscribe twice is harmless; a callback may unsubscribe itself', async (t) => {
  const q = new WaiterQueue();
  let n = 0;
  const off = q.subscribe(EventIn, () => {
    n++;
    off();
  });
  q.notify(EventIn);
  q.notify(EventIn);
  off();
  t.equal(n, 1);
  t.equal(q.size, 0);
});

t.test('an object added as its own entry: fn is called as its method; remove takes it off once', async (t) => {
  const q = new WaiterQueue();
  class Conn {
    readonly mask = EventIn;
    live = true;
    got: number[] = [];
    fn(events: number): void {
      this.got.push(events);
    }
  }
  const c = new Conn();
  q.add(c);
  q.notify(EventIn | EventOut);
  t.same(c.got, [EventIn], 'called with this = the entry, events masked');
  q.remove(c);
  t.equal(c.live, false);
  t.equal(q.size, 0);
  q.remove(c);
  t.equal(q.size, 0, 'a second remove does nothing');
  q.notify(EventIn);
  t.same(c.got, [EventIn], 'not called after remove');
});
