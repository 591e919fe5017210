// An AF_PACKET endpoint whose sends go through its send thread (AfPacketOptions.sendThread), over a real veth:
// bursts larger than its ring arrive whole and in order, the ring waits for the thread's batch in flight instead
// of dropping, batches sent here and batches handed over keep their order, and close() accounts for every frame.
import t from 'tap';
import type { LinkDispatcher } from '../../netstack/link/endpoint.ts';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { createVethPair } from '../../lib/testnet.ts';
import { ip4, udp } from '../lib/frames.ts';
import { HANG_MS, waitFor } from '../lib/wait.ts';

const A_IP = '198.19.10.65';
const B_IP = '198.19.10.66';
const PORT = 0x1239;

const net = createVethPair({ prefix: 'tpp-sendthr', addrA: `${A_IP}/28`, addrB: `${B_IP}/28` });
t.teardown(() => net.destroy());

// These tests are about the thread's mechanics, with small frames: every batch of enough frames is handed over,
// whatever its bytes (the byte threshold, which keeps request/response traffic on the serving thread, has a test
// of its own at the end).
const handOffBytes = AfPacketEndpoint.handOffBytes;
AfPacketEndpoint.handOffBytes = 0;
t.teardown(() => {
  AfPacketEndpoint.handOffBytes = handOffBytes;
});

/** Opens A (sending through its thread, a ring of `slots`) and B (recording our datagrams' sequence numbers). */
async function pair(t: { teardown(fn: () => void): void }, slots: number, sendThread: true | 'on-bulk' = true) {
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, sendQueue: slots, sendThread });
  const b = await AfPacketEndpoint.open({ netns: net.nsB, dev: net.devB, ringFrames: 8192 });
  t.teardown(() => {
    a.close();
    b.close();
  });
  const seqs: number[] = [];
  const d: LinkDispatcher = {
    deliverFrame(f) {
      if (f.length === 14 + 28 + 64 && f[23] === 17 && ((f[36]! << 8) | f[37]!) === PORT) seqs.push((f[42]! << 8) | f[43]!);
    },
  };
  b.attach(d);
  if (sendThread === true) await waitFor(() => a.sendThreadUp, HANG_MS, 'send thread up');
  const payload = new Uint8Array(64);
  /** Queues datagram `seq` from A to B; false when A refused it. */
  const send = (seq: number) => {
    payload[0] = seq >> 8;
    payload[1] = seq & 0xff;
    return a.writeFrame(udp(a.macAddress, b.macAddress, ip4(A_IP), ip4(B_IP), 4000, PORT, payload));
  };
  return { a, b, seqs, send };
}

const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);

t.test('burst of 4000 frames into a ring of 64 → handed to the thread, every frame in order, none dropped', async (t) => {
  const { a, b, seqs, send } = await pair(t, 64);
  let accepted = 0;
  // One synchronous burst: the ring fills 60 times over while the thread sends; nothing on B reads meanwhile.
  for (let i = 0; i < 4000; i++) if (send(i)) accepted++;
  a.flush();
  await waitFor(() => seqs.length >= 4000, HANG_MS, '4000 frames at B');
  t.equal(accepted, 4000, 'writeFrame accepted every frame');
  t.same(seqs, upTo(4000), 'every frame, once, in order');
  a.refreshCounters();
  b.refreshCounters();
  t.equal(a.counters.txFrames, 4000);
  t.equal(a.counters.txDropped, 0);
  t.equal(b.counters.rxDropped, 0);
  t.ok(a.txThread.frames >= 3000, `most frames went through the thread (${JSON.stringify(a.txThread)})`);
  t.ok(a.txThread.waits > 0, 'a full ring waited for the batch in flight');
});

