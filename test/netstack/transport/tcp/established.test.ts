import t from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import * as seq from '../../../../netstack/seqnum.ts';
import { ShutdownWrite } from '../../../../netstack/socket.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { State } from '../../../../netstack/transport/tcp/state.ts';
import { EventIn, EventRdHUp } from '../../../../netstack/waiter.ts';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../../../netstack/wire/tcp.ts';
import { Harness, LOCAL, REMOTE, pattern } from './helper.ts';

const A = TCP_ACK;
const PLAIN = { mss: 1460 };

/** An established connection without timestamps, SACK or scaling: sequence arithmetic stays readable. */
function established(opts = PLAIN): { h: Harness; ep: TcpEndpoint; snd: number } {
  const h = new Harness();
  const ep = h.connect(opts);
  return { h, ep, snd: h.iss + 1 };
}

t.test('ESTABLISHED segment table (RFC 9293 §3.10.7.4, RFC 5961)', async (t) => {
  const cases: {
    name: string;
    seg: (p: number, s: number) => { flags: number; seq: number; ack?: number; payload?: Uint8Array; window?: number };
    reply: ((p: number, s: number) => { flags: number; seq?: number; ack?: number; len?: number }) | null;
    state: number;
    error?: unknown;
  }[] = [
    {
      name: 'ESTABLISHED rcv RST at RCV.NXT → CLOSED, ECONNRESET',
      seg: (p) => ({ flags: TCP_RST, seq: p }),
      reply: null,
      state: State.Closed,
      error: Err.ConnectionReset,
    },
    {
      name: 'ESTABLISHED rcv RST in-window not at rcv.nxt → challenge ACK',
      seg: (p) => ({ flags: TCP_RST, seq: p + 100 }),
      reply: (p, s) => ({ flags: A, seq: s, ack: p }),
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv RST at the window edge (RCV.NXT+RCV.WND) → dropped silently',
      seg: (p) => ({ flags: TCP_RST, seq: p + 65535 }),
      reply: null,
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv RST below RCV.NXT → dropped silently',
      seg: (p) => ({ flags: TCP_RST, seq: p - 1 }),
      reply: null,
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv SYN in-window → challenge ACK (RFC 5961 §4)',
      seg: (p) => ({ flags: TCP_SYN, seq: p + 10 }),
      reply: (p, s) => ({ flags: A, seq: s, ack: p }),
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv SYN at RCV.NXT → challenge ACK, not a reset',
      seg: (p) => ({ flags: TCP_SYN, seq: p }),
      reply: (p, s) => ({ flags: A, seq: s, ack: p }),
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv SYN outside the window → ACK',
      seg: (p) => ({ flags: TCP_SYN, seq: p + 1_000_000 }),
      reply: (p, s) => ({ flags: A, seq: s, ack: p }),
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv ACK for data never sent → challenge ACK (RFC 5961 §5.2)',
      seg: (p, s) => ({ flags: A, seq: p, ack: s + 10 }),
      reply: (p, s) => ({ flags: A, seq: s, ack: p }),
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv data beyond the window → ACK, data dropped',
      seg: (p, s) => ({ flags: A, seq: p + 70_000, ack: s, payload: pattern(10) }),
      reply: (p, s) => ({ flags: A, seq: s, ack: p }),
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv old duplicate data → ACK',
      seg: (p, s) => ({ flags: A, seq: p - 10, ack: s, payload: pattern(10) }),
      reply: (p, s) => ({ flags: A, seq: s, ack: p }),
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv segment without ACK → dropped',
      seg: (p) => ({ flags: 0, seq: p, payload: pattern(5) }),
      reply: null,
      state: State.Established,
    },
    {
      name: 'ESTABLISHED rcv FIN → CLOSE-WAIT, ACK of the FIN',
      seg: (p, s) => ({ flags: A | TCP_FIN, seq: p, ack: s }),
      reply: (p, s) => ({ flags: A, seq: s, ack: p + 1 }),
      state: State.CloseWait,
    },
    {
      name: 'ESTABLISHED rcv out-of-order FIN → dup ACK, FIN not taken',
      seg: (p, s) => ({ flags: A | TCP_FIN, seq: p + 5, ack: s }),
      reply: null,
      state: State.Established,
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { h, ep, snd } = established();
      h.send({ ...c.seg(h.peerNxt, snd) });
      if (c.reply) t.same(h.check(c.reply(h.peerNxt, snd)).errors, []);
      t.equal(h.pending, 0, 'nothing else sent');
      t.equal(ep.state, c.state);
      if (c.error) t.equal(ep.takeError(), c.error);
    });
  }
});

t.test('ESTABLISHED (TCP_QUICKACK 0) rcv in-order data → readable, delayed ACK at 40 ms; two segments → ACK at once', async (t) => {
  const { h, ep, snd } = established();
  t.equal(ep.getOption('TCP_QUICKACK'), 1, 'reads 1 out of ping-pong mode, as on Linux');
  ep.setOption('TCP_QUICKACK', 0);
  t.equal(ep.getOption('TCP_QUICKACK'), 0, 'reads 0 once set to 0 (ping-pong mode)');
  let woke = 0;
  ep.waiter.subscribe(EventIn, () => woke++);
  const p = h.peerNxt;
  h.send({ flags: A | TCP_PSH, seq: p, ack: snd, payload: pattern(100) });
  t.ok(woke > 0);
  t.equal(ep.inQueue(), 100);
  h.expectNone(39);
  h.advance(1);
  h.expect({ flags: A, seq: snd, ack: p + 100 });
  h.send({ flags: A, seq: p + 100, ack: snd, payload: pattern(1460) });
  h.expectNone(0);
  h.send({ flags: A, seq: p + 1560, ack: snd, payload: pattern(1460) });
  h.expect({ flags: A, ack: p + 3020 });
  const r = ep.read();
  if ('errno' in r) throw new Error(String(r));
  t.equal(r.data.length, 3020);
  t.same(r.data.subarray(0, 100), pattern(100));
  t.same(r.data.subarray(100, 1560), pattern(1460));
  t.equal(ep.read(), Err.WouldBlock);
});

