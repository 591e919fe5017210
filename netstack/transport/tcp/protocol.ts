/**
 * The TCP transport of one stack: configuration, counters, the demultiplexing of received segments to
 * connections (exact 4-tuple) and listeners (local address or wildcard), RSTs for segments that match nothing
 * (RFC 9293 §3.10.7.1), TIME-WAIT reuse by a new SYN (RFC 9293 §3.6.1, RFC 6191), and ICMP errors.
 */
import type { ByteQueue } from './buffer.ts';
import { type Address, addressEqual, isLoopback, isUnspecified } from '../../addr.ts';
import { keyedHash32 } from '../../hash.ts';
import { HeldClock, type Timer } from '../../clock.ts';
import { Err } from '../../errors.ts';
import * as seq from '../../seqnum.ts';
import type { Family } from '../../socket.ts';
import { TCP_ACK, TCP_MIN_HEADER_LEN, TCP_SYN, TcpPacket, type TcpRepr, parseTcp, tcpChecksumOk } from '../../wire/tcp.ts';
import { type PortManager, unmapV4 } from '../ports.ts';
import { tcpSocketError } from '../udp/icmperr.ts';
import {
  type ControlMessage,
  type DeliverResult,
  type NetworkLayer,
  type PacketInfo,
  type TransportProtocol,
  PROTO_TCP,
} from '../protocol.ts';
import { listenArrives } from './accept.ts';
import type { CongestionControl } from './congestion/cc.ts';
import { Cubic } from './congestion/cubic.ts';
import { FastOpenCache, TFO_CLIENT_ENABLE, formatFastOpenKey, keyFromSecret, parseFastOpenKeys } from './fastopen.ts';
import { Reno } from './congestion/reno.ts';
import { TcpEndpoint } from './endpoint.ts';
import { predictedArrives, segmentArrives } from './input.ts';
import { sendAck } from './output.ts';
import { DEFAULT_RTO_MIN } from './rtt.ts';
import { sendResetFor } from './segment.ts';
import { State, stateName } from './state.ts';
import { TimeWait } from './timewait.ts';
import { TupleTable, sameAddress } from './demux.ts';

