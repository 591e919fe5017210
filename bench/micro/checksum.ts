/**
 * Internet checksum (RFC 1071) over 64 B, 1500 B and 64 KiB: `node --import tsx bench/micro/checksum.ts`.
 */
import b from 'benny';
import { finishChecksum, sum16 } from '../../netstack/wire/checksum.ts';

const sizes = [64, 1500, 65536];
const bufs = sizes.map((n) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));
let sink = 0;

await b.suite(
  'checksum',
  b.configure({ cases: { minTime: 0.5, maxTime: 1 } }),
  ...bufs.map((buf) => b.add(`sum16 ${buf.length} B`, () => {
    sink ^= finishChecksum(sum16(buf));
  })),
  b.cycle((r) => {
    const bytes = Number(/(\d+) B/.exec(r.name)![1]);
    process.stdout.write(`  ${r.name}: ${((r.ops * bytes * 8) / 1e9).toFixed(2)} Gbit/s of data checksummed\n`);
  }),
  b.complete(),
);
if (sink === -1) process.stdout.write('');
