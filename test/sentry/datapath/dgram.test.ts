// UDP data path: the source FIFO on its own, then a DgramPump over a real seqpacket pair against netstack B.
import { once } from 'node:events';
import t, { type Test } from 'tap';
import * as ux from '../../../lib/unix.ts';
import { bindDgram } from '../../../netstack/adapter/dgram.ts';
import { parseAddress } from '../../../netstack/addr.ts';
import { DgramPump, SourceFifo, datagramHash } from '../../../sentry/datapath/dgram.ts';
import { LINUX as L, encodeSockaddr } from '../../../sentry/socket/abi.ts';
import { SocketFile } from '../../../sentry/socket/file.ts';
import { EventErr, EventIn } from '../../../netstack/waiter.ts';
import { B4, twoNetstacks } from '../../netstack/adapter/helpers.ts';

const from = (port: number) => ({ address: parseAddress('198.18.0.9')!, port });
const dg = (...b: number[]) => new Uint8Array(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A UDP socket of netstack B bound to `port`, closed at the test's end. */
async function peerOn(t: Test, env: ReturnType<typeof twoNetstacks>, port: number) {
  const peer = bindDgram(env.b).createSocket('udp4');
  peer.bind(port);
  await once(peer, 'listening');
  t.teardown(() => peer.close());
  return peer;
}

/** A SocketFile of netstack A's UDP bound to the wildcard address and `port`. */
function boundFile(t: Test, env: ReturnType<typeof twoNetstacks>, port: number): SocketFile {
  const file = SocketFile.open(env.a, env.clock, L.AF_INET, L.SOCK_DGRAM, 0) as SocketFile;
  t.equal(file.bind(encodeSockaddr({ family: L.AF_INET, address: new Uint8Array(4), port })), 0);
  return file;
}

/** A seqpacket pair with a DgramPump on our end for `file`; the program's end and the pump closed at the test's end. */
function pumped(t: Test, file: SocketFile): { prog: number; pump: DgramPump } {
  const [prog, ours] = ux.socketPair('seqpacket');
  t.teardown(() => ux.close(prog));
  const pump = new DgramPump({ fd: ours, file });
  t.teardown(() => pump.close());
  return { prog, pump };
}

/**
 * Netstacks A and B, a peer socket on B at `port`, and A's socket bound to `port + 1` with a pump to the program's
 * end: the set-up of the pump tests that send from the peer to the program. Everything closed at the test's end.
 */
async function pumpFromPeer(t: Test, port: number) {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const peer = await peerOn(t, env, port);
  const file = boundFile(t, env, port + 1);
  return { env, peer, file, ...pumped(t, file) };
}

t.test('FIFO: in order; a datagram read natively in between is skipped on the next trapped read', async (t) => {
  const f = new SourceFifo();
  const a = dg(1, 1);
  const b = dg(2, 2, 2);
  const c = dg(3);
  for (const [d, p] of [[a, 1], [b, 2], [c, 3]] as const) f.push({ len: d.length, hash: datagramHash(d), from: from(p) });
  t.equal(f.match(a.length, a, false)?.from.port, 1, 'peek leaves the head');
  t.equal(f.match(a.length, a, true)?.from.port, 1);
  // The program read b with read(): the next trapped read sees c.
  t.equal(f.match(c.length, c, true)?.from.port, 3);
  t.equal(f.skipped, 1, 'b skipped');
  t.equal(f.length, 0);
  t.equal(f.match(1, dg(7), true), undefined, 'an unknown datagram has no source');
});

t.test('FIFO: same length, different bytes are told apart; empty datagrams match', async (t) => {
  const f = new SourceFifo();
  f.push({ len: 2, hash: datagramHash(dg(5, 5)), from: from(10) });
  f.push({ len: 0, hash: datagramHash(dg()), from: from(11) });
  f.push({ len: 2, hash: datagramHash(dg(6, 6)), from: from(12) });
  t.equal(f.match(2, dg(6, 6), true)?.from.port, 12, 'skips (5,5) and the empty one');
  t.equal(f.skipped, 2);
  const g = new SourceFifo();
  g.push({ len: 0, hash: datagramHash(dg()), from: from(13) });
  t.equal(g.match(0, dg(), true)?.from.port, 13);
});

t.test('DgramPump: datagrams down with sources through the trapped path, 0-byte datagrams, native send up, close releases', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const peer = await peerOn(t, env, 9100);
  const atPeer: Buffer[] = [];
  peer.on('message', (m: Buffer) => atPeer.push(m));
  const file = boundFile(t, env, 9200);
  const [prog, ours] = ux.socketPair('seqpacket');
  let closed = false;
  const pump = new DgramPump({ fd: ours, file, onClose: () => (closed = true) });
  for (const m of ['first', '', 'third']) peer.send(Buffer.from(m), 9200, '198.18.0.1');
  for (let i = 0; i < 2000 && pump.stats.datagramsDown < 3; i++) await sleep(5);
  t.equal(pump.stats.datagramsDown, 3);
  // The program reads the first natively (no address), then the rest through the trapped path.
  const buf = new Uint8Array(64);
  t.equal(ux.recv(prog, buf), 5);
  const dup = ux.dup(prog);
  const e = pump.receive(dup, 0);
  t.ok(typeof e !== 'number' && e.data.length === 0, 'the empty datagram');
  t.equal(typeof e !== 'number' && e.from?.port, 9100, 'its source, after skipping the natively read one');
  const third = pump.receive(dup, 0);
  t.equal(typeof third !== 'number' && Buffer.from(third.data).toString(), 'third');
  t.equal(pump.receive(dup, 0), -ux.U.EAGAIN);
  ux.close(dup);
  // A connected socket's native send goes up.
  t.equal(file.connect(encodeSockaddr({ family: L.AF_INET, address: parseAddress(B4)!, port: 9100 }), true), 0);
  t.equal(ux.send(prog, new TextEncoder().encode('up')), 2);
  t.equal(ux.send(prog, new Uint8Array(0)), 0);
  for (let i = 0; i < 2000 && atPeer.length < 2; i++) await sleep(5);
  t.same(atPeer.map((b) => b.toString()), ['up', '']);
  ux.close(prog);
  for (let i = 0; i < 2000 && !closed; i++) await sleep(5);
  t.ok(closed, 'the program closing its end releases the socket');
  t.ok(pump.done);
});

