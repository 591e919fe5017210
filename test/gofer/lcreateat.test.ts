import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Client } from '../../gofer/client/client.ts';
import { bytes, decode, encode, frameSize, isDecodeError, text } from '../../gofer/p9/codec.ts';
import { NOFID, VERSION_TSVISOR, type Message } from '../../gofer/p9/messages.ts';
import * as fs from '../../lib/fs.ts';
import { UnixStream } from '../../lib/unixstream.ts';
import { connectClient, errCode, scratch, startServer, type Scratch } from './helpers.ts';

const { F } = fs;
const openFds = () => readdirSync('/proc/self/fd').length;

/** A client in the 9P2000.L.tsvisor dialect, attached to the root; closed when the test ends. */
async function dialect(t: Test, s: Scratch): Promise<{ c: Client; root: number }> {
  const c = await Client.connect(s.sock, 65536, { donation: true });
  t.teardown(() => c.close());
  t.equal(c.donating, true, 'the dialect was agreed');
  const root = c.allocFid();
  await c.attach(root);
  return { c, root };
}

t.test('Tlcreateat → the file made inside the root, open as newfid, unopened as nodefid, with its and the directory\'s attributes', async (t) => {
  const s = scratch(t);
  mkdirSync(join(s.root, 'd'));
  const server = await startServer(t, s);
  const { c, root } = await dialect(t, s);
  const d = c.allocFid();
  await c.walk(root, d, ['d']);
  const before = openFds();
  const [open, node] = [c.allocFid(), c.allocFid()];
  const r = await c.lcreateat(d, open, node, 'new', F.O_RDWR, 0o640, 0);
  const host = statSync(join(s.root, 'd', 'new'));
  t.ok(host.isFile(), 'made in the directory dfid names');
  t.equal(host.mode & 0o7777, 0o640, 'with the mode asked for');
  t.equal(r.qid.path, BigInt(host.ino), 'qid: the new inode');
  t.equal(r.qid.type, 0, 'a regular file');
  t.equal(r.iounit, 0);

  const { type: _t, tag: _g, ...nodeNow } = await c.getattr(node);
  t.same(r.attr, nodeNow, 'the reply\'s attributes are what Tgetattr of nodefid gives (nodefid is the new file)');
  const { type: _t2, tag: _g2, ...dirNow } = await c.getattr(d);
  t.same(r.dirAttr, dirNow, 'the directory\'s are those after the create');
  t.equal(r.dirAttr.qid.path, BigInt(statSync(join(s.root, 'd')).ino), 'of dfid\'s directory');

  t.type(r.fd, 'number', 'the open file\'s descriptor came with the reply');
  t.equal(fs.pwrite(r.fd!, bytes('through the descriptor'), 0n), 22);
  fs.close(r.fd!);
  t.equal(text(await c.read(open, 0n, 100)), 'through the descriptor', 'newfid is the file, open for reading and writing');
  t.equal(await c.write(open, 22n, bytes('!')), 1);
  t.equal((await c.getattr(node)).size, 23n, 'nodefid sees the writes');
  t.equal(await errCode(c.lopen(node, F.O_RDONLY)), 'resolved', 'nodefid is not open: it opens');
  t.equal(text(await c.read(node, 0n, 100)), 'through the descriptor!');

  const again = c.allocFid();
  t.same(await c.walk(d, again, ['new']), [r.qid], 'dfid is still the directory');
  for (const f of [open, node, again, d]) await c.clunk(f);
  for (let i = 0; i < 50 && openFds() > before; i++) await new Promise((res) => setTimeout(res, 20));
  t.equal(openFds(), before, 'every descriptor the create made is closed with its fids');
  t.equal(server.stats.internalErrors, 0);
  t.ok(s.canaryIntact());
});

