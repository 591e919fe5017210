import t from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp } from '../../../../netstack/waiter.ts';
import { ShutdownRead, ShutdownWrite } from '../../../../netstack/socket.ts';
import { finishChecksum, pseudoHeaderSum, sum16 } from '../../../../netstack/wire/checksum.ts';
import { newDatagramEndpoint } from '../../../../netstack/transport/udp/index.ts';
import { bytes, ip, mustRead, ok, sa, text, world } from './helpers.ts';

t.test('v4 unbound sendto → autobind, one byte-exact datagram, read with from', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  t.equal(rx.bind(sa('198.18.0.2', 5000)), undefined);
  const tx = a.t.udp.newEndpoint(4);
  t.same(ok(tx.localAddress()), sa('0.0.0.0', 0));
  t.equal(tx.write(bytes('hello'), { to: sa('198.18.0.2', 5000) }), 5);
  const port = ok(tx.localAddress()).port;
  t.ok(port >= 32768 && port <= 60999, 'ephemeral port');
  t.equal(net.log.length, 1);
  const p = net.log[0]!;
  t.same(p.src, ip('198.18.0.1'));
  t.same(p.dst, ip('198.18.0.2'));
  t.equal(p.protocol, 17);
  t.equal(p.dontFragment, false);
  t.same([...p.payload.subarray(0, 6)], [port >> 8, port & 0xff, 0x13, 0x88, 0, 13]);
  t.same(p.payload.subarray(8), bytes('hello'));
  const sum = finishChecksum(sum16(p.payload, pseudoHeaderSum(p.src, p.dst, 17, 13)));
  t.equal(sum, 0, 'checksum verifies');
  t.equal(rx.read(), Err.WouldBlock, 'nothing before the network runs');
  net.run();
  const r = mustRead(rx);
  t.equal(text(r.data), 'hello');
  t.equal(r.size, 5);
  t.same(r.from, sa('198.18.0.1', port));
  t.same(r.localAddress, ip('198.18.0.2'));
  t.equal(b.t.udp.counters.received, 1);
  t.equal(a.t.udp.counters.sent, 1);
  t.equal(rx.read(), Err.WouldBlock);
});

t.test('v6 bound pair exchange both ways', async (t) => {
  const { net, a, b } = world();
  const x = a.t.udp.newEndpoint(6);
  const y = b.t.udp.newEndpoint(6);
  t.equal(x.bind(sa('fd74:7376::1', 1111)), undefined);
  t.equal(y.bind(sa('::', 2222)), undefined);
  t.equal(x.write(bytes('ping'), { to: sa('fd74:7376::2', 2222) }), 4);
  net.run();
  const r = mustRead(y);
  t.same(r.from, sa('fd74:7376::1', 1111));
  t.equal(y.write(bytes('pong'), { to: r.from }), 4);
  net.run();
  const back = mustRead(x);
  t.equal(text(back.data), 'pong');
  t.same(back.from, sa('fd74:7376::2', 2222));
  t.same(net.log[1]!.payload.subarray(0, 6), new Uint8Array([0x08, 0xae, 0x04, 0x57, 0, 12]));
});

t.test('dual-stack v6 socket ← v4 peer → from ::ffff:a.b.c.d, reply goes out as IPv4', async (t) => {
  const { net, a, b } = world();
  const srv = b.t.udp.newEndpoint(6);
  t.equal(srv.bind(sa('::', 53)), undefined);
  const cli = a.t.udp.newEndpoint(4);
  cli.write(bytes('q'), { to: sa('198.18.0.2', 53) });
  net.run();
  const r = mustRead(srv);
  t.same(r.from.address, ip('::ffff:198.18.0.1'));
  t.same(r.localAddress, ip('::ffff:198.18.0.2'));
  t.equal(srv.write(bytes('a'), { to: r.from }), 1);
  t.same(net.log[1]!.dst, ip('198.18.0.1'), 'IPv4 on the wire');
  t.same(net.log[1]!.src, ip('198.18.0.2'));
  net.run();
  t.same(mustRead(cli).from, sa('198.18.0.2', 53));
  // A v6 socket also takes plain 4-byte IPv4 addresses (AF_INET sockaddr) as Linux does.
  t.equal(srv.write(bytes('b'), { to: sa('198.18.0.1', ok(cli.localAddress()).port) }), 1);
});

t.test('IPV6_V6ONLY socket ← v4 peer → not delivered (noPort); sendto v4 → ENETUNREACH', async (t) => {
  const { net, a, b } = world();
  const srv = b.t.udp.newEndpoint(6);
  t.equal(srv.setOption('IPV6_V6ONLY', true), undefined);
  t.equal(srv.getOption('IPV6_V6ONLY'), 1);
  t.equal(srv.bind(sa('::', 53)), undefined);
  t.equal(srv.setOption('IPV6_V6ONLY', false), Err.InvalidArgument, 'fixed once bound');
  a.t.udp.newEndpoint(4).write(bytes('q'), { to: sa('198.18.0.2', 53) });
  net.run();
  t.equal(srv.read(), Err.WouldBlock);
  t.equal(b.t.udp.counters.noPort, 1);
  t.equal(srv.write(bytes('x'), { to: sa('::ffff:198.18.0.1', 9) }), Err.NetworkUnreachable);
  t.equal(srv.connect(sa('198.18.0.1', 9)), Err.AddressFamilyNotSupported);
  // A v4 socket and a v6only socket share a port.
  t.equal(b.t.udp.newEndpoint(4).bind(sa('0.0.0.0', 53)), undefined);
});