t.test("DgramPump: a pending error wakes the program's poll with a 0-byte marker in its empty queue; dropMarker takes it out", async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const file = SocketFile.open(env.a, env.clock, L.AF_INET, L.SOCK_DGRAM, 0) as SocketFile;
  const { prog, pump } = pumped(t, file);
  // Nobody listens on B's port 9301: B answers the program's datagram with a port unreachable.
  t.equal(file.connect(encodeSockaddr({ family: L.AF_INET, address: parseAddress(B4)!, port: 9301 }), true), 0);
  t.equal(ux.pollNow(prog, ux.U.POLLIN), 0, 'nothing to read before');
  t.equal(ux.send(prog, new TextEncoder().encode('to nobody')), 9);
  for (let i = 0; i < 2000 && !(ux.pollNow(prog, ux.U.POLLIN) & ux.U.POLLIN); i++) await sleep(5);
  t.ok(ux.pollNow(prog, ux.U.POLLIN) & ux.U.POLLIN, "the program's poll wakes");
  t.equal(ux.recv(prog, new Uint8Array(8), ux.U.MSG_PEEK | ux.U.MSG_DONTWAIT), 0, 'for a 0-byte datagram');
  const dup = ux.dup(prog);
  t.teardown(() => ux.close(dup));
  t.equal(file.ep.takeError()?.errno, 111 /* ECONNREFUSED */, 'the error is pending on the Endpoint');
  pump.dropMarker(dup);
  t.equal(ux.pollNow(prog, ux.U.POLLIN), 0, 'the marker is gone with it');
  pump.dropMarker(dup);
  t.equal(ux.recv(prog, new Uint8Array(8), ux.U.MSG_DONTWAIT), -ux.U.EAGAIN, 'a second drop takes nothing');

  // A queue that holds a datagram already wakes the poll: no marker goes behind it.
  const peer = bindDgram(env.b).createSocket('udp4');
  peer.on('message', (_m: Buffer, rinfo: { port: number; address: string }) => peer.send(Buffer.from('data'), rinfo.port, rinfo.address));
  peer.bind(9302);
  await once(peer, 'listening');
  t.teardown(() => peer.close());
  t.equal(file.connect(encodeSockaddr({ family: L.AF_INET, address: parseAddress(B4)!, port: 9302 }), true), 0);
  t.equal(ux.send(prog, new TextEncoder().encode('hi')), 2);
  for (let i = 0; i < 2000 && pump.stats.datagramsDown < 1; i++) await sleep(5);
  t.equal(pump.stats.datagramsDown, 1, "the peer's answer waits unread in the program's queue");
  t.equal(file.connect(encodeSockaddr({ family: L.AF_INET, address: parseAddress(B4)!, port: 9301 }), true), 0);
  t.equal(ux.send(prog, new TextEncoder().encode('to nobody')), 9);
  for (let i = 0; i < 2000 && !(file.ep.readiness(EventErr) & EventErr); i++) await sleep(5);
  t.ok(file.ep.readiness(EventErr) & EventErr, 'the error is pending');
  const buf = new Uint8Array(8);
  t.equal(ux.recv(prog, buf, ux.U.MSG_DONTWAIT), 4, 'the answer');
  t.equal(ux.recv(prog, buf, ux.U.MSG_DONTWAIT), -ux.U.EAGAIN, 'and no marker behind it');
  t.end();
});

