/**
 * What a connection sends: SYN and SYN-ACK with the handshake options, data segments from the send buffer,
 * bare ACKs with timestamps and SACK blocks (RFC 7323 §3.2, RFC 2018 §4), challenge ACKs (RFC 5961),
 * zero-window probes and RSTs; each records the advertised window and counts what it sent.
 */
import * as seq from '../../seqnum.ts';
import { type SackBlock, TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpOptions } from '../../wire/tcp.ts';
import { TS_OPTION_LEN, synOptions } from './connect.ts';
import { ECN_ECT0, ECN_NOT_ECT, ecnRequested } from './ecn.ts';
import type { TcpEndpoint } from './endpoint.ts';
import { HeaderTemplate, sendFast, sendSegment } from './segment.ts';
import { State } from './state.ts';

/**
 * Sends our SYN (active open) or SYN-ACK (passive open, simultaneous open). The Fast Open option waiting in
 * `ep.synFastOpen` goes with this one only (Linux sends none on retransmissions), and a SYN may carry the first
 * `dataLen` bytes of the send buffer (RFC 7413 §4.2.1).
 */
export function sendSyn(ep: TcpEndpoint, withAck: boolean, peer?: TcpOptions, dataLen = 0): void {
  const opts = synOptions(ep.offer!, ep.tsNow(), withAck ? peer : undefined);
  if (withAck && ep.tsOk) opts.tsEcr = ep.rcv.tsRecent;
  if (withAck && !ep.tsOk) {
    delete opts.tsVal;
    delete opts.tsEcr;
  }
  if (withAck && !ep.sackOk) delete opts.sackPermitted;
  if (ep.synFastOpen) {
    opts.fastOpen = ep.synFastOpen;
    ep.synFastOpen = null;
  }
  // Linux rounds to the MSS the segments will carry: less the timestamp option once a SYN-ACK has agreed to it.
  const wnd = ep.rcv.synWindow(ep.offer!.mss - (withAck && ep.tsOk ? 12 : 0));
  const snd = ep.snd;
  const write = dataLen > 0 ? (buf: Uint8Array, at: number, n: number) => snd.buf.copyOut(0, n, buf, at) : undefined;
  let flags = withAck ? TCP_SYN | TCP_ACK : TCP_SYN;
  const cfg = ep.proto.config;
  if (withAck) {
    // RFC 3168 §6.1.1: a SYN-ACK agrees to ECN with ECE alone (the listener decided in accept.ts).
    if (ep.ecn.ok) flags |= TCP_ECE;
  } else if (ecnRequested(cfg.ecn)) {
    // Our SYN asks with ECE and CWR; after a timeout it asks no more (tcp_ecn_fallback: a middlebox may drop such
    // SYNs), though a SYN-ACK agreeing to the first still turns ECN on, as Linux's.
    if (!ep.synRetransmitted || !cfg.ecnFallback) flags |= TCP_ECE | TCP_CWR;
    if (!ep.synRetransmitted) ep.ecn.ok = true;
  }
  emit(ep, snd.iss, flags, opts, dataLen, ep.rcv.windowField(wnd, true), write);
  if (withAck) ep.rcv.onAckSent(wnd);
  if (dataLen > 0) {
    snd.segsOut++;
    snd.dataSegsOut++;
    snd.bytesSent += dataLen;
  }
}

/**
 * Sends stream bytes [s, s+len) from the send buffer, with FIN when `fin` (RFC 9293 §3.10.4 and §3.8) and PSH
 * when `psh` (the sender's skb model, skb.ts). A `len` above the MSS is a TSO super-segment (the sender checked
 * the route takes them): one header, cut by the link into MSS-sized segments, PSH on the last.
 */