t.test('bound to one IPv6 address the socket reads IPV6_V6ONLY 1 (Linux __inet6_bind); :: and v4-mapped leave it 0', async (t) => {
  const { b } = world();
  for (const [addr, want] of [['fd74:7376::2', 1], ['::', 0], ['::ffff:198.18.0.2', 0]] as const) {
    const s = b.t.udp.newEndpoint(6);
    t.equal(s.getOption('IPV6_V6ONLY'), 0, `${addr}: 0 before bind`);
    t.equal(s.bind(sa(addr, 0)), undefined);
    t.equal(s.getOption('IPV6_V6ONLY'), want, `${addr}: ${want} after bind`);
  }
});

t.test('v6 socket bound to ::ffff:198.18.0.2 is IPv4-only', async (t) => {
  const { net, a, b } = world();
  const s = b.t.udp.newEndpoint(6);
  t.equal(s.bind(sa('::ffff:198.18.0.2', 7)), undefined);
  t.same(ok(s.localAddress()), sa('::ffff:198.18.0.2', 7));
  a.t.udp.newEndpoint(4).write(bytes('v4'), { to: sa('198.18.0.2', 7) });
  a.t.udp.newEndpoint(6).write(bytes('v6'), { to: sa('fd74:7376::2', 7) });
  net.run();
  t.equal(text(mustRead(s).data), 'v4');
  t.equal(s.read(), Err.WouldBlock);
  t.equal(s.write(bytes('x'), { to: sa('fd74:7376::1', 7) }), Err.NetworkUnreachable);
});

t.test('connect → autobind, source fixed, peer filter, send without address', async (t) => {
  const { net, a, b, c } = world();
  const srv = b.t.udp.newEndpoint(4);
  srv.bind(sa('0.0.0.0', 4000));
  const cli = a.t.udp.newEndpoint(4);
  t.equal(cli.remoteAddress(), Err.NotConnected);
  t.equal(cli.connect(sa('198.18.0.2', 4000)), undefined);
  const local = ok(cli.localAddress());
  t.same(local.address, ip('198.18.0.1'), 'source address chosen by route');
  t.ok(local.port >= 32768);
  t.same(ok(cli.remoteAddress()), sa('198.18.0.2', 4000));
  t.equal(cli.write(bytes('hi')), 2);
  net.run();
  const r = mustRead(srv);
  t.same(r.from, local);
  // Replies from the peer arrive; anything else does not.
  srv.write(bytes('from-peer'), { to: r.from });
  c.t.udp.newEndpoint(4).write(bytes('stranger'), { to: local });
  b.t.udp.newEndpoint(4).write(bytes('wrong-port'), { to: local });
  net.run();
  t.equal(text(mustRead(cli).data), 'from-peer');
  t.equal(cli.read(), Err.WouldBlock);
  t.equal(a.t.udp.counters.noPort, 2);
  // sendto another address is allowed on a connected UDP socket.
  t.equal(cli.write(bytes('x'), { to: sa('198.18.0.3', 9) }), 1);
});

t.test('disconnect → peer gone, autobound port released, explicit port kept', async (t) => {
  const { a } = world();
  const auto = a.t.udp.newEndpoint(4);
  auto.connect(sa('198.18.0.2', 9));
  const port = ok(auto.localAddress()).port;
  t.equal(a.t.ports.count(17, port), 1);
  t.equal(auto.disconnect(), undefined);
  t.equal(auto.remoteAddress(), Err.NotConnected);
  t.same(ok(auto.localAddress()), sa('0.0.0.0', 0));
  t.equal(a.t.ports.count(17, port), 0);
  t.equal(auto.write(bytes('x')), Err.DestinationRequired);

  const fixed = a.t.udp.newEndpoint(4);
  fixed.bind(sa('0.0.0.0', 7777));
  fixed.connect(sa('198.18.0.2', 9));
  t.same(ok(fixed.localAddress()), sa('198.18.0.1', 7777));
  fixed.disconnect();
  t.same(ok(fixed.localAddress()), sa('0.0.0.0', 7777));

  const pinned = a.t.udp.newEndpoint(4);
  pinned.bind(sa('198.18.0.1', 0));
  pinned.connect(sa('198.18.0.2', 9));
  pinned.disconnect();
  t.same(ok(pinned.localAddress()).address, ip('198.18.0.1'), 'bound address survives');
});

