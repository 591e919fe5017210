// End to end: an unmodified python3 under the seccomp filter (sandbox mode), its TCP and UDP calls served by the
// Sentry from netstack A; the peer is netstack B across an in-memory channel. No bwrap and no app netns here
// (the socketpairs are made in the test's own netns): the point is the trap → Sentry → data path chain.
import { once } from 'node:events';
import t from 'tap';
import { bindDgram } from '../../../netstack/adapter/dgram.ts';
import { bindNet, type Socket as NsSocket } from '../../../netstack/adapter/net.ts';
import { bwrapArgs } from '../../../sentry/sandbox/bwrap.ts';
import { A4, B4, twoNetstacks } from '../../netstack/adapter/helpers.ts';
import { HANG_MS, waitFor } from '../../lib/wait.ts';
import { echoPeer, run } from './helpers.ts';

t.test('python3 TCP client: 1 MB up and back through an echo peer (sha256), names, SO_DOMAIN, half-close', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  await echoPeer(t, env, 7000);
  const script = `
import socket, hashlib, random
data = random.Random(7).randbytes(1 << 20)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(('${B4}', 7000))
print('domain', s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN), 'proto', s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
print('sockname', s.getsockname()[0], 'peername', s.getpeername())
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print('nodelay', s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    b = s.recv(65536)
    if not b: break
    got += b
print('sent', hashlib.sha256(data).hexdigest())
print('got', hashlib.sha256(got).hexdigest(), len(got))
s.close()
`;
  const r = await run(env, script);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^domain 2 proto 6$/m);
  t.match(r.stdout, new RegExp(`^sockname ${A4.replace(/\./g, '\\.')} peername \\('${B4.replace(/\./g, '\\.')}', 7000\\)$`, 'm'));
  t.match(r.stdout, /^nodelay 1$/m);
  const sent = /^sent (\w+)$/m.exec(r.stdout)?.[1];
  t.ok(sent);
  t.match(r.stdout, new RegExp(`^got ${sent} 1048576$`, 'm'), 'the echo came back intact');
  t.ok(r.straced.some((l) => /connect\(3, \{AF_INET, 198\.18\.0\.2:7000\}, 16\) = 0 </.test(l) || /<\.\.\. connect resumed> = 0/.test(l)), r.straced.join('\n'));
  t.equal(r.left, 0, 'no socket left behind');
});

t.test('python3 TCP server: blocking accept parks; a peer connects; bytes both ways; peer address', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const nb = bindNet(env.b);
  let peerGot = '';
  let peerEnded = false;
  let peer: ReturnType<typeof nb.connect> | undefined;
  t.teardown(() => peer?.destroy());
  const script = `
import socket
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('0.0.0.0', 8000))
l.listen(5)
print('acceptconn', l.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
print('LISTENING', flush=True)
c, peer = l.accept()
print('peer', peer[0])
c.sendall(b'hello ' + c.recv(100))
c.close()
l.close()
`;
  const r = await run(env, script, (line, _sb, sentry) => {
    if (line !== 'LISTENING') return;
    // Connect once the accept is parked (waiting for it, not for a time a loaded machine may not keep to).
    void waitFor(() => sentry.stats().parked === 1, HANG_MS, 'the parked accept').finally(() => {
      const c = (peer = nb.connect(8000, A4));
      c.on('connect', () => c.write('peer'));
      c.on('data', (d: Buffer) => (peerGot += d.toString()));
      c.on('end', () => (peerEnded = true));
      c.on('error', () => (peerEnded = true));
    });
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^acceptconn 1$/m);
  t.match(r.stdout, new RegExp(`^peer ${B4.replace(/\./g, '\\.')}$`, 'm'));
  // The program's reply crosses the two netstacks after it has exited: wait for the peer's end of stream.
  await waitFor(() => peerEnded, HANG_MS, "the peer's end of stream").catch(() => {});
  t.equal(peerGot, 'hello peer');
  t.ok(r.straced.some((l) => /accept4?\(3, .*<unfinished \.\.\.>/.test(l)), 'the accept was parked');
  t.ok(r.straced.some((l) => /<\.\.\. accept4? resumed> = 4/.test(l)), 'and resumed with fd 4');
  t.equal(r.left, 0);
});

t.test('python3 UDP: sendto and recvfrom with addresses; a connected socket sends and receives natively', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const dg = bindDgram(env.b);
  const echo = dg.createSocket('udp4');
  echo.on('message', (m: Buffer, rinfo: { address: string; port: number }) => echo.send(Buffer.concat([Buffer.from('re:'), m]), rinfo.port, rinfo.address));
  echo.bind(9000);
  await once(echo, 'listening');
  t.teardown(() => echo.close());
  const script = `
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b'one', ('${B4}', 9000))
d, a = u.recvfrom(100)
print('got', d.decode(), a)
u.sendto(b'', ('${B4}', 9000))
d, a = u.recvfrom(100)
print('empty', d.decode(), a[1])
print('type', u.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE))
print('sendmsg', u.sendmsg([b'thr', b'ee'], [], 0, ('${B4}', 9000)))
d, anc, fl, a = u.recvmsg(4, 64)
print('recvmsg', d.decode(), anc, fl & socket.MSG_TRUNC != 0, a)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(('${B4}', 9000))
c.send(b'two')
print('conn', c.recv(100).decode())
`;
  const r = await run(env, script);
  t.equal(r.status, 0, r.stderr + r.straced.join('\n') + r.logs.join('\n'));
  t.match(r.stdout, new RegExp(`^got re:one \\('${B4.replace(/\./g, '\\.')}', 9000\\)$`, 'm'));
  t.match(r.stdout, /^empty re: 9000$/m);
  t.match(r.stdout, /^type 2$/m);
  t.match(r.stdout, /^sendmsg 5$/m);
  t.match(r.stdout, new RegExp(`^recvmsg re:t \\[\\] True \\('${B4.replace(/\./g, '\\.')}', 9000\\)$`, 'm'), 'truncated to 4, no ancillary data, MSG_TRUNC, the source');
  t.match(r.stdout, /^conn re:two$/m);
  t.equal(r.left, 0);
});

