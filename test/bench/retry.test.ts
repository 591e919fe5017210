// The bench's retry of a failed row (bench/run.ts retryOnce): a row that fails is tried once more after the system
// is started again; the second failure is what the report says, with the first try's reason when it differs.
import t from 'tap';
import { retryOnce } from '../../bench/run.ts';

/** An attempt that fails with the given messages in turn, then returns 'ok'; counts its calls. */
function attempts(...failures: string[]) {
  const a = {
    calls: 0,
    run: async (): Promise<string> => {
      const f = failures[a.calls++];
      if (f !== undefined) throw new Error(f);
      return 'ok';
    },
  };
  return a;
}

t.test('a row that works is run once and never restarts its system', async (t) => {
  const a = attempts();
  let restarts = 0;
  t.equal(await retryOnce(a.run, async () => void restarts++), 'ok');
  t.equal(a.calls, 1);
  t.equal(restarts, 0);
});

t.test('a row that fails once: the system restarts (told why) and the second try is the figure', async (t) => {
  const a = attempts('iperf3 did not finish within 25 s');
  const told: string[] = [];
  t.equal(await retryOnce(a.run, async (e) => void told.push(e.message)), 'ok');
  t.equal(a.calls, 2);
  t.same(told, ['iperf3 did not finish within 25 s']);
});

t.test('a row that fails twice for one reason: that reason, marked as retried', async (t) => {
  const a = attempts('iperf3 did not finish within 25 s\nmore lines', 'iperf3 did not finish within 25 s');
  await t.rejects(retryOnce(a.run, async () => {}), { message: 'iperf3 did not finish within 25 s (twice: retried once)' });
  t.equal(a.calls, 2);
});

t.test('a row that fails twice for different reasons: the last, then the first', async (t) => {
  const a = attempts('iperf3 did not finish within 25 s', 'iperf3: the server is busy running a test. try again later');
  await t.rejects(retryOnce(a.run, async () => {}), {
    message: 'iperf3: the server is busy running a test. try again later (retried once; the first try: iperf3 did not finish within 25 s)',
  });
});

t.test('a system that does not start again: its reason, and the row is not tried a second time', async (t) => {
  const a = attempts('wrk: connection refused');
  await t.rejects(
    retryOnce(a.run, async () => {
      throw new Error('pasta did not start: address in use');
    }),
    { message: 'pasta did not start: address in use (retried once; the first try: wrk: connection refused)' },
  );
  t.equal(a.calls, 1);
});
