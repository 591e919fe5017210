// The iperf3 server protocol, driven in memory over fake endpoints with the bytes iperf3's client sends, and the
// exact bytes it must answer: state bytes, length-prefixed JSON, stream ids 1, 3, 4, whole blocks in reverse tests.
import t, { type Test } from 'tap';
import {
  COOKIE_SIZE,
  State,
  frameJson,
  iperf3Service,
  parseParams,
  resultsJson,
  streamId,
} from '../../../cli/services/iperf3.ts';
import { fakeSockets, settle, type FakeEndpoint } from '../../bench/fake-endpoint.ts';

const enc = new TextEncoder();
const cookie = (c: string) => {
  const b = new Uint8Array(COOKIE_SIZE);
  b.set(enc.encode(c.padEnd(36, 'x').slice(0, 36)));
  return b; // 36 characters and the NUL, as the client sends it
};
const COOKIE = cookie('abcdefghijklmnopqrstuvwxyz0123456789');
const bytes = (...v: number[]) => Uint8Array.from(v.map((x) => x & 0xff));
const CLIENT_RESULTS = frameJson('{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":1,"streams":[]}');

function setup() {
  let now = 1000;
  const s = fakeSockets();
  const svc = iperf3Service(s.factory, 5201, { now: () => now });
  if (!(svc && 'stats' in svc)) throw new Error('service did not start');
  return { s, svc, advance: (ms: number) => (now += ms) };
}

/** Connects a control connection and runs the exchange up to CREATE_STREAMS. */
async function control(tt: Test, s: ReturnType<typeof fakeSockets>, params: object): Promise<FakeEndpoint> {
  const c = s.connect();
  c.feed(COOKIE);
  await settle();
  tt.same(c.drain(), bytes(State.PARAM_EXCHANGE), 'cookie → PARAM_EXCHANGE');
  c.feed(frameJson(JSON.stringify(params)));
  await settle();
  return c;
}

t.test('stream ids follow iperf3 numbering (1, then 3, 4, …)', async (t) => {
  t.same([0, 1, 2, 3, 9].map(streamId), [1, 3, 4, 5, 11]);
});

t.test('parameters', async (t) => {
  const tcp = { parallel: 1, reverse: false, len: 131072, udp: false, bidirectional: false, bandwidth: 0, pacingTimer: 1000, counters64: false };
  const cases: [string, unknown][] = [
    ['{"tcp":true,"parallel":4,"reverse":true,"len":131072}', { ...tcp, parallel: 4, reverse: true }],
    ['{"tcp":true,"time":10}', tcp],
    ['{"tcp":true,"bidirectional":true}', { ...tcp, bidirectional: true }],
    [
      '{"udp":true,"parallel":2,"reverse":true,"len":1448,"bandwidth":1048576,"pacing_timer":1000,"udp_counters_64bit":1}',
      { ...tcp, udp: true, parallel: 2, reverse: true, len: 1448, bandwidth: 1048576, counters64: true },
    ],
    ['{"udp":true}', { ...tcp, udp: true, len: 1460 }],
    ['{"udp":true,"len":65508}', 'bad len 65508'],
    ['{"sctp":true}', 'SCTP tests are not served'],
    ['{"tcp":true,"parallel":0}', 'bad parallel 0'],
    ['{"tcp":true,"len":-5}', 'bad len -5'],
    ['{"udp":true,"bandwidth":-1}', 'bad bandwidth -1'],
    ['not json', 'parameters are not JSON'],
  ];
  for (const [json, want] of cases) t.strictSame(parseParams(json), want, json);
});

