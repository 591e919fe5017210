import t from 'tap';
import { parseAddress } from '../../../netstack/addr.ts';
import { VirtualClock } from '../../../netstack/clock.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import { Netstack } from '../../../netstack/netstack.ts';
import type { Endpoint } from '../../../netstack/socket.ts';
import { WaiterQueue } from '../../../netstack/waiter.ts';
import { LINUX as L, decodeSockaddr, encodeSockaddr } from '../../../sentry/socket/abi.ts';
import { SocketLayer } from '../../../sentry/socket/syscalls.ts';
import { TCP_INFO_LEN, tcpInfoField } from '../../../sentry/socket/sockopt.ts';
import { MAX_PENDING } from '../../../netstack/transport/tcp/zerocopy.ts';

const A = parseAddress('198.18.0.1')!;
const B = parseAddress('198.18.0.2')!;

function world(wallTime?: (stackMs: number) => number) {
  const clock = new VirtualClock(0);
  const [la, lb] = ChannelEndpoint.pair({ clock });
  const mk = (link: ChannelEndpoint, addr: Uint8Array, seed: number) => {
    const ns = new Netstack({ clock, seed, dadTransmits: 0 });
    const nic = ns.stack.addNic(link);
    ns.stack.addAddress(nic, { address: addr, prefixLength: 24 });
    return { ns, sys: new SocketLayer(ns, clock, wallTime) };
  };
  const a = mk(la, A, 1);
  const b = mk(lb, B, 2);
  const pump = async (ms = 50) => {
    for (let i = 0; i < ms; i++) {
      clock.advance(1);
      await Promise.resolve();
    }
  };
  return { clock, la, lb, a: a.sys, b: b.sys, nsB: b.ns, pump, close: () => (a.ns.close(), b.ns.close()) };
}

const sa = (addr: Uint8Array, port: number) => encodeSockaddr({ family: L.AF_INET, address: addr, port });