/** Tunables of the TCP protocol, with Linux's defaults. */
export interface TcpConfig {
  /** Minimum RTO in ms (Linux TCP_RTO_MIN, 200). */
  rtoMin: number;
  /** Maximum segment lifetime in ms; TIME-WAIT lasts 2·MSL (Linux: 60 s in total). */
  msl: number;
  /** Default congestion control ("cubic" as on Linux, or "reno"). */
  congestion: string;
  /** Default receive buffer (window) in bytes. */
  rcvBuf: number;
  /** Default send buffer in bytes. */
  sndBuf: number;
  /** Largest receive buffer: sets the window scale we offer. */
  maxRcvBuf: number;
  /** Largest send buffer SO_SNDBUF may set. */
  maxSndBuf: number;
  /** SYN retransmissions before connect() fails (net.ipv4.tcp_syn_retries). */
  synRetries: number;
  /**
   * SYN retransmissions that keep the initial RTO before the doubling starts; connect() gets as many more tries
   * (net.ipv4.tcp_syn_linear_timeouts, Linux 6.5+: a dead peer is retried every second four times).
   */
  synLinearTimeouts: number;
  /** SYN-ACK retransmissions before a half-open child is dropped (tcp_synack_retries). */
  synAckRetries: number;
  /** Data retransmissions before the connection is aborted (tcp_retries2). */
  retries2: number;
  /**
   * The same for a connection the application has closed with data or its FIN unacknowledged (an orphan):
   * net.ipv4.tcp_orphan_retries, where 0, the default, means 8 while the RTO is below its maximum (Linux's
   * tcp_orphan_retries), so a dead peer holds an orphan ~100 s rather than tcp_retries2's ~15 minutes.
   */
  orphanRetries: number;
  /** Receive-buffer auto-tuning (net.ipv4.tcp_moderate_rcvbuf); off, buffers stay at their default size. */
  moderateRcvbuf: boolean;
  /** Offer timestamps (RFC 7323). */
  timestamps: boolean;
  /** Offer SACK (RFC 2018). */
  sack: boolean;
  /** Offer window scaling (RFC 7323). */
  windowScaling: boolean;
  /** Delayed ACK timeout in ms. */
  delayedAckMs: number;
  /** How long an orphaned connection waits in FIN-WAIT-2, ms (tcp_fin_timeout). */
  finTimeout: number;
  /** Challenge ACKs per second for the whole stack (RFC 5961 §7, tcp_challenge_ack_limit). */
  challengeAckLimit: number;
  /** Keepalive defaults in seconds and probes (tcp_keepalive_time/intvl/probes). */
  keepIdle: number;
  keepIntvl: number;
  keepCnt: number;
  /** Largest listen backlog (net.core.somaxconn). */
  somaxconn: number;
  /** Unacceptable segments without data get at most one ACK per this many ms (net.ipv4.tcp_invalid_ratelimit). */
  invalidAckIntervalMs: number;
  /**
   * connect() may take over a 4-tuple in TIME-WAIT whose timestamps make it safe, its last one over 1 s old
   * (net.ipv4.tcp_tw_reuse): 0 never, 1 always, 2 (Linux's default) only when either address is loopback. A
   * socket bound to its port beforehand takes such a TIME-WAIT over whatever this says, as Linux's does.
   */
  twReuse: number;
  /** Answer SYNs with cookies when the SYN queue is full (net.ipv4.tcp_syncookies = 1). */
  synCookies: boolean;
  /**
   * Answer every SYN with a cookie, the SYN queue never used (net.ipv4.tcp_syncookies = 2; needs `synCookies`).
   * As Linux's tcp_conn_request, such a SYN gets no Fast Open: a cookie holds no data.
   */
  synCookiesAlways: boolean;
  /** Tell the peer of duplicate data with a D-SACK block (net.ipv4.tcp_dsack, RFC 2883). */
  dsack: boolean;
  /**
   * In TIME-WAIT, ignore a RST at RCV.NXT instead of ending at once (net.ipv4.tcp_rfc1337: RFC 1337's fix for
   * "TIME-WAIT assassination"; Linux's default, 0, lets the RST end it).
   */
  rfc1337: boolean;
  /**
   * Bytes all connections together may buffer (send, receive and out-of-order queues; Linux's tcp_mem):
   * above it writes are refused and out-of-order data dropped; above three quarters buffers stop growing.
   */
  maxMemory: number;
  /** Most connections in TIME-WAIT at once (net.ipv4.tcp_max_tw_buckets); more close without it. */
  maxTimeWait: number;
  /** Header prediction (input.ts predictedArrives); off only to check that both paths act alike. */
  headerPrediction: boolean;
  /** Fast Open bits (net.ipv4.tcp_fastopen, fastopen.ts): 1 client, 2 server, 4, 0x200, 0x400 as Linux. */
  fastOpen: number;
  /** net.ipv4.tcp_fastopen_key: primary (and backup) key; empty for a random key made from the stack's secret. */
  fastOpenKey: string;
  /** Pacing rate in slow start, percent of cwnd per SRTT (tcp_pacing_ss_ratio); sizes GSO packets (skb.ts). */
  pacingSsRatio: number;
  /** Pacing rate in congestion avoidance, percent of cwnd per SRTT (tcp_pacing_ca_ratio). */
  pacingCaRatio: number;
  /** Fewest segments a GSO packet is sized for (tcp_min_tso_segs). */
  minTsoSegs: number;
  /** Restart from the initial window after an idle RTO (RFC 5681 §4.1, tcp_slow_start_after_idle). */
  slowStartAfterIdle: boolean;
  /** ECN (RFC 3168, ecn.ts) as net.ipv4.tcp_ecn: 0 off, 1 request and accept, 2 accept only. */
  ecn: number;
  /** A retransmitted SYN asks for ECN no more (tcp_ecn_fallback). */
  ecnFallback: boolean;
  /** Unsent bytes above which a socket is not writable (tcp_notsent_lowat), unless TCP_NOTSENT_LOWAT says otherwise. */
  notsentLowat: number;
  /** A connection's initial reordering degree in segments (tcp_reordering), and the most it may grow to (tcp_max_reordering). */
  reordering: number;
  maxReordering: number;
}

/** Linux's defaults. */
export const DEFAULT_TCP_CONFIG: Readonly<TcpConfig> = Object.freeze({
  rtoMin: DEFAULT_RTO_MIN,
  msl: 30_000,
  congestion: 'cubic',
  rcvBuf: 131072,
  sndBuf: 262144,
  maxRcvBuf: 6 * 1024 * 1024,
  maxSndBuf: 4 * 1024 * 1024,
  synRetries: 6,
  synLinearTimeouts: 4,
  synAckRetries: 5,
  retries2: 15,
  orphanRetries: 0,
  moderateRcvbuf: true,
  timestamps: true,
  sack: true,
  windowScaling: true,
  delayedAckMs: 40,
  finTimeout: 60_000,
  challengeAckLimit: 1000,
  keepIdle: 7200,
  keepIntvl: 75,
  keepCnt: 9,
  somaxconn: 4096,
  synCookies: true,
  synCookiesAlways: false,
  twReuse: 2,
  dsack: true,
  rfc1337: false,
  invalidAckIntervalMs: 500,
  maxMemory: 256 * 1024 * 1024,
  maxTimeWait: 65536,
  headerPrediction: true,
  fastOpen: TFO_CLIENT_ENABLE,
  fastOpenKey: '',
  pacingSsRatio: 200,
  pacingCaRatio: 120,
  minTsoSegs: 2,
  slowStartAfterIdle: true,
  ecn: 2,
  ecnFallback: true,
  notsentLowat: 0xffffffff,
  reordering: 3,
  maxReordering: 300,
});

