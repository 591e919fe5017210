// bench/gofer.ts's command line: --help says what it takes; anything else is one line and status 2, before any
// work (an unknown option used to run the whole benchmark, several minutes, as if it were not there).
import t from 'tap';
import { runBench } from './run-bench.ts';

const run = (...args: string[]) => runBench('gofer.ts', ...args);

t.test('--help → the options, status 0', async (t) => {
  const r = await run('--help');
  t.equal(r.code, 0);
  t.match(r.out, /--quick/);
  t.match(r.out, /--untar/);
  t.match(r.out, /--json FILE/);
});

t.test('an unknown option → one line naming it, status 2, nothing run', async (t) => {
  const r = await run('--quick', '--bogus');
  t.equal(r.code, 2);
  t.equal(r.err, "bench/gofer.ts: unknown option '--bogus' (--help lists them)\n");
  t.equal(r.out, '');
});

t.test('--json without a file → one line, status 2', async (t) => {
  const r = await run('--json');
  t.equal(r.code, 2);
  t.equal(r.err, 'bench/gofer.ts: --json needs a file name\n');
});
