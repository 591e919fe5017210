// Behaviours where tsvisor follows Linux over a literal RFC reading (each found by the conformance corpus).
import t, { type Test } from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import { ShutdownWrite } from '../../../../netstack/socket.ts';
import { State } from '../../../../netstack/transport/tcp/state.ts';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../../../netstack/wire/tcp.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { createTsvisorDut } from '../../../packetdrill/dut-tsvisor.ts';
import { runScript } from '../../../packetdrill/interpreter.ts';
import { parseScript } from '../../../packetdrill/parse.ts';
import { Harness, LISTEN_PORT, LOCAL, REMOTE, pattern } from './helper.ts';

t.test('LISTEN close() with a SYN-RECEIVED child → no RST; its next segment → stateless RST <SEQ=SEG.ACK> without ACK', async (t) => {
  const h = new Harness();
  const l = h.listen(1);
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK });
  l.close();
  h.expectNone(100);
  t.equal(h.tcp.lookupConnected(LOCAL, LISTEN_PORT, REMOTE, h.peerPort), undefined);
  h.send({ flags: TCP_ACK | TCP_PSH, seq: h.peerNxt + 1, ack: sa.seq + 1 });
  h.expect({ flags: TCP_RST, seq: sa.seq + 1, ack: 0, window: 0 });
  h.expectNone();
});

t.test('LISTEN close() with an ESTABLISHED child in the accept queue → RST-ACK for it', async (t) => {
  const h = new Harness();
  const l = h.listen(1);
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: sa.seq + 1 });
  l.close();
  h.expect({ flags: TCP_RST | TCP_ACK, seq: sa.seq + 1, ack: h.peerNxt + 1 });
  t.equal(l.state, State.Closed);
});

for (const state of [State.LastAck, State.Closing]) {
  const name = state === State.LastAck ? 'LAST-ACK' : 'CLOSING';
  t.test(`${name} rcv RST at RCV.NXT → CLOSED, SO_ERROR ECONNRESET (Linux tcp_reset)`, async (t) => {
    const h = new Harness();
    const ep = h.connect({ mss: 1460 });
    if (state === State.LastAck) {
      h.send({ flags: TCP_ACK | TCP_FIN, ack: h.iss + 1 });
      h.peerNxt++;
      h.expect({ flags: TCP_ACK, ack: h.peerNxt });
      ep.shutdown(ShutdownWrite);
      h.expect({ flags: TCP_ACK | TCP_FIN, seq: h.iss + 1 });
    } else {
      ep.shutdown(ShutdownWrite);
      h.expect({ flags: TCP_ACK | TCP_FIN, seq: h.iss + 1 });
      h.send({ flags: TCP_ACK | TCP_FIN, ack: h.iss + 1 });
      h.peerNxt++;
      h.expect({ flags: TCP_ACK, ack: h.peerNxt });
    }
    t.equal(ep.state, state);
    h.send({ flags: TCP_RST, seq: h.peerNxt });
    t.equal(ep.state, State.Closed);
    t.equal(ep.takeError(), Err.ConnectionReset);
    h.expectNone();
  });
}

/** A connection driven into TIME-WAIT by an active close: our FIN, the peer's FIN+ACK, our ACK of it. */
function intoTimeWait(t: Test): { h: Harness; ep: TcpEndpoint } {
  const h = new Harness();
  const ep = h.connect({ mss: 1460 });
  ep.shutdown(ShutdownWrite);
  h.expect({ flags: TCP_ACK | TCP_FIN, seq: h.iss + 1 });
  h.send({ flags: TCP_ACK | TCP_FIN, ack: h.iss + 2 });
  h.peerNxt++;
  h.expect({ flags: TCP_ACK, seq: h.iss + 2, ack: h.peerNxt });
  t.equal(ep.state, State.TimeWait);
  return { h, ep };
}

t.test('TIME-WAIT rcv bare ACK at RCV.NXT → nothing; in-window ACK beyond RCV.NXT → ACK (Linux tcp_timewait_state_process)', async (t) => {
  const { h, ep } = intoTimeWait(t);
  h.advance(100);
  h.send({ flags: TCP_ACK, ack: h.iss + 2 });
  h.expectNone();
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: h.iss + 2 });
  h.expect({ flags: TCP_ACK, seq: h.iss + 2, ack: h.peerNxt });
  h.expectNone();
  t.equal(ep.state, State.TimeWait);
});