/** TCP counters, registered with the stack's Stats as group "tcp". */
export interface TcpStats {
  [k: string]: number;
  segmentsReceived: number;
  segmentsSent: number;
  sendErrors: number;
  retransmits: number;
  fastRetransmits: number;
  timeouts: number;
  tailLossProbes: number;
  /** Tail loss probes that repaired a loss (RFC 8985 §7.4), each answered with a window reduction. */
  tailLossRepairs: number;
  /** Window reductions an ECN echo caused (RFC 3168 §6.1.2). */
  ecnReductions: number;
  badChecksum: number;
  malformed: number;
  broadcastDrops: number;
  /** Segments for no connection and no listener (answered with RST). */
  noEndpoint: number;
  resetsSent: number;
  resetsReceived: number;
  activeOpens: number;
  passiveOpens: number;
  established: number;
  /** SYNs or ACKs dropped because the accept queue was full (ListenOverflows). */
  listenOverflows: number;
  /** SYNs dropped because the SYN queue was full (ListenDrops). */
  listenDrops: number;
  challengeAcks: number;
  challengeAcksSuppressed: number;
  /** ACKs not sent for unacceptable data-less segments (rate limit). */
  invalidAcksSuppressed: number;
  outOfWindow: number;
  pawsDrops: number;
  windowProbes: number;
  keepaliveProbes: number;
  timeWaitReused: number;
  /** Connections that skipped TIME-WAIT because maxTimeWait were already in it. */
  timeWaitOverflows: number;
  icmpErrors: number;
  syncookiesSent: number;
  syncookiesRecv: number;
  syncookiesFailed: number;
  /** Out-of-order segments or writes refused for the stack-wide memory limit. */
  memoryDrops: number;
  /** Segments taken by header prediction (input.ts predictedArrives) instead of the full path. */
  headerPredicted: number;
  /** Corked data sent by tcp(7)'s 200 ms ceiling rather than by uncorking: a writer that never said "done". */
  corkCeilingFlushes: number;
  /** Fast Open children accepted with their SYN's data (Linux's TCPFastOpenPassive). */
  fastOpenPassive: number;
  /** Our SYN's data acknowledged in the handshake (TCPFastOpenActive). */
  fastOpenActive: number;
  /** Our SYN's data not acknowledged in the handshake, so sent again after it (TCPFastOpenActiveFail). */
  fastOpenActiveFail: number;
}

/** TCP for one stack. */
export class TcpProtocol implements TransportProtocol {
  readonly protocolNumber = PROTO_TCP;
  private cfg: Readonly<TcpConfig>;
  readonly stats: TcpStats;
  private readonly connected: TupleTable<TcpEndpoint>;
  /** 4-tuples in TIME-WAIT whose endpoint was closed and let go (timewait.ts), beside `connected`. */
  private readonly timeWait: TupleTable<TimeWait>;
  // Their 2·MSL deadlines, in order (timeWaitFrom), from twHead on.
  private readonly twQueue: TimeWait[] = [];
  private readonly twAt: number[] = [];
  private twHead = 0;
  private twTimer: Timer | null = null;
  private twTimerAt = Infinity;
  private readonly listeners = new Map<number, TcpEndpoint[]>();
  /** Connections now in TIME-WAIT (see TcpConfig.maxTimeWait). */
  timeWaitCount = 0;
  /** Bytes buffered by all connections (see TcpConfig.maxMemory). */
  memoryUsed = 0;
  private challengeSecond = -1;
  // The connections predicted lookups found lately, by their ports (see lookupFast).
  private readonly recent: (TcpEndpoint | undefined)[] = new Array<TcpEndpoint | undefined>(RECENT_SLOTS).fill(undefined);
  private challengeCount = 0;
  /**
   * Whether the segment being delivered came flagged RX_MORE (more frames of its batch follow at once): an ACK
   * it makes due then waits for batchEnd, so a burst of segments for one connection is answered by one ACK.
   */
  rxMore = false;
  /** Whether the segment being delivered came flagged RX_LOAN: its payload may be queued as a view (Receiver). */
  rxLoan = false;
  /** Receive queues holding views of lent frames, to copy them when the link ends the loans. */
  readonly borrowers: ByteQueue[] = [];
  /** The IP ECN codepoint of the segment being processed (RFC 3168 §5), for ecn.ts. */
  rxEcn = 0;
  // Connections with an ACK deferred to batchEnd.
  private readonly deferred: TcpEndpoint[] = [];
  // Connections with an ACK deferred to the end of the event-loop turn (deferAckToTurn), and its timer.
  private turnDeferred: TcpEndpoint[] = [];
  private turnTimer: Timer | null = null;
  /** The stack's clock, held still while one segment is processed or one read or write runs (HeldClock). */
  readonly clock: HeldClock;