// [name, action, errno]
t.test('error paths → Linux errno', async (t) => {
  const { a, b } = world();
  const u4 = () => a.t.udp.newEndpoint(4);
  const u6 = () => a.t.udp.newEndpoint(6);
  const cases: [string, () => unknown, number][] = [
    ['bind twice', () => { const s = u4(); s.bind(sa('0.0.0.0', 0)); return s.bind(sa('0.0.0.0', 0)); }, 22],
    ['bind port in use', () => { u4().bind(sa('0.0.0.0', 99)); return u4().bind(sa('198.18.0.1', 99)); }, 98],
    ['bind non-local address', () => u4().bind(sa('198.18.0.2', 1)), 99],
    ['bind v6 address on v4 socket', () => u4().bind(sa('::', 1)), 97],
    ['bind v4 address on v6 socket', () => u6().bind(sa('0.0.0.0', 1)), 97],
    ['bind mapped address with V6ONLY', () => { const s = u6(); s.setOption('IPV6_V6ONLY', 1); return s.bind(sa('::ffff:198.18.0.1', 1)); }, 22],
    ['send unconnected without address', () => u4().write(bytes('x')), 89],
    ['sendto port 0', () => u4().write(bytes('x'), { to: sa('198.18.0.2', 0) }), 22],
    ['sendto v6 address from v4 socket', () => u4().write(bytes('x'), { to: sa('fd74:7376::2', 1) }), 97],
    ['sendto 65508 bytes over IPv4', () => u4().write(new Uint8Array(65508), { to: sa('198.18.0.2', 1) }), 90],
    ['sendto 65528 bytes over IPv6', () => u6().write(new Uint8Array(65528), { to: sa('fd74:7376::2', 1) }), 90],
    ['sendto 65508 bytes to v4 peer of a v6 socket', () => u6().write(new Uint8Array(65508), { to: sa('::ffff:198.18.0.2', 1) }), 90],
    ['sendto 70000 bytes', () => u4().write(new Uint8Array(70000), { to: sa('198.18.0.2', 1) }), 90],
    ['sendto off-link without route', () => u4().write(bytes('x'), { to: sa('198.19.9.9', 1) }), 101],
    ['connect off-link without route', () => u4().connect(sa('198.19.9.9', 1)), 101],
    ['sendto limited broadcast without SO_BROADCAST', () => u4().write(bytes('x'), { to: sa('255.255.255.255', 9) }), 13],
    ['sendto directed broadcast without SO_BROADCAST', () => u4().write(bytes('x'), { to: sa('198.18.0.255', 9) }), 13],
    ['connect broadcast without SO_BROADCAST', () => u4().connect(sa('255.255.255.255', 9)), 13],
    ['listen', () => u4().listen(5), 95],
    ['accept', () => u4().accept(), 95],
    ['read empty', () => u4().read(), 11],
    ['shutdown unconnected', () => u4().shutdown(ShutdownWrite), 107],
    ['shutdown bad how', () => u4().shutdown(4), 22],
    ['send after SHUT_WR', () => { const s = u4(); s.connect(sa('198.18.0.2', 9)); s.shutdown(ShutdownWrite); return s.write(bytes('x')); }, 32],
    ['getpeername unconnected', () => u4().remoteAddress(), 107],
    ['unknown option', () => u4().setOption('SO_NONSENSE', 1), 92],
    ['IPv6 option on v4 socket', () => u4().getOption('IPV6_V6ONLY'), 92],
    ['IP_TTL 0', () => u4().setOption('IP_TTL', 0), 22],
    ['IP_TTL 256', () => u4().setOption('IP_TTL', 256), 22],
    ['IPV6_UNICAST_HOPS -2', () => u6().setOption('IPV6_UNICAST_HOPS', -2), 22],
    ['IP_MULTICAST_TTL 256', () => u4().setOption('IP_MULTICAST_TTL', 256), 22],
    ['set SO_TYPE', () => u4().setOption('SO_TYPE', 1), 92],
    ['operation after close', () => { const s = u4(); s.close(); return s.bind(sa('0.0.0.0', 0)); }, 9],
    ['socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMPV6)', () => newDatagramEndpoint(a.t, 4, 58), 93],
    ['socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP)', () => newDatagramEndpoint(a.t, 4, 6), 93],
  ];
  for (const [name, act, errno] of cases) {
    const r = act() as { errno?: number };
    t.equal(r?.errno, errno, `${name} → errno ${errno}`);
  }
  void b;
});

t.test('largest datagrams: 65507 over IPv4, 65527 over IPv6 → sent and received whole', async (t) => {
  const { net, a, b } = world();
  const r4 = b.t.udp.newEndpoint(4);
  r4.bind(sa('0.0.0.0', 1));
  const r6 = b.t.udp.newEndpoint(6);
  r6.setOption('IPV6_V6ONLY', 1);
  r6.bind(sa('::', 1));
  const big4 = new Uint8Array(65507).fill(7);
  const big6 = new Uint8Array(65527).fill(9);
  t.equal(a.t.udp.newEndpoint(4).write(big4, { to: sa('198.18.0.2', 1) }), 65507);
  t.equal(a.t.udp.newEndpoint(6).write(big6, { to: sa('fd74:7376::2', 1) }), 65527);
  net.run();
  t.ok(Buffer.from(mustRead(r4).data).equals(big4), 'IPv4 payload intact');
  t.ok(Buffer.from(mustRead(r6).data).equals(big6), 'IPv6 payload intact');
});

t.test('autobind with the ephemeral range exhausted → EAGAIN; bind(0) → EADDRINUSE', async (t) => {
  const { a } = world({ range: { low: 50000, high: 50001 } });
  a.t.udp.newEndpoint(4).bind(sa('0.0.0.0', 0));
  a.t.udp.newEndpoint(4).bind(sa('0.0.0.0', 0));
  t.equal(a.t.udp.newEndpoint(4).write(bytes('x'), { to: sa('198.18.0.2', 1) }), Err.NoPortAvailable);
  t.equal(a.t.udp.newEndpoint(4).connect(sa('198.18.0.2', 1)), Err.NoPortAvailable);
  t.equal(a.t.udp.newEndpoint(4).bind(sa('0.0.0.0', 0)), Err.AddressInUse);
});

t.test('close → port free again, demux entry gone', async (t) => {
  const { net, a, b } = world();
  const s = b.t.udp.newEndpoint(4);
  s.bind(sa('0.0.0.0', 8080));
  s.close();
  t.equal(b.t.udp.newEndpoint(4).bind(sa('198.18.0.2', 8080)), undefined);
  t.equal(s.read(), Err.BadFileDescriptor);
  a.t.udp.newEndpoint(4).write(bytes('x'), { to: sa('198.18.0.2', 8081) });
  net.run();
  t.equal(b.t.udp.counters.noPort, 1);
});

