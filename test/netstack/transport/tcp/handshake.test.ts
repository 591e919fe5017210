import t from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import * as seq from '../../../../netstack/seqnum.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { COOKIE_TICK_MS } from '../../../../netstack/transport/tcp/cookie.ts';
import { State } from '../../../../netstack/transport/tcp/state.ts';
import { EventOut } from '../../../../netstack/waiter.ts';
import { TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN } from '../../../../netstack/wire/tcp.ts';
import { Harness, LISTEN_PORT, PEER_PORT, REMOTE } from './helper.ts';

t.test('CLOSED connect → SYN with MSS, SACK-permitted, timestamps, wscale; SYN-ACK → ESTABLISHED + ACK', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  let woke = 0;
  ep.waiter.subscribe(EventOut, () => woke++);
  t.equal(ep.connect({ address: REMOTE, port: PEER_PORT }), Err.ConnectStarted);
  t.equal(ep.state, State.SynSent);
  // Half the 128 KB default buffer in whole MSS (Linux's tcp_select_initial_window), probed on Linux 6.18.
  const syn = h.expect({ flags: TCP_SYN, ack: 0, window: 64240 });
  t.same(syn.options.mss, 1460);
  t.ok(syn.options.sackPermitted);
  t.equal(syn.options.wscale, 7, 'wscale fits the 6 MiB maximum buffer');
  t.equal(syn.options.tsEcr, 0);
  t.ok(syn.srcPort >= 32768 && syn.srcPort <= 60999, 'ephemeral port in Linux range');
  t.equal(ep.readiness(EventOut), 0, 'not writable while connecting');
  h.localPort = syn.srcPort;
  h.send({ flags: TCP_SYN | TCP_ACK, ack: syn.seq + 1, options: { mss: 1000, sackPermitted: true, tsVal: 5, tsEcr: syn.options.tsVal!, wscale: 2 } });
  const ack = h.expect({ flags: TCP_ACK, seq: syn.seq + 1, ack: h.peerNxt + 1 });
  t.equal(ack.options.tsEcr, 5, 'echoes the peer timestamp');
  t.equal(ep.state, State.Established);
  t.ok(ep.readiness(EventOut), 'writable once established');
  t.ok(woke > 0, 'waiter notified');
  t.equal(ep.snd.mss, 1000 - 12, 'MSS is the peer MSS minus the timestamp option');
  t.equal(ep.snd.shift, 2);
  t.equal(ep.rcv.shift, 7);
  t.ok(ep.sackOk && ep.tsOk);
  t.equal(ep.snd.cc.name, 'cubic', 'CUBIC by default');
  t.equal(ep.snd.cc.cwnd, 10 * ep.snd.mss, 'IW10');
});

t.test('TCP_WINDOW_CLAMP 5000 → the SYN offers 4380 (whole MSS) with wscale 0, no later window above 5000; 0 once connected → EINVAL', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  t.equal(ep.getOption('TCP_WINDOW_CLAMP'), 0, 'unset: 0 before a connection, as Linux');
  t.equal(ep.setOption('TCP_WINDOW_CLAMP', 1), undefined);
  t.equal(ep.getOption('TCP_WINDOW_CLAMP'), 1152, 'at least SOCK_MIN_RCVBUF / 2');
  t.equal(ep.setOption('TCP_WINDOW_CLAMP', 0), undefined, 'cleared on a closed socket');
  t.equal(ep.getOption('TCP_WINDOW_CLAMP'), 0);
  t.equal(ep.setOption('TCP_WINDOW_CLAMP', 5000), undefined);
  t.equal(ep.connect({ address: REMOTE, port: PEER_PORT }), Err.ConnectStarted);
  // Linux 6.18's tcp_select_initial_window: the space bounded by the clamp, rounded down to whole MSS, and the
  // scale worked out for the clamped space.
  const syn = h.expect({ flags: TCP_SYN, window: 4380 });
  t.equal(syn.options.wscale, 0);
  h.localPort = syn.srcPort;
  h.send({ flags: TCP_SYN | TCP_ACK, ack: syn.seq + 1, options: { mss: 1460, sackPermitted: true, tsVal: 5, tsEcr: syn.options.tsVal!, wscale: 7 } });
  h.expect({ flags: TCP_ACK });
  t.equal(ep.state, State.Established);
  let p = h.peerNxt + 1;
  for (let i = 0; i < 4; i++) {
    h.send({ flags: TCP_ACK, seq: p, ack: syn.seq + 1, payload: new Uint8Array(1000), options: { tsVal: 6 + i, tsEcr: syn.options.tsVal! } });
    p += 1000;
    ep.read();
  }
  h.advance(200);
  const acks: number[] = [];
  while (h.pending) acks.push(h.next().window);
  t.ok(acks.length > 0, 'the data is acknowledged');
  t.ok(acks.every((w) => w <= 5000), `windows ${acks.join(', ')} within the clamp`);
  t.equal(ep.getOption('TCP_WINDOW_CLAMP'), 5000);
  t.equal(ep.setOption('TCP_WINDOW_CLAMP', 0), Err.InvalidArgument, '0 on a connected socket: EINVAL');
});