t.test('ESTABLISHED rcv out-of-order data → dup ACK with SACK block; hole filled → ACK covering all, bytes in order', async (t) => {
  const { h, ep, snd } = established({ mss: 1460, sackPermitted: true } as never);
  const p = h.peerNxt;
  const data = pattern(3000);
  h.send({ flags: A, seq: p + 1000, ack: snd, payload: data.subarray(1000, 2000) });
  h.expect({ flags: A, ack: p, options: { sack: [{ left: p + 1000, right: p + 2000 }] } });
  h.send({ flags: A, seq: p + 2500, ack: snd, payload: data.subarray(2500, 3000) });
  h.expect({
    flags: A,
    ack: p,
    options: { sack: [{ left: p + 2500, right: p + 3000 }, { left: p + 1000, right: p + 2000 }] },
  });
  t.equal(ep.inQueue(), 0, 'nothing readable across the hole');
  h.send({ flags: A, seq: p, ack: snd, payload: data.subarray(0, 1000) });
  h.expect({ flags: A, ack: p + 2000, options: { sack: [{ left: p + 2500, right: p + 3000 }] } });
  h.send({ flags: A, seq: p + 1900, ack: snd, payload: data.subarray(1900, 2600) });
  h.expect({ flags: A, ack: p + 3000 });
  const r = ep.read();
  if ('errno' in r) throw new Error(String(r));
  t.same(Buffer.from(r.data), Buffer.from(data));
});

t.test('ESTABLISHED rcv data → quick ACKs for the first 16 segments (Linux quick-ACK mode), then delayed', async (t) => {
  const { h, ep, snd } = established();
  let p = h.peerNxt;
  for (let i = 0; i < 16; i++) {
    h.send({ flags: A, seq: p, ack: snd, payload: pattern(100) });
    p += 100;
    h.expect({ flags: A, ack: p });
  }
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(100) });
  h.expectNone(39);
  h.advance(1);
  h.expect({ flags: A, ack: p + 100 });
  t.equal(ep.inQueue(), 1700);
});

t.test('ESTABLISHED request/response (ping-pong) → the ACK rides on the reply', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(10) });
  h.expect({ flags: A, ack: p + 10, len: 0 });
  ep.read();
  ep.write(pattern(20));
  h.expect({ seq: snd, ack: p + 10, len: 20 });
  t.ok(ep.rcv.pingpong, 'a quick reply marks the connection interactive');
  h.send({ flags: A, seq: p + 10, ack: snd + 20, payload: pattern(10) });
  h.expectNone(0);
  ep.read();
  ep.write(pattern(20));
  h.expect({ seq: snd + 20, ack: p + 20, len: 20 });
  h.expectNone(100);
});

t.test('ESTABLISHED write → PSH data; ACK frees the buffer; Nagle holds a second small write until then', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  t.equal(ep.write(pattern(100)), 100);
  h.expect({ flags: A | TCP_PSH, seq: snd, ack: p, len: 100, payload: pattern(100) });
  t.equal(ep.write(pattern(50, 100)), 50);
  h.expectNone(0);
  t.equal(ep.outQueue(), 150);
  h.send({ flags: A, seq: p, ack: snd + 100 });
  h.expect({ flags: A | TCP_PSH, seq: snd + 100, len: 50, payload: pattern(50, 100) });
  h.send({ flags: A, seq: p, ack: snd + 150 });
  t.equal(ep.outQueue(), 0);
});

t.test('ESTABLISHED TCP_NODELAY → small writes go out at once; TCP_CORK holds them until uncorked', async (t) => {
  const { h, ep, snd } = established();
  ep.setOption('TCP_NODELAY', 1);
  ep.write(pattern(10));
  ep.write(pattern(10));
  h.expect({ seq: snd, len: 10 });
  h.expect({ seq: snd + 10, len: 10 });
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 20 });
  ep.setOption('TCP_CORK', 1);
  ep.write(pattern(10));
  ep.write(pattern(10));
  h.expectNone(100);
  ep.setOption('TCP_CORK', 0);
  h.expect({ seq: snd + 20, len: 20 });
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 40 });
  // Corked output is held at most 200 ms (tcp(7)).
  ep.setOption('TCP_CORK', 1);
  ep.write(pattern(10));
  h.expectNone(199);
  h.advance(1);
  h.expect({ seq: snd + 40, len: 10 });
  t.equal(ep.getOption('TCP_CORK'), 1, 'still corked afterwards');
  t.equal(ep.stats.corkCeilingFlushes, 1, 'the ceiling flush is counted, the uncork before it not');
});

t.test('ESTABLISHED corked, TCP_NODELAY set → what the cork held goes out at once; the next write is corked again (TCP_NAGLE_PUSH)', async (t) => {
  const { h, ep, snd } = established();
  ep.setOption('TCP_CORK', 1);
  ep.write(pattern(40));
  h.advance(50);
  ep.write(pattern(40));
  h.expectNone(10);
  ep.setOption('TCP_NODELAY', 1);
  h.expect({ flags: A | TCP_PSH, seq: snd, len: 80 });
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 80 });
  ep.write(pattern(40));
  h.expectNone(100);
  t.equal(ep.getOption('TCP_CORK'), 1, 'the cork stays');
});

t.test('ESTABLISHED large write → MSS-sized segments within IW10 in GSO packets (PSH on the last of each), rest after ACKs', async (t) => {
  const { h, ep, snd } = established();
  const data = pattern(20 * 1460);
  // The route has no TSO: Linux's GSO packets (tcp_tso_autosize segments, at most half of cwnd) leave cut, PSH
  // on each one's last.
  const segs = Math.min(ep.snd.gsoSegs(), Math.floor(ep.snd.cc.cwnd / 1460) >>> 1);
  t.equal(segs, 5, 'IW10: two packets of five');
  t.equal(ep.write(data), data.length);
  for (let i = 0; i < 10; i++) h.expect({ flags: (i + 1) % segs === 0 || i === 9 ? A | TCP_PSH : A, seq: snd + i * 1460, len: 1460 });
  h.expectNone(0);
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 2 * 1460 });
  // Slow start: 2 segments acked → cwnd grows by 2·MSS → 4 new segments.
  for (let i = 10; i < 14; i++) h.expect({ seq: snd + i * 1460, len: 1460 });
  h.expectNone(0);
});

