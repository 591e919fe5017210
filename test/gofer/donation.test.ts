import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Client } from '../../gofer/client/client.ts';
import { text } from '../../gofer/p9/codec.ts';
import * as fs from '../../lib/fs.ts';
import { UnixStream } from '../../lib/unixstream.ts';
import { scratch, startServer } from './helpers.ts';

const { F } = fs;

t.test('9P2000.L.tsvisor → Rlopen/Rlcreate of a regular file carry the opened descriptor', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'data'), 'donated bytes\n');
  mkdirSync(join(s.root, 'dir'));
  for (let i = 0; i < 40; i++) writeFileSync(join(s.root, `f${i}`), `file ${i}\n`);
  const server = await startServer(t, s);
  const c = await Client.connect(s.sock, 65536, { donation: true });
  t.teardown(() => c.close());
  t.equal(c.donating, true, 'the dialect was agreed');
  const root = c.allocFid();
  await c.attach(root);

  const f = c.allocFid();
  await c.walk(root, f, ['data']);
  const r = await c.lopen(f, F.O_RDONLY);
  t.type(r.fd, 'number', 'Rlopen of a regular file came with a descriptor');
  const fd = r.fd!;
  const st = fs.fstat(fd);
  t.ok(typeof st !== 'number' && st.ino === BigInt(statSync(join(s.root, 'data')).ino), 'the very file');
  const buf = new Uint8Array(100);
  const n = fs.pread(fd, buf, 0n);
  t.equal(text(buf.subarray(0, n)), 'donated bytes\n', 'read directly through it, no 9P round trip');
  t.equal(fs.pwrite(fd, new Uint8Array([1]), 0n), -9, 'opened read-only: writing through it is EBADF');
  await c.clunk(f);
  t.equal(fs.pread(fd, buf, 0n), n, 'the descriptor is the client\'s: it outlives the fid');
  fs.close(fd);

  const d = c.allocFid();
  await c.walk(root, d, ['dir']);
  t.equal((await c.lopen(d, F.O_RDONLY)).fd, undefined, 'a directory: no descriptor');
  const nf = c.allocFid();
  await c.walk(root, nf, []);
  const cr = await c.lcreate(nf, 'made', F.O_RDWR, 0o644);
  t.type(cr.fd, 'number', 'Rlcreate came with a descriptor');
  t.equal(fs.pwrite(cr.fd!, new TextEncoder().encode('written directly'), 0n), 16);
  fs.close(cr.fd!);
  t.equal(readFileSync(join(s.root, 'made'), 'utf8'), 'written directly', 'the write landed in the file');
  t.equal(text(await c.read(nf, 0n, 100)), 'written directly', 'and 9P reads see it');

  // 40 opens pipelined: each reply gets its own descriptor, in order.
  const fids = Array.from({ length: 40 }, () => c.allocFid());
  await Promise.all(fids.map((x, i) => c.walk(root, x, [`f${i}`])));
  const opened = await Promise.all(fids.map((x) => c.lopen(x, F.O_RDONLY)));
  let matched = 0;
  opened.forEach((o, i) => {
    const s2 = fs.fstat(o.fd!);
    if (typeof s2 !== 'number' && s2.ino === BigInt(statSync(join(s.root, `f${i}`)).ino)) matched++;
    fs.close(o.fd!);
  });
  t.equal(matched, 40, 'every descriptor belongs to its own reply');
  t.equal(c.queuedDescriptors, 0, 'none left over');

  // The descriptor is lent to the reply, not copied: a Tclunk served in the same batch, before the reply has
  // gone out, must not close it under the send; it closes once sent.
  const openFds = () => readdirSync('/proc/self/fd').length;
  const before = openFds();
  const g = c.allocFid();
  const h = c.allocFid();
  await c.walk(root, g, ['data']);
  await c.walk(root, h, []);
  const [lo, , lc] = await Promise.all([c.lopen(g, F.O_RDONLY), c.clunk(g), c.lcreate(h, 'pipelined', F.O_RDWR, 0o644), c.clunk(h)]);
  t.equal(text(buf.subarray(0, fs.pread(lo.fd!, buf, 0n))), 'donated bytes\n', 'Rlopen\'s descriptor, clunked in the same batch, arrived intact');
  t.equal(fs.pwrite(lc.fd!, new TextEncoder().encode('late'), 0n), 4, 'so did Rlcreate\'s');
  t.equal(readFileSync(join(s.root, 'pipelined'), 'utf8'), 'late', 'into the created file');
  fs.close(lo.fd!);
  fs.close(lc.fd!);
  for (let i = 0; i < 50 && openFds() > before; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(openFds(), before, 'and the server closed its own once they were sent');
  t.equal(server.stats.internalErrors, 0);
});

t.test('a plain 9P2000.L client on a descriptor-capable socket → no descriptor ever sent', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'data'), 'x');
  await startServer(t, s);
  const c = await Client.over(UnixStream.connect(s.sock), 8192);
  t.teardown(() => c.close());
  t.equal(c.donating, false);
  const root = c.allocFid();
  await c.attach(root);
  const f = c.allocFid();
  await c.walk(root, f, ['data']);
  const r = await c.lopen(f, F.O_RDONLY);
  t.equal(r.fd, undefined, 'Rlopen without a descriptor');
  t.equal(c.queuedDescriptors, 0, 'and none arrived on the socket');
});

t.test('asking diod for the dialect → diod hangs up, the client starts again with plain 9P2000.L', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'data'), 'from diod\n');
  const diod = spawn('diod', ['-f', '-n', '-l', s.sock, '-e', s.root], { stdio: 'ignore', cwd: s.dir });
  const exited = new Promise((r) => diod.once('exit', r));
  t.teardown(async () => {
    diod.kill('SIGTERM');
    await exited;
  });
  for (let i = 0; i < 600 && !existsSync(s.sock); i++) await new Promise((r) => setTimeout(r, 50));
  const c = await Client.connect(s.sock, 65536, { donation: true });
  t.teardown(() => c.close());
  t.equal(c.donating, false, 'no dialect with diod');
  const root = c.allocFid();
  await c.attach(root, 0, s.root);
  const f = c.allocFid();
  await c.walk(root, f, ['data']);
  t.equal((await c.lopen(f, F.O_RDONLY)).fd, undefined);
  t.equal(text(await c.read(f, 0n, 100)), 'from diod\n');
});

t.test('--ro with donation → descriptors are read-only', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'data'), 'keep');
  await startServer(t, s, { readOnly: true });
  const c = await Client.connect(s.sock, 8192, { donation: true });
  t.teardown(() => c.close());
  const root = c.allocFid();
  await c.attach(root);
  const f = c.allocFid();
  await c.walk(root, f, ['data']);
  const r = await c.lopen(f, F.O_RDONLY);
  t.equal(fs.pwrite(r.fd!, new Uint8Array([65]), 0n), -9, 'EBADF on write through the donated descriptor');
  t.equal(fs.ftruncate(r.fd!, 0n), -22, 'no truncation either (EINVAL: not open for writing)');
  fs.close(r.fd!);
  t.equal(readFileSync(join(s.root, 'data'), 'utf8'), 'keep');
});
