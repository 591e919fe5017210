import t from 'tap';
import { VirtualClock } from '../../../netstack/clock.ts';
import { LoopbackEndpoint } from '../../../netstack/link/loopback.ts';
import { Recorder, frame } from './recorder.ts';

t.test('loopback write → same dispatcher, on the clock, as one batch', async (t) => {
  const clock = new VirtualClock();
  const lo = new LoopbackEndpoint({ clock });
  const r = new Recorder();
  lo.attach(r);
  const f1 = frame(1);
  t.equal(lo.writeFrame(f1), true);
  t.equal(lo.writeFrame(frame(2)), true);
  t.same(r.log, []);
  clock.runDue();
  t.same(r.log, ['f1', 'f2', '|']);
  t.same(r.frames[0], frame(1));
  t.equal(lo.framesSent, 2);
  t.equal(lo.framesReceived, 2);
});

t.test('loopback defaults → mtu 65536, zero MAC', async (t) => {
  const lo = new LoopbackEndpoint({ clock: new VirtualClock() });
  t.equal(lo.mtu, 65536);
  t.same(Array.from(lo.macAddress), [0, 0, 0, 0, 0, 0]);
});

t.test('loopback write during delivery → next batch, not re-entrant', async (t) => {
  const clock = new VirtualClock();
  const lo = new LoopbackEndpoint({ clock });
  const r = new Recorder();
  lo.attach(r);
  let inside = false;
  r.onFrame = (f) => {
    t.notOk(inside, 'not re-entered');
    inside = true;
    if (f[14]! < 3) lo.writeFrame(frame(f[14]! + 1));
    inside = false;
  };
  lo.writeFrame(frame(1));
  clock.runDue();
  t.same(r.log, ['f1', '|', 'f2', '|', 'f3', '|']);
});

t.test('loopback oversize and after close → dropped and counted', async (t) => {
  const clock = new VirtualClock();
  const lo = new LoopbackEndpoint({ clock, mtu: 1000 });
  const r = new Recorder();
  lo.attach(r);
  t.equal(lo.writeFrame(frame(1, 1014)), true);
  t.equal(lo.writeFrame(frame(2, 1015)), false);
  lo.writeFrame(frame(3));
  lo.close();
  clock.runDue();
  t.same(r.log, [], 'queued frames discarded on close');
  t.equal(lo.writeFrame(frame(4)), false);
  t.equal(lo.dropped, 2);
  t.equal(lo.framesSent, 2);
});

t.test('loopback with 64 KiB frame → carried whole', async (t) => {
  const clock = new VirtualClock();
  const lo = new LoopbackEndpoint({ clock });
  const r = new Recorder();
  lo.attach(r);
  const big = frame(9, 65536 + 14);
  t.equal(lo.writeFrame(big), true);
  clock.runDue();
  t.equal(r.frames[0]!.length, 65550);
});
