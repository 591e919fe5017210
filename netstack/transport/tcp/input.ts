/**
 * "Segment arrives" (RFC 9293 §3.10.7.3–3.10.7.4) for a connection in SYN-SENT or a later state: the
 * acceptability test, RST and SYN handling hardened by RFC 5961 (challenge ACKs), PAWS (RFC 7323 §5), ACK
 * processing, the segment text and the FIN, each with its state transition. LISTEN is accept.ts's.
 */
import { Err } from '../../errors.ts';
import * as seq from '../../seqnum.ts';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpRepr, tcpTimestampsOnly, tcpWord } from '../../wire/tcp.ts';
import { childEstablished, cookieSupersedes } from './accept.ts';
import { negotiate } from './connect.ts';
import { cookieLength } from './fastopen.ts';
import type { TcpEndpoint } from './endpoint.ts';
import { segmentLength } from './segment.ts';
import { State, acceptsData } from './state.ts';
import { sendAck, sendChallengeAck, sendResetSeq, sendSyn } from './output.ts';

// Linux's TCP_TIMEOUT_MIN (2 jiffies at HZ=1000): how soon a SYN answered by an unacceptable ACK goes again.
const SYN_RESEND_MS = 2;

// RFC 7323 §5.5: TS.Recent older than 24 days is stale and no longer protects.
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;

/** Processes one segment for an endpoint that is neither CLOSED nor LISTEN. */
export function segmentArrives(ep: TcpEndpoint, r: TcpRepr): void {
  ep.rcv.segsIn++;
  if (ep.state === State.SynSent) synSentArrives(ep, r);
  else if (ep.state !== State.Closed && ep.state !== State.Listen) otherArrives(ep, r);
}

/** RFC 9293 §3.10.7.3: SYN-SENT. */
function synSentArrives(ep: TcpEndpoint, r: TcpRepr): void {
  const snd = ep.snd;
  const f = r.flags;
  if (f & TCP_ACK && (seq.le(r.ack, snd.iss) || seq.gt(r.ack, snd.max))) {
    // Linux's tcp_rcv_synsent_state_process: the peer may be answering for an old connection whose FIN or RST
    // it missed; the RST below ends that, so the SYN goes again at once rather than at its timer (once only).
    if (ep.synRetries === 0) snd.rtxTimer.set(SYN_RESEND_MS);
    if (!(f & TCP_RST)) sendResetSeq(ep, r.ack);
    ep.proto.count('outOfWindow');
    return;
  }
  // Linux (PAWSActiveRejected): an ACK whose TSecr echoes no time between our first SYN and now is not an
  // answer to our SYN, and is refused like a bad ACK.
  const ecr = r.options.tsEcr;
  if (f & TCP_ACK && ep.offer?.timestamps && r.options.tsVal !== undefined && ecr) {
    if (seq.lt(ecr, ep.tsAt(ep.stateSince)) || seq.gt(ecr, ep.tsNow())) {
      if (!(f & TCP_RST)) sendResetSeq(ep, r.ack);
      ep.proto.count('pawsDrops');
      return;
    }
  }
  if (f & TCP_RST) {
    // RFC 5961 §3.2 leaves SYN-SENT to the ACK check above: only a RST that acknowledges our SYN counts.
    if (f & TCP_ACK) {
      ep.stats.resetsReceived++;
      ep.fail(Err.ConnectionRefused);
    }
    return;
  }
  if (!(f & TCP_SYN)) return;
  // RFC 3168 §6.1.1: ECN holds when the SYN-ACK answers with ECE alone (Linux's tcp_ecn_rcv_synack), or a
  // simultaneous open's SYN asks with ECE and CWR too (tcp_ecn_rcv_syn).
  if (ep.ecn.ok && (!(f & TCP_ECE) || (f & TCP_ACK ? (f & TCP_CWR) !== 0 : !(f & TCP_CWR)))) ep.ecn.reset();
  const rcv = ep.rcv;
  rcv.init(r.seq);
  ep.peerSynOptions = r.options;
  ep.applyNegotiated(negotiate(ep.offer!, r.options, ep.family));
  if (ep.tsOk) {
    rcv.tsRecent = r.options.tsVal!;
    rcv.tsRecentAt = ep.clock.now();
  }
  // RFC 7323 §2.2: the window of a SYN segment is never scaled.
  snd.wnd = r.window;
  snd.maxWnd = r.window;
  snd.wl1 = r.seq;
  snd.wl2 = r.ack;
  if (f & TCP_ACK) {
    // What our SYN carried (Fast Open) sits in the send buffer from ISS + 1, where SND.UNA already stands.
    const synAcked = seq.add(snd.iss, 1);
    const dataAcked = Math.max(0, Math.min(seq.sub(r.ack, synAcked), snd.buf.length));
    snd.release(dataAcked);
    snd.una = r.ack;
    // Linux counts the SYN as one delivered segment, and SYN data acknowledged with it not as another.
    snd.delivered = 1;
    // Our SYN acknowledged is forward progress too (Linux's tcp_ack with FLAG_SYN_ACKED).
    ep.route?.confirmNeighbor?.(ep.clock.now());
    sampleHandshakeRtt(ep, r);
    snd.rtxTimer.cancel();
    ep.setState(State.Established);
    ep.ka.touch();
    const resend = ep.synFastOpenSent || ep.synDataLen > 0 ? fastOpenSynAck(ep, r, dataAcked) : false;
    if (r.payload.length > 0) rcv.onData(seq.add(r.seq, 1), r.payload.subarray(0, rcv.free), snd.mss);
    // Linux's tcp_fastopen_add_skb takes a FIN on the SYN-ACK of a Fast Open connect too.
    if ((ep.synFastOpenSent || resend) && f & TCP_FIN && rcv.nxt === seq.add(r.seq, 1 + r.payload.length)) {
      rcv.nxt = seq.add(rcv.nxt, 1);
      rcv.finReceived = true;
      ep.rcvShut = true;
      ep.setState(State.CloseWait);
    }
    // SYN data the SYN-ACK left unacknowledged goes again at once, and that segment carries the ACK.
    if (resend) snd.output();
    else {
      // Linux's tcp_rcv_synsent_state_process saves the ACK when a writer waits for the connection (a blocking
      // Fast Open sendto): that writer's data, sent as the waiters are told, carries it.
      rcv.ackNow = true;
      rcv.synAckWriter();
    }
    ep.notify();
    if (!resend) {
      rcv.synAckWriter(!rcv.ackNow);
      if (rcv.ackNow) sendAck(ep);
    }
    return;
  }
  // Simultaneous open (RFC 9293 §3.5 figure 8): answer with SYN-ACK from our ISS. Text on the SYN is queued
  // for processing once ESTABLISHED (§3.10.7.3), so the SYN-ACK acknowledges only the SYN.
  if (r.payload.length > 0) ep.synData = r.payload.slice(0, rcv.free);
  ep.setState(State.SynReceived);
  ep.synRetries = 0;
  sendSyn(ep, true, r.options);
  snd.rtxTimer.set(snd.rtt.rto);
}

