import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Client } from '../../gofer/client/client.ts';
import { bytes } from '../../gofer/p9/codec.ts';
import * as fs from '../../lib/fs.ts';
import { connectClient, errCode, scratch, startServer, type Scratch } from './helpers.ts';

const { F } = fs;
const openFds = () => readdirSync('/proc/self/fd').length;

/** A client in the 9P2000.L.tsvisor dialect, attached to the root, and a walked fid of the directory `d`. */
async function dialect(t: Test, s: Scratch): Promise<{ c: Client; root: number; d: number }> {
  const c = await Client.connect(s.sock, 65536, { donation: true });
  t.teardown(() => c.close());
  const root = c.allocFid();
  await c.attach(root);
  const d = c.allocFid();
  await c.walk(root, d, ['d']);
  return { c, root, d };
}

t.test('Tmktmp → an unnamed file in the directory, donated; Tlinktmp names it with the mode and time asked for', async (t) => {
  const s = scratch(t);
  mkdirSync(join(s.root, 'd'));
  const server = await startServer(t, s);
  const { c, d } = await dialect(t, s);
  const before = openFds();
  const [open, node] = [c.allocFid(), c.allocFid()];
  const r = await c.mktmp(d, open, node, 0o600, 0);
  t.same(readdirSync(join(s.root, 'd')), [], 'nothing named in the directory yet');
  t.equal(r.qid.type, 0, 'a regular file');
  t.equal(r.attr.nlink, 0n, 'with no link');
  t.equal(r.attr.mode & 0o7777, 0o600);
  t.type(r.fd, 'number', 'its open descriptor came with the reply');
  fs.close(r.fd!);

  const when: [bigint, number] = [1_700_000_000n, 123_456_789];
  const l = await c.linktmpSoon(node, open, d, 'named', 0o640, when);
  const host = statSync(join(s.root, 'd', 'named'), { bigint: true });
  t.equal(host.ino, r.qid.path, 'the same inode, now named');
  t.equal(Number(host.mode & 0o7777n), 0o640, 'the mode Tlinktmp asked for');
  t.equal(host.mtimeNs, 1_700_000_000_123_456_789n, 'nothing wrote to it: its times are the ones given');
  t.equal(host.nlink, 1n);
  const { type: _t, tag: _g, ...nodeNow } = await c.getattr(node);
  t.same(l.attr, nodeNow, 'the reply\'s attributes are the file\'s');
  t.equal(l.dirAttr.qid.path, BigInt(statSync(join(s.root, 'd')).ino), 'and the directory\'s');
  t.equal(await c.write(open, 0n, bytes('written')), 7, 'the open fid writes the named file');
  t.equal(readFileSync(join(s.root, 'd', 'named'), 'utf8'), 'written');
  t.equal(await errCode(c.linktmpSoon(node, open, d, 'again', 0o640, when)), 'EBADF', 'named once only');

  // Written before it is named: its times are the writes', not the ones given.
  const [o2, n2] = [c.allocFid(), c.allocFid()];
  const r2 = await c.mktmp(d, o2, n2, 0o644, 0);
  await new Promise((res) => setTimeout(res, 20));
  t.equal(fs.pwrite(r2.fd!, bytes('data'), 0n), 4);
  fs.close(r2.fd!);
  await c.linktmpSoon(n2, o2, d, 'written', 0o644, when);
  const w = statSync(join(s.root, 'd', 'written'), { bigint: true });
  t.ok(w.mtimeNs > 1_700_000_000_123_456_789n, 'a file written before its naming keeps the write\'s time');
  t.equal(readFileSync(join(s.root, 'd', 'written'), 'utf8'), 'data');

  for (const f of [open, node, o2, n2, d]) await c.clunk(f);
  for (let i = 0; i < 50 && openFds() > before - 1; i++) await new Promise((res) => setTimeout(res, 20));
  t.equal(openFds(), before - 1, 'every descriptor is closed with its fids (and the directory\'s with d)');
  t.equal(server.stats.internalErrors, 0);
  t.ok(s.canaryIntact());
});

