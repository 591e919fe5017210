// The whole shared corpus against the tsvisor DUT (virtual clock, seconds for all of it): freebsd/, gvisor/ and
// upstream packetdrill's google/ scripts. Every script that passed before still passes, and what newly passes is
// listed so the baseline can grow.
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { dutFactories } from '../../cli/conformance.ts';
import { runAll } from './runner.ts';

const CORPUS = join(import.meta.dirname, '../../../shared/conformance');
const BASELINE = join(import.meta.dirname, '../conformance/tsvisor-passing.txt');

t.test('the shared corpus on tsvisor: no regression against the passing baseline', { skip: !existsSync(CORPUS) && `no corpus at ${CORPUS}` }, async (t) => {
  const rows = await runAll([CORPUS], { duts: await dutFactories('tsvisor') });
  const baseline = readFileSync(BASELINE, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  t.ok(rows.length >= 380, `${rows.length} corpus scripts ran`);
  // Upstream packetdrill's own scripts (google/) are part of it: their passes are in the same baseline.
  const google = rows.filter((r) => relative(CORPUS, r.script).startsWith('google/'));
  t.ok(google.length >= 138, `${google.length} of upstream packetdrill's scripts (google/) ran`);
  const verdict = new Map(rows.map((r) => [relative(CORPUS, r.script), r]));
  const regressed = baseline.filter((s) => verdict.get(s)?.verdict !== 'pass');
  t.same(
    regressed.map((s) => `${s}: ${verdict.get(s)?.verdict ?? 'missing'} ${verdict.get(s)?.detail ?? ''}`),
    [],
    'every baseline script still passes',
  );
  const fresh = [...verdict.entries()].filter(([s, r]) => r.verdict === 'pass' && !baseline.includes(s)).map(([s]) => s);
  if (fresh.length) t.comment(`newly passing (add to ${relative(process.cwd(), BASELINE)}):\n${fresh.join('\n')}`);
  const counts: Record<string, number> = {};
  for (const r of rows) counts[r.verdict] = (counts[r.verdict] ?? 0) + 1;
  t.comment(`tsvisor on the corpus: ${JSON.stringify(counts)}`);
  for (const top of ['freebsd', 'gvisor', 'google']) {
    const mine = rows.filter((r) => relative(CORPUS, r.script).startsWith(`${top}/`));
    t.comment(`tsvisor on ${top}/: ${mine.filter((r) => r.verdict === 'pass').length} of ${mine.length} pass`);
  }
});