t.test('Tlcreateat of an existing name → opened without O_EXCL, EEXIST with it; neither fid made on an error', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'old'), 'kept');
  await startServer(t, s);
  const { c, root } = await dialect(t, s);
  const [a, b] = [c.allocFid(), c.allocFid()];
  const r = await c.lcreateat(root, a, b, 'old', F.O_RDONLY, 0o600);
  t.equal(r.attr.size, 4n, 'the existing file, not truncated');
  t.equal(statSync(join(s.root, 'old')).mode & 0o777, 0o644, 'its mode untouched');
  t.equal(text(await c.read(a, 0n, 10)), 'kept');
  t.equal(fs.pwrite(r.fd!, bytes('x'), 0n), -9, 'opened read-only as asked: the descriptor does not write');
  fs.close(r.fd!);

  const [x, y] = [c.allocFid(), c.allocFid()];
  t.equal(await errCode(c.lcreateat(root, x, y, 'old', F.O_RDWR | F.O_EXCL, 0o600)), 'EEXIST');
  t.equal(await errCode(c.getattr(x)), 'EBADF', 'newfid not made');
  t.equal(await errCode(c.getattr(y)), 'EBADF', 'nodefid not made');
  t.equal(readFileSync(join(s.root, 'old'), 'utf8'), 'kept');
});

t.test('Tlcreateat errors → Rlerror with the errno, and nothing made', async (t) => {
  const s = scratch(t);
  mkdirSync(join(s.root, 'sub'));
  writeFileSync(join(s.root, 'file'), '');
  symlinkSync(s.canary, join(s.root, 'abs'));
  symlinkSync(join(s.dir, 'outside'), join(s.root, 'out'));
  spawnSync('mknod', [join(s.root, 'null'), 'c', '1', '3']);
  const server = await startServer(t, s);
  const { c, root } = await dialect(t, s);
  const fresh = () => [c.allocFid(), c.allocFid()] as const;
  const make = (dfid: number, name: string, flags: number = F.O_RDWR) => {
    const [a, b] = fresh();
    return c.lcreateat(dfid, a, b, name, flags, 0o644);
  };
  for (const bad of ['../escaped', '/etc/x', 'a/b', '.', '..', 'x\0y']) {
    t.equal(await errCode(make(root, bad)), 'EINVAL', `name '${bad.replace('\0', '\\0')}' → EINVAL`);
  }
  t.equal(await errCode(make(root, '')), 'ENOENT', 'an empty name → ENOENT, as open("") is');
  t.equal(await errCode(make(root, 'n'.repeat(256))), 'ENAMETOOLONG');
  t.equal(await errCode(make(root, 'abs')), 'ELOOP', 'an existing symlink (to the canary) → ELOOP, never followed');
  t.equal(await errCode(make(root, 'abs', F.O_RDWR | F.O_EXCL)), 'EEXIST');
  t.equal(await errCode(make(root, 'null')), 'EPERM', 'an existing device node → EPERM, never opened');
  t.equal(await errCode(make(root, 'sub')), 'EISDIR', 'an existing directory → EISDIR');
  const out = c.allocFid();
  await c.walk(root, out, ['out']);
  t.equal(await errCode(make(out, 'x')), 'ENOTDIR', 'dfid a symlink to a directory outside → ENOTDIR');
  const file = c.allocFid();
  await c.walk(root, file, ['file']);
  t.equal(await errCode(make(file, 'x')), 'ENOTDIR', 'dfid a file → ENOTDIR');
  t.equal(await errCode(make(12345, 'x')), 'EBADF', 'dfid unknown → EBADF');

  const used = c.allocFid();
  await c.walk(root, used, []);
  const b = c.allocFid();
  t.equal(await errCode(c.lcreateat(root, used, b, 'f1', F.O_RDWR, 0o644)), 'EEXIST', 'newfid in use → EEXIST');
  t.equal(await errCode(c.lcreateat(root, b, used, 'f2', F.O_RDWR, 0o644)), 'EEXIST', 'nodefid in use → EEXIST');
  t.equal(await errCode(c.lcreateat(root, b, b, 'f3', F.O_RDWR, 0o644)), 'EEXIST', 'newfid = nodefid → EEXIST');
  t.equal(await errCode(c.lcreateat(root, NOFID, b, 'f4', F.O_RDWR, 0o644)), 'EBADF', 'newfid NOFID → EBADF');
  t.same(readdirSync(s.root).sort(), ['abs', 'file', 'null', 'out', 'sub'], 'no file made by any of them');
  t.ok(lstatSync(join(s.root, 'abs')).isSymbolicLink());
  t.equal(server.stats.internalErrors, 0);
  t.ok(s.canaryIntact(), 'canary intact');
});

