import t from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import { EventIn } from '../../../../netstack/waiter.ts';
import { pseudoHeaderSum, sum16, finishChecksum } from '../../../../netstack/wire/checksum.ts';
import { newDatagramEndpoint } from '../../../../netstack/transport/udp/index.ts';
import { bytes, ip, mustRead, ok, sa, world } from '../udp/helpers.ts';

/** An echo request header (type, code 0, checksum 0, identifier 0xdead, sequence) plus data. */
function echo(type: number, seq: number, data: string, code = 0): Uint8Array {
  const d = bytes(data);
  const m = new Uint8Array(8 + d.length);
  m.set([type, code, 0, 0, 0xde, 0xad, seq >> 8, seq & 0xff]);
  m.set(d, 8);
  return m;
}

t.test('v4 ping socket → identifier stamped, checksum filled, whole reply read back', async (t) => {
  const { net, a } = world();
  const s = ok(newDatagramEndpoint(a.t, 4, 1));
  t.equal(s.protocol, 1);
  t.equal(s.getOption('SO_PROTOCOL'), 1);
  const woke: number[] = [];
  s.waiter.subscribe(EventIn, (e) => woke.push(e));
  t.equal(s.write(echo(8, 1, 'abcdefgh'), { to: sa('198.18.0.2', 0) }), 16);
  const id = ok(s.localAddress()).port;
  t.ok(id > 0, 'autobound identifier');
  const req = net.log[0]!;
  t.equal(req.protocol, 1);
  t.same([...req.payload.subarray(0, 2)], [8, 0]);
  t.same([...req.payload.subarray(4, 8)], [id >> 8, id & 0xff, 0, 1]);
  t.equal(finishChecksum(sum16(req.payload)), 0, 'ICMP checksum verifies');
  net.run();
  t.same(woke, [EventIn]);
  const r = mustRead(s);
  t.equal(r.size, 16);
  t.same([...r.data.subarray(0, 2)], [0, 0], 'echo reply header included');
  t.same([...r.data.subarray(4, 8)], [id >> 8, id & 0xff, 0, 1]);
  t.same(r.data.subarray(8), bytes('abcdefgh'));
  t.same(r.from, sa('198.18.0.2', 0));
  t.equal(a.t.icmp4.counters.received, 1);
  t.equal(a.t.icmp4.counters.sent, 1);
});

t.test('v6 ping socket → pseudo-header checksum, reply to the right socket', async (t) => {
  const { net, a } = world();
  const s1 = ok(newDatagramEndpoint(a.t, 6, 58));
  const s2 = ok(newDatagramEndpoint(a.t, 6, 58));
  t.equal(s1.bind(sa('::', 4242)), undefined);
  t.equal(s1.write(echo(128, 7, 'six'), { to: sa('fd74:7376::2', 0) }), 11);
  t.equal(s2.write(echo(128, 8, 'other'), { to: sa('fd74:7376::2', 0) }), 13);
  const req = net.log[0]!;
  t.same([...req.payload.subarray(4, 6)], [0x10, 0x92]);
  t.equal(finishChecksum(sum16(req.payload, pseudoHeaderSum(ip('fd74:7376::1'), ip('fd74:7376::2'), 58, 11))), 0);
  net.run();
  const r = mustRead(s1);
  t.same([...r.data.subarray(0, 8)], [129, 0, r.data[2], r.data[3], 0x10, 0x92, 0, 7]);
  t.equal(s1.read(), Err.WouldBlock);
  t.equal(mustRead(s2).size, 13);
});

t.test('connected ping socket → send without address; truncated read reports size', async (t) => {
  const { net, a } = world();
  const s = a.t.icmp4.newEndpoint();
  t.equal(s.connect(sa('198.18.0.2', 0)), undefined);
  t.same(ok(s.remoteAddress()), sa('198.18.0.2', 0));
  t.same(ok(s.localAddress()).address, ip('198.18.0.1'));
  s.write(echo(8, 2, 'x'.repeat(100)));
  net.run();
  const r = mustRead(s, { maxBytes: 8 });
  t.equal(r.data.length, 8);
  t.equal(r.size, 108);
});