t.test('sockaddr_in and sockaddr_in6 encode and decode byte-exactly', async (t) => {
  t.same([...sa(A, 8080)], [2, 0, 0x1f, 0x90, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  const six = encodeSockaddr({ family: L.AF_INET6, address: parseAddress('fd74:7376::1')!, port: 80, scopeId: 3 });
  t.equal(six.length, 28);
  t.same([...six.subarray(0, 8)], [10, 0, 0, 80, 0, 0, 0, 0]);
  t.match(decodeSockaddr(six), { family: 10, port: 80, scopeId: 3 });
  t.equal(decodeSockaddr(new Uint8Array([2, 0, 1])), 'short');
  t.equal(decodeSockaddr(new Uint8Array(16).fill(7)), 'family');
});

t.test('socket() argument errors → Linux errno', async (t) => {
  const w = world();
  t.teardown(w.close);
  t.equal(w.a.socket(1, L.SOCK_DGRAM, 0), -97, 'AF_UNIX → EAFNOSUPPORT');
  t.equal(w.a.socket(L.AF_INET, L.SOCK_STREAM, L.IPPROTO_UDP), -93, 'stream/udp → EPROTONOSUPPORT');
  t.equal(w.a.socket(L.AF_INET, L.SOCK_DGRAM | 0x10000, 0), -22, 'unknown type flag → EINVAL');
  const fd = w.a.socket(L.AF_INET, L.SOCK_DGRAM | L.SOCK_NONBLOCK | L.SOCK_CLOEXEC, 0);
  t.equal(fd, 3, 'lowest free fd from 3');
  t.equal(w.a.fcntl(fd, L.F_GETFL, 0), L.O_RDWR | L.O_NONBLOCK);
  t.equal(w.a.fcntl(fd, L.F_GETFD, 0), L.FD_CLOEXEC);
  t.equal(w.a.close(fd), 0);
  t.equal(w.a.close(fd), -9, 'second close → EBADF');
  t.equal(w.a.bind(42, sa(A, 1)), -9);
});

t.test('UDP: connected send → recvfrom with source, MSG_PEEK, MSG_TRUNC, FIONREAD, EAGAIN', async (t) => {
  const w = world();
  t.teardown(w.close);
  const s = w.a.socket(L.AF_INET, L.SOCK_DGRAM, 0);
  const r = w.b.socket(L.AF_INET, L.SOCK_DGRAM | L.SOCK_NONBLOCK, 0);
  t.equal(w.b.bind(r, sa(B, 9000)), 0);
  t.equal(w.a.bind(s, sa(A, 7000)), 0);
  t.equal(await w.a.connect(s, sa(B, 9000)), 0);
  t.equal(w.a.sendto(s, new Uint8Array([1, 2, 3, 4, 5]), 0, null), 5);
  await w.pump();
  const n = new Int32Array(1);
  t.equal(w.b.ioctl(r, L.FIONREAD, n), 0);
  t.equal(n[0], 5);
  const buf = new Uint8Array(3);
  t.equal(await w.b.recvfrom(r, buf, L.MSG_PEEK, null, null), 3);
  const from = new Uint8Array(16);
  const flen = new Uint32Array([16]);
  t.equal(await w.b.recvfrom(r, buf, L.MSG_TRUNC, from, flen), 5, 'MSG_TRUNC returns the real length');
  t.same([...buf], [1, 2, 3]);
  t.equal(flen[0], 16);
  t.same([...from], [...sa(A, 7000)]);
  t.equal(w.b.read(r, buf), -11, 'empty non-blocking → EAGAIN');
  const name = new Uint8Array(16);
  const nlen = new Uint32Array([16]);
  t.equal(w.a.getpeername(s, name, nlen), 0);
  t.same([...name], [...sa(B, 9000)]);
  t.equal(w.a.getsockname(s, name, nlen), 0);
  t.same([...name], [...sa(A, 7000)]);
});

t.test('UDP: blocking recv waits for the datagram; SO_RCVTIMEO expires with EAGAIN', async (t) => {
  const w = world();
  t.teardown(w.close);
  const r = w.b.socket(L.AF_INET, L.SOCK_DGRAM, 0);
  w.b.bind(r, sa(B, 9000));
  const s = w.a.socket(L.AF_INET, L.SOCK_DGRAM, 0);
  const buf = new Uint8Array(64);
  const p = w.b.read(r, buf);
  t.type(p, Promise, 'blocks');
  t.equal(w.a.sendto(s, new Uint8Array(7), 0, sa(B, 9000)), 7);
  await w.pump();
  t.equal(await p, 7);
  const tv = new Uint8Array(16);
  new DataView(tv.buffer).setBigInt64(8, 200_000n, true); // 0.2 s
  t.equal(w.b.setsockopt(r, L.SOL_SOCKET, L.SO_RCVTIMEO, tv), 0);
  const out = new Uint8Array(16);
  const olen = new Uint32Array([16]);
  t.equal(w.b.getsockopt(r, L.SOL_SOCKET, L.SO_RCVTIMEO, out, olen), 0);
  t.same([...out], [...tv]);
  const q = w.b.read(r, buf) as Promise<number>;
  let done: number | undefined;
  q.then((v) => (done = v));
  await w.pump(150);
  t.equal(done, undefined, 'still waiting at 150 ms');
  await w.pump(100);
  t.equal(done, -11, 'EAGAIN after 200 ms');
});

t.test('poll and epoll report readability; MSG_DONTWAIT on a blocking socket', async (t) => {
  const w = world();
  t.teardown(w.close);
  const r = w.b.socket(L.AF_INET, L.SOCK_DGRAM, 0);
  w.b.bind(r, sa(B, 9000));
  t.equal(w.b.recvfrom(r, new Uint8Array(4), L.MSG_DONTWAIT, null, null), -11);
  const fds = [{ fd: r, events: L.POLLIN | L.POLLOUT, revents: 0 }];
  t.equal(w.b.poll(fds, 0), 1);
  t.equal(fds[0]!.revents, L.POLLOUT);
  const ep = w.b.epollCreate(0);
  t.equal(w.b.epollCtl(ep, L.EPOLL_CTL_ADD, r, { events: L.EPOLLIN, data: 77 }), 0);
  t.equal(w.b.epollCtl(ep, L.EPOLL_CTL_ADD, r, { events: L.EPOLLIN, data: 77 }), -17, 'EEXIST');
  const evs: { events: number; data: number }[] = [];
  const waiting = w.b.epollWait(ep, evs, 4, -1);
  t.type(waiting, Promise);
  const s = w.a.socket(L.AF_INET, L.SOCK_DGRAM, 0);
  w.a.sendto(s, new Uint8Array(3), 0, sa(B, 9000));
  await w.pump();
  t.equal(await waiting, 1);
  t.same(evs, [{ events: L.EPOLLIN, data: 77 }]);
  t.equal(w.b.poll(fds, 0), 1);
  t.equal(fds[0]!.revents, L.POLLIN | L.POLLOUT);
});

t.test('EPOLLET: reported once per wake-up (each new datagram), not while merely readable; own reads wake nothing', async (t) => {
  const w = world();
  t.teardown(w.close);
  const r = w.b.socket(L.AF_INET, L.SOCK_DGRAM | L.SOCK_NONBLOCK, 0);
  w.b.bind(r, sa(B, 9000));
  const ep = w.b.epollCreate(0);
  t.equal(w.b.epollCtl(ep, L.EPOLL_CTL_ADD, r, { events: L.EPOLLIN | L.EPOLLOUT | L.EPOLLET, data: 5 }), 0);
  const evs: { events: number; data: number }[] = [];
  // A call of the program's own masks the wake-ups it causes until its turn ends; datagrams come in later turns.
  await Promise.resolve();
  t.equal(w.b.epollWait(ep, evs, 4, 0), 1, 'ready when added');
  t.same(evs, [{ events: L.EPOLLOUT, data: 5 }]);
  t.equal(w.b.epollWait(ep, evs, 4, 0), 0, 'still writable, but no new wake-up');
  const s = w.a.socket(L.AF_INET, L.SOCK_DGRAM, 0);
  for (const n of [1, 2]) {
    w.a.sendto(s, new Uint8Array(3), 0, sa(B, 9000));
    await w.pump();
    t.equal(w.b.epollWait(ep, evs, 4, 0), 1, `datagram ${n}: a wake-up, though the first is still unread`);
    t.same(evs, [{ events: L.EPOLLIN | L.EPOLLOUT, data: 5 }]);
    t.equal(w.b.epollWait(ep, evs, 4, 0), 0);
  }
  t.equal(w.b.recvfrom(r, new Uint8Array(4), 0, null, null), 3);
  await w.pump();
  t.equal(w.b.epollWait(ep, evs, 4, 0), 0, 'the program\'s own read is no wake-up');
  t.equal(w.b.epollCtl(ep, L.EPOLL_CTL_MOD, r, { events: L.EPOLLIN | L.EPOLLET, data: 6 }), 0);
  t.equal(w.b.epollWait(ep, evs, 4, 0), 1, 'MOD re-arms: one datagram is still queued');
  t.equal(w.b.epollCtl(ep, L.EPOLL_CTL_DEL, r, null), 0);
  t.equal(w.b.close(ep), 0);
});

t.test('options by number: unknown → ENOPROTOOPT, SO_TYPE/SO_DOMAIN, short int → EINVAL', async (t) => {
  const w = world();
  t.teardown(w.close);
  const s = w.a.socket(L.AF_INET, L.SOCK_STREAM, 0);
  const v = new Uint8Array(4);
  const len = new Uint32Array([4]);
  t.equal(w.a.getsockopt(s, L.SOL_SOCKET, 999, v, len), -92);
  t.equal(w.a.getsockopt(s, L.SOL_SOCKET, L.SO_TYPE, v, len), 0);
  t.same([...v], [1, 0, 0, 0]);
  t.equal(w.a.getsockopt(s, L.SOL_SOCKET, L.SO_DOMAIN, v, len), 0);
  t.same([...v], [2, 0, 0, 0]);
  t.equal(w.a.setsockopt(s, L.SOL_TCP, L.TCP_NODELAY, new Uint8Array(2)), -22);
  t.equal(w.a.setsockopt(s, L.SOL_TCP, L.TCP_NODELAY, new Uint8Array([1, 0, 0, 0])), 0);
  len[0] = 4;
  t.equal(w.a.getsockopt(s, L.IPPROTO_TCP, L.TCP_NODELAY, v, len), 0);
  t.same([...v], [1, 0, 0, 0]);
});

t.test('TCP: non-blocking connect → EINPROGRESS → EALREADY → established; accept, data, TCP_INFO, shutdown', async (t) => {
  const w = world();
  t.teardown(w.close);
  const l = w.b.socket(L.AF_INET, L.SOCK_STREAM, 0);
  t.equal(w.b.bind(l, sa(B, 80)), 0);
  t.equal(w.b.listen(l, 4), 0);
  const c = w.a.socket(L.AF_INET, L.SOCK_STREAM | L.SOCK_NONBLOCK, 0);
  t.equal(w.a.connect(c, sa(B, 80)), -115, 'EINPROGRESS');
  t.equal(w.a.connect(c, sa(B, 80)), -114, 'EALREADY while the handshake runs');
  const acc = w.b.accept4(l, null, null, 0);
  t.type(acc, Promise, 'blocking accept waits');
  await w.pump();
  const afd = await acc;
  t.ok(afd > l, `accepted fd ${afd}`);
  const e = new Uint8Array(4);
  t.equal(w.a.getsockopt(c, L.SOL_SOCKET, L.SO_ERROR, e, new Uint32Array([4])), 0);
  t.same([...e], [0, 0, 0, 0]);
  t.equal(w.a.connect(c, sa(B, 80)), -106, 'EISCONN');
  t.equal(await w.a.write(c, new Uint8Array([9, 8, 7])), 3);
  await w.pump();
  const buf = new Uint8Array(10);
  t.equal(await w.b.read(afd, buf), 3);
  t.same([...buf.subarray(0, 3)], [9, 8, 7]);
  const info = new Uint8Array(TCP_INFO_LEN);
  const ilen = new Uint32Array([TCP_INFO_LEN]);
  t.equal(w.b.getsockopt(afd, L.SOL_TCP, L.TCP_INFO, info, ilen), 0);
  t.equal(ilen[0], TCP_INFO_LEN);
  t.equal(tcpInfoField(info, 'tcpi_state'), L.TCP_ESTABLISHED);
  t.equal(w.a.shutdown(c, L.SHUT_WR), 0);
  await w.pump();
  t.equal(await w.b.read(afd, buf), 0, 'EOF after the peer shut down writing');
  t.equal(w.a.shutdown(c, 7), -22);
});

t.test('TCP: connect to a closed port → blocking connect returns ECONNREFUSED', async (t) => {
  const w = world();
  t.teardown(w.close);
  const c = w.a.socket(L.AF_INET, L.SOCK_STREAM, 0);
  const p = w.a.connect(c, sa(B, 81));
  t.type(p, Promise);
  await w.pump();
  t.equal(await p, -111);
  // Linux resets the socket when the connect it waited for fails: a second connect is a new attempt.
  const again = w.a.connect(c, sa(B, 81));
  t.type(again, Promise, 'a new handshake, not ECONNABORTED at once');
  await w.pump();
  t.equal(await again, -111);
});

t.test('TCP: non-blocking connect to a closed port → EINPROGRESS, then SO_ERROR ECONNREFUSED once', async (t) => {
  const w = world();
  t.teardown(w.close);
  const c = w.a.socket(L.AF_INET, L.SOCK_STREAM, 0);
  const on = new Int32Array([1]);
  t.equal(w.a.ioctl(c, L.FIONBIO, on), 0);
  t.equal(w.a.fcntl(c, L.F_GETFL, 0), L.O_RDWR | L.O_NONBLOCK, 'FIONBIO sets O_NONBLOCK');
  t.equal(w.a.connect(c, sa(B, 81)), -115);
  await w.pump();
  const fds = [{ fd: c, events: L.POLLOUT, revents: 0 }];
  t.equal(w.a.poll(fds, 0), 1);
  t.ok(fds[0]!.revents & (L.POLLERR | L.POLLHUP), 'error reported by poll');
  const e = new Uint8Array(4);
  const len = new Uint32Array([4]);
  t.equal(w.a.getsockopt(c, L.SOL_SOCKET, L.SO_ERROR, e, len), 0);
  t.equal(new DataView(e.buffer).getInt32(0, true), 111);
  t.equal(w.a.getsockopt(c, L.SOL_SOCKET, L.SO_ERROR, e, len), 0);
  t.equal(new DataView(e.buffer).getInt32(0, true), 0, 'cleared after reading');
});

t.test('TCP: accept4 non-blocking → EAGAIN; writev/readv/MSG_WAITALL/SIOCOUTQ/SO_LINGER', async (t) => {
  const w = world();
  t.teardown(w.close);
  const l = w.b.socket(L.AF_INET, L.SOCK_STREAM | L.SOCK_NONBLOCK, 0);
  w.b.bind(l, sa(B, 80));
  w.b.listen(l, 4);
  t.equal(w.b.accept4(l, null, null, 0), -11);
  const c = w.a.socket(L.AF_INET, L.SOCK_STREAM, 0);
  const p = w.a.connect(c, sa(B, 80));
  await w.pump();
  t.equal(await p, 0, 'blocking connect completes');
  const peer = new Uint8Array(16);
  const plen = new Uint32Array([16]);
  const afd = (await w.b.accept4(l, peer, plen, L.SOCK_NONBLOCK)) as number;
  t.ok(afd > 0);
  t.equal(plen[0], 16);
  t.same([...peer.subarray(0, 2), ...peer.subarray(4, 8)], [2, 0, ...A]);
  t.equal(w.b.fcntl(afd, L.F_GETFL, 0), L.O_RDWR | L.O_NONBLOCK, 'accept4 SOCK_NONBLOCK');
  t.equal(await w.a.writev(c, [new Uint8Array([1, 2]), new Uint8Array([3, 4, 5])]), 5);
  const out = new Int32Array(1);
  t.equal(w.a.ioctl(c, L.SIOCOUTQ, out), 0);
  t.equal(out[0], 5, 'unacknowledged bytes');
  // MSG_WAITALL on a blocking fd waits until all 8 bytes are there.
  const blocking = w.b.fcntl(afd, L.F_SETFL, 0);
  t.equal(blocking, 0);
  const buf = new Uint8Array(8);
  const all = w.b.recvfrom(afd, buf, L.MSG_WAITALL, null, null);
  t.type(all, Promise);
  await w.pump();
  t.equal(await w.a.write(c, new Uint8Array([6, 7, 8])), 3);
  await w.pump();
  t.equal(await all, 8);
  t.same([...buf], [1, 2, 3, 4, 5, 6, 7, 8]);
  t.equal(await w.a.write(c, new Uint8Array([9, 10, 11])), 3);
  await w.pump();
  const x = new Uint8Array(1);
  const y = new Uint8Array(4);
  t.equal(await w.b.readv(afd, [x, y]), 3);
  t.same([x[0], ...y.subarray(0, 2)], [9, 10, 11]);
  const lg = new Uint8Array(8);
  new DataView(lg.buffer).setInt32(0, 1, true);
  new DataView(lg.buffer).setInt32(4, 5, true);
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lg), 0);
  const got = new Uint8Array(8);
  const glen = new Uint32Array([8]);
  t.equal(w.a.getsockopt(c, L.SOL_SOCKET, L.SO_LINGER, got, glen), 0);
  t.same([...got], [1, 0, 0, 0, 5, 0, 0, 0]);
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, new Uint8Array(4)), -22, 'short linger → EINVAL');
});

