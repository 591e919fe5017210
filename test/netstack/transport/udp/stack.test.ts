// UDP and ping sockets on two real Stacks joined by an in-memory channel (optionally impaired).
import t from 'tap';
import { parseSubnet } from '../../../../netstack/addr.ts';
import { VirtualClock } from '../../../../netstack/clock.ts';
import { Err } from '../../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../../netstack/link/channel.ts';
import type { LinkEndpoint } from '../../../../netstack/link/endpoint.ts';
import { ImpairEndpoint, type ImpairSpec } from '../../../../netstack/link/impair.ts';
import { Stack } from '../../../../netstack/stack.ts';
import { installDatagramTransports } from '../../../../netstack/transport/udp/index.ts';
import { bytes, ip, mustRead, ok, sa, text } from './helpers.ts';

function twoStacks(impair?: Partial<ImpairSpec>, mtu = 1500) {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu });
  const linkA: LinkEndpoint = impair ? new ImpairEndpoint(la, clock, impair) : la;
  const a = new Stack({ clock, seed: 11 });
  const b = new Stack({ clock, seed: 22 });
  const na = a.addNic(linkA);
  const nb = b.addNic(lb);
  for (const [s, n, x] of [[a, na, 1], [b, nb, 2]] as const) {
    s.addAddress(n, parseSubnet(`198.18.0.${x}/24`)!);
    s.addAddress(n, parseSubnet(`fd74:7376::${x}/64`)!);
  }
  const ta = installDatagramTransports(a);
  const tb = installDatagramTransports(b);
  clock.advance(5000); // IPv6 DAD
  return { clock, a, b, ta, tb, la, linkA, run: (ms = 100) => clock.advance(ms) };
}

/** Recognisable bytes. */
function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

t.test('real stacks: v4 and v6 request/response through ARP and NDP', async (t) => {
  const { ta, tb, run } = twoStacks();
  for (const [fam, server, client] of [[4, '198.18.0.2', '198.18.0.1'], [6, 'fd74:7376::2', 'fd74:7376::1']] as const) {
    const srv = tb.udp.newEndpoint(fam);
    // Different ports: a dual-stack :: bind would clash with 0.0.0.0 on the same one.
    t.equal(srv.bind(sa(fam === 4 ? '0.0.0.0' : '::', fam)), undefined);
    const cli = ta.udp.newEndpoint(fam);
    t.equal(cli.connect(sa(server, fam)), undefined);
    t.same(ok(cli.localAddress()).address, ip(client));
    t.equal(cli.write(bytes(`hello v${fam}`)), 7 + 1);
    run();
    const r = mustRead(srv);
    t.equal(text(r.data), `hello v${fam}`);
    t.same(r.from, ok(cli.localAddress()));
    t.same(r.localAddress, ip(server));
    srv.write(r.data, { to: r.from });
    run();
    t.equal(text(mustRead(cli).data), `hello v${fam}`);
  }
  t.equal(tb.udp.counters.received, 2);
  t.equal(ta.udp.counters.received, 2);
});

t.test('real stacks: closed port → ICMP port unreachable → ECONNREFUSED on the connected socket', async (t) => {
  const { ta, tb, run } = twoStacks();
  for (const server of ['198.18.0.2', 'fd74:7376::2']) {
    const cli = ta.udp.newEndpoint(server.includes(':') ? 6 : 4);
    cli.connect(sa(server, 9));
    cli.write(bytes('anyone?'));
    run();
    t.equal(cli.read(), Err.ConnectionRefused, server);
  }
  t.equal(tb.udp.counters.noPort, 2);
});

t.test('real stacks: dual-stack server answers an IPv4 client', async (t) => {
  const { ta, tb, run } = twoStacks();
  const srv = tb.udp.newEndpoint(6);
  srv.bind(sa('::', 53));
  const cli = ta.udp.newEndpoint(4);
  cli.write(bytes('q'), { to: sa('198.18.0.2', 53) });
  run();
  const r = mustRead(srv);
  t.same(r.from.address, ip('::ffff:198.18.0.1'));
  srv.write(bytes('a'), { to: r.from });
  run();
  t.same(mustRead(cli).from, sa('198.18.0.2', 53));
});