t.test('ping socket errors → errno', async (t) => {
  const { a } = world();
  const p4 = () => a.t.icmp4.newEndpoint();
  const p6 = () => a.t.icmp6.newEndpoint();
  const to4 = { to: sa('198.18.0.2', 0) };
  const cases: [string, () => unknown, number][] = [
    ['shorter than a header', () => p4().write(new Uint8Array(7), to4), 22],
    ['echo reply type', () => p4().write(echo(0, 1, ''), to4), 22],
    ['nonzero code', () => p4().write(echo(8, 1, '', 1), to4), 22],
    ['ICMPv6 type on a v4 socket', () => p4().write(echo(128, 1, ''), to4), 22],
    ['no destination', () => p4().write(echo(8, 1, '')), 89],
    ['v4 address on a v6 ping socket', () => p6().write(echo(128, 1, ''), to4), 97],
    ['mapped address on a v6 ping socket', () => p6().write(echo(128, 1, ''), { to: sa('::ffff:198.18.0.2', 0) }), 22],
    ['limited broadcast without SO_BROADCAST', () => p4().write(echo(8, 1, ''), { to: sa('255.255.255.255', 0) }), 13],
    ['too long', () => p4().write(new Uint8Array(65516).fill(8, 0, 1), to4), 90],
    ['bind twice', () => { const s = p4(); s.bind(sa('0.0.0.0', 0)); return s.bind(sa('0.0.0.0', 0)); }, 22],
    ['identifier in use at another address', () => { p4().bind(sa('0.0.0.0', 99)); return p4().bind(sa('198.18.0.1', 99)); }, 98],
    ['listen', () => p4().listen(1), 95],
  ];
  for (const [name, act, errno] of cases) t.equal((act() as { errno?: number })?.errno, errno, `${name} → ${errno}`);
  // Identifiers are per family: a v6 ping socket may reuse a v4 one's.
  t.equal(p6().bind(sa('::', 99)), undefined);
});

t.test('explicit identifier via bind → carried on the wire', async (t) => {
  const { net, a } = world();
  const s = a.t.icmp4.newEndpoint();
  t.equal(s.bind(sa('198.18.0.1', 0x1234)), undefined);
  s.write(echo(8, 1, ''), { to: sa('198.18.0.2', 0) });
  t.same([...net.log[0]!.payload.subarray(4, 6)], [0x12, 0x34]);
});

t.test('unknown identifier or non-reply → dropped and counted', async (t) => {
  const { a } = world();
  const info = { nicId: 1, src: ip('198.18.0.2'), dst: ip('198.18.0.1'), ttl: 64, tos: 0, broadcast: false };
  const reply = new Uint8Array([0, 0, 0, 0, 0x77, 0x77, 0, 1]);
  const c = finishChecksum(sum16(reply));
  reply[2] = c >> 8;
  reply[3] = c & 0xff;
  t.equal(a.t.icmp4.deliver(info, reply), 'delivered');
  t.equal(a.t.icmp4.counters.noEndpoint, 1);
  const bad = reply.slice();
  bad[3] ^= 1;
  t.equal(a.t.icmp4.deliver(info, bad), 'malformed');
  t.equal(a.t.icmp4.deliver(info, new Uint8Array([0, 0, 0])), 'malformed');
  t.equal(a.t.icmp4.counters.malformed, 2);
});

t.test('ICMP error quoting our echo request → hard error on connected ping socket only', async (t) => {
  const { net, a, b } = world();
  b.host.rejectWith = 'host-unreachable';
  const conn = a.t.icmp4.newEndpoint();
  conn.connect(sa('198.18.0.2', 0));
  conn.write(echo(8, 1, 'x'));
  const loose = a.t.icmp4.newEndpoint();
  loose.write(echo(8, 1, 'x'), { to: sa('198.18.0.2', 0) });
  net.run();
  // Linux's ping_err makes every destination unreachable a hard EHOSTUNREACH, unlike UDP.
  t.equal(conn.read(), Err.HostUnreachable);
  t.equal(loose.takeError(), undefined);
  t.equal(a.t.icmp4.counters.controlDelivered, 2);
  const six = a.t.icmp6.newEndpoint();
  six.connect(sa('fd74:7376::2', 0));
  b.host.rejectWith = { kind: 'admin-prohibited', type: 1, code: 1 };
  six.write(echo(128, 1, 'x'));
  net.run();
  t.equal(six.takeError(), Err.PermissionDenied);
});