t.test('SO_BINDTODEVICE: a listener bound to another NIC never sees a SYN (RST as for no listener); bound to the SYN\'s NIC it answers; inherited on accept', async (t) => {
  const h = new Harness();
  const l = h.listen();
  t.equal(l.getOption('SO_BINDTODEVICE'), 0, 'bound to no NIC at first');
  t.equal(l.setOption('SO_BINDTODEVICE', 2), undefined);
  t.equal(l.getOption('SO_BINDTODEVICE'), 2);
  h.send({ flags: TCP_SYN, options: { mss: 1460 } }); // arrives on NIC 1
  h.expect({ flags: TCP_RST | TCP_ACK, ack: h.peerNxt + 1 });
  t.equal(l.setOption('SO_BINDTODEVICE', 1), undefined);
  const child = h.accept(l);
  t.equal(child.getOption('SO_BINDTODEVICE'), 1, 'the child keeps its listener\'s NIC');
  t.equal(l.setOption('SO_BINDTODEVICE', -1), Err.InvalidArgument);
});

t.test('SO_REUSEPORT: connections spread over a group of listeners by a hash of the flow (Linux\'s reuseport_select_sock)', async (t) => {
  const h = new Harness();
  const group = [0, 1].map(() => {
    const l = h.tcp.newEndpoint(4);
    t.equal(l.setOption('SO_REUSEPORT', 1), undefined);
    t.equal(l.bind({ address: new Uint8Array(4), port: LISTEN_PORT }), undefined);
    t.equal(l.listen(64), undefined);
    return l;
  });
  h.localPort = LISTEN_PORT;
  for (let i = 0; i < 32; i++) {
    const srcPort = 40000 + i;
    h.send({ flags: TCP_SYN, srcPort, seq: 5000, options: { mss: 1460 } });
    const synAck = h.expect({ flags: TCP_SYN | TCP_ACK, ack: 5001 });
    h.send({ flags: TCP_ACK, srcPort, seq: 5001, ack: synAck.seq + 1 });
  }
  const accepted = group.map((l) => {
    let n = 0;
    while (!('errno' in l.accept())) n++;
    return n;
  });
  t.equal(accepted[0]! + accepted[1]!, 32, 'every connection accepted once');
  t.ok(accepted[0]! > 0 && accepted[1]! > 0, `both listeners take some (${accepted.join(' + ')})`);
});

t.test('bind to a link-local IPv6 address without a scope id → EINVAL; with one the socket is bound to that NIC (Linux __inet6_bind)', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(6);
  const ll = new Uint8Array([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  t.equal(ep.bind({ address: ll, port: 0 }), Err.InvalidArgument);
  t.equal(ep.bind({ address: ll, port: 0, nicId: 1 }), Err.AddressNotAvailable, 'with one: the address is looked for');
  t.equal(ep.getOption('SO_BINDTODEVICE'), 1);
});

t.test('SYN-SENT rcv SYN-ACK without options → defaults (MSS 536, no scaling, no SACK, no timestamps)', async (t) => {
  const h = new Harness();
  const ep = h.connect({});
  t.equal(ep.snd.mss, 536);
  t.equal(ep.snd.shift, 0);
  t.equal(ep.rcv.shift, 0);
  t.notOk(ep.sackOk);
  t.notOk(ep.tsOk);
});

t.test('SYN-SENT table', async (t) => {
  const cases: {
    name: string;
    seg: (iss: number) => { flags: number; ack?: number };
    reply: ((iss: number) => { flags: number; seq?: number; ack?: number }) | null;
    state: number;
    error?: unknown;
  }[] = [
    {
      name: 'SYN-SENT rcv ACK below ISS → RST <SEQ=SEG.ACK>, stay',
      seg: (iss) => ({ flags: TCP_ACK, ack: iss }),
      reply: (iss) => ({ flags: TCP_RST, seq: iss }),
      state: State.SynSent,
    },
    {
      name: 'SYN-SENT rcv SYN-ACK acking beyond SND.NXT → RST, stay',
      seg: (iss) => ({ flags: TCP_SYN | TCP_ACK, ack: iss + 5 }),
      reply: (iss) => ({ flags: TCP_RST, seq: iss + 5 }),
      state: State.SynSent,
    },
    {
      name: 'SYN-SENT rcv RST-ACK acking SYN → CLOSED, ECONNREFUSED',
      seg: (iss) => ({ flags: TCP_RST | TCP_ACK, ack: iss + 1 }),
      reply: null,
      state: State.Closed,
      error: Err.ConnectionRefused,
    },
    {
      name: 'SYN-SENT rcv RST without ACK → ignored',
      seg: () => ({ flags: TCP_RST }),
      reply: null,
      state: State.SynSent,
    },
    {
      name: 'SYN-SENT rcv RST-ACK with bad ACK → ignored (RFC 5961)',
      seg: (iss) => ({ flags: TCP_RST | TCP_ACK, ack: iss + 100 }),
      reply: null,
      state: State.SynSent,
    },
    {
      name: 'SYN-SENT rcv bare ACK-less data → dropped',
      seg: () => ({ flags: 0 }),
      reply: null,
      state: State.SynSent,
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const h = new Harness();
      const ep = h.tcp.newEndpoint(4);
      ep.connect({ address: REMOTE, port: PEER_PORT });
      const syn = h.expect({ flags: TCP_SYN });
      h.localPort = syn.srcPort;
      h.send(c.seg(syn.seq));
      if (c.reply) {
        const { errors } = h.check(c.reply(syn.seq));
        t.same(errors, []);
      }
      t.equal(h.pending, 0, 'nothing else sent');
      t.equal(ep.state, c.state);
      if (c.error) t.equal(ep.takeError(), c.error);
    });
  }
});

