import t from 'tap';
import { VirtualClock } from '../../../netstack/clock.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import type { LinkDispatcher, LinkEndpoint } from '../../../netstack/link/endpoint.ts';
import { ImpairEndpoint, NO_IMPAIRMENT, parseImpairSpec, type ImpairSpec } from '../../../netstack/link/impair.ts';

/** A 64-byte frame carrying sequence number `seq` at offset 14 (big-endian). */
function seqFrame(seq: number): Uint8Array {
  const f = new Uint8Array(64);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
  new DataView(f.buffer).setUint32(14, seq);
  for (let i = 18; i < 64; i++) f[i] = (i * 7) & 0xff;
  return f;
}
const seqOf = (f: Uint8Array): number => new DataView(f.buffer, f.byteOffset).getUint32(14);

/** A wrapped link for tests: records writes; `receive` delivers from a buffer it then scribbles over. */
class FakeLink implements LinkEndpoint {
  readonly mtu = 1500;
  readonly macAddress = new Uint8Array([2, 0, 0, 0, 0, 9]);
  written: Uint8Array[] = [];
  flushes = 0;
  closed = false;
  private d: LinkDispatcher | null = null;
  attach(d: LinkDispatcher | null): void {
    this.d = d;
  }
  writeFrame(f: Uint8Array): boolean {
    this.written.push(f);
    return true;
  }
  flush(): void {
    this.flushes++;
  }
  close(): void {
    this.closed = true;
  }
  /** Delivers `frames` as one batch from a single reused buffer, as a host ring would. */
  receive(frames: Uint8Array[]): void {
    const buf = new Uint8Array(2048);
    for (const f of frames) {
      buf.set(f);
      this.d?.deliverFrame(buf.subarray(0, f.length));
      buf.fill(0xee);
    }
    this.d?.deliverBatchEnd?.();
  }
}

class Sink implements LinkDispatcher {
  frames: Uint8Array[] = [];
  times: number[] = [];
  batchEnds = 0;
  constructor(private readonly clock: VirtualClock) {}
  deliverFrame(f: Uint8Array): void {
    this.frames.push(f.slice());
    this.times.push(this.clock.now());
  }
  deliverBatchEnd(): void {
    this.batchEnds++;
  }
}

/** Sends n sequence frames out through an impair link over a FakeLink, 0.1 ms apart; returns what left. */
function runOut(spec: Partial<ImpairSpec>, n: number): { out: Uint8Array[]; link: ImpairEndpoint } {
  const clock = new VirtualClock();
  const inner = new FakeLink();
  const link = new ImpairEndpoint(inner, clock, spec);
  for (let i = 0; i < n; i++) {
    link.writeFrame(seqFrame(i));
    clock.advance(0.1);
  }
  clock.advance(1000);
  return { out: inner.written, link };
}

/** Whether |observed - n·p| is within 5 binomial standard deviations, with a message saying so. */
function within(observed: number, n: number, p: number, what: string): [boolean, string] {
  const sd = Math.sqrt(n * p * (1 - p));
  const ok = Math.abs(observed - n * p) <= 5 * sd;
  return [ok, `${what}: ${observed} vs expected ${(n * p).toFixed(0)} ± ${(5 * sd).toFixed(0)}`];
}

t.test('parseImpairSpec good specs → values', async (t) => {
  const table: [string, Partial<ImpairSpec>][] = [
    ['', {}],
    ['  ', {}],
    [
      'loss=0.02,dup=0.01,reorder=0.02,delay=1ms,jitter=0.5ms,corrupt=0.001,seed=7,dir=both',
      { loss: 0.02, dup: 0.01, reorder: 0.02, delayMs: 1, jitterMs: 0.5, corrupt: 0.001, seed: 7, dir: 'both' },
    ],
    ['loss=1', { loss: 1 }],
    ['loss=0', { loss: 0 }],
    ['loss=.5', { loss: 0.5 }],
    ['loss=1e-3', { loss: 0.001 }],
    [' loss = 0.1 , dir = in ', { loss: 0.1, dir: 'in' }],
    ['dir=out', { dir: 'out' }],
    ['delay=5', { delayMs: 5 }],
    ['delay=250us', { delayMs: 0.25 }],
    ['delay=2s', { delayMs: 2000 }],
    ['delay=0', { delayMs: 0 }],
    ['jitter=1.5ms', { jitterMs: 1.5 }],
    ['seed=0', { seed: 0 }],
    ['seed=4294967295', { seed: 4294967295 }],
  ];
  for (const [text, want] of table) t.same(parseImpairSpec(text), { ...NO_IMPAIRMENT, ...want }, JSON.stringify(text));
});

