// TIME-WAIT of a closed accepted connection is kept compactly (timewait.ts): the endpoint leaves the tables and a
// TimeWait holds the 4-tuple, the port and the 2·MSL timer. Every scenario runs twice, against that compact form
// and against a whole endpoint in TIME-WAIT (an active close, which keeps its endpoint), and must answer alike.
import t from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import * as seq from '../../../../netstack/seqnum.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { State } from '../../../../netstack/transport/tcp/state.ts';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpRepr } from '../../../../netstack/wire/tcp.ts';
import { Harness, LISTEN_PORT, LOCAL, REMOTE } from './helper.ts';

const A = TCP_ACK;
const MSL2 = 60_000;

interface Tw {
  h: Harness;
  ep: TcpEndpoint;
  /** Our SND.NXT (past our FIN) and the peer's next sequence number (past its FIN). */
  snd: number;
  p: number;
  last: TcpRepr;
  compact: boolean;
}

/** A connection in TIME-WAIT: `compact` closes an accepted one (passive open), else an active open, both first. */
function timeWait(compact: boolean, config?: ConstructorParameters<typeof Harness>[0], range?: { low: number; high: number }, timestamps = true): Tw {
  const h = new Harness(config, range);
  let ep: TcpEndpoint;
  if (compact) {
    const l = h.listen();
    ep = h.accept(l);
  } else {
    ep = h.connect(timestamps ? { mss: 1460, sackPermitted: true, tsVal: 100, tsEcr: 0, wscale: 7 } : { mss: 1460, sackPermitted: true, wscale: 7 });
  }
  ep.close();
  const fin = h.expect({ flags: A | TCP_FIN, seq: h.iss + 1, ack: h.peerNxt });
  h.send({ flags: A | TCP_FIN, ack: seq.add(h.iss, 2), options: h.ts(fin, 300) });
  h.peerNxt = seq.add(h.peerNxt, 1);
  const last = h.expect({ flags: A, seq: h.iss + 2, ack: h.peerNxt });
  return { h, ep, snd: seq.add(h.iss, 2), p: h.peerNxt, last, compact };
}

function inUse(c: Tw): boolean {
  return c.h.tcp.tupleInUse(LOCAL, c.h.localPort, REMOTE, c.h.peerPort);
}

