// State × event table for every synchronized state (RFC 9293 §3.10.7.4 with RFC 5961).
import t from 'tap';
import { Err, type NetError } from '../../../../netstack/errors.ts';
import { ShutdownWrite } from '../../../../netstack/socket.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { State, stateName } from '../../../../netstack/transport/tcp/state.ts';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../../../netstack/wire/tcp.ts';
import { Harness, LISTEN_PORT, LOCAL, type Match, REMOTE, pattern } from './helper.ts';

const A = TCP_ACK;

interface Conn {
  h: Harness;
  ep: TcpEndpoint;
  /** Our next sequence number (what an ACK from us carries). */
  snd: number;
  /** The peer's next sequence number (RCV.NXT). */
  p: number;
}

/** Drives a fresh connection (no timestamps, no SACK) into `state`. */
function reach(state: State): Conn {
  const h = new Harness();
  if (state === State.SynReceived) {
    h.listen();
    h.send({ flags: TCP_SYN, options: { mss: 1460 } });
    const sa = h.expect({ flags: TCP_SYN | A });
    h.peerNxt++;
    const ep = h.tcp.lookupConnected(LOCAL, LISTEN_PORT, REMOTE, h.peerPort)!;
    return { h, ep, snd: sa.seq + 1, p: h.peerNxt };
  }
  const ep = h.connect({ mss: 1460 });
  let snd = h.iss + 1;
  let p = h.peerNxt;
  const ourFin = () => {
    ep.shutdown(ShutdownWrite);
    h.expect({ flags: A | TCP_FIN, seq: snd });
    snd++;
  };
  const peerFin = (ackOurs: boolean) => {
    h.send({ flags: A | TCP_FIN, seq: p, ack: ackOurs ? snd : snd - 1 });
    p++;
    h.clearSent();
  };
  switch (state) {
    case State.Established:
      break;
    case State.FinWait1:
      ourFin();
      break;
    case State.FinWait2:
      ourFin();
      h.send({ flags: A, seq: p, ack: snd });
      break;
    case State.CloseWait:
      peerFin(true);
      break;
    case State.Closing:
      ourFin();
      peerFin(false);
      break;
    case State.LastAck:
      peerFin(true);
      ourFin();
      break;
    case State.TimeWait:
      ourFin();
      h.send({ flags: A, seq: p, ack: snd });
      peerFin(true);
      break;
  }
  if (ep.state !== state) throw new Error(`wanted ${stateName(state)}, reached ${stateName(ep.state)}`);
  h.clearSent();
  return { h, ep, snd, p };
}

const SYNCED: State[] = [
  State.SynReceived,
  State.Established,
  State.FinWait1,
  State.FinWait2,
  State.CloseWait,
  State.Closing,
  State.LastAck,
  State.TimeWait,
];

/** What a RST exactly at RCV.NXT does per state (RFC 9293 §3.10.7.4 second check). */
const RST_ERROR: Partial<Record<State, NetError>> = {
  [State.Established]: Err.ConnectionReset,
  [State.FinWait1]: Err.ConnectionReset,
  [State.FinWait2]: Err.ConnectionReset,
  [State.CloseWait]: Err.ClosedForSend,
  // Linux tcp_reset reports ECONNRESET in every state but SYN-SENT and CLOSE-WAIT.
  [State.Closing]: Err.ConnectionReset,
  [State.LastAck]: Err.ConnectionReset,
};

