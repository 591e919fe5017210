import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { Client } from '../../gofer/client/client.ts';
import { text } from '../../gofer/p9/codec.ts';
import { F } from '../../lib/fs.ts';
import { connectClient, errCode, scratch, startServer, type Scratch } from './helpers.ts';

import { CLI } from '../cli-under-test.ts';

/** Lays out the traps: symlinks of every kind to the canary and to `outside/`, a device node, a swap pair. */
function traps(s: Scratch): void {
  symlinkSync(s.canary, join(s.root, 'abs'));
  symlinkSync('../canary', join(s.root, 'rel'));
  symlinkSync('../../../../../../..' + s.dir + '/outside', join(s.root, 'dots'));
  symlinkSync('/proc/self/root' + s.dir, join(s.root, 'magic'));
  symlinkSync('/proc/1/cwd', join(s.root, 'cwd1'));
  mkdirSync(join(s.root, 'sub'));
  symlinkSync('../../outside', join(s.root, 'sub', 'up2'));
  spawnSync('mknod', [join(s.root, 'null'), 'c', '1', '3']);
}

for (const useOpenat2 of [true, false]) {
  const mode = useOpenat2 ? 'openat2' : 'component walk';

  t.test(`${mode}: symlinks, .., magic links and names with slashes → never outside the root`, async (t) => {
    const s = scratch(t);
    traps(s);
    await startServer(t, s, { useOpenat2 });
    const c = await connectClient(t, s);
    const root = c.allocFid();
    const rq = await c.attach(root);

    for (const link of ['abs', 'rel', 'dots', 'magic', 'cwd1']) {
      const f = c.allocFid();
      const q = await c.walk(root, f, [link]);
      t.equal(q[0]!.type, 0x02, `${link}: a walk returns the symlink itself`);
      t.equal(await errCode(c.lopen(f, F.O_RDONLY)), 'ELOOP', `${link}: never opened, never followed`);
      t.equal(await errCode(c.walk(f, c.allocFid(), ['secret'])), 'ENOTDIR', `${link}: no walking through it`);
      t.equal((await c.getattr(f)).mode & F.S_IFMT, F.S_IFLNK, `${link}: Tgetattr describes the link, not its target`);
      await c.clunk(f);
    }
    // aname is resolved as RESOLVE_IN_ROOT: absolute targets and .. are clamped to the root.
    for (const aname of ['abs', 'rel', 'dots', 'magic', 'cwd1', 'sub/up2', '../outside', '/../../outside', 'dots/secret', `${s.dir}/outside`]) {
      const code = await errCode(c.attach(c.allocFid(), 0, aname));
      t.ok(['ENOENT', 'ENOTDIR', 'EXDEV', 'ELOOP'].includes(code), `aname ${aname} → ${code}`);
    }
    const sub = c.allocFid();
    await c.attach(sub, 0, 'sub');
    t.pass('aname inside the root works');
    // .. never climbs above the root, however many.
    const up = c.allocFid();
    const qs = await c.walk(root, up, Array(16).fill('..'));
    t.ok(qs.every((q) => q.path === rq.path), '16 × .. from the root → the root');
    const up2 = c.allocFid();
    const q2 = await c.walk(sub, up2, ['..', '..', '..']);
    t.equal(q2[2]!.path, rq.path, '.. from a subdirectory stops at the root');
    // Names with slashes, dots or NULs are not names.
    for (const bad of ['../canary', '/etc', 'a/b', '.', '..', 'x\0y']) {
      t.equal(await errCode(c.mkdir(root, bad, 0o755)), 'EINVAL', `mkdir '${bad.replace('\0', '\\0')}' → EINVAL`);
    }
    t.equal(await errCode(c.walk(root, c.allocFid(), ['../canary'])), 'EINVAL');
    t.equal(await errCode(c.lcreate(c.allocFid(), 'x', 0, 0)), 'EBADF');
    t.ok(s.canaryIntact(), 'canary intact');
  });

  t.test(`${mode}: hard links and renames across the root → refused; a link to a symlink links the symlink`, async (t) => {
    const s = scratch(t);
    traps(s);
    await startServer(t, s, { useOpenat2 });
    const c = await connectClient(t, s);
    const root = c.allocFid();
    await c.attach(root);
    const abs = c.allocFid();
    await c.walk(root, abs, ['abs']);
    await c.link(root, abs, 'hard-to-abs');
    t.ok(lstatSync(join(s.root, 'hard-to-abs')).isSymbolicLink(), 'Tlink of a symlink fid → a link to the symlink, not its target');
    t.equal(statSync(s.canary).nlink, 1, 'the canary got no second name');
    t.equal(await errCode(c.link(root, abs, '../canary2')), 'EINVAL', 'a link name with a slash → EINVAL');
    t.equal(await errCode(c.renameat(root, 'abs', root, '../moved')), 'EINVAL', 'renaming out → EINVAL');
    t.equal(await errCode(c.renameat(root, '../canary', root, 'stolen')), 'EINVAL', 'renaming in → EINVAL');
    t.equal(await errCode(c.unlinkat(root, '../canary')), 'EINVAL');
    t.equal(await errCode(c.symlink(root, '../evil', '/etc')), 'EINVAL');
    // A device node inside the root is never opened, neither by Tlopen nor by Tlcreate of its name.
    const dev = c.allocFid();
    await c.walk(root, dev, ['null']);
    t.equal(await errCode(c.lopen(dev, F.O_RDWR)), 'EPERM', 'Tlopen of a device → EPERM');
    const d2 = c.allocFid();
    await c.walk(root, d2, []);
    t.equal(await errCode(c.lcreate(d2, 'null', F.O_RDWR, 0o644)), 'EPERM', 'Tlcreate over a device name → EPERM');
    t.equal(await errCode(c.lcreate(d2, 'abs', F.O_RDONLY, 0o644)), 'ELOOP', 'Tlcreate over a symlink name → ELOOP, not followed');
    t.equal(await errCode(c.lcreate(d2, 'sub', F.O_RDONLY, 0o644)), 'EISDIR', 'Tlcreate over a directory name → EISDIR');
    t.equal(await errCode(c.mknod(root, 'tty', F.S_IFCHR | 0o666, 5, 0)), 'EPERM', 'Tmknod of a device → EPERM');
    t.equal(await errCode(c.mknod(root, 'blk', F.S_IFBLK | 0o666, 8, 0)), 'EPERM');
    t.equal(await errCode(c.mknod(root, 'sock', 0o140644)), 'EPERM');
    t.notOk(existsSync(join(s.root, 'tty')) || existsSync(join(s.root, 'blk')));
    t.ok(s.canaryIntact(), 'canary intact');
  });

  t.test(`${mode}: a directory swapped with a symlink to outside while clients walk through it (5,000 rounds)`, async (t) => {
    const s = scratch(t);
    mkdirSync(join(s.root, 'a'));
    writeFileSync(join(s.root, 'a', 'secret'), 'inside\n');
    symlinkSync(join(s.dir, 'outside'), join(s.root, 'b'));
    await startServer(t, s, { useOpenat2 });
    // The racer swaps a/ and b (RENAME_EXCHANGE) as fast as it can, in a thread of its own.
    const stopFlag = new SharedArrayBuffer(4);
    const racer = new Worker(
      `const koffi = require('koffi');
       const libc = koffi.load('libc.so.6');
       const renameat2 = libc.func('int renameat2(int, const char *, int, const char *, unsigned int)');
       const { workerData, parentPort } = require('node:worker_threads');
       const flag = new Int32Array(workerData.stop);
       let swaps = 0;
       while (Atomics.load(flag, 0) === 0) if (renameat2(-100, workerData.a, -100, workerData.b, 2) === 0) swaps++;
       parentPort.postMessage(swaps);`,
      { eval: true, workerData: { a: join(s.root, 'a'), b: join(s.root, 'b'), stop: stopFlag } },
    );
    const swaps = new Promise<number>((r) => racer.once('message', r));
    t.teardown(() => racer.terminate());
    const c = await connectClient(t, s);
    const root = c.allocFid();
    await c.attach(root);
    let inside = 0;
    let refused = 0;
    let leaked = 0;
    for (let i = 0; i < 5000; i++) {
      const name = i % 2 ? 'a' : 'b';
      const f = c.allocFid();
      try {
        await c.walk(root, f, [name, 'secret']).then(async (qs) => {
          if (qs.length < 2) throw Object.assign(new Error('partial'), { code: 'partial' });
          await c.lopen(f, F.O_RDONLY);
          const got = text(await c.read(f, 0n, 100));
          if (got === 'inside\n') inside++;
          else leaked++;
        });
      } catch {
        refused++;
      }
      await c.clunk(f).catch(() => {});
      // The same through aname, resolved as a path in one go.
      const g = c.allocFid();
      await c.attach(g, 0, `${name}`).then(
        async () => {
          const h = c.allocFid();
          await c.walk(g, h, ['secret']).then(async () => {
            await c.lopen(h, F.O_RDONLY);
            if (text(await c.read(h, 0n, 100)) !== 'inside\n') leaked++;
          }, () => {});
          await c.clunk(h).catch(() => {});
          await c.clunk(g);
        },
        () => {},
      );
    }
    Atomics.store(new Int32Array(stopFlag), 0, 1);
    const n = await swaps;
    t.ok(n > 100, `${n} swaps happened meanwhile`);
    t.equal(leaked, 0, `nothing outside was ever read (${inside} reads inside, ${refused} refused)`);
    t.ok(inside > 0 && refused > 0, 'the race really happened: both outcomes seen');
    t.ok(s.canaryIntact());
    t.equal(readFileSync(join(s.dir, 'outside', 'secret'), 'utf8'), 'secret\n');
  });
}

