import t from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { State } from '../../../../netstack/transport/tcp/state.ts';
import type { TcpConfig } from '../../../../netstack/transport/tcp/protocol.ts';
import { TCP_ACK, TCP_FIN, TCP_RST } from '../../../../netstack/wire/tcp.ts';
import { Harness, describe, pattern } from './helper.ts';

const A = TCP_ACK;
const RA = TCP_RST | TCP_ACK;

type T = Pick<typeof t, 'same' | 'equal'>;

/** An established connection without timestamps, SACK or scaling, keep-alive after 10 s idle, 2 s apart, 3 probes. */
function keepalive(config?: Partial<TcpConfig>): { h: Harness; ep: TcpEndpoint; snd: number } {
  const h = new Harness(config);
  const ep = h.connect({ mss: 1460 });
  ep.setOption('TCP_KEEPIDLE', 10);
  ep.setOption('TCP_KEEPINTVL', 2);
  ep.setOption('TCP_KEEPCNT', 3);
  ep.setOption('SO_KEEPALIVE', 1);
  return { h, ep, snd: h.iss + 1 };
}

/** Checks the next sent segment against `m`, reporting mismatches as one tap assertion. */
function expectSeg(t: T, h: Harness, m: Parameters<Harness['check']>[0], name: string): void {
  const { errors } = h.check(m);
  t.same(errors, [], name);
}

/** Checks that nothing is sent in the next `ms`. */
function expectQuiet(t: T, h: Harness, ms: number, name: string): void {
  h.advance(ms);
  t.equal(h.pending, 0, name + (h.pending ? `: got ${describe(h.next())}` : ''));
}

t.test('ESTABLISHED keepalive: TCP_KEEPCNT probes unanswered → RST at SND.MAX, CLOSED, ETIMEDOUT', async (t) => {
  const { h, ep, snd } = keepalive();
  const resets = h.tcp.stats.resetsSent;
  expectQuiet(t, h, 9_999, 'nothing before TCP_KEEPIDLE');
  for (let i = 1; i <= 3; i++) {
    h.advance(1);
    expectSeg(t, h, { flags: A, seq: snd - 1, ack: h.peerNxt, len: 0 }, `probe ${i} at SND.UNA-1`);
    expectQuiet(t, h, 1_999, `nothing before probe ${i}'s TCP_KEEPINTVL ends`);
    t.equal(ep.state, State.Established);
  }
  h.advance(1);
  expectSeg(t, h, { flags: RA, seq: snd, ack: h.peerNxt, window: 0, len: 0 }, 'RST|ACK at the acceptable seq');
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.TimedOut);
  t.equal(h.tcp.stats.resetsSent, resets + 1, 'counted in resetsSent');
  expectQuiet(t, h, 60_000, 'nothing after the RST');
});

t.test('ESTABLISHED after data both ways, keepalive gives up → RST seq and ack past the data', async (t) => {
  const { h, ep, snd } = keepalive();
  t.equal(ep.write(pattern(100)), 100);
  expectSeg(t, h, { seq: snd, len: 100 }, 'data sent');
  h.send({ flags: A, seq: h.peerNxt, ack: snd + 100, payload: pattern(50) });
  h.advance(1_000);
  expectSeg(t, h, { flags: A, seq: snd + 100, ack: h.peerNxt + 50 }, 'data acknowledged');
  const last = h.peerNxt + 50;
  h.advance(9_000);
  for (let i = 1; i <= 3; i++) {
    expectSeg(t, h, { flags: A, seq: snd + 99, ack: last, len: 0 }, `probe ${i}`);
    h.advance(2_000);
  }
  expectSeg(t, h, { flags: RA, seq: snd + 100, ack: last }, 'RST|ACK past our data, acknowledging the peer');
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.TimedOut);
});

t.test('CLOSE-WAIT keepalive gives up → RST acknowledging the FIN', async (t) => {
  const { h, ep, snd } = keepalive();
  h.send({ flags: A | TCP_FIN, seq: h.peerNxt, ack: snd });
  h.advance(1_000);
  expectSeg(t, h, { flags: A, seq: snd, ack: h.peerNxt + 1 }, 'FIN acknowledged');
  t.equal(ep.state, State.CloseWait);
  h.advance(9_000);
  for (let i = 1; i <= 3; i++) {
    expectSeg(t, h, { flags: A, seq: snd - 1, ack: h.peerNxt + 1 }, `probe ${i}`);
    h.advance(2_000);
  }
  expectSeg(t, h, { flags: RA, seq: snd, ack: h.peerNxt + 1 }, 'RST|ACK');
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.TimedOut);
});

t.test('ESTABLISHED keepalive with TCP_USER_TIMEOUT: silent past the timeout at a probe → RST, ETIMEDOUT', async (t) => {
  const { h, ep, snd } = keepalive();
  ep.setOption('TCP_KEEPCNT', 10);
  ep.setOption('TCP_USER_TIMEOUT', 13_000);
  const resets = h.tcp.stats.resetsSent;
  h.advance(10_000);
  expectSeg(t, h, { flags: A, seq: snd - 1 }, 'probe 1 at 10 s');
  h.advance(2_000);
  expectSeg(t, h, { flags: A, seq: snd - 1 }, 'probe 2 at 12 s');
  h.advance(2_000);
  expectSeg(t, h, { flags: RA, seq: snd, ack: h.peerNxt }, 'RST at 14 s, the first check past 13 s');
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.TimedOut);
  t.equal(h.tcp.stats.resetsSent, resets + 1);
});

