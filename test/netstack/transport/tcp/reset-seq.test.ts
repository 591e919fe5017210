/**
 * The SEQ of the RSTs a live connection sends to abort (output.ts acceptableSeq, Linux's tcp_acceptable_seq):
 * SND.MAX while inside the peer's window, even after an RTO rewound SND.NXT to SND.UNA, else the window's right
 * edge (RFC 9293 §3.10.7.4, RFC 5961 §3.2).
 */
import t from 'tap';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { State } from '../../../../netstack/transport/tcp/state.ts';
import { TCP_ACK, TCP_FIN, TCP_RST, type TcpOptions } from '../../../../netstack/wire/tcp.ts';
import { Harness, pattern } from './helper.ts';

const A = TCP_ACK;
const RA = TCP_RST | TCP_ACK;
const PLAIN: TcpOptions = { mss: 1460 };
const MSS = 1460;
/** Three full segments in flight: SND.MAX = snd + SENT. */
const SENT = 3 * MSS;

/** An established connection (no timestamps or SACK; window scaling only when `opts` asks) and its first SEQ. */
function established(opts = PLAIN): { h: Harness; ep: TcpEndpoint; snd: number } {
  const h = new Harness();
  const ep = h.connect(opts);
  return { h, ep, snd: h.iss + 1 };
}

/** Sends SENT bytes as three segments, all left unacknowledged. */
function sendThree(h: Harness, ep: TcpEndpoint, snd: number): void {
  ep.write(pattern(SENT));
  for (let i = 0; i < 3; i++) h.expect({ seq: snd + i * MSS, len: MSS });
  h.expectNone(0);
}

/** Lets the RTO fire: SND.NXT rewinds to SND.UNA and the first segment alone is resent (cwnd = 1 MSS). */
function rto(h: Harness, snd: number, ep: TcpEndpoint): void {
  h.advance(ep.snd.rtt.rto);
  h.expect({ seq: snd, len: MSS });
  h.expectNone(0);
}

type Abort = { name: string; abort: (h: Harness, ep: TcpEndpoint) => void };

/** The ways the application (or the orphan) aborts a connection with a RST of its own. */
const aborts: Abort[] = [
  {
    name: 'close with SO_LINGER {on, 0}',
    abort: (_h, ep) => {
      ep.setOption('SO_LINGER', { onoff: true, linger: 0 });
      ep.close();
    },
  },
  {
    name: 'close with unread data',
    abort: (h, ep) => {
      // The peer's data ACKs nothing new: SND.UNA and the rewind stay as they are.
      h.send({ flags: A, seq: h.peerNxt, ack: ep.snd.una, payload: pattern(10) });
      h.peerNxt += 10;
      h.expect({ flags: A, ack: h.peerNxt });
      ep.close();
    },
  },
  {
    name: 'disconnect (connect AF_UNSPEC)',
    abort: (_h, ep) => {
      ep.disconnect();
    },
  },
];

for (const c of aborts) {
  t.test(`ESTABLISHED data sent, RTO rewound SND.NXT, ${c.name} → RST with SEQ = SND.MAX`, async (t) => {
    const { h, ep, snd } = established();
    sendThree(h, ep, snd);
    rto(h, snd, ep);
    t.equal(h.tcp.stats.timeouts, 1, 'the RTO fired');
    t.equal(ep.snd.nxt, snd + MSS, 'SND.NXT rewound: one segment past SND.UNA');
    t.equal(ep.snd.max, snd + SENT, 'SND.MAX still the highest byte sent + 1');
    c.abort(h, ep);
    const rst = h.expect({ flags: RA, seq: snd + SENT, ack: h.peerNxt, len: 0 });
    t.not(rst.seq, snd + MSS, 'not the rewound SND.NXT');
    t.equal(ep.state, State.Closed);
    h.expectNone(5000);
  });

  t.test(`ESTABLISHED data sent, no RTO, ${c.name} → RST with SEQ = SND.NXT = SND.MAX (as before)`, async (t) => {
    const { h, ep, snd } = established();
    sendThree(h, ep, snd);
    const resets = h.tcp.stats.resetsSent;
    c.abort(h, ep);
    h.expect({ flags: RA, seq: snd + SENT, ack: h.peerNxt, len: 0 });
    t.equal(ep.state, State.Closed);
    t.equal(h.tcp.stats.resetsSent, resets + 1, 'counted in resetsSent');
  });
}

