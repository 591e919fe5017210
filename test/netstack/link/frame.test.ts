import t from 'tap';
import { VirtualClock, type Clock, type Timer } from '../../../netstack/clock.ts';
import { DeliveryQueue, frameFits, maxFrameLen } from '../../../netstack/link/frame.ts';
import { Recorder, frame } from './recorder.ts';

/** A frame of `total` bytes carrying the given 802.1Q/802.1ad TPIDs, then IPv4's EtherType. */
function tagged(tpids: number[], total: number): Uint8Array {
  const f = new Uint8Array(total);
  let off = 12;
  for (const tp of tpids) {
    f[off] = tp >> 8;
    f[off + 1] = tp & 0xff;
    off += 4;
  }
  f[off] = 0x08;
  return f;
}

t.test('maxFrameLen → mtu + 14, plus 4 per VLAN tag', async (t) => {
  const table: [number[], number][] = [
    [[], 1514],
    [[0x8100], 1518],
    [[0x88a8, 0x8100], 1522],
    [[0x9100, 0x8100], 1522],
    [[0x88a8, 0x88a8, 0x8100], 1526],
  ];
  for (const [tpids, want] of table) t.equal(maxFrameLen(1500, tagged(tpids, 60)), want, tpids.join('/') || 'untagged');
  t.equal(maxFrameLen(9000, tagged([], 60)), 9014);
});

t.test('frameFits → runts and oversize rejected, truncated tag header not over-credited', async (t) => {
  t.equal(frameFits(1500, new Uint8Array(13)), false);
  t.equal(frameFits(1500, new Uint8Array(14)), true);
  t.equal(frameFits(1500, tagged([], 1514)), true);
  t.equal(frameFits(1500, tagged([], 1515)), false);
  t.equal(frameFits(1500, tagged([0x8100], 1518)), true);
  t.equal(frameFits(1500, tagged([0x8100], 1519)), false);
  // A TPID with nothing after it still counts once; it cannot make a short frame too long anyway.
  t.equal(maxFrameLen(1500, new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00])), 1518);
});

t.test('DeliveryQueue push → delivered from the clock, batch end once per batch', async (t) => {
  const clock = new VirtualClock();
  const q = new DeliveryQueue(clock);
  const r = new Recorder();
  q.dispatcher = r;
  q.push(frame(1));
  q.push(frame(2));
  t.equal(q.pending, 2);
  t.same(r.log, []);
  clock.runDue();
  t.same(r.log, ['f1', 'f2', '|']);
  t.equal(q.delivered, 2);
  t.equal(q.pending, 0);
});

t.test('DeliveryQueue with no dispatcher → frames counted undeliverable, no batch end', async (t) => {
  const clock = new VirtualClock();
  const q = new DeliveryQueue(clock);
  q.push(frame(1));
  clock.runDue();
  t.equal(q.undeliverable, 1);
  t.equal(q.delivered, 0);
});

t.test('DeliveryQueue clear → nothing delivered later', async (t) => {
  const clock = new VirtualClock();
  const q = new DeliveryQueue(clock, 2);
  const r = new Recorder();
  q.dispatcher = r;
  q.push(frame(1));
  q.clear();
  clock.advance(5);
  t.same(r.log, []);
  q.push(frame(2));
  clock.advance(2);
  t.same(r.log, ['f2', '|'], 'usable after clear');
});

t.test('DeliveryQueue timer firing a hair early → the due frame is still delivered', async (t) => {
  // A clock whose timers fire 1e-12 ms before their deadline, as floating-point sums can.
  const inner = new VirtualClock(0.1);
  const early: Clock = {
    now: () => inner.now(),
    schedule: (ms: number, fn: () => void): Timer => inner.schedule(ms - 1e-12, fn),
  };
  const q = new DeliveryQueue(early, 0.2);
  const r = new Recorder();
  q.dispatcher = r;
  q.push(frame(1));
  inner.advance(0.2);
  t.same(r.log, ['f1', '|']);
});