t.test('python3 UDP control messages: IP_PKTINFO, IP_RECVTTL, SO_TIMESTAMPNS on recvmsg and recvmmsg, connected too; short buffer → MSG_CTRUNC', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const dg = bindDgram(env.b);
  const echo = dg.createSocket('udp4');
  echo.on('message', (m: Buffer, rinfo: { address: string; port: number }) => {
    for (let i = 0; i < (m[0] === 0x32 ? 2 : 1); i++) echo.send(m, rinfo.port, rinfo.address);
  });
  echo.bind(9000);
  await once(echo, 'listening');
  echo.setTTL(37);
  t.teardown(() => echo.close());
  const script = `
import socket, struct, time, ctypes
def show(tag, anc, fl, t0=None, t1=None):
    out = []
    for lvl, typ, data in anc:
        if (lvl, typ) == (0, 8): out.append('pktinfo %d %s %s' % (struct.unpack('i', data[:4])[0] > 0, socket.inet_ntoa(data[4:8]), socket.inet_ntoa(data[8:12])))
        elif (lvl, typ) == (0, 2): out.append('ttl %d' % struct.unpack('i', data)[0])
        elif (lvl, typ) == (1, 35):
            sec, nsec = struct.unpack('qq', data)
            ts = sec * 10**9 + nsec
            out.append('stampns %s' % (nsec < 10**9 and t0 - 2*10**6 <= ts <= t1 + 2*10**6))
        else: out.append('other %d %d %d' % (lvl, typ, len(data)))
    print(tag, ', '.join(out), 'ctrunc' if fl & socket.MSG_CTRUNC else '')
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_IP, 8, 1)
u.setsockopt(socket.SOL_IP, 12, 1)
u.setsockopt(socket.SOL_SOCKET, 35, 1)
u.settimeout(20)
t0 = time.time_ns(); u.sendto(b'1', ('${B4}', 9000)); d, anc, fl, a = u.recvmsg(100, 256); t1 = time.time_ns()
show('recvmsg', anc, fl, t0, t1)
u.sendto(b'1', ('${B4}', 9000)); d, anc, fl, a = u.recvmsg(100, 40)
show('short', anc, fl, t0, time.time_ns())
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.setsockopt(socket.SOL_IP, 12, 1)
c.connect(('${B4}', 9000)); c.send(b'1'); d, anc, fl, a = c.recvmsg(100, 64)
show('connected', anc, fl)
class iovec(ctypes.Structure): _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
class msghdr(ctypes.Structure): _fields_ = [('name', ctypes.c_void_p), ('namelen', ctypes.c_uint32), ('iov', ctypes.POINTER(iovec)), ('iovlen', ctypes.c_size_t), ('control', ctypes.c_void_p), ('controllen', ctypes.c_size_t), ('flags', ctypes.c_int)]
class mmsghdr(ctypes.Structure): _fields_ = [('hdr', msghdr), ('len', ctypes.c_uint)]
libc = ctypes.CDLL(None, use_errno=True)
vec = (mmsghdr * 2)()
bufs = [ctypes.create_string_buffer(64) for _ in range(2)]
ctls = [ctypes.create_string_buffer(64) for _ in range(2)]
iovs = [iovec(ctypes.cast(bufs[i], ctypes.c_void_p), 64) for i in range(2)]
for i in range(2):
    vec[i].hdr.iov = ctypes.pointer(iovs[i]); vec[i].hdr.iovlen = 1
    vec[i].hdr.control = ctypes.cast(ctls[i], ctypes.c_void_p); vec[i].hdr.controllen = 64
u.setsockopt(socket.SOL_SOCKET, 35, 0)
u.sendto(b'2', ('${B4}', 9000)); time.sleep(0.5)
n = libc.recvmmsg(u.fileno(), vec, 2, 0, None)
print('recvmmsg', n, [(vec[i].hdr.controllen, vec[i].hdr.flags) for i in range(n)])
for i in range(n):
    raw = ctls[i].raw[:vec[i].hdr.controllen]
    ln, lvl, typ = struct.unpack('Qii', raw[:16])
    print('mmsg', i, ln, lvl, typ, len(raw))
`;
  const r = await run(env, script);
  t.equal(r.status, 0, r.stderr + r.straced.join('\n') + r.logs.join('\n'));
  t.match(r.stdout, new RegExp(`^recvmsg stampns True, pktinfo 1 ${A4} ${A4}, ttl 37 $`, 'm'), 'timestamp first, then IP_PKTINFO and IP_TTL as the peer sent it');
  t.match(r.stdout, /^short stampns True ctrunc$/m, '40 bytes: the timestamp (32) fits, IP_PKTINFO does not');
  t.match(r.stdout, /^connected ttl 37 $/m, 'a connected socket gets its control messages too');
  t.match(r.stdout, /^recvmmsg 2 \[\(56, 0\), \(56, 0\)\]$/m, 'each message of a recvmmsg has its own: 32 + 24 bytes');
  t.match(r.stdout, /^mmsg 0 28 0 8 56$/m);
  t.match(r.stdout, /^mmsg 1 28 0 8 56$/m);
  t.equal(r.left, 0);
});

