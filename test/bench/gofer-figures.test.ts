// bench/gofer.ts's figures: a timed program that failed is an error, not a figure; DIR's file system has the
// inodes every untar (and the 9P create rows) of the run need; the small files and random pages are what the rows
// say they are.
import t from 'tap';
import { bestOf, imageBytes, inodesNeeded, randomPage, smallFile } from '../../bench/gofer.ts';

const z = { files: 0, tarFiles: 10000 };

t.test('bestOf: the fastest successful untar of each side gives files per second', async (t) => {
  const best = bestOf('untar 1000000000 0\nuntar 500000000 0\nnoise\n', z);
  t.equal(best.get('untar'), 20000);
});

t.test('bestOf: an untar that exited non-zero (a tar out of inodes stops early, and fast) is an error', async (t) => {
  t.throws(() => bestOf('untar 1000000000 0\nuntar 100000000 1\n', z), /untar: the program exited with status 1/);
  t.throws(() => bestOf('find-stat 100000000 2\n', z), /find-stat/);
  // Other rows carry an amount (bytes, reads), not a status.
  t.equal(bestOf('seq-read 1000000000 268435456\n', z).get('seq-read'), 268435456 / 1e6);
});

t.test('inodesNeeded: --untar (10,000 files, 3 reps per side) needs more than the 65,536 of a default 1 GiB ext4; --quick does not', async (t) => {
  const untar = { files: 0, tarFiles: 10000, small: 0, reps: 3, untarOnly: true };
  const full = inodesNeeded(untar);
  t.ok(full > 1.8 * 65536 && full < 2 * 65536, `${full}: 12 trees of 10,022 and a reserve`);
  t.ok(inodesNeeded({ files: 5000, tarFiles: 2000, small: 2000, reps: 3 }) < 65536, '--quick fits a default 1 GiB');
  t.ok(inodesNeeded({ files: 20000, tarFiles: 10000, small: 10000, reps: 3 }) < (4 * 2 ** 30) / 16384, 'the full run fits the default of its 4 GiB');
  t.equal(inodesNeeded({ ...untar, untarOnly: false }) - full, 4 * 10022, 'the 9P create rows: host, our Gofer, diod, our dialect');
  t.equal(inodesNeeded({ ...untar, small: 10000 }) - full, 10010, 'the small files and their 10 directories');
});

t.test('bestOf: small-files is files per second, the best of the reps', async (t) => {
  t.equal(bestOf('small-files 500000000 2000\nsmall-files 250000000 2000\nsmall-files 400000000 2000\n', z).get('small-files'), 8000);
});

t.test('smallFile: 256 B to 4 KiB, in directories of 1,000', async (t) => {
  const sizes = Array.from({ length: 10000 }, (_, i) => smallFile(i).size);
  t.equal(Math.min(...sizes), 256);
  t.equal(Math.max(...sizes), 4096);
  t.same(smallFile(1234).path, ['data', 'small', 'd1', 'f234']);
});

t.test('randomPage: the same pages every run, spread over the whole file', async (t) => {
  const pages = 65536; // 256 MiB
  const all = Array.from({ length: 20000 }, (_, i) => randomPage(i, pages));
  t.same(all.filter((p) => !(Number.isInteger(p) && p >= 0 && p < pages)), [], 'every page inside the file');
  const seen = new Set(all);
  t.ok(seen.size > 15000, `${seen.size} distinct pages of 20,000 reads`);
  t.equal(randomPage(7, pages), randomPage(7, pages));
  const halves = [...seen].filter((p) => p >= pages / 2).length / seen.size;
  t.ok(halves > 0.45 && halves < 0.55, `${halves} in the upper half`);
});

t.test('imageBytes: 4 GiB for the full run (it was `4 << 30`, a 32-bit 0, so mkfs failed and the run fell back to /var/tmp), 1 GiB otherwise', async (t) => {
  t.equal(imageBytes({ quick: false }), 4 * 2 ** 30);
  t.equal(imageBytes({ quick: true }), 2 ** 30);
  t.equal(imageBytes({ quick: false, untarOnly: true }), 2 ** 30);
});