t.test('UDP: sendmsg/recvmsg with msg_name and MSG_TRUNC in msg_flags; IPv6 socket names', async (t) => {
  const w = world();
  t.teardown(w.close);
  const r = w.b.socket(L.AF_INET, L.SOCK_DGRAM | L.SOCK_NONBLOCK, 0);
  w.b.bind(r, sa(B, 9000));
  const s = w.a.socket(L.AF_INET, L.SOCK_DGRAM, 0);
  t.equal(await w.a.sendmsg(s, { name: sa(B, 9000), namelen: 16, iov: [new Uint8Array([1]), new Uint8Array([2, 3, 4])], flags: 0 }, 0), 4);
  await w.pump();
  const msg = { name: new Uint8Array(16), namelen: 16, iov: [new Uint8Array(2)], flags: 0 };
  t.equal(await w.b.recvmsg(r, msg, 0), 2);
  t.equal(msg.flags & L.MSG_TRUNC, L.MSG_TRUNC);
  t.equal(msg.namelen, 16);
  t.same([...msg.iov[0]!], [1, 2]);
  const six = w.a.socket(L.AF_INET6, L.SOCK_DGRAM, 0);
  const any6 = encodeSockaddr({ family: L.AF_INET6, address: new Uint8Array(16), port: 5353 });
  t.equal(w.a.bind(six, any6), 0);
  const name = new Uint8Array(28);
  const nlen = new Uint32Array([28]);
  t.equal(w.a.getsockname(six, name, nlen), 0);
  t.equal(nlen[0], 28);
  t.same([...name], [...any6]);
  t.equal(w.a.bind(s, encodeSockaddr({ family: L.AF_INET6, address: new Uint8Array(16), port: 1 })), -97, 'v6 address on a v4 socket');
  t.equal(w.a.bind(s, new Uint8Array([2, 0, 0, 1])), -22, 'short sockaddr_in');
});