t.test('read with maxBytes → truncated data, full size; peek leaves it queued', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  rx.bind(sa('0.0.0.0', 1));
  const msg = Uint8Array.from({ length: 100 }, (_, i) => i);
  a.t.udp.newEndpoint(4).write(msg, { to: sa('198.18.0.2', 1) });
  a.t.udp.newEndpoint(4).write(bytes('second'), { to: sa('198.18.0.2', 1) });
  net.run();
  t.equal(rx.inQueue(), 100, 'FIONREAD = size of the next datagram');
  const peek = mustRead(rx, { peek: true, maxBytes: 10 });
  t.same(peek.data, msg.subarray(0, 10));
  t.equal(peek.size, 100);
  t.equal(rx.inQueue(), 100);
  const full = mustRead(rx, { peek: true });
  t.same(full.data, msg);
  const cut = mustRead(rx, { maxBytes: 30 });
  t.same(cut.data, msg.subarray(0, 30));
  t.equal(cut.size, 100, 'MSG_TRUNC: the rest is discarded');
  t.equal(rx.inQueue(), 6);
  const zero = mustRead(rx, { maxBytes: 0 });
  t.equal(zero.data.length, 0);
  t.equal(zero.size, 6);
  t.equal(rx.inQueue(), 0);
  t.equal(rx.outQueue(), 0);
});

t.test('zero-length datagram → delivered as an empty read', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  rx.bind(sa('0.0.0.0', 1));
  t.equal(a.t.udp.newEndpoint(4).write(new Uint8Array(0), { to: sa('198.18.0.2', 1) }), 0);
  net.run();
  t.equal(rx.readiness(EventIn), EventIn);
  const r = mustRead(rx);
  t.equal(r.data.length, 0);
  t.equal(r.size, 0);
});

t.test('SO_RCVBUF full → datagrams dropped and counted as receiveBufferErrors', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  rx.bind(sa('0.0.0.0', 1));
  t.equal(rx.setOption('SO_RCVBUF', 4096), undefined);
  t.equal(rx.getOption('SO_RCVBUF'), 8192);
  const tx = a.t.udp.newEndpoint(4);
  for (let i = 0; i < 20; i++) tx.write(new Uint8Array(1000).fill(i), { to: sa('198.18.0.2', 1) });
  net.run();
  // Each datagram is charged 1000 + 768 bytes; one is refused only once more than 8192 are queued.
  let n = 0;
  while (!('errno' in rx.read())) n++;
  t.equal(n, 5);
  t.equal(b.t.udp.counters.received, 5);
  t.equal(b.t.udp.counters.receiveBufferErrors, 15);
  t.equal(b.host.stats.snapshot()['udp.receiveBufferErrors'], 15);
  // Draining makes room again.
  tx.write(bytes('again'), { to: sa('198.18.0.2', 1) });
  net.run();
  t.equal(text(mustRead(rx).data), 'again');
});

t.test('SO_RCVBUF smaller than one datagram → one datagram still fits', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  rx.bind(sa('0.0.0.0', 1));
  rx.setOption('SO_RCVBUF', 1);
  t.equal(rx.getOption('SO_RCVBUF'), 2304);
  const tx = a.t.udp.newEndpoint(4);
  tx.write(new Uint8Array(5000), { to: sa('198.18.0.2', 1) });
  tx.write(new Uint8Array(10), { to: sa('198.18.0.2', 1) });
  net.run();
  t.equal(mustRead(rx).size, 5000);
  t.equal(rx.read(), Err.WouldBlock);
  t.equal(b.t.udp.counters.receiveBufferErrors, 1);
});

t.test('broadcast: SO_BROADCAST sender → every wildcard socket on the port, not specific-address ones', async (t) => {
  const { net, a, b, c } = world();
  const wb = b.t.udp.newEndpoint(4);
  wb.bind(sa('0.0.0.0', 67));
  const sb = b.t.udp.newEndpoint(4);
  sb.setOption('SO_REUSEADDR', 1);
  wb.close();
  const wb2 = b.t.udp.newEndpoint(4);
  wb2.setOption('SO_REUSEADDR', 1);
  wb2.bind(sa('0.0.0.0', 67));
  t.equal(sb.bind(sa('198.18.0.2', 67)), undefined);
  const wc = c.t.udp.newEndpoint(6);
  wc.bind(sa('::', 67));
  const tx = a.t.udp.newEndpoint(4);
  t.equal(tx.write(bytes('x'), { to: sa('255.255.255.255', 67) }), Err.PermissionDenied);
  t.equal(tx.getOption('SO_BROADCAST'), 0);
  tx.setOption('SO_BROADCAST', true);
  t.equal(tx.getOption('SO_BROADCAST'), 1);
  t.equal(tx.write(bytes('discover'), { to: sa('255.255.255.255', 67) }), 8);
  t.equal(tx.write(bytes('directed'), { to: sa('198.18.0.255', 67) }), 8);
  net.run();
  t.equal(text(mustRead(wb2).data), 'discover');
  t.equal(text(mustRead(wb2).data), 'directed');
  t.same(mustRead(wc).from.address, ip('::ffff:198.18.0.1'));
  t.equal(sb.read(), Err.WouldBlock, 'a socket bound to a unicast address misses broadcasts');
  // Nobody on the port: ignored, never port unreachable.
  tx.write(bytes('nobody'), { to: sa('255.255.255.255', 68) });
  net.run();
  t.equal(b.t.udp.counters.ignoredMulti, 1);
  t.equal(b.t.udp.counters.noPort, 0);
  t.equal(a.host.stats.snapshot()['fake.received'] ?? 0, 0, 'no ICMP back');
  // connect to broadcast works with SO_BROADCAST
  t.equal(tx.connect(sa('255.255.255.255', 67)), undefined);
});

