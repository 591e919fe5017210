// bench/gofer.ts's figures: a timed program that failed is an error, not a figure; DIR's file system has the
// inodes every untar of the run needs.
import t from 'tap';
import { bestOf, imageBytes, inodesNeeded } from '../../bench/gofer.ts';

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
  const full = inodesNeeded({ files: 0, tarFiles: 10000, reps: 3 });
  t.ok(full > 1.8 * 65536 && full < 2 * 65536, `${full}: 12 trees of 10,022 and a reserve`);
  t.ok(inodesNeeded({ files: 0, tarFiles: 2000, reps: 3 }) < 65536);
  t.ok(inodesNeeded({ files: 20000, tarFiles: 10000, reps: 3 }) < (4 * 2 ** 30) / 16384, 'the full run fits the default of its 4 GiB');
});

t.test('imageBytes: 4 GiB for the full run (it was `4 << 30`, a 32-bit 0, so mkfs failed and the run fell back to /var/tmp), 1 GiB otherwise', async (t) => {
  t.equal(imageBytes({ quick: false }), 4 * 2 ** 30);
  t.equal(imageBytes({ quick: true }), 2 ** 30);
  t.equal(imageBytes({ quick: false, untarOnly: true }), 2 ** 30);
});
