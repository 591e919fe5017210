import { spawn } from 'node:child_process';
import t from 'tap';
import { C, sys } from '../../lib/libc.ts';
import { unixSocketExists } from '../../lib/unixdiag.ts';
import * as ux from '../../lib/unix.ts';

const diag = () => {
  const fd = sys.socket(16 /* AF_NETLINK */, C.SOCK_RAW | C.SOCK_CLOEXEC, 4 /* NETLINK_SOCK_DIAG */);
  if (fd < 0) throw new Error('no NETLINK_SOCK_DIAG socket');
  return fd;
};

t.test('a unix socket is found by inode while a descriptor refers to it, and not after its last close', async (t) => {
  const nl = diag();
  t.teardown(() => ux.close(nl));
  const [a, b] = ux.socketPair('stream');
  const ino = Number(ux.inode(a));
  t.equal(unixSocketExists(nl, ino), true, 'open: found');
  const dup = ux.dup(a);
  ux.close(a);
  t.equal(unixSocketExists(nl, ino), true, 'one of two descriptors closed: still found');
  ux.close(dup);
  t.equal(unixSocketExists(nl, ino), false, 'the last closed: not found');
  t.equal(unixSocketExists(nl, Number(ux.inode(b))), true, 'its peer, still open, is found');
  ux.close(b);
  t.equal(unixSocketExists(-1, ino), undefined, 'no diag socket: unknown, for the caller to ask another way');
  t.equal(unixSocketExists(nl, 0), undefined, 'no inode: unknown');
});

t.test('held by another process only: found until that process exits', async (t) => {
  const nl = diag();
  t.teardown(() => ux.close(nl));
  const [a, b] = ux.socketPair('stream', false);
  const ino = Number(ux.inode(a));
  // A child that inherits the end as its stdin and sleeps; ours is then closed.
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600)'], { stdio: [a, 'ignore', 'ignore'] });
  await new Promise((r) => child.once('spawn', r));
  ux.close(a);
  t.equal(unixSocketExists(nl, ino), true, 'the child holds it');
  await new Promise((r) => child.once('exit', r));
  t.equal(unixSocketExists(nl, ino), false, 'gone with the child');
  ux.close(b);
});