t.test('TCP_LINGER2 1 s: orphan in FIN-WAIT-2 closes after 1 s; then an ACK → stateless RST', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: 1460 });
  t.equal(ep.getOption('TCP_LINGER2'), 60, 'default: tcp_fin_timeout in seconds');
  t.equal(ep.setOption('TCP_LINGER2', 1), undefined);
  t.equal(ep.getOption('TCP_LINGER2'), 1);
  ep.close();
  h.expect({ flags: TCP_ACK | TCP_FIN, seq: h.iss + 1 });
  h.send({ flags: TCP_ACK, ack: h.iss + 2 });
  t.equal(ep.state, State.FinWait2);
  h.advance(999);
  t.equal(ep.state, State.FinWait2);
  h.advance(1);
  t.equal(ep.state, State.Closed);
  h.send({ flags: TCP_ACK, ack: h.iss + 2 });
  h.expect({ flags: TCP_RST, seq: h.iss + 2, ack: 0 });
});

t.test('TCP_LINGER2 -1: orphan closes as soon as its FIN is acknowledged; values clamp as Linux', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: 1460 });
  t.equal(ep.setOption('TCP_LINGER2', 1000), undefined);
  t.equal(ep.getOption('TCP_LINGER2'), 120);
  t.equal(ep.setOption('TCP_LINGER2', -5), undefined);
  t.equal(ep.getOption('TCP_LINGER2'), -1);
  ep.close();
  h.expect({ flags: TCP_ACK | TCP_FIN, seq: h.iss + 1 });
  h.send({ flags: TCP_ACK, ack: h.iss + 2 });
  t.equal(ep.state, State.Closed);
  h.expectNone();
});

t.test('TCP_DEFER_ACCEPT: seconds ↔ SYN-ACK retransmissions as Linux (5 → 7, 3 → 3, 1 → 1, 0 → 0)', async (t) => {
  const h = new Harness();
  const l = h.tcp.newEndpoint(4);
  for (const [set, got] of [[5, 7], [3, 3], [1, 1], [0, 0], [-1, 0]] as const) {
    t.equal(l.setOption('TCP_DEFER_ACCEPT', set), undefined);
    t.equal(l.getOption('TCP_DEFER_ACCEPT'), got, `set ${set}`);
  }
});

t.test('SYN-RECEIVED under TCP_DEFER_ACCEPT: bare ACK dropped, no SYN-ACK until the last round; data → accept', async (t) => {
  const h = new Harness();
  const l = h.tcp.newEndpoint(4);
  l.setOption('TCP_DEFER_ACCEPT', 5);
  l.bind({ address: new Uint8Array(4), port: LISTEN_PORT });
  l.listen(1);
  h.localPort = LISTEN_PORT;
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: sa.seq + 1 });
  t.equal(l.accept(), Err.WouldBlock);
  // Deferral of 3 rounds: the timers at 1 s and 3 s stay silent, the one at 7 s resends the SYN-ACK.
  h.expectNone(6999);
  h.advance(1);
  h.expect({ flags: TCP_SYN | TCP_ACK, seq: sa.seq });
  h.send({ flags: TCP_ACK | TCP_PSH, seq: h.peerNxt + 1, ack: sa.seq + 1, payload: Uint8Array.from([1, 2, 3, 4]) });
  const a = l.accept();
  if ('errno' in a) throw new Error(String(a));
  const r = a.endpoint.read();
  t.same('data' in r ? [...r.data] : r, [1, 2, 3, 4]);
});

t.test('SYN-RECEIVED under TCP_DEFER_ACCEPT: a bare ACK after the deferral ends completes the connection', async (t) => {
  const h = new Harness();
  const l = h.tcp.newEndpoint(4);
  l.setOption('TCP_DEFER_ACCEPT', 3);
  l.bind({ address: new Uint8Array(4), port: LISTEN_PORT });
  l.listen(1);
  h.localPort = LISTEN_PORT;
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: sa.seq + 1 });
  h.expectNone(2999);
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: sa.seq + 1 });
  t.equal(l.accept(), Err.WouldBlock, 'still deferred');
  h.advance(1);
  h.expect({ flags: TCP_SYN | TCP_ACK, seq: sa.seq });
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: sa.seq + 1 });
  t.notOk('errno' in l.accept());
});

