import t from 'tap';
import { VirtualClock } from '../../../netstack/clock.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import { Recorder, frame } from './recorder.ts';

t.test('pair write → delivered to peer on the clock, not synchronously, as one batch', async (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock });
  const rb = new Recorder();
  b.attach(rb);
  t.equal(a.writeFrame(frame(1)), true);
  t.equal(a.writeFrame(frame(2)), true);
  t.same(rb.log, [], 'nothing delivered inside writeFrame');
  t.equal(b.pendingDeliveries, 2);
  clock.runDue();
  t.same(rb.log, ['f1', 'f2', '|']);
  t.same(rb.frames[0], frame(1));
  t.equal(a.framesSent, 2);
  t.equal(b.framesReceived, 2);
  t.equal(a.framesReceived, 0);
});

t.test('pair → distinct locally administered unicast MACs, default mtu 1500', async (t) => {
  const [a, b] = ChannelEndpoint.pair({ clock: new VirtualClock() });
  t.same(Array.from(a.macAddress), [2, 0, 0, 0, 0, 1]);
  t.same(Array.from(b.macAddress), [2, 0, 0, 0, 0, 2]);
  for (const m of [a.macAddress, b.macAddress]) t.equal(m[0]! & 0x03, 0x02, 'U/L set, I/G clear');
  t.equal(a.mtu, 1500);
  t.equal(a.name, 'a');
  t.equal(b.name, 'b');
});

t.test('write during delivery → goes in a later batch, no re-entry', async (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock });
  const ra = new Recorder();
  const rb = new Recorder();
  a.attach(ra);
  b.attach(rb);
  let depth = 0;
  rb.onFrame = (f) => {
    depth++;
    if (f[14]! < 3) b.writeFrame(frame(f[14]! + 10));
    t.equal(ra.log.length, 0, 'reply not delivered during the delivery that caused it');
    depth--;
  };
  a.writeFrame(frame(1));
  a.writeFrame(frame(2));
  clock.runDue();
  t.same(rb.log, ['f1', 'f2', '|']);
  t.same(ra.log, ['f11', 'f12', '|']);
  t.equal(depth, 0);
});

t.test('latency → delivered exactly latencyMs later, frames due together batched', async (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock, latencyMs: 5 });
  const rb = new Recorder();
  b.attach(rb);
  a.writeFrame(frame(1));
  a.writeFrame(frame(2));
  clock.advance(1);
  a.writeFrame(frame(3));
  clock.advance(3.5);
  t.same(rb.log, []);
  clock.advance(0.5);
  t.same(rb.log, ['f1', 'f2', '|']);
  clock.advance(0.5);
  t.same(rb.log, ['f1', 'f2', '|']);
  clock.advance(0.5);
  t.same(rb.log, ['f1', 'f2', '|', 'f3', '|']);
});

t.test('no peer → frames captured for drain(), in order, drain empties', async (t) => {
  const ep = new ChannelEndpoint({ clock: new VirtualClock() });
  const f1 = frame(1);
  ep.writeFrame(f1);
  ep.writeFrame(frame(2));
  const got = ep.drain();
  t.equal(got.length, 2);
  t.equal(got[0], f1, 'the written frame itself (ownership passed)');
  t.equal(got[1]![14], 2);
  t.same(ep.drain(), []);
});

t.test('onWrite set → hears every write; no peer → nothing kept for drain', async (t) => {
  const clock = new VirtualClock();
  const ep = new ChannelEndpoint({ clock });
  const heard: number[] = [];
  ep.onWrite = (f) => heard.push(f[14]!);
  ep.writeFrame(frame(1));
  ep.writeFrame(frame(2));
  t.same(heard, [1, 2]);
  t.same(ep.drain(), []);
  const [a, b] = ChannelEndpoint.pair({ clock });
  const rb = new Recorder();
  b.attach(rb);
  a.onWrite = (f) => heard.push(f[14]!);
  a.writeFrame(frame(3));
  clock.runDue();
  t.same(heard, [1, 2, 3]);
  t.same(rb.log, ['f3', '|'], 'a hook does not stop delivery to the peer');
});

t.test('inject → delivered (copied) on the clock to this endpoint', async (t) => {
  const clock = new VirtualClock();
  const ep = new ChannelEndpoint({ clock });
  const r = new Recorder();
  ep.attach(r);
  const f = frame(7);
  ep.inject(f);
  f[14] = 99; // the caller reuses its buffer
  t.same(r.log, []);
  clock.runDue();
  t.same(r.log, ['f7', '|']);
  t.equal(ep.framesReceived, 1);
  t.equal(ep.framesSent, 0);
});

t.test('oversize frames → dropped and counted, on write and on receipt', async (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock, mtu: 100 });
  const rb = new Recorder();
  b.attach(rb);
  t.equal(a.writeFrame(frame(1, 114)), true, 'mtu + 14 fits');
  t.equal(a.writeFrame(frame(2, 115)), false, 'one more byte does not');
  t.equal(a.writeFrame(frame(3, 13)), false, 'runt (shorter than a header)');
  t.equal(a.dropped, 2);
  t.equal(a.framesSent, 1);
  b.inject(frame(4, 115));
  t.equal(b.dropped, 1);
  clock.runDue();
  t.same(rb.log, ['f1', '|']);
});

t.test('VLAN-tagged frame → 4 more bytes allowed per tag', async (t) => {
  const ep = new ChannelEndpoint({ clock: new VirtualClock(), mtu: 1500 });
  const tagged = (total: number): Uint8Array => {
    const f = new Uint8Array(total);
    f.set([0x81, 0x00, 0, 1, 0x08, 0x00], 12);
    return f;
  };
  t.equal(ep.writeFrame(tagged(1518)), true);
  t.equal(ep.writeFrame(tagged(1519)), false);
  t.equal(ep.dropped, 1);
});

t.test('closed endpoint write → false, counted; pending deliveries discarded', async (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock });
  const rb = new Recorder();
  b.attach(rb);
  a.writeFrame(frame(1));
  b.close();
  b.close();
  clock.runDue();
  t.same(rb.log, [], 'closed endpoint delivers nothing');
  a.writeFrame(frame(2));
  t.equal(b.dropped, 1, 'receipt at a closed peer is counted there');
  a.close();
  t.equal(a.writeFrame(frame(3)), false);
  t.equal(a.dropped, 1);
  t.equal(a.framesSent, 2);
});

t.test('no dispatcher attached when due → dropped and counted', async (t) => {
  const clock = new VirtualClock();
  const ep = new ChannelEndpoint({ clock });
  ep.inject(frame(1));
  clock.runDue();
  t.equal(ep.dropped, 1);
  t.equal(ep.framesReceived, 0);
  const r = new Recorder();
  ep.attach(r);
  ep.inject(frame(2));
  ep.attach(null);
  ep.attach(r);
  clock.runDue();
  t.same(r.log, ['f2', '|'], 'the dispatcher at delivery time gets it');
});

t.test('disconnect → writes captured; connect → delivered to new peer', async (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock });
  a.disconnect();
  a.writeFrame(frame(1));
  t.equal(a.drain().length, 1);
  const c = new ChannelEndpoint({ clock, name: 'c' });
  const rc = new Recorder();
  c.attach(rc);
  a.connect(c);
  a.writeFrame(frame(2));
  b.writeFrame(frame(3));
  clock.runDue();
  t.same(rc.log, ['f2', '|']);
  t.equal(b.drain().length, 1, 'b was unwired when a was');
});
