/**
 * The TCP send and receive paths and in-memory stack-to-stack throughput: two Netstacks on a channel link with a
 * virtual clock (so only CPU time is measured). Cases: one 64 KiB write through segmentation, the link, receive
 * and the read, at MTU 1500, 65520, and 1500 with GSO links (TSO super-frames, checksums left to the link as on
 * a veth); prints the implied throughput. `node --import tsx bench/micro/tcp.ts`.
 */
import b from 'benny';
import { tcpPair } from './pair.ts';

const CHUNK = 65536;
const data = new Uint8Array(CHUNK).fill(0x5a);
const pairs = [
  { name: 'MTU 1500', pair: tcpPair(1500) },
  { name: 'MTU 65520', pair: tcpPair(65520) },
  { name: 'MTU 1500 + GSO', pair: tcpPair(1500, { gso: true }) },
];
for (const { pair } of pairs) pair.pump(data, 4 << 20); // past slow start

await b.suite(
  'tcp',
  b.configure({ cases: { minTime: 1, maxTime: 2 } }),
  ...pairs.map(({ name, pair }) => b.add(`64 KiB client write → server read, ${name}`, () => {
    pair.pump(data, CHUNK);
  })),
  b.cycle((r) => {
    process.stdout.write(`  ${r.name}: ${((r.ops * CHUNK * 8) / 1e9).toFixed(3)} Gbit/s stack to stack (one core, both stacks)\n`);
  }),
  b.complete(),
);