t.test('a Tmktmp file given back unnamed leaves nothing; Tlinktmp errors leave the file to be named', async (t) => {
  const s = scratch(t);
  mkdirSync(join(s.root, 'd'));
  mkdirSync(join(s.root, 'e'));
  writeFileSync(join(s.root, 'd', 'taken'), 'kept');
  await startServer(t, s);
  const { c, root, d } = await dialect(t, s);
  const before = openFds();
  for (let i = 0; i < 20; i++) {
    const [o, n] = [c.allocFid(), c.allocFid()];
    const r = await c.mktmp(d, o, n, 0o644, 0);
    fs.close(r.fd!);
    await c.clunk(o);
    await c.clunk(n);
  }
  t.same(readdirSync(join(s.root, 'd')).sort(), ['taken'], 'twenty files made and given back: none named');
  for (let i = 0; i < 50 && openFds() > before; i++) await new Promise((res) => setTimeout(res, 20));
  t.equal(openFds(), before, 'and their descriptors closed (the unnamed files are gone with them)');

  const [o, n] = [c.allocFid(), c.allocFid()];
  const r = await c.mktmp(d, o, n, 0o644, 0);
  fs.close(r.fd!);
  const when: [bigint, number] = [1n, 0];
  t.equal(await errCode(c.linktmpSoon(n, o, d, 'taken', 0o644, when)), 'EEXIST', 'a name in use → EEXIST');
  t.equal(readFileSync(join(s.root, 'd', 'taken'), 'utf8'), 'kept', 'the file there untouched');
  for (const bad of ['../up', 'a/b', '.', '..']) t.equal(await errCode(c.linktmpSoon(n, o, d, bad, 0o644, when)), 'EINVAL', `name '${bad}' → EINVAL`);
  const other = c.allocFid();
  await c.walk(root, other, ['d', 'taken']);
  t.equal(await errCode(c.linktmpSoon(other, o, d, 'x', 0o644, when)), 'EBADF', 'a fid not made by Tmktmp → EBADF');
  t.equal(await errCode(c.linktmpSoon(n, other, d, 'x', 0o644, when)), 'EBADF', 'an open fid of another file → EBADF');
  t.equal(await errCode(c.linktmpSoon(n, o, other, 'x', 0o644, when)), 'ENOTDIR', 'dfid a file → ENOTDIR');
  const e = c.allocFid();
  await c.walk(root, e, ['e']);
  await c.linktmpSoon(n, o, e, 'moved', 0o644, when);
  t.ok(existsSync(join(s.root, 'e', 'moved')), 'after the errors, named in another directory of the same file system');
  t.same(readdirSync(join(s.root, 'd')).sort(), ['taken']);
  t.ok(s.canaryIntact());
});

t.test('--ro → Tmktmp is EROFS; a plain 9P2000.L session → EOPNOTSUPP', async (t) => {
  const s = scratch(t);
  mkdirSync(join(s.root, 'd'));
  await startServer(t, s, { readOnly: true });
  const { c, d } = await dialect(t, s);
  t.equal(await errCode(c.mktmp(d, c.allocFid(), c.allocFid(), 0o644, 0)), 'EROFS');

  const s2 = scratch(t);
  mkdirSync(join(s2.root, 'd'));
  await startServer(t, s2);
  const p = await connectClient(t, s2);
  const root = p.allocFid();
  await p.attach(root);
  const pd = p.allocFid();
  await p.walk(root, pd, ['d']);
  t.equal(await errCode(p.mktmp(pd, p.allocFid(), p.allocFid(), 0o644, 0)), 'EOPNOTSUPP');
  t.equal(await errCode(p.linktmpSoon(pd, pd, pd, 'x', 0o644, [1n, 0])), 'EOPNOTSUPP');
  t.same(readdirSync(join(s2.root, 'd')), []);
});
