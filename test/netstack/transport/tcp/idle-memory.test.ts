// What an idle accepted connection keeps (issue 13's conn-memory row): no timer but the retransmission one, no
// address copy of its own, no SYN options, and a bounded heap per connection, measured over 2,000 connections
// between two in-memory stacks on a virtual clock with V8's collector run before each reading.
import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseAddress } from '../../../../netstack/addr.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { netstackPair } from './helper.ts';

const PORT = 9;
const SERVER = parseAddress('198.18.0.2')!;
const CONNS = 2000;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

t.test('idle accepted connections: lazily built parts stay unbuilt, heap per connection bounded', async (t) => {
  const { clock, a, b } = netstackPair();
  const listener = b.socket(4, 'stream') as TcpEndpoint;
  if (listener.bind({ address: new Uint8Array(4), port: PORT }) || listener.listen(4096)) throw new Error('listen');
  // One connection first, so that code and shapes made on first use are not counted.
  const warm = a.socket(4, 'stream') as TcpEndpoint;
  warm.connect({ address: SERVER, port: PORT });
  clock.advance(10);
  const warmChild = listener.accept();
  if ('errno' in warmChild) throw new Error('no warm-up connection');

  const before = heapAfterGc();
  const clients: TcpEndpoint[] = [];
  const children: TcpEndpoint[] = [];
  for (let i = 0; i < CONNS; i++) {
    const c = a.socket(4, 'stream') as TcpEndpoint;
    c.connect({ address: SERVER, port: PORT });
    clients.push(c);
    if (i % 256 === 255) clock.advance(10);
  }
  clock.advance(10);
  for (;;) {
    const r = listener.accept();
    if ('errno' in r) break;
    children.push(r.endpoint as TcpEndpoint);
  }
  t.equal(children.length, CONNS, 'every connection accepted');
  const perPair = (heapAfterGc() - before) / CONNS;

  const child = children[0]!;
  t.equal(child.snd.tlpState, null, 'no tail-loss-probe timer');
  t.equal(child.rcv.delackState, null, 'no delayed-ACK timer');
  t.equal(child.peerSynOptions, undefined, 'the SYN options dropped once established');
  t.equal(child.remoteAddr, children[1]!.remoteAddr, "the peer's address is one array for all its connections");
  t.equal(child.route!.remoteAddress, child.remoteAddr, 'the route keeps the same array');
  // Both ends of each connection are in the figure (the client's endpoint, its port reservation and route too):
  // 12,144 B before session 19's cuts (4fc91fd), 8,932 B after them. The bound sits between the two.
  t.ok(perPair < 10500, `heap per connection, both ends: ${Math.round(perPair)} B < 10,500`);
  for (const c of clients) c.close();
  clock.advance(200000);
});
