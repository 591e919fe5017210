/**
 * AfPacketEndpoint over a real veth with offloads on: frames built in the send slot frameBuffer hands out leave
 * without a copy (writeFrame and writeGso) and arrive byte for byte; frames from elsewhere are still copied; and
 * the receive side flags RX_MORE on a frame when the ring already holds the next one.
 */
import t from 'tap';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import type { MmsgBatch } from '../../lib/mmsg.ts';
import { createVethPair } from '../../lib/testnet.ts';
import { GsoType } from '../../lib/vnet.ts';
import { RX_CSUM_VERIFIED, RX_MORE } from '../../netstack/link/endpoint.ts';
import { ip4, tcp4 } from '../lib/frames.ts';
import { HANG_MS, waitFor } from '../lib/wait.ts';

const A_IP = '198.18.93.1';
const B_IP = '198.18.93.2';
const pair = createVethPair({ prefix: 'zc-fb', addrA: `${A_IP}/24`, addrB: `${B_IP}/24`, offloads: true });
t.teardown(() => pair.destroy());

// IEEE 802 local experimental EtherType: both kernels ignore these frames, so only our sockets see them.
const EXPERIMENTAL = 0x88b5;
const MSS = 1448;

/** A frame of `len` bytes from `src` to `dst` with the experimental EtherType, its payload a pattern of `seed`. */
function testFrame(src: Uint8Array, dst: Uint8Array, len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = EXPERIMENTAL >>> 8;
  f[13] = EXPERIMENTAL & 0xff;
  for (let i = 14; i < len; i++) f[i] = (i * 7 + seed * 13) & 0xff;
  return f;
}

const isTest = (f: Uint8Array) => f.length >= 14 && ((f[12]! << 8) | f[13]!) === EXPERIMENTAL;
const isOurTcp = (f: Uint8Array) => f.length >= 54 && f[12] === 8 && f[13] === 0 && f[23] === 6 && f[34] === 0x9c && f[35] === 0x40;

/** Where two byte arrays first differ, or -1 when equal. */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Counts copies into the endpoint's send slots, by wrapping each slot view's `set` (the one copy writeFrame makes). */
function countSlotCopies(ep: AfPacketEndpoint): { copies: number } {
  const tx = (ep as unknown as { tx: MmsgBatch }).tx;
  const seen = { copies: 0 };
  for (let i = 0; i < tx.count; i++) {
    const slot = tx.slot(i);
    const set = slot.set.bind(slot);
    slot.set = (src: ArrayLike<number>, offset?: number) => {
      seen.copies++;
      set(src, offset);
    };
  }
  return seen;
}

async function endpoints(t: { teardown(fn: () => void): void }) {
  const a = await AfPacketEndpoint.open({ netns: pair.nsA, dev: pair.devA, offloads: true });
  const b = await AfPacketEndpoint.open({ netns: pair.nsB, dev: pair.devB, offloads: true });
  t.teardown(() => {
    a.close();
    b.close();
  });
  return { a, b };
}

t.test('frameBuffer, frames built in it → writeFrame sends them without a copy, byte for byte', async (t) => {
  const { a, b } = await endpoints(t);
  const got: Uint8Array[] = [];
  b.attach({ deliverFrame: (f) => void (isTest(f) && got.push(f.slice())) });
  const copies = countSlotCopies(a);
  const want: Uint8Array[] = [];
  for (let i = 0; i < 5; i++) {
    const f = testFrame(a.macAddress, b.macAddress, 60 + i * 300, i);
    // Ask for more than is used: the stack passes view.subarray(0, n) once it knows n.
    const view = a.frameBuffer(1514);
    t.ok(view, 'a view is offered');
    view!.set(f);
    t.equal(a.writeFrame(view!.subarray(0, f.length)), true);
    want.push(f);
  }
  t.equal(copies.copies, 0, 'no frame was copied into its slot');
  a.flush();
  await waitFor(() => got.length >= want.length, HANG_MS, `${want.length} frames at B`);
  t.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) t.equal(firstDiff(got[i]!, want[i]!), -1, `frame ${i} arrives byte for byte`);
  t.equal(a.counters.txFrames, want.length);
  t.equal(a.counters.txBytes, want.reduce((n, f) => n + f.length, 0), 'txBytes count frames, not the virtio_net_hdr');
});

t.test('frameBuffer handed out, another frame written instead → copied, and both kinds arrive intact in order', async (t) => {
  const { a, b } = await endpoints(t);
  const got: Uint8Array[] = [];
  b.attach({ deliverFrame: (f) => void (isTest(f) && got.push(f.slice())) });
  const copies = countSlotCopies(a);
  const first = testFrame(a.macAddress, b.macAddress, 200, 1);
  a.frameBuffer(1514)!.fill(0xee); // offered but not used: the next write is an ordinary frame
  t.equal(a.writeFrame(first), true);
  t.equal(copies.copies, 1, 'the ordinary frame was copied');
  const second = testFrame(a.macAddress, b.macAddress, 900, 2);
  const view = a.frameBuffer(second.length)!;
  view.set(second);
  t.equal(a.writeFrame(view), true);
  t.equal(copies.copies, 1, 'the in-place frame was not');
  // A stale view (handed out for the slot now taken by `second`) is not mistaken for the next slot: it is copied.
  t.equal(a.writeFrame(view), true);
  t.equal(copies.copies, 2, 'a view of an earlier slot is copied');
  a.flush();
  await waitFor(() => got.length >= 3, HANG_MS, '3 frames at B');
  t.equal(firstDiff(got[0]!, first), -1, 'the copied frame intact');
  t.equal(firstDiff(got[1]!, second), -1, 'the in-place frame intact');
  t.equal(firstDiff(got[2]!, second), -1, 'the re-sent view intact');
  t.equal(a.counters.txFrames, 3);
});