t.test('parseImpairSpec bad specs → one-line error naming the problem', async (t) => {
  const table: [string, RegExp][] = [
    ['los=0.1', /unknown key "los"/],
    ['loss', /expected key=value/],
    ['loss=abc', /loss is not a number/],
    ['loss=', /loss is not a number/],
    ['loss=1.5', /loss must be a probability/],
    ['dup=-0.1', /dup must be a probability/],
    ['corrupt=NaN', /corrupt is not a number/],
    ['reorder=0x1', /reorder is not a number/],
    ['delay=5min', /delay is not a duration/],
    ['delay=-1ms', /delay must be a non-negative/],
    ['jitter=ms', /jitter is not a duration/],
    ['seed=1.5', /seed must be an integer/],
    ['seed=-1', /seed must be an integer/],
    ['seed=4294967296', /seed must be an integer/],
    ['dir=sideways', /dir must be both, in or out/],
    ['loss=0.1,loss=0.2', /loss given twice/],
    ['loss=0.1,,dup=0.1', /expected key=value/],
  ];
  for (const [text, re] of table) {
    const r = parseImpairSpec(text);
    t.type(r, 'string', text);
    t.match(r as string, re, text);
    t.notOk((r as string).includes('\n'), 'one line');
  }
});

t.test('constructor with a probability out of range → throws', async (t) => {
  t.throws(() => new ImpairEndpoint(new FakeLink(), new VirtualClock(), { loss: 2 }), RangeError);
});

t.test('no impairment → sent frames pass synchronously, same objects, in order', async (t) => {
  const inner = new FakeLink();
  const link = new ImpairEndpoint(inner, new VirtualClock());
  const f = seqFrame(1);
  t.equal(link.writeFrame(f), true);
  t.equal(inner.written[0], f);
  link.flush();
  t.equal(inner.flushes, 1);
  t.equal(link.mtu, 1500);
  t.equal(link.macAddress, inner.macAddress);
});

t.test('no impairment → received frames pass inside the inner delivery, batch end forwarded', async (t) => {
  const clock = new VirtualClock();
  const inner = new FakeLink();
  const link = new ImpairEndpoint(inner, clock);
  const sink = new Sink(clock);
  link.attach(sink);
  inner.receive([seqFrame(1), seqFrame(2)]);
  t.same(sink.frames.map(seqOf), [1, 2]);
  t.equal(sink.batchEnds, 1);
});

t.test('same seed → same outcome; other seed → different outcome', async (t) => {
  const spec = { loss: 0.05, dup: 0.05, reorder: 0.05, corrupt: 0.05, delayMs: 1, jitterMs: 0.5 };
  const digest = (out: Uint8Array[]): string => out.map((f) => Buffer.from(f).toString('base64')).join();
  const a = runOut({ ...spec, seed: 7 }, 3000);
  const b = runOut({ ...spec, seed: 7 }, 3000);
  const c = runOut({ ...spec, seed: 8 }, 3000);
  t.equal(digest(a.out), digest(b.out));
  t.same(a.link.counters, b.link.counters);
  t.not(digest(a.out), digest(c.out));
});

t.test('loss=0.1 over 20k frames → drop rate within bounds, survivors in order', async (t) => {
  const n = 20000;
  const { out, link } = runOut({ loss: 0.1, seed: 1 }, n);
  t.ok(...within(link.counters.dropped, n, 0.1, 'dropped'));
  t.equal(out.length, n - link.counters.dropped);
  const seqs = out.map(seqOf);
  t.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'increasing');
});