/**
 * Our Fast Open SYN was answered (Linux's tcp_rcv_fastopen_synack): the cookie cache learns the server's MSS and
 * cookie (an unsolicited one is ignored; a request without answer tries the experimental form next, then gives
 * that up), and SYN data not acknowledged is to be sent again (RFC 7413 §4.2.2). Returns whether it is.
 */
function fastOpenSynAck(ep: TcpEndpoint, r: TcpRepr, dataAcked: number): boolean {
  const snd = ep.snd;
  const got = cookieLength(r.options.fastOpen) >= 0 ? r.options.fastOpen : undefined;
  let cookie = got;
  let tryExp = 0;
  if (!ep.synFastOpenSent) cookie = undefined;
  else if (!ep.synRetransmitted && !got && ep.synDataLen === 0) tryExp = ep.synFastOpenExp ? 2 : 1;
  ep.proto.fastOpenCache.set(ep.remoteAddr!, r.options.mss ?? 0, cookie, tryExp);
  const sent = ep.synDataLen;
  ep.synDataLen = 0;
  if (sent > 0 && dataAcked < sent) {
    // SND.NXT back to SND.UNA: what follows goes out as a retransmission (Linux marks it lost and resends).
    snd.nxt = snd.una;
    ep.proto.count('fastOpenActiveFail');
    return true;
  }
  if (sent > 0) {
    ep.synDataAcked = true;
    ep.proto.count('fastOpenActive');
  }
  return false;
}

/** Karn's rule for the handshake: time the SYN only when it was sent once (RFC 6298 §3), or use TSecr. */
function sampleHandshakeRtt(ep: TcpEndpoint, r: TcpRepr): void {
  const tsEcr = r.options.tsEcr;
  if (ep.tsOk && tsEcr) ep.snd.rtt.sample(seq.sub(ep.tsNow(), tsEcr));
  else if (ep.synRetries === 0) ep.snd.rtt.sample(ep.clock.now() - ep.stateSince);
  // RFC 6298 §5.7: a lost SYN without a sample leaves the data RTO at 3 s, not at the SYN's backed-off value.
  else ep.snd.rtt.resetAfterSynLoss();
}

