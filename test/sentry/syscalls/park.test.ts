// Parked calls: the signal watchdog's reading of /proc/<tid>/status (unit), then a real python3 whose blocking
// accept is parked and interrupted by SIGUSR1 (EINTR without SA_RESTART, a restart with it) or killed.
import t from 'tap';
import { ERESTARTSYS, ParkedCalls, deliverable, parseSigState } from '../../../sentry/syscalls/park.ts';
import { B4, twoNetstacks } from '../../netstack/adapter/helpers.ts';
import { bindNet } from '../../../netstack/adapter/net.ts';
import type { Sentry } from '../../../sentry/syscalls/dispatch.ts';
import { HANG_MS, waitFor } from '../../lib/wait.ts';
import { run } from './helpers.ts';

const status = (pnd: string, shd: string, blk: string, cgt: string) =>
  `Name:\tpython3\nTgid:\t7\nSigQ:\t0/1\nSigPnd:\t${pnd}\nShdPnd:\t${shd}\nSigBlk:\t${blk}\nSigIgn:\t0\nSigCgt:\t${cgt}\n`;
const USR1 = '0000000000000200'; // bit 9 = signal 10
const NONE = '0000000000000000';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves once the program's accept is parked in the Sentry (after `restarts` restarts of it), up to a hang
 * bound: a signal sent on a timer instead could come before the call is trapped on a loaded machine.
 */
function parked(sentry: Sentry, restarts = 0): Promise<void> {
  return waitFor(() => sentry.stats().parked === 1 && sentry.stats().restarted >= restarts, HANG_MS, 'the parked accept');
}

t.test('status lines → which caught, unblocked signal is pending', async (t) => {
  const st = (a: string, b: string, c: string, d: string) => deliverable(parseSigState(status(a, b, c, d))!);
  t.equal(st(USR1, NONE, NONE, USR1), 'thread');
  t.equal(st(NONE, USR1, NONE, USR1), 'shared');
  t.equal(st(USR1, NONE, USR1, USR1), undefined, 'blocked');
  t.equal(st(USR1, NONE, NONE, NONE), undefined, 'not caught (default action: fatal ones end the wait themselves)');
  t.equal(parseSigState('Name:\tx\n'), undefined, 'a thread that is gone');
  t.equal(ERESTARTSYS, 512);
});

t.test('watchdog: a thread-directed signal ends the park at once; a shared one after 20 ms; exit aborts', async (t) => {
  let text = status(NONE, NONE, NONE, USR1);
  const calls = new ParkedCalls(() => text);
  const ends: string[] = [];
  const exit = new AbortController();
  const p = calls.park(1n, 7, exit.signal, (why) => ends.push(`1:${why}`));
  await sleep(30);
  t.same(ends, [], 'nothing pending: still parked');
  text = status(USR1, NONE, NONE, USR1);
  for (let i = 0; i < 200 && !ends.length; i++) await sleep(5);
  t.same(ends, ['1:signal']);
  t.ok(p.signal.aborted, 'the wait was aborted before the answer');
  text = status(NONE, USR1, NONE, USR1);
  const t0 = performance.now();
  calls.park(2n, 7, exit.signal, (why) => ends.push(`2:${why}`));
  for (let i = 0; i < 400 && ends.length < 2; i++) await sleep(2);
  t.same(ends[1], '2:signal');
  t.ok(performance.now() - t0 >= 20, 'a process-directed signal waits its 20 ms for another thread');
  text = status(NONE, NONE, NONE, USR1);
  calls.park(3n, 7, exit.signal, (why) => ends.push(`3:${why}`));
  exit.abort();
  await sleep(1);
  t.same(ends[2], '3:exit');
  t.equal(calls.size, 0);
});

const acceptScript = (restart: boolean) => `
import signal, socket
hits = []
def on_usr1(sig, frame):
    hits.append(sig)
    ${restart ? 'pass' : "raise InterruptedError('handler')"}
signal.signal(signal.SIGUSR1, on_usr1)
${restart ? 'signal.siginterrupt(signal.SIGUSR1, False)' : ''}
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind(('0.0.0.0', 8100))
l.listen(4)
print('LISTENING', flush=True)
try:
    c, peer = l.accept()
    print('accepted', peer[0], 'hits', len(hits))
except InterruptedError as e:
    print('interrupted', e, 'hits', len(hits))
`;

t.test('SIGUSR1 during a parked accept, handler without SA_RESTART → the handler runs and accept fails', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const r = await run(env, acceptScript(false), (line, sb, sentry) => {
    if (line === 'LISTENING') void parked(sentry).finally(() => sb.kill('SIGUSR1'));
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^interrupted handler hits 1$/m);
  t.ok(r.straced.some((l) => /<\.\.\. accept4? resumed> = \? ERESTARTSYS/.test(l)), r.straced.join('\n'));
  t.equal(r.left, 0);
});

t.test('SIGUSR1 with SA_RESTART → the handler runs, accept is re-issued (trapped again) and gets the connection', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const nb = bindNet(env.b);
  const r = await run(env, acceptScript(true), (line, sb, sentry) => {
    if (line !== 'LISTENING') return;
    void parked(sentry)
      .finally(() => sb.kill('SIGUSR1'))
      .then(() => parked(sentry, 1))
      .finally(() => {
        const c = nb.connect(8100, '198.18.0.1');
        c.on('error', () => {});
        c.on('connect', () => c.end());
      });
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^accepted ${B4.replace(/\./g, '\\.')} hits 1$`, 'm'));
  const accepts = r.straced.filter((l) => /accept4?\(3, .*<unfinished/.test(l));
  t.equal(accepts.length, 2, 'parked twice: before and after the restart');
  t.equal(r.left, 0);
});

t.test('SIGKILL while accept is parked → no socket, pair or parked call left behind', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  let during = -1;
  const r = await run(env, acceptScript(false), (line, sb, sentry) => {
    if (line !== 'LISTENING') return;
    void parked(sentry).finally(() => {
      during = sentry.stats().parked;
      sb.kill('SIGKILL');
    });
  });
  t.equal(during, 1, 'the accept was parked when the kill came');
  t.equal(r.status, 137);
  t.equal(r.stats.parked, 0);
  t.equal(r.left, 0, 'the listener was released with its pair');
});