t.test('frameBuffer asked again for a slot at the same length → the same view, at another → a new one; all arrive intact', async (t) => {
  const { a, b } = await endpoints(t);
  const got: Uint8Array[] = [];
  b.attach({ deliverFrame: (f) => void (isTest(f) && got.push(f.slice())) });
  const want: Uint8Array[] = [];
  const views: Uint8Array[] = [];
  // Each frame is sent before the next is asked for: the ring is rewound, so every frame takes the first slot.
  for (const [len, seed] of [[300, 1], [300, 2], [700, 3], [700, 4]] as const) {
    const f = testFrame(a.macAddress, b.macAddress, len, seed);
    const view = a.frameBuffer(len)!;
    views.push(view);
    view.set(f);
    t.equal(a.writeFrame(view), true);
    a.flush();
    want.push(f);
  }
  // Compared as references: a failure then reports two booleans, not the slot memory behind the views.
  t.ok(views[1] === views[0], 'the same slot and length: the same view');
  t.ok(views[2] !== views[1], 'another length: a new view');
  t.ok(views[3] === views[2], 'and that one again for its length');
  await waitFor(() => got.length >= want.length, HANG_MS, `${want.length} frames at B`);
  for (let i = 0; i < want.length; i++) t.equal(firstDiff(got[i]!, want[i]!), -1, `frame ${i} arrives byte for byte`);
});

t.test('frameBuffer + writeGso of a 64 KB TCP super-segment → sent without a copy, arrives whole and identical', async (t) => {
  const { a, b } = await endpoints(t);
  const got: Uint8Array[] = [];
  const flags: number[] = [];
  b.attach({ deliverFrame: (f, fl) => void (isOurTcp(f) && got.push(f.slice()) && flags.push(fl ?? 0)) });
  const data = new Uint8Array(64000).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
  const frame = tcp4(a.macAddress, b.macAddress, ip4(A_IP), ip4(B_IP), [40000, 9], 1_000_000, 0, 0x18, data, true);
  const opts = { gsoType: GsoType.TCPV4, gsoSize: MSS, hdrLen: 54, csumStart: 34, csumOffset: 16 };
  const copies = countSlotCopies(a);
  const view = a.frameBuffer(frame.length)!;
  t.equal(view.length, frame.length);
  view.set(frame);
  t.equal(a.writeGso(view, opts), true);
  t.equal(copies.copies, 0, 'not copied into its slot');
  a.flush();
  await waitFor(() => got.length >= 1, HANG_MS, 'the super-frame at B');
  t.equal(got.length, 1, 'one super-frame, passed on whole by the veth');
  t.equal(firstDiff(got[0]!, frame), -1, 'identical to what was built, checksum still partial');
  t.ok(flags[0]! & RX_CSUM_VERIFIED, 'flagged verified');
  t.equal(a.vnetCounters.txGsoFrames, 1);
  t.equal(a.counters.txFrames, 1);
  t.equal(a.counters.txBytes, frame.length);
});

t.test('frameBuffer limits → null beyond a slot and after close; the full largest frame is offered', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: pair.nsA, dev: pair.devA, offloads: true });
  const plain = await AfPacketEndpoint.open({ netns: pair.nsA, dev: pair.devA, sendQueue: 4 });
  t.teardown(() => {
    a.close();
    plain.close();
  });
  const max = a.capabilities.maxGsoSize;
  t.equal(a.frameBuffer(max)?.length, max, 'a whole 64 KB super-frame fits');
  t.equal(a.frameBuffer(max + 1), null, 'one byte more does not');
  t.equal(plain.frameBuffer(1518)?.length, 1518, 'without offloads: MTU + Ethernet header + VLAN tag');
  t.equal(plain.frameBuffer(1519), null);
  // A full queue is flushed to make room, as writeFrame does, instead of refusing.
  for (let i = 0; i < 4; i++) t.equal(plain.writeFrame(testFrame(plain.macAddress, new Uint8Array(6).fill(0xff), 60, i)), true);
  t.ok(plain.frameBuffer(100), 'offered after flushing the full queue');
  t.equal(plain.counters.txDropped, 0);
  plain.close();
  t.equal(plain.frameBuffer(100), null, 'closed → null');
});