/** Whether the segment passes RFC 9293 §3.10.7.4's acceptability test (first check). */
function acceptable(ep: TcpEndpoint, s: number, len: number): boolean {
  const rcv = ep.rcv;
  const wnd = rcv.wnd;
  // A zero window still admits the segment at RCV.NXT for its ACK, RST and a bare FIN (as Linux does).
  if (wnd === 0) return s === rcv.nxt;
  if (len === 0) return seq.inWindow(s, rcv.nxt, wnd);
  return seq.inWindow(s, rcv.nxt, wnd) || seq.inWindow(seq.add(s, len - 1), rcv.nxt, wnd);
}

/** RFC 9293 §3.10.7.4: SYN-RECEIVED and every synchronized state. */
function otherArrives(ep: TcpEndpoint, r: TcpRepr): void {
  const rcv = ep.rcv;
  const snd = ep.snd;
  let f = r.flags;
  let start = r.seq;
  let len = segmentLength(r);

  if (ep.state === State.SynReceived && f & TCP_SYN && start === rcv.irs) {
    if (!(f & TCP_ACK)) {
      // The peer retransmitted its SYN: our SYN-ACK was lost.
      sendSyn(ep, true, ep.peerSynOptions);
      return;
    }
    // Simultaneous open: the peer's SYN-ACK repeats its SYN, which is old news; keep the ACK.
    f &= ~TCP_SYN;
    start = seq.add(start, 1);
    len--;
  }

  // RFC 7323 §5.3 PAWS: a timestamp older than TS.Recent marks an old duplicate.
  const tsVal = r.options.tsVal;
  if (ep.tsOk && tsVal !== undefined && !(f & TCP_RST) && seq.lt(tsVal, rcv.tsRecent)) {
    if (ep.clock.now() - rcv.tsRecentAt < PAWS_IDLE_MS) {
      ep.proto.count('pawsDrops');
      answerInvalid(ep, len);
      return;
    }
  }

  if (!acceptable(ep, start, len)) {
    if (f & TCP_RST && resetAtFin(ep, start)) {
      ep.stats.resetsReceived++;
      resetReceived(ep);
      return;
    }
    ep.proto.count('outOfWindow');
    // Old data again (our ACK was lost or the peer retransmitted early): tell it with a D-SACK (RFC 2883 §4).
    if (r.payload.length > 0 && ep.proto.config.dsack && seq.le(seq.add(start, r.payload.length), rcv.nxt)) {
      rcv.dsack = { left: start, right: seq.add(start, r.payload.length) };
    }
    if (!(f & TCP_RST)) answerInvalid(ep, len);
    // RFC 9293: in TIME-WAIT a retransmitted FIN also restarts the 2·MSL timeout.
    if (ep.state === State.TimeWait && f & TCP_FIN) ep.restartTimeWait();
    return;
  }

  // RFC 7323 §4.3: remember the timestamp of the segment that covers Last.ACK.sent.
  if (ep.tsOk && tsVal !== undefined && seq.le(start, rcv.lastAckSent) && seq.ge(tsVal, rcv.tsRecent)) {
    rcv.tsRecent = tsVal;
    rcv.tsRecentAt = ep.clock.now();
  }

  if (f & TCP_RST) {
    // RFC 5961 §3.2: only a RST exactly at RCV.NXT resets; one elsewhere in the window gets a challenge ACK.
    if (start !== rcv.nxt && !resetAtFin(ep, start)) {
      sendChallengeAck(ep);
      return;
    }
    if (ep.state === State.TimeWait && ep.proto.config.rfc1337) return; // RFC 1337: TIME-WAIT outlives a RST
    ep.stats.resetsReceived++;
    resetReceived(ep);
    return;
  }

  if (f & TCP_SYN) {
    // RFC 5961 §4.2: a SYN in a synchronized state, wherever it falls, only earns a challenge ACK.
    sendChallengeAck(ep);
    return;
  }

  if (!(f & TCP_ACK)) return;

  if (ep.state === State.SynReceived) {
    // ISS, not SND.UNA: a Fast Open child's SND.UNA already stands past its SYN-ACK (accept.ts).
    if (!(seq.gt(r.ack, snd.iss) && seq.le(r.ack, snd.max))) {
      if (ep.parent && cookieSupersedes(ep, r)) return;
      sendResetSeq(ep, r.ack);
      return;
    }
    const fastOpen = ep.fastOpenListener !== null;
    // Linux tcp_check_req: while the listener's TCP_DEFER_ACCEPT lasts, a bare ACK is dropped (remembered).
    if (ep.parent && !fastOpen && len === 0 && ep.synRetries < ep.parent.deferAccept) {
      ep.deferAcked = true;
      return;
    }
    // A Fast Open child is in the accept queue already; it only leaves the listener's Fast Open queue.
    if (fastOpen) ep.leaveFastOpenQueue();
    else if (ep.parent && !childEstablished(ep)) return;
    const synAcked = seq.add(snd.iss, 1);
    snd.una = synAcked;
    ep.route?.confirmNeighbor?.(ep.clock.now());
    snd.wnd = r.window * (1 << snd.shift);
    if (snd.wnd > snd.maxWnd) snd.maxWnd = snd.wnd;
    snd.wl1 = start;
    snd.wl2 = r.ack;
    sampleHandshakeRtt(ep, r);
    snd.rtxTimer.cancel();
    ep.setState(State.Established);
    // Linux's tcp_rcv_state_process: the SYN-ACK's delivery is counted here, tcp_ack does not see it.
    snd.delivered++;
    // The ACK may also cover what a Fast Open child sent before it.
    if (seq.gt(r.ack, synAcked)) snd.onAck(r.ack, r.options.tsEcr, false);
    ep.ka.touch();
    const early = ep.synData;
    if (early) {
      ep.synData = null;
      if (rcv.nxt === seq.add(rcv.irs, 1)) {
        // The text came with the SYN, not now: a delayed ACK covers it (as FreeBSD), no quick ACK of its own.
        const ackNow = rcv.ackNow;
        rcv.onData(rcv.nxt, early, snd.mss);
        rcv.ackNow = ackNow;
      }
    }
    ep.notify();
  } else {
    // RFC 5961 §5.2: ACKs for data never sent, or older than the largest window, are challenged and dropped.
    if (seq.gt(r.ack, snd.max) || seq.lt(r.ack, seq.add(snd.una, -snd.maxWnd))) {
      sendChallengeAck(ep);
      return;
    }
    const wnd = r.window * (1 << snd.shift);
    const dup = r.payload.length === 0 && !(f & TCP_FIN) && r.ack === snd.una && wnd === snd.wnd;
    if (ep.sackOk && r.options.sack) snd.sb.update(r.options.sack, snd.una, snd.max, r.ack);
    // RFC 9293 §3.10.7.4: update the window only from segments newer than the last update.
    if (seq.le(snd.una, r.ack) && (seq.lt(snd.wl1, start) || (snd.wl1 === start && seq.le(snd.wl2, r.ack)))) {
      snd.wnd = wnd;
      snd.wl1 = start;
      snd.wl2 = r.ack;
      if (wnd > snd.maxWnd) snd.maxWnd = wnd;
    }
    // RFC 3168 §6.1.2: the peer saw congestion (CE) on what we sent.
    if (f & TCP_ECE && ep.ecn.ok) snd.onEcnEcho();
    snd.onAck(r.ack, r.options.tsEcr, dup);
  }
  afterAck(ep, f, start, len, r.payload);
}