// Data for an orphan is answered as Linux's tcp_v4_send_reset answers a segment (tcp_rcv_state_process returns 1
// after tcp_reset): <SEQ=SEG.ACK><CTL=RST>, whatever SND.MAX is. Upstream packetdrill's user_timeout.pkt checks it
// on Linux (`> R 1:1(0)` after our FIN).
t.test('FIN-WAIT-1 FIN held behind the rewound data, data for the orphan → RST with SEQ = SEG.ACK, no ACK', async (t) => {
  const { h, ep, snd } = established();
  sendThree(h, ep, snd);
  rto(h, snd, ep);
  ep.close();
  h.expectNone(0); // cwnd is one segment, and it is in flight: the FIN waits
  t.equal(ep.state, State.FinWait1);
  h.send({ flags: A, seq: h.peerNxt, ack: snd + MSS, payload: pattern(4) });
  h.expect({ flags: TCP_RST, seq: snd + MSS, len: 0 });
  t.equal(ep.state, State.Closed);
});

t.test('FIN-WAIT-1 FIN sent, RTO rewound SND.NXT, data for the orphan → RST with SEQ = SEG.ACK, no ACK', async (t) => {
  const { h, ep, snd } = established();
  sendThree(h, ep, snd);
  ep.close();
  h.expect({ flags: A | TCP_FIN, seq: snd + SENT, len: 0 });
  t.equal(ep.snd.max, snd + SENT + 1);
  h.advance(ep.snd.rtt.rto);
  h.expect({ seq: snd, len: MSS });
  h.send({ flags: A, seq: h.peerNxt, ack: snd, payload: pattern(4) });
  h.expect({ flags: TCP_RST, seq: snd, len: 0 });
  t.equal(ep.state, State.Closed);
});

t.test('ESTABLISHED no data sent, close with SO_LINGER {on, 0} → RST with SEQ = ISS + 1 (unchanged)', async (t) => {
  const { h, ep, snd } = established();
  ep.setOption('SO_LINGER', { onoff: true, linger: 0 });
  ep.close();
  h.expect({ flags: RA, seq: snd, ack: h.peerNxt, len: 0 });
});

t.test('ESTABLISHED all data ACKed, close with unread data → RST with SEQ = SND.UNA = SND.MAX (unchanged)', async (t) => {
  const { h, ep, snd } = established();
  sendThree(h, ep, snd);
  h.send({ flags: A, seq: h.peerNxt, ack: snd + SENT, payload: pattern(10) });
  h.peerNxt += 10;
  h.expect({ flags: A, seq: snd + SENT, ack: h.peerNxt });
  ep.close();
  h.expect({ flags: RA, seq: snd + SENT, ack: h.peerNxt, len: 0 });
});

// The peer shrank its window below what was sent (Linux tcp_acceptable_seq: SND.UNA + SND.WND, the highest SEQ
// its last ACK allows); within one unit of its window scaling, the shortfall is rounding and SND.MAX stands.
const shrunk: { name: string; opts: TcpOptions; window: number; want: (snd: number) => number }[] = [
  {
    name: 'no scaling, window 1000 after 1460 ACKed → SEQ = SND.UNA + SND.WND',
    opts: PLAIN,
    window: 1000,
    want: (snd) => snd + MSS + 1000,
  },
  {
    name: 'no scaling, window 0 after 1460 ACKed → SEQ = SND.UNA',
    opts: PLAIN,
    window: 0,
    want: (snd) => snd + MSS,
  },
  {
    name: 'wscale 7, window 22·128 (104 bytes short of SND.MAX) → SEQ = SND.MAX',
    opts: { mss: 1460, wscale: 7 },
    window: 22,
    want: (snd) => snd + SENT,
  },
  {
    name: 'wscale 7, window 21·128 (232 bytes short) → SEQ = SND.UNA + SND.WND',
    opts: { mss: 1460, wscale: 7 },
    window: 21,
    want: (snd) => snd + MSS + 21 * 128,
  },
  {
    name: 'no scaling, window exactly up to SND.MAX → SEQ = SND.MAX',
    opts: PLAIN,
    window: SENT - MSS,
    want: (snd) => snd + SENT,
  },
];

for (const c of shrunk) {
  t.test(`ESTABLISHED peer shrank its window (${c.name}), close with SO_LINGER {on, 0} → RST`, async (t) => {
    const { h, ep, snd } = established(c.opts);
    sendThree(h, ep, snd);
    h.send({ flags: A, seq: h.peerNxt, ack: snd + MSS, window: c.window });
    t.equal(ep.snd.una, snd + MSS);
    t.equal(ep.snd.wnd, c.window * 2 ** ep.snd.shift, 'the shrunk window was taken');
    h.clearSent();
    ep.setOption('SO_LINGER', { onoff: true, linger: 0 });
    ep.close();
    h.expect({ flags: RA, seq: c.want(snd), ack: h.peerNxt, len: 0 });
  });
}
