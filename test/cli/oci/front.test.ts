// The OCI runtime's front (cli/oci/native/oci-front.c), built with a stand-in for Node: a shell script that, called
// as the Sentry (`CLI __oci-sandbox ROOT ID`), reports as a Sentry does on fd 3, and called for anything else notes
// the hand-over and exits 42. So each case shows whether the front answered the call itself or handed it to the
// Node entry, and what it answered: create's protocol (create.json, the Sentry's fds, cwd and arguments, the pid
// file, errors and what is left), start over a control socket, delete of gone, stopped and running containers.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { frontPath } from '../../../cli/oci/front.ts';
import { C, sockaddrUn, sys } from '../../../lib/libc.ts';
import { ContainerDir, type ContainerState, startTime } from '../../../cli/oci/state.ts';

const work = mkdtempSync(join(tmpdir(), 'ocs-front-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const handedOver = join(work, 'handed-over');
const fakeNode = join(work, 'fake-node');
writeFileSync(fakeNode, `#!/bin/sh
if [ "$2" = "__oci-warm" ]; then echo "$*" > '${work}/warm-args.tmp'; env > '${work}/warm-env'; pwd > '${work}/warm-cwd'; mv '${work}/warm-args.tmp' '${work}/warm-args'; exit 0; fi
if [ "$2" != "__oci-sandbox" ]; then echo "$*" >> '${handedOver}'; exit 42; fi
echo "$*" > '${work}/sentry-args'; pwd > '${work}/sentry-cwd'
case "$OCS_FAKE" in
created) echo "sentry log line"; echo hello >&5; echo created >&3; exec sleep 600 ;;
error) echo 'error root.path /nowhere does not exist' >&3; exit 1 ;;
*) exit 3 ;;
esac
`);
chmodSync(fakeNode, 0o755);
const front = frontPath({ node: fakeNode, cli: '/fake/cli.js', dir: join(work, 'cache') });

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  handedOver: boolean;
}

/**
 * Runs the front with `args` (after the shim's global flags); `mode` tells the stand-in Sentry what to do. The
 * stand-in starts no warm Sentry: `env` TSVISOR_OCI_WARM=1 lets the front try.
 */
function run(root: string, log: string, args: string[], mode = 'created', cwd = work, env: Record<string, string> = { TSVISOR_OCI_WARM: '0' }): Promise<Run> {
  rmSync(handedOver, { force: true });
  const child = spawn(front, ['--root', root, '--log', log, '--log-format', 'json', ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, OCS_FAKE: mode, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => {
    // The stand-in Sentry keeps the container's stdout (the pipe) open: 'exit', not 'close'.
    child.on('exit', (code) => setTimeout(() => resolve({ code, stdout, stderr, handedOver: existsSync(handedOver) }), 50));
  });
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

function lastMsg(log: string): string | undefined {
  if (!existsSync(log)) return undefined;
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  return (JSON.parse(lines[lines.length - 1]!) as { msg: string }).msg;
}

function setUp(t: Test): { root: string; log: string; bundle: string } {
  const dir = mkdtempSync(join(work, 'c-'));
  const bundle = join(dir, 'bundle');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', process: { args: ['true'], cwd: '/' }, root: { path: 'rootfs' } }));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { root: join(dir, 'root'), log: join(dir, 'log.json'), bundle };
}

/** A container's state folder with `pid` as its Sentry. */
function container(root: string, id: string, bundle: string, pid: number, status: ContainerState['status'], control = join(work, `${id}.sock`)): ContainerDir {
  const c = new ContainerDir(root, id);
  mkdirSync(c.dir, { recursive: true });
  c.write({
    ociVersion: '1.0.2', id, status, pid, bundle, rootfs: join(bundle, 'rootfs'), created: new Date().toISOString(), owner: '',
    annotations: { pid: '1', control: '/not/this' }, sentryStart: startTime(pid), control,
  });
  return c;
}

async function sleeper(t: Test): Promise<number> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise((r) => child.once('spawn', r));
  return child.pid!;
}

t.test('create: create.json, the Sentry started in the bundle with its fds and arguments, the pid file', async (t) => {
  const { root, log, bundle } = setUp(t);
  const pidFile = join(bundle, 'init.pid');
  const r = await run(root, log, ['--network', 'none', 'create', '--bundle', bundle, '--pid-file', pidFile, 'ocs-a'], 'created', bundle);
  t.equal(r.code, 0, r.stderr);
  t.notOk(r.handedOver, 'answered by the front');
  const pid = Number(readFileSync(pidFile, 'utf8'));
  t.teardown(() => process.kill(pid, 'SIGKILL'));
  t.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /sleep/, 'the pid file names the Sentry');
  t.equal(readFileSync(join(work, 'sentry-args'), 'utf8').trim(), `/fake/cli.js __oci-sandbox ${root} ocs-a`);
  t.equal(readFileSync(join(work, 'sentry-cwd'), 'utf8').trim(), bundle);
  t.equal(r.stdout, 'hello\n', 'fd 5 of the Sentry is the container\'s stdout (create\'s own)');
  t.equal(readFileSync(join(root, 'ocs-a', 'sentry.log'), 'utf8'), 'sentry log line\n', 'fds 1 and 2 go to its log');
  const opts = JSON.parse(readFileSync(join(root, 'ocs-a', 'create.json'), 'utf8'));
  t.same(opts, { bundle, network: 'none', strace: false, hostNetnsIno: statSync('/proc/self/ns/net').ino });
  t.equal(readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[5], String(pid), 'the Sentry leads a session of its own');

  // The same id again once the Sentry has written its state.
  writeFileSync(join(root, 'ocs-a', 'state.json'), '{}');
  const again = await run(root, log, ['create', '--bundle', bundle, 'ocs-a']);
  t.equal(again.code, 1);
  t.equal(again.stderr, 'tsvisor: container with id exists: ocs-a\n');
  t.equal(lastMsg(log), 'container with id exists: ocs-a');
});

t.test('create starts the next warm Sentry (clean environment, cwd /) unless one waits; one nobody answers costs a cold start', async (t) => {
  const { root, log, bundle } = setUp(t);
  rmSync(join(work, 'warm-args'), { force: true });
  const r = await run(root, log, ['create', '--bundle', bundle, '--pid-file', join(bundle, 'w1.pid'), 'ocs-w1'], 'created', bundle, { TSVISOR_OCI_WARM_IDLE_MS: '5000', TOW_MARK: 'x' });
  t.equal(r.code, 0, r.stderr);
  t.teardown(() => process.kill(Number(readFileSync(join(bundle, 'w1.pid'), 'utf8')), 'SIGKILL'));
  t.ok(await waitFor(() => existsSync(join(work, 'warm-args')), 10000), 'the front ran the warm command');
  const [cli, cmd, wroot, tag, idle] = readFileSync(join(work, 'warm-args'), 'utf8').trim().split(' ');
  t.same([cli, cmd, wroot, idle], ['/fake/cli.js', '__oci-warm', root, '5000']);
  t.match(tag, /^[0-9a-f]{16}$/);
  t.same(readFileSync(join(work, 'warm-env'), 'utf8').split('\n').filter((l) => l && !/^(PWD|SHLVL|_)=/.test(l)),
    ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], 'a clean environment: nothing of its caller\'s');
  t.equal(readFileSync(join(work, 'warm-cwd'), 'utf8').trim(), '/');

  // A waiting one (a socket of this build whose process lives): no second; nobody answers it: a cold start.
  const sock = join(root, '.warm', `ready-${tag}-${process.pid}.sock`);
  writeFileSync(sock, '');
  rmSync(join(work, 'warm-args'), { force: true });
  const r2 = await run(root, log, ['create', '--bundle', bundle, '--pid-file', join(bundle, 'w2.pid'), 'ocs-w2'], 'created', bundle, {});
  t.equal(r2.code, 0, r2.stderr);
  t.teardown(() => process.kill(Number(readFileSync(join(bundle, 'w2.pid'), 'utf8')), 'SIGKILL'));
  t.match(readFileSync(join(work, 'sentry-args'), 'utf8'), /__oci-sandbox .* ocs-w2/, 'started cold');
  t.notOk(existsSync(sock), 'the claimed socket is gone');
  t.ok(await waitFor(() => existsSync(join(work, 'warm-args')), 10000), 'and the next warm Sentry started');

  // One that takes the connection and dies without a word (its listener goes with the request unanswered): a cold
  // start.
  rmSync(join(work, 'warm-args'), { force: true });
  const fd = sys.socket(C.AF_UNIX, 1 /* SOCK_STREAM */ | C.SOCK_CLOEXEC, 0);
  const [sa, salen] = sockaddrUn(sock);
  t.equal(sys.bind(fd, sa, salen), 0);
  t.equal(sys.listen(fd, 4), 0);
  const pending = run(root, log, ['create', '--bundle', bundle, '--pid-file', join(bundle, 'w4.pid'), 'ocs-w4'], 'created', bundle, {});
  t.ok(await waitFor(() => !existsSync(sock), 10000), 'claimed (renamed and unlinked)');
  await new Promise((res) => setTimeout(res, 200));
  sys.close(fd);
  const r4 = await pending;
  t.equal(r4.code, 0, r4.stderr);
  t.teardown(() => process.kill(Number(readFileSync(join(bundle, 'w4.pid'), 'utf8')), 'SIGKILL'));
  t.match(readFileSync(join(work, 'sentry-args'), 'utf8'), /__oci-sandbox .* ocs-w4/, 'started cold');
  // That create starts the next warm Sentry too, in the background: it must have written its arguments before the
  // next check, which would otherwise see them as ocs-w3's.
  t.ok(await waitFor(() => existsSync(join(work, 'warm-args')), 10000), 'and after it the next warm Sentry started');
  rmSync(join(work, 'warm-args'), { force: true });

  const r3 = await run(root, log, ['create', '--bundle', bundle, '--pid-file', join(bundle, 'w3.pid'), 'ocs-w3'], 'created', bundle, { TSVISOR_OCI_WARM: '0' });
  t.equal(r3.code, 0);
  t.teardown(() => process.kill(Number(readFileSync(join(bundle, 'w3.pid'), 'utf8')), 'SIGKILL'));
  await new Promise((res) => setTimeout(res, 300));
  t.notOk(existsSync(join(work, 'warm-args')), 'TSVISOR_OCI_WARM=0: none');
});

