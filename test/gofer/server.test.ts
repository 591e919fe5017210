import { pbkdf2 } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { bytes, text } from '../../gofer/p9/codec.ts';
import { SETATTR } from '../../gofer/p9/messages.ts';
import { IdMap } from '../../gofer/server/idmap.ts';
import { F } from '../../lib/fs.ts';
import { attachedClient, connectClient, dropCached, errCode, scratch, startServer } from './helpers.ts';
import { everyMessage } from './scenario.ts';

t.test('every message, our client against our server → Linux semantics on the exported tree', async (t) => {
  const s = scratch(t);
  await startServer(t, s);
  const c = await connectClient(t, s, 65536);
  t.equal(c.msize, 65536, 'Tversion: msize agreed');
  await everyMessage(t, c, s.root, '');
  t.ok(s.canaryIntact());
});

t.test('--uid-map → created files belong to the mapped host ids; getattr maps back', async (t) => {
  const s = scratch(t);
  const { c, root } = await attachedClient(t, s, { server: { uids: new IdMap([IdMap.parseRange('0:100000:65536')]) }, uid: 1000 });
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

t.test('Tlcreate → the new file is the fid\'s user\'s with the asked group, whether the server made it so or must chown it', async (t) => {
  // The server creates as root and gives the file away only when it is not already so (no set-id bit): each case
  // below ends with the owner and group asked, and a set-uid mode as a chown leaves it (S_ISUID cleared), as before.
  const s = scratch(t);
  const sg = join(s.root, 'sg');
  mkdirSync(sg);
  chownSync(sg, 0, 200);
  chmodSync(sg, 0o2775); // new files take the directory's group 200
  const { c, root } = await attachedClient(t, s, { uid: 0 });
  const dir = c.allocFid();
  await c.walk(root, dir, ['sg']);
  const cases: [number, string, number, number, number, number][] = [
    // fid, name, mode, gid asked → host uid, gid
    [root, 'as-made', 0o644, 0, 0, 0],
    [root, 'other-group', 0o644, 100, 0, 100],
    [dir, 'dir-group', 0o644, 200, 0, 200],
    [dir, 'not-dir-group', 0o644, 0, 0, 0],
  ];
  for (const [parent, name, mode, gid, uid, hostGid] of cases) {
    const f = c.allocFid();
    await c.walk(parent, f, []);
    await c.lcreate(f, name, F.O_WRONLY, mode, gid);
    const st = statSync(join(parent === dir ? sg : s.root, name));
    t.same([st.uid, st.gid, st.mode & 0o7777], [uid, hostGid, mode], `${name}: ${uid}:${hostGid}, mode kept`);
    const ga = await c.getattr(f);
    t.same([ga.uid, ga.gid], [uid, hostGid], `${name}: Tgetattr agrees`);
    await c.clunk(f);
  }
  const f = c.allocFid();
  await c.walk(root, f, []);
  await c.lcreate(f, 'setuid', F.O_WRONLY, 0o4755, 0);
  t.equal(statSync(join(s.root, 'setuid')).mode & 0o7777, 0o755, 'a set-uid create is still given by chown, which clears S_ISUID');
});

t.test('Tlcreate → one descriptor for the node and the open file: it outlives the creating fid while a clone holds the node', async (t) => {
  const openFds = () => readdirSync('/proc/self/fd').length;
  const s = scratch(t);
  const { c, root } = await attachedClient(t, s);
  const f = c.allocFid();
  await c.walk(root, f, []);
  const before = openFds();
  await c.lcreate(f, 'x', F.O_RDWR, 0o644);
  t.equal(openFds(), before + 1, 'the create opened one descriptor, not a second copy for the node');
  await c.write(f, 0n, bytes('abc'));
  const g = c.allocFid();
  await c.walk(f, g, []);
  await c.clunk(f);
  t.equal((await c.getattr(g)).size, 3n, 'the clone still reaches the file after the creating fid is gone');
  await c.lopen(g, F.O_RDONLY);
  t.equal(text(await c.read(g, 0n, 10)), 'abc', 'and opens it');
  await c.clunk(g);
  for (let i = 0; i < 50 && openFds() > before; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(openFds(), before, 'the last clunk closed it');
});

t.test('--ro → every change refused with EROFS, reads still work', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'f'), 'data');
  mkdirSync(join(s.root, 'd'));
  const { c, root } = await attachedClient(t, s, { server: { readOnly: true } });
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
  const { c, root, server } = await attachedClient(t, s, { server: { asyncLimit: 1 } });
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

t.test('a read on the thread pool and a getattr behind it → the getattr is answered first', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'big'), Buffer.alloc(1 << 20, 1));
  dropCached(join(s.root, 'big')); // cached bytes would be read at once (next test), not on the pool
  const { c, root } = await attachedClient(t, s, { msize: 1 << 20 });
  const f = c.allocFid();
  await c.walk(root, f, ['big']);
  await c.lopen(f, F.O_RDONLY);
  const order: string[] = [];
  // Keep libuv's thread pool (4 threads, shared with the in-process server) busy for a while, so the read waits
  // there for certain while the getattr, answered on the main loop, goes straight out.
  const busy = Array.from({ length: 4 }, () => new Promise((r) => pbkdf2('x', 'y', 400_000, 32, 'sha256', r)));
  const read = c.read(f, 0n, 1 << 20).then(() => order.push('Rread'));
  const attr = c.getattr(root).then(() => order.push('Rgetattr'));
  await Promise.all([read, attr, ...busy]);
  t.same(order, ['Rgetattr', 'Rread'], 'replies leave in the order the work finishes, not the order of the requests');
  t.equal(await errCode(c.write(f, 1n << 60n, new Uint8Array(1))), 'EBADF', 'opened read-only');
});

