// Receive control messages of datagram sockets in `tsvisor run`, differential: the same program runs once under
// the netstack (`run --netns A --dev veth`) and once on the host kernel in the same namespace A, against one Linux
// peer in namespace B that answers each request with the TTL/hop limit and TOS/traffic class it asks for. What
// the two runs print must agree: IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR, IPV6_PKTINFO, IPV6_HOPLIMIT,
// IPV6_TCLASS, IPV6_ORIGDSTADDR, SO_TIMESTAMP(NS) within the call, their order, MSG_CTRUNC on a short buffer,
// IP_RECVERR's pending error and error queue for a port unreachable;
// and `ping -6` (busybox's raw socket with RFC 2292's IPV6_2292HOPLIMIT, iputils' with IPV6_RECVHOPLIMIT) shows
// the hop limit the kernel's ping shows.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createVethPair } from '../../lib/testnet.ts';
import { collect, spawnIn, tsvisorRun } from './run-helpers.ts';

const pair = createVethPair({
  prefix: 'tpi', addrA: '198.19.30.1/24', addrB: '198.19.30.2/24', addr6A: 'fd74:7376:30::1/64', addr6B: 'fd74:7376:30::2/64',
});
t.teardown(() => pair.destroy());
const dir = mkdtempSync(join(tmpdir(), 'tpi-cmsg-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
// The program runs as an unprivileged identity inside, where the directory shows at /mnt.
chmodSync(dir, 0o755);
const take = ['--netns', pair.nsA, '--dev', pair.devA, '--ro-bind', `${dir}:/mnt`];
const PORT = 7630;

// The peer: each request "TTL TOS" is answered from a socket set to send with that TTL/hop limit and TOS/class.
const PEER = `
import socket, select, sys, struct
socks = []
for fam, addr in [(socket.AF_INET, '198.19.30.2'), (socket.AF_INET6, 'fd74:7376:30::2')]:
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((addr, ${PORT})); socks.append(s)
    if fam == socket.AF_INET: s.setsockopt(0, 12, 1); s.setsockopt(0, 13, 1)
    else: s.setsockopt(41, 51, 1); s.setsockopt(41, 66, 1)
print('ready', flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        d, anc, flags, a = s.recvmsg(100, 256)
        if d.startswith(b'?'):
            # A question: with what TTL/hop limit and TOS/class did this datagram come?
            seen = {}
            for lvl, typ, data in anc:
                seen[typ] = data[0] if len(data) == 1 else struct.unpack('i', data)[0]
            s.sendto(b'came with ttl=%d tos=%#x' % (seen.get(2, seen.get(52, -1)), seen.get(1, seen.get(67, -1))), a)
            continue
        ttl, tos = map(int, d.split())
        if s.family == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl); s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
        s.sendto(d, a)
`;

// The program: asks for every receive control message of its family, prints them by name in the order they came.
const PROG = `
import socket, struct, sys, time
mode = sys.argv[1]
v6 = mode != 'v4'
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
peer = {'v4': '198.19.30.2', 'v6': 'fd74:7376:30::2', 'mapped': '::ffff:198.19.30.2'}[mode]
if mode == 'v6':
    for opt in (49, 51, 66, 74): s.setsockopt(41, opt, 1)   # IPV6_RECVPKTINFO, _RECVHOPLIMIT, _RECVTCLASS, _RECVORIGDSTADDR
    s.setsockopt(1, 29, 1)                                   # SO_TIMESTAMP (microseconds)
elif mode == 'mapped':
    s.setsockopt(41, 49, 1); s.setsockopt(41, 51, 1)         # IPV6_RECVPKTINFO (given), IPV6_RECVHOPLIMIT (not, for IPv4)
    s.setsockopt(0, 12, 1); s.setsockopt(0, 13, 1)           # IP_RECVTTL, IP_RECVTOS
    s.setsockopt(1, 64, 1)                                   # SO_TIMESTAMPNS_NEW
else:
    for opt in (8, 12, 13, 20): s.setsockopt(0, opt, 1)      # IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, IP_RECVORIGDSTADDR
    s.setsockopt(1, 35, 1)                                   # SO_TIMESTAMPNS
print('options', [s.getsockopt(1, o) for o in (29, 35, 63, 64)])
s.bind(('::' if v6 else '0.0.0.0', 0))
port = s.getsockname()[1]
s.settimeout(10)
def addr6(b): return socket.inet_ntop(socket.AF_INET6, b)
# The interface index names the namespace's link (the veth on the kernel, eth0 as the sandbox shows it), not lo.
def link(i): return 'link' if any(n != 'lo' for j, n in socket.if_nameindex() if j == i) else 'ifindex %d?' % i
def show(anc, t0, t1):
    out = []
    for lvl, typ, data in anc:
        if (lvl, typ) in ((1, 29), (1, 35), (1, 63), (1, 64)):
            sec, frac = struct.unpack('qq', data)
            ns = frac if typ in (35, 64) else frac * 1000
            ts = sec * 10**9 + ns
            # Within the call (2 ms of slack for the clocks of the Sentry and the program), in its unit's range.
            ok = frac < (10**9 if typ in (35, 64) else 10**6) and t0 - 2 * 10**6 <= ts <= t1 + 2 * 10**6
            out.append('stamp/%d %s' % (typ, 'ok' if ok else 'off by %d us' % ((ts - t0) // 1000)))
        elif (lvl, typ) == (0, 8):
            out.append('IP_PKTINFO %s dst=%s spec_dst=%s' % (link(struct.unpack('i', data[:4])[0]), socket.inet_ntoa(data[8:12]), socket.inet_ntoa(data[4:8])))
        elif (lvl, typ) == (0, 2): out.append('IP_TTL=%d' % struct.unpack('i', data)[0])
        elif (lvl, typ) == (0, 1): out.append('IP_TOS=%#x/%d' % (data[0], len(data)))
        elif (lvl, typ) == (0, 20):
            f, p = struct.unpack('=HH', data[:4]); out.append('IP_ORIGDSTADDR=%s:%s' % (socket.inet_ntoa(data[4:8]), socket.ntohs(p) == port))
        elif (lvl, typ) == (41, 50): out.append('IPV6_PKTINFO %s dst=%s' % (link(struct.unpack('i', data[16:20])[0]), addr6(data[:16])))
        elif (lvl, typ) == (41, 52): out.append('IPV6_HOPLIMIT=%d' % struct.unpack('i', data)[0])
        elif (lvl, typ) == (41, 67): out.append('IPV6_TCLASS=%#x' % struct.unpack('i', data)[0])
        elif (lvl, typ) == (41, 74):
            out.append('IPV6_ORIGDSTADDR=%s:%s' % (addr6(data[8:24]), socket.ntohs(struct.unpack('=H', data[2:4])[0]) == port))
        else: out.append('?%d/%d/%d' % (lvl, typ, len(data)))
    return ', '.join(out)
for ttl, tos in ((37, 0x28), (200, 0xb8)):
    t0 = time.time_ns()
    s.sendto(b'%d %d' % (ttl, tos), (peer, ${PORT}))
    d, anc, flags, a = s.recvmsg(100, 512)
    t1 = time.time_ns()
    print('asked ttl=%d tos=%#x: %s flags=%#x' % (ttl, tos, show(anc, t0, t1), flags))
# A buffer with room for the timestamp and one more header only: that message is cut, the rest dropped.
s.sendto(b'1 0', (peer, ${PORT}))
d, anc, flags, a = s.recvmsg(100, socket.CMSG_SPACE(16) + socket.CMSG_LEN(0))
print('short buffer: ctrunc=%s count=%d first=%s' % (bool(flags & socket.MSG_CTRUNC), len(anc), anc[0][:2] if anc else None))
`;

// IP_RECVERR / IPV6_RECVERR: a datagram to a port nobody listens on; the peer's ICMP error comes back as the
// pending error (the next receive fails with it) and as an entry of the error queue. The socket blocks (an alarm
// bounds a hang): under tsvisor poll() shows no POLLERR on the program's end, so a timeout socket, which polls
// first, would wait in vain (see sentry/datapath/dgram.ts).
const RECVERR = `
import socket, struct, sys, time, errno, signal
signal.alarm(20)
v6 = sys.argv[1] == '6'
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(41 if v6 else 0, 25 if v6 else 11, 1)
s.setsockopt(1, 35, 1)   # SO_TIMESTAMPNS: the error's read carries its arrival too
print('option', s.getsockopt(41 if v6 else 0, 25 if v6 else 11))
peer = 'fd74:7376:30::2' if v6 else '198.19.30.2'
s.sendto(b'to nobody', (peer, ${PORT + 1}))
time.sleep(1)
try:
    s.recvfrom(100); print('recvfrom data?')
except OSError as e: print('recvfrom', errno.errorcode[e.errno])
d, anc, flags, a = s.recvmsg(100, 512, socket.MSG_ERRQUEUE)
print('errqueue data', d, 'name', a[0], a[1] == ${PORT + 1}, 'flags', hex(flags))
print('cmsgs', [(lvl, typ) for lvl, typ, data in anc])
for lvl, typ, data in anc:
    if lvl == 1: continue
    ee_errno, origin, typ_, code, pad, info, ee_data = struct.unpack('=IBBBBII', data[:16])
    fam = struct.unpack('=H', data[16:18])[0]
    off = socket.inet_ntop(socket.AF_INET6, data[24:40]) if fam == socket.AF_INET6 else socket.inet_ntoa(data[20:24])
    print('cmsg', lvl, typ, 'errno', errno.errorcode[ee_errno], 'origin', origin, 'type', typ_, 'code', code, 'info', info, 'offender', fam, off)
try:
    s.recvmsg(100, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT); print('second entry?')
except OSError as e: print('empty queue', errno.errorcode[e.errno])
print('SO_ERROR', s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
`;

// A connected UDP socket whose peer port is closed, as a resolver uses one: poll() wakes for the port unreachable
// (POLLERR on Linux; the pair's POLLIN in the sandbox) long before its time-out, the receive fails
// ECONNREFUSED, and nothing of the wake-up is left to read: the next exchange gets the peer's answer.
const WAKE = `
import socket, select, sys, time, errno
v6 = sys.argv[1] == '6'
fam = socket.AF_INET6 if v6 else socket.AF_INET
host = 'fd74:7376:30::2' if v6 else '198.19.30.2'
for rnd in range(2):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.setblocking(False)
    s.connect((host, ${PORT + 1}))
    s.send(b'query to nobody')
    p = select.poll(); p.register(s, select.POLLIN)
    t0 = time.monotonic(); ev = p.poll(5000); dt = time.monotonic() - t0
    print('round', rnd, 'woke' if ev else 'timed out', 'in time' if dt < 4 else 'late')
    try:
        s.recvfrom(100); print('recvfrom data?')
    except OSError as e: print('recvfrom', errno.errorcode[e.errno])
    print('then poll', p.poll(0), 'SO_ERROR', s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    s.connect((host, ${PORT}))
    s.send(b'?')
    p.poll(5000)
    d, a = s.recvfrom(100); print('answer', d[:9])
    s.close()
`;

// sendmsg's own IP_TTL/IP_TOS/IP_PKTINFO (IPV6_HOPLIMIT/IPV6_TCLASS/IPV6_PKTINFO): the peer says what came.
const SEND = `
import socket, struct, sys, errno
v6 = sys.argv[1] == '6'
fam = socket.AF_INET6 if v6 else socket.AF_INET
peer = ('fd74:7376:30::2' if v6 else '198.19.30.2', ${PORT})
me = socket.inet_pton(fam, 'fd74:7376:30::1' if v6 else '198.19.30.1')
other = socket.inet_pton(fam, 'fd74:7376:30::9' if v6 else '198.19.30.9')
L, TTL, TOS, PKT = (41, 52, 67, 50) if v6 else (0, 2, 1, 8)
def pktinfo(addr): return struct.pack('16si', addr, 0) if v6 else struct.pack('i4s4s', 0, addr, b'\\0' * 4)
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(10)
cases = [
    ('ttl+tos by name', [(L, TTL, struct.pack('i', 33)), (L, TOS, struct.pack('i', 0x48))], True),
    ('tos as one byte', [(L, TOS, bytes([0x20]))] if not v6 else [(L, TOS, struct.pack('i', 0x20))], True),
    ('pktinfo ours', [(L, PKT, pktinfo(me))], True),
    ('pktinfo not ours', [(L, PKT, pktinfo(other))], True),
    ('ttl 0', [(L, TTL, struct.pack('i', 0))], True),
    ('ttl short', [(L, TTL, b'\\x05')], True),
]
for name, anc, _ in cases:
    try:
        s.sendmsg([b'?'], anc, 0, peer)
        print(name, s.recv(100).decode())
    except OSError as e: print(name, errno.errorcode[e.errno])
c = socket.socket(fam, socket.SOCK_DGRAM); c.settimeout(10); c.connect(peer)
c.sendmsg([b'?'], [(L, TTL, struct.pack('i', 7))])
print('connected, no name', c.recv(100).decode())
`;

const peerFile = join(dir, 'peer.py');
const progFile = join(dir, 'prog.py');
writeFileSync(peerFile, PEER, { mode: 0o644 });
writeFileSync(progFile, PROG, { mode: 0o644 });
writeFileSync(join(dir, 'recverr.py'), RECVERR, { mode: 0o644 });
writeFileSync(join(dir, 'send.py'), SEND, { mode: 0o644 });
writeFileSync(join(dir, 'wake.py'), WAKE, { mode: 0o644 });

t.before(async () => {
  const peer = spawnIn(pair.nsB, ['python3', '-u', peerFile]);
  t.teardown(() => {
    peer.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the peer did not start')), 30000);
    peer.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    peer.on('exit', (code) => reject(new Error(`the peer exited (${code})`)));
  });
});

/** The program on the host kernel in namespace A, and inside `tsvisor run` on the same namespace's veth. */
async function both(args: string[], file = 'prog.py'): Promise<{ kernel: string; sandbox: string; stderr: string }> {
  const k = await collect(spawnIn(pair.nsA, ['python3', join(dir, file), ...args]), 60000);
  if (k.code !== 0) throw new Error(`kernel run failed: ${k.stderr}`);
  const s = await tsvisorRun(undefined, [...take, '--', 'python3', `/mnt/${file}`, ...args]);
  return { kernel: k.stdout, sandbox: s.code === 0 ? s.stdout : `exit ${s.code}: ${s.stderr}`, stderr: s.stderr };
}

for (const mode of ['v4', 'v6', 'mapped']) {
  t.test(`${mode}: recvmsg's control messages under tsvisor = the host kernel's (values, order, MSG_CTRUNC)`, async (t) => {
    const r = await both([mode]);
    t.equal(r.sandbox, r.kernel, r.stderr);
    // The differential above is the test; these say what it rests on, so a kernel that gave nothing fails too.
    t.match(r.kernel, /asked ttl=37 tos=0x28: stamp\/\d+ ok, /);
    t.match(r.kernel, mode === 'v6' ? /IPV6_HOPLIMIT=200, IPV6_TCLASS=0xb8/ : /IP_TTL=200, IP_TOS=0xb8\/1/);
    t.match(r.kernel, /short buffer: ctrunc=True count=2 first=\(1, \d+\)/);
    t.match(r.kernel, /PKTINFO link dst=/, "IP(V6)_PKTINFO's interface index is the link's");
  });
}

for (const fam of ['4', '6']) {
  t.test(`IPv${fam} IP_RECVERR: the port unreachable is the next receive's error and an error-queue entry, as on the host kernel`, async (t) => {
    const r = await both([fam], 'recverr.py');
    t.equal(r.sandbox, r.kernel, r.stderr);
    t.match(r.kernel, /^recvfrom ECONNREFUSED$/m);
    t.match(r.kernel, /^errqueue data b'to nobody' name \S+ True flags 0x2000$/m, 'the datagram it was about, MSG_ERRQUEUE');
    t.match(r.kernel, /^cmsg \d+ \d+ errno ECONNREFUSED origin \d type \d+ code \d+ info 0 offender \d+ \S+$/m);
    t.match(r.kernel, /^empty queue EAGAIN$/m);
    t.match(r.kernel, /^cmsgs \[\(1, 35\), \(\d+, \d+\)\]$/m, 'the timestamp first, then the error');
  });
}

for (const fam of ['4', '6']) {
  t.test(`IPv${fam} connected UDP, port closed: poll wakes for the port unreachable, recvfrom ECONNREFUSED, nothing left behind, as on the host kernel`, async (t) => {
    const r = await both([fam], 'wake.py');
    t.equal(r.sandbox, r.kernel, r.stderr);
    t.match(r.kernel, /^round 1 woke in time$/m);
    t.match(r.kernel, /^recvfrom ECONNREFUSED$/m);
    t.match(r.kernel, /^then poll \[\] SO_ERROR 0$/m);
    t.match(r.kernel, /^answer b'came with'$/m);
  });
}

for (const fam of ['4', '6']) {
  t.test(`IPv${fam} sendmsg control messages: its own TTL/hop limit, TOS/class, source; bad ones EINVAL, as on the host kernel`, async (t) => {
    const r = await both([fam], 'send.py');
    t.equal(r.sandbox, r.kernel, r.stderr);
    t.match(r.kernel, /^ttl\+tos by name came with ttl=33 tos=0x48$/m);
    t.match(r.kernel, fam === '4' ? /^pktinfo not ours ENETUNREACH$/m : /^pktinfo not ours EINVAL$/m);
    t.match(r.kernel, /^connected, no name came with ttl=7 /m);
  });
}

t.test('ping -6: busybox (raw socket, IPV6_2292HOPLIMIT) and iputils (IPV6_RECVHOPLIMIT) show the hop limit the kernel ping shows', async (t) => {
  for (const argv of [['busybox', 'ping', '-6', '-c', '2', '-i', '0.2', 'fd74:7376:30::2'], ['ping', '-6', '-c', '2', '-i', '0.2', 'fd74:7376:30::2']]) {
    const k = await collect(spawnIn(pair.nsA, argv), 60000);
    const kernelTtl = /ttl=(-?\d+)/.exec(k.stdout)?.[1];
    t.ok(kernelTtl !== undefined && Number(kernelTtl) > 0, `${argv[0]} on the kernel: ttl=${kernelTtl}`);
    const s = await tsvisorRun(undefined, [...take, '--allow-raw', '--', ...argv]);
    t.equal(s.code, 0, s.stderr + s.stdout);
    const lines = s.stdout.split('\n').filter((l) => /bytes from/.test(l));
    t.equal(lines.length, 2, s.stdout);
    for (const l of lines) t.match(l, new RegExp(`ttl=${kernelTtl} `), `${argv[0]} in tsvisor: ${l}`);
  }
});

t.test('iputils ping (IPv4, a ping socket inside): the TTL from IP_RECVTTL as the kernel ping shows it, no option refused', async (t) => {
  const argv = ['ping', '-c', '2', '-i', '0.2', '198.19.30.2'];
  const k = await collect(spawnIn(pair.nsA, argv), 60000);
  const kernelTtl = /ttl=(\d+)/.exec(k.stdout)?.[1];
  t.ok(kernelTtl !== undefined, `the kernel's ping: ttl=${kernelTtl}`);
  const s = await tsvisorRun(undefined, [...take, '--', ...argv]);
  t.equal(s.code, 0, s.stderr + s.stdout);
  t.match(s.stdout, new RegExp(`icmp_seq=2 ttl=${kernelTtl} time=`));
  t.notMatch(s.stderr, /WARNING/, 'IP_RECVOPTS/IP_RETOPTS accepted as Linux does');
});