/**
 * The rest of RFC 9293 §3.10.7.4 once the ACK field is processed: state changes on our FIN's acknowledgment,
 * the segment text (seventh step) and the FIN (eighth), then whatever is owed out. Shared by the full path and
 * header prediction, so both act alike.
 */
function afterAck(ep: TcpEndpoint, f: number, start: number, len: number, text: Uint8Array): void {
  const rcv = ep.rcv;
  const snd = ep.snd;
  ep.ka.touch();

  const finAcked = snd.finAcked;
  // FIN-WAIT-2's timeout for an orphan, armed once this segment is done with: a peer closing at once sends the ACK
  // of our FIN with its own (every HTTP connection a server closes first), which goes on to TIME-WAIT and would
  // have scheduled and cancelled the timer for nothing.
  let finWait2Timer = false;
  switch (ep.state) {
    case State.FinWait1:
      if (finAcked) {
        ep.setState(State.FinWait2);
        // TCP_LINGER2 < 0 ends the orphan here, whatever else the segment holds (Linux tcp_rcv_state_process).
        if (ep.linger2 < 0 || !(f & TCP_FIN)) ep.onFinWait2();
        else finWait2Timer = true;
        // A lingering close() waits for exactly this (Linux's sk_stream_wait_close wakes on the state change).
        ep.notify();
      }
      break;
    case State.Closing:
      if (finAcked) {
        ep.enterTimeWait();
        return;
      }
      break;
    case State.LastAck:
      if (finAcked) {
        ep.terminate(undefined);
        return;
      }
      // Data queued before close() is still going out: fall through to send more.
      break;
    case State.TimeWait:
      // RFC 9293: the only thing that can arrive is a retransmitted FIN; acknowledge it and restart 2·MSL.
      if (f & TCP_FIN) {
        sendAck(ep);
        ep.restartTimeWait();
      } else if (start !== rcv.nxt || len > 0) {
        // Linux tcp_timewait_state_process: only a bare ACK at RCV.NXT passes silently; anything else in the
        // window is answered with a (rate-limited) ACK, and an ACK restarts 2·MSL.
        answerInvalid(ep, len);
        ep.restartTimeWait();
      }
      return;
  }

  // Seventh: the segment text, trimmed to the window (RFC 9293 §3.10.7.4, "only the new parts").
  let payload = text;
  let fin = (f & TCP_FIN) !== 0;
  if (payload.length > 0 || fin) {
    const skip = seq.sub(rcv.nxt, start);
    if (skip > 0) {
      if (payload.length > 0 && ep.proto.config.dsack) rcv.dsack = { left: start, right: seq.add(start, Math.min(skip, payload.length)) };
      payload = payload.subarray(Math.min(skip, payload.length));
      start = rcv.nxt;
    }
    const room = seq.sub(seq.add(rcv.nxt, rcv.wnd), start);
    if (payload.length > room) {
      // Data beyond the window is dropped, and the peer told at once where the window ends.
      payload = payload.subarray(0, Math.max(0, room));
      fin = false;
      rcv.ackNow = true;
    }
  }
  if (payload.length > 0) {
    if (!acceptsData(ep.state)) {
      // The peer sent data after its FIN: ignore it (RFC 9293 CLOSE-WAIT/CLOSING/LAST-ACK text step).
      payload = payload.subarray(0, 0);
    } else if (ep.orphaned) {
      // Linux: data for a closed socket aborts the connection (RFC 2525 §2.17), and the RST answers that segment
      // as one for no connection would (tcp_v4_send_reset): <SEQ=SEG.ACK><CTL=RST>, not a RST of the connection's
      // own. SND.UNA is SEG.ACK here, the ACK having just been processed (an older SEG.ACK is not told apart).
      sendResetSeq(ep, ep.snd.una);
      ep.terminate(undefined);
      return;
    } else {
      rcv.onData(start, payload, snd.mss);
      // RFC 3168 §6.1.3: CE asks for ECE until the peer's CWR; both are acknowledged at once (Linux's quick ACK).
      if (ep.ecn.ok && ep.ecn.dataArrived(ep.proto.rxEcn, (f & TCP_CWR) !== 0)) rcv.ackNow = true;
      ep.notify();
    }
  }

  // Eighth: the FIN, once everything before it has arrived.
  if (fin && seq.add(start, payload.length) === rcv.nxt) {
    rcv.nxt = seq.add(rcv.nxt, 1);
    rcv.finReceived = true;
    rcv.ackNow = true;
    rcv.replyMayCarry = false;
    ep.rcvShut = true;
    switch (ep.state) {
      case State.SynReceived:
      case State.Established:
        ep.setState(State.CloseWait);
        break;
      case State.FinWait1:
        if (snd.finAcked) ep.enterTimeWait();
        else ep.setState(State.Closing);
        break;
      case State.FinWait2:
        ep.enterTimeWait();
        sendAck(ep);
        return;
    }
    ep.notify();
  }
  if (finWait2Timer && ep.state === State.FinWait2) ep.onFinWait2();

  snd.output();
  // Linux's tcp_data_snd_check judges write space after sending: under a not-sent mark, sending is what frees it.
  if (ep.lowatInEffect) ep.notify();
  ep.flushAck();
}