t.test('python3 connected UDP to a closed port: the ICMP error waits for SO_ERROR or the next trapped receive; a native send after it drops it', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const dg = bindDgram(env.b);
  const late = dg.createSocket('udp4');
  late.on('message', (m: Buffer, rinfo: { address: string; port: number }) => late.send(m, rinfo.port, rinfo.address));
  t.teardown(() => late.close());
  const script = `
import socket, time, errno
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(('${B4}', 9100))
c.send(b'1'); time.sleep(0.5)
print('so_error', c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
c.send(b'2'); time.sleep(0.5)
try: c.recvfrom(100); print('recvfrom data?')
except OSError as e: print('recvfrom', errno.errorcode[e.errno])
c.send(b'3'); time.sleep(0.5)
print('start', flush=True); time.sleep(0.5)
c.send(b'4')
print('reply', c.recvfrom(100)[0])
`;
  const r = await run(env, script, (l) => {
    if (l === 'start') late.bind(9100);
  });
  t.equal(r.status, 0, r.stderr + r.straced.join('\n') + r.logs.join('\n'));
  t.match(r.stdout, /^so_error 111 0$/m, 'SO_ERROR hands the port unreachable out once, as Linux');
  t.match(r.stdout, /^recvfrom ECONNREFUSED$/m, 'a trapped receive answers the pending error first, as Linux');
  // Linux would fail send(b'4') with the third error; its native send has gone out, so the error is dropped
  // instead of failing the receive of the reply it asked for.
  t.match(r.stdout, /^reply b'4'$/m);
  t.equal(r.left, 0);
});

t.test('python3: non-blocking connect → EINPROGRESS, writable only once connected, SO_ERROR 0; refused → ECONNREFUSED', async (t) => {
  const env = twoNetstacks({ latencyMs: 100 });
  t.teardown(() => env.close());
  const server = bindNet(env.b).createServer((s) => s.end());
  server.listen(7100);
  await once(server, 'listening');
  t.teardown(() => server.close());
  const script = `
import socket, select, time, errno
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setblocking(False)
t0 = time.monotonic()
print('connect_ex', errno.errorcode.get(s.connect_ex(('${B4}', 7100))))
r, w, x = select.select([], [s], [], 10)
print('writable_ms', int((time.monotonic() - t0) * 1000))
print('so_error', s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
s.close()
q = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    q.connect(('${B4}', 7101))
except OSError as e:
    print('refused', errno.errorcode.get(e.errno))
`;
  const r = await run(env, script);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^connect_ex EINPROGRESS$/m);
  const ms = Number(/^writable_ms (\d+)$/m.exec(r.stdout)?.[1]);
  t.ok(ms >= 190, `writable after ${ms} ms, not before the 200 ms handshake`);
  t.match(r.stdout, /^so_error 0$/m);
  t.match(r.stdout, /^refused ECONNREFUSED$/m);
  t.equal(r.left, 0);
});