t.test('--ro → Tlcreateat is EROFS', async (t) => {
  const s = scratch(t);
  await startServer(t, s, { readOnly: true });
  const { c, root } = await dialect(t, s);
  t.equal(await errCode(c.lcreateat(root, c.allocFid(), c.allocFid(), 'x', F.O_RDWR, 0o644)), 'EROFS');
  t.notOk(existsSync(join(s.root, 'x')));
});

t.test('a plain 9P2000.L session → Tlcreateat is EOPNOTSUPP, as an unknown message', async (t) => {
  const s = scratch(t);
  await startServer(t, s);
  const c = await connectClient(t, s);
  t.equal(c.donating, false);
  const root = c.allocFid();
  await c.attach(root);
  t.equal(await errCode(c.lcreateat(root, c.allocFid(), c.allocFid(), 'x', F.O_RDWR, 0o644)), 'EOPNOTSUPP');
  t.notOk(existsSync(join(s.root, 'x')), 'nothing made');
});

/** Sends raw frames on a dialect connection and collects the decoded replies, in order. */
async function raw(s: Scratch, frames: Uint8Array[]): Promise<Message[]> {
  const sock = UnixStream.connect(s.sock);
  const replies: Message[] = [];
  let buf = Buffer.alloc(0);
  let want = 0;
  let wake = () => {};
  sock.on('data', (chunk: Buffer, fds?: number[]) => {
    for (const fd of fds ?? []) fs.close(fd);
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4 && buf.length >= frameSize(buf)) {
      const m = decode(buf.subarray(0, frameSize(buf)));
      buf = buf.subarray(frameSize(buf));
      if (!isDecodeError(m)) replies.push(m);
      if (replies.length >= want) wake();
    }
  });
  const exchange = (fs: Uint8Array[]) =>
    new Promise<void>((res) => {
      want = replies.length + fs.length;
      wake = res;
      for (const f of fs) sock.write(f);
    });
  await exchange([encode({ type: 'Tversion', tag: 0xffff, msize: 8192, version: bytes(VERSION_TSVISOR) })]);
  await exchange([encode({ type: 'Tattach', tag: 0, fid: 1, afid: NOFID, uname: bytes(''), aname: bytes(''), nUname: 0 })]);
  await exchange(frames);
  sock.destroy();
  return replies.slice(2);
}

t.test('malformed Tlcreateat in the dialect → Rlerror EPROTO, never an exception, and the connection serves on', async (t) => {
  const s = scratch(t);
  const server = await startServer(t, s);
  const good = encode({ type: 'Tlcreateat', tag: 1, dfid: 1, newfid: 2, nodefid: 3, name: bytes('made'), flags: F.O_RDWR, mode: 0o644, gid: 0 });
  const resized = (f: Uint8Array, tag: number) => {
    const g = f.slice();
    new DataView(g.buffer).setUint32(0, g.length, true);
    g[5] = tag;
    return g;
  };
  const frames = [
    resized(good.subarray(0, 7), 10), // the header alone
    resized(good.subarray(0, 18), 11), // cut inside nodefid
    resized(good.subarray(0, 22), 12), // cut inside the name
    resized(good.subarray(0, good.length - 1), 13), // one byte short of gid
    resized(Uint8Array.from([...good, 0]), 14), // a trailing byte
    good,
  ];
  const replies = await raw(s, frames);
  t.same(
    replies.map((m) => [m.tag, m.type, m.type === 'Rlerror' ? m.ecode : 0]),
    [[10, 'Rlerror', 71], [11, 'Rlerror', 71], [12, 'Rlerror', 71], [13, 'Rlerror', 71], [14, 'Rlerror', 71], [1, 'Rlcreateat', 0]],
    'each broken frame → Rlerror EPROTO; then a whole one creates',
  );
  t.same(readdirSync(s.root), ['made'], 'only the whole frame made a file');
  t.equal(server.stats.internalErrors, 0);
});