t.test('demux: connected beats bound address beats wildcard; unicast with SO_REUSEADDR → newest', async (t) => {
  const { net, a, b, c } = world();
  const mk = (addr: string) => {
    const s = b.t.udp.newEndpoint(4);
    s.setOption('SO_REUSEADDR', 1);
    t.equal(s.bind(sa(addr, 500)), undefined);
    return s;
  };
  const wild = mk('0.0.0.0');
  const spec = mk('198.18.0.2');
  const conn = mk('0.0.0.0');
  conn.connect(sa('198.18.0.3', 600));
  const fromC = c.t.udp.newEndpoint(4);
  fromC.bind(sa('0.0.0.0', 600));
  fromC.write(bytes('c600'), { to: sa('198.18.0.2', 500) });
  a.t.udp.newEndpoint(4).write(bytes('a'), { to: sa('198.18.0.2', 500) });
  net.run();
  t.equal(text(mustRead(conn).data), 'c600');
  t.equal(text(mustRead(spec).data), 'a');
  t.equal(wild.read(), Err.WouldBlock);
  spec.close();
  const newer = mk('0.0.0.0');
  a.t.udp.newEndpoint(4).write(bytes('b'), { to: sa('198.18.0.2', 500) });
  net.run();
  t.equal(text(mustRead(newer).data), 'b', 'ties go to the most recently bound socket');
  t.equal(wild.read(), Err.WouldBlock);
});

t.test('SO_REUSEPORT group → flows spread by hash, one flow sticks to one socket', async (t) => {
  const { net, a, b } = world();
  const group = Array.from({ length: 4 }, () => {
    const s = b.t.udp.newEndpoint(4);
    t.equal(s.setOption('SO_REUSEPORT', 1), undefined);
    t.equal(s.bind(sa('0.0.0.0', 443)), undefined);
    return s;
  });
  t.equal(group[0]!.getOption('SO_REUSEPORT'), 1);
  const plain = b.t.udp.newEndpoint(4);
  t.equal(plain.bind(sa('0.0.0.0', 443)), Err.AddressInUse, 'a socket without SO_REUSEPORT cannot join');
  const senders = Array.from({ length: 40 }, () => a.t.udp.newEndpoint(4));
  for (let round = 0; round < 3; round++) for (const s of senders) s.write(bytes('x'), { to: sa('198.18.0.2', 443) });
  net.run();
  const owner = new Map<number, number>();
  let total = 0;
  group.forEach((s, i) => {
    for (let r = s.read(); !('errno' in r); r = s.read()) {
      total++;
      const prev = owner.get(r.from!.port);
      if (prev !== undefined && prev !== i) t.fail(`flow ${r.from!.port} moved`);
      owner.set(r.from!.port, i);
    }
  });
  t.equal(total, 120);
  t.equal(owner.size, 40);
  t.equal(new Set(owner.values()).size, 4, 'every member got flows');
});

t.test('ICMP port unreachable → ECONNREFUSED on connected socket only, once', async (t) => {
  const { net, a } = world();
  const conn = a.t.udp.newEndpoint(4);
  conn.connect(sa('198.18.0.2', 9));
  const events: number[] = [];
  conn.waiter.subscribe(EventIn | EventErr, (e) => events.push(e));
  t.equal(conn.write(bytes('x')), 1);
  const loose = a.t.udp.newEndpoint(4);
  t.equal(loose.write(bytes('y'), { to: sa('198.18.0.2', 9) }), 1);
  net.run();
  t.same(events, [EventIn | EventErr]);
  t.equal(conn.readiness(EventIn | EventOut), EventIn | EventOut | EventErr);
  t.equal(conn.read(), Err.ConnectionRefused);
  t.equal(conn.read(), Err.WouldBlock, 'reported once');
  t.equal(loose.takeError(), undefined, 'unconnected socket hears nothing');
  t.equal(a.t.udp.counters.controlDelivered, 2);
  // Again through send and SO_ERROR.
  conn.write(bytes('x'));
  net.run();
  t.equal(conn.getOption('SO_ERROR'), 111);
  t.equal(conn.getOption('SO_ERROR'), 0);
  conn.write(bytes('x'));
  net.run();
  const before = net.log.length;
  t.equal(conn.write(bytes('x')), Err.ConnectionRefused, 'next send returns it instead of sending');
  t.equal(net.log.length, before);
  t.equal(conn.write(bytes('x')), 1, 'the one after sends again');
});

t.test('IP_RECVERR: every ICMP error queued with its details and pending, connected or not; draining leaves no stale error', async (t) => {
  const { net, a } = world();
  const s = a.t.udp.newEndpoint(4);
  t.equal(s.setOption('IP_RECVERR', 1), undefined);
  t.equal(s.takeQueuedError(), undefined, 'empty queue');
  t.equal(s.write(bytes('one'), { to: sa('198.18.0.2', 9) }), 3);
  t.equal(s.write(bytes('two!'), { to: sa('198.18.0.2', 10) }), 4);
  net.run();
  t.equal(s.readiness(EventErr), EventErr, 'POLLERR');
  t.equal(s.read(), Err.ConnectionRefused, 'the unconnected socket hears it as its next read');
  const first = s.takeQueuedError()!;
  t.match(first, { errno: 111, origin: 2, type: 3, code: 3, info: 0, data: 0 });
  t.same(first.offender, sa('198.18.0.2', 0), 'the ICMP sender');
  t.same(first.dest, sa('198.18.0.2', 9), 'where the datagram went');
  t.equal(first.payload!.length, 0, "its payload as quoted: none, the fake ICMPv4 quotes RFC 792's 8 bytes only");
  t.equal(s.getOption('SO_ERROR'), 111, 'the next queued error is pending again (sock_dequeue_err_skb)');
  t.match(s.takeQueuedError(), { dest: sa('198.18.0.2', 10) });
  t.equal(s.getOption('SO_ERROR'), 0, 'drained: nothing pending');
  t.equal(s.readiness(EventErr), 0);
  // A v6 socket: IPV6_RECVERR for ICMPv6, IP_RECVERR for the ICMPv4 of a v4-mapped peer.
  const s6 = a.t.udp.newEndpoint(6);
  t.equal(s6.setOption('IPV6_RECVERR', 1), undefined);
  s6.write(bytes('x'), { to: sa('fd74:7376::2', 9) });
  s6.write(bytes('y'), { to: sa('::ffff:198.18.0.2', 9) });
  net.run();
  const e6 = s6.takeQueuedError()!;
  t.match(e6, { origin: 3, type: 1, code: 4, offender: sa('fd74:7376::2', 0) });
  t.equal(text(e6.payload!), 'x', 'the payload an ICMPv6 error quotes');
  t.equal(s6.takeQueuedError(), undefined, 'the ICMPv4 one needs IP_RECVERR');
  s6.setOption('IP_RECVERR', 1);
  s6.write(bytes('y'), { to: sa('::ffff:198.18.0.2', 9) });
  net.run();
  t.match(s6.takeQueuedError(), { origin: 2, offender: sa('::ffff:198.18.0.2', 0), dest: sa('::ffff:198.18.0.2', 9) });
  // The queue is bounded by SO_RCVBUF, as sock_queue_err_skb.
  const small = a.t.udp.newEndpoint(4);
  small.setOption('IP_RECVERR', 1);
  small.setOption('SO_RCVBUF', 1);
  for (let i = 0; i < 10; i++) small.write(bytes('z'), { to: sa('198.18.0.2', 9) });
  net.run();
  let n = 0;
  while (small.takeQueuedError()) n++;
  t.ok(n >= 1 && n < 10, `${n} of 10 queued under SO_RCVBUF 2304`);
  // Without IP_RECVERR nothing is queued.
  const plain = a.t.udp.newEndpoint(4);
  plain.write(bytes('x'), { to: sa('198.18.0.2', 9) });
  net.run();
  t.equal(plain.takeQueuedError(), undefined);
  t.equal(plain.takeError(), undefined);
});