t.test('UDP recvmsg control messages: SO_TIMESTAMPNS, IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR as the sender set them; short buffer → MSG_CTRUNC', async (t) => {
  const w = world((ms) => 1_700_000_000_000 + ms);
  t.teardown(w.close);
  const int = (v: number) => new Uint8Array(new Int32Array([v]).buffer);
  const r = w.b.socket(L.AF_INET, L.SOCK_DGRAM | L.SOCK_NONBLOCK, 0);
  t.equal(w.b.bind(r, sa(B, 9000)), 0);
  for (const [level, name] of [[L.SOL_IP, L.IP_PKTINFO], [L.SOL_IP, L.IP_RECVTTL], [L.SOL_IP, L.IP_RECVTOS], [L.SOL_IP, L.IP_RECVORIGDSTADDR], [L.SOL_SOCKET, L.SO_TIMESTAMPNS]]) {
    t.equal(w.b.setsockopt(r, level!, name!, int(1)), 0, `option ${level}/${name}`);
  }
  const val = new Uint8Array(4);
  const len = new Uint32Array([4]);
  t.equal(w.b.getsockopt(r, L.SOL_SOCKET, L.SO_TIMESTAMPNS, val, len), 0);
  t.equal(val[0], 1, 'SO_TIMESTAMPNS reads back on');
  const s = w.a.socket(L.AF_INET, L.SOCK_DGRAM, 0);
  t.equal(w.a.setsockopt(s, L.SOL_IP, L.IP_TTL, int(37)), 0);
  t.equal(w.a.setsockopt(s, L.SOL_IP, L.IP_TOS, int(0x28)), 0);
  w.clock.advance(1234.5);
  t.equal(w.a.sendto(s, new Uint8Array([1, 2, 3]), 0, sa(B, 9000)), 3);
  await w.pump(5);
  const msg = { name: null, namelen: 0, iov: [new Uint8Array(8)], flags: 0, control: new Uint8Array(160), controllen: 0 };
  t.equal(w.b.recvmsg(r, msg, 0), 3);
  t.equal(msg.flags, 0);
  t.equal(msg.controllen, 32 + 32 + 24 + 24 + 32, 'five messages, each CMSG_SPACE');
  const v = new DataView(msg.control.buffer);
  const seen: number[][] = [];
  for (let at = 0; at < msg.controllen; at += (Number(v.getBigUint64(at, true)) + 7) & ~7) {
    seen.push([Number(v.getBigUint64(at, true)), v.getInt32(at + 8, true), v.getInt32(at + 12, true)]);
  }
  t.same(seen, [[32, L.SOL_SOCKET, L.SCM_TIMESTAMPNS], [28, L.SOL_IP, L.IP_PKTINFO], [20, L.SOL_IP, L.IP_TTL], [17, L.SOL_IP, L.IP_TOS], [32, L.SOL_IP, L.IP_ORIGDSTADDR]]);
  const sec = Number(v.getBigInt64(16, true));
  const nsec = Number(v.getBigInt64(24, true));
  t.ok(sec * 1000 + nsec / 1e6 >= 1_700_000_000_000 + 1234.5, 'arrival no earlier than the send');
  t.ok(sec * 1000 + nsec / 1e6 <= 1_700_000_000_000 + w.clock.now(), 'nor later than the read');
  t.same([...msg.control.subarray(32 + 16 + 4, 32 + 16 + 12)], [...B, ...B], 'ipi_spec_dst and ipi_addr');
  t.equal(v.getInt32(64 + 16, true), 37, 'IP_TTL as sent');
  t.equal(msg.control[88 + 16], 0x28, 'IP_TOS as sent');
  t.same([...msg.control.subarray(112 + 16, 112 + 24)], [2, 0, 0x23, 0x28, ...B], 'IP_ORIGDSTADDR: our address and port 9000');
  t.equal(w.a.sendto(s, new Uint8Array([4]), 0, sa(B, 9000)), 1);
  await w.pump(5);
  const short = { name: null, namelen: 0, iov: [new Uint8Array(8)], flags: 0, control: new Uint8Array(56), controllen: 0 };
  t.equal(w.b.recvmsg(r, short, 0), 1);
  t.equal(short.flags, L.MSG_CTRUNC);
  t.equal(short.controllen, 56, 'the timestamp and the cut IP_PKTINFO');
  t.equal(new DataView(short.control.buffer).getBigUint64(32, true), 24n, 'cmsg_len of the cut one: the room it had');
  t.equal(w.b.setsockopt(r, L.SOL_SOCKET, L.SO_TIMESTAMPNS, int(0)), 0);
  for (const name of [L.IP_PKTINFO, L.IP_RECVTTL, L.IP_RECVTOS, L.IP_RECVORIGDSTADDR]) w.b.setsockopt(r, L.SOL_IP, name, int(0));
  t.equal(w.a.sendto(s, new Uint8Array([5]), 0, sa(B, 9000)), 1);
  await w.pump(5);
  const none = { name: null, namelen: 0, iov: [new Uint8Array(8)], flags: 0, control: new Uint8Array(64), controllen: 0 };
  t.equal(w.b.recvmsg(r, none, 0), 1);
  t.equal(none.controllen, 0, 'options off: no control messages');
});

t.test('TCP dual stack: an AF_INET6 socket connects to ::ffff:198.18.0.2; names come back v4-mapped (sockaddr_in6)', async (t) => {
  const w = world();
  t.teardown(w.close);
  const l = w.b.socket(L.AF_INET6, L.SOCK_STREAM, 0);
  t.equal(w.b.bind(l, encodeSockaddr({ family: L.AF_INET6, address: new Uint8Array(16), port: 80 })), 0);
  t.equal(w.b.listen(l, 1), 0);
  const c = w.a.socket(L.AF_INET6, L.SOCK_STREAM | L.SOCK_NONBLOCK, 0);
  const mapped = (v4: Uint8Array) => new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4]);
  t.equal(w.a.connect(c, encodeSockaddr({ family: L.AF_INET6, address: mapped(B), port: 80 })), -115);
  await w.pump();
  const peer = new Uint8Array(28);
  const plen = new Uint32Array([28]);
  const fd = (await w.b.accept4(l, peer, plen, 0)) as number;
  t.ok(fd > 0);
  t.equal(plen[0], 28);
  t.same([...peer.subarray(0, 2)], [10, 0], 'AF_INET6');
  t.same([...peer.subarray(8, 24)], [...mapped(A)]);
  const name = new Uint8Array(28);
  const nlen = new Uint32Array([28]);
  t.equal(w.a.getpeername(c, name, nlen), 0);
  t.same([...name.subarray(2, 4)], [0, 80]);
  t.same([...name.subarray(8, 24)], [...mapped(B)]);
});

// ---- SO_LINGER and close() (socket(7); Linux inet_release → tcp_close → sk_stream_wait_close) ----

const lingerOpt = (onoff: number, secs: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setInt32(0, onoff, true);
  new DataView(b.buffer).setInt32(4, secs, true);
  return b;
};

/** A connected pair: `c` on A (flags as given), `s` the accepted socket on B. */
async function connected(w: ReturnType<typeof world>, typeFlags = 0) {
  const l = w.b.socket(L.AF_INET, L.SOCK_STREAM, 0);
  w.b.bind(l, sa(B, 80));
  w.b.listen(l, 4);
  const c = w.a.socket(L.AF_INET, L.SOCK_STREAM | typeFlags, 0);
  const p = w.a.connect(c, sa(B, 80));
  await w.pump();
  const r = await p;
  if (r !== 0 && r !== -115) throw new Error(`connect → ${r}`);
  await w.pump();
  const s = (await w.b.accept4(l, null, null, L.SOCK_NONBLOCK)) as number;
  if (s < 0) throw new Error(`accept → ${s}`);
  return { c, s, l };
}

/** The TCP state of an endpoint held past its fd's close. */
const tcpState = (ep: { getOption(n: string): unknown }) => (ep.getOption('TCP_INFO') as { tcpi_state: number }).tcpi_state;

/** Advances the clock 1 ms at a time, letting every promise reaction run after each step. */
async function stepMs(w: ReturnType<typeof world>, ms: number, each?: () => boolean | void) {
  for (let i = 0; i < ms; i++) {
    w.clock.advance(1);
    await new Promise((r) => setImmediate(r));
    if (each?.()) return;
  }
}

