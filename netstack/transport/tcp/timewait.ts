/**
 * TIME-WAIT without the socket (Linux's inet_timewait_sock): once the application has closed an accepted
 * connection and it enters TIME-WAIT (RFC 9293 §3.10.7.4), the 4-tuple needs only its sequence numbers, its
 * timestamps, its route and a timer for 2·MSL, not the ~6 KB of a whole endpoint (buffers, congestion control,
 * RACK, eight timers). A server closing every connection first (HTTP with `Connection: close`) holds one per
 * connection for 60 s: as whole endpoints they were the bulk of its heap and of its garbage collector's work.
 * `TimeWait` answers what arrives as the endpoint would have (input.ts's TIME-WAIT paths: PAWS, the
 * acceptability test, RST, SYN, the ACK checks, a retransmitted FIN), and takes over its port reservation.
 */
import type { Address } from '../../addr.ts';
import * as seq from '../../seqnum.ts';
import { type SackBlock, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpOptions, type TcpRepr } from '../../wire/tcp.ts';
import { PROTO_TCP, type Route } from '../protocol.ts';
import type { TcpEndpoint } from './endpoint.ts';
import type { TcpProtocol } from './protocol.ts';
import { segmentLength, sendSegment } from './segment.ts';
import { State } from './state.ts';

// RFC 7323 §5.5: TS.Recent older than 24 days is stale and no longer protects (as input.ts).
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;

/** A connection in TIME-WAIT whose socket is gone. */
export class TimeWait {
  readonly localAddr: Address;
  readonly localPort: number;
  readonly remoteAddr: Address;
  readonly remotePort: number;
  private readonly route: Route;
  /** SND.MAX: past our FIN. */
  readonly sndMax: number;
  private readonly sndUna: number;
  private readonly maxWnd: number;
  /** RCV.NXT: past the peer's FIN. */
  readonly rcvNxt: number;
  /** Bytes the window we last advertised leaves beyond RCV.NXT, and its field in our ACKs. */
  private readonly rcvWnd: number;
  private readonly wndField: number;
  readonly tsOk: boolean;
  private readonly sackOk: boolean;
  private readonly tsOffset: number;
  tsRecent: number;
  tsRecentAt: number;
  private lastInvalidAck: number;
  /** When 2·MSL ends (TcpProtocol's TIME-WAIT queue); -1 once ended (the endpoint it replaced then reports CLOSED). */
  expires = 0;

  constructor(
    private readonly proto: TcpProtocol,
    ep: TcpEndpoint,
  ) {
    const snd = ep.snd;
    const rcv = ep.rcv;
    const route = ep.route!;
    // The route's copies of the addresses (the same bytes): the endpoint's own go with it.
    this.localAddr = route.localAddress;
    this.localPort = ep.localPort;
    this.remoteAddr = route.remoteAddress;
    this.remotePort = ep.remotePort;
    this.route = route;
    this.sndMax = snd.max;
    this.sndUna = snd.una;
    this.maxWnd = snd.maxWnd;
    this.rcvNxt = rcv.nxt;
    // What sendAck would advertise now; nothing in TIME-WAIT changes it (the receive queue is released).
    const wnd = rcv.windowToAdvertise(snd.mss);
    this.rcvWnd = Math.max(wnd, rcv.wnd);
    this.wndField = rcv.windowField(wnd, false);
    this.tsOk = ep.tsOk;
    this.sackOk = ep.sackOk;
    const now = proto.clock.now();
    this.tsOffset = (ep.tsNow() - Math.floor(now)) >>> 0;
    this.tsRecent = rcv.tsRecent;
    this.tsRecentAt = rcv.tsRecentAt;
    this.lastInvalidAck = ep.lastInvalidAck;
  }

  /** Starts the 2·MSL timeout (again, when a retransmitted FIN or an unexpected segment arrived). */
  restart(): void {
    this.proto.timeWaitFrom(this);
  }

  /** Leaves TIME-WAIT for CLOSED: the 4-tuple and the port are free again. */
  end(): void {
    if (this.expires < 0) return;
    this.expires = -1;
    this.proto.timeWaitEnded(this);
    this.proto.ports.release(PROTO_TCP, this.localAddr, this.localPort, this);
  }

