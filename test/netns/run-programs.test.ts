// `tsvisor run`: small unmodified Python programs (issue 9, test 7 and 9) against Linux peers in the caller's
// namespace. A non-blocking connect over a link the netstack delays by 200 ms (`--impair delay=200ms`) is writable
// no earlier than 200 ms with SO_ERROR 0; a refused connect is ECONNREFUSED (blocking and not); getaddrinfo with
// AI_ADDRCONFIG gives both families; SO_DOMAIN/SO_PROTOCOL; getsockname/getpeername as the peer sees them; fork
// after accept; an fd passed by SCM_RIGHTS and one inherited through exec; 16 threads connecting and 16 accepting
// at once; --network=none's loopback and ENETUNREACH; data written before exit delivered, bounded by
// --drain-timeout. And scripts run both by Linux and inside, whose printed lines must agree (`sameAsLinux`):
// connection endings, inet socket options, the unspecified address as this host.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { onLines } from '../../lib/lines.ts';
import { HANG_MS } from '../lib/wait.ts';
import { collect, tsvisorRun, waitFor } from './run-helpers.ts';
import { PY_ACCEPTOR, bench, listening, readOr, start } from './sandbox-helpers.ts';

const b = bench(t, 'prog');
const PORT = 7501;
const PORT6 = 7502;
const CLOSED = 7509;

let accepts = '';
onLines(b.peer(['python3', '-c', PY_ACCEPTOR, '0.0.0.0', String(PORT)]).stdout!, (l) => (accepts += `${l}\n`));
onLines(b.peer(['python3', '-c', PY_ACCEPTOR, '::', String(PORT6)]).stdout!, (l) => (accepts += `${l}\n`));

t.before(async () => {
  if (!(await listening(b.ns, PORT)) || !(await listening(b.ns, PORT6))) throw new Error('the peer listeners did not start');
});

/** Runs `python3 FILE ARGS` inside with `extra` run options; the program's text is written to the bench dir. */
function py(name: string, code: string, args: string[] = [], extra: string[] = []) {
  // GW: the caller's end of the veth (there is none with --network=none).
  const gw = extra.includes('--network=none') ? '' : "GW = socket.gethostbyname('host.tsvisor.internal')";
  const path = b.file(`${name}.py`, `import socket, os, sys, time, select, errno\n${gw}\n${code}`);
  return tsvisorRun(b.ns, [...b.bind, ...extra, '--', 'python3', path, ...args]);
}

t.test('non-blocking connect over a link delayed 200 ms (--impair) → writable no earlier than 200 ms, SO_ERROR 0', async (t) => {
  const r = await py('delay', `
s = socket.socket(); s.setblocking(False)
t0 = time.monotonic()
print('connect_ex', errno.errorcode.get(s.connect_ex((GW, ${PORT})), 0))
_, w, _ = select.select([], [s], [], 30)
dt = (time.monotonic() - t0) * 1000
print('writable', bool(w), 'SO_ERROR', s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
print('ms', round(dt, 1))
s.setblocking(True); s.sendall(b'x'); print('echo', s.recv(1))
`, [], ['--impair', 'delay=200ms']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.equal(lines[0], 'connect_ex EINPROGRESS');
  t.equal(lines[1], 'writable True SO_ERROR 0');
  const ms = Number(/^ms (\S+)/.exec(lines[2] ?? '')?.[1]);
  t.ok(ms >= 200, `writable after ${ms} ms`);
  t.equal(lines[3], "echo b'x'", 'the connection carries data');
  t.end();
});

t.test('connect to a closed port → ECONNREFUSED, blocking and non-blocking (SO_ERROR), IPv4 and IPv6', async (t) => {
  const r = await py('refused', `
GW6 = socket.getaddrinfo('host.tsvisor.internal', 0, socket.AF_INET6)[0][4][0]
for fam, addr in [(socket.AF_INET, GW), (socket.AF_INET6, GW6)]:
    s = socket.socket(fam)
    try:
        s.connect((addr, ${CLOSED})); print('connected')
    except OSError as e:
        print('blocking', errno.errorcode[e.errno])
    s = socket.socket(fam); s.setblocking(False)
    print('connect_ex', errno.errorcode.get(s.connect_ex((addr, ${CLOSED})), 0))
    select.select([], [s], [], 30)
    print('SO_ERROR', errno.errorcode.get(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0))
`);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'blocking ECONNREFUSED\nconnect_ex EINPROGRESS\nSO_ERROR ECONNREFUSED\n'.repeat(2));
  t.end();
});

t.test('getaddrinfo(AI_ADDRCONFIG) → both families; SO_DOMAIN/SO_TYPE/SO_PROTOCOL as Linux', async (t) => {
  const r = await py('gai', `
fams = sorted({ai[0].name for ai in socket.getaddrinfo('host.tsvisor.internal', 80, 0, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)})
print(' '.join(fams))
for fam, typ in [(socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET6, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET6, socket.SOCK_DGRAM)]:
    s = socket.socket(fam, typ)
    print(*(s.getsockopt(socket.SOL_SOCKET, o) for o in (socket.SO_DOMAIN, socket.SO_TYPE, socket.SO_PROTOCOL)))
`);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'AF_INET AF_INET6\n2 1 6\n10 1 6\n2 2 17\n10 2 17\n');
  t.end();
});

t.test('getsockname/getpeername → what the peer sees, IPv4 and IPv6', async (t) => {
  const run = await start(b, [...b.bind, '--', 'python3', b.file('names.py', `
import socket
for fam, port in [(socket.AF_INET, ${PORT}), (socket.AF_INET6, ${PORT6})]:
    gw = socket.getaddrinfo('host.tsvisor.internal', port, fam)[0][4][0]
    s = socket.create_connection((gw, port))
    print('name', *s.getsockname()[:2], 'peer', *s.getpeername()[:2], flush=True)
    s.sendall(b'n'); s.recv(1)
`)]);
  const res = await run.done;
  t.equal(res.code, 0, res.stderr);
  const [v4, v6] = res.stdout.trim().split('\n').map((l) => l.split(' '));
  t.equal(v4![1], run.sandbox4, 'IPv4 local address is the sandbox\'s');
  t.same(v4!.slice(3), ['peer', run.gw4, String(PORT)]);
  t.equal(v6![1], run.sandbox6, 'IPv6 local address is the sandbox\'s');
  t.same(v6!.slice(3), ['peer', run.gw6, String(PORT6)]);
  t.ok(Number(v4![2]) > 1023 && Number(v6![2]) > 1023, 'ephemeral ports');
  t.ok(await waitFor(() => accepts.includes(`accept ${run.gw4} ${run.sandbox4}`) && accepts.includes(`accept ${run.gw6} ${run.sandbox6}`), HANG_MS),
    'the peer saw the same addresses');
  t.end();
});

