// TCP between two real Stacks over an in-memory channel, clean and impaired, byte-exact (SHA-256).
import { createHash } from 'node:crypto';
import t from 'tap';
import { parseAddress, parseSubnet } from '../../../../netstack/addr.ts';
import { VirtualClock } from '../../../../netstack/clock.ts';
import { Err } from '../../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../../netstack/link/channel.ts';
import type { LinkEndpoint } from '../../../../netstack/link/endpoint.ts';
import { ImpairEndpoint, type ImpairSpec } from '../../../../netstack/link/impair.ts';
import { ShutdownWrite } from '../../../../netstack/socket.ts';
import { Stack } from '../../../../netstack/stack.ts';
import { PortManager } from '../../../../netstack/transport/ports.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { type TcpConfig, TcpProtocol } from '../../../../netstack/transport/tcp/protocol.ts';
import { State } from '../../../../netstack/transport/tcp/state.ts';
import { seededBytes } from './helper.ts';

function twoStacks(impair?: Partial<ImpairSpec>, config?: Partial<TcpConfig>) {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu: 1500, latencyMs: 1 });
  const linkA: LinkEndpoint = impair ? new ImpairEndpoint(la, clock, impair) : la;
  const a = new Stack({ clock, seed: 11, dadTransmits: 0 });
  const b = new Stack({ clock, seed: 22, dadTransmits: 0 });
  const na = a.addNic(linkA);
  const nb = b.addNic(lb);
  for (const [s, n, x] of [[a, na, 1], [b, nb, 2]] as const) {
    s.addAddress(n, parseSubnet(`198.18.0.${x}/24`)!);
    s.addAddress(n, parseSubnet(`fd74:7376::${x}/64`)!);
  }
  const ta = new TcpProtocol(a, new PortManager(a), config);
  const tb = new TcpProtocol(b, new PortManager(b), config);
  a.registerTransport(ta);
  b.registerTransport(tb);
  return { clock, a, b, ta, tb };
}

interface Transfer {
  received: number;
  digest: string;
  elapsedMs: number;
  client: TcpEndpoint;
  server: TcpEndpoint;
}

/** Sends `data` from a to b (and `back` from b to a at the same time), then both close. */
function transfer(
  env: ReturnType<typeof twoStacks>,
  data: Uint8Array,
  family: 4 | 6 = 4,
  limitMs = 600_000,
): Transfer {
  const { clock, ta, tb } = env;
  const server = tb.newEndpoint(family);
  const any = family === 4 ? new Uint8Array(4) : new Uint8Array(16);
  if (server.bind({ address: any, port: 5001 })) throw new Error('bind');
  if (server.listen(16)) throw new Error('listen');
  const client = ta.newEndpoint(family);
  const dst = parseAddress(family === 4 ? '198.18.0.2' : 'fd74:7376::2')!;
  if (client.connect({ address: dst, port: 5001 }) !== Err.ConnectStarted) throw new Error('connect');
  let child: TcpEndpoint | null = null;
  let written = 0;
  let shut = false;
  let eof = false;
  let received = 0;
  const hash = createHash('sha256');
  const start = clock.now();
  while (!eof && clock.now() - start < limitMs) {
    clock.advance(1);
    if (!child) {
      const a = server.accept();
      if (!('errno' in a)) child = a.endpoint as TcpEndpoint;
    }
    while (written < data.length) {
      const n = client.write(data.subarray(written, Math.min(data.length, written + 65536)));
      if (typeof n !== 'number') break;
      written += n;
    }
    if (written === data.length && !shut) {
      client.shutdown(ShutdownWrite);
      shut = true;
    }
    if (child) {
      for (;;) {
        const r = child.read();
        if ('errno' in r) break;
        if (r.data.length === 0) {
          eof = true;
          break;
        }
        hash.update(r.data);
        received += r.data.length;
      }
    }
  }
  if (!child) throw new Error('never accepted');
  return { received, digest: hash.digest('hex'), elapsedMs: clock.now() - start, client, server: child };
}

const MB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