t.test('ESTABLISHED data unacked → RTO retransmission (SRTT + 200 ms minimum, as Linux), backoff doubles', async (t) => {
  const { h, ep, snd } = established();
  const rto = ep.snd.rtt.rto;
  t.equal(rto, ep.snd.rtt.srtt + 200, 'the handshake RTT plus the 200 ms floor of the variation');
  ep.write(pattern(100));
  h.expect({ seq: snd, len: 100 });
  h.expectNone(rto - 1);
  h.advance(1);
  h.expect({ seq: snd, len: 100 });
  h.expectNone(2 * rto - 1);
  h.advance(1);
  h.expect({ seq: snd, len: 100 });
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 100 });
  h.expectNone(5000);
  t.equal(h.tcp.stats.timeouts, 2);
});

t.test('ESTABLISHED 3 duplicate ACKs → fast retransmit of SND.UNA before the RTO', async (t) => {
  const { h, ep, snd } = established();
  ep.write(pattern(5 * 1460));
  for (let i = 0; i < 5; i++) h.expect({ seq: snd + i * 1460 });
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd });
  h.send({ flags: A, seq: p, ack: snd });
  h.expectNone(0);
  h.send({ flags: A, seq: p, ack: snd });
  h.expect({ seq: snd, len: 1460 });
  t.equal(h.tcp.stats.fastRetransmits, 1);
  t.ok(ep.snd.inRecovery);
  // Partial ACK (NewReno): the next hole is resent at once.
  h.send({ flags: A, seq: p, ack: snd + 1460 });
  h.expect({ seq: snd + 1460, len: 1460 });
  h.send({ flags: A, seq: p, ack: snd + 5 * 1460 });
  t.notOk(ep.snd.inRecovery, 'recovery ends at the recovery point');
});

t.test('ESTABLISHED peer window 0 → persist probes with backoff; window opens → data flows', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd, window: 0 });
  ep.write(pattern(100));
  h.expectNone(0);
  const rto = ep.snd.rtt.rto;
  h.advance(rto);
  h.expect({ flags: A, seq: snd - 1, len: 0 });
  h.expectNone(2 * rto - 1);
  h.advance(1);
  h.expect({ flags: A, seq: snd - 1, len: 0 });
  h.send({ flags: A, seq: p, ack: snd, window: 1000 });
  h.expect({ seq: snd, len: 100 });
});

t.test('ESTABLISHED receive buffer fills → window shrinks to 0, read reopens it with a window update', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  ep.setOption('SO_RCVBUF', 4000);
  ep.connect({ address: Uint8Array.from([198, 18, 0, 2]), port: 40000 });
  // The SYN offers the buffer in whole MSS: 2 · 1460 (Linux 6.18 offers the same).
  const syn = h.expect({ flags: TCP_SYN, window: 2920 });
  h.localPort = syn.srcPort;
  h.iss = syn.seq;
  h.send({ flags: TCP_SYN | A, ack: syn.seq + 1, options: { mss: 1000 } });
  h.peerNxt++;
  h.expect({ flags: A, window: 4000 });
  const p = h.peerNxt;
  const snd = syn.seq + 1;
  ep.setOption('TCP_QUICKACK', 0);
  for (let i = 0; i < 4; i++) h.send({ flags: A, seq: p + i * 1000, ack: snd, payload: pattern(1000, i) });
  h.expect({ flags: A, ack: p + 2000, window: 2000 });
  h.expect({ flags: A, ack: p + 4000, window: 0 });
  h.send({ flags: A, seq: p + 4000, ack: snd, payload: pattern(10) });
  h.expect({ flags: A, ack: p + 4000, window: 0 });
  const r = ep.read({ maxBytes: 1500 });
  t.notOk('errno' in r);
  h.expect({ flags: A, ack: p + 4000, window: 1500 });
  ep.read();
  h.expect({ flags: A, ack: p + 4000, window: 4000 });
});

t.test('ESTABLISHED PAWS: segment with an older timestamp → ACK, dropped', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: 1460, tsVal: 1000, tsEcr: 0 });
  const snd = h.iss + 1;
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(10), options: { tsVal: 1001, tsEcr: 0 } });
  t.equal(ep.inQueue(), 10);
  h.send({ flags: A, seq: p + 10, ack: snd, payload: pattern(10), options: { tsVal: 900, tsEcr: 0 } });
  const ack = h.expect({ flags: A, ack: p + 10 });
  t.equal(ack.options.tsEcr, 1001, 'TS.Recent from the last in-order segment');
  t.equal(ep.inQueue(), 10, 'the old segment was not taken');
  t.equal(h.tcp.stats.pawsDrops, 1);
});

t.test('close sequence: ESTABLISHED close → FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED after 2·MSL', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  ep.close();
  t.equal(ep.state, State.FinWait1);
  h.expect({ flags: A | TCP_FIN, seq: snd, ack: p });
  h.send({ flags: A, seq: p, ack: snd + 1 });
  t.equal(ep.state, State.FinWait2);
  h.send({ flags: A | TCP_FIN, seq: p, ack: snd + 1 });
  h.expect({ flags: A, seq: snd + 1, ack: p + 1 });
  t.equal(ep.state, State.TimeWait);
  // A retransmitted FIN is acknowledged again.
  h.send({ flags: A | TCP_FIN, seq: p, ack: snd + 1 });
  h.expect({ flags: A, seq: snd + 1, ack: p + 1 });
  h.advance(59_999);
  t.equal(ep.state, State.TimeWait);
  h.advance(1);
  t.equal(ep.state, State.Closed);
  t.equal(h.tcp.connectionCount, 0);
  t.equal(h.tcp.timeWaitCount, 0);
});

