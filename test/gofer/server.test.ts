import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { bytes, text } from '../../gofer/p9/codec.ts';
import { GETATTR, LOCK, QT, SETATTR } from '../../gofer/p9/messages.ts';
import { IdMap } from '../../gofer/server/idmap.ts';
import { F } from '../../lib/fs.ts';
import { connectClient, errCode, scratch, startServer } from './helpers.ts';

t.test('every message, our client against our server → Linux semantics on the exported tree', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'hello.txt'), 'hello, world\n');
  mkdirSync(join(s.root, 'sub'));
  writeFileSync(join(s.root, 'sub', 'inner'), 'inner\n');
  symlinkSync('hello.txt', join(s.root, 'link'));
  await startServer(t, s);
  const c = await connectClient(t, s, 65536);
  t.equal(c.msize, 65536, 'Tversion: msize agreed');

  const root = c.allocFid();
  const rq = await c.attach(root, 0);
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
  t.equal(await errCode(c.walk(root, f2, ['a/b'])), 'EINVAL', 'a name with a slash → EINVAL');
  const up = c.allocFid();
  t.equal((await c.walk(root, up, ['..']))[0]!.path, rq.path, '.. of the root is the root');
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
  const sf = await c.statfs(nf);
  t.ok(sf.bsize > 0 && sf.namelen === 255, 'Tstatfs');

  // Tlock / Tgetlock: open-file-description locks, so two fids conflict like two processes.
  const other = c.allocFid();
  await c.walk(root, other, ['new.bin']);
  await c.lopen(other, F.O_RDWR);
  t.equal(await c.lock(nf, LOCK.WRLCK, 0n, 5n), LOCK.SUCCESS, 'Tlock write lock');
  t.equal(await c.lock(other, LOCK.WRLCK, 0n, 1n), LOCK.BLOCKED, 'a conflicting lock → BLOCKED');
  const gl = await c.getlock(other, LOCK.WRLCK, 0n, 1n);
  t.same([gl.lockType, gl.start, gl.length], [LOCK.WRLCK, 0n, 5n], 'Tgetlock names the holder');
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
  t.equal(await errCode(c.lopen(lf, F.O_RDONLY)), 'ELOOP', 'a symlink is never opened by the server');
  await c.clunk(lf);
  await c.mknod(root, 'fifo', F.S_IFIFO | 0o644);
  t.ok(lstatSync(join(s.root, 'fifo')).isFIFO(), 'Tmknod fifo');
  await c.mknod(root, 'plain', F.S_IFREG | 0o644);
  t.ok(lstatSync(join(s.root, 'plain')).isFile(), 'Tmknod regular');
  t.equal(await errCode(c.mknod(root, 'dev', F.S_IFCHR | 0o644, 1, 3)), 'EPERM', 'Tmknod of a device → EPERM');
  const hf = c.allocFid();
  await c.walk(root, hf, ['hello.txt']);
  const madeFid = c.allocFid();
  await c.walk(root, madeFid, ['made']);
  await c.link(madeFid, hf, 'hard');
  t.equal(statSync(join(s.root, 'made', 'hard')).ino, statSync(join(s.root, 'hello.txt')).ino, 'Tlink');
  await c.renameat(madeFid, 'hard', root, 'moved');
  t.ok(existsSync(join(s.root, 'moved')) && !existsSync(join(s.root, 'made', 'hard')), 'Trenameat');
  await c.unlinkat(root, 'moved');
  t.notOk(existsSync(join(s.root, 'moved')), 'Tunlinkat');
  t.equal(await errCode(c.unlinkat(root, 'made')), 'EISDIR', 'Tunlinkat of a directory without AT_REMOVEDIR');
  const pf = c.allocFid();
  await c.walk(root, pf, ['plain']);
  await c.rename(pf, madeFid, 'renamed');
  t.ok(existsSync(join(s.root, 'made', 'renamed')), 'Trename');
  await c.remove(pf);
  t.notOk(existsSync(join(s.root, 'made', 'renamed')), 'Tremove after Trename removes the new name');
  await c.unlinkat(root, 'made', F.AT_REMOVEDIR);
  t.notOk(existsSync(join(s.root, 'made')), 'Tunlinkat AT_REMOVEDIR');

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
  t.equal(await errCode(c.xattrwalk(xr, c.allocFid(), 'trusted.x')), 'EOPNOTSUPP', 'non-user namespace → EOPNOTSUPP');
  t.equal(await errCode(c.xattrcreate(xr, 'security.x', 1n)), 'EOPNOTSUPP');
  await c.clunk(xr);
  await c.clunk(hf);
  await c.clunk(madeFid);

  t.equal(await errCode(c.clunk(9999)), 'EBADF', 'Tclunk of an unknown fid → EBADF');
  t.equal(await errCode(c.rpc({ type: 'Tauth', afid: 77, uname: bytes('x'), aname: bytes(''), nUname: 0 })), 'EOPNOTSUPP');
  t.ok(s.canaryIntact());
});

t.test('--uid-map → created files belong to the mapped host ids; getattr maps back', async (t) => {
  const s = scratch(t);
  await startServer(t, s, { uids: new IdMap([IdMap.parseRange('0:100000:65536')]) });
  const c = await connectClient(t, s);
  const root = c.allocFid();
  await c.attach(root, 1000);
  const f = c.allocFid();
  await c.walk(root, f, []);
  await c.lcreate(f, 'mine', F.O_WRONLY, 0o644, 1000);
  const st = statSync(join(s.root, 'mine'));
  t.same([st.uid, st.gid], [101000, 101000], 'owned by inside 1000 → host 101000');
  const ga = await c.getattr(f);
  t.same([ga.uid, ga.gid], [1000, 1000], 'Tgetattr shows the inside ids');
  const rootAttr = await c.getattr(root);
  t.equal(rootAttr.uid, 65534, 'a host owner outside the map → overflow id');
});

