// The OCI runtime's warm Sentry (cli/oci/warm.ts) through the front, as an engine's shim drives it: the test is a
// child subreaper, as containerd-shim-runc-v2 is, so the pid file's process (the keeper) is reaped by the test and
// its exit status seen as the shim sees it. One root: its first create starts cold and leaves a warm Sentry, which
// the next create takes; then a dead warm Sentry, one of another build, one in other namespaces, a killed keeper.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import t from 'tap';
import { alive } from '../../cli/oci/state.ts';
import { stopWarm } from '../../cli/oci/warm.ts';
import { run } from '../../lib/exec.ts';
import { type Bundle, type Call, RUNTIME, cleanUp, makeBundle, oci, rawState, waitFor } from './oci-helpers.ts';

const libc = koffi.load('libc.so.6');
const prctl = libc.func('int prctl(int op, unsigned long a, unsigned long b, unsigned long c, unsigned long d)');
const waitpid = libc.func('int waitpid(int pid, _Out_ int *status, int options)');
const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;
t.equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0, 'the test is a subreaper, as the runc shim is');

/** Reaps `pid` (a descendant orphaned to the test); resolves to its exit code (128+N for signal N), or undefined. */
async function reap(pid: number, ms = 30000): Promise<number | undefined> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const st = [0];
    const r = waitpid(pid, st, WNOHANG) as number;
    if (r === pid) return (st[0]! & 0x7f) === 0 ? (st[0]! >> 8) & 0xff : 128 + (st[0]! & 0x7f);
    if (r < 0) return undefined;
    await new Promise((res) => setTimeout(res, 20));
  }
  return undefined;
}

const CG = `/sys/fs/cgroup/pids/tow-${process.pid}`;
const NETNS = `tow-w${process.pid}`;

/** The warm Sentry waiting under the root: its socket's name and pid. */
function ready(b: Bundle): { name: string; pid: number } | undefined {
  try {
    for (const n of readdirSync(join(b.root, '.warm'))) {
      const m = /^ready-[0-9a-f]{16}-(\d+)\.sock$/.exec(n);
      if (m && alive(Number(m[1]))) return { name: n, pid: Number(m[1]) };
    }
  } catch {
    // no folder yet
  }
  return undefined;
}

/** `create` as the shim runs it, with `env` added, in cgroup CG when `inCgroup`, under `wrap` (e.g. unshare). */
function create(b: Bundle, id: string, o: { env?: Record<string, string>; inCgroup?: boolean; wrap?: string[] } = {}): Promise<Call & { output: Promise<string> }> {
  const argv = [...RUNTIME, '--root', b.root, '--log', b.log, '--log-format', 'json', 'create', '--bundle', b.dir, '--pid-file', join(b.dir, `${id}.pid`), id];
  const full = o.inCgroup ? ['sh', '-c', `echo $$ > ${CG}/cgroup.procs && exec "$@"`, 'sh', ...argv] : argv;
  const cmd = [...(o.wrap ?? []), ...full];
  const child = spawn(cmd[0]!, cmd.slice(1), { cwd: b.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const output = new Promise<string>((r) => child.on('close', () => r(stdout)));
  return new Promise((resolve) => child.on('exit', (code) => setImmediate(() => resolve({ code, stdout, stderr, output }))));
}

/** The line of hierarchy `pids` in /proc/PID/cgroup. */
function pidsCgroup(pid: number): string | undefined {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => /^\d+:pids:/.test(l))?.split(':')[2];
}

/** The niceness of thread `tid` of process `pid`. */
function nice(pid: number, tid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1').split(') ')[1]!.split(' ')[16]);
}

/** The environment a process was started with. */
function environ(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
}

