// Runs the tap suite and ends with the failures (each with the path of subtests leading to it and its diagnostic
// block) and one plain closing line, "tests: N passed, N failed, N skipped", so CI's tail shows what failed and the
// outcome; the exit status is tap's.
import { spawn } from 'node:child_process';

const child = spawn('npx', ['tap', ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'inherit'] });
let tail = '';
let partial = '';
const path = []; // subtest names by indentation level (4 spaces a level)
const failures = [];
let diagnostic = null; // lines of the YAML block after a "not ok", while it is being read
const MAX_FAILURE_LINES = 60;

function onLine(line) {
  const indent = line.match(/^ */)[0].length;
  if (diagnostic) {
    diagnostic.lines.push(line);
    if (line.trim() === '...' || diagnostic.lines.length > MAX_FAILURE_LINES) diagnostic = null;
    return;
  }
  const subtest = line.match(/^\s*# Subtest: (.*)$/);
  if (subtest) {
    const level = indent / 4;
    path.length = level;
    path[level] = subtest[1];
    return;
  }
  const notOk = line.match(/^\s*not ok \d+ - (.*?)(\s+# time=.*)?$/);
  if (notOk) {
    const level = indent / 4;
    const failure = { where: [...path.slice(0, level), notOk[1]].join(' > '), lines: [] };
    failures.push(failure);
    diagnostic = failure;
  }
}

child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const text = chunk.toString();
  tail = (tail + text).slice(-8192);
  const lines = (partial + text).split('\n');
  partial = lines.pop();
  for (const line of lines) onLine(line);
});
child.on('exit', (code, signal) => {
  const summary = [...tail.matchAll(/^# \{ (.*) \}$/gm)].pop()?.[1] ?? '';
  const counts = Object.fromEntries(summary.split(', ').map((kv) => kv.split(': ')).map(([k, v]) => [k, Number(v)]));
  const passed = counts.pass ?? 0;
  const failed = counts.fail ?? 0;
  const skipped = (counts.skip ?? 0) + (counts.todo ?? 0);
  // A failing subtest also fails every test above it; list only the innermost ones (those no other failure is under).
  const innermost = failures.filter((f) => !failures.some((g) => g !== f && g.where.startsWith(f.where + ' > ')));
  if (innermost.length > 0) {
    process.stdout.write(`\nfailures (${innermost.length}):\n`);
    for (const f of innermost.slice(0, 20)) {
      process.stdout.write(`\nnot ok: ${f.where}\n${f.lines.join('\n')}\n`);
    }
  }
  process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exit(code ?? (signal ? 1 : 0));
});