t.test('ICMPv6 port unreachable → ECONNREFUSED on a connected v6 socket', async (t) => {
  const { net, a } = world();
  const conn = a.t.udp.newEndpoint(6);
  conn.connect(sa('fd74:7376::2', 9));
  conn.write(bytes('x'));
  net.run();
  t.equal(conn.takeError(), Err.ConnectionRefused);
  // Dual-stack socket connected to a v4 peer hears ICMPv4.
  const dual = a.t.udp.newEndpoint(6);
  dual.connect(sa('::ffff:198.18.0.2', 9));
  t.same(ok(dual.localAddress()).address, ip('::ffff:198.18.0.1'));
  dual.write(bytes('x'));
  net.run();
  t.equal(dual.takeError(), Err.ConnectionRefused);
});

// [rejection, family, expected error or undefined for "ignored (soft)"]
const icmpTable: [string, 4 | 6, { kind: 'host-unreachable' | 'net-unreachable' | 'admin-prohibited' | 'time-exceeded' | 'parameter-problem'; type: number; code: number }, number | undefined][] = [
  ['host unreachable (soft)', 4, { kind: 'host-unreachable', type: 3, code: 1 }, undefined],
  ['net unreachable (soft)', 4, { kind: 'net-unreachable', type: 3, code: 0 }, undefined],
  ['net unknown', 4, { kind: 'net-unreachable', type: 3, code: 6 }, 101],
  ['host unknown', 4, { kind: 'host-unreachable', type: 3, code: 7 }, 112],
  ['net admin prohibited', 4, { kind: 'admin-prohibited', type: 3, code: 9 }, 101],
  ['host admin prohibited', 4, { kind: 'admin-prohibited', type: 3, code: 10 }, 113],
  ['communication filtered', 4, { kind: 'admin-prohibited', type: 3, code: 13 }, 113],
  ['protocol unreachable', 4, { kind: 'host-unreachable', type: 3, code: 2 }, 92],
  ['time exceeded (soft)', 4, { kind: 'time-exceeded', type: 11, code: 0 }, undefined],
  ['parameter problem', 4, { kind: 'parameter-problem', type: 12, code: 0 }, 71],
  ['v6 no route (soft)', 6, { kind: 'net-unreachable', type: 1, code: 0 }, undefined],
  ['v6 address unreachable (soft)', 6, { kind: 'host-unreachable', type: 1, code: 3 }, undefined],
  ['v6 admin prohibited', 6, { kind: 'admin-prohibited', type: 1, code: 1 }, 13],
  ['v6 reject route', 6, { kind: 'admin-prohibited', type: 1, code: 6 }, 13],
  ['v6 parameter problem', 6, { kind: 'parameter-problem', type: 4, code: 0 }, 71],
];
for (const [name, fam, rej, errno] of icmpTable) {
  t.test(`connected v${fam} socket, ICMP ${name} → ${errno ?? 'ignored'}`, async (t) => {
    const { net, a, b } = world();
    b.host.rejectWith = rej;
    const s = a.t.udp.newEndpoint(fam);
    s.connect(sa(fam === 4 ? '198.18.0.2' : 'fd74:7376::2', 9));
    s.write(bytes('x'));
    net.run();
    t.equal(s.takeError()?.errno, errno);
  });
}

t.test('readiness: EventIn on arrival, EventOut always, RdHUp/HUp after shutdown', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  rx.bind(sa('0.0.0.0', 1));
  const seen: number[] = [];
  const unsub = rx.waiter.subscribe(EventIn, (e) => seen.push(e));
  t.equal(rx.readiness(EventIn | EventOut), EventOut);
  a.t.udp.newEndpoint(4).write(bytes('x'), { to: sa('198.18.0.2', 1) });
  t.same(seen, []);
  net.run();
  t.same(seen, [EventIn]);
  t.equal(rx.readiness(EventIn | EventOut), EventIn | EventOut);
  t.equal(rx.readiness(EventOut), EventOut);
  rx.read();
  t.equal(rx.readiness(EventIn), 0);
  unsub();
  rx.connect(sa('198.18.0.1', 5));
  t.equal(rx.shutdown(ShutdownRead), undefined);
  t.equal(rx.readiness(EventIn | EventRdHUp), EventIn | EventRdHUp);
  t.equal(rx.read(), Err.ClosedForReceive);
  t.equal(rx.shutdown(ShutdownWrite), undefined);
  t.equal(rx.readiness(EventIn) & EventHUp, EventHUp, 'HUP is always reported');
});

