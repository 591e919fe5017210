// NetnsThread: a Worker that stays in a network namespace makes socketpairs there while the main thread never
// moves; the fds' namespace is checked by SO_NETNS_COOKIE against the namespace's own cookie.
import { readlinkSync } from 'node:fs';
import t from 'tap';
import { run } from '../../lib/exec.ts';
import { C, sys } from '../../lib/libc.ts';
import { NetnsError, NetnsHandle } from '../../lib/netns.ts';
import { MAX_PAIRS, NetnsThread } from '../../lib/netns-thread.ts';
import { deleteNetns } from '../../lib/testnet.ts';
import * as ux from '../../lib/unix.ts';

const NS = 'tpi-nsthread';
const SO_NETNS_COOKIE = 71;
const selfNs = () => readlinkSync('/proc/thread-self/ns/net');

/** The netns cookie of the socket `fd` was made in. */
function cookieOf(fd: number): string {
  const v = new Uint8Array(8);
  const len = new Uint32Array([8]);
  if (sys.getsockopt(fd, C.SOL_SOCKET, SO_NETNS_COOKIE, v, len) < 0) throw new Error('SO_NETNS_COOKIE');
  return new DataView(v.buffer).getBigUint64(0, true).toString();
}

t.test('socketpairs made by the thread are in its namespace, more than one batch; the main thread stays home', (t) => {
  deleteNetns(NS);
  run(['ip', 'netns', 'add', NS]);
  t.teardown(() => deleteNetns(NS));
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