for (const compact of [true, false]) {
  const kind = compact ? 'compact TIME-WAIT' : 'TIME-WAIT endpoint';

  t.test(`${kind}: entered → 4-tuple held for 2·MSL, then CLOSED`, async (t) => {
    const c = timeWait(compact);
    t.equal(c.ep.state, State.TimeWait);
    t.equal(c.h.tcp.timeWaitCount, 1);
    t.ok(inUse(c), 'the 4-tuple is taken');
    t.equal(c.h.tcp.connectionCount, 1);
    t.equal(c.h.tcp.lookupConnected(LOCAL, c.h.localPort, REMOTE, c.h.peerPort) === undefined, compact, compact ? 'the endpoint left the table' : 'the endpoint stays');
    c.h.expectNone(MSL2 - 1);
    t.ok(inUse(c), 'still held just before 2·MSL');
    c.h.expectNone(2);
    t.equal(c.ep.state, State.Closed, 'CLOSED after 2·MSL');
    t.notOk(inUse(c));
    t.equal(c.h.tcp.timeWaitCount, 0);
    t.equal(c.h.tcp.connectionCount, 0);
  });

  t.test(`${kind} rcv retransmitted FIN → ACK, 2·MSL restarts`, async (t) => {
    const c = timeWait(compact);
    c.h.advance(50_000);
    c.h.send({ flags: A | TCP_FIN, seq: seq.add(c.p, -1), ack: c.snd, options: c.h.ts(c.last, 400) });
    const ack = c.h.expect({ flags: A, seq: c.snd, ack: c.p });
    // The FIN lies before RCV.NXT (unacceptable), so it does not move TS.Recent: TSecr is the first FIN's.
    t.equal(ack.options.tsEcr, 300, 'TSecr of the FIN that was acknowledged');
    t.ok(ack.options.tsVal !== undefined);
    t.equal(ack.window, c.last.window, 'the window of our last ACK');
    c.h.expectNone(MSL2 - 1);
    t.equal(c.ep.state, State.TimeWait, 'held 2·MSL from the retransmission');
    c.h.expectNone(2);
    t.equal(c.ep.state, State.Closed);
  });

  t.test(`${kind} rcv RST at RCV.NXT → CLOSED at once; elsewhere → challenge ACK`, async (t) => {
    const c = timeWait(compact);
    c.h.send({ flags: TCP_RST, seq: seq.add(c.p, 10) });
    c.h.expect({ flags: A, seq: c.snd, ack: c.p });
    t.equal(c.ep.state, State.TimeWait);
    c.h.send({ flags: TCP_RST, seq: c.p });
    c.h.expectNone();
    t.equal(c.ep.state, State.Closed);
    t.notOk(inUse(c));
    t.equal(c.h.tcp.timeWaitCount, 0);
    t.equal(c.h.tcp.stats.resetsReceived, 1);
  });

  t.test(`${kind} with tcp_rfc1337 = 1 rcv RST at RCV.NXT → ignored, 2·MSL kept from entry (RFC 1337)`, async (t) => {
    const c = timeWait(compact, { rfc1337: true });
    c.h.advance(10_000);
    c.h.send({ flags: TCP_RST, seq: c.p });
    c.h.expectNone();
    t.equal(c.ep.state, State.TimeWait, 'the RST did not end it');
    t.ok(inUse(c), 'the 4-tuple is still held');
    t.equal(c.h.tcp.stats.resetsReceived, 0);
    c.h.expectNone(MSL2 - 10_000 - 1);
    t.equal(c.ep.state, State.TimeWait, 'not restarted by the RST either');
    c.h.expectNone(2);
    t.equal(c.ep.state, State.Closed, '2·MSL after entry');
  });

  t.test(`${kind} with tcp_dsack = 0 rcv old data → ACK without a D-SACK block`, async (t) => {
    const c = timeWait(compact, { dsack: false });
    c.h.send({ flags: A, seq: seq.add(c.p, -11), ack: c.snd, payload: new Uint8Array(10), options: c.h.ts(c.last, 500) });
    const dup = c.h.expect({ flags: A, seq: c.snd, ack: c.p });
    t.equal(dup.options.sack, undefined, 'no D-SACK');
  });

  t.test(`${kind} rcv old SYN → challenge ACK; newer SYN → TIME-WAIT ends`, async (t) => {
    const c = timeWait(compact);
    c.h.send({ flags: TCP_SYN, seq: seq.add(c.p, -5), options: { mss: 1460, tsVal: 250 } });
    c.h.expect({ flags: A, seq: c.snd, ack: c.p });
    t.equal(c.ep.state, State.TimeWait, 'an older timestamp does not reopen it');
    c.h.send({ flags: TCP_SYN, seq: seq.add(c.p, 100_000), options: { mss: 1460, tsVal: 900 } });
    t.equal(c.ep.state, State.Closed, 'a newer one does (RFC 6191)');
    t.equal(c.h.tcp.stats.timeWaitReused, 1);
    // The SYN went on: to the listener (a SYN-ACK) for the accepted connection, else to no one (a RST).
    c.h.expect({ flags: compact ? TCP_SYN | A : TCP_RST | A });
  });

  t.test(`${kind} rcv data → ACK with its D-SACK when old, 2·MSL restarts`, async (t) => {
    const c = timeWait(compact);
    const data = new Uint8Array(10);
    c.h.send({ flags: A, seq: seq.add(c.p, -11), ack: c.snd, payload: data, options: c.h.ts(c.last, 500) });
    const dup = c.h.expect({ flags: A, seq: c.snd, ack: c.p });
    t.same(dup.options.sack, [{ left: seq.add(c.p, -11), right: seq.add(c.p, -1) }], 'D-SACK of the duplicate');
    c.h.advance(30_000);
    c.h.send({ flags: A, seq: c.p, ack: c.snd, payload: data, options: c.h.ts(c.last, 600) });
    c.h.expect({ flags: A, seq: c.snd, ack: c.p });
    c.h.expectNone(MSL2 - 1);
    t.equal(c.ep.state, State.TimeWait, '2·MSL from the data');
    c.h.expectNone(2);
    t.equal(c.ep.state, State.Closed);
  });

  t.test(`${kind} rcv bare ACK at RCV.NXT → nothing; old timestamp → one ACK per interval (PAWS)`, async (t) => {
    const c = timeWait(compact);
    c.h.send({ flags: A, seq: c.p, ack: c.snd, options: c.h.ts(c.last, 700) });
    c.h.expectNone();
    c.h.send({ flags: A, seq: c.p, ack: c.snd, options: c.h.ts(c.last, 10) });
    c.h.expect({ flags: A, seq: c.snd, ack: c.p });
    c.h.send({ flags: A, seq: c.p, ack: c.snd, options: c.h.ts(c.last, 11) });
    c.h.expectNone();
    t.ok(c.h.tcp.stats.pawsDrops >= 2);
    t.equal(c.h.tcp.stats.invalidAcksSuppressed, 1, 'the second within the rate limit');
  });

  t.test(`${kind} rcv ACK of data never sent → challenge ACK`, async (t) => {
    const c = timeWait(compact);
    c.h.send({ flags: A, seq: c.p, ack: seq.add(c.snd, 1000), options: c.h.ts(c.last, 800) });
    c.h.expect({ flags: A, seq: c.snd, ack: c.p });
    t.equal(c.ep.state, State.TimeWait);
  });
}