t.test('TIME-WAIT table full (maxTimeWait) → the connection closes at once', async (t) => {
  const h = new Harness({ maxTimeWait: 0 });
  const ep = h.connect(PLAIN);
  const snd = h.iss + 1;
  ep.close();
  h.expect({ flags: A | TCP_FIN });
  h.send({ flags: A | TCP_FIN, seq: h.peerNxt, ack: snd + 1 });
  h.expect({ flags: A, seq: snd + 1, ack: h.peerNxt + 1 });
  t.equal(ep.state, State.Closed);
  t.equal(h.tcp.stats.timeWaitOverflows, 1);
});

t.test('close sequence: ESTABLISHED rcv FIN → CLOSE-WAIT, read → EOF; close → LAST-ACK → CLOSED', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  h.send({ flags: A | TCP_FIN, seq: p, ack: snd, payload: pattern(5) });
  h.expect({ flags: A, ack: p + 6 });
  t.equal(ep.state, State.CloseWait);
  t.ok(ep.readiness(EventRdHUp));
  const r1 = ep.read();
  t.same(r1, { data: pattern(5) });
  t.same(ep.read(), { data: new Uint8Array(0) }, 'EOF');
  t.equal(ep.write(pattern(3)), 3, 'CLOSE-WAIT can still send');
  h.expect({ seq: snd, len: 3 });
  ep.close();
  t.equal(ep.state, State.LastAck);
  h.expect({ flags: A | TCP_FIN, seq: snd + 3, ack: p + 6 });
  h.send({ flags: A, seq: p + 6, ack: snd + 4 });
  t.equal(ep.state, State.Closed);
});

t.test('simultaneous close: FIN-WAIT-1 rcv FIN → CLOSING; ACK → TIME-WAIT', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  ep.shutdown(ShutdownWrite);
  h.expect({ flags: A | TCP_FIN, seq: snd });
  h.send({ flags: A | TCP_FIN, seq: p, ack: snd });
  t.equal(ep.state, State.Closing);
  h.expect({ flags: A, seq: snd + 1, ack: p + 1 });
  h.send({ flags: A, seq: p + 1, ack: snd + 1 });
  t.equal(ep.state, State.TimeWait);
});

t.test('FIN-WAIT-1 rcv FIN+ACK of our FIN → TIME-WAIT at once', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  ep.close();
  h.expect({ flags: A | TCP_FIN });
  h.send({ flags: A | TCP_FIN, seq: p, ack: snd + 1 });
  t.equal(ep.state, State.TimeWait);
  h.expect({ flags: A, ack: p + 1 });
});

t.test('FIN lost → retransmitted by the RTO', async (t) => {
  const { h, ep, snd } = established();
  ep.close();
  h.expect({ flags: A | TCP_FIN, seq: snd });
  h.advance(ep.snd.rtt.rto);
  h.expect({ flags: A | TCP_FIN, seq: snd });
});

t.test('close with unread data → RST, CLOSED (RFC 2525 §2.17)', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(10) });
  h.expect({ flags: A, ack: p + 10 });
  ep.close();
  h.expect({ flags: TCP_RST | A, seq: snd, ack: p + 10 });
  t.equal(ep.state, State.Closed);
  t.equal(h.tcp.connectionCount, 0);
});

t.test('SO_LINGER {on, 0} close → RST', async (t) => {
  const { h, ep, snd } = established();
  ep.setOption('SO_LINGER', { onoff: true, linger: 0 });
  ep.close();
  h.expect({ flags: TCP_RST | A, seq: snd });
});

t.test('FIN-WAIT-2 after close rcv data → RST (nobody will read it)', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  ep.close();
  h.expect({ flags: A | TCP_FIN });
  h.send({ flags: A, seq: p, ack: snd + 1 });
  h.send({ flags: A, seq: p, ack: snd + 1, payload: pattern(4) });
  h.expect({ flags: TCP_RST, seq: snd + 1 });
  t.equal(ep.state, State.Closed);
});

t.test('orphaned FIN-WAIT-2 → CLOSED after tcp_fin_timeout', async (t) => {
  const { h, ep, snd } = established();
  ep.close();
  h.expect({ flags: A | TCP_FIN });
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 1 });
  t.equal(ep.state, State.FinWait2);
  h.advance(60_000);
  t.equal(ep.state, State.Closed);
});

t.test('TIME-WAIT rcv SYN with higher sequence → reopened by the listener (RFC 6191)', async (t) => {
  const h = new Harness();
  const l = h.listen();
  const child = h.accept(l, PLAIN);
  const snd = h.iss + 1;
  child.close();
  h.expect({ flags: A | TCP_FIN });
  h.send({ flags: A | TCP_FIN, seq: h.peerNxt, ack: snd + 1 });
  h.expect({ flags: A });
  t.equal(child.state, State.TimeWait);
  h.send({ flags: TCP_SYN, seq: h.peerNxt + 100_000, options: PLAIN });
  h.expect({ flags: TCP_SYN | A, ack: h.peerNxt + 100_001 });
  t.equal(child.state, State.Closed);
  t.equal(h.tcp.stats.timeWaitReused, 1);
});

t.test('keepalive: idle → probes every TCP_KEEPINTVL; TCP_KEEPCNT unanswered → ETIMEDOUT', async (t) => {
  const { h, ep, snd } = established();
  ep.setOption('TCP_KEEPIDLE', 10);
  ep.setOption('TCP_KEEPINTVL', 2);
  ep.setOption('TCP_KEEPCNT', 3);
  ep.setOption('SO_KEEPALIVE', 1);
  h.expectNone(9_999);
  h.advance(1);
  h.expect({ flags: A, seq: snd - 1, len: 0 });
  // An answer restarts the idle period.
  h.send({ flags: A, seq: h.peerNxt, ack: snd });
  h.expectNone(9_999);
  h.advance(1);
  h.expect({ flags: A, seq: snd - 1 });
  h.advance(2000);
  h.expect({ flags: A, seq: snd - 1 });
  h.advance(2000);
  h.expect({ flags: A, seq: snd - 1 });
  h.advance(2000);
  // Linux tcp_keepalive_timer: a RST goes out before the connection fails (more in keepalive.test.ts).
  h.expect({ flags: TCP_RST | A, seq: snd, ack: h.peerNxt });
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.TimedOut);
});