t.test('DgramPump: a parked receive is handed the next datagram while the program\'s queue is empty; behind a queued one, or for MSG_PEEK, the datagram is queued and the wait told to look again', async (t) => {
  const { peer, prog, pump } = await pumpFromPeer(t, 9400);
  const dup = ux.dup(prog);
  t.teardown(() => ux.close(dup));
  const send = (m: string) => peer.send(Buffer.from(m), 9401, '198.18.0.1');
  const text = (r: unknown) => (typeof r === 'object' && r !== null && 'data' in r ? Buffer.from((r as { data: Uint8Array }).data).toString() : r);
  const buf = new Uint8Array(64);

  // Empty queue, one receive parked: the datagram goes to it, never into the program's queue.
  t.equal(pump.receive(dup, 0), -ux.U.EAGAIN, 'nothing yet');
  const direct = pump.nextFor(new AbortController().signal, false);
  send('direct');
  const got = await direct;
  t.equal(text(got), 'direct', 'handed over');
  t.equal(typeof got === 'object' && got.from?.port, 9400, 'with its source');
  t.equal(pump.stats.datagramsDown, 1);
  t.equal(ux.recv(prog, buf, ux.U.MSG_DONTWAIT), -ux.U.EAGAIN, "the program's queue stayed empty");

  // No receive parked: the datagram is queued for the program. One parked after it is not handed the next one,
  // which must come after the queued one: it is told to look again and finds them in order.
  send('queued');
  for (let i = 0; i < 2000 && pump.stats.datagramsDown < 2; i++) await sleep(5);
  const behind = pump.nextFor(new AbortController().signal, false);
  send('behind');
  t.equal(await behind, 'moved');
  t.equal(text(pump.receive(dup, 0)), 'queued');
  t.equal(text(pump.receive(dup, 0)), 'behind');
  t.equal(pump.receive(dup, 0), -ux.U.EAGAIN);

  // MSG_PEEK must leave the datagram queued: never handed over.
  const peek = pump.nextFor(new AbortController().signal, true);
  send('peeked');
  t.equal(await peek, 'moved');
  const p = pump.receive(dup, ux.U.MSG_PEEK);
  t.equal(text(p), 'peeked', 'peeked');
  t.equal(text(pump.receive(dup, 0)), 'peeked', 'still there for the receive after it');

  // A wait that was aborted takes nothing: the next datagram is queued for the program.
  const ctl = new AbortController();
  const aborted = pump.nextFor(ctl.signal, false);
  ctl.abort();
  t.equal(await aborted, 'aborted');
  const before = pump.stats.datagramsDown;
  send('after abort');
  for (let i = 0; i < 2000 && pump.stats.datagramsDown === before; i++) await sleep(5);
  t.equal(ux.recv(prog, buf, ux.U.MSG_DONTWAIT), 11, "queued for the program's native read");

  // A native read took it (the pump cannot know): the next receive asks the kernel and finds the queue empty.
  t.equal(pump.receive(dup, 0), -ux.U.EAGAIN);
  const again = pump.nextFor(new AbortController().signal, false);
  send('direct again');
  t.equal(text(await again), 'direct again', 'handed over once the queue is known empty again');
  t.end();
});

t.test('DgramPump: what the program sent goes to the links UP_BURST (16) datagrams at a time, all of it in order', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const peer = await peerOn(t, env, 9400);
  const atPeer: string[] = [];
  peer.on('message', (m: Buffer) => atPeer.push(m.toString()));
  const file = boundFile(t, env, 9401);
  t.equal(file.connect(encodeSockaddr({ family: L.AF_INET, address: parseAddress(B4)!, port: 9400 }), true), 0);
  const [prog, ours] = ux.socketPair('seqpacket');
  t.teardown(() => ux.close(prog));
  // Queued before the pump exists, so that its first read takes all 40 in one turn.
  const sent = Array.from({ length: 40 }, (_, i) => `d${i}`);
  for (const m of sent) t.equal(ux.send(prog, new TextEncoder().encode(m)), m.length);
  let flushes = 0;
  const pump = new DgramPump({ fd: ours, file, flushLinks: () => (flushes++, env.a.stack.flushLinks()) });
  t.teardown(() => pump.close());
  for (let i = 0; i < 2000 && atPeer.length < sent.length; i++) await sleep(5);
  t.same(atPeer, sent, 'every datagram, in order');
  t.equal(pump.stats.datagramsUp, 40);
  t.equal(flushes, 2, 'the links told to send after the 16th and the 32nd');
  t.end();
});