for (const [name, flags] of [['blocking', 0], ['O_NONBLOCK', L.SOCK_NONBLOCK]] as const) {
  t.test(`FIN-WAIT-1 (${name}, SO_LINGER 5 s) close with data unacknowledged → waits; peer ACKs the FIN → 0 at that moment`, async (t) => {
    const w = world();
    t.teardown(w.close);
    const { c, s } = await connected(w, flags);
    t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, 5)), 0);
    const ep = w.a.endpoint(c)!;
    w.la.disconnect(); // the wire is cut: nothing from A arrives, nothing from B comes back
    const data = new Uint8Array(1000).map((_, i) => i & 0xff);
    t.equal(await w.a.write(c, data), 1000);
    const p = w.a.close(c);
    t.type(p, Promise, 'close blocks while the FIN is unacknowledged');
    let done: number | undefined;
    void (p as Promise<number>).then((v) => (done = v));
    t.equal(w.a.fcntl(c, L.F_GETFL, 0), -9, 'the fd is gone at once');
    const again = w.a.socket(L.AF_INET, L.SOCK_DGRAM, 0);
    t.equal(again, c, 'and its number is reused while close() waits');
    t.equal(w.a.close(again), 0);
    await stepMs(w, 800);
    t.equal(done, undefined, 'still waiting at 0.8 s');
    t.equal(tcpState(ep), L.TCP_FIN_WAIT1);
    t.equal(ep.outQueue(), 1000, 'data still queued');
    w.la.connect(w.lb);
    // Watch each millisecond: close() must resolve in the same step the state leaves FIN-WAIT-1.
    const seen: { state: number; done: number | undefined }[] = [];
    await stepMs(w, 4000, () => {
      seen.push({ state: tcpState(ep), done });
      return done !== undefined;
    });
    t.equal(done, 0, 'close() → 0 before the linger time');
    const at = seen.findIndex((x) => x.state !== L.TCP_FIN_WAIT1);
    t.ok(at >= 0, 'the FIN was acknowledged');
    t.equal(seen.length - 1, at, 'resolved in the step the FIN was acknowledged, not later');
    t.equal(seen[at]!.state, L.TCP_FIN_WAIT2);
    t.ok(w.clock.now() < 5000, `resolved at ${w.clock.now()} ms, before the 5 s linger ran out`);
    t.equal(ep.outQueue(), 0);
    const buf = new Uint8Array(2000);
    t.equal(await w.b.read(s, buf), 1000, 'the peer got all the data');
    t.same(buf.subarray(0, 1000), data);
    t.equal(await w.b.read(s, buf), 0, 'and then the FIN');
  });

  t.test(`FIN-WAIT-1 (${name}, SO_LINGER 2 s) silent peer → close() 0 after 2 s, not before; closing goes on`, async (t) => {
    const w = world();
    t.teardown(w.close);
    const { c, s } = await connected(w, flags);
    t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, 2)), 0);
    const ep = w.a.endpoint(c)!;
    w.la.disconnect();
    const start = w.clock.now();
    const p = w.a.close(c);
    t.type(p, Promise);
    let done: number | undefined;
    void (p as Promise<number>).then((v) => (done = v));
    await stepMs(w, 1999);
    t.equal(done, undefined, 'still waiting 1 ms before the linger time');
    await stepMs(w, 1);
    t.equal(done, 0, 'close() → 0 when the linger time is up');
    t.equal(w.clock.now() - start, 2000);
    t.equal(tcpState(ep), L.TCP_FIN_WAIT1, 'the FIN is still unacknowledged');
    w.la.connect(w.lb);
    await stepMs(w, 8000, () => tcpState(ep) !== L.TCP_FIN_WAIT1);
    t.equal(tcpState(ep), L.TCP_FIN_WAIT2, 'the orphan finished its close in the background');
    t.equal(await w.b.read(s, new Uint8Array(8)), 0, 'the peer saw the FIN');
  });
}

t.test('CLOSE-WAIT (SO_LINGER 3 s) close → LAST-ACK waits; peer ACKs → 0', async (t) => {
  const w = world();
  t.teardown(w.close);
  const { c, s } = await connected(w);
  t.equal(w.b.shutdown(s, L.SHUT_WR), 0);
  await w.pump();
  t.equal(await w.a.read(c, new Uint8Array(4)), 0, 'A in CLOSE-WAIT');
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, 3)), 0);
  const ep = w.a.endpoint(c)!;
  w.la.disconnect();
  const p = w.a.close(c);
  t.type(p, Promise);
  t.equal(tcpState(ep), L.TCP_LAST_ACK);
  let done: number | undefined;
  void (p as Promise<number>).then((v) => (done = v));
  await stepMs(w, 500);
  t.equal(done, undefined);
  w.la.connect(w.lb);
  await stepMs(w, 2400, () => done !== undefined);
  t.equal(done, 0);
  t.equal(tcpState(ep), L.TCP_CLOSE, 'LAST-ACK → CLOSED');
  t.ok(w.clock.now() < 3000, 'before the linger time');
});

t.test('ESTABLISHED close with SO_LINGER 0 → 0 at once and a RST (peer reads ECONNRESET)', async (t) => {
  const w = world();
  t.teardown(w.close);
  const { c, s } = await connected(w);
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, 0)), 0);
  const ep = w.a.endpoint(c)!;
  t.equal(w.a.close(c), 0, 'a number, not a Promise');
  t.equal(tcpState(ep), L.TCP_CLOSE);
  await w.pump();
  t.equal(await w.b.read(s, new Uint8Array(4)), -104);
});

t.test('ESTABLISHED close with SO_LINGER off (or on with 0 s off) → 0 at once, FIN sent', async (t) => {
  for (const opt of [null, lingerOpt(0, 5)]) {
    const w = world();
    const { c, s } = await connected(w);
    if (opt) t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, opt), 0);
    const ep = w.a.endpoint(c)!;
    w.la.disconnect();
    t.equal(w.a.close(c), 0, 'a number, not a Promise, though the FIN is unacknowledged');
    t.equal(tcpState(ep), L.TCP_FIN_WAIT1);
    w.la.connect(w.lb);
    await stepMs(w, 4000, () => tcpState(ep) !== L.TCP_FIN_WAIT1);
    t.equal(await w.b.read(s, new Uint8Array(4)), 0, 'peer reads EOF');
    w.close();
  }
});

t.test('UDP socket and TCP listener with SO_LINGER 5 s → close() 0 at once', async (t) => {
  const w = world();
  t.teardown(w.close);
  const u = w.a.socket(L.AF_INET, L.SOCK_DGRAM, 0);
  w.a.bind(u, sa(A, 5000));
  w.a.setsockopt(u, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, 5));
  t.equal(w.a.close(u), 0);
  const l = w.a.socket(L.AF_INET, L.SOCK_STREAM, 0);
  w.a.bind(l, sa(A, 80));
  t.equal(w.a.listen(l, 4), 0);
  t.equal(w.a.setsockopt(l, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, 5)), 0);
  t.equal(w.a.close(l), 0);
  const c = w.a.socket(L.AF_INET, L.SOCK_STREAM, 0);
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, 5)), 0);
  t.equal(w.a.close(c), 0, 'never-connected TCP socket');
});

t.test('lingering close, state leaves FIN-WAIT-1 with no waiter notification → 0 at the next 200 ms poll', async (t) => {
  // An endpoint that changes state silently stands for any transition the real one may not announce.
  const clock = new VirtualClock(0);
  let state: number = L.TCP_ESTABLISHED;
  const ep = {
    family: 4, type: 'stream', protocol: 6, waiter: new WaiterQueue(),
    getOption: (n: string) => (n === 'SO_LINGER' ? { onoff: true, linger: 10 } : n === 'TCP_INFO' ? { tcpi_state: state } : 0),
    close: () => {
      state = L.TCP_FIN_WAIT1;
    },
  } as unknown as Endpoint;
  const sys = new SocketLayer({ socket: () => ep } as unknown as Netstack, clock);
  const fd = sys.socket(L.AF_INET, L.SOCK_STREAM, 0);
  const p = sys.close(fd);
  t.type(p, Promise);
  let done: number | undefined;
  void (p as Promise<number>).then((v) => (done = v));
  clock.advance(250);
  await new Promise((r) => setImmediate(r));
  t.equal(done, undefined, 'FIN-WAIT-1 after two polls');
  state = L.TCP_FIN_WAIT2;
  clock.advance(149);
  await new Promise((r) => setImmediate(r));
  t.equal(done, undefined, 'not noticed before the poll at 400 ms');
  clock.advance(1);
  await new Promise((r) => setImmediate(r));
  t.equal(done, 0, 'noticed by the poll at 400 ms');
});

