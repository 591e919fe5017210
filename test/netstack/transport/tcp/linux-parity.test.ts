// Behaviours where tsvisor follows Linux over a literal RFC reading (each found by the conformance corpus).
import t from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import { ShutdownWrite } from '../../../../netstack/socket.ts';
import { State } from '../../../../netstack/transport/tcp/state.ts';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../../../netstack/wire/tcp.ts';
import { Harness, LISTEN_PORT, LOCAL, REMOTE } from './helper.ts';

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

t.test('TIME-WAIT rcv bare ACK at RCV.NXT → nothing; in-window ACK beyond RCV.NXT → ACK (Linux tcp_timewait_state_process)', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: 1460 });
  ep.shutdown(ShutdownWrite);
  h.expect({ flags: TCP_ACK | TCP_FIN, seq: h.iss + 1 });
  h.send({ flags: TCP_ACK | TCP_FIN, ack: h.iss + 2 });
  h.peerNxt++;
  h.expect({ flags: TCP_ACK, seq: h.iss + 2, ack: h.peerNxt });
  t.equal(ep.state, State.TimeWait);
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