const b = makeBundle(t, (c) => {
  c.process.args = ['sh', '-c', 'echo out; exit 5'];
  // The hook writes the network namespace of the pid it is given: the one whose interface the netstack owns.
  c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'network');
  c.linux.namespaces.push({ type: 'network', path: `/run/netns/${NETNS}` });
  c.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', `sed -n 's/.*"pid": *\\([0-9]*\\).*/\\1/p' | { read p; readlink /proc/$p/ns/net > hook-netns; }`] }] };
});
mkdirSync(CG);
// An `ip` first in the callers' PATH that notes the TOW_MARK it was given.
const bin = join(b.dir, 'bin');
const ipSeen = join(b.dir, 'ip-seen');
mkdirSync(bin);
writeFileSync(join(bin, 'ip'), `#!/bin/sh\necho "$TOW_MARK" >> ${ipSeen}\nexec /usr/sbin/ip "$@"\n`);
chmodSync(join(bin, 'ip'), 0o755);
const wrapped = `${bin}:${process.env.PATH}`;
run(['ip', 'netns', 'add', NETNS]);
// An interface for the netstack to take over (its takeover runs `ip`), as an engine's hook plugs one in.
run(['ip', '-n', NETNS, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'tow-p0']);
run(['ip', '-n', NETNS, 'addr', 'add', '198.18.150.2/24', 'dev', 'eth0']);
run(['ip', '-n', NETNS, 'link', 'set', 'eth0', 'up']);
run(['ip', '-n', NETNS, 'link', 'set', 'tow-p0', 'up']);
t.teardown(async () => {
  await cleanUp(b);
  await stopWarm(b.root);
  run(['ip', 'netns', 'del', NETNS]);
  // The cgroup can go once its last process has.
  await waitFor(() => {
    try {
      rmdirSync(CG);
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT';
    }
    return true;
  }, 10000);
});

t.test('the first create starts cold and leaves a warm Sentry; the next is handed to it', async (t) => {
  const c1 = await create(b, 'w1', { env: { TOW_MARK: 'first', PATH: wrapped } });
  t.equal(c1.code, 0, c1.stderr);
  t.equal(rawState(b, 'w1')?.sentryPid, undefined, 'cold: the Sentry is the pid file\'s process');
  t.equal((await oci(b, ['start', 'w1'])).code, 0);
  t.equal(await reap(Number(readFileSync(join(b.dir, 'w1.pid'), 'utf8'))), 5, 'a cold Sentry exits with the program\'s status');
  t.ok(await waitFor(() => ready(b) !== undefined, 60000), 'a warm Sentry waits');
  const warm = ready(b)!;
  t.notOk(environ(warm.pid).includes('TOW_MARK=first'), 'it does not carry its starter\'s environment');
  t.equal(readlinkSync(`/proc/${warm.pid}/cwd`), '/');
  t.equal(nice(warm.pid, warm.pid), nice(process.pid, process.pid) + 10, 'it loads at a lower priority');

  rmSync(ipSeen, { force: true });
  const c2 = await create(b, 'w2', { env: { TOW_MARK: 'second', PATH: wrapped }, inCgroup: true });
  t.equal(c2.code, 0, c2.stderr);
  const s = rawState(b, 'w2')!;
  const keeper = Number(readFileSync(join(b.dir, 'w2.pid'), 'utf8'));
  t.equal(s.sentryPid, warm.pid, 'the warm Sentry took the container');
  t.equal(s.pid, keeper, 'state\'s pid is the pid file\'s: the keeper');
  t.not(keeper, warm.pid);
  t.ok(alive(keeper) && alive(warm.pid));
  t.equal(readlinkSync(`/proc/${warm.pid}/cwd`), b.dir, 'working directory: the bundle, as a cold Sentry\'s');
  t.same([...new Set(readdirSync(`/proc/${warm.pid}/task`).map((tid) => nice(warm.pid, Number(tid))))], [nice(process.pid, process.pid)],
    'every thread has the caller\'s niceness');
  // What the Sentry runs gets the caller's environment, PATH included: its `ip` is the wrapper that notes TOW_MARK.
  t.match(readFileSync(ipSeen, 'utf8'), /^second$/m, 'the Sentry\'s programs get the caller\'s environment');
  t.notMatch(readFileSync(ipSeen, 'utf8'), /^first$/m);
  for (const [what, pid] of [['Sentry', warm.pid], ['program', s.initPid], ['keeper', keeper]] as const) {
    t.equal(pidsCgroup(pid), `/tow-${process.pid}`, `the ${what} is in the caller's cgroup`);
  }
  const containerNet = `net:[${statSync(`/run/netns/${NETNS}`).ino}]`;
  t.equal(readFileSync(join(b.dir, 'hook-netns'), 'utf8').trim(), containerNet, 'the prestart hook was given a pid in the container\'s network namespace');
  t.ok(await waitFor(() => readlinkSync(`/proc/${keeper}/ns/net`) === containerNet, 5000),
    'the keeper is in it too: /proc/PID/ns/net of the pid file\'s pid is the container\'s (docker --network container:ID)');
  t.equal((await oci(b, ['start', 'w2'])).code, 0);
  t.equal(await c2.output, 'out\n', 'the program wrote to the stdout create was given');
  t.equal(await reap(keeper), 5, 'the keeper exits with the program\'s status');
  t.notOk(alive(warm.pid), 'the Sentry has gone before its keeper');
  t.equal(rawState(b, 'w2')?.exitStatus, 5);
  t.equal((await oci(b, ['delete', 'w2'])).code, 0);
  t.equal((await oci(b, ['delete', 'w1'])).code, 0);
});