t.test('connect() takes over its own 4-tuple in TIME-WAIT as tcp_tw_reuse allows (Linux tcp_twsk_unique)', async (t) => {
  const ONE_PORT = { low: 40000, high: 40000 };
  // The only ephemeral port is the TIME-WAIT's, so a connect to the same peer gets its 4-tuple or nothing.
  const again = (c: Tw) => c.h.tcp.newEndpoint(4).connect({ address: REMOTE, port: c.h.peerPort });
  const cases = [
    { name: 'tcp_tw_reuse 1', config: { twReuse: 1 }, timestamps: true, reused: true },
    { name: 'tcp_tw_reuse 2 (loopback only), not loopback', config: {}, timestamps: true, reused: false },
    { name: 'tcp_tw_reuse 0', config: { twReuse: 0 }, timestamps: true, reused: false },
    { name: 'tcp_tw_reuse 1 without timestamps', config: { twReuse: 1 }, timestamps: false, reused: false },
  ];
  for (const k of cases) {
    const c = timeWait(false, k.config, ONE_PORT, k.timestamps);
    t.equal(c.h.localPort, 40000);
    t.equal(again(c), Err.AddressNotAvailable, `${k.name}: not within 1 s of the last timestamp`);
    c.h.advance(1_001);
    c.h.clearSent();
    if (!k.reused) {
      t.equal(again(c), Err.AddressNotAvailable, `${k.name}: refused`);
      t.equal(c.ep.state, State.TimeWait, `${k.name}: TIME-WAIT kept`);
      continue;
    }
    t.equal(again(c), Err.ConnectStarted, `${k.name}: connect starts`);
    t.equal(c.ep.state, State.Closed, 'the old connection left TIME-WAIT');
    t.equal(c.h.tcp.stats.timeWaitReused, 1);
    const syn = c.h.expect({ flags: TCP_SYN });
    t.equal(syn.srcPort, 40000, 'from the same port');
    t.equal(syn.seq, seq.add(c.snd, 65537), 'the new ISN lies past the old sequence space by a maximal window');
  }
});

t.test('compact TIME-WAIT holds the listener port until it ends, and frees the 4-tuple for connect', async (t) => {
  const c = timeWait(true);
  t.equal(c.h.ports.count(6, LISTEN_PORT), 2, 'listener and the TIME-WAIT');
  c.h.advance(MSL2 + 1);
  t.equal(c.h.ports.count(6, LISTEN_PORT), 1, 'the listener alone');
});

