import t from 'tap';
import { parseAddress } from '../../../netstack/addr.ts';
import { VirtualClock } from '../../../netstack/clock.ts';
import { Err } from '../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import { Netstack } from '../../../netstack/netstack.ts';
import { LINUX as L, encodeSockaddr } from '../../../sentry/socket/abi.ts';
import { type Accepted, SO_PEERCRED, SocketFile } from '../../../sentry/socket/file.ts';

const A = parseAddress('198.18.0.1')!;
const B = parseAddress('198.18.0.2')!;
const sa = (addr: Uint8Array, port: number) => encodeSockaddr({ family: L.AF_INET, address: addr, port });

function world() {
  const clock = new VirtualClock(0);
  const [la, lb] = ChannelEndpoint.pair({ clock });
  const mk = (link: ChannelEndpoint, addr: Uint8Array, seed: number) => {
    const ns = new Netstack({ clock, seed, dadTransmits: 0 });
    ns.stack.addAddress(ns.stack.addNic(link), { address: addr, prefixLength: 24 });
    return ns;
  };
  const a = mk(la, A, 1);
  const b = mk(lb, B, 2);
  const open = (ns: Netstack, domain: number, type: number) => {
    const f = SocketFile.open(ns, clock, domain, type, 0);
    if (typeof f === 'number') throw new Error(`socket: ${f}`);
    return f;
  };
  const pump = async (ms = 50) => {
    for (let i = 0; i < ms; i++) {
      clock.advance(1);
      await Promise.resolve();
    }
  };
  return { clock, a, b, open, pump, close: () => (a.close(), b.close()) };
}

function getInt(f: SocketFile, level: number, name: number): number {
  const v = new Uint8Array(4);
  const len = new Uint32Array([4]);
  const r = f.getsockopt(level, name, v, len);
  if (r < 0) return r;
  return new DataView(v.buffer).getInt32(0, true);
}

t.test('SO_DOMAIN, SO_PROTOCOL, SO_TYPE and SO_ACCEPTCONN come from the file', async (t) => {
  const w = world();
  t.teardown(w.close);
  const tcp6 = w.open(w.a, L.AF_INET6, L.SOCK_STREAM);
  const udp = w.open(w.a, L.AF_INET, L.SOCK_DGRAM);
  t.equal(getInt(tcp6, L.SOL_SOCKET, L.SO_DOMAIN), 10);
  t.equal(getInt(tcp6, L.SOL_SOCKET, L.SO_PROTOCOL), 6);
  t.equal(getInt(udp, L.SOL_SOCKET, L.SO_DOMAIN), 2);
  t.equal(getInt(udp, L.SOL_SOCKET, L.SO_PROTOCOL), 17);
  t.equal(getInt(udp, L.SOL_SOCKET, L.SO_TYPE), 2);
  t.equal(getInt(udp, L.SOL_SOCKET, L.SO_ACCEPTCONN), 0, 'UDP: 0, not ENOPROTOOPT');
  t.equal(getInt(tcp6, L.SOL_SOCKET, L.SO_ACCEPTCONN), 0, 'before listen');
  t.equal(tcp6.bind(encodeSockaddr({ family: L.AF_INET6, address: new Uint8Array(16), port: 80 })), 0);
  t.equal(tcp6.listen(4), 0);
  t.equal(getInt(tcp6, L.SOL_SOCKET, L.SO_ACCEPTCONN), 1, 'after listen');
});

t.test('SO_PEERCRED on TCP and UDP → pid 0, uid -1, gid -1, truncated to optlen (Linux 6.18)', async (t) => {
  const w = world();
  t.teardown(w.close);
  for (const type of [L.SOCK_STREAM, L.SOCK_DGRAM]) {
    const f = w.open(w.a, L.AF_INET, type);
    const v = new Uint8Array(32).fill(0x55);
    const len = new Uint32Array([32]);
    t.equal(f.getsockopt(L.SOL_SOCKET, SO_PEERCRED, v, len), 0);
    t.equal(len[0], 12);
    const d = new DataView(v.buffer);
    t.same([d.getInt32(0, true), d.getInt32(4, true), d.getInt32(8, true)], [0, -1, -1]);
    t.equal(v[12], 0x55, 'nothing written past the struct');
    const short = new Uint8Array(4).fill(0x55);
    const slen = new Uint32Array([4]);
    t.equal(f.getsockopt(L.SOL_SOCKET, SO_PEERCRED, short, slen), 0);
    t.same([...short, slen[0]], [0, 0, 0, 0, 4]);
  }
});