t.test('ESTABLISHED keepalive probe answered → stays open, no RST, probes again after TCP_KEEPIDLE', async (t) => {
  const { h, ep, snd } = keepalive();
  const resets = h.tcp.stats.resetsSent;
  h.advance(10_000);
  expectSeg(t, h, { flags: A, seq: snd - 1 }, 'probe 1');
  h.advance(2_000);
  expectSeg(t, h, { flags: A, seq: snd - 1 }, 'probe 2');
  h.advance(2_000);
  expectSeg(t, h, { flags: A, seq: snd - 1 }, 'probe 3');
  // The answer to the last probe arrives before its interval ends.
  h.advance(1_000);
  h.send({ flags: A, seq: h.peerNxt, ack: snd });
  expectQuiet(t, h, 9_999, 'no RST and no probe during the new idle period');
  t.equal(ep.state, State.Established);
  h.advance(1);
  expectSeg(t, h, { flags: A, seq: snd - 1, ack: h.peerNxt }, 'probing restarts after TCP_KEEPIDLE');
  t.equal(ep.takeError(), undefined);
  t.equal(h.tcp.stats.resetsSent, resets);
});

t.test('retransmission timer gives up → CLOSED, ETIMEDOUT, no RST (Linux tcp_write_timeout)', async (t) => {
  const cases: { name: string; config?: Partial<TcpConfig>; userTimeout?: number }[] = [
    { name: 'TCP_USER_TIMEOUT passed', userTimeout: 1_000 },
    { name: 'tcp_retries2 exhausted', config: { retries2: 2 } },
  ];
  for (const c of cases) {
    const { h, ep, snd } = keepalive(c.config);
    if (c.userTimeout) ep.setOption('TCP_USER_TIMEOUT', c.userTimeout);
    const resets = h.tcp.stats.resetsSent;
    t.equal(ep.write(pattern(10)), 10);
    for (let i = 0; i < 200 && ep.state !== State.Closed; i++) h.advance(1_000);
    t.equal(ep.state, State.Closed, `${c.name}: CLOSED`);
    t.equal(ep.takeError(), Err.TimedOut, `${c.name}: ETIMEDOUT`);
    const sent: string[] = [];
    while (h.pending) {
      const r = h.next();
      if (r.flags & TCP_RST || r.seq !== snd || r.payload.length !== 10) sent.push(describe(r));
    }
    t.same(sent, [], `${c.name}: only the data and its retransmissions were sent`);
    t.equal(h.tcp.stats.resetsSent, resets, `${c.name}: no RST counted`);
  }
});

t.test('closed with data unacknowledged (an orphan) → gives up after tcp_orphan_retries, 0 meaning 8 (Linux tcp_orphan_retries)', async (t) => {
  const cases: { name: string; config?: Partial<TcpConfig>; retransmissions: number }[] = [
    { name: 'default (0: 8)', retransmissions: 8 },
    { name: 'tcp_orphan_retries 3', config: { orphanRetries: 3 }, retransmissions: 3 },
  ];
  for (const c of cases) {
    const { h, ep, snd } = keepalive(c.config);
    t.equal(ep.write(pattern(10)), 10);
    ep.close();
    let sends = 0;
    for (let i = 0; i < 2_000 && ep.state !== State.Closed; i++) {
      h.advance(1_000);
      while (h.pending) if (h.next().seq === snd) sends++;
    }
    t.equal(ep.state, State.Closed, `${c.name}: CLOSED`);
    t.equal(sends - 1, c.retransmissions, `${c.name}: ${c.retransmissions} retransmissions after the first send`);
  }
  // Not closed by the application: tcp_retries2 (15) still rules.
  const { h, ep, snd } = keepalive();
  t.equal(ep.write(pattern(10)), 10);
  let sends = 0;
  for (let i = 0; i < 1_000 && sends < 12; i++) {
    h.advance(1_000);
    while (h.pending) if (h.next().seq === snd) sends++;
  }
  t.equal(sends, 12, 'an open connection is still retransmitting after 11 retransmissions');
  t.equal(ep.state, State.Established);
});

t.test('ESTABLISHED keepalive, TCP_KEEPCNT 1 but TCP_USER_TIMEOUT 17 s → probes go on past the count until 18 s (Linux ignores KEEPCNT then)', async (t) => {
  const { h, ep, snd } = keepalive();
  ep.setOption('TCP_KEEPCNT', 1);
  ep.setOption('TCP_USER_TIMEOUT', 17_000);
  h.advance(10_000);
  for (let at = 10; at <= 16; at += 2) {
    expectSeg(t, h, { flags: A, seq: snd - 1 }, `probe at ${at} s`);
    h.advance(2_000);
  }
  expectSeg(t, h, { flags: RA, seq: snd, ack: h.peerNxt }, 'RST at 18 s, the first check past 17 s');
  t.equal(ep.state, State.Closed);
  t.equal(ep.takeError(), Err.TimedOut);
});