// ---- SO_LINGER with a negative time: Linux sk_setsockopt makes it MAX_SCHEDULE_TIMEOUT (no time limit) ----

/** Reads SO_LINGER back as [l_onoff, l_linger]. */
function getLinger(sys: SocketLayer, fd: number): [number, number] {
  const b = new Uint8Array(8);
  const len = new Uint32Array([8]);
  if (sys.getsockopt(fd, L.SOL_SOCKET, L.SO_LINGER, b, len) !== 0 || len[0] !== 8) throw new Error('getsockopt');
  const v = new DataView(b.buffer);
  return [v.getInt32(0, true), v.getInt32(4, true)];
}

t.test('SO_LINGER set/get table → what Linux 6.18 (HZ=250) returns and reports', async (t) => {
  const w = world();
  t.teardown(w.close);
  const c = w.a.socket(L.AF_INET, L.SOCK_STREAM, 0);
  // (int)(LONG_MAX / HZ): sk_lingertime = MAX_SCHEDULE_TIMEOUT read back in seconds through an int.
  const UNLIMITED = -1752346657;
  t.same(getLinger(w.a, c), [0, 0], 'default');
  const steps: [onoff: number, secs: number, reported: [number, number]][] = [
    [1, -1, [1, UNLIMITED]],
    [1, 5, [1, 5]],
    [1, -2147483648, [1, UNLIMITED]],
    [0, -9, [0, UNLIMITED]], // l_onoff 0 only clears the flag: the time stays
    [1, 7, [1, 7]],
    [0, 5, [0, 7]],
    [1, 0, [1, 0]],
    [1, 2147483647, [1, 2147483647]],
  ];
  for (const [onoff, secs, reported] of steps) {
    t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(onoff, secs)), 0, `set {${onoff}, ${secs}} → 0`);
    t.same(getLinger(w.a, c), reported, `then get → {${reported.join(', ')}}`);
  }
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, -1)), 0);
  t.same(w.a.endpoint(c)!.getOption('SO_LINGER'), { onoff: true, linger: Infinity }, 'the endpoint holds no time limit');
  t.equal(w.a.close(c), 0, 'never-connected socket with an unlimited linger → 0 at once');
});

t.test('FIN-WAIT-1 (SO_LINGER -1) FIN unacknowledged for 60 s → close() still waiting; FIN ACKed → 0 at that moment', async (t) => {
  const w = world();
  t.teardown(w.close);
  const { c, s } = await connected(w);
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, -1)), 0);
  const ep = w.a.endpoint(c)!;
  w.la.disconnect(); // A's segments are kept by its link (drain), B's go nowhere
  const data = new Uint8Array(1000).map((_, i) => (i * 7) & 0xff);
  t.equal(await w.a.write(c, data), 1000);
  const start = w.clock.now();
  const p = w.a.close(c);
  t.type(p, Promise, 'close blocks while the FIN is unacknowledged');
  let done: number | undefined;
  void (p as Promise<number>).then((v) => (done = v));
  let early = false;
  for (let i = 0; i < 600; i++) {
    w.clock.advance(100);
    await new Promise((r) => setImmediate(r));
    if (done !== undefined) early = true;
  }
  t.notOk(early, 'never returned during 60 s without an ACK');
  t.equal(w.clock.now() - start, 60_000);
  t.equal(tcpState(ep), L.TCP_FIN_WAIT1);
  // The wire comes back and B gets what A sent while it was cut (retransmissions included): it ACKs data and FIN.
  w.la.connect(w.lb);
  for (const f of w.la.drain()) w.lb.inject(f);
  const seen: { state: number; done: number | undefined }[] = [];
  await stepMs(w, 2000, () => {
    seen.push({ state: tcpState(ep), done });
    return done !== undefined;
  });
  t.equal(done, 0, 'close() → 0');
  const at = seen.findIndex((x) => x.state !== L.TCP_FIN_WAIT1);
  t.ok(at >= 0, 'the FIN was acknowledged');
  t.equal(seen.length - 1, at, 'resolved in the step the FIN was acknowledged, not later');
  t.equal(seen[at]!.state, L.TCP_FIN_WAIT2);
  const buf = new Uint8Array(2000);
  t.equal(await w.b.read(s, buf), 1000, 'the peer got the data');
  t.same(buf.subarray(0, 1000), data);
  t.equal(await w.b.read(s, buf), 0, 'and the FIN');
});

t.test('FIN-WAIT-1 (SO_LINGER -1) close waiting, peer resets → close() 0 in that step, connection CLOSED', async (t) => {
  const w = world();
  t.teardown(w.close);
  const { c, s } = await connected(w);
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, -1)), 0);
  const ep = w.a.endpoint(c)!;
  w.la.disconnect();
  t.equal(await w.a.write(c, new Uint8Array(500)), 500);
  const p = w.a.close(c);
  t.type(p, Promise);
  let done: number | undefined;
  void (p as Promise<number>).then((v) => (done = v));
  await stepMs(w, 3000);
  t.equal(done, undefined, 'waiting');
  // B aborts (SO_LINGER 0): its RST, held by B's cut link, is handed to A.
  t.equal(w.b.setsockopt(s, L.SOL_SOCKET, L.SO_LINGER, lingerOpt(1, 0)), 0);
  t.equal(w.b.close(s), 0);
  const frames = w.lb.drain();
  t.ok(frames.length >= 1, 'B sent its RST');
  for (const f of frames) w.la.inject(f);
  const seen: { state: number; done: number | undefined }[] = [];
  await stepMs(w, 1000, () => {
    seen.push({ state: tcpState(ep), done });
    return done !== undefined;
  });
  t.equal(done, 0, 'close() → 0, as Linux (the reset ends sk_stream_wait_close; inet_release returns 0)');
  t.equal(seen.length, 1, 'in the step the RST arrived');
  t.equal(tcpState(ep), L.TCP_CLOSE);
  t.ok(w.clock.now() < 3200, 'long before any FIN could have been acknowledged');
});