  /** The client's Fast Open cookies, by server (Linux's tcp_metrics). */
  readonly fastOpenCache = new FastOpenCache();
  private keysOf = '';
  private keys: Uint8Array[] = [];

  /** The stack's Fast Open keys (tcp_fastopen_key), primary first. */
  get fastOpenKeys(): readonly Uint8Array[] {
    if (this.keysOf !== this.cfg.fastOpenKey) {
      this.keys = parseFastOpenKeys(this.cfg.fastOpenKey);
      this.keysOf = this.cfg.fastOpenKey;
    }
    return this.keys;
  }

  /** The configuration in force; read where it is used, so a change reaches what happens next. */
  get config(): Readonly<TcpConfig> {
    return this.cfg;
  }

  /** Changes configuration fields from now on (a sysctl write): connections read them as they act, as on Linux. */
  configure(fields: Partial<TcpConfig>): void {
    this.cfg = Object.freeze({ ...this.cfg, ...fields });
  }

  constructor(
    readonly net: NetworkLayer,
    readonly ports: PortManager,
    opts?: Partial<TcpConfig>,
  ) {
    this.cfg = Object.freeze({ ...DEFAULT_TCP_CONFIG, ...opts });
    // Linux draws the key at random once (tcp_fastopen_init_key_once); the stack's secret is random already.
    if (!this.cfg.fastOpenKey) {
      this.configure({ fastOpenKey: formatFastOpenKey(keyFromSecret(net.secret)) });
    }
    this.clock = net.heldClock ?? new HeldClock(net.clock);
    const seed = ((net.secret[0]! << 24) | (net.secret[1]! << 16) | (net.secret[2]! << 8) | net.secret[3]!) >>> 0;
    this.connected = new TupleTable(seed);
    this.timeWait = new TupleTable(seed);
    this.stats = net.stats.group<TcpStats>('tcp', {
      segmentsReceived: 0,
      segmentsSent: 0,
      sendErrors: 0,
      retransmits: 0,
      fastRetransmits: 0,
      timeouts: 0,
      tailLossProbes: 0,
      tailLossRepairs: 0,
      ecnReductions: 0,
      badChecksum: 0,
      malformed: 0,
      broadcastDrops: 0,
      noEndpoint: 0,
      resetsSent: 0,
      resetsReceived: 0,
      activeOpens: 0,
      passiveOpens: 0,
      established: 0,
      listenOverflows: 0,
      listenDrops: 0,
      challengeAcks: 0,
      challengeAcksSuppressed: 0,
      invalidAcksSuppressed: 0,
      outOfWindow: 0,
      pawsDrops: 0,
      windowProbes: 0,
      keepaliveProbes: 0,
      timeWaitReused: 0,
      timeWaitOverflows: 0,
      icmpErrors: 0,
      syncookiesSent: 0,
      syncookiesRecv: 0,
      syncookiesFailed: 0,
      memoryDrops: 0,
      headerPredicted: 0,
      corkCeilingFlushes: 0,
      fastOpenPassive: 0,
      fastOpenActive: 0,
      fastOpenActiveFail: 0,
    });
  }

  /** Creates an unbound TCP socket of the given family. */
  newEndpoint(family: Family): TcpEndpoint {
    return new TcpEndpoint(this, family);
  }

  /** A congestion-control instance by TCP_CONGESTION name; unknown names get the default. */
  newCongestionControl(name: string, mss: number): CongestionControl {
    const n = name === 'reno' || name === 'cubic' ? name : this.config.congestion;
    return n === 'reno' ? new Reno(mss) : new Cubic(mss);
  }

  deliver(info: PacketInfo, segment: Uint8Array): DeliverResult {
    this.rxMore = info.more === true;
    this.rxLoan = info.loan === true;
    this.rxEcn = info.tos & 3;
    this.clock.hold();
    try {
      return this.deliverSegment(info, segment);
    } finally {
      this.clock.release();
      this.rxMore = false;
    }
  }

  /** Holds `ep`'s due ACK until batchEnd (see rxMore). */
  deferAck(ep: TcpEndpoint): void {
    if (ep.ackDeferred) return;
    ep.ackDeferred = true;
    this.deferred.push(ep);
  }

  /** The link ends its loans: every receive queue copies what it still holds of them (usually nothing). */
  returnLoans(): void {
    const list = this.borrowers;
    for (let i = 0; i < list.length; i++) list[i]!.adopt();
    list.length = 0;
  }

  /** Sends the ACKs deferred during the batch that just ended (those no later segment already sent). */
  batchEnd(): void {
    const list = this.deferred;
    if (list.length === 0) return;
    for (let i = 0; i < list.length; i++) {
      const ep = list[i]!;
      ep.ackDeferred = false;
      if (!ep.rcv.ackNow) continue;
      if (ep.rcv.replyMayCarry) this.deferAckToTurn(ep);
      else sendAck(ep);
    }
    list.length = 0;
  }