t.test('FIN-WAIT-1 (orphan) rcv ACK of our FIN with the peer FIN → TIME-WAIT, FIN-WAIT-2 timeout never scheduled', async (t) => {
  const h = new Harness();
  const ep = h.accept(h.listen());
  ep.close();
  const fin = h.expect({ flags: A | TCP_FIN });
  const clock = h.net.clock;
  const schedule = clock.schedule.bind(clock);
  const delays: number[] = [];
  clock.schedule = (ms, fn) => (delays.push(ms), schedule(ms, fn));
  h.send({ flags: A | TCP_FIN, ack: seq.add(h.iss, 2), options: h.ts(fin, 300) });
  h.expect({ flags: A });
  t.equal(ep.state, State.TimeWait);
  t.same(delays, [MSL2], 'the 2·MSL timer alone');
});

t.test('FIN-WAIT-1 (orphan) rcv ACK of our FIN alone → FIN-WAIT-2 with its timeout', async (t) => {
  const h = new Harness();
  const ep = h.accept(h.listen());
  ep.close();
  const fin = h.expect({ flags: A | TCP_FIN });
  h.send({ flags: A, ack: seq.add(h.iss, 2), options: h.ts(fin, 300) });
  t.equal(ep.state, State.FinWait2);
  h.expectNone(60_000 - 1);
  t.equal(ep.state, State.FinWait2);
  h.expectNone(2);
  t.equal(ep.state, State.Closed, 'tcp_fin_timeout');
});

t.test('compact TIME-WAITs share one clock timer; each ends 2·MSL after it began or was restarted', async (t) => {
  const h = new Harness();
  const l = h.listen(64);
  const clock = h.net.clock;
  const schedule = clock.schedule.bind(clock);
  let twTimers = 0;
  clock.schedule = (ms, fn) => (ms === MSL2 ? twTimers++ : 0, schedule(ms, fn));
  const eps: { ep: TcpEndpoint; port: number; snd: number; p: number }[] = [];
  for (let i = 0; i < 20; i++) {
    h.peerPort = 41000 + i;
    h.peerNxt = 5_000_000 + i * 1000;
    const ep = h.accept(l);
    ep.close();
    const fin = h.expect({ flags: A | TCP_FIN });
    h.send({ flags: A | TCP_FIN, ack: seq.add(h.iss, 2), options: h.ts(fin, 300) });
    h.expect({ flags: A });
    eps.push({ ep, port: h.peerPort, snd: seq.add(h.iss, 2), p: seq.add(h.peerNxt, 1) });
    h.advance(1000);
  }
  t.equal(twTimers, 1, 'one clock timer for twenty');
  t.equal(h.tcp.timeWaitCount, 20);
  // The fifth gets its FIN again 30 s in: its 2·MSL starts over.
  const fifth = eps[4]!;
  h.peerPort = fifth.port;
  h.send({ flags: A | TCP_FIN, seq: seq.add(fifth.p, -1), ack: fifth.snd, options: { tsVal: 400, tsEcr: 0 } });
  h.expect({ flags: A, seq: fifth.snd, ack: fifth.p });
  const restartedAt = clock.now();
  const enteredFirst = restartedAt - 20_000;
  h.advance(enteredFirst + MSL2 - clock.now());
  t.equal(eps[0]!.ep.state, State.Closed, 'the first ends at its 2·MSL');
  t.equal(eps[1]!.ep.state, State.TimeWait, 'the second a second later');
  h.advance(3_000);
  t.equal(eps[3]!.ep.state, State.Closed);
  t.equal(fifth.ep.state, State.TimeWait, 'the restarted one waits');
  h.advance(restartedAt + MSL2 - clock.now() - 1);
  t.equal(fifth.ep.state, State.TimeWait);
  t.equal(eps[19]!.ep.state, State.Closed, 'the others all ended in order');
  h.advance(1);
  t.equal(fifth.ep.state, State.Closed, '2·MSL after its restart');
  t.equal(h.tcp.timeWaitCount, 0);
  t.equal(h.tcp.connectionCount, 0);
});