t.test('small batches sent here between large ones handed over → order kept across the switch', async (t) => {
  const { a, seqs, send } = await pair(t, 64);
  // Batch sizes cycling below and above the hand-off threshold, each flushed at once, no waiting in between.
  const sizes = [1, 40, 2, 3, 60, 1, 17, 5, 33, 1];
  let seq = 0;
  let accepted = 0;
  for (let round = 0; seq < 3000; round++) {
    const n = Math.min(sizes[round % sizes.length]!, 3000 - seq);
    for (let k = 0; k < n; k++) if (send(seq++)) accepted++;
    a.flush();
    if (round % 25 === 24) await new Promise((r) => setImmediate(r));
  }
  await waitFor(() => seqs.length >= 3000, HANG_MS, '3000 frames at B');
  t.equal(accepted, 3000, 'writeFrame accepted every frame');
  t.same(seqs, upTo(3000), 'every frame, once, in order');
  a.refreshCounters();
  t.equal(a.counters.txFrames, 3000);
  t.equal(a.counters.txDropped, 0);
  t.ok(a.txThread.handOffs > 0 && a.txThread.frames < 3000, `both paths taken (${JSON.stringify(a.txThread)})`);
});

t.test('close with frames in flight → the thread stops, every frame counted as sent or dropped', async (t) => {
  const { a, send } = await pair(t, 256);
  for (let i = 0; i < 1000; i++) send(i);
  a.flush();
  a.close();
  t.equal(a.sendThreadUp, false, 'thread stopped');
  t.equal(a.counters.txFrames + a.counters.txDropped, 1000, JSON.stringify(a.counters));
});

t.test('batches of small frames below handOffBytes → sent on the serving thread, the thread never woken', async (t) => {
  AfPacketEndpoint.handOffBytes = handOffBytes;
  t.teardown(() => {
    AfPacketEndpoint.handOffBytes = 0;
  });
  const { a, seqs, send } = await pair(t, 256);
  // 40 batches of 32 frames of 106 bytes: twice handOffMin frames, 3.4 KB, like a turn of responses to requests.
  let seq = 0;
  let accepted = 0;
  for (let round = 0; round < 40; round++) {
    for (let k = 0; k < 32; k++) if (send(seq++)) accepted++;
    a.flush();
    await new Promise((r) => setImmediate(r));
  }
  t.equal(accepted, 1280, 'writeFrame accepted every frame');
  await waitFor(() => seqs.length >= 1280, HANG_MS, '1280 frames at B');
  t.same(seqs, upTo(1280), 'every frame, once, in order');
  t.same(a.txThread, { handOffs: 0, frames: 0, waits: 0 }, 'nothing handed to the thread');
  t.equal(a.refreshCounters().txFrames, 1280);
});

t.test("'on-bulk': no thread while batches are small; the first bulk batch starts it, later ones go to it, order kept", async (t) => {
  // 64 frames of 106 bytes make a bulk batch here (6.8 KB against a threshold of 3 KB); 8 frames never do.
  AfPacketEndpoint.handOffBytes = 3000;
  t.teardown(() => {
    AfPacketEndpoint.handOffBytes = 0;
  });
  const { a, seqs, send } = await pair(t, 256, 'on-bulk');
  let seq = 0;
  let accepted = 0;
  const batch = async (n: number) => {
    for (let k = 0; k < n; k++) if (send(seq++)) accepted++;
    a.flush();
    await new Promise((r) => setImmediate(r));
  };
  for (let round = 0; round < 20; round++) await batch(8);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(a.sendThreadUp, false, 'small batches started no thread');
  await batch(64);
  await waitFor(() => a.sendThreadUp, HANG_MS, 'send thread up after the first bulk batch');
  for (let round = 0; round < 10; round++) await batch(64);
  t.equal(accepted, seq, 'writeFrame accepted every frame');
  await waitFor(() => seqs.length >= seq, HANG_MS, `${seq} frames at B`);
  t.same(seqs, upTo(seq), 'every frame, once, in order');
  t.ok(a.txThread.handOffs >= 10, `later bulk batches handed to the thread (${JSON.stringify(a.txThread)})`);
});