export function transmitData(ep: TcpEndpoint, s: number, len: number, fin: boolean, retransmit: boolean, psh: boolean): void {
  const snd = ep.snd;
  const rcv = ep.rcv;
  const off = seq.sub(s, snd.una);
  let flags = TCP_ACK | (fin ? TCP_FIN : 0);
  if (psh && len > 0) flags |= TCP_PSH;
  const segs = len > snd.mss ? Math.ceil(len / snd.mss) : 1;
  // RFC 3168 §6.1.5: new data is ECN-capable and carries a queued CWR; retransmissions and pure ACKs are not (§6.1.5
  // and Linux's tcp_ecn_send, which keeps retransmitted data Not-ECT too); ECE while a CE mark waits for CWR.
  let ecn = ECN_NOT_ECT;
  if (ep.ecn.ok) {
    if (len > 0 && !retransmit) {
      ecn = ECN_ECT0;
      if (ep.ecn.queueCwr) {
        ep.ecn.queueCwr = false;
        flags |= TCP_CWR;
      }
    }
    if (ep.ecn.demandCwr) flags |= TCP_ECE;
  }
  if (plainOptions(ep)) {
    const wnd = rcv.windowToAdvertise(snd.mss);
    const field = rcv.windowField(wnd, false);
    const tsVal = ep.tsOk ? ep.tsNow() : 0;
    const err = sendFast(template(ep), s, rcv.nxt, flags, field, ep.tsOk, tsVal, rcv.tsRecent, len, snd.buf, off, segs > 1 ? snd.mss : 0, ecn | ep.ipBits);
    ep.stats.segmentsSent += segs;
    if (err) ep.stats.sendErrors++;
    rcv.onAckSent(wnd);
  } else {
    const room = ep.route!.maxPayload() - 20 - (ep.tsOk ? TS_OPTION_LEN : 0) - len;
    const opts = ackOptions(ep, Math.max(0, Math.floor((room - 4) / 8)));
    const wnd = rcv.windowToAdvertise(snd.mss);
    emit(ep, s, flags, opts, len, rcv.windowField(wnd, false), (buf, at, n) => snd.buf.copyOut(off, n, buf, at), ecn);
    rcv.onAckSent(wnd);
  }
  snd.segsOut += segs;
  if (len > 0) {
    snd.dataSegsOut += segs;
    rcv.onDataSent(ep.proto.config.delayedAckMs);
  }
  snd.bytesSent += len;
  if (retransmit) {
    ep.stats.retransmits++;
    // Linux counts a retransmitted skb as its segments (tp->total_retrans += tcp_skb_pcount).
    snd.totalRetrans += segs;
    snd.retransBytes += len;
    snd.cancelTiming();
  }
}

/**
 * Whether the next segment carries no option but the timestamps: no SACK blocks or D-SACK are owed (RFC 2018
 * §4), so the header template serves and a TSO super-segment may carry it.
 */
export function plainOptions(ep: TcpEndpoint): boolean {
  return !ep.sackOk || (ep.rcv.dsack === null && ep.rcv.ooo.length === 0);
}

/** The connection's header template for its current route, made when the route changes. */
function template(ep: TcpEndpoint): HeaderTemplate {
  let t = ep.headerTemplate;
  if (t === null || t.route !== ep.route) {
    t = new HeaderTemplate(ep.route!, ep.localPort, ep.remotePort);
    ep.headerTemplate = t;
  }
  return t;
}

/**
 * Sends a bare ACK for RCV.NXT (with SACK blocks when out-of-order data is held). Its SEQ is SND.MAX, not SND.NXT:
 * after an RTO rewound SND.NXT (go-back-N) the peer has received up to SND.MAX and would drop a data-less segment
 * below its RCV.NXT as unacceptable (RFC 9293 §3.10.7.4), ACK field and all (BSD's tcp_output; Linux never
 * rewinds snd_nxt).
 */
export function sendAck(ep: TcpEndpoint): void {
  if (ep.state === State.Closed || ep.state === State.Listen || ep.state === State.SynSent) return;
  if (!ep.route) return;
  const rcv = ep.rcv;
  const s = ep.snd.max;
  const wnd = rcv.windowToAdvertise(ep.snd.mss);
  const flags = ep.ecn.demandCwr ? TCP_ACK | TCP_ECE : TCP_ACK;
  if (plainOptions(ep)) {
    const field = rcv.windowField(wnd, false);
    const tsVal = ep.tsOk ? ep.tsNow() : 0;
    const err = sendFast(template(ep), s, rcv.nxt, flags, field, ep.tsOk, tsVal, rcv.tsRecent, 0, null, 0, 0, ep.ipBits);
    ep.stats.segmentsSent++;
    if (err) ep.stats.sendErrors++;
  } else {
    const opts = ackOptions(ep, ep.tsOk ? 3 : 4);
    emit(ep, s, flags, opts, 0, rcv.windowField(wnd, false));
  }
  rcv.onAckSent(wnd);
  ep.snd.segsOut++;
}