t.test('ESTABLISHED write 2000 → 1460 + 540 at once (Minshall); a further small write waits for the small one\'s ACK', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: 1460 });
  const s = h.iss + 1;
  const p = h.peerNxt;
  t.equal(ep.write(new Uint8Array(2000)), 2000);
  h.expect({ flags: TCP_ACK, seq: s, len: 1460 });
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: s + 1460, len: 540 });
  t.equal(ep.write(new Uint8Array(10)), 10);
  h.expectNone();
  // The full segment's ACK leaves the small one in flight: still held.
  h.send({ flags: TCP_ACK, seq: p, ack: s + 1460 });
  h.expectNone();
  h.send({ flags: TCP_ACK, seq: p, ack: s + 2000 });
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: s + 2000, len: 10 });
});

// ICMP errors while connecting fail connect() with Linux's errno (icmp_err_convert, icmpv6_err_convert).
const ICMP_TABLE = [
  { name: 'ICMPv4 net unreachable', family: 4, type: 3, code: 0, kind: 'net-unreachable', errno: Err.NetworkUnreachable },
  { name: 'ICMPv4 protocol unreachable', family: 4, type: 3, code: 2, kind: 'protocol-unreachable', errno: Err.ProtocolNotAvailable },
  { name: 'ICMPv4 port unreachable', family: 4, type: 3, code: 3, kind: 'port-unreachable', errno: Err.ConnectionRefused },
  { name: 'ICMPv4 net prohibited', family: 4, type: 3, code: 9, kind: 'admin-prohibited', errno: Err.NetworkUnreachable },
  { name: 'ICMPv4 host prohibited', family: 4, type: 3, code: 10, kind: 'admin-prohibited', errno: Err.HostUnreachable },
  { name: 'ICMPv4 communication prohibited', family: 4, type: 3, code: 13, kind: 'admin-prohibited', errno: Err.HostUnreachable },
  { name: 'ICMPv4 time exceeded', family: 4, type: 11, code: 0, kind: 'time-exceeded', errno: Err.HostUnreachable },
  { name: 'ICMPv4 parameter problem', family: 4, type: 12, code: 0, kind: 'parameter-problem', errno: Err.ProtocolError },
  { name: 'ICMPv6 no route', family: 6, type: 1, code: 0, kind: 'net-unreachable', errno: Err.NetworkUnreachable },
  { name: 'ICMPv6 administratively prohibited', family: 6, type: 1, code: 1, kind: 'admin-prohibited', errno: Err.PermissionDenied },
  { name: 'ICMPv6 port unreachable', family: 6, type: 1, code: 4, kind: 'port-unreachable', errno: Err.ConnectionRefused },
  { name: 'ICMPv6 unknown next header', family: 6, type: 4, code: 1, kind: 'protocol-unreachable', errno: Err.ProtocolError },
  { name: 'ICMPv6 time exceeded', family: 6, type: 3, code: 0, kind: 'time-exceeded', errno: Err.HostUnreachable },
] as const;

for (const c of ICMP_TABLE) {
  t.test(`SYN-SENT rcv ${c.name} quoting the SYN → CLOSED, ${c.errno.code}`, async (t) => {
    const h = new Harness();
    const ep = h.tcp.newEndpoint(4);
    ep.connect({ address: REMOTE, port: 40000 });
    const syn = h.expect({ flags: TCP_SYN });
    const quoted = new Uint8Array(8);
    const v = new DataView(quoted.buffer);
    v.setUint16(0, syn.srcPort);
    v.setUint16(2, syn.dstPort);
    v.setUint32(4, syn.seq);
    const msg = { kind: c.kind, type: c.type, code: c.code, family: c.family, from: REMOTE, mtu: 0 };
    h.tcp.deliverControl(msg, LOCAL, REMOTE, quoted);
    t.equal(ep.state, State.Closed);
    t.equal(ep.takeError(), c.errno);
  });
}

t.test('SYN-SENT rcv ICMPv4 source quench → ignored', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  ep.connect({ address: REMOTE, port: 40000 });
  const syn = h.expect({ flags: TCP_SYN });
  const quoted = new Uint8Array(8);
  const v = new DataView(quoted.buffer);
  v.setUint16(0, syn.srcPort);
  v.setUint16(2, syn.dstPort);
  v.setUint32(4, syn.seq);
  h.tcp.deliverControl({ kind: 'source-route-failed', type: 4, code: 0, family: 4, from: REMOTE, mtu: 0 }, LOCAL, REMOTE, quoted);
  t.equal(ep.state, State.SynSent);
});