t.test('parked accept aborted → -EINTR, and the connection that arrives afterwards is still queued', async (t) => {
  const w = world();
  t.teardown(w.close);
  const lst = w.open(w.b, L.AF_INET, L.SOCK_STREAM);
  t.equal(lst.bind(sa(B, 80)), 0);
  t.equal(lst.listen(4), 0);
  const ac = new AbortController();
  const p = lst.accept(false, ac.signal);
  t.type(p, Promise, 'blocks on an empty queue');
  const subscribers = lst.ep.waiter.size;
  ac.abort();
  t.equal(await p, -4, 'EINTR once aborted');
  t.equal(lst.ep.waiter.size, subscribers - 1, 'the wait left the endpoint waiter');
  const c = w.open(w.a, L.AF_INET, L.SOCK_STREAM);
  t.equal(c.connect(sa(B, 80), true), -115);
  await w.pump();
  const got = lst.accept(true) as Accepted | number;
  t.type(got, 'object', 'the later connection was not consumed by the aborted wait');
  const peer = new Uint8Array(16);
  const plen = new Uint32Array([16]);
  t.equal((got as Accepted).file.getpeername(peer, plen), 0);
  t.equal(plen[0], 16);
  t.same([...peer.subarray(4, 8)], [...A]);
  t.equal(lst.accept(true), -11, 'queue empty again');
  const pre = new AbortController();
  pre.abort();
  t.equal(lst.accept(false, pre.signal), -4, 'an already aborted signal does not even try');
});

t.test('parked accept aborted while a connection is queued before the wake → that connection stays', async (t) => {
  const w = world();
  t.teardown(w.close);
  const lst = w.open(w.b, L.AF_INET, L.SOCK_STREAM);
  lst.bind(sa(B, 81));
  lst.listen(4);
  const ac = new AbortController();
  const p = lst.accept(false, ac.signal);
  // The abort comes first, then the handshake completes: the parked wait must not dequeue it.
  ac.abort();
  const c = w.open(w.a, L.AF_INET, L.SOCK_STREAM);
  c.connect(sa(B, 81), true);
  await w.pump();
  t.equal(await p, -4);
  t.type(lst.accept(true), 'object');
});

t.test('parked recv aborted consumes no datagram; blocking connect aborted goes on connecting', async (t) => {
  const w = world();
  t.teardown(w.close);
  const r = w.open(w.b, L.AF_INET, L.SOCK_DGRAM);
  r.bind(sa(B, 9000));
  const ac = new AbortController();
  const buf = new Uint8Array(16);
  const p = r.recvmsg({ name: null, namelen: 0, iov: [buf], flags: 0 }, 0, false, ac.signal);
  t.type(p, Promise);
  ac.abort();
  t.equal(await p, -4);
  const s = w.open(w.a, L.AF_INET, L.SOCK_DGRAM);
  t.equal(s.sendmsg({ name: sa(B, 9000), namelen: 16, iov: [new Uint8Array([7, 8, 9])], flags: 0 }, 0, false), 3);
  await w.pump();
  t.equal(r.ep.inQueue(), 3, 'the datagram is still queued');

  const lst = w.open(w.b, L.AF_INET, L.SOCK_STREAM);
  lst.bind(sa(B, 82));
  lst.listen(4);
  const c = w.open(w.a, L.AF_INET, L.SOCK_STREAM);
  const cc = new AbortController();
  const q = c.connect(sa(B, 82), false, cc.signal);
  t.type(q, Promise);
  cc.abort();
  t.equal(await q, -4);
  await w.pump();
  t.type(lst.accept(true), 'object', 'the handshake finished in the background');
});

