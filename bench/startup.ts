/**
 * Start-up of the `tsvisor` command: the median wall time of `tsvisor --help` from the compiled build (the
 * installed command), printed beside `node -e 0` (Node's own start) and the checkout's source launcher (tsx
 * compiling TypeScript). The target is a median of at most 120 ms for the compiled command. Builds dist/ first
 * (`npm run build`), so it never measures a stale build:
 *
 *   node --import tsx bench/startup.ts [--runs 21]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const TOP = fileURLToPath(new URL('..', import.meta.url));
const TARGET_MS = 120;

const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 21;
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write('startup: --runs takes a positive whole number\n');
  process.exit(2);
}

execFileSync('npm', ['run', 'build', '--silent'], { cwd: TOP, stdio: 'inherit' });

const subjects: { label: string; argv: string[] }[] = [
  { label: 'node -e 0', argv: ['-e', '0'] },
  { label: 'tsvisor --help (compiled, dist/cli/bin.js)', argv: ['dist/cli/bin.js', '--help'] },
  { label: 'tsvisor --help (sources, cli/tsvisor.js + tsx)', argv: ['cli/tsvisor.js', '--help'] },
];

/** Wall time of one run in ms; a failed run ends the benchmark, as its time would mean nothing. */
function once(argv: string[]): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, argv, { cwd: TOP, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`node ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// One warm-up each (file cache), then the subjects interleaved, so a burst of load on the machine falls on all.
for (const s of subjects) once(s.argv);
const times = subjects.map(() => [] as number[]);
for (let i = 0; i < runs; i++) subjects.forEach((s, j) => times[j]!.push(once(s.argv)));

const medians = times.map(median);
process.stdout.write(`start-up, median of ${runs} runs (min .. max), ms\n`);
subjects.forEach((s, j) => {
  const t = times[j]!;
  const extra = j === 0 ? '' : `   node + ${(medians[j]! - medians[0]!).toFixed(1)}`;
  process.stdout.write(`  ${s.label.padEnd(48)} ${medians[j]!.toFixed(1).padStart(6)}  (${Math.min(...t).toFixed(1)} .. ${Math.max(...t).toFixed(1)})${extra}\n`);
});
// The figures scale with how busy the machine is; node -e 0 beside them shows it, and so does the load.
process.stdout.write(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} CPUs\n`);
const compiled = medians[1]!;
process.stdout.write(`target: compiled tsvisor --help median ≤ ${TARGET_MS} ms: ${compiled <= TARGET_MS ? 'met' : 'MISSED'} (${compiled.toFixed(1)} ms)\n`);
