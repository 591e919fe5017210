// Runs the tap suite and ends with the failures (each with the path of subtests leading to it and its diagnostic
// block) and plain closing lines, "tests: N passed, N failed, N skipped" and "outcome: ...", so CI's tail shows
// what failed and how the run ended.
//
// `npm test` with no arguments runs two lanes at once, as two tap processes: the folders package.json's tap config
// lists under `serial` (they create namespaces, veths and private daemons, one file at a time, output shown as it
// comes), and every other test file, one at a time beside them (output shown when the lane ends). On a 2-CPU
// machine each lane keeps about one CPU busy; run one after the other they took ~25 min. A file that failed is run
// once more, alone, at the end: the run passes if it then passes, and the closing lines name it either way.
// The tsvisor processes the tests start run the compiled package (dist/, TSVISOR_TEST_CLI=dist, see
// test/cli-under-test.ts), built first here if any source is newer than it.
// With arguments (files, folders, tap options) it is one tap run of those, as `npx tap ARGS`, with the tsvisor
// processes run from the sources.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const MAX_FAILURE_LINES = 60;
const ROOT = join(import.meta.dirname, '..');

/** One tap process, its output parsed for failures and the closing counts. */
class Lane {
  constructor(args, { live }) {
    this.live = live;
    this.buffered = [];
    this.tail = '';
    this.partial = '';
    this.path = []; // subtest names by indentation level (4 spaces a level)
    this.failures = [];
    this.failedFiles = new Set();
    this.diagnostic = null; // the failure whose YAML block after "not ok" is being read
    this.child = spawn('npx', ['tap', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    this.started = new Promise((resolve) => this.child.stdout.once('data', resolve));
    this.done = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
    this.child.stdout.on('data', (chunk) => this.onData(chunk));
  }

  onData(chunk) {
    if (this.live) process.stdout.write(chunk);
    else this.buffered.push(chunk);
    const text = chunk.toString();
    this.tail = (this.tail + text).slice(-8192);
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop();
    for (const line of lines) this.onLine(line);
  }

  onLine(line) {
    const indent = line.match(/^ */)[0].length;
    if (this.diagnostic) {
      this.diagnostic.lines.push(line);
      if (line.trim() === '...' || this.diagnostic.lines.length > MAX_FAILURE_LINES) this.diagnostic = null;
      return;
    }
    const subtest = line.match(/^\s*# Subtest: (.*)$/);
    if (subtest) {
      const level = indent / 4;
      this.path.length = level;
      this.path[level] = subtest[1];
      return;
    }
    const notOk = line.match(/^\s*not ok \d+ - (.*?)(\s+# time=.*)?$/);
    if (notOk) {
      const level = indent / 4;
      const failure = { where: [...this.path.slice(0, level), notOk[1]].join(' > '), lines: [] };
      this.failures.push(failure);
      this.diagnostic = failure;
      if (level === 0) this.failedFiles.add(notOk[1]);
    }
  }

  /** The counts of tap's closing `# { total: ..., pass: ... }` line. */
  counts() {
    const summary = [...this.tail.matchAll(/^# \{ (.*) \}$/gm)].pop()?.[1] ?? '';
    const c = Object.fromEntries(summary.split(', ').map((kv) => kv.split(': ')).map(([k, v]) => [k, Number(v)]));
    return { passed: c.pass ?? 0, failed: c.fail ?? 0, skipped: (c.skip ?? 0) + (c.todo ?? 0), known: summary !== '' };
  }
}

/** Test files under test/ as the tap config's `include` finds them, split by its `serial` folders. */
function suiteFiles() {
  const tap = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).tap;
  const serialDirs = (tap.serial ?? []).map((d) => d.replace(/\/$/, '') + sep);
  const files = readdirSync(join(ROOT, 'test'), { recursive: true })
    .map((f) => relative(ROOT, join(ROOT, 'test', f)))
    .filter((f) => f.endsWith('.test.ts'))
    .sort();
  const isSerial = (f) => serialDirs.some((d) => f.startsWith(d));
  return { serial: files.filter(isSerial), other: files.filter((f) => !isSerial(f)) };
}

function report(lanes) {
  const failures = lanes.flatMap((l) => l.failures);
  // A failing subtest also fails every test above it; list only the innermost ones (those no other failure is under).
  const innermost = failures.filter((f) => !failures.some((g) => g !== f && g.where.startsWith(f.where + ' > ')));
  if (innermost.length > 0) {
    process.stdout.write(`\nfailures (${innermost.length}):\n`);
    for (const f of innermost.slice(0, 20)) process.stdout.write(`\nnot ok: ${f.where}\n${f.lines.join('\n')}\n`);
  }
  const total = { passed: 0, failed: 0, skipped: 0 };
  for (const l of lanes) {
    const c = l.counts();
    total.passed += c.passed;
    total.failed += c.failed;
    total.skipped += c.skipped;
  }
  process.stdout.write(`\ntests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped\n`);
}

const args = process.argv.slice(2);
if (args.length > 0) {
  const lane = new Lane(args, { live: true });
  const code = await lane.done;
  report([lane]);
  process.exit(code);
}

/** Whether dist/ was built after every file `npm run build` compiles from was last changed. */
function distIsFresh() {
  const built = join(ROOT, 'dist/cli/bin.js');
  if (!existsSync(built)) return false;
  const at = statSync(built).mtimeMs;
  const sources = ['index.ts', 'package.json', 'tsconfig.json', 'tsconfig.build.json'];
  for (const dir of ['lib', 'netstack', 'sentry', 'gofer', 'cli', 'bench', 'test/packetdrill']) {
    for (const f of readdirSync(join(ROOT, dir), { recursive: true })) {
      if (/\.(ts|js|c)$/.test(f) && !f.endsWith('.d.ts')) sources.push(join(dir, f));
    }
  }
  return sources.every((f) => statSync(join(ROOT, f)).mtimeMs <= at);
}

if (!distIsFresh()) {
  process.stdout.write('# dist/ is older than the sources: npm run build\n');
  if (spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' }).status !== 0) {
    process.stdout.write('outcome: failed (npm run build failed)\n');
    process.exit(1);
  }
}
process.env.TSVISOR_TEST_CLI = 'dist';
const { serial, other } = suiteFiles();
const serialLane = new Lane(serial, { live: true });
// tap rebuilds itself when its plugin set changed (a fresh checkout): the second lane starts once the first one
// has begun its tests, so that two rebuilds never race.
await Promise.race([serialLane.started, serialLane.done]);
const otherLane = new Lane(['--jobs=1', ...other], { live: false });
const codes = [await serialLane.done, await otherLane.done];
process.stdout.write(`\n# the other ${other.length} test files, run beside the ${serial.length} serial ones:\n`);
for (const chunk of otherLane.buffered) process.stdout.write(chunk);
const lanes = [serialLane, otherLane];
report(lanes);

const failedFiles = [...serialLane.failedFiles, ...otherLane.failedFiles];
const lanesFailedWithoutAFile = lanes.some((l, i) => codes[i] !== 0 && (l.failedFiles.size === 0 || !l.counts().known));
const again = [];
for (const file of failedFiles) {
  process.stdout.write(`\n# ${file} failed: once more, alone\n`);
  const lane = new Lane([file], { live: true });
  const code = await lane.done;
  const c = lane.counts();
  again.push({ file, passed: code === 0, line: `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped` });
}
for (const a of again) process.stdout.write(`again alone: ${a.file}: ${a.line}${a.passed ? '' : ' (failed again)'}\n`);
const stillFailing = again.filter((a) => !a.passed);
if (lanesFailedWithoutAFile) {
  process.stdout.write(`outcome: failed (tap exited ${codes.join(' / ')} without naming a failed file)\n`);
  process.exit(1);
} else if (stillFailing.length > 0) {
  process.stdout.write(`outcome: failed (${stillFailing.map((a) => a.file).join(', ')} failed twice)\n`);
  process.exit(1);
} else if (again.length > 0) {
  process.stdout.write(`outcome: passed; failed once and passed alone: ${again.map((a) => a.file).join(', ')}\n`);
} else {
  process.stdout.write('outcome: passed\n');
}
process.exit(0);
