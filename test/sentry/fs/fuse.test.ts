import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { encodeDev } from '../../../sentry/fs/fuse/proto.ts';
import { mountScratch, sh } from './fuse-helpers.ts';

/** A tree with files, a deep directory, a symlink and a 3 MiB file of varied bytes. */
function fill(root: string): void {
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'x'), 'hello from x\n');
  mkdirSync(join(root, 'a/b/c'), { recursive: true });
  for (let i = 0; i < 300; i++) writeFileSync(join(root, 'a/b', `f${i}`), `file ${i}\n`, { mode: i % 2 ? 0o600 : 0o644 });
  symlinkSync('../etc/x', join(root, 'a/rel'));
  const big = Buffer.alloc(3 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  writeFileSync(join(root, 'big'), big);
}

const STAT = "find . -print0 | sort -z | xargs -0 stat -c '%n %F %s %a %h %u %g %i %Y'";

t.test('encodeDev packs a glibc dev_t as the kernel decodes it', async (t) => {
  const glibc = (major: bigint, minor: bigint) =>
    ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
  t.equal(encodeDev(glibc(1n, 3n)), (1 << 8) | 3, '/dev/null');
  t.equal(encodeDev(glibc(259n, 0x12345n)), (0x45 | (259 << 8) | (0x123 << 20)) >>> 0);
});