t.test('framing and results JSON are byte-exact', async (t) => {
  t.same(frameJson('{}'), bytes(0, 0, 0, 2, 0x7b, 0x7d));
  t.equal(
    resultsJson(false, [{ id: 1, bytes: 1500, seconds: 1.5 }]),
    '{"cpu_util_total":0,"cpu_util_user":0,"cpu_util_system":0,"sender_has_retransmits":-1,"streams":[' +
      '{"id":1,"bytes":1500,"retransmits":-1,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":1.5}]}',
  );
  t.equal(
    resultsJson(true, [{ id: 1, bytes: 2400, seconds: 1, jitter: 0.25, errors: 3, packets: 5 }]),
    '{"cpu_util_total":0,"cpu_util_user":0,"cpu_util_system":0,"sender_has_retransmits":0,"streams":[' +
      '{"id":1,"bytes":2400,"retransmits":-1,"jitter":0.25,"errors":3,"packets":5,"start_time":0,"end_time":1}]}',
  );
});

t.test('forward test, 2 streams: cookie, params, streams, TEST_END, results, IPERF_DONE', async (t) => {
  const { s, svc, advance } = setup();
  const c = await control(t, s, { tcp: true, omit: 0, time: 1, parallel: 2, reverse: false, len: 131072, client_version: '3.12' });
  t.same(c.drain(), bytes(State.CREATE_STREAMS), 'params → CREATE_STREAMS');

  const d1 = s.connect();
  const first = new Uint8Array(COOKIE_SIZE + 1000);
  first.set(COOKIE);
  d1.feed(first); // the cookie and the first data in one read
  await settle();
  t.same(c.drain(), bytes(), 'nothing before the last stream');
  const d2 = s.connect();
  d2.feed(COOKIE);
  await settle();
  t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING), 'last stream → TEST_START, TEST_RUNNING');

  d1.feed(new Uint8Array(500));
  d2.feed(new Uint8Array(300));
  await settle();
  advance(1500);
  c.feed(bytes(State.TEST_END));
  await settle();
  t.same(c.drain(), bytes(State.EXCHANGE_RESULTS), 'TEST_END → EXCHANGE_RESULTS');
  t.ok(d1.closed && d2.closed && !c.closed, 'TEST_END closes the data streams, as iperf3 does');

  c.feed(CLIENT_RESULTS.subarray(0, 3)); // a message split across reads
  await settle();
  t.same(c.drain(), bytes(), 'waits for the whole results message');
  c.feed(CLIENT_RESULTS.subarray(3));
  await settle();
  const want = resultsJson(false, [
    { id: 1, bytes: 1500, seconds: 1.5 },
    { id: 3, bytes: 300, seconds: 1.5 },
  ]);
  const got = c.drain();
  t.same(got, new Uint8Array([...frameJson(want), State.DISPLAY_RESULTS]), 'our results, then DISPLAY_RESULTS');
  t.same(JSON.parse(new TextDecoder().decode(got.subarray(4, got.length - 1))).streams.map((x: { id: number }) => x.id), [1, 3]);

  c.feed(bytes(State.IPERF_DONE));
  await settle();
  t.ok(c.closed, 'IPERF_DONE closes the control connection');
  t.match(svc.stats, { tests: 1, completed: 1, refused: 0, bytesIn: 1800 });

  // The server is free again: a new test starts.
  const c2 = await control(t, s, { tcp: true, parallel: 1 });
  t.same(c2.drain(), bytes(State.CREATE_STREAMS));
  svc.close();
});

t.test('refusals', async (t) => {
  const { s, svc } = setup();
  const u = await control(t, s, { sctp: true, parallel: 1 });
  t.same(u.drain(), bytes(State.SERVER_ERROR, 0, 0, 0, 13, 0, 0, 0, 0), 'SCTP test → SERVER_ERROR (0xfe), i_errno 13, errno 0');
  t.ok(u.closed);

  const c = await control(t, s, { tcp: true, parallel: 1 });
  t.same(c.drain(), bytes(State.CREATE_STREAMS));
  const stranger = s.connect();
  stranger.feed(cookie('someoneelse'));
  await settle();
  t.same(stranger.drain(), bytes(State.ACCESS_DENIED), 'a second client while busy → ACCESS_DENIED (0xff)');
  t.ok(stranger.closed);

  const d = s.connect();
  d.feed(COOKIE);
  await settle();
  t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING));
  const extra = s.connect();
  extra.feed(COOKIE);
  await settle();
  t.same(extra.drain(), bytes(State.ACCESS_DENIED), 'a stream beyond -P is refused');

  c.feed(bytes(State.CLIENT_TERMINATE));
  await settle();
  t.ok(c.closed && d.closed, 'CLIENT_TERMINATE ends the test');
  t.equal(svc.stats.refused, 3);
  svc.close();
});

