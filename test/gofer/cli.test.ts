import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { Client } from '../../gofer/client/client.ts';
import { text } from '../../gofer/p9/codec.ts';
import * as fs from '../../lib/fs.ts';
import { F } from '../../lib/fs.ts';
import { errCode, scratch } from './helpers.ts';

import { CLI } from '../cli-under-test.ts';

function runCli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

t.test('bad input → one line naming the problem, non-zero status, nothing left behind', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.dir, 'plain'), 'x');
  writeFileSync(join(s.dir, 'taken'), 'keep me');
  const cases: [string, string[], number, RegExp][] = [
    ['DIR missing', ['--root', join(s.dir, 'nope'), '--listen', `unix:${s.sock}`], 1, /--root .*nope: no such directory/],
    ['DIR not a directory', ['--root', join(s.dir, 'plain'), '--listen', `unix:${s.sock}`], 1, /not a directory/],
    ['--listen path in use', ['--root', s.root, '--listen', `unix:${join(s.dir, 'taken')}`], 1, /taken: in use/],
    ['--listen not unix:', ['--root', s.root, '--listen', '127.0.0.1:564'], 2, /--listen: '127.0.0.1:564' is not unix:PATH/],
    ['bad --uid-map', ['--root', s.root, '--listen', `unix:${s.sock}`, '--uid-map', '0:1'], 2, /--uid-map: '0:1' is not/],
    ['--root missing', ['--listen', `unix:${s.sock}`], 2, /missing required option --root/],
    ['bad --poll-us', ['--root', s.root, '--listen', `unix:${s.sock}`, '--no-confine', '--poll-us', 'soon'], 2, /--poll-us: 'soon' is not a whole number/],
  ];
  for (const [what, args, status, re] of cases) {
    const r = runCli(['gofer', ...args]);
    t.equal(r.status, status, `${what}: status ${status}`);
    t.match(r.stderr, re, what);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    t.notOk(existsSync(s.sock), `${what}: no socket left`);
  }
  t.equal(readFileSync(join(s.dir, 'taken'), 'utf8'), 'keep me', 'a file in the way is left alone');
});

/** Descendants of a pid, by the parent pids of every process in /proc. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const m = /^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${e}/status`, 'utf8'));
      if (m) parent.set(Number(e), Number(m[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    for (const [child, pp] of parent) if (pp === p) (out.push(child), todo.push(child));
  }
  return out;
}

async function until(what: string, ok: () => boolean, ms = 30000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** `tsvisor gofer --root ROOT --listen unix:SOCK [extra]`, killed at the test's end if still running; its stderr kept. */
function startGofer(t: { teardown: (fn: () => void) => void }, s: { root: string; sock: string }, extra: string[] = []) {
  const gofer: ChildProcess = spawn(process.execPath, [CLI, 'gofer', '--root', s.root, '--listen', `unix:${s.sock}`, ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const out = { gofer, stderr: '', exited: new Promise<number | null>((r) => gofer.once('exit', (c) => r(c))) };
  gofer.stderr!.on('data', (d) => (out.stderr += d));
  t.teardown(() => {
    if (gofer.exitCode === null) gofer.kill('SIGKILL');
  });
  return out;
}

t.test('tsvisor gofer → confined server: own mounts, empty netns, seccomp, file-ownership capabilities only', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'hello'), 'hello from the root\n');
  const g = startGofer(t, s);
  const { gofer, exited } = g;
  await until('the socket', () => existsSync(s.sock));
  const c = await Client.connect(s.sock, 65536);
  const root = c.allocFid();
  await c.attach(root);
  const f = c.allocFid();
  await c.walk(root, f, ['hello']);
  await c.lopen(f, F.O_RDONLY);
  t.equal(text(await c.read(f, 0n, 100)), 'hello from the root\n', 'serves the root');
  const n = c.allocFid();
  await c.walk(root, n, []);
  await c.lcreate(n, 'written', F.O_WRONLY, 0o644);
  await c.write(n, 0n, new TextEncoder().encode('through the confined server'));
  await c.clunk(n);
  t.equal(readFileSync(join(s.root, 'written'), 'utf8'), 'through the confined server', 'writes land in DIR');

  let server = 0;
  await until('the confined server process', () => {
    server =
      descendants(gofer.pid!).find((p) => {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv[0] === process.execPath && argv.includes('--no-confine'); // bwrap's own argv names it too
      }) ?? 0;
    return server !== 0 && /Seccomp:\s+2/.test(readFileSync(`/proc/${server}/status`, 'utf8'));
  });
  const status = readFileSync(`/proc/${server}/status`, 'utf8');
  t.match(status, /Seccomp:\s+2/, 'seccomp filter installed');
  t.match(status, /NoNewPrivs:\s+1/);
  t.match(status, /CapEff:\s+000000000000001b/, 'only CHOWN, DAC_OVERRIDE, FOWNER, FSETID');
  t.not(readlinkSync(`/proc/${server}/ns/net`), readlinkSync('/proc/self/ns/net'), 'own network namespace');
  t.not(readlinkSync(`/proc/${server}/ns/mnt`), readlinkSync('/proc/self/ns/mnt'), 'own mount namespace');
  const devs = readFileSync(`/proc/${server}/net/dev`, 'utf8').split('\n').slice(2).filter(Boolean).map((l) => l.split(':')[0]!.trim());
  t.same(devs, ['lo'], 'no interface but lo');
  const seen = `/proc/${server}/root`;
  t.ok(existsSync(`${seen}/gofer-root/hello`), 'DIR is visible to it');
  for (const hidden of ['/etc/passwd', '/etc/shadow', '/root', '/home', '/var', s.canary, s.dir]) {
    t.notOk(existsSync(seen + hidden), `${hidden} is not`);
  }

  // A client that sends garbage (an impossible frame size) loses its connection; the server carries on.
  const bad = connect({ path: s.sock });
  await new Promise((r) => bad.once('connect', r));
  bad.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x64, 0, 0]));
  await new Promise((r) => bad.once('close', r));
  t.pass('the garbage connection was closed');
  const c2 = await Client.connect(s.sock);
  await c2.attach(c2.allocFid());
  t.pass('another client is still served');
  // Descriptor donation works under the filter too (sendmsg with SCM_RIGHTS is on the allowlist).
  const d = await Client.connect(s.sock, 65536, { donation: true });
  t.equal(d.donating, true, 'the confined server speaks the donation dialect');
  const dr = d.allocFid();
  await d.attach(dr);
  const df = d.allocFid();
  await d.walk(dr, df, ['hello']);
  const opened = await d.lopen(df, F.O_RDONLY);
  const buf = new Uint8Array(100);
  const got = fs.pread(opened.fd!, buf, 0n);
  t.equal(text(buf.subarray(0, got)), 'hello from the root\n', 'read through the donated descriptor');
  fs.close(opened.fd!);
  d.close();
  await until('the one-line report', () => /impossible frame size/.test(g.stderr));
  t.equal(g.stderr.trim().split('\n').length, 1, 'one line about it on stderr');
  c.close();
  c2.close();

  gofer.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM → exit status 0');
  t.notOk(existsSync(s.sock), 'the socket is removed');
  t.equal(descendants(gofer.pid!).length, 0, 'no process left');
});