t.test('SYN-SENT rcv unacceptable ACK → RST, and the SYN again at once (Linux), only before a retransmission', async (t) => {
  for (const bad of [(iss: number) => iss, (iss: number) => iss + 2]) {
    const h = new Harness();
    const ep = h.tcp.newEndpoint(4);
    ep.connect({ address: REMOTE, port: PEER_PORT });
    const syn = h.expect({ flags: TCP_SYN });
    h.localPort = syn.srcPort;
    h.send({ flags: TCP_ACK, ack: bad(syn.seq) });
    t.same(h.check({ flags: TCP_RST, seq: bad(syn.seq) }).errors, [], 'RST from the ACK');
    h.expectNone(1);
    h.advance(1);
    t.same(h.check({ flags: TCP_SYN, seq: syn.seq }).errors, [], 'SYN resent 2 ms later');
    t.equal(ep.state, State.SynSent);
    // That was a retransmission: the next comes at the (linear) RTO, and another bad ACK does not hurry it.
    h.send({ flags: TCP_ACK, ack: bad(syn.seq) });
    t.same(h.check({ flags: TCP_RST, seq: bad(syn.seq) }).errors, []);
    h.expectNone(999);
    h.advance(1);
    t.same(h.check({ flags: TCP_SYN, seq: syn.seq }).errors, [], 'then at its RTO');
  }
});

t.test('SYN-SENT SYN lost, tcp_syn_linear_timeouts 0 → retransmitted at 1 s, 2 s, … then ETIMEDOUT after tcp_syn_retries', async (t) => {
  const h = new Harness({ synRetries: 3, synLinearTimeouts: 0 });
  const ep = h.tcp.newEndpoint(4);
  ep.connect({ address: REMOTE, port: PEER_PORT });
  const syn = h.expect({ flags: TCP_SYN });
  h.expectNone(999);
  let at = 1000;
  for (let i = 0; i < 3; i++) {
    h.advance(1);
    const { errors } = h.check({ flags: TCP_SYN, seq: syn.seq });
    t.same(errors, [], `retransmission ${i + 1}`);
    at *= 2;
    h.expectNone(at - 1);
  }
  h.advance(1);
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.TimedOut);
  t.same(ep.read(), { data: new Uint8Array(0) }, 'then EOF');
  t.equal(h.tcp.connectionCount, 0, 'left the demux table');
});

t.test('SYN-SENT SYN lost → Linux linear timeouts: 1 s apart tcp_syn_linear_timeouts + 1 times, then doubling; as many more tries', async (t) => {
  const h = new Harness();
  t.equal(h.tcp.config.synLinearTimeouts, 4, "Linux's default");
  t.equal(h.tcp.config.synRetries, 6);
  const ep = h.tcp.newEndpoint(4);
  ep.connect({ address: REMOTE, port: PEER_PORT });
  const syn = h.expect({ flags: TCP_SYN });
  // Linux 6.5+: SYNs at 0, 1, 2, 3, 4, 5, 7, 11, 19, 35 and 67 s (6 + 4 retransmissions), ETIMEDOUT at 131 s.
  for (const gap of [1, 1, 1, 1, 1, 2, 4, 8, 16, 32]) {
    h.expectNone(gap * 1000 - 1);
    h.advance(1);
    const { errors } = h.check({ flags: TCP_SYN, seq: syn.seq });
    t.same(errors, [], `a SYN ${gap} s after the last`);
  }
  h.expectNone(63_999);
  t.equal(ep.state, State.SynSent, 'still trying until the last RTO ends');
  h.advance(1);
  t.equal(h.pending, 0, 'no eleventh retransmission');
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.TimedOut);
});