t.test('a Tread of cached bytes is answered at once, with the thread pool busy; uncached bytes wait for the pool', async (t) => {
  const s = scratch(t);
  const data = Buffer.alloc(3 << 16);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
  writeFileSync(join(s.root, 'cached'), data);
  writeFileSync(join(s.root, 'cold'), data);
  dropCached(join(s.root, 'cold'));
  const { c, root } = await attachedClient(t, s, { msize: 1 << 20 });
  const open = async (name: string) => {
    const f = c.allocFid();
    await c.walk(root, f, [name]);
    await c.lopen(f, F.O_RDONLY);
    return f;
  };
  const cached = await open('cached');
  const cold = await open('cold');
  const order: string[] = [];
  // All four of libuv's threads busy: a read that needs the pool finishes only after them.
  const busy = Array.from({ length: 4 }, () => new Promise((r) => pbkdf2('x', 'y', 400_000, 32, 'sha256', r)).then(() => order.push('pool free')));
  const whole = c.read(cached, 0n, data.length).then((b) => (order.push('cached Rread'), b));
  const tail = c.read(cached, 100_000n, 1 << 17).then((b) => (order.push('cached short Rread'), b));
  const past = c.read(cached, 1n << 40n, 4096).then((b) => (order.push('cached Rread past the end'), b));
  const coldRead = c.read(cold, 4096n, 8192).then((b) => (order.push('cold Rread'), b));
  const [w, tl, p, cr] = await Promise.all([whole, tail, past, coldRead, ...busy]);
  t.ok(Buffer.from(w).equals(data), 'the whole cached file, every byte');
  t.ok(Buffer.from(tl).equals(data.subarray(100_000)), 'a read past the end of the file: the bytes up to it');
  t.equal(p.length, 0, 'a read beyond the end: 0 bytes');
  t.ok(Buffer.from(cr).equals(data.subarray(4096, 4096 + 8192)), 'the cold read, every byte');
  t.same(order.slice(0, 3).sort(), ['cached Rread', 'cached Rread past the end', 'cached short Rread'], 'the cached reads came back before the pool was free');
  t.ok(order.indexOf('cold Rread') > order.indexOf('pool free'), `the cold read waited for the pool (${order.join(', ')})`);
});

t.test('clunkSoon: a held Tclunk goes out with the next request, or by itself within a few ms when none comes, every time', async (t) => {
  const s = scratch(t);
  const { c, root } = await attachedClient(t, s);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const walked = async () => {
    const f = c.allocFid();
    await c.walk(root, f, []);
    return f;
  };
  // Held, then carried by the next request (the timer started for it is still running).
  c.clunkSoon(await walked());
  let sent = c.sent;
  const g = await walked();
  t.equal(c.sent, sent + 2, 'the held Tclunk went out just before the Twalk');
  // Held again right after: nothing else comes, so the timer sends it.
  sent = c.sent;
  c.clunkSoon(g);
  await sleep(60);
  t.equal(c.sent, sent + 1, 'sent by the timer when no request followed');
  // And once more after the timer has fired.
  const h = await walked();
  sent = c.sent;
  c.clunkSoon(h);
  await sleep(60);
  t.equal(c.sent, sent + 1, 'sent by the timer again');
  c.close();
});