  /** A segment for this 4-tuple (after the protocol's check for a new SYN that may reopen it). */
  arrives(r: TcpRepr): void {
    const f = r.flags;
    const start = r.seq;
    const len = segmentLength(r);
    const now = this.proto.clock.now();
    const tsVal = r.options.tsVal;
    if (this.tsOk && tsVal !== undefined && !(f & TCP_RST) && seq.lt(tsVal, this.tsRecent) && now - this.tsRecentAt < PAWS_IDLE_MS) {
      this.proto.count('pawsDrops');
      this.answerInvalid(len, null);
      return;
    }
    if (!this.acceptable(start, len)) {
      this.proto.count('outOfWindow');
      const end = seq.add(start, r.payload.length);
      const dsack = r.payload.length > 0 && this.proto.config.dsack && seq.le(end, this.rcvNxt) ? { left: start, right: end } : null;
      if (!(f & TCP_RST)) this.answerInvalid(len, dsack);
      if (f & TCP_FIN) this.restart();
      return;
    }
    if (this.tsOk && tsVal !== undefined && seq.le(start, this.rcvNxt) && seq.ge(tsVal, this.tsRecent)) {
      this.tsRecent = tsVal;
      this.tsRecentAt = now;
    }
    if (f & TCP_RST) {
      // RFC 5961 §3.2: only a RST exactly at RCV.NXT counts; one elsewhere in the window is challenged.
      if (start !== this.rcvNxt) {
        this.challenge();
        return;
      }
      if (this.proto.config.rfc1337) return; // RFC 1337: TIME-WAIT outlives a RST
      this.proto.stats.resetsReceived++;
      this.end();
      return;
    }
    if (f & TCP_SYN) {
      this.challenge();
      return;
    }
    if (!(f & TCP_ACK)) return;
    // RFC 5961 §5.2: an ACK of data never sent, or older than the largest window.
    if (seq.gt(r.ack, this.sndMax) || seq.lt(r.ack, seq.add(this.sndUna, -this.maxWnd))) {
      this.challenge();
      return;
    }
    if (f & TCP_FIN) {
      // The peer did not get our ACK of its FIN: again, and 2·MSL from now.
      this.sendAck(null);
      this.restart();
    } else if (start !== this.rcvNxt || len > 0) {
      // Linux tcp_timewait_state_process: only a bare ACK at RCV.NXT passes silently.
      this.answerInvalid(len, null);
      this.restart();
    }
  }

  /** RFC 9293 §3.10.7.4's acceptability test against the window last advertised. */
  private acceptable(s: number, len: number): boolean {
    const wnd = this.rcvWnd;
    if (wnd === 0) return s === this.rcvNxt;
    if (len === 0) return seq.inWindow(s, this.rcvNxt, wnd);
    return seq.inWindow(s, this.rcvNxt, wnd) || seq.inWindow(seq.add(s, len - 1), this.rcvNxt, wnd);
  }

  /** An ACK for an unacceptable segment: rate-limited when it carried nothing (tcp_invalid_ratelimit). */
  private answerInvalid(len: number, dsack: SackBlock | null): void {
    if (len === 0) {
      const now = this.proto.clock.now();
      if (now - this.lastInvalidAck < this.proto.config.invalidAckIntervalMs) {
        this.proto.count('invalidAcksSuppressed');
        return;
      }
      this.lastInvalidAck = now;
    }
    this.sendAck(dsack);
  }

  private challenge(): void {
    if (!this.proto.allowChallengeAck()) return;
    this.proto.stats.challengeAcks++;
    this.sendAck(null);
  }

  /** <SEQ=SND.MAX><ACK=RCV.NXT><CTL=ACK> with our timestamps, and a D-SACK block for duplicate data (RFC 2883). */
  private sendAck(dsack: SackBlock | null): void {
    const o: TcpOptions = {};
    if (this.tsOk) {
      o.tsVal = (Math.floor(this.proto.clock.now()) + this.tsOffset) >>> 0;
      o.tsEcr = this.tsRecent;
    }
    if (this.sackOk && dsack) o.sack = [dsack];
    const h = { srcPort: this.localPort, dstPort: this.remotePort, seq: this.sndMax, ack: this.rcvNxt, flags: TCP_ACK, window: this.wndField };
    const err = sendSegment(this.route, h, o, 0);
    this.proto.stats.segmentsSent++;
    if (err) this.proto.stats.sendErrors++;
  }
}

/**
 * Whether `ep`, entering TIME-WAIT, may leave its place to a TimeWait: the application has closed it, nobody waits
 * on it, and it is an accepted connection (its port is its listener's, taken over as is).
 */
export function compactable(ep: TcpEndpoint): boolean {
  return ep.orphaned && ep.heldPort !== null && ep.waiter.size === 0 && ep.route !== null && ep.state === State.TimeWait;
}