t.test('IP_RECVERR / IPV6_RECVERR (set by glibc\'s resolver) → accepted and reported back', async (t) => {
  const w = world();
  t.teardown(w.close);
  const u4 = w.open(w.a, L.AF_INET, L.SOCK_DGRAM);
  const u6 = w.open(w.a, L.AF_INET6, L.SOCK_DGRAM);
  const one = new Uint8Array([1, 0, 0, 0]);
  t.equal(getInt(u4, L.SOL_IP, L.IP_RECVERR), 0);
  t.equal(u4.setsockopt(L.SOL_IP, L.IP_RECVERR, one), 0);
  t.equal(getInt(u4, L.SOL_IP, L.IP_RECVERR), 1);
  t.equal(u6.setsockopt(L.SOL_IPV6, L.IPV6_RECVERR, one), 0);
  t.equal(getInt(u6, L.SOL_IPV6, L.IPV6_RECVERR), 1);
  t.equal(u4.setsockopt(L.SOL_IP, L.IP_RECVERR, new Uint8Array(4)), 0);
  t.equal(getInt(u4, L.SOL_IP, L.IP_RECVERR), 0, 'and cleared');
});

t.test('blocking connect while a handshake is in progress (a restarted connect) → waits for it, 0; non-blocking → EALREADY', async (t) => {
  const w = world();
  t.teardown(w.close);
  const lst = w.open(w.b, L.AF_INET, L.SOCK_STREAM);
  lst.bind(sa(B, 83));
  lst.listen(4);
  const c = w.open(w.a, L.AF_INET, L.SOCK_STREAM);
  const ac = new AbortController();
  const first = c.connect(sa(B, 83), false, ac.signal);
  ac.abort();
  t.equal(await first, -4, 'the interrupted connect');
  t.equal(c.connect(sa(B, 83), true), -114, 'a non-blocking retry: EALREADY');
  const again = c.connect(sa(B, 83), false);
  t.type(again, Promise, 'the restarted blocking connect waits');
  await w.pump();
  t.equal(await again, 0);
  t.equal(c.connect(sa(B, 83), false), -106, 'then EISCONN');
});

t.test('SOCK_RAW IPPROTO_ICMP → echo request by sendmsg, reply with IPv4 header by recvmsg; filters by number', async (t) => {
  const w = world();
  t.teardown(w.close);
  const f = SocketFile.open(w.a, w.clock, L.AF_INET, L.SOCK_RAW, L.IPPROTO_ICMP);
  if (typeof f === 'number') throw new Error(`socket: ${f}`);
  t.equal(getInt(f, L.SOL_SOCKET, L.SO_TYPE), L.SOCK_RAW);
  t.equal(getInt(f, L.SOL_SOCKET, L.SO_PROTOCOL), L.IPPROTO_ICMP);
  // Block everything but echo reply (type 0), as a ping that sets a filter does.
  t.equal(f.setsockopt(L.SOL_RAW, L.ICMP_FILTER, new Uint8Array([0xfe, 0xff, 0xff, 0xff])), 0);
  const got = new Uint8Array(4);
  t.equal(f.getsockopt(L.SOL_RAW, L.ICMP_FILTER, got, new Uint32Array([4])), 0);
  t.same([...got], [0xfe, 0xff, 0xff, 0xff]);
  t.equal(f.setsockopt(L.SOL_IP, L.IP_HDRINCL, new Uint8Array([1, 0, 0, 0])), -95, 'IP_HDRINCL → EOPNOTSUPP');
  const req = new Uint8Array([8, 0, 0xf7, 0xfd, 0, 1, 0, 1]); // checksum of 08 00 .. 00 01 00 01
  t.equal(f.sendmsg({ name: sa(B, 0), namelen: 16, iov: [req], flags: 0 }, 0, false), 8);
  await w.pump();
  const buf = new Uint8Array(100);
  const name = new Uint8Array(16);
  const msg = { name, namelen: 0, iov: [buf], flags: 0 };
  t.equal(f.recvmsg(msg, 0, true), 28, 'IPv4 header and the 8-byte reply');
  t.equal(buf[0], 0x45);
  t.same([...buf.subarray(20, 28)], [0, 0, 0xff, 0xfd, 0, 1, 0, 1]);
  t.same(name, sa(B, 0), 'the peer, port 0');
  const v6 = SocketFile.open(w.a, w.clock, L.AF_INET6, L.SOCK_RAW, L.IPPROTO_ICMPV6);
  if (typeof v6 === 'number') throw new Error(`socket: ${v6}`);
  const filter = new Uint8Array(32).fill(0xff);
  filter[16] = 0xfd; // type 129 passes
  t.equal(v6.setsockopt(L.IPPROTO_ICMPV6, L.ICMP6_FILTER, filter), 0);
  const back = new Uint8Array(32);
  const blen = new Uint32Array([32]);
  t.equal(v6.getsockopt(L.IPPROTO_ICMPV6, L.ICMP6_FILTER, back, blen), 0);
  t.same(back, filter);
  t.equal(getInt(v6, L.SOL_RAW, L.IPV6_CHECKSUM), 2);
  t.equal(SocketFile.open(w.a, w.clock, L.AF_INET, L.SOCK_RAW, L.IPPROTO_TCP), -93, 'raw TCP → EPROTONOSUPPORT');
});