  /**
   * Holds `ep`'s ACK of a small in-order segment (Receiver.replyMayCarry) until the end of the event-loop turn
   * (a clock timer of 0 ms: Node's check phase), after the application's reads and writes have run: a server's
   * reply then carries it. Every new connection's request was otherwise acknowledged by a frame of its own
   * (quick-ACK mode), and each frame a server sends costs it the peer's receive path in the send call.
   */
  deferAckToTurn(ep: TcpEndpoint): void {
    if (ep.ackDeferred) return;
    ep.ackDeferred = true;
    this.turnDeferred.push(ep);
    this.turnTimer ??= this.net.clock.schedule(0, this.turnEnd);
  }

  private readonly turnEnd = (): void => {
    this.turnTimer = null;
    const list = this.turnDeferred;
    this.turnDeferred = [];
    this.clock.hold();
    try {
      for (let i = 0; i < list.length; i++) {
        const ep = list[i]!;
        ep.ackDeferred = false;
        if (ep.rcv.ackNow) sendAck(ep);
      }
    } finally {
      this.clock.release();
    }
  };

  private deliverSegment(info: PacketInfo, segment: Uint8Array): DeliverResult {
    const st = this.stats;
    st.segmentsReceived++;
    const hl = segment.length >= TCP_MIN_HEADER_LEN ? (segment[12]! >>> 4) * 4 : 0;
    if (hl < TCP_MIN_HEADER_LEN || hl > segment.length) return this.drop('malformed', TcpPacket.check(segment) as string);
    // A link that verified the checksum (or a frame that never crossed a wire) needs no second look.
    if (!info.csumVerified && !tcpChecksumOk(segment, info.src, info.dst)) return this.drop('badChecksum', 'bad-checksum');
    // The connection lookupFast found (or, as `null`, found none): the full path below need not look again. A SYN
    // flood's every segment misses, and each second lookup was a key built and hashed for nothing.
    let found: TcpEndpoint | undefined | null;
    if (this.config.headerPrediction && !info.broadcast) {
      const srcPort = (segment[0]! << 8) | segment[1]!;
      const dstPort = (segment[2]! << 8) | segment[3]!;
      if (srcPort !== 0 && dstPort !== 0) {
        const ep = this.lookupFast(info.dst, dstPort, info.src, srcPort);
        if (ep && predictedArrives(ep, segment, hl)) {
          st.headerPredicted++;
          return 'delivered';
        }
        found = ep ?? null;
      }
    }
    const r = parseTcp(new TcpPacket(segment));
    if (typeof r === 'string') return this.drop(r === 'bad-checksum' ? 'badChecksum' : 'malformed', r);
    // RFC 1122 §4.2.3.10: TCP ignores segments to broadcast or multicast addresses.
    if (info.broadcast) return this.drop('broadcastDrops');
    let ep = found === undefined ? this.connected.get(info.dst, r.dstPort, info.src, r.srcPort) : (found ?? undefined);
    if (ep && ep.state === State.TimeWait && r.flags & TCP_SYN && !(r.flags & TCP_ACK)) {
      // RFC 9293 §3.6.1 / RFC 6191: a new SYN beyond the old connection's sequence space (or with a newer
      // timestamp) may reopen the 4-tuple at once.
      const tsVal = r.options.tsVal;
      const newer = ep.tsOk && tsVal !== undefined ? seq.gt(tsVal, ep.rcv.tsRecent) : seq.gt(r.seq, ep.rcv.nxt);
      if (newer) {
        st.timeWaitReused++;
        ep.terminate(undefined);
        ep = undefined;
      }
    }
    if (ep) {
      segmentArrives(ep, r);
      return 'delivered';
    }
    if (this.timeWait.size > 0 && this.timeWaitArrives(info, r)) return 'delivered';
    const l = this.findListener(info.dst, r.dstPort, info.nicId, info.src, r.srcPort);
    if (l) {
      listenArrives(l, r, info);
      return 'delivered';
    }
    this.stats.noEndpoint++;
    if (sendResetFor(this.net, info.dst, info.src, r, info.nicId)) st.resetsSent++;
    return 'delivered';
  }

  /**
   * A segment for a 4-tuple in compact TIME-WAIT, if it is one: answered there, or (a new SYN beyond the old
   * connection, RFC 6191) the TIME-WAIT ends and false lets the SYN go on to a listener.
   */
  private timeWaitArrives(info: PacketInfo, r: TcpRepr): boolean {
    const tw = this.timeWait.get(info.dst, r.dstPort, info.src, r.srcPort);
    if (!tw) return false;
    if (r.flags & TCP_SYN && !(r.flags & TCP_ACK)) {
      const tsVal = r.options.tsVal;
      const newer = tw.tsOk && tsVal !== undefined ? seq.gt(tsVal, tw.tsRecent) : seq.gt(r.seq, tw.rcvNxt);
      if (newer) {
        this.stats.timeWaitReused++;
        tw.end();
        return false;
      }
    }
    tw.arrives(r);
    return true;
  }