t.test('SYN-SENT rcv SYN with data → SYN-ACK acks only the SYN; ACK → ESTABLISHED, the data readable', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  ep.connect({ address: REMOTE, port: 40000 });
  const syn = h.expect({ flags: TCP_SYN });
  h.localPort = syn.srcPort;
  h.send({ flags: TCP_SYN, options: { mss: 1460 }, payload: Uint8Array.from([7, 8, 9]) });
  h.expect({ flags: TCP_SYN | TCP_ACK, seq: syn.seq, ack: h.peerNxt + 1 });
  t.equal(ep.state, State.SynReceived);
  t.equal(ep.read(), Err.WouldBlock);
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 4, ack: syn.seq + 1 });
  t.equal(ep.state, State.Established);
  const r = ep.read();
  t.same('data' in r ? [...r.data] : r, [7, 8, 9]);
  h.expectNone(1);
  // The delayed ACK acknowledges the SYN's text.
  h.advance(200);
  h.expect({ flags: TCP_ACK, seq: syn.seq + 1, ack: h.peerNxt + 4 });
});

t.test('SYN-RECEIVED (from SYN-SENT) rcv RST at RCV.NXT → CLOSED, ECONNREFUSED', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  ep.connect({ address: REMOTE, port: 40000 });
  const syn = h.expect({ flags: TCP_SYN });
  h.localPort = syn.srcPort;
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  h.expect({ flags: TCP_SYN | TCP_ACK, seq: syn.seq });
  h.send({ flags: TCP_RST, seq: h.peerNxt + 1 });
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.ConnectionRefused);
});

// Linux starts every connection in quick-ACK mode (tcp_event_data_recv: the first data sets icsk_ack.quick), the
// accepted child included, so its first data is acknowledged at once, not after the delayed-ACK timer.
t.test('SYN-RECEIVED rcv handshake ACK carrying data → ACK of the data at once (gVisor accept_ack_drop)', async (t) => {
  const h = new Harness();
  const l = h.listen(1);
  h.send({ flags: TCP_SYN, options: { mss: 1460, sackPermitted: true, wscale: 7 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK, ack: h.peerNxt + 1 });
  h.peerNxt++;
  h.send({ flags: TCP_ACK, ack: sa.seq + 1, payload: Uint8Array.from([1, 2, 3, 4]) });
  h.expect({ flags: TCP_ACK, seq: sa.seq + 1, ack: h.peerNxt + 4, len: 0 });
  h.expectNone(1000);
  const a = l.accept();
  if ('errno' in a) return t.fail(`accept: ${a}`);
  const r = (a.endpoint as TcpEndpoint).read();
  t.same('data' in r ? [...r.data] : r, [1, 2, 3, 4]);
});

t.test('ESTABLISHED (accepted) rcv first data segment → ACK at once; the next ones too while quick-ACK lasts', async (t) => {
  const h = new Harness();
  const child = h.accept(h.listen());
  t.equal(child.state, State.Established);
  h.expectNone();
  for (let i = 0; i < 3; i++) {
    h.send({ flags: TCP_ACK | TCP_PSH, ack: h.iss + 1, payload: pattern(100, i), options: { tsVal: 200 + i, tsEcr: 0 } });
    h.peerNxt += 100;
    h.expect({ flags: TCP_ACK, seq: h.iss + 1, ack: h.peerNxt, len: 0 });
  }
  h.expectNone(1000);
});

t.test('SYN-RECEIVED via SYN cookie rcv ACK carrying data → ACK of the data at once', async (t) => {
  const h = new Harness();
  h.listen(1);
  // The first SYN fills the one-slot SYN queue; the second is answered with a cookie.
  h.send({ flags: TCP_SYN, srcPort: 40001, options: { mss: 1460 } });
  h.expect({ flags: TCP_SYN | TCP_ACK });
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK, ack: h.peerNxt + 1 });
  t.equal(h.tcp.lookupConnected(LOCAL, LISTEN_PORT, REMOTE, h.peerPort), undefined, 'no state kept: a cookie');
  h.peerNxt++;
  h.send({ flags: TCP_ACK, ack: sa.seq + 1, payload: Uint8Array.from([1, 2, 3, 4]) });
  h.expect({ flags: TCP_ACK, seq: sa.seq + 1, ack: h.peerNxt + 4, len: 0 });
});