/** Opens a TCP connection from the peer's namespace with a Python client; resolves to what it printed. */
function peerClient(code: string, args: string[]) {
  return collect(b.peer(['python3', '-c', code, ...args]), HANG_MS);
}

t.test('fork after accept → the child serves, the parent closes its copy; EOF when the child is done', async (t) => {
  const run = await start(b, [...b.bind, '--', 'python3', b.file('fork.py', `
import os, socket
l = socket.create_server(('0.0.0.0', 9100)); l.listen()
print('listening', flush=True)
for i in range(3):
    c, a = l.accept()
    pid = os.fork()
    if pid == 0:
        l.close()
        c.sendall(b'hello %d\\n' % os.getpid())
        c.sendall(c.recv(100).upper())
        c.close(); os._exit(0)
    c.close()
for i in range(3): os.wait()
print('done', flush=True)
`)]);
  t.ok(await waitFor(() => run.stdout().includes('listening'), HANG_MS));
  const CLIENT = `
import socket, sys
s = socket.create_connection((sys.argv[1], 9100), timeout=30)
f = s.makefile('rb'); hello = f.readline(); s.sendall(b'abc'); up = f.read(3); rest = f.read()
print(hello.decode().strip(), up.decode(), len(rest))
`;
  const outs = await Promise.all([0, 1, 2].map(() => peerClient(CLIENT, [run.sandbox4])));
  for (const o of outs) t.match(o.stdout, /^hello \d+ ABC 0\n$/, 'child served, then EOF');
  t.equal(new Set(outs.map((o) => o.stdout.split(' ')[1])).size, 3, 'three children');
  const res = await run.done;
  t.equal(res.code, 0, res.stderr);
  t.ok(res.stdout.includes('done'));
  t.end();
});

t.test('an fd passed by SCM_RIGHTS and one inherited through exec → both carry the connection', async (t) => {
  const before = accepts.split('\n').length;
  const r = await py('pass', `
if len(sys.argv) > 1:
    s = socket.socket(fileno=int(sys.argv[1]))
    s.sendall(b'via-exec'); print('exec', s.recv(100).decode(), flush=True); sys.exit(0)
c = socket.create_connection((GW, ${PORT}))
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    msg, fds, _, _ = socket.recv_fds(b, 10, 1)
    s = socket.socket(fileno=fds[0])
    s.sendall(b'via-scm'); print('scm', s.recv(100).decode(), flush=True); os._exit(0)
socket.send_fds(a, [b'x'], [c.fileno()])
os.waitpid(pid, 0)
os.set_inheritable(c.fileno(), True)
os.execv(sys.executable, [sys.executable, sys.argv[0], str(c.fileno())])
`);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'scm via-scm\nexec via-exec\n');
  t.equal(accepts.split('\n').length - before, 1, 'one connection served both');
  t.end();
});

t.test('16 threads connecting and 16 accepting at once (own address and the peer) → every pair completes', async (t) => {
  const r = await py('threads', `
import threading
me = [a for a in socket.getaddrinfo(socket.gethostname(), 0, socket.AF_INET)][0][4][0]
l = socket.create_server(('0.0.0.0', 9200), backlog=64)
got, sent, peer = [], [], []
def acceptor():
    c, a = l.accept(); got.append(c.recv(16)); c.close()
def connector(i):
    s = socket.create_connection((me, 9200)); s.sendall(b'%02d' % i); s.close(); sent.append(i)
def to_peer(i):
    s = socket.create_connection((GW, ${PORT})); s.sendall(b'p%02d' % i); peer.append(s.recv(3)); s.close()
ts = [threading.Thread(target=acceptor) for _ in range(16)]
for x in ts: x.start()
time.sleep(0.2)
ts += [threading.Thread(target=connector, args=(i,)) for i in range(16)] + [threading.Thread(target=to_peer, args=(i,)) for i in range(16)]
for x in ts[16:]: x.start()
for x in ts: x.join(60)
print(len(got), len(set(got)), len(sent), len(peer), sorted(peer) == [b'p%02d' % i for i in range(16)], me)
`);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^16 16 16 16 True 198\.18\.\d+\.2\n$/, 'accepted 16 distinct, 16 connected, 16 echoed by the peer');
  t.equal(r.stderr, '', 'nothing on stderr (no warning from tsvisor about 16 parked calls)');
  t.end();
});

t.test('--network=none → loopback works over IPv4 and IPv6; any other address is ENETUNREACH', async (t) => {
  const r = await py('none', `
for fam, lo in [(socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')]:
    l = socket.socket(fam); l.bind((lo, 0)); l.listen()
    c = socket.create_connection(l.getsockname()[:2]); a, _ = l.accept(); c.sendall(b'lo'); print(lo, a.recv(2).decode())
for addr in ['198.18.0.1', 'fd74:7376::1']:
    s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET)
    try:
        s.connect((addr, 80)); print('connected')
    except OSError as e:
        print(addr, errno.errorcode[e.errno])
    u = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.sendto(b'x', (addr, 53)); print('sent')
    except OSError as e:
        print(addr, 'udp', errno.errorcode[e.errno])
`, [], ['--network=none']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '127.0.0.1 lo\n::1 lo\n198.18.0.1 ENETUNREACH\n198.18.0.1 udp ENETUNREACH\nfd74:7376::1 ENETUNREACH\nfd74:7376::1 udp ENETUNREACH\n');
  t.end();
});

