/**
 * Every 9P2000.L message against a server exporting `hostRoot`, each checked against the host's file system:
 * run against our server and against diod's, so both are held to the same Linux semantics.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Client } from '../../gofer/client/client.ts';
import { bytes, text } from '../../gofer/p9/codec.ts';
import { GETATTR, LOCK, QT, SETATTR } from '../../gofer/p9/messages.ts';
import { F } from '../../lib/fs.ts';
import { errCode } from './helpers.ts';

/**
 * Runs the scenario; `aname` is what Tattach names (diod: the export path; ours: ''). With `diod`, the checks where
 * diod 1.0.24 behaves otherwise assert what diod does (each a finding, named in its message), so a change on
 * either side shows.
 */
export async function everyMessage(t: Test, c: Client, hostRoot: string, aname: string, diod = false): Promise<void> {
  const s = { root: hostRoot };
  writeFileSync(join(s.root, 'hello.txt'), 'hello, world\n');
  mkdirSync(join(s.root, 'sub'));
  writeFileSync(join(s.root, 'sub', 'inner'), 'inner\n');
  symlinkSync('hello.txt', join(s.root, 'link'));
  const root = c.allocFid();
  const rq = await c.attach(root, 0, aname);
  t.equal(rq.type, QT.DIR, 'Tattach: the root is a directory');
  t.equal(rq.path, BigInt(statSync(s.root).ino), 'qid.path is the inode');

  // Twalk, multi-component, and a partial walk.
  const f1 = c.allocFid();
  const qs = await c.walk(root, f1, ['sub', 'inner']);
  t.equal(qs.length, 2);
  t.equal(qs[1]!.path, BigInt(statSync(join(s.root, 'sub', 'inner')).ino));
  const f2 = c.allocFid();
  t.same((await c.walk(root, f2, ['sub', 'nope', 'x'])).length, 1, 'partial walk → the qids that worked');
  t.equal(await errCode(c.walk(root, f2, ['nope'])), 'ENOENT', 'first step fails → Rlerror');
  if (!diod) t.equal(await errCode(c.walk(root, f2, ['sub/inner'])), 'EINVAL', 'a name with a slash → EINVAL');
  else t.equal(await errCode(c.walk(root, f2, ['sub/inner'])), 'resolved', 'diod: walks a name with a slash as a path');
  const up = c.allocFid();
  const upq = await c.walk(root, up, ['..']);
  if (!diod) t.equal(upq[0]!.path, rq.path, '.. of the root is the root');
  else t.equal(upq[0]!.path, BigInt(statSync(join(s.root, '..')).ino), 'diod: .. of the export root is the directory above it');
  await c.clunk(up);

  // Tlopen, Tread, Tgetattr.
  await c.lopen(f1, F.O_RDONLY);
  t.equal(text(await c.read(f1, 0n, 100)), 'inner\n', 'Tread');
  t.equal((await c.read(f1, 100n, 100)).length, 0, 'read past the end → 0 bytes');
  const ga = await c.getattr(f1);
  t.equal(ga.size, 6n);
  t.equal(ga.mode & F.S_IFMT, F.S_IFREG);
  t.ok((ga.valid & GETATTR.BASIC) === GETATTR.BASIC, 'basic attributes valid');
  await c.clunk(f1);

  // Tlcreate, Twrite, Tfsync, Tsetattr (size, mode, times), Tstatfs.
  const nf = c.allocFid();
  await c.walk(root, nf, []);
  const cr = await c.lcreate(nf, 'new.bin', F.O_RDWR, 0o640, 0);
  t.equal(cr.qid.type, QT.FILE);
  const payload = Buffer.alloc(200_000, 7);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
  await c.writeAll(nf, 0n, payload);
  await c.fsync(nf);
  await c.fsync(nf, true);
  t.equal(readFileSync(join(s.root, 'new.bin')).compare(payload), 0, 'Twrite: bytes on disk');
  t.equal(createHash('sha1').update(await c.readAll(nf)).digest('hex'), createHash('sha1').update(payload).digest('hex'), 'read back');
  t.equal(statSync(join(s.root, 'new.bin')).mode & 0o777, 0o640, 'created with the mode asked');
  await c.setattr(nf, SETATTR.SIZE, { size: 10n });
  t.equal(statSync(join(s.root, 'new.bin')).size, 10, 'Tsetattr size');
  await c.setattr(nf, SETATTR.MODE, { mode: 0o600 });
  t.equal(statSync(join(s.root, 'new.bin')).mode & 0o777, 0o600, 'Tsetattr mode');
  await c.setattr(nf, SETATTR.ATIME | SETATTR.ATIME_SET | SETATTR.MTIME | SETATTR.MTIME_SET, {
    atimeSec: 1000n,
    atimeNsec: 5n,
    mtimeSec: 2000n,
    mtimeNsec: 6n,
  });
  t.equal(Math.floor(statSync(join(s.root, 'new.bin')).mtimeMs), 2000000, 'Tsetattr mtime');
  await c.setattr(nf, SETATTR.UID | SETATTR.GID, { uid: 1234, gid: 4321 });
  t.same([statSync(join(s.root, 'new.bin')).uid, statSync(join(s.root, 'new.bin')).gid], [1234, 4321], 'Tsetattr owner');
  // A held chmod and the utimes after it go out as one Tsetattr (Client.setattrSoon): the server makes both.
  const setattrs = c.sentByType.get('Tsetattr') ?? 0;
  const held = [c.setattrSoon(nf, SETATTR.MODE, { mode: 0o640 }), c.setattrSoon(nf, SETATTR.MTIME | SETATTR.MTIME_SET, { mtimeSec: 3000n, mtimeNsec: 0n })];
  c.sendLate();
  await Promise.all(held);
  const merged = statSync(join(s.root, 'new.bin'));
  t.same([merged.mode & 0o777, merged.mtimeMs, (c.sentByType.get('Tsetattr') ?? 0) - setattrs], [0o640, 3000000, 1], 'one Tsetattr of mode and mtime');
  const sf = await c.statfs(nf);
  t.ok(sf.bsize > 0 && sf.namelen === 255, 'Tstatfs');

  // Tlock / Tgetlock: open-file-description locks, so two fids conflict like two processes.
  const other = c.allocFid();
  await c.walk(root, other, ['new.bin']);
  await c.lopen(other, F.O_RDWR);
  t.equal(await c.lock(nf, LOCK.WRLCK, 0n, 5n), LOCK.SUCCESS, 'Tlock write lock');
  t.equal(await c.lock(other, LOCK.WRLCK, 0n, 1n), LOCK.BLOCKED, 'a conflicting lock → BLOCKED');
  const gl = await c.getlock(other, LOCK.WRLCK, 0n, 1n);
  if (!diod) t.same([gl.lockType, gl.start, gl.length], [LOCK.WRLCK, 0n, 5n], 'Tgetlock names the holder');
  else t.same([gl.lockType, gl.start, gl.length], [LOCK.WRLCK, 0n, 1n], 'diod: Tgetlock sees the conflict but echoes the asked range, not the holder\'s');
  t.equal(await c.lock(nf, LOCK.UNLCK, 0n, 5n), LOCK.SUCCESS, 'unlock');
  t.equal((await c.getlock(other, LOCK.WRLCK, 0n, 1n)).lockType, LOCK.UNLCK, 'free after unlock');
  await c.clunk(other);
  await c.clunk(nf);

  // Tmkdir, Tsymlink, Treadlink, Tmknod, Tlink, Trenameat, Tunlinkat, Tremove, Trename.
  const dq = await c.mkdir(root, 'made', 0o755);
  t.equal(dq.type, QT.DIR);
  t.ok(statSync(join(s.root, 'made')).isDirectory(), 'Tmkdir');
  const sq = await c.symlink(root, 'sym', '../../outside/secret');
  t.equal(sq.type, QT.SYMLINK);
  t.equal(readlinkSync(join(s.root, 'sym')), '../../outside/secret', 'Tsymlink stores the target as given');
  const lf = c.allocFid();
  await c.walk(root, lf, ['sym']);
  t.equal(text(await c.readlink(lf)), '../../outside/secret', 'Treadlink');
  if (!diod) t.equal(await errCode(c.lopen(lf, F.O_RDONLY)), 'ELOOP', 'a symlink is never opened by the server');
  else t.equal(await errCode(c.lopen(lf, F.O_RDONLY)), 'ENOENT', 'diod: Tlopen follows the symlink (here to ../../outside/secret, absent)');
  await c.clunk(lf);
  await c.mknod(root, 'fifo', F.S_IFIFO | 0o644);
  t.ok(lstatSync(join(s.root, 'fifo')).isFIFO(), 'Tmknod fifo');
  await c.mknod(root, 'plain', F.S_IFREG | 0o644);
  t.ok(lstatSync(join(s.root, 'plain')).isFile(), 'Tmknod regular');
  if (!diod) t.equal(await errCode(c.mknod(root, 'dev', F.S_IFCHR | 0o644, 1, 3)), 'EPERM', 'Tmknod of a device → EPERM');
  else {
    await c.mknod(root, 'dev', F.S_IFCHR | 0o644, 1, 3);
    t.ok(lstatSync(join(s.root, 'dev')).isCharacterDevice(), 'diod: Tmknod makes a character device (/dev/null\'s numbers)');
  }
  const hf = c.allocFid();
  await c.walk(root, hf, ['hello.txt']);
  const madeFid = c.allocFid();
  await c.walk(root, madeFid, ['made']);
  await c.link(madeFid, hf, 'hard');
  t.equal(statSync(join(s.root, 'made', 'hard')).ino, statSync(join(s.root, 'hello.txt')).ino, 'Tlink');
  if (!diod) {
    await c.renameat(madeFid, 'hard', root, 'moved');
    t.ok(existsSync(join(s.root, 'moved')) && !existsSync(join(s.root, 'made', 'hard')), 'Trenameat');
  } else {
    t.equal(await errCode(c.renameat(madeFid, 'hard', root, 'moved')), 'EOPNOTSUPP', 'diod: no Trenameat (Linux falls back to Trename)');
    const hard = c.allocFid();
    await c.walk(madeFid, hard, ['hard']);
    await c.rename(hard, root, 'moved');
    await c.clunk(hard);
  }
  if (!diod) {
    await c.unlinkat(root, 'moved');
    t.notOk(existsSync(join(s.root, 'moved')), 'Tunlinkat');
    t.equal(await errCode(c.unlinkat(root, 'made')), 'EISDIR', 'Tunlinkat of a directory without AT_REMOVEDIR');
  } else {
    t.equal(await errCode(c.unlinkat(root, 'moved')), 'EOPNOTSUPP', 'diod: no Tunlinkat (Linux falls back to Tremove)');
    const moved = c.allocFid();
    await c.walk(root, moved, ['moved']);
    await c.remove(moved);
    t.notOk(existsSync(join(s.root, 'moved')), 'Tremove');
  }
  const pf = c.allocFid();
  await c.walk(root, pf, ['plain']);
  await c.rename(pf, madeFid, 'renamed');
  t.ok(existsSync(join(s.root, 'made', 'renamed')), 'Trename');
  await c.remove(pf);
  t.notOk(existsSync(join(s.root, 'made', 'renamed')), 'Tremove after Trename removes the new name');
  if (!diod) await c.unlinkat(root, 'made', F.AT_REMOVEDIR);
  else await c.remove(madeFid);
  t.notOk(existsSync(join(s.root, 'made')), 'Tunlinkat AT_REMOVEDIR (diod: Tremove)');

  // Treaddir, continuing by cookie across small reads.
  for (let i = 0; i < 50; i++) writeFileSync(join(s.root, 'sub', `f${i}`), '');
  const df = c.allocFid();
  await c.walk(root, df, ['sub']);
  await c.lopen(df, F.O_RDONLY);
  const names: string[] = [];
  let off = 0n;
  for (;;) {
    const part = await c.readdir(df, off, 100);
    if (part.length === 0) break;
    names.push(...part.map((d) => text(d.name)));
    off = part[part.length - 1]!.offset;
  }
  t.same(names.sort(), ['.', '..', 'inner', ...Array.from({ length: 50 }, (_, i) => `f${i}`)].sort(), 'Treaddir in pieces');
  await c.clunk(df);

  // Txattrwalk / Txattrcreate: user.* only.
  const xf = c.allocFid();
  await c.walk(root, xf, ['hello.txt']);
  await c.xattrcreate(xf, 'user.colour', 4n);
  await c.write(xf, 0n, bytes('blue'));
  await c.clunk(xf);
  const xr = c.allocFid();
  await c.walk(root, xr, ['hello.txt']);
  const xv = c.allocFid();
  t.equal(await c.xattrwalk(xr, xv, 'user.colour'), 4n, 'Txattrwalk size');
  t.equal(text(await c.read(xv, 0n, 100)), 'blue', 'the value reads back');
  await c.clunk(xv);
  const xl = c.allocFid();
  await c.xattrwalk(xr, xl, '');
  t.equal(text(await c.read(xl, 0n, 100)), 'user.colour\0', 'listing shows user.* names');
  await c.clunk(xl);
  const trusted = await errCode(c.xattrwalk(xr, c.allocFid(), 'trusted.x'));
  if (!diod) t.equal(trusted, 'EOPNOTSUPP', 'non-user namespace → EOPNOTSUPP');
  else t.equal(trusted, 'ENODATA', 'diod: any namespace is looked up (trusted.x: ENODATA)');
  const security = await errCode(c.xattrcreate(xr, 'security.x', 1n));
  if (!diod) t.equal(security, 'EOPNOTSUPP', 'setting a non-user attribute → EOPNOTSUPP');
  else t.equal(security, 'resolved', 'diod: accepts Txattrcreate for security.*');
  await c.clunk(xr);
  await c.clunk(hf);
  if (!diod) await c.clunk(madeFid); // (removed above with diod)

  const unknown = await errCode(c.clunk(9999));
  if (!diod) t.equal(unknown, 'EBADF', 'Tclunk of an unknown fid → EBADF');
  else t.equal(unknown, 'EIO', 'diod: Tclunk of an unknown fid → EIO');
  t.equal(await errCode(c.rpc({ type: 'Tauth', afid: 77, uname: bytes('x'), aname: bytes(''), nUname: 0 })), 'ENOENT', 'Tauth → ENOENT: no authentication, as diod answers');
}