t.test('create: the Sentry\'s error is create\'s, one that exits says where its log is; nothing is left', async (t) => {
  const { root, log, bundle } = setUp(t);
  const r = await run(root, log, ['create', '--bundle', bundle, 'ocs-b'], 'error');
  t.equal(r.code, 1);
  t.equal(r.stderr, 'tsvisor: root.path /nowhere does not exist\n');
  t.equal(lastMsg(log), 'root.path /nowhere does not exist');
  t.notOk(existsSync(join(root, 'ocs-b')), 'the container\'s folder is removed');
  const x = await run(root, log, ['create', '-bundle', bundle, 'ocs-c'], 'exit');
  t.equal(x.code, 1);
  t.match(lastMsg(log), `the sandbox exited during create (its log: ${join(root, 'ocs-c', 'sentry.log')})`);
  t.notOk(existsSync(join(root, 'ocs-c')));
});

t.test('delete: a gone container (--force), a stopped one; a running one and poststop hooks go to Node', async (t) => {
  const { root, log, bundle } = setUp(t);
  const gone = await run(root, log, ['delete', '--force', 'ocs-none']);
  t.equal(gone.code, 0);
  t.notOk(gone.handedOver, 'delete --force of a gone container: exit 0, without Node');

  const dead = spawn('true');
  await new Promise((r) => dead.once('exit', r));
  const sock = join(work, 'stopped.sock');
  writeFileSync(sock, '');
  const stopped = container(root, 'ocs-d', bundle, dead.pid!, 'running', sock);
  const r = await run(root, log, ['delete', 'ocs-d']);
  t.equal(r.code, 0, r.stderr);
  t.notOk(r.handedOver, 'a container whose Sentry is gone is stopped: deleted by the front');
  t.notOk(existsSync(stopped.dir), 'its folder is removed');
  t.notOk(existsSync(sock), 'and its control socket');

  const live = await sleeper(t);
  const running = container(root, 'ocs-e', bundle, live, 'running');
  const r2 = await run(root, log, ['delete', 'ocs-e']);
  t.equal(r2.code, 42);
  t.ok(r2.handedOver, 'a running container goes to the Node entry');
  t.ok(existsSync(running.dir));

  writeFileSync(join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', process: { args: ['true'] }, root: { path: 'rootfs' }, hooks: { poststop: [{ path: '/bin/true' }] } }));
  container(root, 'ocs-f', bundle, dead.pid!, 'stopped');
  const r3 = await run(root, log, ['delete', 'ocs-f']);
  t.ok(r3.handedOver, 'poststop hooks are the Node entry\'s to run');
});

t.test('start: {"op":"start"} to a created container\'s Sentry; its error is start\'s; others go to Node', async (t) => {
  const { root, log, bundle } = setUp(t);
  const live = await sleeper(t);
  const sock = join(work, 'ctl.sock');
  let answer = '{"ok":true}\n';
  const got: string[] = [];
  const server = createServer((s) => s.on('data', (d) => {
    got.push(String(d));
    s.end(answer);
  }));
  await new Promise<void>((r) => server.listen(sock, r));
  t.teardown(() => server.close());
  container(root, 'ocs-g', bundle, live, 'created', sock);
  const ok = await run(root, log, ['start', 'ocs-g']);
  t.equal(ok.code, 0, ok.stderr);
  t.notOk(ok.handedOver);
  t.same(got, ['{"op":"start"}\n']);

  answer = '{"error":"startContainer hook /x failed (exit status 1): \\"bad\\" \\u00e9"}\n';
  const bad = await run(root, log, ['start', 'ocs-g']);
  t.equal(bad.code, 1);
  t.equal(bad.stderr, 'tsvisor: startContainer hook /x failed (exit status 1): "bad" é\n');
  t.equal(lastMsg(log), 'startContainer hook /x failed (exit status 1): "bad" é');

  container(root, 'ocs-h', bundle, live, 'running', sock);
  t.ok((await run(root, log, ['start', 'ocs-h'])).handedOver, 'a running container: Node says why not');
  const dead = spawn('true');
  await new Promise((r) => dead.once('exit', r));
  container(root, 'ocs-i', bundle, dead.pid!, 'created', sock);
  t.ok((await run(root, log, ['start', 'ocs-i'])).handedOver, 'a created container whose Sentry is gone: Node says it stopped');
});

t.test('every other call, flag or mistake goes to the Node entry unchanged', async (t) => {
  const { root, log } = setUp(t);
  for (const args of [['state', 'x'], ['--debug', 'delete', '--force', 'x'], ['kill', 'x', '9'], ['delete', '--bogus', 'x'], ['start'], ['create', 'bad/id'],
    ['--network', 'bogus', 'delete', 'x'], ['run', '--', 'true'], ['--help']]) {
    const r = await run(root, log, args);
    t.equal(r.code, 42, args.join(' '));
    t.equal(readFileSync(handedOver, 'utf8').trim(), ['/fake/cli.js', '--root', root, '--log', log, '--log-format', 'json', ...args].join(' '));
  }
});