t.test('python3 getaddrinfo through glibc\'s resolver: DNS over UDP to a responder on the peer (inside bwrap)', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const dns = bindDgram(env.b).createSocket('udp4');
  let queries = 0;
  // A responder for A queries only: the question echoed back with one answer, 198.18.0.77; AAAA gets no answer.
  dns.on('message', (q: Buffer, rinfo: { address: string; port: number }) => {
    queries++;
    let off = 12;
    while (q[off]) off += q[off]! + 1;
    const qtype = q.readUInt16BE(off + 1);
    const question = q.subarray(12, off + 5);
    const head = Buffer.from(q.subarray(0, 12));
    head.writeUInt16BE(0x8180, 2); // response, recursion desired and available, no error
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(qtype === 1 ? 1 : 0, 6);
    head.writeUInt32BE(0, 8);
    const answer = qtype === 1 ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 77]) : Buffer.alloc(0);
    dns.send(Buffer.concat([head, question, answer]), rinfo.port, rinfo.address);
  });
  dns.bind(53);
  await once(dns, 'listening');
  t.teardown(() => dns.close());
  const bwrap = bwrapArgs({ binds: [], files: [{ path: '/etc/resolv.conf', content: `nameserver ${B4}\noptions attempts:1 timeout:3\n` }] });
  const script = `
import socket
print('addr', socket.getaddrinfo('peer.test', 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
`;
  const r = await run(env, script, undefined, { bwrap });
  t.equal(r.status, 0, r.stderr + r.straced.join('\n'));
  t.match(r.stdout, /^addr 198\.18\.0\.77$/m);
  t.ok(queries >= 1, `${queries} queries reached the responder`);
  t.equal(r.left, 0);
});

t.test('python3 IPv6 and dual stack: v6 names; a v6 socket to ::ffff:198.18.0.2; TCP sendto with an address passes, recvfrom with one waits natively', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const conns: NsSocket[] = [];
  const server = bindNet(env.b).createServer({ allowHalfOpen: true }, (s) => {
    conns.push(s);
    // The reply comes late, so that the program's recvfrom waits first.
    s.on('data', (d: Buffer) => setTimeout(() => s.write(Buffer.concat([Buffer.from('re:'), d])), 150));
  });
  server.listen(7200);
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of conns) s.destroy();
    server.close();
  });
  const script = `
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.connect(('fd74:7376::2', 7200))
print('v6', s.getsockname()[0], s.getpeername()[:2], s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN))
print('sendto', s.sendto(b'hi', ('fd74:7376::2', 7200)))
d, a = s.recvfrom(100)
print('recvfrom', d.decode(), a)
m = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
m.connect(('::ffff:${B4}', 7200))
print('mapped', m.getpeername()[:2])
`;
  const r = await run(env, script);
  t.equal(r.status, 0, r.stderr + r.straced.join('\n'));
  t.match(r.stdout, /^v6 fd74:7376::1 \('fd74:7376::2', 7200\) 10$/m);
  t.match(r.stdout, /^sendto 2$/m);
  t.match(r.stdout, /^recvfrom re:hi None$/m, 'TCP gives no source address');
  // On a connected stream the program's end answers recvfrom as TCP would (an empty name): the call is let through
  // and blocks in the kernel, not parked here.
  t.ok(r.straced.some((l) => /recvfrom\(3, .*\(continued\)/.test(l)), 'the recvfrom was continued');
  t.notOk(r.straced.some((l) => /recvfrom\(3, .*<unfinished/.test(l)), 'not parked');
  t.match(r.stdout, new RegExp(`^mapped \\('::ffff:${B4.replace(/\./g, '\\.')}', 7200\\)$`, 'm'));
  t.equal(r.left, 0);
});

t.test('python3: SO_ZEROCOPY → ENOPROTOOPT (no completions reach a sandboxed program), SO_MARK kept and read back', async (t) => {
  const env = twoNetstacks();
  t.teardown(() => env.close());
  const script = `
import socket, errno
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
for call in (lambda: s.setsockopt(socket.SOL_SOCKET, 60, 1), lambda: s.getsockopt(socket.SOL_SOCKET, 60)):
    try:
        call()
        print('zerocopy ok')
    except OSError as e:
        print('zerocopy', errno.errorcode.get(e.errno))
s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 666)
print('mark', s.getsockopt(socket.SOL_SOCKET, socket.SO_MARK))
s.close()
`;
  const r = await run(env, script);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.match(/^zerocopy ENOPROTOOPT$/gm)?.length, 2, r.stdout);
  t.match(r.stdout, /^mark 666$/m);
  t.equal(r.left, 0);
});