t.test('DgramPump: a burst far larger than a default socket pair holds waits in the program\'s end while the program is away, none dropped', async (t) => {
  const { env, peer, prog, pump } = await pumpFromPeer(t, 9500);
  // 600 datagrams of 1,400 bytes (840 KB): the pair's default buffer holds about 90 of them, the Endpoint's
  // receive buffer (212,992 bytes, as Linux's default) about 150 more.
  const total = 600;
  for (let i = 0; i < total; i++) {
    const payload = Buffer.alloc(1400, 7);
    payload.writeUInt32BE(i, 0);
    peer.send(payload, 9501, '198.18.0.1');
    if (i % 50 === 49) await sleep(1);
  }
  for (let i = 0; i < 400 && pump.stats.datagramsDown + (env.a.counters()['udp.receiveBufferErrors'] ?? 0) < total; i++) await sleep(5);
  const buf = new Uint8Array(2048);
  const seen: number[] = [];
  for (;;) {
    const n = ux.recv(prog, buf, ux.U.MSG_DONTWAIT);
    if (n < 0) break;
    seen.push(new DataView(buf.buffer).getUint32(0));
  }
  t.equal(env.a.counters()['udp.receiveBufferErrors'] ?? 0, 0, 'none dropped at the Endpoint');
  t.equal(seen.length, total, 'every datagram reached the program');
  t.same(seen, Array.from({ length: total }, (_, i) => i), 'in order');
  t.end();
});

t.test('DgramPump: a datagram is passed to the program once the stack\'s work at hand is over (a microtask), not while the stack still delivers', async (t) => {
  const { peer, file, prog, pump } = await pumpFromPeer(t, 9600);
  // Subscribed after the pump: at each arrival, what the pump had passed on by then.
  const atArrival: number[] = [];
  let arrivals = 0;
  const off = file.ep.waiter.subscribe(EventIn, () => {
    arrivals++;
    atArrival.push(arrivals - pump.stats.datagramsDown);
  });
  t.teardown(off);
  for (let i = 0; i < 20; i++) peer.send(Buffer.from([i]), 9601, '198.18.0.1');
  for (let i = 0; i < 200 && pump.stats.datagramsDown < 20; i++) await sleep(5);
  t.equal(pump.stats.datagramsDown, 20, 'all passed on');
  t.ok(arrivals >= 20, `${arrivals} arrivals seen`);
  t.ok(atArrival.every((behind) => behind >= 1), 'none passed on while its arrival was still being handled');
  const buf = new Uint8Array(16);
  const seen: number[] = [];
  while (ux.recv(prog, buf, ux.U.MSG_DONTWAIT) === 1) seen.push(buf[0]!);
  t.same(seen, Array.from({ length: 20 }, (_, i) => i), 'in order');
});

t.test('DgramPump: with the program\'s end full, the datagrams read ahead are held and follow in order once it reads; none lost between the pump and the program', async (t) => {
  const { peer, prog, pump } = await pumpFromPeer(t, 9700);
  // 3,000 datagrams of 1,400 bytes (4.2 MB) while the program reads nothing: more than the pair (2 MiB) and the
  // Endpoint's buffer hold, so the pair fills with a batch part sent and the rest held.
  for (let i = 0; i < 3000; i++) {
    const payload = Buffer.alloc(1400, 1);
    payload.writeUInt32BE(i, 0);
    peer.send(payload, 9701, '198.18.0.1');
    if (i % 100 === 99) await sleep(1);
  }
  await sleep(300);
  const buf = new Uint8Array(2048);
  const seen: number[] = [];
  const drain = () => {
    for (;;) {
      const n = ux.recv(prog, buf, ux.U.MSG_DONTWAIT);
      if (n < 0) break;
      seen.push(new DataView(buf.buffer).getUint32(0));
    }
  };
  drain();
  const first = seen.length;
  for (let i = 0; i < 100; i++) {
    await sleep(10);
    drain();
  }
  t.ok(first > 0 && seen.length > first, `${first} read while full, ${seen.length - first} more after`);
  t.ok(seen.every((v, i) => i === 0 || v > seen[i - 1]!), 'in order, none twice');
  t.equal(seen.length, pump.stats.datagramsDown, 'every datagram the pump passed on reached the program');
  t.equal(pump.stats.dropped, 0);
});