  /**
   * `ep` entered TIME-WAIT with nobody holding it (timewait.ts compactable): a TimeWait takes its 4-tuple, its
   * port reservation and the 2·MSL timer, and the endpoint becomes garbage; returns the TimeWait.
   */
  compactTimeWait(ep: TcpEndpoint): TimeWait {
    const tw = new TimeWait(this, ep);
    const address = ep.heldPort!;
    this.unregister(ep);
    this.timeWait.set(tw);
    ep.heldPort = null;
    if (!this.ports.transfer(PROTO_TCP, address, ep.localPort, ep, tw, ep)) {
      this.ports.release(PROTO_TCP, address, ep.localPort, ep);
      this.ports.inherit({
        protocol: PROTO_TCP,
        address,
        port: ep.localPort,
        family: ep.family,
        v6only: ep.v6only,
        reuseAddr: ep.reuseAddr,
        reusePort: ep.reusePort,
        remote: { address: tw.remoteAddr, port: tw.remotePort },
        owner: tw,
      });
    }
    tw.restart();
    return tw;
  }

  /**
   * (Re)starts `tw`'s 2·MSL. The compact TIME-WAITs wait in one queue in the order their 2·MSL ends (the same
   * span for all, so appending keeps the order) under one clock timer for the earliest, rather than a timer each:
   * a server closing every connection first holds tens of thousands. A restarted one is appended again and its
   * earlier place skipped. (An MSL shortened while some wait applies to later ones once those earlier have ended.)
   */
  timeWaitFrom(tw: TimeWait): void {
    const at = this.net.clock.now() + 2 * this.config.msl;
    tw.expires = at;
    this.twAt.push(at);
    this.twQueue.push(tw);
    if (at < this.twTimerAt) this.armTimeWait(at);
  }

  private armTimeWait(at: number): void {
    this.twTimer?.cancel();
    this.twTimerAt = at;
    this.twTimer = this.net.clock.schedule(at - this.net.clock.now(), this.onTimeWaitTimer);
  }

  private readonly onTimeWaitTimer = (): void => {
    this.twTimer = null;
    this.twTimerAt = Infinity;
    const now = this.net.clock.now();
    const q = this.twQueue;
    let head = this.twHead;
    while (head < q.length && this.twAt[head]! <= now) {
      const tw = q[head]!;
      if (tw.expires === this.twAt[head]) tw.end();
      head++;
    }
    if (head > 1024 && head * 2 > q.length) {
      q.splice(0, head);
      this.twAt.splice(0, head);
      head = 0;
    } else if (head === q.length) {
      q.length = 0;
      this.twAt.length = 0;
      head = 0;
    }
    this.twHead = head;
    if (head < q.length) this.armTimeWait(this.twAt[head]!);
  };

  /** A compact TIME-WAIT ended (timeout, RST, or reuse by a new SYN). */
  timeWaitEnded(tw: TimeWait): void {
    this.timeWait.delete(tw);
    this.timeWaitCount--;
    const tracer = this.net.stats.tracer;
    if (tracer) tracer({ group: 'tcp', counter: 'state', detail: `${stateName(State.TimeWait)} → ${stateName(State.Closed)}` });
  }

  deliverControl(msg: ControlMessage, local: Address, remote: Address, quoted: Uint8Array): void {
    if (quoted.length < 8) return;
    const srcPort = (quoted[0]! << 8) | quoted[1]!;
    const dstPort = (quoted[2]! << 8) | quoted[3]!;
    const ep = this.connected.get(local, srcPort, remote, dstPort);
    if (!ep) return;
    this.stats.icmpErrors++;
    const quotedSeq = ((quoted[4]! << 24) | (quoted[5]! << 16) | (quoted[6]! << 8) | quoted[7]!) >>> 0;
    // RFC 5927 §4.1: only trust errors that quote a sequence number we have in flight.
    // The handshake's SYN or SYN-ACK is in flight from ISS (a Fast Open SND.UNA stands past it, accept.ts).
    const oldest = ep.state === State.SynSent || ep.state === State.SynReceived ? ep.snd.iss : ep.snd.una;
    if (!seq.inRange(quotedSeq, oldest, ep.snd.max)) return;
    if (msg.kind === 'packet-too-big') {
      ep.onPathMtu(msg.mtu);
      return;
    }
    // Linux's tcp_req_err: a half-open child whose SYN-ACK met a net or host unreachable, time exceeded or
    // parameter problem is dropped silently (accept() reports no network errors); the listener stays.
    if (ep.state === State.SynReceived && ep.parent && !ep.fastOpenListener) {
      const abort = msg.kind === 'net-unreachable' || msg.kind === 'host-unreachable' || msg.kind === 'time-exceeded' || msg.kind === 'parameter-problem';
      if (abort && quotedSeq === ep.snd.iss) {
        this.count('listenDrops');
        ep.terminate(undefined);
      }
      return;
    }
    // RFC 1122 §4.2.3.9: unreachable errors are soft, except while connecting (Linux: hard in SYN-SENT), with
    // Linux's errno for each type and code.
    // A Fast Open child not yet accepted is hard-failed too (Linux's tcp_v4_err), and stays in the accept queue.
    const e = tcpSocketError(msg);
    const fastOpenChild = ep.state === State.SynReceived && ep.fastOpenListener !== null && ep.parent !== null;
    if (e && (ep.state === State.SynSent || fastOpenChild)) ep.fail(e.err);
  }