/**
 * Runs the Python `script` under Linux (the test's own namespace) and inside `run --network=none`: both must exit 0
 * and print the same lines, and Linux's must match `reference` (what the test means to check).
 */
async function sameAsLinux(t: Test, name: string, script: string, reference: RegExp): Promise<void> {
  const linux = await collect(b.peer(['python3', '-c', script]), HANG_MS);
  t.equal(linux.code, 0, linux.stderr);
  t.match(linux.stdout, reference, 'the reference is what this test means');
  const r = await py(name, script, [], ['--network=none']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, linux.stdout);
  t.end();
}

// Both directions shut while a process still holds the socket: the connection stays the program's (TCP_INFO,
// SO_ERROR, the fd's own options), whichever process holds it: here a child that inherited it, its parent's copy
// closed. The Sentry asks whether any process holds the program's end (sock_diag by inode); a scan of the
// parent's fds alone took it for closed.
const HELD = `
import socket, os, time, struct
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)
c = socket.create_connection(l.getsockname()); s, _ = l.accept(); l.close()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    s.close(); time.sleep(0.2)
    out = ['eof %r' % c.recv(10)]
    c.shutdown(socket.SHUT_WR); time.sleep(0.6)
    out.append('state %d' % c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0])
    out.append('error %d' % c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    out.append('nodelay %d' % c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out.append('nodelay set %d' % c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    os.write(w, ('\\n'.join(out) + '\\n').encode()); os._exit(0)
os.close(w); c.close(); s.close()
os.waitpid(pid, 0)
print(os.read(r, 1000).decode(), end='')
`;

t.test('both directions shut while a child holds the socket (its parent\'s copy closed): still the program\'s connection, as Linux', async (t) => {
  await sameAsLinux(t, 'held', HELD, /^eof b''\nstate 7\nerror 0\nnodelay 0\nnodelay set 1\n$/);
});

// Endings over loopback, both ends the program's: printed by the same script run by Linux (in the test's own
// namespace) and inside `run --network=none` (the netstack behind the Sentry's pumps); the lines must agree.
const ENDINGS = `
import socket, errno, time
def pair():
    l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)
    c = socket.create_connection(l.getsockname()); s, _ = l.accept(); l.close()
    return c, s
def step(name, f):
    try: print(name, f())
    except OSError as e: print(name, errno.errorcode[e.errno])
# A close with received bytes unread is a RST: the peer reads what was sent before it, then ECONNRESET.
c, s = pair()
c.sendall(b'never read'); time.sleep(0.2); s.sendall(b'last words'); s.close(); time.sleep(0.2)
step('unread: recv', lambda: c.recv(100)); step('unread: recv again', lambda: c.recv(100)); c.close()
# After the peer's FIN, data to the closed peer is answered with a RST: EPIPE in CLOSE-WAIT, reads stay at 0.
c, s = pair()
s.close(); time.sleep(0.2)
step('closed peer: recv', lambda: c.recv(100)); step('closed peer: send', lambda: c.send(b'x')); time.sleep(0.2)
step('closed peer: send again', lambda: c.send(b'y')); step('closed peer: recv again', lambda: c.recv(100)); c.close()
# Bound to one IPv6 address a socket is IPv6-only.
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    for addr in ('::1', '::'):
        u = socket.socket(socket.AF_INET6, kind); u.bind((addr, 0))
        print('v6only', kind, addr, u.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)); u.close()
`;

t.test('endings as Linux shows them: a close with bytes unread is a RST; data to a closed peer → EPIPE; IPV6_V6ONLY after bind', async (t) => {
  await sameAsLinux(t, 'endings', ENDINGS, /^unread: recv b'last words'\nunread: recv again ECONNRESET\n/);
});

// Options Linux takes on every inet socket, set and read back on TCP and UDP sockets of both families by Linux and
// inside the sandbox; and IP_FREEBIND's bind to an address no interface holds.
const OPTIONS = `
import socket, errno
S = socket
def e(f):
    try: return f()
    except OSError as x: return errno.errorcode[x.errno]
common = [(S.SOL_SOCKET, 'SO_PRIORITY', 12, 3), (S.SOL_SOCKET, 'SO_RCVLOWAT', 18, 100), (S.SOL_SOCKET, 'SO_OOBINLINE', 10, 1),
          (S.SOL_SOCKET, 'SO_DONTROUTE', 5, 1), (S.SOL_SOCKET, 'SO_BROADCAST', 6, 1), (S.SOL_SOCKET, 'SO_SNDLOWAT', 19, 1),
          (S.IPPROTO_IP, 'IP_TTL', 2, 33), (S.IPPROTO_IP, 'IP_TTL', 2, 0), (S.IPPROTO_IP, 'IP_FREEBIND', 15, 1),
          (S.IPPROTO_IP, 'IP_BIND_ADDRESS_NO_PORT', 24, 1)]
v6 = [(S.IPPROTO_IPV6, 'IPV6_UNICAST_HOPS', 16, 7), (S.IPPROTO_IPV6, 'IPV6_TCLASS', 67, 0x28), (S.IPPROTO_IPV6, 'IPV6_FREEBIND', 78, 1)]
for fam, typ, name in ((S.AF_INET, S.SOCK_STREAM, 'tcp4'), (S.AF_INET, S.SOCK_DGRAM, 'udp4'), (S.AF_INET6, S.SOCK_STREAM, 'tcp6'), (S.AF_INET6, S.SOCK_DGRAM, 'udp6')):
    extra = [(S.IPPROTO_IP, 'IP_MTU_DISCOVER', 10, 0)] if typ == S.SOCK_DGRAM else []
    if typ == S.SOCK_DGRAM and fam == S.AF_INET6: extra.append((S.IPPROTO_IPV6, 'IPV6_MTU_DISCOVER', 23, 0))
    for level, oname, o, val in common + (v6 if fam == S.AF_INET6 else []) + extra:
        s = S.socket(fam, typ)
        print(name, oname, val, e(lambda: s.getsockopt(level, o)), e(lambda: s.setsockopt(level, o, val)), e(lambda: s.getsockopt(level, o)))
        s.close()
for fam, addr in ((S.AF_INET, '198.18.99.99'), (S.AF_INET6, 'fd74:7376:99::99')):
    for typ in (S.SOCK_STREAM, S.SOCK_DGRAM):
        for free in (0, 1):
            s = S.socket(fam, typ)
            s.setsockopt(S.IPPROTO_IP, 15, free)
            print('bind', addr, typ, 'freebind', free, e(lambda: s.bind((addr, 0))))
            s.close()
`;

