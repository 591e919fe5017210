import t from 'tap';
import type { ExtendedError } from '../../../../netstack/socket.ts';
import { MAX_PENDING, SO_EE_CODE_ZEROCOPY_COPIED, SO_EE_ORIGIN_ZEROCOPY, ZeroCopy } from '../../../../netstack/transport/tcp/zerocopy.ts';

const range = (lo: number, hi: number) => ({ errno: 0, origin: SO_EE_ORIGIN_ZEROCOPY, type: 0, code: SO_EE_CODE_ZEROCOPY_COPIED, info: lo, data: hi });

t.test('sends complete when their last byte is acknowledged, not before', async (t) => {
  const q: ExtendedError[] = [];
  const z = new ZeroCopy(q);
  z.sent(100, false);
  z.sent(250, false);
  t.notOk(z.acked(99), 'one byte short of the first send');
  t.notOk(q.length > 0);
  t.ok(z.acked(100));
  t.same(q.shift(), range(0, 0));
  t.equal(q.shift(), undefined, 'empty queue');
  t.ok(z.acked(250));
  t.same(q.shift(), range(1, 1));
});

t.test('completions queued back to back coalesce into one range; a read in between splits them', async (t) => {
  const q: ExtendedError[] = [];
  const z = new ZeroCopy(q);
  for (let end = 10; end <= 40; end += 10) z.sent(end, false);
  t.ok(z.acked(20));
  t.ok(z.acked(30), 'ids 0, 1 then 2: merged at the tail');
  t.same(q.shift(), range(0, 2));
  t.ok(z.acked(40));
  t.same(q.shift(), range(3, 3));
});

t.test("one call's writes in steps ('extend') are one id", async (t) => {
  const q: ExtendedError[] = [];
  const z = new ZeroCopy(q);
  z.sent(10, false);
  z.sent(20, true);
  t.notOk(z.acked(15), "the call's first step acknowledged is not the call");
  t.ok(z.acked(20));
  t.same(q.shift(), range(0, 0));
  z.sent(30, false);
  t.ok(z.acked(30));
  t.same(q.shift(), range(1, 1), 'the next call takes the next id');
});

t.test('the connection ends with sends in flight: completed for an open socket, dropped for a closed one', async (t) => {
  const q: ExtendedError[] = [];
  const z = new ZeroCopy(q);
  z.sent(10, false);
  z.sent(20, false);
  t.ok(z.purge(false));
  t.same(q.shift(), range(0, 1));
  const cq: ExtendedError[] = [];
  const closed = new ZeroCopy(cq);
  closed.sent(10, false);
  t.notOk(closed.purge(true));
  t.equal(cq.length, 0);
});

t.test(`${MAX_PENDING} sends in flight fill the budget (ENOBUFS for the next)`, async (t) => {
  const q: ExtendedError[] = [];
  const z = new ZeroCopy(q);
  for (let i = 1; i < MAX_PENDING; i++) z.sent(i, false);
  t.notOk(z.full());
  z.sent(MAX_PENDING, false);
  t.ok(z.full());
  z.acked(1);
  t.notOk(z.full(), 'one acknowledged frees one');
});