/**
 * Header prediction (RFC 9293 §3.10.7.4 as Van Jacobson's and Linux's tcp_rcv_established fast path): an
 * ESTABLISHED segment with only ACK (and PSH) set, exactly the options the connection always carries (none, or
 * NOP NOP timestamps with a TSval that passes PAWS), at RCV.NXT, within the window and with an acceptable ACK
 * is processed from the raw header without a Repr. Every check it skips is one such a segment passes anyway,
 * and the ACK and text steps are the full path's own code. Returns false (nothing done) for any other segment.
 */
export function predictedArrives(ep: TcpEndpoint, seg: Uint8Array, hl: number): boolean {
  if (ep.state !== State.Established) return false;
  const f = seg[13]!;
  if ((f & ~TCP_PSH) !== TCP_ACK) return false;
  const rcv = ep.rcv;
  const snd = ep.snd;
  let tsVal = 0;
  let tsEcr: number | undefined;
  if (ep.tsOk) {
    if (hl !== 32 || !tcpTimestampsOnly(seg)) return false;
    tsVal = tcpWord(seg, 24);
    if (seq.lt(tsVal, rcv.tsRecent)) return false;
    tsEcr = tcpWord(seg, 28);
  } else if (hl !== 20) return false;
  const start = tcpWord(seg, 4);
  if (start !== rcv.nxt) return false;
  const textLen = seg.length - hl;
  if (textLen > rcv.wnd) return false;
  const ack = tcpWord(seg, 8);
  if (seq.gt(ack, snd.max) || seq.lt(ack, seq.add(snd.una, -snd.maxWnd))) return false;

  rcv.segsIn++;
  if (ep.tsOk && seq.le(start, rcv.lastAckSent)) {
    rcv.tsRecent = tsVal;
    rcv.tsRecentAt = ep.clock.now();
  }
  const wnd = ((seg[14]! << 8) | seg[15]!) * (1 << snd.shift);
  const dup = textLen === 0 && ack === snd.una && wnd === snd.wnd;
  if (seq.le(snd.una, ack) && (seq.lt(snd.wl1, start) || (snd.wl1 === start && seq.le(snd.wl2, ack)))) {
    snd.wnd = wnd;
    snd.wl1 = start;
    snd.wl2 = ack;
    if (wnd > snd.maxWnd) snd.maxWnd = wnd;
  }
  snd.onAck(ack, tsEcr, dup);
  afterAck(ep, f, start, textLen, textLen > 0 ? seg.subarray(hl) : EMPTY);
  return true;
}