t.test('options: defaults, Linux doubling of buffers, per-packet TTL/TOS/hop limit/traffic class', async (t) => {
  const { net, a } = world();
  const s = a.t.udp.newEndpoint(4);
  const defaults: [string, number][] = [
    ['SO_RCVBUF', 212992], ['SO_SNDBUF', 212992], ['SO_TYPE', 2], ['SO_PROTOCOL', 17], ['SO_DOMAIN', 2],
    ['SO_REUSEADDR', 0], ['SO_BROADCAST', 0], ['SO_ERROR', 0], ['SO_BINDTODEVICE', 0], ['IP_TTL', 64], ['IP_TOS', 0],
    ['IP_MULTICAST_TTL', 1], ['IP_RECVTOS', 0], ['IP_PKTINFO', 0],
  ];
  for (const [n, v] of defaults) t.equal(s.getOption(n), v, `${n} default ${v}`);
  const sets: [string, number, number][] = [
    ['SO_RCVBUF', 100000, 200000], ['SO_RCVBUF', 1 << 30, 425984], ['SO_RCVBUF', -1, 425984],
    ['SO_SNDBUF', 1000, 4608], ['SO_SNDBUF', 65536, 131072], ['IP_TTL', 5, 5], ['IP_TTL', -1, 64],
    ['IP_TOS', 0x2e, 0x2e], ['IP_MULTICAST_TTL', -1, 1], ['IP_MULTICAST_TTL', 0, 0], ['IP_RECVTOS', 1, 1], ['IP_PKTINFO', 1, 1],
  ];
  for (const [n, v, got] of sets) {
    t.equal(s.setOption(n, v), undefined, `set ${n} ${v}`);
    t.equal(s.getOption(n), got, `get ${n} → ${got}`);
  }
  const s6 = a.t.udp.newEndpoint(6);
  t.equal(s6.getOption('SO_DOMAIN'), 10);
  t.equal(s6.getOption('IPV6_UNICAST_HOPS'), 64);
  t.equal(s6.getOption('IPV6_TCLASS'), 0);
  t.equal(s6.getOption('IPV6_RECVPKTINFO'), 0);
  t.equal(s6.setOption('IPV6_RECVPKTINFO', true), undefined);
  t.equal(s6.getOption('IPV6_RECVPKTINFO'), 1);
  t.equal(s6.setOption('IPV6_UNICAST_HOPS', 7), undefined);
  t.equal(s6.setOption('IPV6_TCLASS', 0xb8), undefined);
  t.equal(s6.setOption('IP_TTL', 9), undefined, 'IP_ options apply to v4-mapped traffic');
  t.equal(s.setOption('IP_TTL', 5), undefined);
  t.equal(s.setOption('IP_TOS', 0x10), undefined);
  s.write(bytes('x'), { to: sa('198.18.0.2', 1) });
  s6.write(bytes('x'), { to: sa('fd74:7376::2', 1) });
  s6.write(bytes('x'), { to: sa('::ffff:198.18.0.2', 1) });
  s.write(bytes('x'), { to: sa('224.0.0.251', 5353) });
  t.same(net.log.map((p) => [p.ttl, p.tos]), [[5, 0x10], [7, 0xb8], [9, 0], [0, 0x10]]);
  t.equal(s.setOption('SO_REUSEADDR', 'yes'), Err.InvalidArgument);
});

t.test('received TOS, TTL and destination come with the datagram (IP_RECVTOS / IP_PKTINFO data)', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  rx.bind(sa('0.0.0.0', 1));
  const tx = a.t.udp.newEndpoint(4);
  tx.setOption('IP_TOS', 0x48);
  tx.setOption('IP_TTL', 33);
  tx.write(bytes('x'), { to: sa('198.18.0.2', 1) });
  net.run();
  const r = mustRead(rx);
  t.equal(r.tos, 0x48);
  t.equal(r.ttl, 33);
  t.equal(r.nicId, 1);
  t.same(r.localAddress, ip('198.18.0.2'));
});

t.test('SO_TIMESTAMP, SO_TIMESTAMPNS and their _NEW twins → getsockopt as Linux 6.18 answers; arrival time kept', async (t) => {
  const { net, a, b } = world();
  const s = b.t.udp.newEndpoint(4);
  const names = ['SO_TIMESTAMP', 'SO_TIMESTAMPNS', 'SO_TIMESTAMP_NEW', 'SO_TIMESTAMPNS_NEW'];
  const read = () => names.map((n) => s.getOption(n));
  t.same(read(), [0, 0, 0, 0]);
  // What the host kernel answered to the same set-then-get sequence (python3 on Linux 6.18).
  const expect: Record<string, number[]> = {
    SO_TIMESTAMP: [1, 0, 0, 0], SO_TIMESTAMPNS: [0, 1, 0, 0], SO_TIMESTAMP_NEW: [0, 0, 1, 0], SO_TIMESTAMPNS_NEW: [0, 0, 1, 1],
  };
  for (const n of names) {
    t.equal(s.setOption(n, 1), undefined);
    t.same(read(), expect[n], `after ${n} on`);
    t.equal(s.setOption('SO_TIMESTAMP', 0), undefined);
    t.same(read(), [0, 0, 0, 0], `SO_TIMESTAMP off turns ${n} off too`);
  }
  t.same(s.opts.receiveStamp, undefined);
  s.setOption('SO_TIMESTAMPNS_NEW', 1);
  t.same(s.opts.receiveStamp, { ns: true, new: true });
  for (const n of ['IP_RECVTTL', 'IP_RECVORIGDSTADDR']) {
    t.equal(s.getOption(n), 0);
    t.equal(s.setOption(n, 1), undefined);
    t.equal(s.getOption(n), 1, `${n} on`);
  }
  t.equal(s.setOption('IPV6_RECVHOPLIMIT', 1), Err.ProtocolNotAvailable, 'IPV6_* on an IPv4 socket');
  const s6 = b.t.udp.newEndpoint(6);
  for (const n of ['IPV6_RECVHOPLIMIT', 'IPV6_RECVORIGDSTADDR', 'IPV6_2292HOPLIMIT', 'IPV6_2292PKTINFO']) {
    t.equal(s6.setOption(n, 1), undefined);
    t.equal(s6.getOption(n), 1, `${n} on`);
  }
  s.bind(sa('0.0.0.0', 1));
  net.clock.advance(500);
  const tx = a.t.udp.newEndpoint(4);
  tx.write(bytes('x'), { to: sa('198.18.0.2', 1) });
  net.run();
  const r = mustRead(s);
  t.ok(r.arrival >= 500 && r.arrival <= net.clock.now(), `arrival ${r.arrival} on the stack clock`);
  t.same(r.specDst, ip('198.18.0.2'), 'ipi_spec_dst of a unicast datagram: its destination');
});