for (const cc of ['cubic', 'reno']) {
  t.test(`${cc}: 4 MB over a clean link arrive byte-exact, both sides close cleanly`, async (t) => {
    const env = twoStacks(undefined, { congestion: cc });
    const data = seededBytes(4 * MB, 1);
    const r = transfer(env, data);
    t.equal(r.received, data.length);
    t.equal(r.digest, sha(data));
    t.equal(r.client.getOption('TCP_CONGESTION'), cc);
    t.equal(env.ta.stats.retransmits, 0, "no retransmissions without loss");
    t.comment(`${cc} clean: ${r.elapsedMs} ms virtual`);
    r.server.close();
    env.clock.advance(1000);
    t.equal(r.server.state, State.Closed, 'server: LAST-ACK → CLOSED');
    t.equal(r.client.state, State.TimeWait, 'client: TIME-WAIT');
    env.clock.advance(60_000);
    t.equal(r.client.state, State.Closed);
    t.equal(env.ta.connectionCount + env.tb.connectionCount, 0);
    t.equal(env.ta.memoryUsed + env.tb.memoryUsed, 0, 'every buffered byte was accounted back');
  });

  t.test(`${cc}: 2 MB with 5% loss, 5% reordering, 1% duplication arrive byte-exact`, async (t) => {
    const env = twoStacks({ loss: 0.05, reorder: 0.05, dup: 0.01, seed: 3 }, { congestion: cc });
    const data = seededBytes(2 * MB, 2);
    const r = transfer(env, data);
    t.equal(r.received, data.length);
    t.equal(r.digest, sha(data));
    t.ok(env.ta.stats.retransmits > 0, 'losses were repaired');
    t.ok(env.ta.stats.fastRetransmits > 0, 'by fast retransmit at least once');
    r.server.close();
    r.client.close();
    env.clock.advance(120_000);
    t.equal(env.ta.memoryUsed + env.tb.memoryUsed, 0, 'every buffered byte was accounted back');
    t.comment(`${cc}: ${r.elapsedMs} ms virtual, ${env.ta.stats.retransmits} retransmits, ${env.ta.stats.timeouts} RTOs`);
  });
}

t.test('IPv6: 1 MB byte-exact', async (t) => {
  const env = twoStacks();
  const data = seededBytes(MB, 3);
  const r = transfer(env, data, 6);
  t.equal(r.digest, sha(data));
  t.equal(r.client.snd.mss, 1440 - 12);
});

t.test('connect to a closed port → RST → ECONNREFUSED', async (t) => {
  const { clock, ta } = twoStacks();
  const c = ta.newEndpoint(4);
  c.connect({ address: parseAddress('198.18.0.2')!, port: 9 });
  clock.advance(100);
  t.equal(c.state, State.Closed);
  t.equal(c.takeError(), Err.ConnectionRefused);
});

t.test('IP_MTU / IPV6_MTU: ENOTCONN before connect, the path MTU once connected (Linux dst_mtu)', async (t) => {
  const { clock, ta, tb } = twoStacks();
  for (const family of [4, 6] as const) {
    const srv = tb.newEndpoint(family);
    srv.bind({ address: new Uint8Array(family === 4 ? 4 : 16), port: 90 + family });
    srv.listen(4);
    const c = ta.newEndpoint(family);
    const name = family === 4 ? 'IP_MTU' : 'IPV6_MTU';
    t.equal(c.getOption(name), Err.NotConnected, `${name} unconnected`);
    c.connect({ address: parseAddress(family === 4 ? '198.18.0.2' : 'fd74:7376::2')!, port: 90 + family });
    clock.advance(10);
    t.equal(c.getOption(name), 1500, `${name} connected: the link's MTU`);
  }
  t.equal(ta.newEndpoint(4).getOption('IPV6_MTU'), Err.ProtocolNotAvailable);
});

t.test('dual-stack: an IPv6 listener on :: accepts an IPv4 client; addresses are IPv4-mapped', async (t) => {
  const { clock, ta, tb } = twoStacks();
  const srv = tb.newEndpoint(6);
  t.equal(srv.bind({ address: new Uint8Array(16), port: 80 }), undefined);
  t.equal(srv.listen(4), undefined);
  const c = ta.newEndpoint(4);
  c.connect({ address: parseAddress('198.18.0.2')!, port: 80 });
  clock.advance(10);
  const a = srv.accept();
  if ('errno' in a) throw new Error(String(a));
  t.same(a.peer.address, parseAddress('::ffff:198.18.0.1'));
  const child = a.endpoint as TcpEndpoint;
  t.same((child.localAddress() as { address: Uint8Array }).address, parseAddress('::ffff:198.18.0.2'));
  c.write(Uint8Array.from([1, 2, 3]));
  clock.advance(10);
  t.same(child.read(), { data: Uint8Array.from([1, 2, 3]) });
  // With IPV6_V6ONLY the same listener would not see IPv4.
  const only = tb.newEndpoint(6);
  only.setOption('IPV6_V6ONLY', 1);
  only.bind({ address: new Uint8Array(16), port: 81 });
  only.listen(4);
  const c2 = ta.newEndpoint(4);
  c2.connect({ address: parseAddress('198.18.0.2')!, port: 81 });
  clock.advance(10);
  t.equal(c2.takeError(), Err.ConnectionRefused);
});