t.test('results phase CLIENT_TERMINATE → test ends without results', async (t) => {
  const { s, svc } = setup();
  const c = await control(t, s, { tcp: true, parallel: 1 });
  const d = s.connect();
  d.feed(COOKIE);
  await settle();
  c.feed(bytes(State.TEST_END));
  await settle();
  c.drain();
  c.feed(bytes(State.CLIENT_TERMINATE));
  await settle();
  t.same(c.drain(), bytes(), 'no results sent');
  t.ok(c.closed);
  t.equal(svc.stats.completed, 0);
  svc.close();
});

t.test('control connection closing mid-test ends the test', async (t) => {
  const { s, svc } = setup();
  const c = await control(t, s, { tcp: true, parallel: 1 });
  const d = s.connect();
  d.feed(COOKIE);
  await settle();
  c.end();
  await settle();
  t.ok(c.closed && d.closed);
  svc.close();
});

/** The service's IPv4 UDP socket (the first datagram socket it opened). */
const udpSocket = (s: ReturnType<typeof fakeSockets>) => s.created.find((e) => e.type === 'dgram')!;
const peer = (port: number) => ({ address: Uint8Array.of(198, 18, 0, 1), port });
/** A data datagram of `len` bytes: send time sec.usec and 32-bit packet count. */
function datagram(count: number, sec: number, usec: number, len = 100): Uint8Array {
  const d = new Uint8Array(len);
  const v = new DataView(d.buffer);
  v.setUint32(0, sec);
  v.setUint32(4, usec);
  v.setUint32(8, count);
  return d;
}

t.test('UDP test: connect datagram → "6789", data counted with loss and jitter, results carry them', async (t) => {
  const { s, svc, advance } = setup();
  const c = await control(t, s, { udp: true, parallel: 1, len: 100, bandwidth: 1048576 });
  t.same(c.drain(), bytes(State.CREATE_STREAMS));
  const u = udpSocket(s);
  u.feed(bytes(0x39, 0x38, 0x37, 0x36), peer(40000));
  await settle();
  t.same(u.written.map((w) => [...w.data]), [[0x36, 0x37, 0x38, 0x39]], 'answered with UDP_CONNECT_REPLY as iperf3 writes it');
  t.same(u.written[0]!.to, peer(40000), 'to the connecting socket');
  t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING), 'the only stream → TEST_START, TEST_RUNNING');

  // Packets 1, 2, 4, 3 (late, filling the gap), 6: 5 stays lost. Send times 1 ms apart, arrivals as fed.
  for (const n of [1, 2, 4, 3, 6]) u.feed(datagram(n, 7, n * 1000), peer(40000));
  u.feed(datagram(1, 7, 0), peer(40001)); // a stranger: ignored
  await settle();
  advance(1000);
  c.feed(bytes(State.TEST_END));
  await settle();
  t.same(c.drain(), bytes(State.EXCHANGE_RESULTS));
  c.feed(CLIENT_RESULTS);
  await settle();
  const got = c.drain();
  const r = JSON.parse(new TextDecoder().decode(got.subarray(4, got.length - 1)));
  t.match(r, { sender_has_retransmits: -1, streams: [{ id: 1, bytes: 500, errors: 1, packets: 6, end_time: 1 }] });
  t.ok(r.streams[0].jitter >= 0 && r.streams[0].jitter < 1, `jitter ${r.streams[0].jitter} s`);
  t.match(svc.stats, { datagramsIn: 5, datagramsIgnored: 1, bytesIn: 500 });
  svc.close();
});