t.test('loopback, tcp_tw_reuse 2 (the default): a client reconnecting from its one port takes its TIME-WAIT over after 1 s', async (t) => {
  const { VirtualClock } = await import('../../../../netstack/clock.ts');
  const { Netstack } = await import('../../../../netstack/netstack.ts');
  const { LoopbackEndpoint } = await import('../../../../netstack/link/loopback.ts');
  const { parseAddress, parseSubnet } = await import('../../../../netstack/addr.ts');
  const clock = new VirtualClock(1_000_000);
  const n = new Netstack({ clock, ephemeralPorts: { low: 40000, high: 40000 } });
  t.teardown(() => n.close());
  const nic = n.stack.addNic(new LoopbackEndpoint({ clock }));
  n.stack.addAddress(nic, parseSubnet('127.0.0.1/8')!);
  const lo = parseAddress('127.0.0.1')!;
  const listener = n.socket(4, 'stream') as TcpEndpoint;
  t.equal(listener.bind({ address: lo, port: 80 }), undefined);
  t.equal(listener.listen(8), undefined);
  const settle = () => {
    for (let i = 0; i < 50; i++) clock.advance(1);
  };
  // One connection, closed by the client first: the client's side ends in TIME-WAIT on port 40000.
  const first = n.socket(4, 'stream') as TcpEndpoint;
  t.equal(first.connect({ address: lo, port: 80 }), Err.ConnectStarted);
  settle();
  const served = listener.accept();
  t.ok(!('errno' in served), 'accepted');
  first.close();
  settle();
  if (!('errno' in served)) served.endpoint.close();
  settle();
  t.equal(first.state, State.TimeWait, 'the client is in TIME-WAIT');
  t.equal((first.localAddress() as { port: number }).port, 40000);
  const again = () => (n.socket(4, 'stream') as TcpEndpoint).connect({ address: lo, port: 80 });
  t.equal(again(), Err.AddressNotAvailable, 'within 1 s of its last timestamp: the only port is taken');
  clock.advance(1_001);
  t.equal(again(), Err.ConnectStarted, 'after 1 s the loopback TIME-WAIT is taken over');
  settle();
  t.equal(first.state, State.Closed);
  t.equal(n.tcp.stats.timeWaitReused, 1);
  t.ok(!('errno' in listener.accept()), 'and the new connection was accepted');
});

t.test('a socket bound to the port beforehand takes its TIME-WAIT over whatever tcp_tw_reuse says (Linux: no twp)', async (t) => {
  const h = new Harness({ twReuse: 0 });
  const open = () => {
    const ep = h.tcp.newEndpoint(4);
    ep.setOption('SO_REUSEADDR', 1);
    t.equal(ep.bind({ address: LOCAL, port: 41000 }), undefined, 'bound, SO_REUSEADDR beside the TIME-WAIT');
    return ep;
  };
  const first = open();
  t.equal(first.connect({ address: REMOTE, port: h.peerPort }), Err.ConnectStarted);
  const syn = h.expect({ flags: TCP_SYN });
  h.localPort = 41000;
  h.send({ flags: TCP_SYN | A, ack: seq.add(syn.seq, 1), options: { mss: 1460, tsVal: 100, tsEcr: syn.options.tsVal } });
  h.peerNxt = seq.add(h.peerNxt, 1);
  h.expect({ flags: A });
  first.close();
  const fin = h.expect({ flags: A | TCP_FIN });
  h.send({ flags: A | TCP_FIN, ack: seq.add(syn.seq, 2), options: h.ts(fin, 300) });
  h.expect({ flags: A });
  t.equal(first.state, State.TimeWait);
  const second = open();
  t.equal(second.connect({ address: REMOTE, port: h.peerPort }), Err.ConnectStarted, 'at once, with tcp_tw_reuse 0');
  t.equal(first.state, State.Closed);
  const syn2 = h.expect({ flags: TCP_SYN });
  t.equal(syn2.seq, seq.add(syn.seq, 2 + 65537), 'past the old sequence space');
});
