// collectChild: a child's output and exit, also for a child that ended before the call (a test that collects a
// program it saw exit must not wait for events that already came), and the SIGKILL at the time limit.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import { collectChild } from '../../lib/exec.ts';

t.test('a running child: its output and exit status', async (t) => {
  const r = await collectChild(spawn('/bin/sh', ['-c', 'echo out; echo err >&2; exit 3']), 10000);
  t.same(r, { code: 3, signal: null, stdout: 'out\n', stderr: 'err\n' });
});

t.test('a child that already ended (its close event came before the call): resolves with its status at once', async (t) => {
  const child = spawn('/bin/sh', ['-c', 'exit 7']);
  await once(child, 'close');
  const started = Date.now();
  const r = await collectChild(child, 60000);
  t.equal(r.code, 7);
  t.ok(Date.now() - started < 1000, 'no wait for events that will not come again');
});

t.test('a child that exited but whose output a process it started still holds: ends after the grace time', async (t) => {
  const child = spawn('/bin/sh', ['-c', 'sleep 30 & echo $!; exit 5'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let leftover = '';
  child.stdout.on('data', (d) => (leftover += d));
  await once(child, 'exit');
  const r = await collectChild(child, 60000);
  process.kill(Number(leftover.trim()), 'SIGKILL');
  t.equal(r.code, 5);
  t.match(r.stderr, /output stayed open/);
});

t.test('past the time limit: SIGKILL', async (t) => {
  const r = await collectChild(spawn('sleep', ['30']), 200);
  t.equal(r.signal, 'SIGKILL');
  t.equal(r.code, null);
});