t.test('setattrSoon: a held chmod and the utimes after it on the same fid are one Tsetattr; other pairs stay two', async (t) => {
  const s = scratch(t);
  const { c, root } = await attachedClient(t, s);
  const made = async (name: string) => {
    writeFileSync(join(s.root, name), 'x');
    const f = c.allocFid();
    await c.walk(root, f, [name]);
    return f;
  };
  const times = SETATTR.ATIME | SETATTR.ATIME_SET | SETATTR.MTIME | SETATTR.MTIME_SET;
  const at = { atimeSec: 1_000_000n, atimeNsec: 5n, mtimeSec: 2_000_000n, mtimeNsec: 7n };
  const setattrs = () => c.sentByType.get('Tsetattr') ?? 0;

  const a = await made('a');
  let before = setattrs();
  const chmod = c.setattrSoon(a, SETATTR.MODE, { mode: 0o640 });
  const utimes = c.setattrSoon(a, times, at);
  c.sendLate();
  await Promise.all([chmod, utimes]);
  t.equal(setattrs(), before + 1, 'one Tsetattr for both');
  const st = statSync(join(s.root, 'a'), { bigint: true });
  t.same([Number(st.mode & 0o7777n), st.atimeNs, st.mtimeNs], [0o640, 1_000_000_000_000_005n, 2_000_000_000_000_007n], 'mode and both times on the host file');

  // Times before mode: the server would make them in the other order (mode first), so they stay two requests.
  before = setattrs();
  await Promise.all([c.setattrSoon(a, times, at), c.setattrSoon(a, SETATTR.MODE, { mode: 0o600 }), c.sendLate()]);
  t.equal(setattrs(), before + 2, 'utimes then chmod: two');
  // Two changes of one stage (uid, then gid), two fids, and a held Tclunk between: two each.
  before = setattrs();
  await Promise.all([c.setattrSoon(a, SETATTR.UID, { uid: 0 }), c.setattrSoon(a, SETATTR.GID, { gid: 0 }), c.sendLate()]);
  t.equal(setattrs(), before + 2, 'uid then gid: two');
  const b = await made('b');
  before = setattrs();
  await Promise.all([c.setattrSoon(a, SETATTR.MODE, { mode: 0o600 }), c.setattrSoon(b, times, at), c.sendLate()]);
  t.equal(setattrs(), before + 2, 'two fids: two');
  const g = c.allocFid();
  await c.walk(root, g, []);
  before = setattrs();
  const p1 = c.setattrSoon(a, SETATTR.MODE, { mode: 0o644 });
  c.clunkSoon(g);
  await Promise.all([p1, c.setattrSoon(a, times, at), c.sendLate()]);
  t.equal(setattrs(), before + 2, 'a Tclunk held between them: two');

  // A merged request that fails fails both callers, and makes nothing of the later part.
  const bad = c.allocFid(); // never walked: EBADF
  const both = [c.setattrSoon(bad, SETATTR.MODE, { mode: 0o600 }), c.setattrSoon(bad, times, at)];
  c.sendLate();
  t.same(await Promise.all(both.map(errCode)), ['EBADF', 'EBADF'], 'both get the server\'s error');
});

t.test('setattrSoon under --ro: the merged chmod and utimes are both EROFS and the file is unchanged', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'f'), 'x');
  const st0 = statSync(join(s.root, 'f'), { bigint: true });
  const { c, root } = await attachedClient(t, s, { server: { readOnly: true } });
  const f = c.allocFid();
  await c.walk(root, f, ['f']);
  const before = c.sentByType.get('Tsetattr') ?? 0;
  const both = [
    c.setattrSoon(f, SETATTR.MODE, { mode: 0o600 }),
    c.setattrSoon(f, SETATTR.MTIME | SETATTR.MTIME_SET, { mtimeSec: 5n, mtimeNsec: 0n }),
  ];
  c.sendLate();
  t.same(await Promise.all(both.map(errCode)), ['EROFS', 'EROFS']);
  t.equal((c.sentByType.get('Tsetattr') ?? 0) - before, 1, 'one request');
  const st = statSync(join(s.root, 'f'), { bigint: true });
  t.same([st.mode, st.mtimeNs], [st0.mode, st0.mtimeNs], 'mode and mtime unchanged');
});
