// NetnsThread: a Worker that stays in a network namespace makes socketpairs there while the main thread never
// moves; the fds' namespace is checked by SO_NETNS_COOKIE against the namespace's own cookie.
import { spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import t, { type Test } from 'tap';
import { run } from '../../lib/exec.ts';
import { C, sys } from '../../lib/libc.ts';
import { NetnsError, NetnsHandle } from '../../lib/netns.ts';
import { MAX_PAIRS, NetnsThread } from '../../lib/netns-thread.ts';
import { deleteNetns } from '../../lib/testnet.ts';
import * as ux from '../../lib/unix.ts';

const NS = 'tpi-nsthread';
const SO_NETNS_COOKIE = 71;
const selfNs = () => readlinkSync('/proc/thread-self/ns/net');

/** Makes NS anew for test `t`, removed when it ends. */
function freshNetns(t: Test): void {
  deleteNetns(NS);
  run(['ip', 'netns', 'add', NS]);
  t.teardown(() => deleteNetns(NS));
}

/** The netns cookie of the socket `fd` was made in. */
function cookieOf(fd: number): string {
  const v = new Uint8Array(8);
  const len = new Uint32Array([8]);
  if (sys.getsockopt(fd, C.SOL_SOCKET, SO_NETNS_COOKIE, v, len) < 0) throw new Error('SO_NETNS_COOKIE');
  return new DataView(v.buffer).getBigUint64(0, true).toString();
}

t.test('socketpairs made by the thread are in its namespace, more than one batch; the main thread stays home', (t) => {
  freshNetns(t);
  const target = NetnsHandle.open(NS);
  t.teardown(() => target.close());
  const home = selfNs();
  const th = NetnsThread.open(NS);
  t.teardown(() => th.close());
  const pairs = [...th.socketPairs('seqpacket', MAX_PAIRS + 3), ...th.socketPairs('stream', 2)];
  t.teardown(() => pairs.flat().forEach((fd) => ux.close(fd)));
  t.equal(pairs.length, MAX_PAIRS + 5);
  t.equal(selfNs(), home, 'the main thread never left');
  t.not(target.cookie, '', 'the kernel has netns cookies');
  t.ok(pairs.flat().every((fd) => cookieOf(fd) === target.cookie), "every end is in the thread's namespace");
  t.not(cookieOf(pairs[0]![0]), NetnsHandle.open(`/proc/${process.pid}/ns/net`).cookie);
  const [a, b] = pairs[0]!;
  t.equal(ux.send(a, new Uint8Array([1, 2, 3])), 3);
  t.equal(ux.recv(b, new Uint8Array(8)), 3, 'a working pair (one datagram of 3)');
  th.close();
  t.throws(() => th.socketPairs('stream', 1), /closed/);
  t.end();
});

t.test('a namespace that cannot be entered → NetnsError naming it', (t) => {
  const e = t.throws(() => NetnsThread.open('tpi-nsthread-missing')) as NetnsError;
  t.ok(e instanceof NetnsError);
  t.match(e.message, /tpi-nsthread-missing/);
  const notNet = t.throws(() => NetnsThread.open('/proc/self/ns/uts')) as NetnsError;
  t.ok(notNet instanceof NetnsError, 'another kind of namespace');
  t.match(notNet.message, /EINVAL/);
  t.end();
});

t.test('settled() lets the event loop turn while the thread starts; then a request needs no wait; a failed start is told by the request', async (t) => {
  freshNetns(t);
  const th = NetnsThread.start(NS);
  t.teardown(() => th.close());
  let turns = 0;
  let settled = false;
  const spin = () => {
    if (settled) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  await th.settled();
  settled = true;
  // The Worker's start (a new isolate, koffi loaded) takes milliseconds: a wait that blocked would let no turn pass.
  t.ok(turns > 0, `the event loop turned ${turns} times meanwhile`);
  t.ok(th.startedUp);
  const pairs = th.socketPairs('stream', 1);
  t.teardown(() => pairs.flat().forEach((fd) => ux.close(fd)));
  t.equal(pairs.length, 1);

  const missing = NetnsThread.start('tpi-nsthread-missing');
  await missing.settled();
  t.throws(() => missing.socketPairs('stream', 1), NetnsError);
  t.end();
});

t.test('a thread closed while it starts ends by itself once up (no terminate, no spinning)', async (t) => {
  freshNetns(t);
  const th = NetnsThread.start(NS);
  th.close();
  const worker = (th as unknown as { booted: Promise<void> }).booted;
  await worker;
  t.ok(th.startedUp, 'its start-up ran to the end');
  t.throws(() => th.socketPairs('stream', 1), /closed/);
  t.end();
});

// A Worker that the process's exit terminates while it loads koffi aborts the whole process (FATAL ERROR
// napi_throw from koffi's start-up): `run` whose program exits at once did so in a CI run. So the exit waits for a
// load under way, and a Worker that has not begun its load by then never begins it (its boot word, lib/koffi-worker.ts)
// instead of the exit waiting out Node's start of a Worker (~40 ms). The child's own exit listener, registered after
// the thread's guard, reports the boot word as the process ends.
function exitDuringStart(t: Test, when: 'at once' | 'while koffi loads'): { status: number | null; state: string; stderr: string } {
  const lib = new URL('../../lib/netns-thread.ts', import.meta.url).pathname;
  const child = [
    `const { NetnsThread } = await import(${JSON.stringify(lib)});`,
    `const th = NetnsThread.start(${JSON.stringify(NS)});`,
    `process.on('exit', () => console.log(th.bootState));`,
    // Blocks the main thread until the Worker has begun loading koffi (the window in which an exit used to abort).
    when === 'while koffi loads'
      ? `const w = new Int32Array(new SharedArrayBuffer(4)); const end = Date.now() + 20000; while (th.bootState === 'waiting' && Date.now() < end) Atomics.wait(w, 0, 0, 0.05);`
      : '',
    `process.exit(0);`,
  ].join('\n');
  const r = spawnSync('node', ['--import', 'tsx', '--input-type=module', '-e', child], { encoding: 'utf8', timeout: 60_000 });
  t.comment(`${when}: status ${r.status}, boot word ${r.stdout.trim()}`);
  return { status: r.status, state: r.stdout.trim(), stderr: r.stderr.trim().split('\n')[0] ?? '' };
}

t.test('a process that exits before its thread begins to load koffi does not wait for it, and ends cleanly', (t) => {
  freshNetns(t);
  for (let i = 0; i < 3; i++) {
    const r = exitDuringStart(t, 'at once');
    t.equal(r.status, 0, `exit status 0 (${r.stderr})`);
    t.equal(r.state, 'cancelled', 'the Worker was told not to load koffi');
  }
  t.end();
});

t.test('a process that exits while its thread loads koffi waits for the load, and ends cleanly', (t) => {
  freshNetns(t);
  for (let i = 0; i < 5; i++) {
    const r = exitDuringStart(t, 'while koffi loads');
    t.equal(r.status, 0, `exit status 0 (${r.stderr})`);
    t.equal(r.state, 'done', 'the load was over before the process ended');
  }
  t.end();
});

t.test('socketPairsSoon: pairs made in the namespace while the caller\'s loop runs; one at a time; a blocking request meanwhile waits for it', async (t) => {
  freshNetns(t);
  const target = NetnsHandle.open(NS);
  t.teardown(() => target.close());
  const th = NetnsThread.open(NS);
  t.teardown(() => th.close());
  const soon = th.socketPairsSoon('stream', 5);
  // While the first is under way a second gets none; the thread may have answered the first already (it takes
  // microseconds), and then the second is made too.
  const second = await th.socketPairsSoon('stream', 3);
  const pairs = await soon;
  t.teardown(() => [...pairs, ...second].flat().forEach((fd) => ux.close(fd)));
  t.equal(pairs.length, 5);
  t.ok(second.length === 0 || second.length === 3, `the second: ${second.length} pairs`);
  t.equal(new Set([...pairs, ...second].flat()).size, 2 * (5 + second.length), 'no descriptor twice');
  t.ok(pairs.flat().every((fd) => cookieOf(fd) === target.cookie), "every end is in the thread's namespace");
  t.equal((await th.socketPairsSoon('stream', MAX_PAIRS + 10)).length, MAX_PAIRS, 'at most one batch');

  // A blocking request right behind one under way: it waits for that one, which still settles with its pairs.
  const first = th.socketPairsSoon('seqpacket', 4);
  const now = th.socketPairs('seqpacket', 2);
  const later = await first;
  t.teardown(() => [...now, ...later].flat().forEach((fd) => ux.close(fd)));
  t.equal(now.length, 2, 'the blocking request got its own');
  t.equal(later.length, 4, 'and the one under way settled with its own');
  t.equal(new Set([...now, ...later].flat()).size, 12, 'no descriptor handed out twice');
  th.close();
  await t.rejects(th.socketPairsSoon('stream', 1), /closed/);
});
