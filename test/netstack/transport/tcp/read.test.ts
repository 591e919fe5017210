// read() into a caller's buffer, and when reading makes the receiver send a window update of its own.
import t from 'tap';
import { tcpPair } from '../../../../bench/micro/pair.ts';
import { NetError } from '../../../../netstack/errors.ts';
import type { Endpoint, ReadResult } from '../../../../netstack/socket.ts';
import { ByteQueue, pooledChunks } from '../../../../netstack/transport/tcp/buffer.ts';
import { pattern } from './helper.ts';

function ok(r: ReadResult | NetError): ReadResult {
  if (r instanceof NetError) throw new Error(`read failed: ${r.kind}`);
  return r;
}

/** Writes `data` from the client and runs the clock until the server holds it all (or its window closed). */
function deliver(p: ReturnType<typeof tcpPair>, data: Uint8Array): void {
  let sent = 0;
  for (let i = 0; i < 5000; i++) {
    if (sent < data.length) {
      const w = p.client.write(data.subarray(sent));
      if (typeof w === 'number') sent += w;
    }
    p.clock.advance(1);
    if (sent === data.length && p.client.outQueue() === 0) break;
  }
  p.clock.advance(200); // delayed ACKs and timers settle
}

const sentByServer = (p: ReturnType<typeof tcpPair>) => p.stacks[1].counters()['tcp.segmentsSent']!;

t.test('read({ into }) copies into the caller buffer: a view of it, consumed; with peek not consumed; capped by maxBytes', (t) => {
  const p = tcpPair();
  const data = pattern(100_000);
  deliver(p, data);
  const s: Endpoint = p.server;
  t.equal(s.inQueue(), 100_000);
  const buf = new Uint8Array(30_000).fill(0xee);
  const r1 = ok(s.read({ into: buf }));
  t.equal(r1.data.buffer, buf.buffer, 'data is a view of the caller buffer');
  t.equal(r1.data.length, 30_000, 'as many bytes as the buffer holds');
  t.same(Buffer.from(buf), Buffer.from(data.subarray(0, 30_000)));
  t.equal(s.inQueue(), 70_000, 'consumed');
  const r2 = ok(s.read({ into: buf, peek: true, maxBytes: 1000 }));
  t.equal(r2.data.length, 1000, 'maxBytes caps it');
  t.same(Buffer.from(r2.data), Buffer.from(data.subarray(30_000, 31_000)));
  t.equal(s.inQueue(), 70_000, 'a peek consumes nothing');
  let got = 30_000;
  for (;;) {
    const r = s.read({ into: buf });
    if (r instanceof NetError) break;
    t.same(Buffer.from(r.data), Buffer.from(data.subarray(got, got + r.data.length)), `bytes ${got}…`);
    got += r.data.length;
  }
  t.equal(got, 100_000, 'every byte, in order');
  t.end();
});

t.test('read({ into, discard }) → the count, consumed, the buffer untouched (MSG_TRUNC); with peek nothing consumed', (t) => {
  const p = tcpPair();
  const data = pattern(100_000);
  deliver(p, data);
  const s: Endpoint = p.server;
  const buf = new Uint8Array(30_000).fill(0xee);
  const r1 = ok(s.read({ into: buf, discard: true }));
  t.equal(r1.data.buffer, buf.buffer, 'data is a view of the caller buffer');
  t.equal(r1.data.length, 30_000, 'as many bytes as the buffer holds');
  t.same([...new Set(buf)], [0xee], 'nothing copied into it');
  t.equal(s.inQueue(), 70_000, 'consumed');
  const r2 = ok(s.read({ into: buf, discard: true, peek: true, maxBytes: 1000 }));
  t.equal(r2.data.length, 1000, 'maxBytes caps it');
  t.equal(s.inQueue(), 70_000, 'a peek consumes nothing');
  const r3 = ok(s.read({ into: buf, maxBytes: 1000 }));
  t.same(Buffer.from(r3.data), Buffer.from(data.subarray(30_000, 31_000)), 'the next copying read starts after the discarded bytes');
  t.end();
});

t.test('read with most of the window still open → no window update of its own (Linux tcp_cleanup_rbuf)', (t) => {
  const p = tcpPair();
  deliver(p, pattern(20_000));
  const before = sentByServer(p);
  ok(p.server.read({ maxBytes: 20_000 }));
  t.equal(sentByServer(p), before, 'nothing sent: the peer still has more than half the window');
  t.end();
});

t.test('window closed → a read opening it sends an update; reads that do not double what is left send none', (t) => {
  const p = tcpPair();
  deliver(p, pattern(8 << 20)); // far more than any receive buffer: the window closes
  const queued = p.server.inQueue();
  t.ok(queued > 40_000 && p.client.outQueue() > 0, `the server holds ${queued} bytes and the client waits`);
  const buf = new Uint8Array(queued);
  const steps: [number, number][] = [
    [10_000, 1], // from a zero window: update
    [4_000, 0], // left ≈ 10 KB, open ≈ 14 KB: not doubled
    [12_000, 1], // open ≈ 26 KB ≥ 2 × 10 KB: update
  ];
  for (const [n, updates] of steps) {
    const before = sentByServer(p);
    ok(p.server.read({ into: buf, maxBytes: n }));
    t.equal(sentByServer(p) - before, updates, `read ${n} → ${updates} update(s)`);
  }
  t.end();
});

t.test('request/response: small reads are copies, so the receive chunk goes back to the pool every time', (t) => {
  // A view would lend the receive queue's chunk for good: every 64-byte request then cost a fresh, zeroed 2 KiB
  // chunk (issue 13: TCP round trips). A copy leaves the chunk poolable, so the pool neither shrinks nor grows.
  const p = tcpPair();
  const request = pattern(64);
  deliver(p, request);
  ok(p.server.read());
  // Make sure the pool holds a small chunk for the next request to take (a queue drained by copy gives its back).
  const seed = new ByteQueue();
  seed.append(request);
  seed.copyOut(0, 64, new Uint8Array(64), 0);
  seed.consume(64);
  const before = pooledChunks();
  t.ok(before > 0, 'the pool holds a chunk');
  for (let i = 0; i < 50; i++) {
    deliver(p, request);
    const r = ok(p.server.read());
    t.same(Buffer.from(r.data), Buffer.from(request), `request ${i} intact`);
    // A copy (cut from the endpoint's shared slab): a view of the receive queue's chunk would lend the chunk, which
    // the pool check below sees; and overwriting it (fill, below) must leave every later request intact.
    t.ok(pooledChunks() >= before, `request ${i}: the pool did not shrink`);
    t.equal(p.server.write(r.data), 64, 'answered');
    p.clock.advance(1);
    t.same(Buffer.from(ok(p.client.read()).data), Buffer.from(request), 'the answer arrives');
    r.data.fill(0);
  }
  const big = pattern(5000);
  deliver(p, big);
  t.same(Buffer.from(ok(p.server.read()).data), Buffer.from(big), 'a large read (a view) is intact too');
  t.end();
});