// Each behaviour through 9P reads and writes, and through FUSE passthrough of the Gofer's donated descriptors.
for (const passthrough of [false, true]) {
  const mode = passthrough ? 'passthrough' : '9P I/O';

  t.test(`${mode}: the host reads the tree through the mount as it is on disk (ls, cat, find, stat, readlink)`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    const direct = await sh(`cd ${m.root} && ${STAT}`);
    const through = await sh(`cd ${m.mnt} && ${STAT}`);
    t.equal(through.code, 0, through.err);
    t.equal(through.out, direct.out, 'find+stat agree on names, types, sizes, modes, links, owners, inodes, times');
    t.equal(through.out.split('\n').length, direct.out.split('\n').length);
    t.equal((await sh(`cat ${m.mnt}/etc/x`)).out, 'hello from x\n');
    t.equal((await sh(`cat ${m.mnt}/a/rel`)).out, 'hello from x\n', 'a relative symlink resolves inside');
    t.equal((await sh(`readlink ${m.mnt}/a/rel`)).out, '../etc/x\n');
    const ls = await sh(`ls ${m.mnt}/a/b | wc -l`);
    t.equal(ls.out.trim(), '301', 'a 301-entry directory lists whole (several READDIRs)');
    const cmp = await sh(`cmp ${m.root}/big ${m.mnt}/big && md5sum < ${m.mnt}/big`);
    t.equal(cmp.code, 0, 'a 3 MiB file reads back byte for byte');
    t.equal((await sh(`df -P ${m.mnt} | tail -1 | awk '{print $1}'`)).out.trim(), 'tsvisor', 'STATFS answers');
    t.equal((await sh(`cat ${m.mnt}/nope`)).code, 1, 'a missing name is an error');
    t.match((await sh(`cat ${m.mnt}/nope`)).err, /No such file/);
    t.ok((m.server.counts.get('READDIRPLUS') ?? 0) + (m.server.counts.get('READDIR') ?? 0) > 0);
  });

  t.test(`${mode}: changes through the mount land in the directory`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    const script = [
      `cd ${m.mnt}`,
      'echo written > new',
      'mkdir -p d/e',
      'mv new d/e/moved',
      'cat d/e/moved',
      'rm etc/x',
      'rmdir a/b/c',
      'truncate -s 4 big',
      'touch -d 2001-02-03T04:05:06Z a/b/f1',
      'chmod 640 a/b/f2',
      'ln -s target sl',
      'ln a/b/f3 hard',
      'dd if=/dev/zero of=zeros bs=64k count=40 status=none',
    ].join(' && ');
    const r = await sh(script);
    t.equal(r.code, 0, r.err);
    t.equal(r.out, 'written\n');
    t.equal(readFileSync(join(m.root, 'd/e/moved'), 'utf8'), 'written\n');
    t.notOk(existsSync(join(m.root, 'new')));
    t.notOk(existsSync(join(m.root, 'etc/x')));
    t.notOk(existsSync(join(m.root, 'a/b/c')));
    t.equal(statSync(join(m.root, 'big')).size, 4);
    t.equal(statSync(join(m.root, 'a/b/f1')).mtime.toISOString(), '2001-02-03T04:05:06.000Z');
    t.equal(statSync(join(m.root, 'a/b/f2')).mode & 0o777, 0o640);
    t.equal(statSync(join(m.root, 'hard')).nlink, 2);
    t.equal(statSync(join(m.root, 'zeros')).size, 40 * 65536);
    t.equal((await sh(`readlink ${m.mnt}/sl`)).out, 'target\n');
    t.equal((await sh(`rmdir ${m.mnt}/d`)).code, 1, 'rmdir of a non-empty directory fails');
  });

  t.test(`${mode}: read-only: every change fails with EROFS and nothing changes`, async (t) => {
    const m = await mountScratch(t, fill, { ro: true, passthrough });
    t.equal((await sh(`cat ${m.mnt}/etc/x`)).out, 'hello from x\n');
    for (const cmd of ['echo x > new', 'echo x >> etc/x', 'rm etc/x', 'mkdir d', 'mv etc/x y', 'chmod 777 etc/x', 'ln -s a b', 'truncate -s 0 big', 'touch etc/x']) {
      const r = await sh(`cd ${m.mnt} && ${cmd}`);
      t.not(r.code, 0, `${cmd} fails`);
      t.match(r.err, /Read-only file system/, `${cmd}: EROFS`);
    }
    t.equal(readFileSync(join(m.root, 'etc/x'), 'utf8'), 'hello from x\n');
    t.equal(statSync(join(m.root, 'big')).size, 3 << 20);
  });

  t.test(`${mode}: a gofer that dies takes the file calls to an error, never to the host files`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    t.equal((await sh(`cat ${m.mnt}/etc/x`)).code, 0);
    const gone = new Promise((r) => m.gofer.once('exit', r));
    m.gofer.kill('SIGKILL');
    await gone;
    // That was the launcher: the confined server under bwrap follows it (die-with-parent) a moment later, and
    // until its connection ends it still serves.
    for (let i = 0; i < 200 && !m.client.closed; i++) await new Promise((r) => setTimeout(r, 50));
    t.ok(m.client.closed, "the gofer's connection ended");
    const r = await sh(`cat ${m.mnt}/a/b/f7; ls ${m.mnt}/a/b/c`);
    t.not(r.code, 0);
    t.equal(r.err.match(/Input\/output error/g)?.length, 2, `the walk to each name fails with EIO: ${r.err}`);
    t.notMatch(r.err, /No such file/);
    t.notMatch(r.out, /file 7/);
  });

  t.test(`${mode}: unmounting ends the server`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    t.equal((await sh(`umount ${m.mnt}`)).code, 0);
    for (let i = 0; i < 100 && !m.closed.why; i++) await new Promise((r) => setTimeout(r, 50));
    t.equal(m.closed.why, 'unmounted');
  });


  t.test(`${mode}: a change made in DIR behind the mount shows once the attribute validity (1 s) has passed`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    t.equal((await sh(`cat ${m.mnt}/etc/x; cat ${m.mnt}/etc/x`)).out, 'hello from x\nhello from x\n', 'read twice (kept in the page cache)');
    writeFileSync(join(m.root, 'etc/x'), 'changed behind its back, longer\n');
    await new Promise((r) => setTimeout(r, 1500));
    t.equal((await sh(`cat ${m.mnt}/etc/x`)).out, 'changed behind its back, longer\n');
  });
}

t.test('passthrough: opened files are read and written by the kernel directly, no READ or WRITE reaches the server', async (t) => {
  const m = await mountScratch(t, fill, { passthrough: true });
  const r = await sh(`cmp ${m.root}/big ${m.mnt}/big && cp ${m.root}/big ${m.mnt}/copy && cmp ${m.root}/big ${m.root}/copy && echo ok`);
  t.equal(r.out, 'ok\n', r.err);
  t.ok(m.server.passthrough, 'the kernel and the gofer agreed to passthrough');
  t.ok(m.server.passthroughOpens >= 2, `${m.server.passthroughOpens} opens passed through`);
  t.equal(m.server.counts.get('READ') ?? 0, 0, 'no READ');
  t.equal(m.server.counts.get('WRITE') ?? 0, 0, 'no WRITE');
  // Nothing is buffered here: read-only opens skip FLUSH (FOPEN_NOFLUSH); the one file opened for writing sends it,
  // as it carries the failure of a SETATTR written behind while the file was open.
  t.equal(m.server.counts.get('FLUSH') ?? 0, 1, 'FLUSH only at the close of the file opened for writing');
  t.equal(m.server.backingErrors, 0);
});

