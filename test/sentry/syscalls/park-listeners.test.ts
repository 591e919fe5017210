// ParkedCalls and the target's exit signal: a call answered normally takes its exit listener off the signal, so a
// server parking one blocking accept after another does not pile up listeners (and what they hold) until it exits.
import { getEventListeners } from 'node:events';
import t from 'tap';
import { ParkedCalls } from '../../../sentry/syscalls/park.ts';

// A thread with nothing pending: the watchdog keeps the call parked.
const QUIET = 'SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigCgt:\t0000000000000000\n';

t.test('1000 calls parked and answered → no listener left on the exit signal; exit still ends a parked one', async (t) => {
  const calls = new ParkedCalls(() => QUIET);
  const exit = new AbortController();
  for (let i = 0n; i < 1000n; i++) {
    calls.park(i, 1, exit.signal, () => t.fail('ended early'));
    calls.done(i);
  }
  t.equal(getEventListeners(exit.signal, 'abort').length, 0, 'no listener left behind');
  let why = '';
  const p = calls.park(5000n, 1, exit.signal, (w) => (why = w));
  t.equal(getEventListeners(exit.signal, 'abort').length, 1, 'one for the call parked now');
  exit.abort();
  t.equal(why, 'exit');
  t.ok(p.signal.aborted, 'its waits are aborted');
  t.equal(calls.size, 0);
  t.end();
});