t.test('TCP_USER_TIMEOUT: unacked data for longer than the timeout → ETIMEDOUT', async (t) => {
  const { h, ep } = established();
  ep.setOption('TCP_USER_TIMEOUT', 1000);
  ep.write(pattern(10));
  h.advance(2000);
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.TimedOut);
  t.equal(ep.write(pattern(1)), Err.ClosedForSend);
});

t.test('window scaling: the window field is the free space shifted by our scale', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: 1460, wscale: 3 });
  ep.setOption('TCP_QUICKACK', 0);
  const snd = h.iss + 1;
  h.send({ flags: A, seq: h.peerNxt, ack: snd, payload: pattern(1000) });
  h.send({ flags: A, seq: h.peerNxt + 1000, ack: snd, payload: pattern(1000) });
  h.expect({ flags: A, ack: h.peerNxt + 2000, window: Math.floor((131072 - 2000) / 128) });
  // The peer's window is scaled by its shift.
  h.send({ flags: A, seq: h.peerNxt + 2000, ack: snd, window: 100 });
  t.equal(ep.snd.wnd, 800);
  void seq;
});

t.test('TCP_INFO reports Linux field names', async (t) => {
  const h = new Harness();
  const ep = h.connect();
  const info = ep.getOption('TCP_INFO') as Record<string, number>;
  t.equal(info['tcpi_state'], 1);
  t.equal(info['tcpi_options'], 7);
  t.equal(info['tcpi_snd_wscale'], 7);
  t.equal(info['tcpi_rcv_wscale'], 7);
  t.equal(info['tcpi_snd_mss'], 1448);
  t.equal(info['tcpi_snd_cwnd'], 10);
  t.equal(ep.getOption('TCP_CONGESTION'), 'cubic');
  t.equal(ep.setOption('TCP_CONGESTION', 'reno'), undefined);
  t.equal(ep.getOption('TCP_CONGESTION'), 'reno');
  // Linux: a name with no algorithm behind it is ENOENT (tcp_set_congestion_control), a value that is no name EINVAL.
  t.equal(ep.setOption('TCP_CONGESTION', 'bbr'), Err.UnknownAlgorithm);
  t.equal(Err.UnknownAlgorithm.errno, 2);
  t.equal(ep.setOption('TCP_CONGESTION', 7), Err.InvalidArgument);
  t.equal(ep.setOption('TCP_MAXSEG', 10), Err.InvalidArgument);
  t.equal(ep.getOption('SO_RCVBUF'), 262144);
});

t.test('TCP_INFO last_data_recv / last_ack_recv: ms since the connection started, then since data or an ACK came', async (t) => {
  const { h, ep, snd } = established();
  const info = () => ep.getOption('TCP_INFO') as Record<string, number>;
  h.advance(1000);
  t.equal(info()['tcpi_last_data_recv'], 1000, 'no data yet: counted from the handshake (Linux lrcvtime)');
  h.send({ flags: A, seq: h.peerNxt, ack: snd, payload: pattern(100) });
  h.advance(7);
  t.equal(info()['tcpi_last_data_recv'], 7);
  ep.write(pattern(10));
  h.advance(30);
  h.send({ flags: A, seq: h.peerNxt + 100, ack: snd + 10 });
  h.advance(5);
  t.equal(info()['tcpi_last_ack_recv'], 5);
  t.equal(info()['tcpi_last_data_recv'], 42, 'a bare ACK is not data');
});

t.test('receive-buffer auto-tuning: a reader that keeps up grows the window; SO_RCVBUF or tcp_moderate_rcvbuf = 0 turns it off', async (t) => {
  for (const how of ['tuned', 'SO_RCVBUF', 'tcp_moderate_rcvbuf = 0'] as const) {
    const fixed = how !== 'tuned';
    const h = new Harness(how === 'tcp_moderate_rcvbuf = 0' ? { moderateRcvbuf: false } : undefined);
    const ep = h.connect({ mss: 1460, wscale: 7 });
    if (how === 'SO_RCVBUF') ep.setOption('SO_RCVBUF', 131072);
    const snd = h.iss + 1;
    let p = h.peerNxt;
    let lastWindow = 0;
    for (let round = 0; round < 6; round++) {
      const wnd = ep.rcv.wnd;
      for (let sent = 0; sent + 1460 <= wnd; sent += 1460) {
        h.send({ flags: A, seq: p, ack: snd, payload: pattern(1460) });
        p += 1460;
      }
      h.advance(2);
      ep.read();
      while (h.pending) lastWindow = h.next().window;
    }
    if (fixed) t.equal(ep.rcv.limit, 131072, `${how}: fixed`);
    else {
      t.ok(ep.rcv.limit >= 4 * 131072, `auto-tuned to ${ep.rcv.limit}`);
      t.ok(lastWindow * 128 > 131072, `advertised ${lastWindow * 128} bytes`);
    }
  }
});

t.test('stack-wide memory limit: writes stop at the limit, out-of-order data is dropped', async (t) => {
  const h = new Harness({ maxMemory: 5000 });
  const ep = h.connect(PLAIN);
  const snd = h.iss + 1;
  t.equal(ep.write(pattern(4000)), 4000);
  t.equal(ep.write(pattern(4000)), 1000, 'only what fits the stack-wide budget');
  t.equal(ep.write(pattern(10)), Err.WouldBlock);
  h.clearSent();
  h.send({ flags: A, seq: h.peerNxt + 100, ack: snd, payload: pattern(100) });
  t.equal(ep.rcv.ooo.length, 0, 'out-of-order data dropped under pressure');
  t.equal(h.tcp.stats.memoryDrops, 2);
  const sent = ep.snd.max;
  t.ok(seq.sub(sent, snd) > 0);
  h.send({ flags: A, seq: h.peerNxt, ack: sent });
  t.equal(h.tcp.memoryUsed, 5000 - seq.sub(sent, snd), 'ACKed data released');
  t.equal(ep.write(pattern(10)), 10);
});