t.test('more inodes than maxNodes: the least recently used are pruned (FUSE_NOTIFY_PRUNE), forgotten and their fids clunked', async (t) => {
  const m = await mountScratch(t, (root) => {
    for (let d = 0; d < 10; d++) {
      mkdirSync(join(root, `d${d}`));
      for (let i = 0; i < 300; i++) writeFileSync(join(root, `d${d}`, `f${i}`), `${i}`);
    }
  }, { maxNodes: 200 });
  let max = 0;
  const sampler = setInterval(() => (max = Math.max(max, m.server.nodeCount)), 2);
  t.teardown(() => clearInterval(sampler));
  const r = await sh(`cd ${m.mnt} && find . | wc -l && find . -type f | xargs stat -c %s | wc -l && cat d0/f7 d9/f299`);
  clearInterval(sampler);
  t.equal(r.code, 0, r.err);
  t.equal(r.out, '3011\n3000\n7299', 'every name found, every file stat\'d and read');
  t.equal(m.server.pruneSupported, true, 'the kernel takes FUSE_NOTIFY_PRUNE (Linux 6.18+)');
  t.ok(m.server.forgotten >= 2800, `${m.server.forgotten} nodes forgotten after ${m.server.pruneOffered} offered`);
  // A soft bound: FORGETs come when the kernel gets to them, and lookups go on meanwhile (a READDIRPLUS alone
  // brings a few dozen); unbounded, the walk would hold all 3,011.
  t.ok(max <= 3 * 200, `at most ${max} nodes held at once (bound 200)`);
});

const PY = join(import.meta.dirname, 'fuse-xattr-lock.py');

t.test('extended attributes: user.* set, read, listed, replaced and removed through the mount land on DIR; other namespaces EOPNOTSUPP', async (t) => {
  const m = await mountScratch(t, fill, { passthrough: true });
  const r = await sh(`python3 ${PY} xattr ${m.mnt}`);
  t.equal(r.code, 0, r.err);
  t.equal(r.out, ['blue', 'True', 'user.big user.color', 'EEXIST', 'ENODATA', 'ENODATA', 'ENODATA', 'ENOTSUP', 'ENOTSUP', 'on a directory', ''].join('\n'));
  const host = await sh(`python3 -c "import os,sys; p=sys.argv[1]; print(sorted(os.listxattr(p)), len(os.getxattr(p, 'user.big')), os.getxattr(sys.argv[2], 'user.dir'))" ${m.root}/etc/x ${m.root}/xd`);
  t.equal(host.out, "['user.big'] 2048 b'on a directory'\n", 'the attributes are on the host file');
});

t.test('locks: fcntl F_SETLK/F_GETLK and flock conflict between processes using the mount (the kernel\'s own locks, not forwarded to the gofer)', async (t) => {
  const m = await mountScratch(t, fill, { passthrough: true });
  const r = await sh(`python3 ${PY} lock ${m.mnt}`);
  t.equal(r.code, 0, r.err);
  t.equal(r.out, 'setlk=EAGAIN getlk=held 0+10 by holder flock=EAGAIN \nsetlk=ok getlk=unlocked flock=ok \n');
  // The limit, as documented: a lock taken on DIR's file directly by a host process is not seen through the mount.
  const outside = await sh(`flock -n ${m.root}/big -c "python3 ${PY} lock-child ${m.mnt} 0"`);
  t.match(outside.out, /flock=ok/, 'a host flock on DIR itself does not conflict with one through the mount');
});

t.test("the caller's umask, and only it, shapes a new file's mode: the Gofer applies none of its own", async (t) => {
  // The Gofer inherits this process's umask (here made 077 for the spawn): without its umask(0) the host file of a
  // `umask 0` create would be 0600.
  const old = process.umask(0o077);
  let m: Awaited<ReturnType<typeof mountScratch>>;
  try {
    m = await mountScratch(t, () => {}, { passthrough: true });
  } finally {
    process.umask(old);
  }
  const r = await sh(`cd ${m.mnt} && umask 0 && python3 -c 'import os; os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o666)); os.mkdir("d", 0o777); os.mknod("p", 0o666 | 0o10000)' && umask 027 && : > g && echo ok`);
  t.equal(r.out, 'ok\n', r.err);
  const mode = (p: string) => (statSync(join(m.root, p)).mode & 0o7777).toString(8);
  t.same([mode('f'), mode('d'), mode('p'), mode('g')], ['666', '777', '666', '640'], 'f, d, p with umask 0; g with umask 027');
});
