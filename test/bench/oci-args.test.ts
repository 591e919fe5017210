// bench/oci.ts's command line: --help says what it takes; a mistake is one line and status 2, before any work (an
// unknown option, --help included, used to run the whole benchmark, a private dockerd with it).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';

const BENCH = join(import.meta.dirname, '../../bench/oci.ts');

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', BENCH, ...args], { timeout: 60000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

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