t.test('TCP_INQ: recvmsg carries TCP_CM_INQ with the bytes left to read, 1 after the FIN when none are; short buffer → MSG_CTRUNC', async (t) => {
  const w = world();
  t.teardown(w.close);
  const { c, s } = await connected(w);
  const v = new Uint8Array(4);
  const len = new Uint32Array([4]);
  t.equal(w.b.getsockopt(s, L.SOL_TCP, L.TCP_INQ, v, len), 0);
  t.same([...v], [0, 0, 0, 0], 'off by default');
  t.equal(w.b.setsockopt(s, L.SOL_TCP, L.TCP_INQ, new Uint8Array([1, 0, 0, 0])), 0);
  t.equal(w.b.getsockopt(s, L.SOL_TCP, L.TCP_INQ, v, len), 0);
  t.equal(v[0], 1);
  t.equal(w.a.sendto(c, new Uint8Array(10000), 0, null), 10000);
  await w.pump();
  const inq = (control: Uint8Array) => {
    const d = new DataView(control.buffer);
    return { len: Number(d.getBigUint64(0, true)), level: d.getInt32(8, true), type: d.getInt32(12, true), value: d.getInt32(16, true) };
  };
  const msg = { name: null, namelen: 0, iov: [new Uint8Array(2000)], flags: 0, control: new Uint8Array(24), controllen: 0 };
  t.equal(w.b.recvmsg(s, msg, 0), 2000);
  t.equal(msg.controllen, 24);
  t.same(inq(msg.control), { len: 20, level: L.SOL_TCP, type: L.TCP_CM_INQ, value: 8000 });
  msg.iov = [new Uint8Array(8000)];
  t.equal(w.b.recvmsg(s, msg, 0), 8000);
  t.equal(inq(msg.control).value, 0, 'nothing left');
  t.equal(w.a.sendto(c, new Uint8Array(100), 0, null), 100);
  t.equal(w.a.shutdown(c, 1), 0);
  await w.pump();
  msg.iov = [new Uint8Array(100)];
  t.equal(w.b.recvmsg(s, msg, 0), 100);
  t.equal(inq(msg.control).value, 1, 'the FIN counts as one byte still to read');
  const short = { name: null, namelen: 0, iov: [new Uint8Array(10)], flags: 0, control: new Uint8Array(8), controllen: 0 };
  t.equal(w.b.recvmsg(s, short, 0), 0, 'end of stream');
  t.equal(short.flags & L.MSG_CTRUNC, L.MSG_CTRUNC);
  t.equal(short.controllen, 0);
});

t.test('TCP Fast Open between two stacks: sendto(MSG_FASTOPEN) asks for a cookie, then the next carries data in the SYN', async (t) => {
  const w = world();
  t.teardown(w.close);
  const TCPI_OPT_SYN_DATA = 32;
  const int = (v: number) => new Uint8Array(new Int32Array([v]).buffer);
  const options = (sys: SocketLayer, fd: number) => {
    const info = new Uint8Array(TCP_INFO_LEN);
    sys.getsockopt(fd, L.SOL_TCP, L.TCP_INFO, info, new Uint32Array([TCP_INFO_LEN]));
    return tcpInfoField(info, 'tcpi_options')!;
  };
  // Linux's default tcp_fastopen (1) lets A send SYN data; B's listener needs the server bit and a queue.
  t.match(w.nsB.sysctl.set('net.ipv4.tcp_fastopen', '3'), { applied: true });
  const l = w.b.socket(L.AF_INET, L.SOCK_STREAM, 0);
  t.equal(w.b.bind(l, sa(B, 80)), 0);
  t.equal(w.b.listen(l, 4), 0);
  t.equal(w.b.setsockopt(l, L.SOL_TCP, L.TCP_FASTOPEN, int(4)), 0);
  const data = new Uint8Array(100).fill(5);

  const first = w.a.socket(L.AF_INET, L.SOCK_STREAM | L.SOCK_NONBLOCK, 0);
  t.equal(w.a.sendto(first, data, L.MSG_FASTOPEN, sa(B, 80)), -115, 'no cookie yet: EINPROGRESS, nothing sent with the SYN');
  t.equal(w.a.sendto(first, data, L.MSG_FASTOPEN, sa(B, 80)), -114, 'EALREADY while that handshake runs');
  await w.pump();
  const a1 = await w.b.accept4(l, null, null, 0);
  t.equal(options(w.a, first) & TCPI_OPT_SYN_DATA, 0);

  const second = w.a.socket(L.AF_INET, L.SOCK_STREAM, 0);
  const sent = w.a.sendto(second, data, L.MSG_FASTOPEN, sa(B, 80));
  t.type(sent, Promise, 'a blocking Fast Open send waits for the handshake');
  await w.pump();
  t.equal(await sent, 100);
  const child = (await w.b.accept4(l, null, null, 0)) as number;
  const buf = new Uint8Array(200);
  t.equal(await w.b.read(child, buf), 100, 'the data came with the SYN');
  t.ok(options(w.a, second) & TCPI_OPT_SYN_DATA, 'client: TCPI_OPT_SYN_DATA');
  t.ok(options(w.b, child) & TCPI_OPT_SYN_DATA, 'server: TCPI_OPT_SYN_DATA');
  t.ok(a1 > 0);
});

/** An int option value as setsockopt takes it. */
const intOpt = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
};

/** recvmsg(MSG_ERRQUEUE) with room for one IP_RECVERR cmsg: the result, msg_flags and the cmsg decoded. */
function readErrQueue(sys: SocketLayer, fd: number) {
  const msg = { name: null, namelen: 0, iov: [new Uint8Array(0)], flags: 0, control: new Uint8Array(64), controllen: 0 };
  const r = sys.recvmsg(fd, msg, L.MSG_ERRQUEUE) as number;
  if (r < 0) return { r };
  const v = new DataView(msg.control.buffer);
  return {
    r,
    flags: msg.flags,
    cmsg: {
      len: Number(v.getBigUint64(0, true)),
      level: v.getInt32(8, true),
      type: v.getInt32(12, true),
      ee: { errno: v.getUint32(16, true), origin: v.getUint8(20), type: v.getUint8(21), code: v.getUint8(22), info: v.getUint32(24, true), data: v.getUint32(28, true) },
    },
    controllen: msg.controllen,
  };
}

const pollErr = (sys: SocketLayer, fd: number) => {
  const p = [{ fd, events: L.POLLOUT, revents: 0 }];
  sys.poll(p, 0);
  return (p[0]!.revents & L.POLLERR) !== 0;
};

/** A zerocopy completion of ids lo…hi as Linux's ip_recv_error reports it for a copied send. */
const completion = (lo: number, hi: number) => ({
  r: 0,
  flags: L.MSG_ERRQUEUE,
  cmsg: { len: 16 + 32, level: L.SOL_IP, type: L.IP_RECVERR, ee: { errno: 0, origin: 5, type: 0, code: 1, info: lo, data: hi } },
});

t.test('SO_ZEROCOPY: 0 and 1 set and read back, 2 → EINVAL; an accepted socket inherits it from its listener', async (t) => {
  const w = world();
  t.teardown(w.close);
  const fd = w.b.socket(L.AF_INET, L.SOCK_STREAM, 0);
  const get = () => {
    const v = new Uint8Array(4);
    t.equal(w.b.getsockopt(fd, L.SOL_SOCKET, L.SO_ZEROCOPY, v, new Uint32Array([4])), 0);
    return new DataView(v.buffer).getInt32(0, true);
  };
  t.equal(get(), 0);
  t.equal(w.b.setsockopt(fd, L.SOL_SOCKET, L.SO_ZEROCOPY, intOpt(1)), 0);
  t.equal(get(), 1);
  t.equal(w.b.setsockopt(fd, L.SOL_SOCKET, L.SO_ZEROCOPY, intOpt(2)), -22, 'EINVAL');
  t.equal(get(), 1);
  t.equal(w.b.bind(fd, sa(B, 80)), 0);
  t.equal(w.b.listen(fd, 4), 0);
  const c = w.a.socket(L.AF_INET, L.SOCK_STREAM | L.SOCK_NONBLOCK, 0);
  w.a.connect(c, sa(B, 80));
  await w.pump();
  const s = w.b.accept4(fd, null, null, 0) as number;
  t.ok(s > 0);
  const v = new Uint8Array(4);
  t.equal(w.b.getsockopt(s, L.SOL_SOCKET, L.SO_ZEROCOPY, v, new Uint32Array([4])), 0);
  t.equal(v[0], 1, 'inherited');
});

