// runc-style flag parsing of the OCI commands, signal names, and which `run` is OCI's.
import t from 'tap';
import { parseSignal } from '../../../cli/oci/commands.ts';
import { isOciRun, parseFlags } from '../../../cli/oci/main.ts';
import { checkProcess, grantsNetRaw } from '../../../cli/oci/spec.ts';

t.test('flags: --x v, --x=v, -x v (Go syntax), booleans, aliases, positionals stop at the command', async (t) => {
  const p = parseFlags(['--bundle', '/b', '-pid-file=/p', '--detach', 'ID', 'sh', '-c', 'x'], ['bundle', 'pid-file'], ['detach'], {}, 1);
  t.same(p.flags, { bundle: '/b', 'pid-file': '/p', detach: true });
  t.same(p.positional, ['ID', 'sh', '-c', 'x']);
  t.same(parseFlags(['-b', '/x', 'id'], ['bundle'], [], { b: 'bundle' }).flags, { bundle: '/x' });
  t.throws(() => parseFlags(['--nope'], [], []), /unknown flag --nope/);
  t.throws(() => parseFlags(['--bundle'], ['bundle'], []), /needs a value/);
});

t.test('signals by name, with or without SIG, and by number', async (t) => {
  t.equal(parseSignal('TERM'), 15);
  t.equal(parseSignal('SIGKILL'), 9);
  t.equal(parseSignal('sigusr1'), 10);
  t.equal(parseSignal('9'), 9);
  t.throws(() => parseSignal('0'));
  t.throws(() => parseSignal('BOGUS'), /invalid signal BOGUS/);
});

t.test("OCI's run has a bundle flag; tsvisor's own run does not", async (t) => {
  t.ok(isOciRun(['--bundle', '/b', 'id']));
  t.ok(isOciRun(['-b', '/b', 'id']));
  t.ok(isOciRun(['--detach', 'id']));
  t.notOk(isOciRun(['--', 'sh', '-c', 'x']));
  t.notOk(isOciRun(['--network=none', '--', 'ls', '-b']));
});

t.test('a process object: args needed, cwd absolute, known rlimits; defaults for user and cwd', async (t) => {
  t.throws(() => checkProcess({ args: [] }), /args is empty/);
  t.throws(() => checkProcess({ args: ['x'], cwd: 'rel' }), /cwd 'rel' is not an absolute path/);
  t.throws(() => checkProcess({ args: ['x'], rlimits: [{ type: 'RLIMIT_BOGUS', soft: 1, hard: 1 }] }), /unknown type 'RLIMIT_BOGUS'/);
  const p = checkProcess({ args: ['x'] });
  t.same(p.user, { uid: 0, gid: 0 });
  t.equal(p.cwd, '/');
});

t.test('raw sockets follow CAP_NET_RAW of a root program unless --net-raw=false (grantsNetRaw)', async (t) => {
  const docker = ['CAP_CHOWN', 'CAP_NET_RAW', 'CAP_NET_BIND_SERVICE'];
  const proc = (uid: number, caps?: { effective?: string[]; bounding?: string[] }) =>
    checkProcess({ args: ['ping'], cwd: '/', user: { uid, gid: 0 }, capabilities: caps });
  // This machine's root has CAP_NET_RAW in its bounding set (the tests run as root).
  t.equal(grantsNetRaw(proc(0, { effective: docker, bounding: docker }), undefined), true, "Docker's default set");
  t.equal(grantsNetRaw(proc(0, { bounding: docker }), true), true, 'bounding set when no effective one; --net-raw');
  t.equal(grantsNetRaw(proc(0, { effective: docker, bounding: docker }), false), false, '--net-raw=false');
  t.equal(grantsNetRaw(proc(0, { effective: ['CAP_CHOWN'], bounding: docker }), undefined), false, 'dropped (--cap-drop NET_RAW)');
  t.equal(grantsNetRaw(proc(1000, { effective: docker, bounding: docker }), undefined), false, 'not root: no capabilities');
  t.equal(grantsNetRaw(proc(0), undefined), false, 'no capabilities at all');
  const g = parseFlags(['--net-raw=false', 'create'], [], ['net-raw'], {}, 1).flags;
  t.same(g, { 'net-raw': false });
});
