import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { PcapFileSink } from '../../lib/pcapfile.ts';

const dir = mkdtempSync(join(tmpdir(), 'tsv-lib-pcap-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** A classic pcap global header (LINKTYPE_ETHERNET) and one record, built by hand. */
function header(): Uint8Array {
  const h = new Uint8Array(24);
  const v = new DataView(h.buffer);
  v.setUint32(0, 0xa1b2c3d4, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setUint32(16, 65535, true);
  v.setUint32(20, 1, true);
  return h;
}
function record(sec: number, frame: Uint8Array): Uint8Array {
  const r = new Uint8Array(16 + frame.length);
  const v = new DataView(r.buffer);
  v.setUint32(0, sec, true);
  v.setUint32(8, frame.length, true);
  v.setUint32(12, frame.length, true);
  r.set(frame, 16);
  return r;
}

t.test('chunks written then closed → file holds exactly their concatenation, readable by tcpdump', (t) => {
  const path = join(dir, 'a.pcap');
  const sink = new PcapFileSink(path);
  const frame = new Uint8Array(60).fill(0xee);
  const chunks = [header(), record(1, frame), record(2, frame)];
  for (const c of chunks) sink.sink(c);
  sink.close();
  sink.close();
  sink.sink(new Uint8Array([1, 2, 3])); // after close: ignored
  t.same([...readFileSync(path)], chunks.flatMap((c) => [...c]));
  t.equal(sink.bytesWritten, 24 + 2 * 76);
  const out = execFileSync('tcpdump', ['-r', path, '-nn', '-tt'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  t.same(out.split('\n').filter((l) => /^\d+\.\d+ /.test(l)).map((l) => l.split(' ')[0]), ['1.000000', '2.000000'], 'two packets read back');
  t.end();
});

t.test('more than 64 KiB → flushed before close; append mode keeps old bytes', (t) => {
  const path = join(dir, 'b.pcap');
  const sink = new PcapFileSink(path);
  const big = new Uint8Array(70 * 1024).fill(1);
  sink.sink(big);
  t.equal(readFileSync(path).length, big.length, 'on disk before close');
  sink.close();
  const again = new PcapFileSink(path, { append: true });
  again.sink(new Uint8Array([9, 9]));
  again.close();
  const all = readFileSync(path);
  t.equal(all.length, big.length + 2);
  t.same([...all.subarray(-3)], [1, 9, 9]);
  t.end();
});

t.test('small chunk, no close → on disk after the next event-loop turn', async (t) => {
  const path = join(dir, 'c.pcap');
  const sink = new PcapFileSink(path);
  sink.sink(header());
  t.equal(readFileSync(path).length, 0);
  await new Promise((r) => setImmediate(r));
  t.equal(readFileSync(path).length, 24);
  sink.close();
});