t.test('burst of frames B → A → delivered with RX_MORE while the ring holds the next, the batch\'s last without', async (t) => {
  const { a, b } = await endpoints(t);
  const events: (number | 'end')[] = [];
  a.attach({
    deliverFrame: (f, fl) => void (isTest(f) && events.push(fl ?? 0)),
    deliverBatchEnd: () => void events.push('end'),
  });
  const n = 160;
  let queued = 0;
  for (let i = 0; i < n; i++) if (b.writeFrame(testFrame(b.macAddress, a.macAddress, 100, i))) queued++;
  b.flush();
  t.equal(queued, n, 'the whole burst was queued in one flush'); // one sendmmsg: every frame is in A's ring before A's next wake-up
  await waitFor(() => events.filter((e) => e !== 'end').length >= n && events[events.length - 1] === 'end', HANG_MS, `${n} frames at A`);
  const frames = events.filter((e): e is number => e !== 'end');
  t.equal(frames.length, n);
  const more = frames.filter((f) => (f & RX_MORE) !== 0).length;
  t.ok(more >= n / 2, `${more} of ${n} frames flagged RX_MORE`);
  // RX_MORE promises another frame before deliverBatchEnd; a frame right before deliverBatchEnd never has it.
  const broken: string[] = [];
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e !== 'end' && e & RX_MORE && events[i + 1] === 'end') broken.push(`event ${i} flagged RX_MORE ends its batch`);
  }
  t.same(broken, [], `every RX_MORE frame is followed by another frame (events: ${events.map((e) => (e === 'end' ? '|' : e & RX_MORE ? 'm' : '.')).join('')})`);
  t.ok(events.filter((e) => e === 'end').length >= 1);
  t.equal(events[events.length - 1], 'end');
});

t.test('burst of 160 small frames with offloads → at most 64 delivered before the event loop runs the microtasks they queued', async (t) => {
  const { a, b } = await endpoints(t);
  const events: string[] = [];
  a.attach({
    deliverFrame: (f) => {
      if (!isTest(f)) return;
      events.push('f');
      // What an application's read does: it runs in a microtask queued by the delivery's readiness event.
      queueMicrotask(() => events.push('m'));
    },
  });
  const n = 160;
  let queued = 0;
  for (let i = 0; i < n; i++) if (b.writeFrame(testFrame(b.macAddress, a.macAddress, 100, i))) queued++;
  b.flush();
  t.equal(queued, n, 'the whole burst was queued in one flush');
  await waitFor(() => events.filter((e) => e === 'f').length >= n, HANG_MS, `${n} frames at A`);
  // Longest run of deliveries with no microtask in between.
  const longest = Math.max(...events.join('').split('m').map((run) => run.length));
  t.ok(longest <= 64, `at most 64 frames in a row before microtasks ran (longest run ${longest}: ${events.join('')})`);
  t.ok(events.indexOf('m') > 0 && events.indexOf('m') < n, 'the first microtask ran before the burst was over');
});

t.test('bare SYNs → their own ring, drained after the other frames of a burst; without it, wire order', async (t) => {
  const src = ip4(A_IP);
  const dst = ip4(B_IP);
  // Port 40000 (0x9c40) from A: isOurTcp. SYN, ACK, SYN-ACK, a SYN with 300 bytes of data (too long for the ring
  // of SYNs), a second SYN and ACK: the burst as the wire carries it.
  const burst = (a: AfPacketEndpoint, b: AfPacketEndpoint) => [
    tcp4(a.macAddress, b.macAddress, src, dst, [40000, 7], 100, 0, 0x02, new Uint8Array(0)),
    tcp4(a.macAddress, b.macAddress, src, dst, [40000, 7], 101, 1, 0x10, new Uint8Array(0)),
    tcp4(a.macAddress, b.macAddress, src, dst, [40000, 7], 102, 2, 0x12, new Uint8Array(0)),
    tcp4(a.macAddress, b.macAddress, src, dst, [40000, 7], 103, 0, 0x02, new Uint8Array(300)),
    tcp4(a.macAddress, b.macAddress, src, dst, [40000, 7], 104, 0, 0x02, new Uint8Array(0)),
    tcp4(a.macAddress, b.macAddress, src, dst, [40000, 7], 105, 3, 0x10, new Uint8Array(0)),
  ];
  const seqOf = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset).getUint32(38) - 100;
  for (const synRing of [true, false]) {
    const a = await AfPacketEndpoint.open({ netns: pair.nsA, dev: pair.devA, offloads: true });
    const b = await AfPacketEndpoint.open({ netns: pair.nsB, dev: pair.devB, offloads: true, synRing });
    const order: number[] = [];
    b.attach({ deliverFrame: (f) => void (isOurTcp(f) && order.push(seqOf(f))) });
    try {
      const queued = burst(a, b).filter((f) => a.writeFrame(f)).length;
      a.flush();
      t.equal(queued, 6, 'the burst went out in one flush');
      await waitFor(() => order.length >= 6, HANG_MS, 'the burst at B');
      // SYNs 0 and 4 come last, in their order; the SYN with data stays among the others.
      t.same(order, synRing ? [1, 2, 3, 5, 0, 4] : [0, 1, 2, 3, 4, 5], synRing ? 'ring for SYNs: after the rest' : 'no ring for SYNs: wire order');
    } finally {
      a.close();
      b.close();
    }
  }
});