t.test('SYN-SENT TCP_SYNCNT 1 → SYNs at 0, 1, 2 s and ETIMEDOUT at 3 s, the time one retry takes with doubling (Linux)', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  t.equal(ep.setOption('TCP_SYNCNT', 1), undefined);
  ep.connect({ address: REMOTE, port: PEER_PORT });
  const syn = h.expect({ flags: TCP_SYN });
  for (let i = 0; i < 2; i++) {
    h.expectNone(999);
    h.advance(1);
    t.same(h.check({ flags: TCP_SYN, seq: syn.seq }).errors, [], `retransmission ${i + 1}, linear`);
  }
  h.expectNone(999);
  h.advance(1);
  t.equal(h.pending, 0, 'no third retransmission: 3 s have passed since the first SYN');
  t.equal(ep.takeError(), Err.TimedOut);
});

t.test("the MSS a SYN and a SYN-ACK offer is never below Linux's route minimum (min_adv_mss 256), even on a 72-byte MTU", async (t) => {
  for (const [mtu, want] of [[72, 256], [296, 256], [300, 260], [1500, 1460]] as const) {
    const h = new Harness();
    h.net.mtu = mtu;
    const ep = h.tcp.newEndpoint(4);
    ep.connect({ address: REMOTE, port: PEER_PORT });
    t.equal(h.expect({ flags: TCP_SYN }).options.mss, want, `SYN on MTU ${mtu}`);
    const l = new Harness();
    l.net.mtu = mtu;
    l.listen(4);
    l.send({ flags: TCP_SYN, options: { mss: 1460 } });
    t.equal(l.expect({ flags: TCP_SYN | TCP_ACK }).options.mss, want, `SYN-ACK on MTU ${mtu}`);
  }
  // TCP_MAXSEG below the floor still lowers the offer (Linux: user_mss caps advmss).
  const h = new Harness();
  h.net.mtu = 72;
  const ep = h.tcp.newEndpoint(4);
  t.equal(ep.setOption('TCP_MAXSEG', 100), undefined);
  ep.connect({ address: REMOTE, port: PEER_PORT });
  t.equal(h.expect({ flags: TCP_SYN }).options.mss, 100);
});

t.test('SYN-SENT rcv SYN → SYN-RECEIVED (simultaneous open) → SYN-ACK; ACK → ESTABLISHED', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  ep.connect({ address: REMOTE, port: PEER_PORT });
  const syn = h.expect({ flags: TCP_SYN });
  h.localPort = syn.srcPort;
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  t.equal(ep.state, State.SynReceived);
  h.expect({ flags: TCP_SYN | TCP_ACK, seq: syn.seq, ack: h.peerNxt + 1 });
  t.notOk(h.pending);
  // The peer's SYN-ACK (its half of the simultaneous open) completes ours.
  h.send({ flags: TCP_SYN | TCP_ACK, ack: syn.seq + 1, options: { mss: 1460 } });
  t.equal(ep.state, State.Established);
  t.equal(ep.takeError(), undefined);
});

t.test('LISTEN rcv SYN → SYN-ACK; ACK → ESTABLISHED child in the accept queue', async (t) => {
  const h = new Harness();
  const l = h.listen(4);
  t.equal(l.accept(), Err.WouldBlock);
  h.send({ flags: TCP_SYN, options: { mss: 1460, sackPermitted: true, tsVal: 9, tsEcr: 0, wscale: 7 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK, ack: h.peerNxt + 1 });
  t.same(Object.keys(sa.options).sort(), ['mss', 'sackPermitted', 'tsEcr', 'tsVal', 'wscale']);
  t.equal(sa.options.tsEcr, 9);
  t.equal(l.accept(), Err.WouldBlock, 'nothing to accept before the ACK');
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: sa.seq + 1, options: { tsVal: 10, tsEcr: sa.options.tsVal! } });
  const a = l.accept();
  if ('errno' in a) throw new Error(String(a));
  const child = a.endpoint as import('../../../../netstack/transport/tcp/endpoint.ts').TcpEndpoint;
  t.equal(child.state, State.Established);
  t.equal(a.peer.port, PEER_PORT);
  t.same(child.localAddress(), { address: Uint8Array.from([198, 18, 0, 1]), port: LISTEN_PORT });
  t.equal(child.snd.shift, 7);
});