t.test('inet socket options as Linux takes them (SO_PRIORITY, SO_RCVLOWAT, IP_TTL, IPV6_TCLASS, IP_FREEBIND, ...), TCP and UDP, both families', async (t) => {
  await sameAsLinux(t, 'options', OPTIONS, /^tcp4 IP_TTL 33 64 None 33$/m);
});

// A connect or send to the unspecified address reaches this host on Linux (0.0.0.0: the bound address or
// 127.0.0.1; ::, ::1): `curl http://0.0.0.0:8000` to a server that printed it listens there.
const THIS_HOST = `
import socket, errno
S = socket
def step(name, f):
    try: r = f()
    except OSError as e: r = errno.errorcode.get(e.errno, e.errno)
    print(name, r, flush=True)
def tcp(fam, lhost, chost):
    l = S.socket(fam); l.bind((lhost, 0)); l.listen(1); c = S.socket(fam); c.settimeout(2); c.connect((chost, l.getsockname()[1])); s, a = l.accept(); return (c.getpeername()[0], a[0])
step('tcp4 0.0.0.0', lambda: tcp(S.AF_INET, '0.0.0.0', '0.0.0.0'))
step('tcp6 ::', lambda: tcp(S.AF_INET6, '::', '::'))
step('tcp6 ::ffff:0.0.0.0', lambda: tcp(S.AF_INET6, '::', '::ffff:0.0.0.0'))
def udp(fam, lhost, chost, connect):
    u = S.socket(fam, S.SOCK_DGRAM); u.bind((lhost, 0)); v = S.socket(fam, S.SOCK_DGRAM); v.settimeout(2)
    if connect: v.connect((chost, u.getsockname()[1])); v.send(b'c')
    else: v.sendto(b's', (chost, u.getsockname()[1]))
    u.settimeout(2); d, a = u.recvfrom(10); return (d, a[0])
step('udp4 sendto 0.0.0.0', lambda: udp(S.AF_INET, '0.0.0.0', '0.0.0.0', False))
step('udp4 connect 0.0.0.0', lambda: udp(S.AF_INET, '0.0.0.0', '0.0.0.0', True))
step('udp6 sendto ::', lambda: udp(S.AF_INET6, '::', '::', False))
step('udp6 connect ::', lambda: udp(S.AF_INET6, '::', '::', True))
`;

t.test('connect and send to 0.0.0.0 and :: reach this host, TCP and UDP, as on Linux', async (t) => {
  await sameAsLinux(t, 'this-host', THIS_HOST, /^tcp4 0\.0\.0\.0 \('127\.0\.0\.1', '127\.0\.0\.1'\)$/m);
});

// SO_BINDTODEVICE by interface name on TCP and UDP sockets of both families: read back with its NUL, ENODEV for a
// name no interface has, "" unbinds; sockets bound to lo still talk over it.
const BIND_TO_DEVICE = `
import socket, errno
S=socket
def e(f):
    try: return f()
    except OSError as x: return errno.errorcode.get(x.errno, x.errno)
for fam, typ, n in ((S.AF_INET, S.SOCK_STREAM, 'tcp'), (S.AF_INET, S.SOCK_DGRAM, 'udp'), (S.AF_INET6, S.SOCK_STREAM, 'tcp6')):
    s = S.socket(fam, typ)
    print(n, 'get', e(lambda: s.getsockopt(S.SOL_SOCKET, 25, 16)), 'short', e(lambda: s.getsockopt(S.SOL_SOCKET, 25, 4)))
    print(n, 'set lo', e(lambda: s.setsockopt(S.SOL_SOCKET, 25, b'lo')), e(lambda: s.getsockopt(S.SOL_SOCKET, 25, 16)))
    print(n, 'set nope', e(lambda: s.setsockopt(S.SOL_SOCKET, 25, b'nope0')), e(lambda: s.getsockopt(S.SOL_SOCKET, 25, 16)))
    print(n, 'unset', e(lambda: s.setsockopt(S.SOL_SOCKET, 25, b'')), e(lambda: s.getsockopt(S.SOL_SOCKET, 25, 16)))
# bound to lo: loopback still works
l = S.socket(); l.setsockopt(S.SOL_SOCKET, 25, b'lo'); l.bind(('127.0.0.1', 0)); l.listen()
c = S.socket(); c.setsockopt(S.SOL_SOCKET, 25, b'lo'); c.connect(l.getsockname()); a, _ = l.accept()
c.sendall(b'hi'); print('lo-bound tcp', a.recv(10), a.getsockopt(S.SOL_SOCKET, 25, 16))
u = S.socket(S.AF_INET, S.SOCK_DGRAM); u.setsockopt(S.SOL_SOCKET, 25, b'lo'); u.bind(('127.0.0.1', 0))
v = S.socket(S.AF_INET, S.SOCK_DGRAM); v.sendto(b'u', u.getsockname()); print('lo-bound udp', u.recvfrom(10)[0])
`;

t.test('SO_BINDTODEVICE by interface name, TCP and UDP, as Linux takes it', async (t) => {
  await sameAsLinux(t, 'bind-to-device', BIND_TO_DEVICE, /^tcp set lo None b'lo\\x00'$/m);
});

// Two SO_REUSEPORT listeners of one port: Linux spreads connections over them by a hash of each flow.
const REUSEPORT = `
import socket, time
S = socket
ls = []
for i in range(2):
    x = S.socket(); x.setsockopt(S.SOL_SOCKET, S.SO_REUSEPORT, 1)
    x.bind(('127.0.0.1', ls[0].getsockname()[1] if ls else 0)); x.listen(64); ls.append(x)
cs = [S.create_connection(ls[0].getsockname()) for _ in range(40)]
time.sleep(0.2)
counts = []
for x in ls:
    x.setblocking(False); n = 0
    while True:
        try: x.accept(); n += 1
        except BlockingIOError: break
    counts.append(n)
print('accepted', sum(counts), 'both listeners used', all(n > 0 for n in counts))
`;