  /**
   * The 4-tuple lookup for header prediction, remembering recent answers in a small table indexed by the ports:
   * comparing ten bytes is cheaper than hashing the tuple and probing, for a bulk flow (one connection at a
   * time) as for a server's many kept-alive connections taking turns (issue 15). A connection leaving the table
   * leaves this one too, so it always answers what the table would.
   */
  private lookupFast(local: Address, localPort: number, remote: Address, remotePort: number): TcpEndpoint | undefined {
    const slot = (remotePort ^ localPort) & (RECENT_SLOTS - 1);
    const c = this.recent[slot];
    if (
      c !== undefined &&
      c.localPort === localPort &&
      c.remotePort === remotePort &&
      sameAddress(c.localAddr!, local) &&
      sameAddress(c.remoteAddr!, remote)
    ) {
      return c;
    }
    const ep = this.connected.get(local, localPort, remote, remotePort);
    // A miss keeps the slot's connection: segments for no connection (a SYN flood's) must not evict the ones that
    // are talking.
    if (ep !== undefined) this.recent[slot] = ep;
    return ep;
  }

  /** Forgets what lookupFast remembered for `ep`'s ports. */
  private forgetRecent(ep: TcpEndpoint): void {
    this.recent[(ep.remotePort ^ ep.localPort) & (RECENT_SLOTS - 1)] = undefined;
  }

  /** Adds a connection to the 4-tuple table. */
  register(ep: TcpEndpoint): void {
    this.forgetRecent(ep);
    this.connected.set(ep);
    ep.registered = true;
  }

  /** Removes a connection (or a listener) from the tables. */
  unregister(ep: TcpEndpoint): void {
    if (!ep.registered) return;
    this.forgetRecent(ep);
    ep.registered = false;
    this.connected.delete(ep);
  }

  /** The connection with this 4-tuple, if any. */
  lookupConnected(local: Address, localPort: number, remote: Address, remotePort: number): TcpEndpoint | undefined {
    return this.connected.get(local, localPort, remote, remotePort);
  }

  /**
   * Whether connect() may take over the 4-tuple that `owner` (a reservation's owner) holds: a connection in
   * TIME-WAIT that used timestamps (PAWS then keeps its old duplicates out), last heard over 1 s ago, for a socket
   * `bound` to its port beforehand or as tcp_tw_reuse allows (Linux's tcp_twsk_unique).
   */
  mayReuseTimeWait(owner: object, bound: boolean): boolean {
    let tsOk: boolean;
    let tsRecentAt: number;
    let local: Address;
    let remote: Address;
    if (owner instanceof TimeWait) {
      if (owner.expires < 0) return false;
      ({ tsOk, tsRecentAt, localAddr: local, remoteAddr: remote } = owner);
    } else if (owner instanceof TcpEndpoint && owner.state === State.TimeWait && owner.localAddr && owner.remoteAddr) {
      tsOk = owner.tsOk;
      tsRecentAt = owner.rcv.tsRecentAt;
      local = owner.localAddr;
      remote = owner.remoteAddr;
    } else return false;
    if (!tsOk) return false;
    if (bound) return true;
    const mode = this.config.twReuse;
    if (mode === 0 || (mode === 2 && !isLoopback(unmapV4(local)) && !isLoopback(unmapV4(remote)))) return false;
    return this.clock.now() - tsRecentAt > TW_REUSE_DELAY_MS;
  }

  /**
   * Ends the TIME-WAIT on this 4-tuple for a new connection that takes it over (after `mayReuseTimeWait`), and
   * returns the ISN the new one must start from: past anything the old one sent, by a maximal unscaled window
   * (Linux: tw_snd_nxt + 65535 + 2).
   */
  takeTimeWait(local: Address, localPort: number, remote: Address, remotePort: number, bound: boolean): number | undefined {
    const ep = this.connected.get(local, localPort, remote, remotePort);
    const tw = ep ? undefined : this.timeWait.get(local, localPort, remote, remotePort);
    const owner = ep ?? tw;
    if (!owner || !this.mayReuseTimeWait(owner, bound)) return undefined;
    const sent = ep ? ep.snd.max : tw!.sndMax;
    this.stats.timeWaitReused++;
    if (ep) ep.terminate(undefined);
    else tw!.end();
    return ((sent + 65535 + 2) >>> 0) || 1;
  }