t.test('LISTEN SYN-ACK answers only the options the SYN offered', async (t) => {
  const h = new Harness();
  h.listen();
  h.send({ flags: TCP_SYN, options: { mss: 1200 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK });
  t.same(sa.options, { mss: 1460 });
});

t.test('LISTEN rcv ACK → RST <SEQ=SEG.ACK>; rcv RST, FIN, SYN+FIN, SYN+RST → nothing', async (t) => {
  const h = new Harness();
  h.listen();
  h.send({ flags: TCP_ACK, ack: 12345 });
  h.expect({ flags: TCP_RST, seq: 12345 });
  h.send({ flags: TCP_RST });
  h.send({ flags: 1 });
  h.send({ flags: TCP_SYN | 1 });
  h.send({ flags: TCP_SYN | TCP_RST });
  h.expectNone(10);
  t.equal(h.tcp.connectionCount, 0, 'SYN+FIN and SYN+RST open nothing');
});

t.test('CLOSED port rcv SYN → RST-ACK <SEQ=0><ACK=SEG.SEQ+1>; rcv ACK → RST <SEQ=SEG.ACK>', async (t) => {
  const h = new Harness();
  h.localPort = 9;
  h.send({ flags: TCP_SYN, seq: 500 });
  h.expect({ flags: TCP_RST | TCP_ACK, seq: 0, ack: 501, window: 0 });
  h.send({ flags: TCP_ACK, seq: 500, ack: 777, payload: new Uint8Array(3) });
  h.expect({ flags: TCP_RST, seq: 777 });
  h.send({ flags: TCP_RST | TCP_ACK, seq: 500, ack: 777 });
  h.expectNone();
  t.equal(h.tcp.stats.noEndpoint, 3);
  t.equal(h.tcp.stats.resetsSent, 2);
});

t.test('SYN-RECEIVED (passive) SYN-ACK lost → retransmitted; duplicate SYN → SYN-ACK again', async (t) => {
  const h = new Harness();
  const l = h.listen();
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.advance(1000);
  h.expect({ flags: TCP_SYN | TCP_ACK, seq: sa.seq });
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  h.expect({ flags: TCP_SYN | TCP_ACK, seq: sa.seq, ack: h.peerNxt + 1 });
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: sa.seq + 1 });
  t.notOk('errno' in l.accept());
});

t.test('SYN-RECEIVED rcv RST at RCV.NXT → child dropped, listener stays', async (t) => {
  const h = new Harness();
  const l = h.listen();
  h.send({ flags: TCP_SYN });
  h.expect({ flags: TCP_SYN | TCP_ACK });
  t.equal(h.tcp.connectionCount, 1);
  h.send({ flags: TCP_RST, seq: h.peerNxt + 1 });
  t.equal(h.tcp.connectionCount, 0);
  t.equal(l.state, State.Listen);
  t.equal(l.accept(), Err.WouldBlock);
});

t.test('SYN-RECEIVED rcv ACK with bad ACK → RST <SEQ=SEG.ACK>', async (t) => {
  const h = new Harness();
  h.listen();
  h.send({ flags: TCP_SYN });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: sa.seq + 10 });
  h.expect({ flags: TCP_RST, seq: sa.seq + 10 });
});

t.test('LISTEN backlog: accept queue full → ACK ignored, SYNs dropped until accept()', async (t) => {
  const h = new Harness();
  const l = h.listen(0);
  // backlog 0 still admits one connection (Linux: full when the queue holds more than backlog).
  h.peerPort = 41000;
  h.accept(l).close();
  h.clearSent();
  h.peerPort = 41001;
  h.peerNxt = 5_000_000;
  h.send({ flags: TCP_SYN });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.send({ flags: TCP_ACK, seq: h.peerNxt + 1, ack: sa.seq + 1 });
  h.clearSent();
  const first = l.accept();
  t.notOk('errno' in first, 'the second connection got in after its ACK');
  // Fill the queue again, then overflow.
  h.peerPort = 41002;
  h.send({ flags: TCP_SYN, seq: 7_000_000 });
  const sa2 = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.send({ flags: TCP_ACK, seq: 7_000_001, ack: seq.add(sa2.seq, 1) });
  h.peerPort = 41003;
  h.send({ flags: TCP_SYN, seq: 8_000_000 });
  h.expectNone();
  t.equal(h.tcp.stats.listenOverflows, 1);
});

t.test('connect() twice → EALREADY; bind after connect → EINVAL; connect on listener → EISCONN (as Linux)', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  t.equal(ep.connect({ address: REMOTE, port: PEER_PORT }), Err.ConnectStarted);
  t.equal(ep.connect({ address: REMOTE, port: PEER_PORT }), Err.AlreadyConnecting);
  t.equal(ep.bind({ address: new Uint8Array(4), port: 0 }), Err.InvalidArgument);
  const l = h.listen();
  t.equal(l.connect({ address: REMOTE, port: 1 }), Err.AlreadyConnected);
  t.equal(l.read(), Err.NotConnected);
});