t.test('SO_REUSEPORT listeners share a port\'s connections, as on Linux', async (t) => {
  await sameAsLinux(t, 'reuseport', REUSEPORT, /^accepted 40 both listeners used True$/m);
});

// Multicast groups over loopback: IPv4 joins and drops (ip_mreq) with their errors, IP_MULTICAST_IF and _LOOP, one
// copy to the member, none for a group not joined or after the drop; IPv6 joins, IPV6_MULTICAST_IF and _LOOP.
const MULTICAST = `
import socket, errno, struct
S = socket
def e(f):
    try: return f()
    except OSError as x: return errno.errorcode.get(x.errno, x.errno)
def step(name, f): print(name, e(f), flush=True)
r = S.socket(S.AF_INET, S.SOCK_DGRAM); r.bind(('0.0.0.0', 0)); port = r.getsockname()[1]
mreq = struct.pack('4s4s', S.inet_aton('239.1.2.3'), S.inet_aton('127.0.0.1'))
step('join', lambda: r.setsockopt(S.IPPROTO_IP, S.IP_ADD_MEMBERSHIP, mreq))
step('join again', lambda: r.setsockopt(S.IPPROTO_IP, S.IP_ADD_MEMBERSHIP, mreq))
step('join unicast', lambda: r.setsockopt(S.IPPROTO_IP, S.IP_ADD_MEMBERSHIP, struct.pack('4s4s', S.inet_aton('10.1.2.3'), S.inet_aton('127.0.0.1'))))
step('join on no such address', lambda: r.setsockopt(S.IPPROTO_IP, S.IP_ADD_MEMBERSHIP, struct.pack('4s4s', S.inet_aton('239.9.9.9'), S.inet_aton('198.18.77.77'))))
step('join short', lambda: r.setsockopt(S.IPPROTO_IP, S.IP_ADD_MEMBERSHIP, b'\\xef\\x01\\x02'))
s = S.socket(S.AF_INET, S.SOCK_DGRAM)
step('if get', lambda: S.inet_ntoa(s.getsockopt(S.IPPROTO_IP, S.IP_MULTICAST_IF, 4)))
step('if set', lambda: s.setsockopt(S.IPPROTO_IP, S.IP_MULTICAST_IF, S.inet_aton('127.0.0.1')))
step('if get after', lambda: S.inet_ntoa(s.getsockopt(S.IPPROTO_IP, S.IP_MULTICAST_IF, 4)))
step('if no such address', lambda: s.setsockopt(S.IPPROTO_IP, S.IP_MULTICAST_IF, S.inet_aton('198.18.77.77')))
step('loop default', lambda: s.getsockopt(S.IPPROTO_IP, S.IP_MULTICAST_LOOP))
r.settimeout(0.5)
step('send', lambda: s.sendto(b'one', ('239.1.2.3', port)))
step('recv', lambda: r.recvfrom(10)[0])
r.setblocking(False); step('just one copy', lambda: r.recv(10)); r.settimeout(0.5)
# another group not joined: not delivered
step('send other group', lambda: s.sendto(b'other', ('239.7.7.7', port)))
step('recv other group', lambda: r.recv(10))
step('drop', lambda: r.setsockopt(S.IPPROTO_IP, S.IP_DROP_MEMBERSHIP, mreq))
step('drop again', lambda: r.setsockopt(S.IPPROTO_IP, S.IP_DROP_MEMBERSHIP, mreq))
step('send after drop', lambda: s.sendto(b'late', ('239.1.2.3', port)))
step('recv after drop', lambda: r.recv(10))
# IPv6
r6 = S.socket(S.AF_INET6, S.SOCK_DGRAM); r6.bind(('::', 0)); p6 = r6.getsockname()[1]
m6 = S.inet_pton(S.AF_INET6, 'ff12::1234') + struct.pack('i', 1)
step('join6', lambda: r6.setsockopt(S.IPPROTO_IPV6, S.IPV6_JOIN_GROUP, m6))
step('join6 again', lambda: r6.setsockopt(S.IPPROTO_IPV6, S.IPV6_JOIN_GROUP, m6))
s6 = S.socket(S.AF_INET6, S.SOCK_DGRAM)
step('if6 set', lambda: s6.setsockopt(S.IPPROTO_IPV6, S.IPV6_MULTICAST_IF, 1))
step('if6 get', lambda: s6.getsockopt(S.IPPROTO_IPV6, S.IPV6_MULTICAST_IF))
step('if6 no such', lambda: s6.setsockopt(S.IPPROTO_IPV6, S.IPV6_MULTICAST_IF, 77))
step('loop6 default', lambda: s6.getsockopt(S.IPPROTO_IPV6, S.IPV6_MULTICAST_LOOP))
step('loop6 2', lambda: s6.setsockopt(S.IPPROTO_IPV6, S.IPV6_MULTICAST_LOOP, 2))
step('leave6', lambda: r6.setsockopt(S.IPPROTO_IPV6, S.IPV6_LEAVE_GROUP, m6))
step('leave6 again', lambda: r6.setsockopt(S.IPPROTO_IPV6, S.IPV6_LEAVE_GROUP, m6))
`;

t.test('multicast membership and interface options as Linux takes them (IP_ADD_MEMBERSHIP, IPV6_JOIN_GROUP, ...)', async (t) => {
  await sameAsLinux(t, 'multicast', MULTICAST, /^join None\njoin again EADDRINUSE\n/);
});

