// The send thread's ring protocol, on an AF_UNIX datagram pair (sendmmsg works on any datagram socket): slots
// published in any grouping go out once each, in order, across many wraps of the ring; a full socket buffer is
// waited out, not dropped; stop() ends a thread even while it waits.
import t from 'tap';
import { C, setIntOption } from '../../lib/libc.ts';
import { MmsgBatch } from '../../lib/mmsg.ts';
import { SendThread } from '../../lib/send-thread.ts';
import { close, recv, socketPair } from '../../lib/unix.ts';
import { HANG_MS, waitFor } from './wait.ts';

const SLOTS = 8;

/** A ring of SLOTS slots over a datagram pair, its thread started and up, and the producer's side of the ring. */
async function ring(t: { teardown(fn: () => void): void }, frameHeader = 0) {
  const [tx, rx] = socketPair('dgram');
  const batch = new MmsgBatch(SLOTS, 256);
  const thread = SendThread.start({ fd: tx, count: SLOTS, frameHeader, ...batch.layout });
  t.teardown(() => {
    thread.stop();
    batch.free();
    close(tx);
    close(rx);
  });
  await waitFor(() => thread.up, HANG_MS, 'send thread up');
  let tail = 0;
  const got: number[] = [];
  const buf = new Uint8Array(256);
  /** Reads every datagram waiting on the receiving end. */
  const drain = () => {
    while (recv(rx, buf) > 0) got.push(new DataView(buf.buffer, frameHeader).getUint32(0, true));
  };
  return {
    tx,
    thread,
    got,
    drain,
    /** Whether a slot is free. */
    room: () => thread.distance(thread.sent, tail) < SLOTS,
    /** Queues datagram `seq` (frameHeader bytes, then seq as 4 bytes), reading and waiting while the ring is full. */
    put(seq: number) {
      while (thread.distance(thread.sent, tail) >= SLOTS) {
        drain();
        thread.waitSent(thread.sent, 5);
      }
      const i = tail < SLOTS ? tail : tail - SLOTS;
      batch.view.setUint32(batch.offsetOf(i) + frameHeader, seq, true);
      batch.setLength(i, frameHeader + 4 + (seq % 7));
      tail = tail + 1 === 2 * SLOTS ? 0 : tail + 1;
    },
    publish() {
      thread.publish(tail);
    },
  };
}

t.test('slots published one by one and in groups, across 600 wraps → every datagram once, in order', async (t) => {
  const r = await ring(t, 2);
  const total = 5000;
  for (let seq = 0, group = 1; seq < total; group = (group % 5) + 1) {
    for (let k = 0; k < group && seq < total; k++) r.put(seq++);
    r.publish();
    r.drain();
  }
  await waitFor(() => (r.drain(), r.got.length >= total), HANG_MS, `${total} datagrams`);
  t.same(r.got, Array.from({ length: total }, (_, i) => i), 'in order, none lost or repeated');
  const c = { txFrames: 0, txBytes: 0, txCalls: 0, txBlocked: 0, txDropped: 0 };
  r.thread.addCounts(c);
  t.equal(c.txFrames, total);
  let bytes = 0;
  for (let i = 0; i < total; i++) bytes += 4 + (i % 7);
  t.equal(c.txBytes, bytes, 'bytes without the header in front of each frame');
  t.equal(c.txDropped, 0);
  t.ok(c.txCalls <= total, `at most a call per frame (${c.txCalls})`);
});

t.test('socket buffer full → the thread waits for it (blocked), then sends the rest in order', async (t) => {
  const r = await ring(t);
  // A send buffer of the minimum: a few datagrams fill it while nothing reads the other end.
  setIntOption(r.tx, C.SOL_SOCKET, C.SO_SNDBUF, 1, 'SO_SNDBUF');
  let seq = 0;
  while (!r.thread.blocked && seq < 10_000) {
    if (r.room()) {
      r.put(seq++);
      r.publish();
    } else {
      await new Promise((res) => setTimeout(res, 1));
    }
  }
  t.ok(r.thread.blocked, `blocked after ${seq} datagrams`);
  t.ok(r.thread.busy, 'the rest is still queued');
  await waitFor(() => (r.drain(), r.got.length >= seq), HANG_MS, `${seq} datagrams`);
  t.same(r.got, Array.from({ length: seq }, (_, i) => i), 'in order, none lost');
  const c = { txFrames: 0, txBytes: 0, txCalls: 0, txBlocked: 0, txDropped: 0 };
  r.thread.addCounts(c);
  t.ok(c.txBlocked >= 1, 'the wait is counted');
  t.equal(c.txDropped, 0);
});

t.test('stop while the thread waits for a full socket → it leaves within a poll step', async (t) => {
  const [tx, rx] = socketPair('dgram');
  const batch = new MmsgBatch(SLOTS, 256);
  t.teardown(() => {
    batch.free();
    close(tx);
    close(rx);
  });
  setIntOption(tx, C.SOL_SOCKET, C.SO_SNDBUF, 1, 'SO_SNDBUF');
  const thread = SendThread.start({ fd: tx, count: SLOTS, frameHeader: 0, ...batch.layout });
  await waitFor(() => thread.up, HANG_MS, 'send thread up');
  for (let i = 0; i < SLOTS; i++) batch.setLength(i, 200);
  thread.publish(SLOTS);
  await waitFor(() => thread.blocked, HANG_MS, 'blocked');
  const started = Date.now();
  t.equal(thread.stop(), true);
  t.ok(Date.now() - started < 500, `stopped in ${Date.now() - started} ms`);
  t.equal(thread.up, false);
});
