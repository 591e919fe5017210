// node:http with keep-alive on tsvisor/net, on a virtual clock: every response arrives within one round trip of
// its request. Node ends a response with an empty final buffer after the body; a gathered write that left the
// body marked "more follows" held it for tcp(7)'s 200 ms cork ceiling (issue 15).
import http from 'node:http';
import { setImmediate as turn } from 'node:timers/promises';
import t from 'tap';
import { bindNet } from '../../../netstack/adapter/net.ts';
import { parseSubnet } from '../../../netstack/addr.ts';
import { VirtualClock } from '../../../netstack/clock.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import { Netstack } from '../../../netstack/netstack.ts';

const ONE_WAY_MS = 5;
const RTT_MS = 2 * ONE_WAY_MS;

/** Two stacks on a virtual clock, 198.18.0.1 and .2 over a channel with ONE_WAY_MS latency. */
function virtualPair() {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, latencyMs: ONE_WAY_MS });
  const a = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  const b = new Netstack({ clock, seed: 2, dadTransmits: 0 });
  a.stack.addAddress(a.stack.addNic(la), parseSubnet('198.18.0.1/24')!);
  b.stack.addAddress(b.stack.addNic(lb), parseSubnet('198.18.0.2/24')!);
  return { clock, a, b, close: () => (a.close(), b.close()) };
}

/**
 * Lets Node run until it has nothing left to do, then moves virtual time to the next stack timer; resolves when
 * `done()` holds. Time moves only while Node is idle, so it measures the network and the stack's own waits.
 */
async function runUntil(clock: VirtualClock, done: () => boolean, limitMs: number): Promise<void> {
  const end = clock.now() + limitMs;
  while (!done()) {
    for (let i = 0; i < 4; i++) await turn();
    if (done()) return;
    const next = clock.nextDeadline();
    if (next === undefined || next > end) throw new Error(`nothing happened within ${limitMs} ms of virtual time`);
    clock.advanceTo(next);
  }
}

const handlers: [string, (res: http.ServerResponse) => void][] = [
  ['res.end(body) with content-length', (res) => {
    res.setHeader('content-length', 10);
    res.end('0123456789');
  }],
  ['res.write(part) + res.end(part), chunked', (res) => {
    res.write('01234');
    res.end('56789');
  }],
  ['res.end(Buffer body): the head string and the body gathered in one write', (res) => {
    res.setHeader('content-length', 10);
    res.end(Buffer.from('0123456789'));
  }],
  ['res.write(Buffer) + res.end(), chunked: head, body and an empty last chunk gathered', (res) => {
    res.write(Buffer.from('0123456789'));
    res.end();
  }],
  ['res.end(64 KB body)', (res) => {
    res.setHeader('content-length', 65536);
    res.end(Buffer.alloc(65536, 0x61));
  }],
];

for (const [name, handler] of handlers) {
  t.test(`keep-alive GET, ${name} → each response within one round trip`, async (t) => {
    const env = virtualPair();
    t.teardown(env.close);
    const na = bindNet(env.a);
    const nb = bindNet(env.b);
    const web = http.createServer((_req, res) => handler(res));
    const listener = nb.createServer((s) => web.emit('connection', s)).listen(80);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    (agent as unknown as { createConnection: unknown }).createConnection = () => na.createConnection({ port: 80, host: '198.18.0.2' });
    t.teardown(() => {
      agent.destroy();
      web.closeAllConnections();
      listener.close();
    });

    for (let i = 0; i < 5; i++) {
      const started = env.clock.now();
      let result: { body: string; reused: boolean } | undefined;
      let failure: Error | undefined;
      const req = http.request({ host: '198.18.0.2', port: 80, path: `/${i}`, agent }, (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => (result = { body, reused: req.reusedSocket }));
      });
      req.on('error', (e) => (failure = e));
      req.end();
      await runUntil(env.clock, () => result !== undefined || failure !== undefined, 1000);
      if (failure) throw failure;
      const took = env.clock.now() - started;
      t.ok(result!.body.length >= 10, `request ${i}: body of ${result!.body.length} bytes`);
      // The first request warms up: ARP, the handshake and slow start come before its response.
      if (i === 0) continue;
      t.ok(result!.reused, `request ${i} reused the kept-alive connection`);
      t.ok(took <= RTT_MS, `request ${i}: response complete ${took} ms of virtual time after the request (one round trip: ${RTT_MS})`);
    }
    t.equal(env.b.tcp.stats.corkCeilingFlushes, 0, 'no response waited for the cork ceiling');
  });
}