t.test('SO_BINDTODEVICE to another NIC → datagrams on NIC 1 not delivered', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  t.equal(rx.setOption('SO_BINDTODEVICE', 2), undefined);
  t.equal(rx.getOption('SO_BINDTODEVICE'), 2);
  rx.bind(sa('0.0.0.0', 1));
  const rx1 = b.t.udp.newEndpoint(4);
  rx1.setOption('SO_BINDTODEVICE', 1);
  t.equal(rx1.bind(sa('0.0.0.0', 1)), undefined, 'different devices do not conflict');
  a.t.udp.newEndpoint(4).write(bytes('x'), { to: sa('198.18.0.2', 1) });
  net.run();
  t.equal(rx.read(), Err.WouldBlock);
  t.equal(text(mustRead(rx1).data), 'x');
  t.equal(rx.write(bytes('x'), { to: sa('198.18.0.1', 1) }), Err.NetworkUnreachable, 'route lookup honours the device');
});

t.test('MSG_MORE → writes merged into one datagram to the first destination', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  rx.bind(sa('0.0.0.0', 1));
  const tx = a.t.udp.newEndpoint(4);
  t.equal(tx.write(bytes('one '), { to: sa('198.18.0.2', 1), more: true }), 4);
  t.equal(tx.outQueue(), 4);
  t.equal(tx.write(bytes('two '), { to: sa('198.18.0.3', 9), more: true }), 4);
  t.equal(net.log.length, 0, 'nothing sent while corked');
  t.equal(tx.write(bytes('three')), 5);
  t.equal(tx.outQueue(), 0);
  t.equal(net.log.length, 1);
  net.run();
  const r = mustRead(rx);
  t.equal(text(r.data), 'one two three');
  // Overflowing the corked datagram discards it.
  t.equal(tx.write(new Uint8Array(60000), { to: sa('198.18.0.2', 1), more: true }), 60000);
  t.equal(tx.write(new Uint8Array(6000)), Err.MessageTooLong);
  t.equal(tx.outQueue(), 0);
  // Ping sockets ignore MSG_MORE.
  const p = a.t.icmp4.newEndpoint();
  p.write(new Uint8Array([8, 0, 0, 0, 0, 0, 0, 1]), { to: sa('198.18.0.2', 0), more: true });
  t.equal(net.log.length, 2);
});

t.test('UDP_CORK → every write held in one datagram until the option is cleared, which sends it', async (t) => {
  const { net, a, b } = world();
  const rx = b.t.udp.newEndpoint(4);
  rx.bind(sa('0.0.0.0', 1));
  const tx = a.t.udp.newEndpoint(4);
  t.equal(tx.getOption('UDP_CORK'), 0);
  t.equal(tx.setOption('UDP_CORK', 1), undefined);
  t.equal(tx.getOption('UDP_CORK'), 1);
  t.equal(tx.write(bytes('one '), { to: sa('198.18.0.2', 1) }), 4);
  t.equal(tx.write(bytes('two')), 3, 'the destination was fixed by the first write');
  t.equal(tx.outQueue(), 7);
  t.equal(net.log.length, 0, 'nothing sent while corked');
  t.equal(tx.setOption('UDP_CORK', 0), undefined);
  t.equal(tx.outQueue(), 0);
  t.equal(net.log.length, 1, 'cleared: sent at once, as one datagram');
  net.run();
  t.equal(text(mustRead(rx).data), 'one two');
  t.equal(tx.setOption('UDP_CORK', 0), undefined, 'cleared with nothing held: nothing sent');
  t.equal(net.log.length, 1);
  t.equal(tx.setOption('UDP_CORK', 'x'), Err.InvalidArgument);
  // Ping sockets have no UDP level (Linux: ENOPROTOOPT).
  t.equal(a.t.icmp4.newEndpoint().setOption('UDP_CORK', 1), Err.ProtocolNotAvailable);
});

t.test('bind to a link-local IPv6 address without a scope id or SO_BINDTODEVICE → EINVAL (Linux __inet6_bind)', async (t) => {
  const { b } = world();
  const u = b.t.udp.newEndpoint(6);
  t.equal(u.bind({ address: ip('fe80::1'), port: 0 }), Err.InvalidArgument);
  t.equal(u.bind({ address: ip('fe80::1'), port: 0, nicId: 1 }), Err.AddressNotAvailable, 'with one: the address is looked for');
});
