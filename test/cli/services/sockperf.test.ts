// sockperf's ping-pong server side in memory: the 14-byte big-endian header, which messages are answered (a
// client's pong request, not warm-up) and how (client flag cleared, all bytes echoed), TCP framing by the length
// field across reads, and the UDP service answering the sender.
import t from 'tap';
import {
  FLAG_CLIENT,
  FLAG_PONG,
  FLAG_WARMUP,
  StreamFramer,
  answer,
  buildMessage,
  parseHeader,
  tcpSockperf,
  udpSockperf,
} from '../../../cli/services/sockperf.ts';
import { fakeSockets, settle } from '../../bench/fake-endpoint.ts';

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((b) => parseInt(b, 16)));

// A 64-byte ping-pong request as sockperf 3.7 sent it (captured): sequence 1, flags client|pong, length 64.
const REQUEST = hex('0000000000000001 0003 00000040' + '96'.repeat(50));
const REPLY = hex('0000000000000001 0002 00000040' + '96'.repeat(50));

t.test('header parse and build', async (t) => {
  t.same(parseHeader(REQUEST), { sequence: 1n, flags: 3, length: 64 });
  t.same(buildMessage(0x0102030405060708n, FLAG_CLIENT | FLAG_PONG | FLAG_WARMUP, 14), hex('0102030405060708 0007 0000000e'));
});

t.test('answer: which messages get a reply', async (t) => {
  t.same(answer(REQUEST.slice()), REPLY, 'client pong request → same bytes, client flag cleared');
  const cases: [string, number, boolean][] = [
    ['client, pong', FLAG_CLIENT | FLAG_PONG, true],
    ['client, no pong (throughput mode)', FLAG_CLIENT, false],
    ['client, pong, warm-up', FLAG_CLIENT | FLAG_PONG | FLAG_WARMUP, false],
    ['server reply (no client flag)', FLAG_PONG, false],
  ];
  for (const [name, flags, replies] of cases) {
    const r = answer(buildMessage(7n, flags, 20));
    t.equal(r !== null, replies, name);
    if (r) t.equal(parseHeader(r).flags, flags & ~FLAG_CLIENT, `${name}: flags in reply`);
  }
  t.equal(answer(new Uint8Array(13)), null, 'shorter than a header → nothing');
});

t.test('stream framer', async (t) => {
  const f = new StreamFramer();
  const two = new Uint8Array([...REQUEST, ...buildMessage(2n, FLAG_CLIENT | FLAG_PONG, 14)]);
  const out: Uint8Array[] = [];
  for (const b of two) {
    const r = f.push(Uint8Array.of(b)); // one byte per read: headers and bodies split everywhere
    if (r === 'error') throw new Error('framing error');
    out.push(...r);
  }
  t.same(out, [REPLY, hex('0000000000000002 0002 0000000e')], 'two messages byte by byte → two replies');
  t.equal(f.buffered, 0);

  const g = new StreamFramer();
  const r = g.push(new Uint8Array([...REQUEST, ...REQUEST.subarray(0, 20)]));
  t.same(r, [REPLY], 'one and a third messages → one reply');
  t.equal(g.buffered, 20, 'the partial message is kept');
  t.same(g.push(REQUEST.subarray(20)), [REPLY], 'and completed by the next read');

  t.equal(new StreamFramer().push(buildMessage(1n, 3, 13)), 'error', 'length below the header size → error');
  t.equal(new StreamFramer().push(buildMessage(1n, 3, 70000).subarray(0, 14)), 'error', 'length above 65536 → error');
});

t.test('UDP service answers the sender', async (t) => {
  const s = fakeSockets();
  const svc = udpSockperf(s.factory, 11111);
  if (!('stats' in svc)) throw new Error(String(svc));
  const [v4] = s.created;
  const from = { address: Uint8Array.of(198, 18, 0, 1), port: 40000 };
  v4!.feed(REQUEST.slice(), from);
  v4!.feed(buildMessage(2n, FLAG_CLIENT | FLAG_PONG | FLAG_WARMUP, 64), from);
  await settle();
  t.equal(v4!.written.length, 1, 'warm-up not answered');
  t.same(v4!.written[0]!.data, REPLY);
  t.same(v4!.written[0]!.to, from);
  t.match(svc.stats, { messages: 2, replies: 1 });
  svc.close();
});

t.test('TCP service answers in order across reads and stops on a bad length', async (t) => {
  const s = fakeSockets();
  const svc = tcpSockperf(s.factory, 11111);
  if (!('stats' in svc)) throw new Error(String(svc));
  const c = s.connect();
  c.feed(new Uint8Array([...REQUEST, ...REQUEST.subarray(0, 30)]));
  await settle();
  t.same(c.drain(), REPLY);
  c.feed(REQUEST.subarray(30));
  await settle();
  t.same(c.drain(), REPLY);
  c.writeBudget = 10;
  c.feed(REQUEST.slice());
  await settle();
  t.same(c.drain(), REPLY.subarray(0, 10), 'a full send buffer takes part of the reply');
  c.grant(1000);
  await settle();
  t.same(c.drain(), REPLY.subarray(10), 'the rest follows when writable');
  c.feed(buildMessage(9n, 3, 5));
  await settle();
  t.ok(c.closed, 'a length below the header closes the connection');
  t.equal(svc.stats.replies, 3);
  svc.close();
});