// SO_RCVLOWAT on a TCP socket: poll shows it readable only once the mark is met, and a read then has it all.
const RCVLOWAT = `
import socket, select, time
S = socket
l = S.socket(); l.bind(('127.0.0.1', 0)); l.listen()
c = S.create_connection(l.getsockname()); s, _ = l.accept()
s.setsockopt(S.SOL_SOCKET, S.SO_RCVLOWAT, 5); print('lowat', s.getsockopt(S.SOL_SOCKET, S.SO_RCVLOWAT))
c.send(b'abc'); time.sleep(0.2)
print('3 bytes readable', select.select([s], [], [], 0.2)[0] == [s])
c.send(b'defg'); time.sleep(0.2)
print('7 bytes readable', select.select([s], [], [], 1)[0] == [s])
print('read', s.recv(100))
c.send(b'hi'); c.shutdown(S.SHUT_WR); time.sleep(0.2)
print('2 bytes and a FIN readable', select.select([s], [], [], 1)[0] == [s], s.recv(100))
`;

t.test('SO_RCVLOWAT holds a TCP socket\'s readiness until the mark is met, as on Linux', async (t) => {
  await sameAsLinux(t, 'rcvlowat', RCVLOWAT, /^3 bytes readable False\n7 bytes readable True\nread b'abcdefg'$/m);
});

// One UDP datagram of several calls (MSG_MORE on sendto and sendmsg, UDP_CORK), in order with the native send()s
// around them; and the errors Linux gives for calls a socket does not take.
const UDP_MORE = `
import socket as S, errno
def step(name, f):
    try: print(name, f())
    except OSError as e: print(name, errno.errorcode.get(e.errno, 'timed out'))
u = S.socket(S.AF_INET, S.SOCK_DGRAM); u.bind(('127.0.0.1', 0)); u.settimeout(1)
v = S.socket(S.AF_INET, S.SOCK_DGRAM); v.connect(u.getsockname())
w = S.socket(S.AF_INET, S.SOCK_DGRAM)
w.sendto(b'ab', S.MSG_MORE, u.getsockname()); w.sendto(b'cd', u.getsockname())
step('sendto MSG_MORE', lambda: u.recv(100))
v.sendmsg([b'ab'], [], S.MSG_MORE); v.sendmsg([b'cd'])
step('sendmsg MSG_MORE', lambda: u.recv(100))
v.send(b'first'); v.sendmsg([b'12'], [], S.MSG_MORE); v.send(b'34')
step('native before', lambda: u.recv(100)); step('sendmsg MSG_MORE, then send', lambda: u.recv(100))
step('UDP_CORK', lambda: v.getsockopt(S.IPPROTO_UDP, 1))
v.send(b'before'); v.setsockopt(S.IPPROTO_UDP, 1, 1)
step('UDP_CORK on', lambda: v.getsockopt(S.IPPROTO_UDP, 1))
v.send(b'x'); v.send(b'y'); v.sendto(b'z', u.getsockname())
step('not corked', lambda: u.recv(100)); step('corked held', lambda: u.recv(100, S.MSG_DONTWAIT))
v.setsockopt(S.IPPROTO_UDP, 1, 0)
step('UDP_CORK off', lambda: u.recv(100))
t = S.socket()
step('UDP_CORK on TCP', lambda: t.setsockopt(S.IPPROTO_UDP, 1, 1)); step('get UDP_CORK on TCP', lambda: t.getsockopt(S.IPPROTO_UDP, 1))
t6 = S.socket(S.AF_INET6); step('get UDP_CORK on TCPv6', lambda: t6.getsockopt(S.IPPROTO_UDP, 1))
step('accept on UDP', lambda: v.accept())
t.bind(('127.0.0.1', 0)); step('accept before listen', lambda: t.accept())
step('unknown congestion control', lambda: t.setsockopt(S.IPPROTO_TCP, S.TCP_CONGESTION, b'no-such-cc'))
`;

t.test('MSG_MORE and UDP_CORK make one datagram of several calls; accept on UDP and unknown option levels as Linux', async (t) => {
  await sameAsLinux(t, 'udp-more', UDP_MORE, /^sendmsg MSG_MORE, then send b'1234'$[\s\S]*^UDP_CORK off b'xyz'\nUDP_CORK on TCP ENOPROTOOPT\nget UDP_CORK on TCP ENOTSUP$/m);
});

// recvfrom's name length is read and checked when the name is written back, after the receive (__sys_recvfrom,
// move_addr_to_user): a negative length is EINVAL and a missing one EFAULT with the datagram (or bytes) consumed,
// a short one truncates the name and gets the full length back. Through libc, since Python's recvfrom always
// passes a good length.
const RECVFROM_LEN = `
import socket, ctypes, errno, time
libc = ctypes.CDLL(None, use_errno=True)
def rf(s, buf, addr, lenp):
    r = libc.recvfrom(s.fileno(), buf, len(buf), 0, addr, lenp)
    return r if r >= 0 else errno.errorcode[ctypes.get_errno()]
for fam, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):
    u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((host, 0)); u.setblocking(False)
    v = socket.socket(fam, socket.SOCK_DGRAM); v.bind((host, 0))
    buf = ctypes.create_string_buffer(64); addr = ctypes.create_string_buffer(128)
    def send(m): v.sendto(m, u.getsockname()); time.sleep(0.05)
    send(b'negative'); n = ctypes.c_int(-1)
    print(fam, 'addrlen -1', rf(u, buf, addr, ctypes.byref(n)), 'then', rf(u, buf, None, None))
    send(b'nolenp'); print(fam, 'addr without addrlen', rf(u, buf, addr, None), 'then', rf(u, buf, None, None))
    send(b'short'); n = ctypes.c_int(4); ctypes.memset(addr, 0xee, 128)
    print(fam, 'addrlen 4', rf(u, buf, addr, ctypes.byref(n)), buf.value, 'len back', n.value, addr.raw[:2].hex(), addr.raw[4:6].hex())
    send(b'zero'); n = ctypes.c_int(0); ctypes.memset(addr, 0xee, 128)
    print(fam, 'addrlen 0', rf(u, buf, addr, ctypes.byref(n)), 'len back', n.value, addr.raw[:2].hex())
    t = socket.socket(fam); t.bind((host, 0)); t.listen(1); c = socket.create_connection(t.getsockname()[:2]); s, _ = t.accept()
    c.sendall(b'tcp'); time.sleep(0.05); n = ctypes.c_int(-1)
    print(fam, 'tcp addrlen -1', rf(s, buf, addr, ctypes.byref(n)))
    c.sendall(b'tcp2'); time.sleep(0.05); n = ctypes.c_int(16)
    print(fam, 'tcp addrlen 16', rf(s, buf, addr, ctypes.byref(n)), 'len back', n.value)
    for x in (u, v, t, c, s): x.close()
`;

