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
} from '../../../sentry/services/iperf3.ts';
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
  const cases: [string, unknown][] = [
    ['{"tcp":true,"parallel":4,"reverse":true,"len":131072}', { parallel: 4, reverse: true, len: 131072 }],
    ['{"tcp":true,"time":10}', { parallel: 1, reverse: false, len: 131072 }],
    ['{"udp":true,"parallel":1}', 'only TCP tests are served'],
    ['{"tcp":true,"bidirectional":true}', 'bidirectional tests are not served'],
    ['{"tcp":true,"parallel":0}', 'bad parallel 0'],
    ['{"tcp":true,"len":-5}', 'bad len -5'],
    ['not json', 'parameters are not JSON'],
  ];
  for (const [json, want] of cases) t.same(parseParams(json), want, json);
});

t.test('framing and results JSON are byte-exact', async (t) => {
  t.same(frameJson('{}'), bytes(0, 0, 0, 2, 0x7b, 0x7d));
  t.equal(
    resultsJson(false, [{ id: 1, bytes: 1500, seconds: 1.5 }]),
    '{"cpu_util_total":0,"cpu_util_user":0,"cpu_util_system":0,"sender_has_retransmits":-1,"streams":[' +
      '{"id":1,"bytes":1500,"retransmits":-1,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":1.5}]}',
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

t.test('reverse test sends whole blocks only, also when TEST_END comes mid-block', async (t) => {
  const { s, svc, advance } = setup();
  const c = await control(t, s, { tcp: true, parallel: 1, reverse: true, len: 1000 });
  t.same(c.drain(), bytes(State.CREATE_STREAMS));
  const d = s.connect();
  d.writeBudget = 2500;
  d.feed(COOKIE);
  await settle();
  t.same(c.drain(), bytes(State.TEST_START, State.TEST_RUNNING));
  t.equal(d.drain().length, 2500, 'sends until the send buffer is full');

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
  t.match(JSON.parse(got.slice(0, -1)), { sender_has_retransmits: 0, streams: [{ id: 1, bytes: 3000, end_time: 2 }] });
  svc.close();
});

t.test('refusals', async (t) => {
  const { s, svc } = setup();
  const u = await control(t, s, { udp: true, parallel: 1 });
  t.same(u.drain(), bytes(State.SERVER_ERROR, 0, 0, 0, 13, 0, 0, 0, 0), 'UDP test → SERVER_ERROR (0xfe), i_errno 13, errno 0');
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