t.test('ESTABLISHED ICMP fragmentation-needed quoting our segment → smaller MSS, data resent at the new size', async (t) => {
  const { h, ep, snd } = established();
  ep.write(pattern(3000));
  const first = h.expect({ seq: snd, len: 1460 });
  h.clearSent();
  const quoted = new Uint8Array(8);
  new DataView(quoted.buffer).setUint16(0, first.srcPort);
  new DataView(quoted.buffer).setUint16(2, first.dstPort);
  new DataView(quoted.buffer).setUint32(4, first.seq);
  const msg = { kind: 'packet-too-big' as const, type: 3, code: 4, family: 4 as const, from: REMOTE, mtu: 1000, };
  h.tcp.deliverControl(msg, LOCAL, REMOTE, quoted);
  t.equal(ep.snd.mss, 960);
  h.expect({ seq: snd, len: 960 });
  // A forged error quoting a sequence number outside the flight is ignored (RFC 5927 §4.1).
  new DataView(quoted.buffer).setUint32(4, snd + 100_000);
  h.tcp.deliverControl({ ...msg, mtu: 600 }, LOCAL, REMOTE, quoted);
  t.equal(ep.snd.mss, 960);
});

t.test('TCP_MAXSEG before connect caps the MSS we announce and use', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  t.equal(ep.setOption('TCP_MAXSEG', 1000), undefined);
  ep.connect({ address: REMOTE, port: 40000 });
  const syn = h.expect({ flags: TCP_SYN, options: { mss: 1000 } });
  h.localPort = syn.srcPort;
  h.send({ flags: TCP_SYN | A, ack: syn.seq + 1, options: { mss: 1460 } });
  t.equal(ep.snd.mss, 1000);
  t.equal(ep.getOption('TCP_MAXSEG'), 1000);
});

t.test('sender SWS avoidance: a small usable window is not filled with a runt while data is in flight', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd, window: 3000 });
  ep.write(pattern(1460));
  ep.write(pattern(1460));
  h.expect({ seq: snd, len: 1460 });
  h.expect({ seq: snd + 1460, len: 1460 });
  ep.write(pattern(5000));
  // 80 bytes of window left: not even the first segment fits (Linux's tcp_snd_wnd_test), so nothing is sent.
  h.expectNone(0);
  // 1540 bytes: a whole first segment fits, and the window's runt rides in the same GSO packet (tcp_mss_split_point).
  h.send({ flags: A, seq: p, ack: snd + 1460, window: 3000 });
  h.expect({ flags: A, seq: snd + 2920, len: 1460 });
  h.expect({ flags: A | TCP_PSH, seq: snd + 4380, len: 80 });
  h.expectNone(0);
});

t.test('sender SWS as Linux: a window smaller than a segment gets nothing at once; the persist timer sends what it takes, pushed (tcp_write_wakeup)', async (t) => {
  const { h, ep, snd } = established();
  h.send({ flags: A, seq: h.peerNxt, ack: snd, window: 1000 });
  t.equal(ep.write(pattern(5000)), 5000);
  h.expectNone(ep.snd.rtt.rto - 1);
  h.advance(1);
  h.expect({ flags: A | TCP_PSH, seq: snd, len: 1000 });
  h.expectNone(0);
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 1000, window: 1000 });
  h.expectNone(ep.snd.rtt.rto - 1);
  h.advance(1);
  h.expect({ flags: A | TCP_PSH, seq: snd + 1000, len: 1000 });
  // The window opens: full segments flow again.
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 2000, window: 10000 });
  h.expect({ seq: snd + 2000, len: 1460 });
});

t.test('ESTABLISHED rcv out-of-window pure ACKs → one ACK per 500 ms (no ACK loops); data is always answered', async (t) => {
  const { h, snd } = established();
  const p = h.peerNxt;
  h.send({ flags: A, seq: p + 100_000, ack: snd });
  h.expect({ flags: A, ack: p });
  h.send({ flags: A, seq: p + 100_000, ack: snd });
  h.expectNone(0);
  h.send({ flags: A, seq: p - 50, ack: snd, payload: pattern(10) });
  h.expect({ flags: A, ack: p });
  h.advance(500);
  h.send({ flags: A, seq: p + 100_000, ack: snd });
  h.expect({ flags: A, ack: p });
  t.equal(h.tcp.stats.invalidAcksSuppressed, 1);
});

t.test('sequence numbers wrap at 2^32 on both sides: data, SACK and ACKs stay byte-exact', async (t) => {
  const h = new Harness();
  h.peerNxt = 0xfffffc00;
  const ep = h.tcp.newEndpoint(4);
  ep.newIsn = () => 0xfffffe00;
  ep.connect({ address: REMOTE, port: 40000 });
  const syn = h.expect({ flags: TCP_SYN, seq: 0xfffffe00 });
  h.localPort = syn.srcPort;
  h.send({ flags: TCP_SYN | A, ack: 0xfffffe01, options: { mss: 1000, sackPermitted: true } });
  h.peerNxt = 0xfffffc01;
  h.expect({ flags: A, seq: 0xfffffe01, ack: 0xfffffc01 });
  // Our data crosses the wrap.
  ep.setOption('TCP_NODELAY', 1);
  ep.write(pattern(2000));
  h.expect({ seq: 0xfffffe01, len: 1000 });
  h.expect({ seq: (0xfffffe01 + 1000) >>> 0, len: 1000, payload: pattern(1000, 1000) });
  h.send({ flags: A, seq: h.peerNxt, ack: (0xfffffe01 + 2000) >>> 0 });
  t.equal(ep.outQueue(), 0);
  // The peer's data crosses the wrap, out of order.
  const data = pattern(3000, 7);
  const at = (off: number) => (0xfffffc01 + off) >>> 0;
  h.send({ flags: A, seq: at(2000), ack: (0xfffffe01 + 2000) >>> 0, payload: data.subarray(2000) });
  h.expect({ ack: at(0), options: { sack: [{ left: at(2000), right: at(3000) }] } });
  h.send({ flags: A, seq: at(1000), ack: (0xfffffe01 + 2000) >>> 0, payload: data.subarray(1000, 2000) });
  h.clearSent();
  h.send({ flags: A, seq: at(0), ack: (0xfffffe01 + 2000) >>> 0, payload: data.subarray(0, 1000) });
  h.expect({ ack: at(3000) });
  const r = ep.read();
  if ('errno' in r) throw new Error(String(r));
  t.same(Buffer.from(r.data), Buffer.from(data));
});

