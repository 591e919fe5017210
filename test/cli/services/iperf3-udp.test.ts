// iperf3's UDP stream pieces: the data header byte-exact (32- and 64-bit counters), the receiver's loss and
// reordering accounting and RFC 3550 jitter, and the sender's pacing against a given clock.
import t from 'tap';
import { UDP_CONNECT_REPLY, UdpReceiver, UdpSender, headerSize, readHeader, writeHeader } from '../../../cli/services/iperf3-udp.ts';
import { FakeEndpoint } from '../../bench/fake-endpoint.ts';

t.test('header: sec, usec, count big-endian; 12 bytes, or 16 with 64-bit counters', async (t) => {
  const b = new Uint8Array(16);
  writeHeader(b, { sec: 0x01020304, usec: 0x0a0b0c, count: 0x11223344 }, false);
  t.same([...b.subarray(0, 12)], [1, 2, 3, 4, 0, 0x0a, 0x0b, 0x0c, 0x11, 0x22, 0x33, 0x44]);
  writeHeader(b, { sec: 5, usec: 6, count: 2 ** 32 + 7 }, true);
  t.same([...b], [0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 7]);
  t.same(readHeader(b, true), { sec: 5, usec: 6, count: 2 ** 32 + 7 });
  t.equal(readHeader(b.subarray(0, 11), false), null, 'shorter than a header → null');
  t.same([headerSize(false), headerSize(true)], [12, 16]);
  t.same([...UDP_CONNECT_REPLY], [0x36, 0x37, 0x38, 0x39], '0x39383736 as a little-endian int: "6789"');
});

function dgram(count: number, sentMs: number, len = 50): Uint8Array {
  const b = new Uint8Array(len);
  writeHeader(b, { sec: Math.floor(sentMs / 1000), usec: (sentMs % 1000) * 1000, count }, false);
  return b;
}

t.test('receiver: counts, gaps and late packets as iperf3 counts them', async (t) => {
  const cases: [string, number[], { packets: number; lost: number; outOfOrder: number }][] = [
    ['in order', [1, 2, 3], { packets: 3, lost: 0, outOfOrder: 0 }],
    ['gap', [1, 2, 5], { packets: 5, lost: 2, outOfOrder: 0 }],
    ['late packet fills a gap', [1, 3, 2], { packets: 3, lost: 0, outOfOrder: 1 }],
    ['duplicate counts as out of order', [1, 2, 2], { packets: 2, lost: 0, outOfOrder: 1 }],
    ['first packets lost', [4, 5], { packets: 5, lost: 3, outOfOrder: 0 }],
  ];
  for (const [name, seq, want] of cases) {
    const r = new UdpReceiver(false);
    for (const n of seq) r.receive(dgram(n, n), 1000 + n);
    t.match(r, { ...want, bytes: 50 * seq.length }, name);
  }
  const r = new UdpReceiver(false);
  r.receive(new Uint8Array(8), 0);
  t.match(r, { bytes: 0, packets: 0 }, 'a datagram shorter than the header is not counted');
});

t.test('receiver: jitter J += (|D| - J) / 16 over transit times, in seconds', async (t) => {
  const r = new UdpReceiver(false);
  // Sent every 10 ms; transit 1 ms, then 3 ms, then 2 ms: D = 0, 2 ms, 1 ms.
  r.receive(dgram(1, 0), 1);
  r.receive(dgram(2, 10), 13);
  r.receive(dgram(3, 20), 22);
  const j1 = 0.002 / 16;
  const want = j1 + (0.001 - j1) / 16;
  t.ok(Math.abs(r.jitter - want) < 1e-12, `${r.jitter} ≈ ${want}`);
});

t.test('sender: paced to the rate from its first pump, bursts capped, counts from 1', async (t) => {
  const ep = new FakeEndpoint('dgram');
  const peer = { address: Uint8Array.of(198, 18, 0, 1), port: 9 };
  // 100-byte datagrams at 8 kbit/s: 10 per second.
  const s = new UdpSender(ep, peer, 100, false, 8000);
  t.equal(s.pump(0, 1_700_000_000_123.5, 64), 1, 'the first datagram at once');
  t.equal(s.pump(50, 0, 64), 0, 'nothing more before 100 ms');
  t.equal(s.pump(1000, 0, 64), 10, '10 per second');
  t.equal(s.pump(5000, 0, 3), 3, 'at most a burst per pump');
  t.same(ep.written.map((w) => readHeader(w.data, false)!.count), Array.from({ length: 14 }, (_, i) => i + 1));
  t.same(readHeader(ep.written[0]!.data, false), { sec: 1_700_000_000, usec: 123500, count: 1 }, 'stamped with the wall time given');
  t.ok(ep.written.every((w) => w.data.length === 100 && w.to === peer));
  t.match(s, { packets: 14, bytes: 1400 });
  const fast = new UdpSender(new FakeEndpoint('dgram'), peer, 100, true, 0);
  t.equal(fast.pump(0, 0, 64), 64, '-b 0: a whole burst every pump');
});