t.test('UDP -R: the service paces datagrams to -b, stamped and counted from 1, and stops at TEST_END', async (t) => {
  const { s, svc, advance } = setup();
  // 100-byte datagrams at 80 kbit/s: 100 per second, one every 10 ms of the service's clock.
  const c = await control(t, s, { udp: true, reverse: true, parallel: 1, len: 100, bandwidth: 80000, pacing_timer: 1000 });
  t.same(c.drain(), bytes(State.CREATE_STREAMS));
  const u = udpSocket(s);
  u.feed(bytes(0x39, 0x38, 0x37, 0x36), peer(40000));
  await settle();
  t.equal(u.written.length, 2, 'the reply, then the first datagram at once');
  advance(200);
  await new Promise((r) => setTimeout(r, 20)); // pacing ticks run on Node's timers
  c.feed(bytes(State.TEST_END));
  await settle();
  t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING, State.EXCHANGE_RESULTS));
  const sent = u.written.slice(1);
  t.equal(sent.length, 21, '200 ms at 100 per second, and the first one');
  t.same(sent.map((w) => new DataView(w.data.buffer, w.data.byteOffset).getUint32(8)), sent.map((_, i) => i + 1), 'counts 1, 2, 3, …');
  t.ok(sent.every((w) => w.data.length === 100 && w.to?.port === 40000), 'each datagram is -l bytes, to the stream');
  advance(100);
  await new Promise((r) => setTimeout(r, 20));
  t.equal(u.written.length, 22, 'nothing sent after TEST_END');
  t.equal(svc.stats.datagramsOut, 21);
  c.feed(CLIENT_RESULTS);
  await settle();
  const got = c.drain();
  t.match(JSON.parse(new TextDecoder().decode(got.subarray(4, got.length - 1))), {
    sender_has_retransmits: 0,
    streams: [{ id: 1, bytes: 2100, packets: 21, errors: 0, jitter: 0 }],
  });
  svc.close();
});

t.test('--bidir over TCP: the first -P streams are received on, the next -P sent on; ids 1, 3, 4, 5', async (t) => {
  const { s, svc } = setup();
  const c = await control(t, s, { tcp: true, parallel: 2, bidirectional: true, len: 1000 });
  t.same(c.drain(), bytes(State.CREATE_STREAMS));
  const ds = [s.connect(), s.connect(), s.connect(), s.connect()];
  for (const d of ds) {
    d.writeBudget = 1000;
    d.feed(COOKIE);
    await settle();
  }
  t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING), 'the fourth stream starts the test');
  t.same(ds.map((d) => d.drain().length), [0, 0, 1000, 1000], 'the service sends on streams 3 and 4 only');
  ds[0]!.feed(new Uint8Array(700));
  ds[1]!.feed(new Uint8Array(300));
  await settle();
  c.feed(bytes(State.TEST_END));
  await settle();
  c.drain();
  c.feed(CLIENT_RESULTS);
  await settle();
  const got = c.drain();
  t.match(JSON.parse(new TextDecoder().decode(got.subarray(4, got.length - 1))), {
    sender_has_retransmits: 0,
    streams: [{ id: 1, bytes: 700 }, { id: 3, bytes: 300 }, { id: 4, bytes: 1000 }, { id: 5, bytes: 1000 }],
  });
  svc.close();
});

/** Two shards' services joined by an in-memory bus (messages delivered on a later turn, as through the main thread). */
function twoShards() {
  let now = 1000;
  const listeners: ((from: number, msg: unknown) => void)[] = [];
  const peers = (self: number) => ({
    self,
    count: 2,
    send: (to: number | 'others', msg: unknown) => {
      const dest = to === 'others' ? 1 - self : to;
      const copy = structuredClone(msg);
      setImmediate(() => listeners[dest]?.(self, copy));
    },
    listen: (fn: (from: number, msg: unknown) => void) => void (listeners[self] = fn),
  });
  const shards = [0, 1].map((i) => {
    const s = fakeSockets();
    const svc = iperf3Service(s.factory, 5201, { now: () => now, peers: peers(i) });
    if (!(svc && 'stats' in svc)) throw new Error('service did not start');
    return { s, svc };
  });
  return { shards, advance: (ms: number) => (now += ms) };
}

