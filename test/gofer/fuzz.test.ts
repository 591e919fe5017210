import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { fuzzConnection } from './fuzz-driver.ts';
import { CANARY, SECRET, scratch, startServer } from './helpers.ts';

const openFds = () => readdirSync('/proc/self/fd').length;
/** What lies outside the root, whose pieces no reply may carry. */
const SECRETS = [Buffer.from(CANARY), Buffer.from(SECRET)];

t.test('100,000 random and mutated messages on one connection → every one answered, nothing escapes', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'a'), 'file a\n');
  mkdirSync(join(s.root, 'd'));
  writeFileSync(join(s.root, 'd', 'a'), 'inner\n');
  symlinkSync(s.canary, join(s.root, 'abs'));
  symlinkSync('../canary', join(s.root, 'l'));
  symlinkSync('../../..', join(s.root, 'up'));
  const server = await startServer(t, s, { maxTags: 32, maxFids: 256 });
  const fdsBefore = openFds();
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const report = await fuzzConnection(s.sock, 100_000, 20261204, 8192, '9P2000.L', SECRETS);
  t.equal(report.closed, false, 'the server kept the connection open (every frame had a consistent size)');
  t.ok(report.sent >= 100_000, `sent ${report.sent}`);
  t.equal(report.replies + report.flushed, report.sent, `every request answered or flushed (${report.flushed} flushed)`);
  t.equal(report.strayReplies, 0, 'no reply to a tag not in flight');
  t.equal(report.undecodable, 0, 'every reply decodes');
  t.ok(report.rlerrors > report.sent / 4, `most garbage answered with Rlerror (${report.rlerrors})`);
  t.equal(server.stats.internalErrors, 0, 'no handler threw');
  t.ok(server.stats.maxOutstanding <= 32, `outstanding requests stayed ≤ 32 (max ${server.stats.maxOutstanding})`);
  // Once the connection is gone its fids are released: the process holds no more descriptors than before.
  for (let i = 0; i < 50 && openFds() > fdsBefore; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(openFds() <= fdsBefore, `descriptors back to ${fdsBefore} (now ${openFds()})`);
  global.gc?.();
  const grown = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  t.ok(grown < 64, `heap grew ${grown.toFixed(1)} MiB`);
  t.same([...report.leaks], [], 'no reply carries any piece of the canary or the secret (a read of either would)');
  t.ok(s.canaryIntact(), 'the canary outside the root is untouched');
  t.same(readdirSync(s.dir).sort(), ['canary', 'gofer.sock', 'outside', 'root'], 'nothing created beside the root');
  t.same(readdirSync(join(s.dir, 'outside')), ['secret']);
});

t.test('20,000 random and mutated messages in the 9P2000.L.tsvisor dialect → every one answered, nothing escapes', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.root, 'a'), 'file a\n');
  mkdirSync(join(s.root, 'd'));
  symlinkSync(s.canary, join(s.root, 'abs'));
  symlinkSync('../canary', join(s.root, 'l'));
  const server = await startServer(t, s, { maxTags: 32, maxFids: 256 });
  const fdsBefore = openFds();
  const report = await fuzzConnection(s.sock, 20_000, 20261206, 8192, '9P2000.L.tsvisor', SECRETS);
  t.equal(report.closed, false, 'the connection stayed open');
  t.equal(report.replies + report.flushed, report.sent, `every request answered or flushed (${report.flushed} flushed)`);
  t.equal(report.strayReplies, 0);
  t.equal(report.undecodable, 0, 'every reply decodes');
  t.ok((report.byType.get('Rlcreateat') ?? 0) > 0, `files made by Tlcreateat: ${report.byType.get('Rlcreateat')}`);
  t.equal(server.stats.internalErrors, 0, 'no handler threw');
  for (let i = 0; i < 50 && openFds() > fdsBefore; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(openFds() <= fdsBefore, `descriptors back to ${fdsBefore} (now ${openFds()}): donated ones included`);
  t.same([...report.leaks], [], 'no reply carries any piece of the canary or the secret (a read of either would)');
  t.ok(s.canaryIntact(), 'the canary outside the root is untouched');
  t.same(readdirSync(s.dir).sort(), ['canary', 'gofer.sock', 'outside', 'root'], 'nothing created beside the root');
});

t.test("the reply scan sees a read: with the canary's content in files inside the root, Rreads carry pieces of it", async (t) => {
  const s = scratch(t);
  mkdirSync(join(s.root, 'd'));
  for (const f of ['a', 'x', 'y', 'new', 'canary', 'secret', 'd/a']) writeFileSync(join(s.root, f), CANARY);
  await startServer(t, s, { maxTags: 32, maxFids: 256 });
  const report = await fuzzConnection(s.sock, 20_000, 20261204, 8192, '9P2000.L', SECRETS);
  t.ok((report.leaks.get('Rread') ?? 0) > 0, `Rreads of them: ${report.leaks.get('Rread')}`);
});