t.test('dup=0.05 over 20k frames → duplicate rate within bounds, copies adjacent and equal', async (t) => {
  const n = 20000;
  const { out, link } = runOut({ dup: 0.05, seed: 2 }, n);
  t.ok(...within(link.counters.duplicated, n, 0.05, 'duplicated'));
  t.equal(out.length, n + link.counters.duplicated);
  let pairs = 0;
  for (let i = 1; i < out.length; i++) {
    if (seqOf(out[i]!) === seqOf(out[i - 1]!)) {
      pairs++;
      t.not(out[i], out[i - 1], 'a duplicate is a separate buffer');
    }
  }
  t.equal(pairs, link.counters.duplicated);
});

t.test('corrupt=0.02 over 20k frames → exactly one bit flipped in each corrupted frame', async (t) => {
  const n = 20000;
  const { out, link } = runOut({ corrupt: 0.02, seed: 3 }, n);
  t.equal(out.length, n);
  t.ok(...within(link.counters.corrupted, n, 0.02, 'corrupted'));
  let flipped = 0;
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const want = seqFrame(i);
    let bits = 0;
    for (let j = 0; j < 64; j++) {
      let x = want[j]! ^ out[i]![j]!;
      for (; x; x &= x - 1) bits++;
    }
    if (bits === 1) flipped++;
    else if (bits !== 0) bad++;
  }
  t.equal(bad, 0, 'never more than one bit');
  t.equal(flipped, link.counters.corrupted);
});

t.test('reorder=0.05 over 20k frames → adjacent swaps only, counted, rate within bounds', async (t) => {
  const n = 20000;
  const p = 0.05;
  const { out, link } = runOut({ reorder: p, seed: 4 }, n);
  t.equal(out.length, n);
  const seqs = out.map(seqOf);
  let swaps = 0;
  let farSwaps = 0;
  for (let i = 1; i < n; i++) {
    if (seqs[i]! < seqs[i - 1]!) {
      swaps++;
      if (seqs[i]! + 1 !== seqs[i - 1]!) farSwaps++;
    }
  }
  t.equal(farSwaps, 0, 'a held frame goes right after its successor');
  t.same([...seqs].sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i), 'nothing lost or added');
  t.equal(swaps, link.counters.reordered);
  // The frame after a held one cannot itself be held, so a fraction p/(1+p) of frames is held.
  t.ok(...within(swaps, n, p / (1 + p), 'reordered'));
});

t.test('reorder=0 with delay and jitter → order preserved, delays within bounds', async (t) => {
  const clock = new VirtualClock();
  const inner = new FakeLink();
  const link = new ImpairEndpoint(inner, clock, { delayMs: 2, jitterMs: 1, seed: 5 });
  const sent: number[] = [];
  const arrived: number[] = [];
  inner.writeFrame = (f) => {
    arrived[seqOf(f)] = clock.now();
    inner.written.push(f);
    return true;
  };
  for (let i = 0; i < 2000; i++) {
    sent.push(clock.now());
    link.writeFrame(seqFrame(i));
    clock.advance(0.25);
  }
  clock.advance(100);
  const seqs = inner.written.map(seqOf);
  t.same(seqs, Array.from({ length: 2000 }, (_, i) => i));
  const delays = arrived.map((a, i) => a - sent[i]!);
  t.ok(Math.min(...delays) >= 1 - 1e-9, `min delay ${Math.min(...delays)}`);
  // FIFO may hold a frame behind a slower predecessor, but never past the largest delay.
  t.ok(Math.max(...delays) <= 3 + 1e-9, `max delay ${Math.max(...delays)}`);
  const mean = delays.reduce((s, d) => s + d, 0) / delays.length;
  t.ok(mean > 1.9 && mean < 2.4, `mean delay ${mean}`);
  t.equal(link.counters.delayed, 2000);
  t.ok(inner.flushes > 0, 'timer-released frames are flushed');
});