t.test('UDP multicast across a link: IP_ADD_MEMBERSHIP takes the group in, IP_DROP_MEMBERSHIP lets it go; IP_MULTICAST_LOOP decides the sender host\'s own copy', async (t) => {
  const w = world();
  t.teardown(w.close);
  const G = parseAddress('239.1.2.3')!;
  const mreq = (ifaddr: Uint8Array) => new Uint8Array([...G, ...ifaddr]);
  const rx = w.open(w.b, L.AF_INET, L.SOCK_DGRAM);
  t.equal(rx.bind(sa(new Uint8Array(4), 6000)), 0);
  const tx = w.open(w.a, L.AF_INET, L.SOCK_DGRAM);
  const local = w.open(w.a, L.AF_INET, L.SOCK_DGRAM); // a member on the sender's host
  t.equal(local.bind(sa(new Uint8Array(4), 6000)), 0);
  const send = async (text: string) => {
    t.equal(tx.ep.write(new TextEncoder().encode(text), { to: { address: G, port: 6000 } }), text.length);
    await w.pump();
  };
  const got = (f: SocketFile) => {
    const r = f.ep.read();
    return 'data' in r ? new TextDecoder().decode(r.data) : 'nothing';
  };
  // No default route here: as on Linux, a group is then reached only by the interface named for it.
  t.equal(tx.ep.write(new Uint8Array(1), { to: { address: G, port: 6000 } }), Err.NetworkUnreachable);
  t.equal(tx.setsockopt(L.IPPROTO_IP, L.IP_MULTICAST_IF, A), 0);
  await send('before');
  t.equal(got(rx), 'nothing', 'a group nobody joined is not taken in');
  t.equal(rx.setsockopt(L.IPPROTO_IP, L.IP_ADD_MEMBERSHIP, mreq(B)), 0);
  t.equal(rx.setsockopt(L.IPPROTO_IP, L.IP_ADD_MEMBERSHIP, mreq(B)), -98, 'joined twice: EADDRINUSE');
  t.equal(local.setsockopt(L.IPPROTO_IP, L.IP_ADD_MEMBERSHIP, mreq(A)), 0);
  await send('joined');
  t.equal(got(rx), 'joined', 'the member across the link gets it');
  t.equal(got(local), 'joined', 'and the member on the sender\'s host (IP_MULTICAST_LOOP 1)');
  t.equal(tx.setsockopt(L.IPPROTO_IP, L.IP_MULTICAST_LOOP, new Uint8Array([0, 0, 0, 0])), 0);
  await send('no loop');
  t.equal(got(rx), 'no loop');
  t.equal(got(local), 'nothing', 'IP_MULTICAST_LOOP 0: no copy for the sender\'s host');
  t.equal(rx.setsockopt(L.IPPROTO_IP, L.IP_DROP_MEMBERSHIP, mreq(B)), 0);
  t.equal(rx.setsockopt(L.IPPROTO_IP, L.IP_DROP_MEMBERSHIP, mreq(B)), -99, 'dropped twice: EADDRNOTAVAIL');
  await send('after');
  t.equal(got(rx), 'nothing', 'dropped: no longer taken in');
});