t.test('ESTABLISHED read with MSG_PEEK keeps the data; maxBytes reads part; FIONREAD/SIOCOUTQ count bytes', async (t) => {
  const { h, ep, snd } = established();
  h.send({ flags: A, seq: h.peerNxt, ack: snd, payload: pattern(100) });
  h.send({ flags: A, seq: h.peerNxt + 100, ack: snd, payload: pattern(50, 100) });
  t.equal(ep.inQueue(), 150);
  const peeked = ep.read({ peek: true, maxBytes: 120 });
  t.same(peeked, { data: pattern(120) });
  t.equal(ep.inQueue(), 150, 'peek consumes nothing');
  (peeked as { data: Uint8Array }).data.fill(0);
  t.same(ep.read({ maxBytes: 30 }), { data: pattern(30) }, 'peeked copy did not alias the queue');
  t.same(ep.read(), { data: pattern(120, 30) });
  ep.write(pattern(10));
  t.equal(ep.outQueue(), 10);
});

t.test('LAST-ACK with data still queued: ACKs keep the data flowing, then the FIN, then CLOSED', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  h.send({ flags: A | TCP_FIN, seq: p, ack: snd });
  h.clearSent();
  t.equal(ep.write(pattern(30 * 1460)), 30 * 1460);
  ep.close();
  t.equal(ep.state, State.LastAck);
  let next = snd;
  let fin = false;
  for (let round = 0; round < 20 && !fin; round++) {
    const sent = [];
    while (h.pending) sent.push(h.next());
    t.ok(sent.length > 0, `round ${round}: something sent`);
    for (const r of sent) {
      t.equal(r.seq, next, 'in order');
      next += r.payload.length;
      if (r.flags & TCP_FIN) {
        fin = true;
        next++;
      }
    }
    h.send({ flags: A, seq: p + 1, ack: next });
  }
  t.ok(fin, 'the FIN followed the data');
  t.equal(next, snd + 30 * 1460 + 1);
  t.equal(ep.state, State.Closed);
});

t.test('the stack tracer hears state changes and why a segment was dropped', async (t) => {
  const h = new Harness();
  const events: string[] = [];
  h.net.stats.tracer = (e) => events.push(`${e.group}.${e.counter}${e.detail ? ` ${e.detail}` : ''}`);
  const ep = h.connect(PLAIN);
  h.send({ flags: A, seq: h.peerNxt + 1_000_000, ack: h.iss + 1 });
  ep.close();
  t.ok(events.includes('tcp.state CLOSED → SYN-SENT'), events.join('; '));
  t.ok(events.includes('tcp.state SYN-SENT → ESTABLISHED'));
  t.ok(events.includes('tcp.outOfWindow'));
  t.ok(events.includes('tcp.state ESTABLISHED → FIN-WAIT-1'));
});

t.test('send-buffer auto-tuning: the buffer grows to twice cwnd; SO_SNDBUF fixes it', async (t) => {
  for (const fixed of [false, true]) {
    const h = new Harness();
    const ep = h.connect({ mss: 1460, wscale: 7 });
    if (fixed) ep.setOption('SO_SNDBUF', 100_000);
    const snd = h.iss + 1;
    void snd;
    for (let round = 0; round < 8; round++) {
      while (typeof ep.write(pattern(65536)) === 'number');
      const ends: number[] = [];
      while (h.pending) {
        const r = h.next();
        ends.push(r.seq + r.payload.length);
      }
      // A receiver ACKing every second segment.
      for (let i = 1; i < ends.length; i += 2) h.send({ flags: A, seq: h.peerNxt, ack: ends[i]!, window: 0xffff });
      h.send({ flags: A, seq: h.peerNxt, ack: ep.snd.max, window: 0xffff });
    }
    if (fixed) t.equal(ep.snd.limit, 100_000);
    else {
      t.ok(ep.snd.limit > 262144, `grew to ${ep.snd.limit} with cwnd ${ep.snd.cc.cwnd}`);
      t.ok(ep.snd.limit <= 4 * 1024 * 1024, 'never beyond maxSndBuf');
      t.equal(ep.snd.limit, Math.min(4 * 1024 * 1024, 2 * ep.snd.cc.cwnd), 'twice cwnd, capped');
    }
  }
});

// Receive batches (PacketInfo.more, from frames a link flagged RX_MORE): due ACKs wait for the batch's end.
t.test('ESTABLISHED 4 segments flagged more → no ACK until batchEnd, then one ACK for all; unflagged → an ACK each', async (t) => {
  const { h, snd } = established();
  const p = h.peerNxt;
  for (let i = 0; i < 4; i++) h.send({ flags: A, seq: p + i * 1460, ack: snd, payload: pattern(1460), more: true });
  h.expectNone(0);
  h.tcp.batchEnd();
  h.expect({ flags: A, ack: p + 4 * 1460 });
  h.tcp.batchEnd();
  h.expectNone(0);
  // The same four unflagged, still in quick-ACK mode: an ACK each, at once.
  for (let i = 4; i < 8; i++) h.send({ flags: A, seq: p + i * 1460, ack: snd, payload: pattern(1460) });
  for (let i = 5; i <= 8; i++) h.expect({ flags: A, ack: p + i * 1460 });
  h.expectNone(0);
});

t.test('ESTABLISHED segments flagged more, the batch\'s last one not → one ACK at the last, nothing left for batchEnd', async (t) => {
  const { h, snd } = established();
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(1460), more: true });
  h.send({ flags: A, seq: p + 1460, ack: snd, payload: pattern(1460), more: true });
  h.expectNone(0);
  h.send({ flags: A, seq: p + 2920, ack: snd, payload: pattern(1460) });
  h.expect({ flags: A, ack: p + 3 * 1460 });
  h.tcp.batchEnd();
  h.expectNone(0);
});