t.test('real stacks: directed broadcast with SO_BROADCAST reaches wildcard sockets', async (t) => {
  const { ta, tb, run } = twoStacks();
  const rx = tb.udp.newEndpoint(4);
  rx.bind(sa('0.0.0.0', 67));
  const tx = ta.udp.newEndpoint(4);
  t.equal(tx.write(bytes('x'), { to: sa('198.18.0.255', 67) }), Err.PermissionDenied);
  tx.setOption('SO_BROADCAST', 1);
  t.equal(tx.write(bytes('hello all'), { to: sa('198.18.0.255', 67) }), 9);
  // The limited broadcast needs a route (Linux: ENETUNREACH with only the subnet's), or a bound source, whose
  // interface it then leaves by (ip_route_output_key_hash).
  t.equal(tx.write(bytes('limited'), { to: sa('255.255.255.255', 67) }), Err.NetworkUnreachable);
  const bound = ta.udp.newEndpoint(4);
  bound.bind(sa('198.18.0.1', 0));
  bound.setOption('SO_BROADCAST', 1);
  t.equal(bound.write(bytes('limited'), { to: sa('255.255.255.255', 67) }), 7);
  run();
  t.equal(text(mustRead(rx).data), 'hello all');
  t.equal(text(mustRead(rx).data), 'limited');
});

t.test('real stacks: ping sockets get echo replies from the peer network layer', async (t) => {
  const { ta, run } = twoStacks();
  for (const [fam, peer, type] of [[4, '198.18.0.2', 8], [6, 'fd74:7376::2', 128]] as const) {
    const s = fam === 4 ? ta.icmp4.newEndpoint() : ta.icmp6.newEndpoint();
    const msg = new Uint8Array(8 + 56);
    msg.set([type, 0, 0, 0, 0, 0, 0, 3]);
    msg.set(pattern(56, fam), 8);
    t.equal(s.write(msg, { to: sa(peer, 0) }), 64);
    run();
    const r = mustRead(s);
    const id = ok(s.localAddress()).port;
    t.equal(r.size, 64);
    t.equal(r.data[0], fam === 4 ? 0 : 129, 'echo reply');
    t.same([...r.data.subarray(4, 8)], [id >> 8, id & 0xff, 0, 3]);
    t.same(r.data.subarray(8), pattern(56, fam));
    t.same(r.from.address, ip(peer));
  }
});

for (const fam of [4, 6] as const) {
  t.test(`real stacks, impaired link (dup, reorder, jitter): 8000-byte v${fam} datagrams fragmented and reassembled intact`, async (t) => {
    const { ta, tb, la, linkA, run } = twoStacks({ dup: 0.2, reorder: 0.3, delayMs: 1, jitterMs: 0.8, seed: 5, dir: 'out' });
    const srv = tb.udp.newEndpoint(fam);
    srv.bind(sa(fam === 4 ? '0.0.0.0' : '::', 9000));
    const cli = ta.udp.newEndpoint(fam);
    cli.connect(sa(fam === 4 ? '198.18.0.2' : 'fd74:7376::2', 9000));
    for (let i = 0; i < 8; i++) t.equal(cli.write(pattern(8000, i)), 8000);
    run(2000);
    const got = new Set<number>();
    for (let r = srv.read(); !('errno' in r); r = srv.read()) {
      t.equal(r.size, 8000);
      const seed = (r.data[0]! - 0) & 0xff;
      t.ok(Buffer.from(r.data).equals(pattern(8000, seed)), `datagram ${seed} intact`);
      got.add(seed);
    }
    t.equal(got.size, 8, 'all eight arrived');
    const c = (linkA as ImpairEndpoint).counters;
    t.ok(c.duplicated > 0 && c.reordered > 0, `impaired: ${JSON.stringify(c)}`);
    t.ok(la.framesSent >= 8 * 6, `sent as fragments (${la.framesSent} frames)`);
  });
}

t.test('real stacks, lossy link: every 8000-byte datagram that arrives is intact', async (t) => {
  const { ta, tb, run } = twoStacks({ loss: 0.05, seed: 9, dir: 'out' });
  const srv = tb.udp.newEndpoint(4);
  srv.bind(sa('0.0.0.0', 9000));
  const cli = ta.udp.newEndpoint(4);
  cli.connect(sa('198.18.0.2', 9000));
  // ARP may be lost too: resolve first.
  for (let i = 0; i < 5 && srv.inQueue() === 0; i++) {
    cli.write(bytes('warm'));
    run(2000);
  }
  while (srv.inQueue() > 0 && srv.inQueue() < 8000) srv.read();
  for (let i = 0; i < 20; i++) cli.write(pattern(8000, i));
  run(60000);
  let n = 0;
  for (let r = srv.read(); !('errno' in r); r = srv.read()) {
    if (r.size !== 8000) continue;
    t.ok(Buffer.from(r.data).equals(pattern(8000, r.data[0]!)), 'intact');
    n++;
  }
  t.ok(n > 5 && n < 20, `some but not all arrived (${n})`);
});