for (const s of SYNCED) {
  const name = stateName(s);
  t.test(`${name} rcv RST at RCV.NXT → CLOSED${RST_ERROR[s] ? `, ${RST_ERROR[s]!.code}` : ''}`, async (t) => {
    const { h, ep, p } = reach(s);
    h.send({ flags: TCP_RST, seq: p });
    t.equal(ep.state, State.Closed);
    t.equal(ep.takeError(), RST_ERROR[s]);
    t.equal(h.pending, 0);
  });

  t.test(`${name} rcv RST in-window not at RCV.NXT → challenge ACK, state kept`, async (t) => {
    const { h, ep, snd, p } = reach(s);
    h.send({ flags: TCP_RST, seq: p + 1000 });
    t.same(h.check({ flags: A, seq: snd, ack: p }).errors, []);
    t.equal(ep.state, s);
  });

  t.test(`${name} rcv RST outside the window → dropped silently`, async (t) => {
    const { h, ep, p } = reach(s);
    h.send({ flags: TCP_RST, seq: p + 0x40000000 });
    h.expectNone();
    t.equal(ep.state, s);
  });

  // In TIME-WAIT a SYN above RCV.NXT may reopen the 4-tuple (RFC 6191); with no listener that means RST.
  const synReply: Match = s === State.TimeWait ? { flags: TCP_RST | A } : { flags: A };
  t.test(`${name} rcv SYN in-window → ${s === State.TimeWait ? 'TIME-WAIT ends, RST (no listener)' : 'challenge ACK'}`, async (t) => {
    const { h, ep, snd, p } = reach(s);
    h.send({ flags: TCP_SYN, seq: p + 10 });
    const m = s === State.TimeWait ? synReply : { ...synReply, seq: snd, ack: p };
    t.same(h.check(m).errors, []);
    t.equal(ep.state, s === State.TimeWait ? State.Closed : s);
  });

  if (s !== State.SynReceived) {
    t.test(`${name} rcv ACK of data never sent → challenge ACK, state kept`, async (t) => {
      const { h, ep, snd, p } = reach(s);
      h.send({ flags: A, seq: p, ack: snd + 5000 });
      t.same(h.check({ flags: A, seq: snd, ack: p }).errors, []);
      t.equal(ep.state, s);
    });
  }

  t.test(`${name} rcv segment below the window → ACK, state kept`, async (t) => {
    const { h, ep, snd, p } = reach(s);
    h.send({ flags: A, seq: p - 2000, ack: snd, payload: pattern(100) });
    t.same(h.check({ flags: A, seq: snd, ack: p }).errors, []);
    t.equal(ep.state, s);
  });
}

/** States where our FIN is still unacknowledged: a test ACK must not cover it. */
const FIN_OUT = new Set<State>([State.FinWait1, State.Closing, State.LastAck]);

const TAKES_DATA = [State.Established, State.FinWait1, State.FinWait2];
for (const s of TAKES_DATA) {
  t.test(`${stateName(s)} rcv data at RCV.NXT → readable`, async (t) => {
    const { h, ep, snd, p } = reach(s);
    h.send({ flags: A, seq: p, ack: FIN_OUT.has(s) ? snd - 1 : snd, payload: pattern(300) });
    t.equal(ep.inQueue(), 300);
    t.equal(ep.state, s);
  });
}

// Linux's tcp_reset_check: after the peer's FIN a RST carrying the FIN's sequence number (RCV.NXT − 1) resets.
const AFTER_FIN = new Set<State>([State.CloseWait, State.Closing, State.LastAck]);
for (const s of [State.Established, State.FinWait1, State.FinWait2, State.CloseWait, State.Closing, State.LastAck]) {
  const resets = AFTER_FIN.has(s);
  t.test(`${stateName(s)} rcv RST at RCV.NXT − 1 → ${resets ? `CLOSED, ${RST_ERROR[s]!.code} (Linux)` : 'dropped silently'}`, async (t) => {
    const { h, ep, p } = reach(s);
    h.send({ flags: TCP_RST, seq: p - 1 });
    h.expectNone();
    t.equal(ep.state, resets ? State.Closed : s);
    t.equal(ep.takeError(), resets ? RST_ERROR[s] : undefined);
  });
}

for (const s of [State.CloseWait, State.Closing, State.LastAck]) {
  t.test(`${stateName(s)} rcv data after the peer's FIN → ignored`, async (t) => {
    const { h, ep, snd, p } = reach(s);
    h.send({ flags: A, seq: p, ack: FIN_OUT.has(s) ? snd - 1 : snd, payload: pattern(300) });
    t.equal(ep.inQueue(), 0);
    t.equal(ep.state, s);
  });
}