t.test('ESTABLISHED out-of-order segment flagged more → its SACK waits for batchEnd; the hole filled in the same batch → one ACK for all', async (t) => {
  const { h, snd } = established({ mss: 1460, sackPermitted: true } as never);
  const p = h.peerNxt;
  h.send({ flags: A, seq: p + 1000, ack: snd, payload: pattern(1000), more: true });
  h.expectNone(0);
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(1000), more: true });
  h.expectNone(0);
  h.tcp.batchEnd();
  const ack = h.expect({ flags: A, ack: p + 2000 });
  t.same(ack.options.sack ?? [], [], 'no SACK block: the reordering healed inside the batch');
});

t.test('ESTABLISHED ACK deferred, then RST in the same batch → batchEnd sends nothing', async (t) => {
  const { h, ep, snd } = established();
  const p = h.peerNxt;
  h.send({ flags: A, seq: p, ack: snd, payload: pattern(1460), more: true });
  h.send({ flags: A, seq: p + 1460, ack: snd, payload: pattern(1460), more: true });
  h.send({ flags: TCP_RST, seq: p + 2920, more: true });
  t.equal(ep.state, State.Closed);
  h.tcp.batchEnd();
  h.expectNone(0);
});

t.test('ESTABLISHED request/response, application-limited → cwnd and the send buffer stay as they were (RFC 7661 §4.2, Linux tcp_is_cwnd_limited)', async (t) => {
  const { h, ep, snd } = established();
  const cwnd = ep.snd.cc.cwnd;
  const limit = ep.snd.limit;
  let s = snd;
  let pureAcks = 0;
  for (let i = 0; i < 200; i++) {
    // The peer's request acknowledges the previous answer; the answer (500 bytes) carries the ACK of the request.
    h.send({ flags: A | TCP_PSH, seq: h.peerNxt, ack: s, payload: pattern(100) });
    h.peerNxt += 100;
    const r = ep.read();
    if (!('data' in r) || r.data.length !== 100) t.fail(`request ${i} not read whole`);
    t.equal(ep.write(pattern(500)), 500);
    let answers = 0;
    while (h.pending) {
      const seg = h.next();
      if (seg.payload.length === 500 && seg.seq === s >>> 0 && seg.ack === h.peerNxt >>> 0) answers++;
      else if (seg.payload.length === 0) pureAcks++;
      else t.fail(`exchange ${i}: unexpected ${seg.payload.length}-byte segment`);
    }
    if (answers !== 1) t.fail(`exchange ${i}: ${answers} answers`);
    s += 500;
    h.advance(0.05);
  }
  t.ok(pureAcks <= 16, `pure ACKs only in the quick-ACK start (${pureAcks})`);
  t.equal(ep.snd.cc.cwnd, cwnd, 'cwnd unchanged: 500 bytes in flight never used the window');
  t.equal(ep.snd.limit, limit, 'the send buffer did not grow after it');
  // A bulk write is cwnd-limited: slow start grows the window from there.
  h.send({ flags: A, seq: h.peerNxt, ack: s });
  ep.write(pattern(20 * 1460));
  for (let i = 0; i < 10; i++) h.expect({ seq: s + i * 1460, len: 1460 });
  h.expectNone(0);
  h.send({ flags: A, seq: h.peerNxt, ack: s + 2 * 1460 });
  t.equal(ep.snd.cc.cwnd, cwnd + 2 * 1460, 'an ACK of a cwnd-limited flight grows cwnd by 2 MSS (slow start)');
});

t.test('ESTABLISHED all acknowledged, then new data 150 ms later → the RTO counts from the new data (a disarmed timer re-armed)', async (t) => {
  const { h, ep, snd } = established();
  ep.write(pattern(100));
  h.expect({ seq: snd, len: 100 });
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 100 });
  t.notOk(ep.snd.rtxTimer.armed, 'nothing in flight: the retransmission timer is disarmed');
  h.expectNone(150);
  ep.write(pattern(10));
  h.expect({ seq: snd + 100, len: 10 });
  // The clock timer of the first send is still queued for an RTO after it: firing there must re-arm, not resend.
  h.expectNone(ep.snd.rtt.rto - 1);
  h.advance(1);
  h.expect({ seq: snd + 100, len: 10 });
  t.equal(h.tcp.stats.timeouts, 1, 'one timeout, an RTO after the second send');
});

t.test('SO_RCVLOWAT 5: 3 bytes are not readable (poll, waiters), 7 are; a FIN makes fewer readable; the mark is capped at half the largest buffer', async (t) => {
  const { h, ep, snd } = established();
  t.equal(ep.setOption('SO_RCVLOWAT', 5), undefined);
  t.equal(ep.getOption('SO_RCVLOWAT'), 5);
  let woke = 0;
  ep.waiter.subscribe(EventIn, () => woke += ep.readiness(EventIn) ? 1 : 0);
  const p = h.peerNxt;
  h.send({ flags: A | TCP_PSH, seq: p, ack: snd, payload: pattern(3) });
  t.equal(ep.readiness(EventIn), 0, '3 bytes: not readable');
  t.equal(woke, 0, 'no reader woken readable');
  h.send({ flags: A | TCP_PSH, seq: p + 3, ack: snd, payload: pattern(4) });
  t.equal(ep.readiness(EventIn), EventIn, '7 bytes: readable');
  const r = ep.read();
  if ('errno' in r) throw new Error(String(r));
  t.equal(r.data.length, 7);
  h.send({ flags: A | TCP_PSH, seq: p + 7, ack: snd, payload: pattern(2) });
  t.equal(ep.readiness(EventIn), 0);
  h.send({ flags: A | TCP_FIN, seq: p + 9, ack: snd });
  t.equal(ep.readiness(EventIn), EventIn, 'after the FIN: readable with 2');
  t.equal(ep.setOption('SO_RCVLOWAT', 0x7fffffff), undefined);
  const cap = ep.getOption('SO_RCVLOWAT') as number;
  t.ok(cap < 0x7fffffff && cap >= 1 << 20, `capped at half the largest buffer (${cap})`);
});