t.test('--ro → every change refused with EROFS, reads still work', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'f'), 'data');
  mkdirSync(join(s.root, 'd'));
  await startServer(t, s, { readOnly: true });
  const c = await connectClient(t, s);
  const root = c.allocFid();
  await c.attach(root);
  const f = c.allocFid();
  await c.walk(root, f, ['f']);
  const d = c.allocFid();
  await c.walk(root, d, ['d']);
  const refused: [string, Promise<unknown>][] = [
    ['lopen O_RDWR', c.lopen(f, F.O_RDWR)],
    ['lopen O_TRUNC', c.lopen(f, F.O_RDONLY | F.O_TRUNC)],
    ['lcreate', c.lcreate(d, 'x', F.O_RDWR, 0o644)],
    ['mkdir', c.mkdir(root, 'x', 0o755)],
    ['mknod', c.mknod(root, 'x', F.S_IFREG | 0o644)],
    ['symlink', c.symlink(root, 'x', 'f')],
    ['link', c.link(root, f, 'x')],
    ['renameat', c.renameat(root, 'f', root, 'g')],
    ['rename', c.rename(f, root, 'g')],
    ['unlinkat', c.unlinkat(root, 'f')],
    ['setattr', c.setattr(f, SETATTR.MODE, { mode: 0o777 })],
    ['xattrcreate', c.xattrcreate(f, 'user.x', 1n)],
  ];
  for (const [what, p] of refused) t.equal(await errCode(p), 'EROFS', what);
  const g = c.allocFid();
  await c.walk(root, g, ['f']);
  t.equal(await errCode(c.remove(g)), 'EROFS', 'remove');
  await c.lopen(f, F.O_RDONLY);
  t.equal(text(await c.read(f, 0n, 10)), 'data', 'reading still works');
  t.equal(await errCode(c.write(f, 0n, bytes('x'))), 'EROFS', 'write');
  t.equal(readFileSync(join(s.root, 'f'), 'utf8'), 'data');
  t.ok(existsSync(join(s.root, 'f')) && !existsSync(join(s.root, 'x')) && !existsSync(join(s.root, 'g')));
});

t.test('many clients, many outstanding tags → every reply matched to its request', async (t) => {
  const s = scratch(t);
  for (let i = 0; i < 8; i++) writeFileSync(join(s.root, `file${i}`), Buffer.alloc(64 * 1024, i));
  const server = await startServer(t, s);
  const clients = await Promise.all(Array.from({ length: 6 }, () => connectClient(t, s, 16384)));
  await Promise.all(
    clients.map(async (c, ci) => {
      const root = c.allocFid();
      await c.attach(root);
      const fids: number[] = [];
      for (let i = 0; i < 8; i++) {
        const f = c.allocFid();
        await c.walk(root, f, [`file${i}`]);
        await c.lopen(f, F.O_RDONLY);
        fids.push(f);
      }
      // 200 reads in flight at once from this client, mixed with metadata requests.
      const reads = Array.from({ length: 200 }, (_, k) => {
        const i = (k + ci) % 8;
        return c.read(fids[i]!, BigInt((k * 1000) % 60000), 1000).then((d) => d.every((b) => b === i) && d.length === 1000);
      });
      const attrs = fids.map((f) => c.getattr(f).then((a) => a.size === 65536n));
      const ok = await Promise.all([...reads, ...attrs]);
      t.ok(ok.every(Boolean), `client ${ci}: every reply belongs to its request`);
    }),
  );
  t.ok(server.stats.maxOutstanding <= 32, `outstanding per connection stayed ≤ 32 (max ${server.stats.maxOutstanding})`);
  t.equal(server.stats.internalErrors, 0);
});

t.test('Tflush of queued writes → they never run; Tflush of unknown tag → Rflush at once', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'f'), '');
  const server = await startServer(t, s, { asyncLimit: 1 });
  const c = await connectClient(t, s);
  const root = c.allocFid();
  await c.attach(root);
  const f = c.allocFid();
  await c.walk(root, f, ['f']);
  await c.lopen(f, F.O_WRONLY);
  // 20 writes of 64 KiB each at distinct offsets; with one thread-pool slot, the later ones wait in the queue.
  const big = Buffer.alloc(60000, 0x41);
  const inflight = Array.from({ length: 20 }, (_, i) => c.start({ type: 'Twrite', fid: f, offset: BigInt(i * 60000), data: big }));
  const settled = inflight.map((w) => w.reply.then(() => 'done', (e) => (e as { code: string }).code));
  // Flush the last ten.
  await Promise.all(inflight.slice(10).map((w) => c.flush(w.tag)));
  const outcome = await Promise.all(settled);
  const flushed = outcome.slice(10).filter((o) => o === 'EINTR').length;
  t.ok(outcome.slice(0, 10).every((o) => o === 'done'), 'the first ten finish');
  t.ok(flushed >= 8, `the flushed ones report EINTR (${flushed} of 10)`);
  t.ok(server.stats.cancelled >= 8, `cancelled before running: ${server.stats.cancelled}`);
  const size = statSync(join(s.root, 'f')).size;
  const written = outcome.filter((o) => o === 'done').length;
  t.ok(size <= written * 60000 + 60000, `file size ${size} shows cancelled writes did not happen (${written} done)`);
  await c.flush(0x1234); // unknown tag
  t.pass('Rflush for an unknown tag');
});