t.test('the server dies → the client\'s calls end in EIO, never hang; the launcher exits non-zero, leaves nothing', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'f'), 'x');
  const gofer = spawn(process.execPath, [CLI, 'gofer', '--root', s.root, '--listen', `unix:${s.sock}`], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const exited = new Promise<number | null>((r) => gofer.once('exit', (c) => r(c)));
  t.teardown(() => {
    if (gofer.exitCode === null) gofer.kill('SIGKILL');
  });
  await until('the socket', () => existsSync(s.sock));
  const c = await Client.connect(s.sock);
  const root = c.allocFid();
  await c.attach(root);
  let server = 0;
  await until('the confined server process', () => {
    server =
      descendants(gofer.pid!).find((p) => {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv[0] === process.execPath && argv.includes('--no-confine');
      }) ?? 0;
    return server !== 0;
  });
  process.kill(server, 'SIGKILL');
  const codes = await Promise.all([
    errCode(c.getattr(root)),
    errCode(c.walk(root, c.allocFid(), ['f'])),
  ]);
  t.same(codes, ['EIO', 'EIO'], 'both calls fail with EIO');
  t.equal(await errCode(c.getattr(root)), 'EIO', 'and so does every later one');
  c.close();
  t.not(await exited, 0, 'the launcher reports the death with a non-zero status');
  t.notOk(existsSync(s.sock), 'the socket is removed');
  t.equal(descendants(gofer.pid!).length, 0, 'no process left');
});

t.test('--stats → the confined server prints its counts at the end of each connection; without it, nothing', async (t) => {
  for (const stats of [true, false]) {
    const s = scratch(t);
    const g = startGofer(t, s, stats ? ['--stats'] : []);
    const { gofer, exited } = g;
    await until('the socket', () => existsSync(s.sock));
    const c = await Client.connect(s.sock);
    const root = c.allocFid();
    await c.attach(root);
    for (let i = 0; i < 5; i++) await c.getattr(root);
    c.close();
    if (stats) {
      await until('the counts', () => g.stderr.includes('\n'));
      const m = /^tsvisor gofer stats: (\{.*\})\n$/.exec(g.stderr);
      t.ok(m, `one line of counts: ${g.stderr}`);
      const counts = JSON.parse(m![1]!) as Record<string, number>;
      t.match(counts, { connections: 1, requests: 7, polled: Number, pollsCut: Number, pollsSkipped: Number }, 'Tversion, Tattach and 5 Tgetattr');
    }
    gofer.kill('SIGTERM');
    t.equal(await exited, 0);
    if (!stats) t.equal(g.stderr, '', 'nothing without --stats');
  }
});