t.test('two shards, streams on both: the other shard serves its stream for the test, results hold its bytes', async (t) => {
  const { shards: [a, b], advance } = twoShards();
  const c = await control(t, a!.s, { tcp: true, parallel: 2, len: 1000 });
  t.same(c.drain(), bytes(State.CREATE_STREAMS));
  const d1 = a!.s.connect();
  d1.feed(COOKIE);
  await settle();
  const d2 = b!.s.connect(); // the flow hash gave this stream to the other shard
  const first = new Uint8Array(COOKIE_SIZE + 700);
  first.set(COOKIE);
  d2.feed(first);
  await settle();
  t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING), 'the remote stream completes the test');
  d1.feed(new Uint8Array(400));
  d2.feed(new Uint8Array(300));
  await settle();
  advance(1000);
  c.feed(bytes(State.TEST_END));
  await settle();
  t.same(c.drain(), bytes(State.EXCHANGE_RESULTS));
  t.ok(d1.closed && d2.closed, 'TEST_END closes the streams on both shards');
  c.feed(CLIENT_RESULTS);
  await settle();
  const got = c.drain();
  const want = resultsJson(false, [
    { id: 1, bytes: 400, seconds: 1 },
    { id: 3, bytes: 1000, seconds: 1 },
  ]);
  t.same(got, new Uint8Array([...frameJson(want), State.DISPLAY_RESULTS]), 'the remote stream\'s bytes in the results');
  c.feed(bytes(State.IPERF_DONE));
  await settle();
  t.match(a!.svc.stats, { tests: 1, completed: 1, refused: 0, bytesIn: 400 });
  t.match(b!.svc.stats, { tests: 0, refused: 0, bytesIn: 1000 });
  a!.svc.close();
  b!.svc.close();
});

for (const shardCount of [1, 2]) {
  const where = shardCount === 1 ? 'one shard' : 'two shards, the stream on the other shard';
  t.test(`reverse (${where}): whole blocks only, also when TEST_END comes mid-block, and the results count them`, async (t) => {
    // With two shards the control connection is on the first and the flow hash gave the stream to the second.
    const { shards, advance } = shardCount === 1 ? (() => { const one = setup(); return { shards: [one], advance: one.advance }; })() : twoShards();
    const c = await control(t, shards[0]!.s, { tcp: true, parallel: 1, reverse: true, len: 1000 });
    t.same(c.drain(), bytes(State.CREATE_STREAMS));
    const d = shards[shardCount - 1]!.s.connect();
    d.writeBudget = 2500;
    d.feed(COOKIE);
    await settle();
    t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING));
    t.equal(d.drain().length, 2500, 'sends from TEST_START until the send buffer is full');
    advance(2000);
    c.feed(bytes(State.TEST_END));
    await settle();
    t.same(c.drain(), bytes(State.EXCHANGE_RESULTS));
    t.notOk(d.closed, 'a stream inside a block stays open');
    d.grant(100000);
    await settle();
    t.equal(d.drain().length, 500, 'after TEST_END only the rest of the cut block goes out');
    t.ok(d.closed, 'then the stream closes');
    c.feed(CLIENT_RESULTS);
    await settle();
    const got = new TextDecoder().decode(c.drain().subarray(4));
    t.match(JSON.parse(got.slice(0, -1)), { sender_has_retransmits: 0, streams: [{ id: 1, bytes: 3000, end_time: 2 }] }, 'the results hold every byte sent');
    for (const sh of shards) sh.svc.close();
  });
}

t.test('two shards: a cookie nobody knows starts a test where it arrived; a busy shard refuses a stranger', async (t) => {
  const { shards: [a, b] } = twoShards();
  const c = await control(t, b!.s, { tcp: true, parallel: 1 });
  t.same(c.drain(), bytes(State.CREATE_STREAMS), 'a new test on the shard the control connection reached');
  const c2 = a!.s.connect();
  c2.feed(cookie('a-second-client'));
  await settle();
  t.same(c2.drain(), bytes(State.PARAM_EXCHANGE), 'the other shard, not busy, starts its own test');
  const stranger = b!.s.connect();
  stranger.feed(cookie('a-third-client'));
  await settle();
  t.same(stranger.drain(), bytes(State.ACCESS_DENIED), 'a busy shard refuses');
  a!.svc.close();
  b!.svc.close();
});