t.test('bind conflicts: same port → EADDRINUSE; listen on a port a listener holds → EADDRINUSE', async (t) => {
  const h = new Harness();
  const a = h.tcp.newEndpoint(4);
  t.equal(a.bind({ address: new Uint8Array(4), port: 5000 }), undefined);
  const b = h.tcp.newEndpoint(4);
  t.equal(b.bind({ address: new Uint8Array(4), port: 5000 }), Err.AddressInUse);
  a.close();
  t.equal(b.bind({ address: new Uint8Array(4), port: 5000 }), undefined, 'port released on close');
  t.equal(b.bind({ address: new Uint8Array(4), port: 5001 }), Err.InvalidArgument, 'second bind');
});

t.test('LISTEN SYN queue full → SYN cookie SYN-ACK, no state; valid cookie ACK → ESTABLISHED child', async (t) => {
  const h = new Harness();
  const l = h.listen(1);
  h.peerPort = 42000;
  h.send({ flags: TCP_SYN, seq: 100 });
  h.expect({ flags: TCP_SYN | TCP_ACK });
  t.equal(h.tcp.connectionCount, 1, 'one half-open child fills the SYN queue');
  h.peerPort = 42001;
  h.send({ flags: TCP_SYN, seq: 5000, options: { mss: 1400, sackPermitted: true, tsVal: 77, tsEcr: 0, wscale: 5 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK, ack: 5001 });
  t.equal(h.tcp.connectionCount, 1, 'the cookie SYN-ACK kept no state');
  t.equal(h.tcp.stats.syncookiesSent, 1);
  t.ok(sa.options.sackPermitted && sa.options.wscale === 7, 'options kept in the timestamp');
  // A forged cookie is refused with a RST.
  h.send({ flags: TCP_ACK, seq: 5001, ack: seq.add(sa.seq, 2), options: { tsVal: 78, tsEcr: sa.options.tsVal! } });
  h.expect({ flags: TCP_RST });
  t.equal(h.tcp.stats.syncookiesFailed, 1);
  h.send({ flags: TCP_ACK, seq: 5001, ack: seq.add(sa.seq, 1), options: { tsVal: 78, tsEcr: sa.options.tsVal! }, payload: Uint8Array.from([1, 2, 3]) });
  const a = l.accept();
  if ('errno' in a) throw new Error(String(a));
  const child = a.endpoint as import('../../../../netstack/transport/tcp/endpoint.ts').TcpEndpoint;
  t.equal(child.state, State.Established);
  t.equal(child.peerMss, 1400);
  t.equal(child.snd.shift, 5);
  t.ok(child.sackOk && child.tsOk);
  t.same(child.read(), { data: Uint8Array.from([1, 2, 3]) }, 'data on the cookie ACK is kept');
  t.equal(h.tcp.stats.syncookiesRecv, 1);
  h.clearSent();
  // An expired cookie (two ticks later) no longer works.
  h.peerPort = 42002;
  h.send({ flags: TCP_SYN, seq: 9000 });
  const sa2 = h.expect({ flags: TCP_SYN | TCP_ACK });
  t.same(sa2.options, { mss: 1460 }, 'no timestamps: no scaling or SACK offered');
  h.advance(200_000);
  h.clearSent();
  h.send({ flags: TCP_ACK, seq: 9001, ack: seq.add(sa2.seq, 1) });
  h.expect({ flags: TCP_RST });
});

t.test('SYN queue full → cookie SYN-ACK; retransmitted SYN finds room → child with the cookie ISN; challenge ACK past ISN+1 → ESTABLISHED, no RST', async (t) => {
  // The burst of test/netns/serve-burst.test.ts under load: the first SYN finds the SYN queue full and gets a
  // cookie; the client, answered late, has already retransmitted its SYN, which finds room and makes a half-open
  // child. The client is ESTABLISHED on the cookie SYN-ACK, but its ACK and its data are lost; the child's
  // SYN-ACK then draws its challenge ACK (RFC 5961 §4.2), SEQ = ISN+1+3, which is the first segment to arrive.
  // With an ISN of the child's own that ACK was unacceptable and no cookie check passes with that SEQ either:
  // the RST went out at exactly the client's RCV.NXT and reset it (ECONNRESET on the Linux client).
  const h = new Harness();
  const l = h.listen(1);
  h.peerPort = 42000;
  h.send({ flags: TCP_SYN, seq: 100 });
  const first = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.peerPort = 42001;
  const syn = { mss: 1460, sackPermitted: true, tsVal: 77, tsEcr: 0, wscale: 7 };
  h.send({ flags: TCP_SYN, seq: 5000, options: syn });
  const cookie = h.expect({ flags: TCP_SYN | TCP_ACK, ack: 5001 });
  t.equal(h.tcp.stats.syncookiesSent, 1, 'the first SYN got a cookie');
  // The queued connection completes, which leaves room in the SYN queue.
  h.peerPort = 42000;
  h.send({ flags: TCP_ACK, seq: 101, ack: seq.add(first.seq, 1) });
  h.advance(1000);
  h.peerPort = 42001;
  h.send({ flags: TCP_SYN, seq: 5000, options: { ...syn, tsVal: 1077 } });
  const again = h.expect({ flags: TCP_SYN | TCP_ACK, ack: 5001 });
  t.equal(h.tcp.stats.syncookiesSent, 1, 'the retransmitted SYN made a half-open child');
  t.equal(again.seq, cookie.seq, 'the child answers with the ISN of the cookie');
  t.same(
    { ...again.options, tsVal: 0, tsEcr: 0 },
    { ...cookie.options, tsVal: 0, tsEcr: 0 },
    'and with the same options (MSS, SACK, window scale, timestamps)',
  );
  h.clearSent();
  h.send({ flags: TCP_ACK, seq: 5004, ack: seq.add(cookie.seq, 1), options: { tsVal: 1079, tsEcr: cookie.options.tsVal! } });
  t.notOk(h.net.sent.some((s) => s.repr.flags & TCP_RST), 'no RST for the challenge ACK');
  t.equal(h.tcp.stats.resetsSent, 0);
  const accepted = [l.accept(), l.accept()].flatMap((a) => ('errno' in a ? [] : [a.endpoint as TcpEndpoint]));
  t.equal(accepted.length, 2, 'both connections reach accept()');
  const child = accepted[1]!;
  t.equal(child?.state, State.Established, 'the child took the ACK of its SYN-ACK');
  // The client's retransmission of its lost data fills the hole.
  h.send({ flags: TCP_ACK, seq: 5001, ack: seq.add(cookie.seq, 1), options: { tsVal: 1300, tsEcr: cookie.options.tsVal! }, payload: Uint8Array.from([1, 2, 3]) });
  t.same(child?.read(), { data: Uint8Array.from([1, 2, 3]) }, 'the data arrives');
  h.advance(500);
  t.ok(h.net.sent.some((s) => s.repr.flags === TCP_ACK && s.repr.ack === 5004), 'and is acknowledged');
  t.equal(child?.write(Uint8Array.from([9])), 1);
  t.ok(h.net.sent.some((s) => s.repr.payload.length === 1 && s.repr.seq === seq.add(cookie.seq, 1)), 'the reply goes out');
  t.equal(h.tcp.stats.syncookiesRecv, 0, 'completed by the child, not by a second connection from the cookie');
  t.equal(h.tcp.stats.resetsSent, 0);
});

t.test('cookie SYN-ACK, then a half-open child from the retransmitted SYN in the next cookie tick: the cookie ACK completes, no RST', async (t) => {
  // As above, but the retransmitted SYN comes in the next cookie tick, so the child's ISN (that tick's cookie)
  // is not the one the client took. Linux (tcp_check_req) hands the client's ACK of the first cookie to the
  // listener's cookie check; resetting it (seq = the ACK, exactly the client's RCV.NXT) reset the client.
  const h = new Harness();
  // To 600 ms before the next cookie tick begins.
  h.advance((2 * COOKIE_TICK_MS - 600 - (h.clock.now() % COOKIE_TICK_MS)) % COOKIE_TICK_MS);
  const l = h.listen(1);
  h.peerPort = 42000;
  h.send({ flags: TCP_SYN, seq: 100 });
  const first = h.expect({ flags: TCP_SYN | TCP_ACK });
  h.peerPort = 42001;
  const syn = { mss: 1460, sackPermitted: true, tsVal: 77, tsEcr: 0, wscale: 7 };
  h.send({ flags: TCP_SYN, seq: 5000, options: syn });
  const cookie = h.expect({ flags: TCP_SYN | TCP_ACK, ack: 5001 });
  t.equal(h.tcp.stats.syncookiesSent, 1, 'the first SYN got a cookie');
  // The queued connection completes, which leaves room in the SYN queue.
  h.peerPort = 42000;
  h.send({ flags: TCP_ACK, seq: 101, ack: seq.add(first.seq, 1) });
  h.advance(1000);
  h.peerPort = 42001;
  h.send({ flags: TCP_SYN, seq: 5000, options: { ...syn, tsVal: 1077 } });
  const again = h.expect({ flags: TCP_SYN | TCP_ACK, ack: 5001 });
  t.not(again.seq, cookie.seq, 'the half-open child has the next tick\'s cookie as its ISN');
  // The client took the cookie SYN-ACK: its ACK (and its data) acknowledge the cookie.
  h.clearSent();
  const ackOpts = { tsVal: 1078, tsEcr: cookie.options.tsVal! };
  h.send({ flags: TCP_ACK, seq: 5001, ack: seq.add(cookie.seq, 1), options: ackOpts });
  h.send({ flags: TCP_ACK, seq: 5001, ack: seq.add(cookie.seq, 1), options: ackOpts, payload: Uint8Array.from([1, 2, 3]) });
  const ack = h.expect({ flags: TCP_ACK, seq: seq.add(cookie.seq, 1), ack: 5004 });
  t.equal(ack.flags & TCP_RST, 0, 'no RST for the cookie ACK');
  t.equal(h.tcp.stats.syncookiesRecv, 1, 'completed by the cookie');
  const accepted = [l.accept(), l.accept()].flatMap((a) => ('errno' in a ? [] : [a.endpoint as TcpEndpoint]));
  t.equal(accepted.length, 2, 'both connections reach accept()');
  const child = accepted[1]!;
  t.equal(child.state, State.Established);
  t.same(child.read(), { data: Uint8Array.from([1, 2, 3]) });
  t.equal(child.write(Uint8Array.from([9])), 1);
  h.expect({ flags: TCP_PSH | TCP_ACK, seq: seq.add(cookie.seq, 1), len: 1 });
  h.advance(10_000);
  t.notOk(h.net.sent.some((s) => s.repr.flags & TCP_SYN), 'the superseded half-open child retransmits no SYN-ACK');
  t.equal(h.tcp.stats.resetsSent, 0);
});

t.test('connect refused → the next connect() reports it, then the socket connects afresh (Linux)', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  t.equal(ep.bind({ address: new Uint8Array(4), port: 5555 }), undefined);
  ep.connect({ address: REMOTE, port: PEER_PORT });
  const syn = h.expect({ flags: TCP_SYN });
  h.localPort = syn.srcPort;
  h.send({ flags: TCP_RST | TCP_ACK, ack: syn.seq + 1 });
  t.equal(ep.state, State.Closed);
  t.equal(ep.connect({ address: REMOTE, port: PEER_PORT }), Err.ConnectionRefused, 'the pending error first');
  t.equal(ep.connect({ address: REMOTE, port: PEER_PORT }), Err.ConnectStarted, 'then a new attempt');
  const syn2 = h.expect({ flags: TCP_SYN });
  t.equal(syn2.srcPort, 5555, 'the bound port is kept');
  h.send({ flags: TCP_SYN | TCP_ACK, ack: syn2.seq + 1, options: { mss: 1460 } });
  h.expect({ flags: TCP_ACK });
  t.equal(ep.state, State.Established);
});

