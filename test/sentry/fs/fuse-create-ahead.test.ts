// Files made ahead of their names: a CREATE of a name known missing, in a directory that sees creates, is answered
// with a file the Gofer made beforehand (O_TMPFILE) and named behind the answer (Tlinktmp, held until the next
// request). The program waits for no round trip to the Gofer; everything later finds the file named; a naming the
// host refuses is reported by the next call that changes the file, never lost silently.
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { within } from '../../lib/wait.ts';
import { goferServer, mountScratch, sh } from './fuse-helpers.ts';

t.test('files created in a directory while the Gofer is stopped: made ahead, the program does not wait; named on the host with their mode, times and bytes once it runs', async (t) => {
  const m = await mountScratch(t, () => {}, { passthrough: true, validity: { entry: 5, attr: 5 } });
  const d = `${m.mnt}/d`;
  // Two creates in the directory start its pool of files made ahead.
  const warm = await sh(`mkdir ${d} && printf 1 > ${d}/w1 && printf 2 > ${d}/w2 && sleep 0.3`);
  t.equal(warm.code, 0, warm.err);
  const server = goferServer(m.gofer.pid!);
  process.kill(server, 'SIGSTOP');
  let stopped = true;
  t.teardown(() => {
    if (stopped) process.kill(server, 'SIGCONT');
  });
  // Each is an open(O_CREAT|O_TRUNC) of a name the server knows missing (the directory was made through the mount),
  // a write through the passthrough file and a close: none needs the Gofer.
  const calls = sh(`cd ${d} && for n in a b c d; do printf "bytes of $n" > $n; done && echo done`);
  const r = await within(calls, 20000, 'the creates while the Gofer is stopped').catch(() => 'timeout' as const);
  process.kill(server, 'SIGCONT');
  stopped = false;
  if (r === 'timeout') {
    t.fail('the creates waited for the stopped Gofer');
    await calls;
    return;
  }
  t.equal(r.out, 'done\n', r.err);
  t.ok(m.server.createdAhead >= 4, `${m.server.createdAhead} CREATEs answered with files made ahead`);
  const ls = await sh(`ls ${d} && stat -c '%n %s %a' ${d}/a`);
  t.equal(ls.out, `a\nb\nc\nd\nw1\nw2\n${d}/a 10 644\n`, ls.err);
  await m.server.settle();
  for (const n of ['a', 'b', 'c', 'd']) {
    const host = join(m.root, 'd', n);
    t.equal(readFileSync(host, 'utf8'), `bytes of ${n}`, `${n}: named on the host, with its bytes`);
    t.equal(statSync(host).mode & 0o7777, 0o644, `${n}: with the mode the create asked for (umask 022)`);
    t.equal(statSync(host).nlink, 1);
  }
  t.same(readdirSync(join(m.root, 'd')).sort(), ['a', 'b', 'c', 'd', 'w1', 'w2'], 'no other name in the directory');
  t.equal(m.server.aheadFailed, 0);
});

t.test('an empty file made ahead gets the time of its create; a rename, unlink and readdir right after see it named', async (t) => {
  const m = await mountScratch(t, () => {}, { passthrough: true });
  const d = `${m.mnt}/d`;
  const r = await sh(
    `mkdir ${d} && : > ${d}/w1 && : > ${d}/w2 && sleep 1.2 && date +%s > ${m.dir}/before && : > ${d}/e && : > ${d}/f && mv ${d}/e ${d}/moved && rm ${d}/f && ls ${d}`,
  );
  t.equal(r.out, 'moved\nw1\nw2\n', r.err);
  t.ok(m.server.createdAhead >= 2, `${m.server.createdAhead} made ahead`);
  await m.server.settle();
  t.same(readdirSync(join(m.root, 'd')).sort(), ['moved', 'w1', 'w2'], 'on the host too');
  const before = Number(readFileSync(join(m.dir, 'before'), 'utf8'));
  const mtime = statSync(join(m.root, 'd', 'moved')).mtimeMs / 1000;
  t.ok(mtime >= before && mtime < before + 5, `its time is its create's (${mtime} against ${before}), not the pool's`);
});

t.test('a name made on the host behind the mount\'s back: the create answered ahead cannot be named there; the next change of the file reports EEXIST, the host file is untouched', async (t) => {
  const m = await mountScratch(t, () => {}, { passthrough: true, validity: { entry: 5, attr: 5 } });
  const d = `${m.mnt}/d`;
  const warm = await sh(`mkdir ${d} && : > ${d}/w1 && : > ${d}/w2 && sleep 0.3 && ls ${d}/victim; true`);
  t.equal(warm.code, 0, warm.err);
  // Known missing for the entry validity (the directory was made through the mount); now made underneath.
  writeFileSync(join(m.root, 'd', 'victim'), 'the host\'s');
  const r = await sh(`: > ${d}/victim && echo created; sleep 0.1; chmod 600 ${d}/victim && echo chmod ok; chmod 600 ${d}/victim && echo chmod again ok`);
  t.equal(r.out, 'created\nchmod again ok\n', 'the first chmod reports the failed naming, the second is done');
  t.match(r.err, /File exists/, r.err);
  t.equal(m.server.aheadFailed, 1, 'the Gofer refused the naming');
  t.equal(readFileSync(join(m.root, 'd', 'victim'), 'utf8'), 'the host\'s', 'the host file kept its bytes');
});

t.test('createAhead: false → every CREATE goes to the Gofer', async (t) => {
  const m = await mountScratch(t, () => {}, { passthrough: true, createAhead: false });
  const r = await sh(`mkdir ${m.mnt}/d && for n in 1 2 3 4 5 6; do : > ${m.mnt}/d/$n; done`);
  t.equal(r.code, 0, r.err);
  t.equal(m.server.createdAhead, 0);
  t.same(readdirSync(join(m.root, 'd')).sort(), ['1', '2', '3', '4', '5', '6']);
});