/** A challenge ACK (RFC 5961 §3.2, §4.2, §5.2), rate-limited stack-wide (§7). */
export function sendChallengeAck(ep: TcpEndpoint): void {
  if (!ep.proto.allowChallengeAck()) return;
  ep.stats.challengeAcks++;
  sendAck(ep);
}

/** A zero-window probe: an ACK with SND.UNA − 1 that the peer must answer with its window (Linux's style). */
export function sendWindowProbe(ep: TcpEndpoint): void {
  const opts = ackOptions(ep, 0);
  const wnd = ep.rcv.windowToAdvertise(ep.snd.mss);
  emit(ep, seq.add(ep.snd.una, -1), ep.ecn.demandCwr ? TCP_ACK | TCP_ECE : TCP_ACK, opts, 0, ep.rcv.windowField(wnd, false));
  ep.stats.windowProbes++;
}

/** Sends <SEQ=seg.ack><CTL=RST>, the answer to an unacceptable ACK (RFC 9293 §3.10.7.3, §3.10.7.4). */
export function sendResetSeq(ep: TcpEndpoint, s: number): void {
  if (!ep.route) return;
  ep.stats.resetsSent++;
  emit(ep, s, TCP_RST, {}, 0, 0);
}

/**
 * The SEQ for a RST or other control segment of ours that the peer must accept (Linux's tcp_acceptable_seq):
 * SND.MAX, the end of everything sent, while it lies inside the window the peer offered (SND.UNA + SND.WND), or
 * past it by less than the window's scaling granularity (the peer's scaled window field rounds down); else the
 * window's right edge, when the peer shrank its window below what was sent. SND.MAX, not SND.NXT: an RTO rewinds
 * SND.NXT to SND.UNA (go-back-N) while the peer may already have received up to SND.MAX, and a RST below its
 * RCV.NXT is unacceptable and dropped (RFC 9293 §3.10.7.4; RFC 5961 §3.2 takes only SEQ = RCV.NXT at once).
 */
export function acceptableSeq(ep: TcpEndpoint): number {
  const snd = ep.snd;
  const edge = seq.add(snd.una, snd.wnd);
  if (seq.le(snd.max, edge) || seq.sub(snd.max, edge) < 1 << snd.shift) return snd.max;
  return edge;
}

/** Sends <SEQ=acceptableSeq><ACK=RCV.NXT><CTL=RST,ACK> to abort the connection (RFC 9293 §3.10.5, §3.9 ABORT). */
export function sendReset(ep: TcpEndpoint): void {
  if (!ep.route) return;
  emit(ep, acceptableSeq(ep), TCP_RST | TCP_ACK, {}, 0, 0);
}

/** Builds and sends one segment from this connection. */
function emit(ep: TcpEndpoint, 
  s: number,
  flags: number,
  opts: TcpOptions,
  len: number,
  window: number,
  write?: (buf: Uint8Array, at: number, n: number) => void,
  ecn = ECN_NOT_ECT,
): void {
  const ack = flags & TCP_ACK ? ep.rcv.nxt : 0;
  const err = sendSegment(
    ep.route!,
    { srcPort: ep.localPort, dstPort: ep.remotePort, seq: s, ack, flags, window },
    opts,
    len,
    write,
    undefined,
    ecn | ep.ipBits,
  );
  ep.stats.segmentsSent++;
  if (err) ep.stats.sendErrors++;
}

/** Options for a non-SYN segment: timestamps (RFC 7323 §3.2) and up to `maxBlocks` SACK blocks (RFC 2018 §4). */
function ackOptions(ep: TcpEndpoint, maxBlocks: number): TcpOptions {
  const o: TcpOptions = {};
  if (ep.tsOk) {
    o.tsVal = ep.tsNow();
    o.tsEcr = ep.rcv.tsRecent;
  }
  if (!ep.sackOk || maxBlocks <= 0) return o;
  let max = Math.min(maxBlocks, ep.tsOk ? 3 : 4);
  const blocks: SackBlock[] = [];
  const dsack = ep.rcv.dsack;
  if (dsack) {
    // RFC 2883 §4: the duplicate range goes first, reported once.
    blocks.push(dsack);
    ep.rcv.dsack = null;
    max--;
  }
  if (ep.rcv.ooo.length > 0 && max > 0) blocks.push(...ep.rcv.ooo.sackBlocks(max));
  if (blocks.length) o.sack = blocks;
  return o;
}