t.test('SYN-SENT SYN retransmitted, SYN-ACK without timestamps → no RTT sample, data RTO 3 s (RFC 6298 §5.7)', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  ep.connect({ address: REMOTE, port: PEER_PORT });
  const syn = h.expect({ flags: TCP_SYN });
  h.localPort = syn.srcPort;
  h.advance(1000);
  h.expect({ flags: TCP_SYN });
  h.send({ flags: TCP_SYN | TCP_ACK, ack: syn.seq + 1, options: { mss: 1460 } });
  h.expect({ flags: TCP_ACK });
  t.equal(ep.snd.rtt.hasSample, false, "Karn: the SYN-ACK can't be timed");
  t.equal(ep.snd.rtt.rto, 3000);
});

t.test('ESTABLISHED disconnect() (connect AF_UNSPEC) → RST, CLOSED, and the socket can connect again', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: 1460 });
  t.equal(ep.disconnect(), undefined);
  h.expect({ flags: TCP_RST | TCP_ACK, seq: h.iss + 1 });
  t.equal(h.tcp.connectionCount, 0);
  t.equal(ep.connect({ address: REMOTE, port: PEER_PORT }), Err.ConnectStarted);
  h.expect({ flags: TCP_SYN });
});

t.test('LISTEN rcv SYN → the SYN-ACK window is Linux\'s initial window: the receive space in whole MSS, at most 65535 (tcp_select_initial_window)', async (t) => {
  // Values as Linux 6.18 offers them (probed with --dut linux): half the default buffer rounded down to our MSS of
  // 1460, or to 1448 once timestamps are agreed; all of an SO_RCVBUF buffer; 65535 when the space exceeds it.
  const cases: Array<{ what: string; config?: { rcvBuf: number }; rcvbuf?: number; ts: boolean; window: number }> = [
    { what: 'default 128 KB buffer', ts: false, window: 64240 },
    { what: 'default buffer, timestamps', ts: true, window: 65160 },
    { what: 'SO_RCVBUF 20000', rcvbuf: 20000, ts: false, window: 18980 },
    { what: 'tcp_rmem default 540000 (packetdrill defaults.sh)', config: { rcvBuf: 540000 }, ts: false, window: 65535 },
  ];
  for (const c of cases) {
    const h = new Harness(c.config);
    const l = h.listen();
    if (c.rcvbuf !== undefined) t.equal(l.setOption('SO_RCVBUF', c.rcvbuf), undefined);
    h.send({ flags: TCP_SYN, options: c.ts ? { mss: 1000, tsVal: 7, tsEcr: 0 } : { mss: 1000 } });
    const sa = h.expect({ flags: TCP_SYN | TCP_ACK });
    t.equal(sa.window, c.window, c.what);
  }
});
