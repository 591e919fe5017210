// lib/unix.ts pollFd: interests switched on and off, and a handle handed to a new owner (retarget), over a real
// socketpair on Node's main loop.
import t from 'tap';
import * as ux from '../../lib/unix.ts';

const until = async (ok: () => boolean) => {
  for (let i = 0; i < 400 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
};

t.test('pollFd: readable while bytes wait and the interest is on; retarget sends later events to the new owner only', async (t) => {
  const [a, b] = ux.socketPair('stream');
  t.teardown(() => (ux.close(a), ux.close(b)));
  const seen = { first: 0, second: 0 };
  const poll = ux.pollFd(a, (r) => r && seen.first++);
  t.teardown(() => poll.close());
  t.equal(ux.send(b, new Uint8Array([1])), 1);
  await new Promise((r) => setTimeout(r, 30));
  t.equal(seen.first, 0, 'no interest, no event');
  poll.set(true, false);
  await until(() => seen.first > 0);
  t.ok(seen.first > 0, 'readable reported to the first owner');
  poll.set(false, false);
  poll.retarget((r) => {
    if (!r) return;
    seen.second++;
    ux.recv(a, new Uint8Array(8));
    poll.set(false, false);
  });
  const before = seen.first;
  poll.set(true, false);
  await until(() => seen.second > 0);
  t.equal(seen.second, 1, 'the new owner hears the byte and reads it');
  t.equal(seen.first, before, 'the first owner hears nothing more');
  t.equal(ux.recv(a, new Uint8Array(8), ux.U.MSG_DONTWAIT), -ux.U.EAGAIN, 'read once');
  t.end();
});