t.test('bound to one IPv6 address the socket reads IPV6_V6ONLY 1 and cannot reach IPv4 (Linux __inet6_bind, tcp_v6_connect)', async (t) => {
  const { tb } = twoStacks();
  for (const [addr, want] of [['fd74:7376::2', 1], ['::', 0], ['::ffff:198.18.0.2', 0]] as const) {
    const s = tb.newEndpoint(6);
    t.equal(s.bind({ address: parseAddress(addr)!, port: 0 }), undefined);
    t.equal(s.getOption('IPV6_V6ONLY'), want, `${addr}: ${want} after bind`);
    if (want) t.equal(s.connect({ address: parseAddress('::ffff:198.18.0.1')!, port: 80 }), Err.NetworkUnreachable);
  }
});

t.test('100 concurrent connections both ways over a lossy, reordering, corrupting link: all byte-exact', async (t) => {
  const env = twoStacks({ loss: 0.02, reorder: 0.02, dup: 0.01, corrupt: 0.01, seed: 9 });
  const { clock, ta, tb } = env;
  const srv = tb.newEndpoint(4);
  srv.bind({ address: new Uint8Array(4), port: 6000 });
  srv.listen(128);
  const N = 100;
  const dst = parseAddress('198.18.0.2')!;
  interface Pair {
    c: TcpEndpoint;
    s: TcpEndpoint | null;
    up: Uint8Array;
    down: Uint8Array;
    upOff: number;
    downOff: number;
    gotUp: number[];
    gotDown: number[];
    upShut: boolean;
    downShut: boolean;
    upEof: boolean;
    downEof: boolean;
  }
  const pairs: Pair[] = [];
  for (let i = 0; i < N; i++) {
    const c = ta.newEndpoint(4);
    c.connect({ address: dst, port: 6000 });
    pairs.push({
      c, s: null, up: seededBytes(5000 + i * 97, i + 1), down: seededBytes(3000 + i * 53, i + 1000),
      upOff: 0, downOff: 0, gotUp: [], gotDown: [], upShut: false, downShut: false, upEof: false, downEof: false,
    });
  }
  // Server children are matched to clients by the client's port.
  const byPort = new Map<number, Pair>();
  for (const p of pairs) byPort.set((p.c.localAddress() as { port: number }).port, p);
  const pump = (ep: TcpEndpoint, data: Uint8Array, off: number): number => {
    while (off < data.length) {
      const n = ep.write(data.subarray(off, off + 4096));
      if (typeof n !== 'number') break;
      off += n;
    }
    return off;
  };
  const drain = (ep: TcpEndpoint, into: number[]): boolean => {
    for (;;) {
      const r = ep.read();
      if ('errno' in r) return false;
      if (r.data.length === 0) return true;
      into.push(...r.data);
    }
  };
  const start = clock.now();
  while (clock.now() - start < 300_000) {
    clock.advance(5);
    for (;;) {
      const a = srv.accept();
      if ('errno' in a) break;
      byPort.get(a.peer.port)!.s = a.endpoint as TcpEndpoint;
    }
    let done = 0;
    for (const p of pairs) {
      p.upOff = pump(p.c, p.up, p.upOff);
      if (p.upOff === p.up.length && !p.upShut && (p.c.state === State.Established || p.c.state === State.CloseWait)) {
        p.upShut = !p.c.shutdown(ShutdownWrite);
      }
      if (p.s) {
        p.downOff = pump(p.s, p.down, p.downOff);
        if (p.downOff === p.down.length && !p.downShut) p.downShut = !p.s.shutdown(ShutdownWrite);
        if (!p.upEof) p.upEof = drain(p.s, p.gotUp);
      }
      if (!p.downEof) p.downEof = drain(p.c, p.gotDown);
      if (p.upEof && p.downEof) done++;
    }
    if (done === N) break;
  }
  let exact = 0;
  for (const p of pairs) {
    if (Buffer.from(p.gotUp).equals(Buffer.from(p.up)) && Buffer.from(p.gotDown).equals(Buffer.from(p.down))) exact++;
  }
  t.equal(exact, N, 'every connection delivered both directions byte-exact');
  for (const p of pairs) {
    p.c.close();
    p.s?.close();
  }
  clock.advance(200_000);
  t.equal(ta.connectionCount + tb.connectionCount, 0, 'all connections gone after TIME-WAIT');
  t.equal(ta.memoryUsed + tb.memoryUsed, 0, 'no buffered byte left unaccounted');
  t.ok(ta.stats.badChecksum + tb.stats.badChecksum > 0 || env.a.stats.snapshot()['ipv4.badChecksum']! > 0, 'corruption was caught by checksums');
});