t.test('a mount point inside the root (/proc mounted there) → EXDEV, never crossed', async (t) => {
  const s = scratch(t);
  mkdirSync(join(s.root, 'proc'));
  // The server runs in a mount namespace of its own where DIR/proc is a procfs: the mount vanishes with it.
  const gofer = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t proc proc '${s.root}/proc' && exec '${process.execPath}' '${CLI}' gofer --root '${s.root}' --listen 'unix:${s.sock}' --no-confine`],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise((r) => gofer.once('exit', r));
  t.teardown(async () => {
    gofer.kill('SIGTERM');
    await exited;
  });
  for (let i = 0; i < 600 && !existsSync(s.sock); i++) await new Promise((r) => setTimeout(r, 50));
  const c = await Client.connect(s.sock);
  t.teardown(() => c.close());
  const root = c.allocFid();
  await c.attach(root);
  t.equal(await errCode(c.walk(root, c.allocFid(), ['proc'])), 'EXDEV', 'walking onto the mount → EXDEV');
  t.equal(await errCode(c.walk(root, c.allocFid(), ['proc', 'self', 'root'])), 'EXDEV');
  t.equal(await errCode(c.attach(c.allocFid(), 0, 'proc/self/root')), 'EXDEV', 'aname through it → EXDEV');
  t.equal(await errCode(c.attach(c.allocFid(), 0, 'proc/1/cwd')), 'EXDEV');
  t.ok(s.canaryIntact());
});