const EMPTY = new Uint8Array(0);

/**
 * Answers an unacceptable segment with an ACK (RFC 9293 §3.10.7.4 first check). Segments without data are
 * answered at most once per `invalidAckIntervalMs` (Linux's tcp_invalid_ratelimit), so two stacks that
 * disagree about the sequence space cannot ping-pong ACKs forever.
 */
function answerInvalid(ep: TcpEndpoint, len: number): void {
  const now = ep.clock.now();
  if (len === 0) {
    if (now - ep.lastInvalidAck < ep.proto.config.invalidAckIntervalMs) {
      ep.proto.count('invalidAcksSuppressed');
      return;
    }
    ep.lastInvalidAck = now;
  }
  sendAck(ep);
}

/**
 * Linux's tcp_reset_check: once the peer's FIN is in (CLOSE-WAIT, LAST-ACK, CLOSING) a RST at RCV.NXT − 1 counts
 * too, for stacks that reset with their FIN's sequence number, though RFC 5961 §3.2 would leave it outside.
 */
function resetAtFin(ep: TcpEndpoint, start: number): boolean {
  const s = ep.state;
  return (s === State.CloseWait || s === State.LastAck || s === State.Closing) && start === seq.add(ep.rcv.nxt, -1);
}

/**
 * A valid RST (RFC 9293 §3.10.7.4 second check): report per state and delete the TCB. The errors are Linux's
 * tcp_reset(): ECONNRESET also in CLOSING and LAST-ACK (the RFC reports nothing there), EPIPE in CLOSE-WAIT.
 */
function resetReceived(ep: TcpEndpoint): void {
  switch (ep.state) {
    case State.SynReceived:
      // From a passive open the half-open connection just disappears (the listener stays); a Fast Open child is
      // a socket already, reset as an established one is (Linux's tcp_reset).
      if (ep.fastOpenListener) ep.terminate(Err.ConnectionReset);
      else ep.terminate(ep.parent ? undefined : Err.ConnectionRefused);
      return;
    case State.Established:
    case State.FinWait1:
    case State.FinWait2:
    case State.Closing:
    case State.LastAck:
      ep.terminate(Err.ConnectionReset);
      return;
    case State.CloseWait:
      ep.terminate(Err.ClosedForSend);
      return;
    default:
      ep.terminate(undefined);
  }
}
