// bench/oci.ts's command line: --help says what it takes; a mistake is one line and status 2, before any work (an
// unknown option, --help included, used to run the whole benchmark, a private dockerd with it).
import t from 'tap';
import { runBench } from './run-bench.ts';

const run = (...args: string[]) => runBench('oci.ts', ...args);

t.test('--help → the options, status 0', async (t) => {
  const r = await run('--help');
  t.equal(r.code, 0);
  t.match(r.out, /--runs N/);
  t.match(r.out, /--seconds N/);
  t.match(r.out, /--json FILE/);
});

t.test('an unknown option → one line naming it, status 2, nothing run', async (t) => {
  const r = await run('--runs', '3', '--bogus');
  t.equal(r.code, 2);
  t.equal(r.err, 'bench/oci.ts: unknown option --bogus (--help lists the options)\n');
  t.equal(r.out, '');
});

t.test('a bad number or a missing value → one line, status 2', async (t) => {
  const bad = await run('--seconds', '0');
  t.equal(bad.code, 2);
  t.equal(bad.err, 'bench/oci.ts: --seconds: 0 is outside 1..600 (--help lists the options)\n');
  const missing = await run('--json');
  t.equal(missing.code, 2);
  t.equal(missing.err, 'bench/oci.ts: option --json needs a value (--help lists the options)\n');
});