t.test('two shards, UDP: a connect datagram on the other shard → answered there for the test, its loss in the results', async (t) => {
  const { shards: [a, b], advance } = twoShards();
  const c = await control(t, a!.s, { udp: true, parallel: 2, len: 100, bandwidth: 1048576 });
  t.same(c.drain(), bytes(State.CREATE_STREAMS));
  const ua = udpSocket(a!.s);
  const ub = udpSocket(b!.s);
  ua.feed(bytes(0x39, 0x38, 0x37, 0x36), peer(40000));
  ub.feed(bytes(0x39, 0x38, 0x37, 0x36), peer(40001)); // the hash gave this stream to the other shard
  await settle();
  t.same(ub.written.map((w) => [...w.data]), [[0x36, 0x37, 0x38, 0x39]], 'the other shard answers the connect datagram');
  t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING), 'both streams in → the test starts');
  for (const n of [1, 2, 3]) ua.feed(datagram(n, 7, n * 1000), peer(40000));
  for (const n of [1, 3]) ub.feed(datagram(n, 7, n * 1000), peer(40001)); // 2 lost
  await settle();
  advance(1000);
  c.feed(bytes(State.TEST_END));
  await settle();
  t.same(c.drain(), bytes(State.EXCHANGE_RESULTS));
  c.feed(CLIENT_RESULTS);
  await settle();
  const got = c.drain();
  const r = JSON.parse(new TextDecoder().decode(got.subarray(4, got.length - 1)));
  t.match(r, { streams: [{ id: 1, bytes: 300, errors: 0, packets: 3 }, { id: 3, bytes: 200, errors: 1, packets: 3 }] });
  t.match(b!.svc.stats, { datagramsIn: 2, bytesIn: 200, datagramsIgnored: 0 });
  a!.svc.close();
  b!.svc.close();
});

t.test('two shards, UDP -R: the other shard paces its stream from TEST_START and stops at TEST_END', async (t) => {
  const { shards: [a, b], advance } = twoShards();
  const c = await control(t, a!.s, { udp: true, reverse: true, parallel: 1, len: 100, bandwidth: 80000, pacing_timer: 1000 });
  t.same(c.drain(), bytes(State.CREATE_STREAMS));
  const ub = udpSocket(b!.s);
  ub.feed(bytes(0x39, 0x38, 0x37, 0x36), peer(40000));
  await settle();
  t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING));
  t.ok(ub.written.length >= 2, 'the reply, then the first datagram');
  advance(200);
  await new Promise((r) => setTimeout(r, 30));
  c.feed(bytes(State.TEST_END));
  await settle();
  const sent = ub.written.length - 1;
  t.ok(sent >= 20 && sent <= 22, `paced to -b: ${sent} datagrams in 200 ms at 100 per second`);
  advance(100);
  await new Promise((r) => setTimeout(r, 30));
  t.equal(ub.written.length - 1, sent, 'nothing after TEST_END');
  t.same(c.drain(), bytes(State.EXCHANGE_RESULTS));
  c.feed(CLIENT_RESULTS);
  await settle();
  const got = c.drain();
  t.match(JSON.parse(new TextDecoder().decode(got.subarray(4, got.length - 1))), { streams: [{ id: 1, bytes: sent * 100, packets: sent }] });
  a!.svc.close();
  b!.svc.close();
});

t.test('two shards, UDP: a connect datagram nobody waits for → ignored, counted', async (t) => {
  const { shards: [a, b] } = twoShards();
  udpSocket(b!.s).feed(bytes(0x39, 0x38, 0x37, 0x36), peer(40000));
  await settle();
  t.same(udpSocket(b!.s).written, [], 'no reply');
  t.equal(b!.svc.stats.datagramsIgnored, 1);
  a!.svc.close();
  b!.svc.close();
});