t.test('ESTABLISHED MSG_ZEROCOPY send: no completion (EAGAIN, no POLLERR) until the peer ACKs; then one IP_RECVERR cmsg and POLLERR until read', async (t) => {
  const w = world();
  t.teardown(w.close);
  const { c } = await connected(w, L.SOCK_NONBLOCK);
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_ZEROCOPY, intOpt(1)), 0);
  t.same(readErrQueue(w.a, c), { r: -11 }, 'empty error queue → EAGAIN');
  w.la.disconnect(); // hold the data back: no ACK can come
  t.equal(w.a.sendto(c, new Uint8Array(1000), L.MSG_ZEROCOPY, null), 1000);
  await w.pump(5);
  const held = w.la.drain();
  t.ok(held.length > 0, 'the data left A');
  t.same(readErrQueue(w.a, c), { r: -11 }, 'unacknowledged → no completion');
  t.notOk(pollErr(w.a, c));
  w.la.connect(w.lb);
  for (const f of held) w.lb.inject(f);
  await w.pump(300); // B's ACK (delayed at most 200 ms)
  t.ok(pollErr(w.a, c), 'POLLERR while the error queue holds a completion');
  t.match(readErrQueue(w.a, c), { ...completion(0, 0), controllen: 48 });
  t.notOk(pollErr(w.a, c), 'POLLERR gone with the queue empty');
  t.same(readErrQueue(w.a, c), { r: -11 });
});

t.test('consecutive completions coalesce into one range; a later one after the read starts its own; EPOLLONESHOT reports EPOLLERR once', async (t) => {
  const w = world();
  t.teardown(w.close);
  const { c } = await connected(w, L.SOCK_NONBLOCK);
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_ZEROCOPY, intOpt(1)), 0);
  const ep = w.a.epollCreate(0);
  t.equal(w.a.epollCtl(ep, L.EPOLL_CTL_ADD, c, { events: L.EPOLLOUT | L.EPOLLET | L.EPOLLONESHOT, data: 9 }), 0);
  const evs: { events: number; data: number }[] = [];
  t.equal(w.a.sendto(c, new Uint8Array(4000), L.MSG_ZEROCOPY, null), 4000);
  await w.pump(300);
  t.equal(w.a.sendto(c, new Uint8Array(4000), L.MSG_ZEROCOPY, null), 4000);
  await w.pump(300);
  t.equal(w.a.epollWait(ep, evs, 4, 0), 1);
  t.same(evs, [{ events: L.EPOLLERR | L.EPOLLOUT, data: 9 }]);
  t.equal(w.a.sendto(c, new Uint8Array(10), 0, null), 10, 'a send without MSG_ZEROCOPY takes no id');
  t.equal(w.a.sendto(c, new Uint8Array(4000), L.MSG_ZEROCOPY, null), 4000);
  await w.pump(300);
  t.equal(w.a.epollWait(ep, evs, 4, 0), 0, 'a disarmed EPOLLONESHOT entry reports no EPOLLERR');
  t.match(readErrQueue(w.a, c), completion(0, 2), 'ids 0, 1, 2 in one range');
  t.equal(w.a.sendto(c, new Uint8Array(100), L.MSG_ZEROCOPY, null), 100);
  await w.pump(300);
  t.match(readErrQueue(w.a, c), completion(3, 3));
  t.same(readErrQueue(w.a, c), { r: -11 });
});

t.test('MSG_ZEROCOPY without SO_ZEROCOPY is a plain send; a failed or empty send takes no id', async (t) => {
  const w = world();
  t.teardown(w.close);
  const lone = w.a.socket(L.AF_INET, L.SOCK_STREAM, 0);
  t.equal(w.a.setsockopt(lone, L.SOL_SOCKET, L.SO_ZEROCOPY, intOpt(1)), 0);
  t.equal(w.a.sendto(lone, new Uint8Array(10), L.MSG_ZEROCOPY | L.MSG_NOSIGNAL, null), -32, 'not connected → EPIPE');
  const { c } = await connected(w, L.SOCK_NONBLOCK);
  t.equal(w.a.sendto(c, new Uint8Array(100), L.MSG_ZEROCOPY, null), 100);
  await w.pump(300);
  t.same(readErrQueue(w.a, c), { r: -11 }, 'SO_ZEROCOPY off: no completion');
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_ZEROCOPY, intOpt(1)), 0);
  t.equal(w.a.sendmsg(c, { name: null, namelen: 0, iov: [new Uint8Array(0)], flags: 0 }, L.MSG_ZEROCOPY), 0);
  t.equal(w.a.sendto(c, new Uint8Array(100), L.MSG_ZEROCOPY, null), 100);
  await w.pump(300);
  t.match(readErrQueue(w.a, c), completion(0, 0), 'the first id goes to the first send that queued bytes');
});

t.test('MSG_ZEROCOPY sends in flight beyond the budget → ENOBUFS; a plain send still goes', async (t) => {
  const w = world();
  t.teardown(w.close);
  const { c } = await connected(w, L.SOCK_NONBLOCK);
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_ZEROCOPY, intOpt(1)), 0);
  w.la.disconnect(); // nothing is acknowledged
  let ok = 0;
  while (ok < 1000 && w.a.sendto(c, new Uint8Array(1), L.MSG_ZEROCOPY, null) === 1) ok++;
  t.equal(ok, MAX_PENDING);
  t.equal(w.a.sendto(c, new Uint8Array(1), L.MSG_ZEROCOPY, null), -105, 'ENOBUFS');
  t.equal(w.a.sendto(c, new Uint8Array(1), 0, null), 1);
});

t.test('SO_TIMESTAMPING report: SCM_TIMESTAMPING (software stamp in ts[0]) then IP_RECVERR, MSG_TRUNC for the looped packet', async (t) => {
  const w = world();
  t.teardown(w.close);
  const { c } = await connected(w, L.SOCK_NONBLOCK);
  // TX_SCHED | SOFTWARE | OPT_ID: a SCHED report with a time, keys from here.
  t.equal(w.a.setsockopt(c, L.SOL_SOCKET, L.SO_TIMESTAMPING, intOpt((1 << 8) | (1 << 4) | (1 << 7))), 0);
  const before = Date.now();
  t.equal(w.a.sendto(c, new Uint8Array(100), 0, null), 100);
  await w.pump(1);
  const msg = { name: null, namelen: 0, iov: [new Uint8Array(0)], flags: 0, control: new Uint8Array(128), controllen: 0 };
  t.equal(w.a.recvmsg(c, msg, L.MSG_ERRQUEUE), 0);
  t.equal(msg.flags, L.MSG_ERRQUEUE | L.MSG_TRUNC, 'the looped packet did not fit the empty buffer');
  t.equal(msg.controllen, 64 + 48);
  const v = new DataView(msg.control.buffer);
  t.same([Number(v.getBigUint64(0, true)), v.getInt32(8, true), v.getInt32(12, true)], [64, L.SOL_SOCKET, L.SCM_TIMESTAMPING]);
  const wall = Number(v.getBigInt64(16, true)) * 1000 + Number(v.getBigInt64(24, true)) / 1e6;
  t.ok(wall >= before - 1000 && wall <= Date.now() + 1000, `ts[0] ${wall} is CLOCK_REALTIME of the send`);
  t.same([v.getBigInt64(32, true), v.getBigInt64(48, true)], [0n, 0n], 'no hardware stamps');
  t.same([v.getInt32(72, true), v.getInt32(76, true)], [L.SOL_IP, L.IP_RECVERR]);
  t.same([v.getUint32(80, true), v.getUint8(84), v.getUint32(88, true), v.getUint32(92, true)], [42, 4, 1, 99], 'ENOMSG, ORIGIN_TIMESTAMPING, SCM_TSTAMP_SCHED, key 99');
});