// RFC 9293 §3.10.7.4: an unacceptable segment is answered with an ACK (first check) before the ACK bit is looked
// at; an acceptable one without the ACK bit is dropped (fifth check). FreeBSD drops every ACK-less segment in
// TIME-WAIT (its suite's Note 1 calls that a departure from RFC 793); Linux ACKs them all.
const TW_FIN_TABLE = [
  { where: 'RCV.NXT-1', at: (_wnd: number) => -1, ack: true },
  { where: 'RCV.NXT', at: (_wnd: number) => 0, ack: false },
  { where: 'RCV.NXT+1', at: (_wnd: number) => 1, ack: false },
  { where: 'RCV.NXT+RCV.WND-1', at: (wnd: number) => wnd - 1, ack: false },
  { where: 'RCV.NXT+RCV.WND', at: (wnd: number) => wnd, ack: true },
] as const;

for (const c of TW_FIN_TABLE) {
  t.test(`TIME-WAIT rcv FIN without ACK bit at ${c.where} → ${c.ack ? 'ACK' : 'nothing'}, still TIME-WAIT`, async (t) => {
    const { h, ep } = intoTimeWait(t);
    const wnd = ep.rcv.wnd;
    t.ok(wnd > 1000, `RCV.WND ${wnd}`);
    h.advance(1000);
    h.send({ flags: TCP_FIN, seq: h.peerNxt + c.at(wnd), ack: h.iss + 2 });
    if (c.ack) h.expect({ flags: TCP_ACK, seq: h.iss + 2, ack: h.peerNxt, len: 0 });
    h.expectNone(100);
    t.equal(ep.state, State.TimeWait);
  });
}

/**
 * A TIME-WAIT connection over the whole stack (IP layer included) as a packetdrill script, then a FIN without
 * the ACK bit at RCV.NXT+`at`, answered or not, then an out-of-window ACK past the 500 ms ACK rate limit that
 * must always be answered (so a wrongly sent first ACK shows up as a packet too early or one too many).
 */
function timeWaitFinScript(family: 4 | 6, at: number, answered: boolean): string {
  const mss = family === 4 ? 1460 : 1440;
  return [
    `--ip_version=ipv${family}`,
    '--tolerance_usecs=10000',
    '0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3',
    '+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0',
    '+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)',
    '+0 > S 0:0(0) <...>',
    `+0.1 < S. 0:0(0) ack 1 win 32767 <mss ${mss}>`,
    '+0 > . 1:1(0) ack 1',
    '+0.1 shutdown(3, SHUT_WR) = 0',
    '+0 > F. 1:1(0) ack 1',
    '+0.1 < F. 1:1(0) ack 2 win 32767',
    '+0 > . 2:2(0) ack 2',
    `+1 < F ${2 + at}:${2 + at}(0) ack 2 win 32767`,
    ...(answered ? ['+0 > . 2:2(0) ack 2'] : []),
    '+1 < . 1:1(0) ack 2 win 32767',
    '+0 > . 2:2(0) ack 2',
    '+0.1 close(3) = 0',
  ].join('\n');
}

// Without window scaling RCV.WND is at most 65535, so RCV.NXT+65535 lies beyond the right edge in both families.
for (const family of [4, 6] as const) {
  for (const c of [
    { where: 'RCV.NXT-1', at: -1, ack: true },
    { where: 'RCV.NXT', at: 0, ack: false },
    { where: 'RCV.NXT+1', at: 1, ack: false },
    { where: 'RCV.NXT+65535 (beyond the right edge)', at: 65535, ack: true },
  ]) {
    t.test(`IPv${family} TIME-WAIT rcv FIN without ACK bit at ${c.where} → ${c.ack ? 'ACK' : 'nothing'} (both families alike)`, async (t) => {
      const dut = createTsvisorDut({ ipVersion: family, mtu: 1500 });
      try {
        const r = await runScript(parseScript(timeWaitFinScript(family, c.at, c.ack), `tw-fin-${family}.pkt`), dut, { profile: 'strict' });
        t.equal(r.verdict, 'pass', `line ${r.line}: ${r.detail}`);
      } finally {
        await dut.close();
      }
    });
  }
}
