// A gathered write through tsvisor/net (node:http's response head and body) takes the stack's time once, as one
// sendmsg of several iovecs does, and still sends as it did: one segment with all of it.
import { once } from 'node:events';
import t from 'tap';
import { countedStacks } from '../../../bench/micro/counted.ts';
import { parseAddress } from '../../../netstack/addr.ts';
import { bindNet, type Socket } from '../../../netstack/adapter/net.ts';
import { Err, NetError } from '../../../netstack/errors.ts';
import type { Endpoint } from '../../../netstack/socket.ts';

t.test('a corked socket writes its chunks under one read of the clock, in one segment', async (t) => {
  const { clock, counting, client, server } = countedStacks();
  const tick = async () => {
    await new Promise((r) => setImmediate(r));
    clock.advance(1);
  };
  let accepted: Socket | null = null;
  const srv = bindNet(server)
    .createServer({ noDelay: true }, (s) => (accepted = s))
    .listen(80);
  const c = client.socket(4, 'stream') as Endpoint;
  t.equal(c.connect({ address: parseAddress('198.18.0.2')!, port: 80 }), Err.ConnectStarted);
  for (let i = 0; i < 10 && accepted === null; i++) await tick();
  const s = accepted as Socket | null;
  if (s === null) throw new Error('no connection accepted');
  await tick();

  // One response as node:http writes it: head and body gathered, one call. Returns the clock reads and segments
  // it cost, after the client took it.
  const respond = async () => {
    const segs0 = server.counters()['tcp.segmentsSent']!;
    const reads0 = counting.nows;
    s.cork();
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n');
    s.write(Buffer.from('body'));
    s.write('tail');
    s.uncork();
    const cost = { reads: counting.nows - reads0, segments: server.counters()['tcp.segmentsSent']! - segs0 };
    await tick();
    const r = c.read();
    if (r instanceof NetError) throw r;
    t.equal(Buffer.from(r.data).toString(), 'HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nbodytail');
    for (let i = 0; i < 50; i++) await tick();
    return cost;
  };
  // The first arms the retransmission timer; the second finds it armed, as every later response of a connection.
  await respond();
  const cost = await respond();
  t.equal(cost.reads, 1, 'three chunks of one gathered write: one clock read (three before)');
  t.equal(cost.segments, 1, 'sent as one segment');

  const closed = once(s, 'close');
  c.close();
  s.destroy();
  srv.close();
  for (let i = 0; i < 5; i++) await tick();
  await closed;
});
