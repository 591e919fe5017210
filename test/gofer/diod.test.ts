import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Client } from '../../gofer/client/client.ts';
import { scratch, startServer } from './helpers.ts';
import { everyMessage } from './scenario.ts';

// Debian's diod is the outside reference: its server for our client, its client tools for our server.
const haveDiod = spawnSync('diod', ['--help'], { encoding: 'utf8' }).error === undefined;

async function until(ok: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test('our client against diod\'s server → every message', { skip: !haveDiod && 'diod is not installed' }, async (t) => {
  const s = scratch(t);
  const diod: ChildProcess = spawn('diod', ['-f', '-n', '-l', s.sock, '-e', s.root, '-L', 'stderr'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    cwd: s.dir, // diod 1.0.24 now and then dumps core when stopped: keep it in the scratch directory
  });
  let log = '';
  diod.stderr!.on('data', (d) => (log += d));
  const exited = new Promise((r) => diod.once('exit', r));
  t.teardown(async () => {
    diod.kill('SIGTERM');
    await exited;
  });
  await until(() => existsSync(s.sock), 'diod\'s socket');
  const c = await Client.connect(s.sock, 65536);
  t.teardown(() => c.close());
  t.equal(c.msize, 65536, 'Tversion with diod');
  await everyMessage(t, c, s.root, s.root, true);
  t.ok(s.canaryIntact());
  if (t.passing() === false) t.comment(log);
});

function diodTool(args: string[]) {
  return spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 30000 });
}

t.test('diod\'s own tools against our server → diodls, diodcat, diodload', { skip: !haveDiod && 'diod is not installed' }, async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'greeting'), 'hello from tsvisor\n');
  mkdirSync(join(s.root, 'dir'));
  for (let i = 0; i < 5; i++) writeFileSync(join(s.root, 'dir', `n${i}`), `${i}`);
  // diodload copies ctl:zero to ctl:null and stats ctl:null, on the aname "ctl".
  mkdirSync(join(s.root, 'ctl'));
  writeFileSync(join(s.root, 'ctl', 'zero'), Buffer.alloc(4 << 20));
  writeFileSync(join(s.root, 'ctl', 'null'), '');
  const server = await startServer(t, s);
  const ls = await runAsync(['diodls', '-s', s.sock, '-a', '/', '-l', '/', 'dir']);
  t.equal(ls.status, 0, 'diodls exit 0');
  for (const n of ['greeting', 'dir', 'ctl', 'n0', 'n4']) t.match(ls.stdout, new RegExp(`\\s${n}\\n`), `diodls lists ${n}`);
  t.match(ls.stdout, /-rw-r--r--\.\s+1 root\s+root\s+19 .* greeting/, 'with mode, owner and size');
  const cat = await runAsync(['diodcat', '-s', s.sock, '-a', '/', 'greeting', 'dir/n3']);
  t.equal(cat.status, 0);
  t.equal(cat.stdout, 'hello from tsvisor\n3', 'diodcat reads through our server');
  const missing = await runAsync(['diodcat', '-s', s.sock, '-a', '/', 'nope']);
  t.not(missing.status, 0, 'a missing file → diodcat fails');
  t.match(missing.stderr, /No such file or directory/, 'with ENOENT from our Rlerror');
  const escape = await runAsync(['diodcat', '-s', s.sock, '-a', '/', '../canary']);
  t.not(escape.status, 0, 'diodcat ../canary fails');
  t.notMatch(escape.stdout, /canary/);
  const load = await runAsync(['diodload', '-s', s.sock, '-r', '1', '-n', '2']);
  t.equal(load.status, 0, 'diodload (read/write) exit 0');
  const rw = /(\d+) ops\/s, (\d+) rMB\/s, (\d+) wMB\/s/.exec(load.stdout + load.stderr);
  t.ok(rw && Number(rw[1]) > 0 && Number(rw[2]) > 0, `diodload moved data: ${rw?.[0]}`);
  t.ok(statSync(join(s.root, 'ctl', 'null')).size > 0, 'its writes landed');
  const ga = await runAsync(['diodload', '-s', s.sock, '-r', '1', '-n', '2', '-g']);
  const g = /(\d+) ops\/s/.exec(ga.stdout + ga.stderr);
  t.ok(g && Number(g[1]) > 0, `diodload -g getattrs: ${g?.[0]}`);
  t.equal(server.stats.internalErrors, 0);
  t.equal(readFileSync(s.canary, 'utf8').includes('canary'), true);
  t.ok(s.canaryIntact());
});

/** Runs a diod tool without blocking the event loop our in-process server needs (outside the checkout, so a core dump cannot land in it). */
function runAsync(argv: string[], cwd = '/tmp'): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30000);
    p.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
void diodTool;