t.test("recvfrom's address length checked after the receive, as Linux: negative EINVAL, missing EFAULT, short truncates (UDP and TCP, both families)", async (t) => {
  await sameAsLinux(t, 'recvfrom-len', RECVFROM_LEN, /^2 addrlen -1 EINVAL then EAGAIN\n2 addr without addrlen EFAULT then EAGAIN\n2 addrlen 4 5 b'shortpve' len back 16 0200 eeee$/m);
});

// A non-blocking connect refused: Linux's poll shows POLLERR (with POLLHUP, POLLIN, POLLOUT, POLLRDHUP) until
// the error is read by getsockopt(SO_ERROR), connect() or a read, never POLLOUT alone (which haproxy's health
// check takes for an established connection). Twenty attempts per family, as the pair's failure races the poll.
const REFUSED = `
import socket, select, errno
def closed_port(fam, host):
    s = socket.socket(fam); s.bind((host, 0)); p = s.getsockname()[1]; s.close(); return p
def attempt(fam, host, port):
    s = socket.socket(fam); s.setblocking(False)
    e = s.connect_ex((host, port))
    p = select.poll(); p.register(s, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
    ev = p.poll(2000)
    return s, p, errno.errorcode[e], hex(ev[0][1] if ev else 0)
def again(p):
    ev = p.poll(0)
    return hex(ev[0][1] if ev else 0)
def soerr(s):
    e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return errno.errorcode.get(e, e)
for fam, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):
    port = closed_port(fam, host)
    seen = {}
    for i in range(20):
        s, p, e, r1 = attempt(fam, host, port)
        k = (e, r1, soerr(s), again(p), soerr(s))
        seen[k] = seen.get(k, 0) + 1
        s.close()
    print(fam, 'poll, SO_ERROR, poll, SO_ERROR:', sorted(seen.items()))
    s, p, e, r1 = attempt(fam, host, port)
    print(fam, 'connect again:', r1, errno.errorcode[s.connect_ex((host, port))], 'then', soerr(s))
    s.close()
    s, p, e, r1 = attempt(fam, host, port)
    try:
        s.recv(1); r = 'data'
    except OSError:
        r = 'error'
    print(fam, 'recv:', r1, r, 'then', again(p), soerr(s))
    s.close()
`;

t.test('a refused non-blocking connect polls POLLERR until its error is read (SO_ERROR, connect, recv), as Linux', async (t) => {
  await sameAsLinux(t, 'refused', REFUSED, /^2 poll, SO_ERROR, poll, SO_ERROR: \[\(\('EINPROGRESS', '0x201d', 'ECONNREFUSED', '0x2015', 0\), 20\)\]\n2 connect again: 0x201d ECONNREFUSED then 0\n2 recv: 0x201d error then 0x2015 0$/m);
});

t.test('ids 1-65535 exist inside and root keeps its namespaced capabilities: chown to 101:102, a child setuid to it makes files in /tmp and /dev/shm (1777, as Linux\'s)', async (t) => {
  const r = await py('ids', `
import os
print('map', open('/proc/self/uid_map').read().split())
open('/tmp/f', 'w').close(); os.chown('/tmp/f', 101, 102); st = os.stat('/tmp/f'); print('chown', st.st_uid, st.st_gid)
pid = os.fork()
if pid == 0:
    os.setgroups([]); os.setgid(102); os.setuid(101)
    print('child', os.getuid(), os.getgid(), flush=True)
    for d in ['/tmp', '/dev/shm']:
        open(d + '/by101', 'w').close(); print(d, oct(os.stat(d).st_mode & 0o7777), os.stat(d + '/by101').st_uid, flush=True)
    try: os.setuid(0)
    except PermissionError: print('cannot return to root')
    os._exit(0)
os.waitpid(pid, 0)
try: open('/etc/shadow').read(); print('shadow read')
except PermissionError: print('shadow refused')
`, [], ['--network=none']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `map ['0', '65534', '1', '1', '${0x70000001}', '65535']\nchown 101 102\nchild 101 102\n/tmp 0o1777 101\n/dev/shm 0o1777 101\ncannot return to root\nshadow refused\n`);
  t.end();
});

t.test("nginx with its default `user nobody;` serves inside run --network=none (its workers chown and setuid to 65534)", async (t) => {
  const script = b.file('nginx.sh', `
mkdir -p /tmp/ng/logs /tmp/ng/html && echo hello-from-nginx > /tmp/ng/html/index.html
cat > /tmp/ng/nginx.conf <<'C'
daemon off; worker_processes 2; pid /tmp/ng/nginx.pid; error_log /tmp/ng/logs/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path /tmp/ng/cb; proxy_temp_path /tmp/ng/px; fastcgi_temp_path /tmp/ng/fc;
  uwsgi_temp_path /tmp/ng/uw; scgi_temp_path /tmp/ng/sc; server { listen 127.0.0.1:5380; root /tmp/ng/html; } }
C
nginx -c /tmp/ng/nginx.conf -p /tmp/ng & P=$!
for i in $(seq 50); do curl -s http://127.0.0.1:5380/ && break; sleep 0.2; done
# One worker can answer while the other has not yet dropped to nobody: wait for both (at most 5 s), then list.
for i in $(seq 50); do [ "$(ps -o user= -C nginx | grep -c '^ *nobody')" -ge 2 ] && break; sleep 0.1; done
ps -o user= -C nginx | sort | uniq -c | tr -s ' '
kill $P; wait $P
`);
  const r = await tsvisorRun(b.ns, [...b.bind, '--network=none', '--', 'bash', script]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^hello-from-nginx$/m, 'served');
  t.match(r.stdout, /^ ?2 nobody$/m, 'two workers run as nobody');
  t.end();
});

