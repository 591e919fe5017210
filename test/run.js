// Runs the tap suite and ends with one plain closing line, "tests: N passed, N failed, N skipped", so CI can read
// the outcome; the exit status is tap's.
import { spawn } from 'node:child_process';

const child = spawn('npx', ['tap', ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-8192);
});
child.on('exit', (code, signal) => {
  const summary = [...tail.matchAll(/^# \{ (.*) \}$/gm)].pop()?.[1] ?? '';
  const counts = Object.fromEntries(summary.split(', ').map((kv) => kv.split(': ')).map(([k, v]) => [k, Number(v)]));
  const passed = counts.pass ?? 0;
  const failed = counts.fail ?? 0;
  const skipped = (counts.skip ?? 0) + (counts.todo ?? 0);
  process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exit(code ?? (signal ? 1 : 0));
});