t.test('delay=3ms on receive → delivered 3 ms later as a batch, from copies', async (t) => {
  const clock = new VirtualClock();
  const inner = new FakeLink();
  const link = new ImpairEndpoint(inner, clock, { delayMs: 3, dir: 'in' });
  const sink = new Sink(clock);
  link.attach(sink);
  inner.receive([seqFrame(1), seqFrame(2)]);
  t.same(sink.frames, []);
  t.equal(sink.batchEnds, 1, 'the inner batch end still passes through');
  clock.advance(2.9);
  t.same(sink.frames, []);
  clock.advance(0.1);
  t.same(sink.frames, [seqFrame(1), seqFrame(2)], 'contents survive the inner buffer being reused');
  t.same(sink.times, [3, 3]);
  t.equal(sink.batchEnds, 2);
  link.writeFrame(seqFrame(3));
  t.equal(inner.written.length, 1, 'dir=in leaves sends alone');
});

t.test('dir=out → received frames untouched even with loss=1', async (t) => {
  const clock = new VirtualClock();
  const inner = new FakeLink();
  const link = new ImpairEndpoint(inner, clock, { loss: 1, dir: 'out' });
  const sink = new Sink(clock);
  link.attach(sink);
  inner.receive([seqFrame(1)]);
  t.equal(sink.frames.length, 1);
  link.writeFrame(seqFrame(2));
  t.equal(inner.written.length, 0);
  t.equal(link.counters.dropped, 1);
});

t.test('reorder=1 → each frame held until the next; a lone held frame leaves after the hold time', async (t) => {
  const clock = new VirtualClock();
  const inner = new FakeLink();
  const link = new ImpairEndpoint(inner, clock, { reorder: 1 }, { reorderHoldMs: 2 });
  link.writeFrame(seqFrame(1));
  t.same(inner.written.map(seqOf), []);
  link.writeFrame(seqFrame(2));
  t.same(inner.written.map(seqOf), [2, 1]);
  link.writeFrame(seqFrame(3));
  clock.advance(1.9);
  t.same(inner.written.map(seqOf), [2, 1]);
  clock.advance(0.1);
  t.same(inner.written.map(seqOf), [2, 1, 3]);
  t.equal(link.counters.reordered, 1, 'a frame that left alone was not overtaken');
});

t.test('received frame held for reorder → a copy is kept', async (t) => {
  const clock = new VirtualClock();
  const inner = new FakeLink();
  const link = new ImpairEndpoint(inner, clock, { reorder: 1, dir: 'in' });
  const sink = new Sink(clock);
  link.attach(sink);
  inner.receive([seqFrame(1)]);
  inner.receive([seqFrame(2)]);
  t.same(sink.frames, [seqFrame(2), seqFrame(1)]);
});

t.test('close → held and delayed frames discarded and counted, inner closed', async (t) => {
  const clock = new VirtualClock();
  const inner = new FakeLink();
  const link = new ImpairEndpoint(inner, clock, { delayMs: 5 });
  link.writeFrame(seqFrame(1));
  link.writeFrame(seqFrame(2));
  link.close();
  clock.advance(10);
  t.equal(inner.written.length, 0);
  t.equal(link.counters.dropped, 2);
  t.ok(inner.closed);
  t.equal(link.writeFrame(seqFrame(3)), false);
});

t.test('impair around a channel pair → loss both ways, deliveries still batched on the clock', async (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock });
  const link = new ImpairEndpoint(a, clock, { loss: 0.5, seed: 11 });
  const sinkA = new Sink(clock);
  const sinkB = new Sink(clock);
  link.attach(sinkA);
  b.attach(sinkB);
  for (let i = 0; i < 1000; i++) {
    link.writeFrame(seqFrame(i));
    b.writeFrame(seqFrame(i));
  }
  clock.runDue();
  const total = sinkA.frames.length + sinkB.frames.length;
  t.equal(total + link.counters.dropped, 2000);
  t.ok(...within(link.counters.dropped, 2000, 0.5, 'dropped'));
  t.ok(sinkA.frames.length > 350 && sinkA.frames.length < 650, `received ${sinkA.frames.length}`);
  t.equal(sinkA.batchEnds, 1);
});