t.test('a killed keeper takes the program and its Sentry with it', async (t) => {
  b.config.process.args = ['sleep', '60'];
  b.write();
  t.ok(await waitFor(() => ready(b) !== undefined, 60000), 'a warm Sentry waits');
  const c = await create(b, 'k1');
  t.equal(c.code, 0, c.stderr);
  const s = rawState(b, 'k1')!;
  t.ok(s.sentryPid, 'warm');
  t.equal((await oci(b, ['start', 'k1'])).code, 0);
  t.ok(alive(s.initPid));
  process.kill(s.pid, 'SIGKILL');
  t.equal(await reap(s.pid), 137);
  t.ok(await waitFor(() => !alive(s.initPid) && !alive(s.sentryPid), 15000), 'program and Sentry gone');
  t.equal((await oci(b, ['delete', 'k1'])).code, 0);
});

t.test('a dead warm Sentry, one of another build, one in other namespaces: each create starts cold', async (t) => {
  b.config.process.args = ['sh', '-c', 'exit 3'];
  b.write();
  for (const [id, spoil] of [
    ['d1', (w: { name: string; pid: number }) => process.kill(w.pid, 'SIGKILL')],
    ['d2', (w: { name: string; pid: number }) => renameSync(join(b.root, '.warm', w.name), join(b.root, '.warm', w.name.replace(/^ready-[0-9a-f]{16}/, 'ready-0123456789abcdef')))],
    ['d3', () => {}],
  ] as const) {
    t.ok(await waitFor(() => ready(b) !== undefined, 60000), `${id}: a warm Sentry waits`);
    const w = ready(b)!;
    spoil(w);
    // d3: the caller is in a UTS namespace of its own: the warm Sentry answers "cold" and goes.
    const c = await create(b, id, id === 'd3' ? { wrap: ['unshare', '--uts'] } : {});
    t.equal(c.code, 0, `${id}: create succeeds: ${c.stderr}`);
    const s = rawState(b, id)!;
    t.equal(s.sentryPid, undefined, `${id}: started cold`);
    t.ok(await waitFor(() => !alive(w.pid), 10000), `${id}: that warm Sentry is gone`);
    t.equal((await oci(b, ['start', id])).code, 0);
    t.equal(await reap(s.pid), 3, `${id}: the status is the program's`);
    t.equal((await oci(b, ['delete', id])).code, 0);
  }
  t.ok(await waitFor(() => ready(b) !== undefined, 60000), 'and a new warm Sentry waits');
});