  /** `mayReuseTimeWait` for an ephemeral port's search (PortRequest.mayTake): one function for every connect. */
  readonly mayTakeOnConnect = (owner: object): boolean => this.mayReuseTimeWait(owner, false);

  /** Whether a connection (in any state, compact TIME-WAIT included) has this 4-tuple. */
  tupleInUse(local: Address, localPort: number, remote: Address, remotePort: number): boolean {
    return this.connected.get(local, localPort, remote, remotePort) !== undefined || this.timeWait.get(local, localPort, remote, remotePort) !== undefined;
  }

  /** Number of connections in the 4-tuple tables (every state but LISTEN and CLOSED, compact TIME-WAIT included). */
  get connectionCount(): number {
    return this.connected.size + this.timeWait.size;
  }

  /** Starts delivering SYNs for the endpoint's port to it. */
  addListener(ep: TcpEndpoint): void {
    const list = this.listeners.get(ep.localPort);
    if (list) list.push(ep);
    else this.listeners.set(ep.localPort, [ep]);
  }

  /** Stops delivering to a listener. */
  removeListener(ep: TcpEndpoint): void {
    const list = this.listeners.get(ep.localPort);
    if (!list) return;
    const i = list.indexOf(ep);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.listeners.delete(ep.localPort);
  }

  /** Counts a drop or notable event and tells the stack's tracer, if one is set. */
  count(counter: keyof TcpStats & string, detail?: string): void {
    this.net.stats.count(this.stats, 'tcp', counter, detail);
  }

  /** Adds (or with a negative n, returns) buffered bytes to the stack-wide account. */
  charge(n: number): void {
    this.memoryUsed += n;
  }

  /** Whether buffering `n` more bytes would exceed the stack-wide limit. */
  overMemory(n: number): boolean {
    return this.memoryUsed + n > this.config.maxMemory;
  }

  /** Whether buffers should stop growing (above three quarters of the limit). */
  underPressure(): boolean {
    return this.memoryUsed > 0.75 * this.config.maxMemory;
  }

  /** RFC 5961 §7: a stack-wide budget of challenge ACKs per second. */
  allowChallengeAck(): boolean {
    const second = Math.floor(this.net.clock.now() / 1000);
    if (second !== this.challengeSecond) {
      this.challengeSecond = second;
      this.challengeCount = 0;
    }
    if (this.challengeCount >= this.config.challengeAckLimit) {
      this.count('challengeAcksSuppressed');
      return false;
    }
    this.challengeCount++;
    return true;
  }

  /**
   * The listener for a local address and port on NIC `nicId`: an exact address match wins over a wildcard, and
   * within each a listener bound to that NIC (SO_BINDTODEVICE) over one bound to none (Linux's compute_score); a
   * listener bound to another NIC never matches. Among SO_REUSEPORT listeners of the winning kind on the same
   * address and family, a keyed hash of the connection's addresses and ports picks one (Linux's
   * reuseport_select_sock), so that connections spread over the group's processes and a flow keeps its listener.
   */
  private findListener(local: Address, port: number, nicId: number, remote: Address, remotePort: number): TcpEndpoint | undefined {
    const list = this.listeners.get(port);
    if (!list) return undefined;
    let best: TcpEndpoint | undefined;
    let bestScore = -1;
    let group: TcpEndpoint[] | null = null;
    for (const l of list) {
      if (l.boundNic !== 0 && l.boundNic !== nicId) continue;
      if (!l.matchesLocal(local)) continue;
      const score = (isUnspecified(l.localAddr!) ? 0 : 2) + (l.boundNic !== 0 ? 1 : 0);
      if (score > bestScore) {
        bestScore = score;
        best = l;
        group = l.reusePort ? [l] : null;
      } else if (score === bestScore && group && l.reusePort && l.family === best!.family && addressEqual(l.localAddr!, best!.localAddr!)) {
        group.push(l);
      }
    }
    if (group && group.length > 1) {
      const h = keyedHash32(this.net.secret, 4, remote, local, ((remotePort << 16) | port) >>> 0);
      return group[h % group.length];
    }
    return best;
  }

  private drop(counter: keyof TcpStats & string, detail?: string): DeliverResult {
    this.net.stats.count(this.stats, 'tcp', counter, detail);
    return counter === 'malformed' || counter === 'badChecksum' ? 'malformed' : 'delivered';
  }
}

/** Slots of lookupFast's table (a power of two). */
const RECENT_SLOTS = 256;
// How long a TIME-WAIT's last timestamp must be old before connect() may take it over (Linux's
// tcp_tw_reuse_delay default, in ms).
const TW_REUSE_DELAY_MS = 1000;