t.test('the program fills every buffer towards a peer that is not reading and exits at once → the peer, reading only afterwards, gets every byte, then EOF', async (t) => {
  // A peer that accepts, waits until the program has exited (a file appears), then reads to EOF.
  const go = join(b.dir, 'go');
  const slow = b.peer(['python3', '-c', `
import socket, os, time, hashlib
l = socket.create_server(('0.0.0.0', 7520)); print('ready', flush=True)
c, _ = l.accept()
while not os.path.exists('${go}'): time.sleep(0.01)
h = hashlib.sha256(); n = 0
while True:
    d = c.recv(65536)
    if not d: break
    h.update(d); n += len(d)
print(n, h.hexdigest(), flush=True)
`]);
  let peerOut = '';
  slow.stdout!.on('data', (d) => (peerOut += d));
  t.ok(await listening(b.ns, 7520));
  const data = Buffer.alloc(4 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
  const run = await start(b, [...b.bind, '--', 'python3', b.file('burst.py', `
import socket
data = bytes((i * 7 + (i >> 12)) & 0xff for i in range(4 << 20))
s = socket.create_connection((socket.gethostbyname('host.tsvisor.internal'), 7520))
s.setblocking(False)
sent = 0
while sent < len(data):
    try:
        sent += s.send(data[sent:sent + 65536])
    except BlockingIOError:
        break
print('queued', sent, flush=True)
`)]);
  t.ok(await waitFor(() => readOr(run.log).includes('program exited'), HANG_MS), 'the program exited');
  const queued = Number(/queued (\d+)/.exec(run.stdout())?.[1]);
  t.ok(queued > 0, `${queued} bytes written before exit (until every buffer on the way was full)`);
  writeFileSync(go, '');
  t.ok(await waitFor(() => peerOut.includes(' '), HANG_MS), 'the peer read to EOF');
  const { createHash } = await import('node:crypto');
  t.equal(peerOut.trim().split('\n').pop(), `${queued} ${createHash('sha256').update(data.subarray(0, queued)).digest('hex')}`, 'every byte, in order, then FIN');
  const res = await run.done;
  t.equal(res.code, 0, res.stderr);
  const drained = Number(/drain: (\S+) ms \(--drain-timeout 5000 ms\)/.exec(readOr(run.log))?.[1]);
  t.ok(drained < 5000, `drained in ${drained} ms, before the timeout`);
  // The log ends with the netstack's counters that are not zero: the connection's segments among them.
  const segments = Number(/netstack counters: .*\btcp\.segmentsSent=(\d+)/.exec(readOr(run.log))?.[1]);
  t.ok(segments > 0, `${segments} TCP segments counted for ${queued} bytes`);
  const frames = Number(/link counters: .*\brxFrames=(\d+)/.exec(readOr(run.log))?.[1]);
  t.ok(frames > 0, `${frames} frames counted on the veth`);
  t.end();
});

t.test('a peer that never reads → tsvisor gives up after --drain-timeout and exits with the program\'s status', async (t) => {
  b.peer(['python3', '-c', `
import socket, time
l = socket.create_server(('0.0.0.0', 7521)); c, _ = l.accept(); time.sleep(3600)
`]);
  t.ok(await listening(b.ns, 7521));
  const run = await start(b, ['--drain-timeout', '1', '--', 'python3', '-c', `
import socket, sys
s = socket.create_connection((socket.gethostbyname('host.tsvisor.internal'), 7521)); s.setblocking(False)
try:
    while True: s.send(b'x' * 65536)
except BlockingIOError:
    pass
sys.exit(3)
`]);
  const res = await run.done;
  t.equal(res.code, 3, res.stderr);
  const log = readOr(run.log);
  const drained = Number(/drain: (\S+) ms \(--drain-timeout 1000 ms\)/.exec(log)?.[1]);
  t.ok(drained >= 1000, `gave up after ${drained} ms`);
  t.end();
});

t.test('a connect that timed out, then exit → tsvisor does not wait out --drain-timeout (nothing of the program\'s to deliver)', async (t) => {
  // 198.18.255.1 is routed to the caller's end of the veth, where nothing routes it further: the SYN gets no answer.
  const run = await start(b, ['--', 'python3', '-c', `
import socket
try:
    socket.create_connection(('198.18.255.1', 80), timeout=1); print('connected')
except OSError as e:
    print(type(e).__name__)
`]);
  const res = await run.done;
  t.equal(res.code, 0, res.stderr);
  t.equal(res.stdout, 'TimeoutError\n');
  const drained = Number(/drain: (\S+) ms \(--drain-timeout 5000 ms\)/.exec(readOr(run.log))?.[1]);
  t.ok(drained < 5000, `drained in ${drained} ms, not at the timeout`);
  t.end();
});

t.test('the program closes its listener with a connection not yet accepted → the peer gets a RST (ECONNRESET), as from Linux', async (t) => {
  // The program lives on until the test has the peer's outcome (a file beside it), so the RST is its close's.
  const seen = b.file('listen-close-peer-done', '');
  rmSync(join(b.dir, 'listen-close-peer-done'));
  const run = await start(b, [...b.bind, '--', 'python3', '-c', `
import os, socket, select, time
l = socket.create_server(('0.0.0.0', 9700)); print('ready', flush=True)
select.select([l], [], [], 60)  # a connection is queued
l.close(); print('closed', flush=True)
end = time.time() + 60
while not os.path.exists('${seen}') and time.time() < end: time.sleep(0.01)
`]);
  t.ok(await waitFor(() => run.stdout().includes('ready'), HANG_MS));
  const peer = await collect(b.peer(['python3', '-c', `
import socket
s = socket.create_connection(('${run.sandbox4}', 9700), timeout=30)
try:
    print('recv', s.recv(10))
except OSError as e:
    print(type(e).__name__)
`]), HANG_MS);
  t.equal(peer.stdout, 'ConnectionResetError\n', peer.stderr);
  b.file('listen-close-peer-done', '');
  const res = await run.done;
  t.equal(res.code, 0, res.stderr);
  t.end();
});
