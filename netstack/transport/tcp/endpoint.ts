/**
 * A TCP socket (RFC 9293 §3.10 user calls) behind the non-blocking `Endpoint` API: bind, connect (returns
 * Err.ConnectStarted), listen/accept, read/write, shutdown and close with Linux semantics, readiness through
 * the WaiterQueue. Segment processing lives in input.ts, listening in accept.ts, the halves in snd.ts/rcv.ts.
 */
import { type Address, addressEqual, isLinkLocalV6, isUnspecified, thisHost } from '../../addr.ts';
import type { Clock } from '../../clock.ts';
import { Err, type NetError } from '../../errors.ts';
import * as seq from '../../seqnum.ts';
import {
  type Endpoint,
  type ExtendedError,
  type Family,
  type OptionValue,
  type ReadOptions,
  type ReadResult,
  type SocketAddress,
  ShutdownRead,
  ShutdownWrite,
  type WriteOptions,
} from '../../socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp, WaiterQueue } from '../../waiter.ts';
import type { TcpOptions } from '../../wire/tcp.ts';
import { InetOptions } from '../inetopts.ts';
import { mapV4, unmapV4 } from '../ports.ts';
import { PROTO_TCP, type Route } from '../protocol.ts';
import { type Listener, SynQueue, closeListener } from './accept.ts';
import {
  type FastOpenCookie,
  TFO_CLIENT_ENABLE,
  TFO_CLIENT_NO_COOKIE,
  TFO_SERVER_ENABLE,
  TFO_SERVER_WO_SOCKOPT1,
  cookieLength,
} from './fastopen.ts';
import type { CongestionControl } from './congestion/cc.ts';
import {
  type Negotiated,
  type SynOffer,
  TS_OPTION_LEN,
  advertisedMss,
  initialSequence,
  timestampOffset,
  windowScaleFor,
} from './connect.ts';
import { Keepalive } from './keepalive.ts';
import { getOption, setOption } from './options.ts';
import type { TcpProtocol, TcpStats } from './protocol.ts';
import { Receiver } from './rcv.ts';
import { sendAck, sendReset, sendSyn } from './output.ts';
import type { HeaderTemplate } from './segment.ts';
import { Sender } from './snd.ts';
import { State, canSend, isSynchronized, stateName } from './state.ts';
import { DEFAULT_RTO_MAX } from './rtt.ts';
import { LazyTimer } from './timer.ts';
import { type TimeWait, compactable } from './timewait.ts';
import { ZeroCopy } from './zerocopy.ts';
import { TX_RECORD_MASK, TxTimestamps } from './tstamp.ts';
import { EcnState } from './ecn.ts';

/** tcp(7): corked output waits at most this long. */
const CORK_CEILING_MS = 200;
// Reads of at most this many bytes (and no `into`) get a copy rather than a view of the receive queue's chunk.
const SMALL_READ_COPY = 1024;
// Those copies are cut from a shared slab, as Node's Buffer pool does: a Uint8Array of their own is an ArrayBuffer
// each, malloc'd, zeroed and swept (a tenth of an endpoint-level request/response exchange's CPU, rr-work). A
// reader that keeps one keeps its slab, as with Node's pool; nothing else aliases it.
const SLAB_BYTES = 16384;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/** `n` (≤ SMALL_READ_COPY) bytes of fresh memory from the shared slab. */
function slabBytes(n: number): Uint8Array {
  if (slabUsed + n > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const v = slab.subarray(slabUsed, slabUsed + n);
  slabUsed = (slabUsed + n + 7) & ~7;
  return v;
}

/** SO_LINGER's value; setsockopt replaces it whole, so endpoints share one (a listener's children its own). */
export interface Linger {
  readonly onoff: boolean;
  /** Seconds; Infinity when set negative (Linux's MAX_SCHEDULE_TIMEOUT: close() waits with no time limit). */
  readonly linger: number;
}

/** SO_LINGER off, every new endpoint's. */
const NO_LINGER: Linger = Object.freeze({ onoff: false, linger: 0 });

/** One TCP connection or listening socket. */
export class TcpEndpoint implements Endpoint {
  readonly type = 'stream' as const;
  readonly protocol = PROTO_TCP;
  readonly waiter = new WaiterQueue();
  // The connection state, as `state` reports it but for a compacted husk's end.
  private st: State = State.Closed;
  /**
   * The compact TIME-WAIT that took this endpoint's place (timewait.ts), while it lasts: the endpoint reports
   * TIME-WAIT until it ends, then CLOSED, to whoever still holds it. The husk points at its TimeWait, not the
   * other way round: a reference from the TimeWait (a WeakRef before) kept every husk, a whole endpoint, alive
   * through young-generation collections (V8 treats WeakRef targets as strong there), and a server closing
   * every connection first promoted each one (issue 13).
   */
  private compactTw: TimeWait | null = null;

  /** The connection state (RFC 9293 §3.3.2). */
  get state(): State {
    return this.compactTw === null ? this.st : this.huskState();
  }

  private huskState(): State {
    if (this.compactTw!.expires < 0) {
      this.compactTw = null;
      this.st = State.Closed;
      this.stateSince = this.clock.now();
    }
    return this.st;
  }

  /** Local and remote address in wire form (4 or 16 bytes, IPv4-mapped unwrapped); null until known. */
  localAddr: Address | null = null;
  localPort = 0;
  remoteAddr: Address | null = null;
  remotePort = 0;
  route: Route | null = null;
  /** Ports and pseudo-header sum of `route`, for the send fast path (output.ts). */
  headerTemplate: HeaderTemplate | null = null;
  /** The address the port reservation was made with, when this endpoint holds one. */
  private reservedAddr: Address | null = null;
  /** Whether bind() ran (explicitly or by autobind). */
  bound = false;
  /**
   * The local address of the listener's port this accepted connection holds until CLOSED (accept.ts holdPort),
   * given back by terminate(): a waiter subscription per connection did this before, a closure and an entry for
   * every accepted connection, called at every one of its readiness changes.
   */
  heldPort: Address | null = null;
  /** Its TIME-WAIT was handed to a compact TimeWait (timewait.ts), which counts it and holds its port. */
  private timeWaitMoved = false;

  // Socket options.
  nodelay = false;
  cork = false;
  private moreCork = false;
  keepalive = false;
  keepIdle: number;
  keepIntvl: number;
  keepCnt: number;
  /** TCP_USER_TIMEOUT in ms, 0 for the default (retries). */
  userTimeout = 0;
  /** TCP_NOTSENT_LOWAT in bytes, 0 for net.ipv4.tcp_notsent_lowat. */
  notsentLowat = 0;
  linger: Linger = NO_LINGER;
  reuseAddr = false;
  reusePort = false;
  /** SO_BINDTODEVICE: the NIC id the socket's packets must use, both ways; 0 for any. */
  boundNic = 0;
  v6only = false;
  /** TCP_MAXSEG: 0 for none. */
  userMss = 0;
  /** IP_TOS without its ECN bits, which TCP owns: every IPv4 segment carries it. */
  tos = 0;
  /** IPV6_TCLASS the same way, for IPv6 segments (Linux keeps the two apart on an IPv6 socket). */
  tclass = 0;
  /** IP_TTL and IPV6_UNICAST_HOPS: -1 for the default (64). */
  ttl = -1;
  hops = -1;
  /** Options kept for every inet socket (inetopts.ts). */
  inet = new InetOptions();
  /** IP_MTU_DISCOVER as set (IP_PMTUDISC_WANT, 1, by default); kept for getsockopt, path MTU discovery is always on. */
  pmtudisc = 1;
  /** TCP_SYNCNT: SYN retransmissions before connect() fails; 0 for tcp_syn_retries. */
  synCount = 0;
  /** TCP_LINGER2 in ms: 0 for tcp_fin_timeout, -1 to drop an orphan at once in FIN-WAIT-2 (tcp(7)). */
  linger2 = 0;
  /** TCP_DEFER_ACCEPT on a listener, as Linux keeps it: SYN-ACK retransmissions to wait for data. */
  deferAccept = 0;
  /** A passive child saw the bare ACK of its SYN-ACK while the listener defers (Linux inet_rsk(req)->acked). */
  deferAcked = false;
  /** Text of the peer's SYN in a simultaneous open, held until ESTABLISHED (RFC 9293 §3.10.7.3). */
  synData: Uint8Array | null = null;

  // Fast Open (RFC 7413, fastopen.ts).
  /** TCP_FASTOPEN: the listener's Fast Open queue length (Linux's fastopenq.max_qlen); 0 is off. */
  fastOpenQlen = 0;
  /** TCP_FASTOPEN_KEY: the listener's own keys, primary first; null for the stack's. */
  fastOpenKeys: Uint8Array[] | null = null;
  /** TCP_FASTOPEN_NO_COOKIE: data in the SYN without a cookie (sent, or accepted by a listener). */
  fastOpenNoCookie = false;
  /** TCP_FASTOPEN_CONNECT: connect() defers the SYN to the first write, to carry its data. */
  fastOpenConnect = false;
  /** A passive Fast Open child until its SYN-ACK is acknowledged: the listener queue it counts in. */
  fastOpenListener: Listener | null = null;
  /** The SYN's data was acknowledged in the handshake (Linux's syn_data_acked, TCPI_OPT_SYN_DATA). */
  synDataAcked = false;
  /** The Fast Open option for the next SYN or SYN-ACK only (retransmissions carry none). */
  synFastOpen: FastOpenCookie | null = null;
  /** Bytes of the send buffer our SYN carries (client Fast Open); they follow SND.UNA = ISS + 1. */
  synDataLen = 0;
  /** Our SYN carried a Fast Open option, in the experimental form (Linux's syn_fastopen, syn_fastopen_exp). */
  synFastOpenSent = false;
  synFastOpenExp = false;
  /** connect() with TCP_FASTOPEN_CONNECT and a cookie: the SYN waits for the first write (Linux's defer_connect). */
  deferConnect = false;
  /** The handshake's SYN timed out and was sent again (Linux's total_retrans in tcp_rcv_fastopen_synack). */
  synRetransmitted = false;

  snd: Sender;
  rcv: Receiver;
  /** Negotiated in the handshake. */
  sackOk = false;
  tsOk = false;
  private tsOffset = 0;
  offer: SynOffer | null = null;
  /** The MSS the peer announced. */
  peerMss = 0;

  /** SO_ERROR: the pending asynchronous error. */
  private softError: NetError | undefined;
  /** Linux sk_shutdown bits. */
  rcvShut = false;
  sndShut = false;
  /** close() was called: nobody will read any more. */
  orphaned = false;
  /** Whether connect() was called (distinguishes "never connected" from "connection over"). */
  private connectCalled = false;
  /** The last connection attempt failed (refused, timed out, reset while connecting). */
  private connectFailed = false;
  /** What bind() was asked for, to bind again when the socket connects afresh after a failure. */
  private userBind: SocketAddress | null = null;
  /** Set when the endpoint listens. */
  listener: Listener | null = null;
  /** This half-open child's place in its listener's SYN queue (accept.ts SynQueue), -1 when not in one. */
  synQueueIndex = -1;
  /** The listener that created this endpoint in SYN-RECEIVED, until accept(). */
  parent: TcpEndpoint | null = null;
  /** SYN or SYN-ACK retransmissions so far. */
  synRetries = 0;
  /** Time the endpoint entered its current state (TCP_INFO, timers). */
  stateSince: number;
  /** The keep-alive timer (SO_KEEPALIVE). */
  readonly ka: Keepalive;
  /** The error queue (Linux's sk_error_queue), read with recvmsg(MSG_ERRQUEUE): zero-copy completions, timestamps. */
  readonly errQueue: ExtendedError[] = [];
  /**
   * The zero-copy and transmit-timestamp state once built (`zc`, `ts`): few connections ever use either, and a
   * server accepting a connection per request paid for both on every one (issue 13); null reads as off, nothing
   * pending.
   */
  zcState: ZeroCopy | null = null;
  tsState: TxTimestamps | null = null;
  /** ECN negotiated and what it owes (RFC 3168, ecn.ts). */
  readonly ecn = new EcnState();
  /** TIME-WAIT and FIN-WAIT-2 timeout, built when first set (closeTimer). */
  private closeState: LazyTimer | null = null;
  /** tcp(7)'s cork ceiling, built when the sender first holds a segment back for corking. */
  private corkTimer: LazyTimer | null = null;
  /** When an unacceptable segment without data was last answered (rate limit, input.ts). */
  lastInvalidAck = -Infinity;
  /** An ACK of ours waits in the protocol's deferred list for the end of the receive batch (TcpProtocol.rxMore). */
  ackDeferred = false;
  /** Registered in the protocol's demux tables. */
  registered = false;

  constructor(
    /** The protocol that owns the endpoint. */
    readonly proto: TcpProtocol,
    readonly family: Family,
    /** Congestion control by name (TCP_CONGESTION): a listener's children take the listener's; the stack's by default. */
    congestion?: string,
  ) {
    const c = proto.config;
    this.keepIdle = c.keepIdle;
    this.keepIntvl = c.keepIntvl;
    this.keepCnt = c.keepCnt;
    this.snd = new Sender(this, proto.newCongestionControl(congestion ?? c.congestion, 536), c.sndBuf, c.rtoMin);
    this.rcv = new Receiver(this, c.rcvBuf);
    this.ka = new Keepalive(this);
    this.stateSince = proto.net.clock.now();
  }

  /** TIME-WAIT and FIN-WAIT-2 timeout (built at first use). */
  private get closeTimer(): LazyTimer {
    return (this.closeState ??= new LazyTimer(this.proto.net.clock, () => this.onCloseTimer()));
  }

  /** SO_ZEROCOPY, MSG_ZEROCOPY sends in flight and their completions on the error queue (built at first use). */
  get zc(): ZeroCopy {
    return (this.zcState ??= new ZeroCopy(this.errQueue));
  }

  /** SO_TIMESTAMPING: send calls' marked bytes and their reports on the error queue (built at first use). */
  get ts(): TxTimestamps {
    return (this.tsState ??= new TxTimestamps(this.errQueue));
  }

  /** The stack's clock, as TCP reads it (held still for the segment or call being processed). */
  get clock(): Clock {
    return this.proto.clock;
  }

  /** The protocol's counters. */
  get stats(): TcpStats {
    return this.proto.stats;
  }

  /** TCP_CORK or a MSG_MORE write is holding back partial segments. */
  get corked(): boolean {
    return (this.cork || this.moreCork) && !this.naglePush;
  }

  /**
   * Linux's TCP_NAGLE_PUSH: setting TCP_NODELAY (or clearing TCP_CORK with it set) sends what is queued even past
   * TCP_CORK, until the next write adds an skb.
   */
  private naglePush = false;

  /** Sends what is queued now, cork or not (TCP_NODELAY set, or TCP_CORK cleared with TCP_NODELAY on). */
  pushQueued(): void {
    this.naglePush = true;
    this.push();
  }

  /** The sender held a partial segment back for corking: tcp(7)'s 200 ms ceiling then sends it anyway. */
  onCorkHold(): void {
    this.corkTimer ??= new LazyTimer(this.proto.net.clock, () => this.onCorkTimer());
    this.corkTimer.ensure(CORK_CEILING_MS);
  }

  private onCorkTimer(): void {
    if (!this.canTransmitData()) return;
    const cork = this.cork;
    this.cork = false;
    this.moreCork = false;
    const before = this.stats.segmentsSent;
    // Linux sends a corked tail from its probe timer, by tcp_write_wakeup, which pushes what it sends.
    this.snd.pushHead();
    this.snd.output();
    if (this.stats.segmentsSent !== before) this.stats.corkCeilingFlushes++;
    this.cork = cork;
    this.flushAck();
  }

  /** The TSval for a segment sent now (1 ms granularity, RFC 7323 §5.4). */
  tsNow(): number {
    return this.tsAt(this.clock.now());
  }

  /** The TSval a segment sent at time `t` carried. */
  tsAt(t: number): number {
    return (Math.floor(t) + this.tsOffset) >>> 0;
  }

  // ---- Endpoint API ----

  readiness(mask: number): number {
    let ev = 0;
    if (this.state === State.Listen) {
      if (this.listener && this.listener.acceptQueue.length > 0) ev |= EventIn;
      return ev & mask;
    }
    if (this.softError || this.errQueue.length > 0) ev |= EventErr;
    if ((this.rcvShut && this.sndShut) || this.state === State.Closed) ev |= EventHUp;
    if (this.rcvShut) ev |= EventIn | EventRdHUp;
    // Linux's tcp_poll: a passive Fast Open child is readable and writable before its handshake completes, and
    // a deferred Fast Open connect is writable so that the first write can carry the SYN.
    if ((this.state !== State.SynSent && this.state !== State.SynReceived) || this.fastOpenListener) {
      // Linux's tcp_epollin_ready: SO_RCVLOWAT bytes, or fewer once the window left is under a segment (the rest
      // could never come; Linux's rcv_mss estimate starts at 536, which stands for it here).
      const avail = this.rcv.buf.length;
      if (avail > 0 && (avail >= this.inet.rcvlowat || this.rcv.wnd <= 536)) ev |= EventIn;
      if (this.sndShut || (this.snd.space > 0 && this.notsentBelowLowat(true))) ev |= EventOut;
    } else if (this.deferConnect) ev |= EventOut;
    return ev & mask;
  }

  /**
   * Whether the unsent bytes are below the not-sent low-water mark (Linux's tcp_stream_memory_free): for poll and
   * wake-ups (`wake`) they must be below half of it, so that a writer woken has room for a useful write.
   */
  notsentBelowLowat(wake: boolean): boolean {
    return this.snd.unsent * (wake ? 2 : 1) < (this.notsentLowat || this.proto.config.notsentLowat);
  }

  /** Whether a not-sent low-water mark below Linux's default (no mark) applies to this socket. */
  get lowatInEffect(): boolean {
    return (this.notsentLowat || this.proto.config.notsentLowat) < 0xffffffff;
  }

  /**
   * The TOS byte (or traffic class) and TTL (hop limit) of the connection's segments as sendFast and sendSegment
   * take them: the byte in bits 0-7, the TTL in bits 8-15 (0: the route's default). The ECN codepoint is or-ed in.
   */
  get ipBits(): number {
    const v6 = this.route !== null ? this.route.localAddress.length === 16 : this.family === 6;
    const ttl = v6 ? this.hops : this.ttl;
    return (v6 ? this.tclass : this.tos) | (ttl > 0 ? ttl << 8 : 0);
  }

  /** Tells waiters about the current readiness. */
  notify(): void {
    this.waiter.notify(this.readiness(EventIn | EventOut | EventErr | EventHUp | EventRdHUp));
  }

  bind(addr: SocketAddress): NetError | undefined {
    if (this.state !== State.Closed || this.bound) return Err.InvalidArgument;
    const a = this.wireAddress(addr.address);
    if (!(a instanceof Uint8Array)) return a;
    if (a.length === 16 && isLinkLocalV6(a)) {
      // Linux's __inet6_bind: a link-local address needs its interface (the scope id, or SO_BINDTODEVICE), and
      // the scope id binds the socket to it.
      if (!addr.nicId && !this.boundNic) return Err.InvalidArgument;
      if (addr.nicId) this.boundNic = addr.nicId;
    }
    if (!isUnspecified(a) && !this.inet.freebind && !this.proto.net.isLocalAddress(a)) return Err.AddressNotAvailable;
    const port = this.proto.ports.reserve({
      protocol: PROTO_TCP,
      address: a,
      port: addr.port,
      family: this.family,
      v6only: this.v6only,
      reuseAddr: this.reuseAddr,
      reusePort: this.reusePort,
      nicId: this.boundNic || undefined,
      owner: this,
    });
    if (typeof port !== 'number') return port;
    this.reservedAddr = a;
    this.localAddr = a;
    this.localPort = port;
    this.bound = true;
    // Linux's __inet6_bind: bound to one IPv6 address (not the wildcard, not a v4-mapped one) the socket is
    // IPv6-only, as IPV6_V6ONLY then reads.
    if (this.family === 6 && a.length === 16 && !isUnspecified(a)) this.v6only = true;
    this.userBind = { address: addr.address, port: addr.port === 0 ? 0 : port };
    return undefined;
  }

  connect(addr: SocketAddress): NetError | undefined {
    if (this.deferConnect) return Err.AlreadyConnected;
    const e = this.open(addr);
    if (e) return e;
    if (this.fastOpenConnect) {
      // Linux's tcp_fastopen_defer_connect: with a cookie (or none needed) the SYN waits for the first write, which
      // it then carries; without, the SYN asks for a cookie.
      if (this.fastOpenPlan(0).dataOk) {
        this.deferConnect = true;
        return undefined;
      }
      this.sendFirstSyn(new Uint8Array(0));
    } else this.sendFirstSyn(null);
    return Err.ConnectStarted;
  }

  /**
   * sendto(MSG_FASTOPEN), and the first write after a deferred TCP_FASTOPEN_CONNECT (Linux's
   * tcp_sendmsg_fastopen): opens the connection with as much of `data` in the SYN as a cookie allows (RFC 7413
   * §4.2.1). The count the SYN carries, or Err.ConnectStarted when it carries none.
   */
  private fastOpenWrite(data: Uint8Array, to: SocketAddress | undefined): number | NetError | null {
    if (!(this.proto.config.fastOpen & TFO_CLIENT_ENABLE)) return Err.NotSupported;
    if (this.deferConnect) {
      this.deferConnect = false;
      return this.sendFirstSyn(data) || Err.ConnectStarted;
    }
    switch (this.state) {
      case State.Closed:
        if (this.connectCalled && !this.connectFailed) return null;
        break;
      case State.SynSent:
      case State.SynReceived:
        return Err.AlreadyConnecting;
      default:
        // Connected: Linux's connect step finds the connection made and the send goes on as any other.
        return null;
    }
    if (!to) return Err.InvalidArgument;
    const e = this.open(to);
    if (e) return e;
    return this.sendFirstSyn(data) || Err.ConnectStarted;
  }

  /**
   * What a Fast Open SYN to the connection's peer may carry (Linux's tcp_fastopen_cookie_check and
   * tcp_send_syn_data): data when a cookie is cached or none is needed, at most `size` bytes and one path MSS
   * (the server's cached MSS, TCP_MAXSEG) less 40 bytes kept for options; the option to send (a cookie, a
   * request in the form the cache says, or none in cookie-less mode).
   */
  private fastOpenPlan(size: number): { dataOk: boolean; space: number; option: FastOpenCookie | null } {
    const cached = this.proto.fastOpenCache.get(this.remoteAddr!);
    const noCookie = (this.proto.config.fastOpen & TFO_CLIENT_NO_COOKIE) !== 0 || this.fastOpenNoCookie;
    if (!noCookie && cookieLength(cached.cookie) <= 0) {
      return { dataOk: false, space: 0, option: { cookie: new Uint8Array(0), exp: cached.cookie.exp } };
    }
    let mss = Math.min(this.route!.maxPayload() - 20, cached.mss || this.offer!.mss);
    if (this.userMss > 0) mss = Math.min(mss, this.userMss);
    const space = Math.max(0, Math.min(mss - 40, size, this.snd.space));
    return { dataOk: true, space, option: noCookie ? null : cached.cookie };
  }

  /**
   * Sends the connection's first SYN: a plain one (`data` null), or a Fast Open one with the option and as much
   * of `data` as fastOpenPlan allows, queued in the send buffer from ISS + 1 (SND.UNA stands there already, so the
   * buffer's offsets hold; input.ts and ICMP look at ISS in SYN-SENT). Returns the bytes the SYN carries.
   */
  private sendFirstSyn(data: Uint8Array | null): number {
    const snd = this.snd;
    let copied = 0;
    this.synFastOpen = null;
    if (data) {
      const plan = this.fastOpenPlan(data.length);
      this.synFastOpen = plan.option;
      if (plan.dataOk && plan.space > 0) {
        copied = plan.space;
        snd.buf.append(data.subarray(0, copied));
        this.proto.charge(copied);
        snd.queued(copied, false, false);
      }
    }
    this.synFastOpenSent = this.synFastOpen !== null;
    this.synFastOpenExp = this.synFastOpen?.exp ?? false;
    this.synDataLen = copied;
    sendSyn(this, false, undefined, copied);
    snd.nxt = seq.add(snd.iss, 1 + copied);
    snd.max = snd.nxt;
    if (copied > 0) snd.una = seq.add(snd.iss, 1);
    snd.rtxTimer.set(snd.rtt.rto);
    return copied;
  }

  /** connect()'s part before the SYN: checks, route, port, the connection's state (SYN-SENT, registered). */
  private open(addr: SocketAddress): NetError | undefined {
    switch (this.state) {
      case State.SynSent:
      case State.SynReceived:
        return Err.AlreadyConnecting;
      case State.Closed:
        break;
      case State.Listen: // Linux's __inet_stream_connect: EISCONN for any state but CLOSE
      default:
        return Err.AlreadyConnected;
    }
    if (this.connectFailed) {
      // Linux: the first connect() after a failed attempt reports it; the socket may then connect afresh.
      const err = this.takeError() ?? Err.ConnectionAborted;
      this.resetForConnect();
      return err;
    }
    if (this.connectCalled) return this.softError ? this.takeError() : Err.AlreadyConnected;
    const wire = this.wireAddress(addr.address);
    if (!(wire instanceof Uint8Array)) return wire;
    if (addr.port === 0) return Err.ConnectionRefused;
    // The unspecified address is this host (addr.ts thisHost); an IPv6 socket bound to a v4-mapped address takes
    // 127.0.0.1 for :: (tcp_v6_connect).
    let remote = wire;
    if (isUnspecified(wire)) remote = wire.length === 4 ? thisHost(4, this.localAddr) : thisHost(this.localAddr?.length === 4 ? 4 : 16, null);
    const local = this.localAddr && !isUnspecified(this.localAddr) ? this.localAddr : undefined;
    const route = this.proto.net.findRoute(remote, local, addr.nicId || this.boundNic || undefined);
    if (!('send' in route)) return route;
    const localAddr = route.localAddress;
    const boundBefore = this.bound;
    if (!this.bound) {
      const port = this.proto.ports.reserve({
        protocol: PROTO_TCP,
        address: localAddr,
        port: 0,
        family: this.family,
        v6only: this.v6only,
        reuseAddr: this.reuseAddr,
        nicId: this.boundNic || undefined,
        remote: { address: remote, port: addr.port },
        owner: this,
        mayTake: this.proto.mayTakeOnConnect,
      });
      if (typeof port !== 'number') return port === Err.NoPortAvailable ? Err.AddressNotAvailable : port;
      this.reservedAddr = localAddr;
      this.localPort = port;
      this.bound = true;
    }
    // A 4-tuple in use may be a TIME-WAIT this connection takes over (tcp_tw_reuse), starting past its sequence space.
    let isn: number | undefined;
    if (this.proto.tupleInUse(localAddr, this.localPort, remote, addr.port)) {
      isn = this.proto.takeTimeWait(localAddr, this.localPort, remote, addr.port, boundBefore);
      if (isn === undefined) return Err.AddressNotAvailable;
    }
    this.localAddr = localAddr;
    this.remoteAddr = remote;
    this.remotePort = addr.port;
    this.route = route;
    this.connectCalled = true;
    this.initConnection();
    this.snd.init(isn ?? this.newIsn());
    this.setState(State.SynSent);
    this.proto.register(this);
    this.stats.activeOpens++;
    return undefined;
  }

  /** connect(AF_UNSPEC): Linux's tcp_disconnect aborts the connection (RST) and leaves the socket reusable. */
  disconnect(): NetError | undefined {
    if (this.state === State.Closed && !this.connectCalled) return undefined;
    if (this.state === State.Listen) closeListener(this);
    else if (isSynchronized(this.state) && this.state !== State.TimeWait) {
      this.stats.resetsSent++;
      sendReset(this);
    }
    this.terminate(undefined);
    this.resetForConnect();
    return undefined;
  }

  listen(backlog: number): NetError | undefined {
    if (this.state === State.Listen) {
      this.listener!.backlog = clampBacklog(backlog, this.proto.config.somaxconn);
      return undefined;
    }
    if (this.state !== State.Closed || this.connectCalled) return Err.InvalidArgument;
    if (!this.bound) {
      const e = this.bind({ address: this.family === 4 ? new Uint8Array(4) : new Uint8Array(16), port: 0 });
      if (e) return e;
    }
    // Linux re-checks the port for listening: SO_REUSEADDR does not let two listeners share it.
    const ports = this.proto.ports;
    const req = {
      protocol: PROTO_TCP,
      address: this.reservedAddr!,
      port: this.localPort,
      family: this.family,
      v6only: this.v6only,
      reuseAddr: this.reuseAddr,
      reusePort: this.reusePort,
      nicId: this.boundNic || undefined,
      listening: true,
      owner: this,
    };
    if (!ports.isAvailable(req)) return Err.AddressInUse;
    ports.release(PROTO_TCP, this.reservedAddr!, this.localPort, this);
    ports.reserve(req);
    this.listener = {
      backlog: clampBacklog(backlog, this.proto.config.somaxconn),
      synQueue: new SynQueue(),
      acceptQueue: [],
      cookieSentAt: -Infinity,
      fastOpenPending: 0,
    };
    // Linux's inet_listen: with tcp_fastopen 0x400 (and 0x2) a listener without TCP_FASTOPEN gets a Fast Open
    // queue as long as its backlog.
    const tfo = this.proto.config.fastOpen;
    if (tfo & TFO_SERVER_WO_SOCKOPT1 && tfo & TFO_SERVER_ENABLE && this.fastOpenQlen === 0) {
      this.fastOpenQlen = this.listener.backlog;
    }
    this.setState(State.Listen);
    this.proto.addListener(this);
    return undefined;
  }

  accept(): { endpoint: Endpoint; peer: SocketAddress } | NetError {
    if (this.state !== State.Listen || !this.listener) return Err.InvalidArgument;
    const child = this.listener.acceptQueue.shift();
    if (!child) return Err.WouldBlock;
    child.parent = null;
    return { endpoint: child, peer: child.remoteAddress() as SocketAddress };
  }

  write(data: Uint8Array, opts?: WriteOptions): number | NetError {
    const clock = this.proto.clock;
    clock.hold();
    try {
      const zc = opts?.zeroCopy !== undefined && this.zcState?.enabled === true && data.length > 0;
      if (zc && opts.zeroCopy === 'new' && this.zc.full()) return Err.NoBufferSpace;
      const n = this.writeHeld(data, opts);
      // The call's bytes end where the stream's queued bytes end now (acknowledged ones plus the send buffer).
      if (zc && typeof n === 'number' && n > 0) this.zc.sent(this.snd.bytesAcked + this.snd.buf.length, opts.zeroCopy === 'extend');
      return n;
    } finally {
      clock.release();
    }
  }

  holdTime(): void {
    this.proto.clock.hold();
  }

  releaseTime(): void {
    this.proto.clock.release();
  }

  /**
   * Reads without holding the clock: its tuning takes the time of the latest segment in or out, as Linux's
   * tcp_recvmsg does (a host clock read less per request of a kept-alive connection), and a window update the
   * read sends holds it on its own.
   */
  read(opts?: ReadOptions): ReadResult | NetError {
    if (this.state === State.Listen) return Err.NotConnected;
    const q = this.rcv.buf;
    if (q.length > 0) {
      const into = opts?.into;
      const n = Math.min(q.length, opts?.maxBytes ?? q.length, into ? into.length : Infinity);
      let data: Uint8Array;
      if (into) {
        if (!opts.discard) q.copyOut(0, n, into, 0);
        data = n === into.length ? into : into.subarray(0, n);
      } else if (opts?.peek || n <= SMALL_READ_COPY) {
        // A peek must not alias what stays queued. A small read is copied too: a view would lend its whole chunk,
        // which then never returns to the pool, so a request/response connection allocated (and zeroed) a fresh
        // chunk for every request (issue 13: TCP round trips); copying a few hundred bytes costs less.
        data = slabBytes(n);
        q.copyOut(0, n, data, 0);
      } else {
        // A view is safe once consumed (the queue drops its chunk).
        data = q.peek(n);
      }
      if (!opts?.peek) {
        q.consume(n);
        this.proto.charge(-n);
        this.rcv.onRead(n, this.proto.clock.lastHeld, this.snd.rtt.srtt, this.proto.config.maxRcvBuf);
        this.afterRead();
      }
      return { data };
    }
    if (this.softError) return this.takeError()!;
    if (this.rcvShut) return { data: new Uint8Array(0) };
    if (this.state === State.Closed) return this.connectCalled ? { data: new Uint8Array(0) } : Err.NotConnected;
    return Err.WouldBlock;
  }

  private writeHeld(data: Uint8Array, opts?: WriteOptions): number | NetError {
    this.naglePush = false;
    if (opts?.fastOpen || this.deferConnect) {
      const r = this.fastOpenWrite(data, opts?.to);
      if (r !== null) return r;
    }
    if (this.softError) return this.takeError()!;
    if (this.sndShut) return Err.ClosedForSend;
    if (this.state === State.SynSent || (this.state === State.SynReceived && !this.fastOpenListener)) return Err.WouldBlock;
    if (!canSend(this.state) && !this.fastOpenListener) return Err.ClosedForSend;
    const snd = this.snd;
    let n = Math.min(snd.space, data.length);
    if (n > 0 && this.proto.overMemory(n)) {
      n = Math.max(0, this.proto.config.maxMemory - this.proto.memoryUsed);
      if (n === 0) this.proto.count('memoryDrops');
    }
    if (n === 0) return data.length === 0 ? 0 : Err.WouldBlock;
    // MSG_ZEROCOPY's iovecs become skb frags in Linux, which cuts an skb at MAX_SKB_FRAGS of them.
    const frags = opts?.frags && opts.zeroCopy !== undefined && this.zcState?.enabled === true ? opts.frags : undefined;
    if (!frags && this.lowatInEffect) {
      n = this.queueUnderLowat(data, n);
      if (n === 0) return Err.WouldBlock;
    } else if (!frags && n > snd.tailRoom()) {
      this.queueBySkb(data, n, !!opts?.keep);
    } else {
      const part = n === data.length ? data : data.subarray(0, n);
      if (opts?.keep) snd.buf.share(part);
      else snd.buf.append(part);
      this.proto.charge(n);
    }
    // A call whose bytes did not all fit ends with its last queued byte pushed and without EOR, as Linux's
    // wait_for_space does (tcp_push without MSG_MORE); the rest comes in a later write.
    snd.queued(n - this.queuedEarly, !!opts?.more && n === data.length, !!opts?.eor && n === data.length, frags, this.queuedEarly > 0);
    this.queuedEarly = 0;
    // tcp_tx_timestamp: the call's last byte carries the timestamp request, before the call's push sends it.
    if (this.tsState !== null && this.tsState.flags & TX_RECORD_MASK) this.tsState.wrote(snd.bytesAcked + snd.buf.length, snd.skbs.tailStart());
    // MSG_MORE corks this call's push only (Linux's tcp_push with TCP_NAGLE_CORK); what an ACK later releases is
    // judged by Nagle alone, as tcp_data_snd_check pushes with the socket's own nonagle.
    this.moreCork = !!opts?.more;
    snd.output();
    this.moreCork = false;
    this.flushAck();
    return n;
  }

  /**
   * Queues a write of more than one skb as tcp_sendmsg_locked goes: skb by skb, each one filled is sent at once
   * when it is the next to send (tcp_push_one: one packet), or, once forced_push marked it (more than half the
   * peer's largest window queued since the last mark), with everything cwnd allows (__tcp_push_pending_frames). A
   * packet that leaves part of an skb cuts it (tso_fragment) and the unsent rest, the tail again, takes the next
   * bytes, its PSH mark moving with its end: where PSH falls depends on what left during the call, as on Linux. The
   * last skb's bytes are left for the caller to record with the call's flags. `keep`: the write's array is queued
   * itself (WriteOptions.keep), not copied.
   */
  private queueBySkb(data: Uint8Array, n: number, keep: boolean): void {
    const snd = this.snd;
    let done = 0;
    for (;;) {
      const c = Math.min(snd.tailRoom() || snd.sizeGoal(), n - done);
      // A write that fits one skb (every reply of a request/response exchange) is appended without a view made.
      const part = c === data.length ? data : data.subarray(done, done + c);
      if (keep) snd.buf.share(part);
      else snd.buf.append(part);
      this.proto.charge(c);
      done += c;
      if (done === n) return;
      const pushed = snd.queued(c, true, false, undefined, this.queuedEarly > 0);
      this.queuedEarly += c;
      if (pushed) snd.output();
      else if (snd.tailIsSendHead()) snd.output(true);
    }
  }

  /** Bytes of the current write that queueUnderLowat or queueBySkb already recorded as skbs. */
  private queuedEarly = 0;

  /**
   * Queues up to `n` bytes of a write while a not-sent low-water mark is in effect, as tcp_sendmsg_locked goes:
   * bytes first fill the unsent tail skb, a new skb is started only while the unsent bytes are below the mark
   * (sk_stream_memory_free), and each full skb is pushed at once (tcp_push_one), so what cwnd lets go leaves before
   * the next check and the tail left unsent takes more bytes without one. Returns the bytes queued; the last
   * skb's bytes are left for the caller to record with the call's flags.
   */
  private queueUnderLowat(data: Uint8Array, n: number): number {
    const snd = this.snd;
    let done = 0;
    let pending = 0;
    while (done < n) {
      let c = snd.tailRoom();
      if (c === 0 || pending > 0) {
        if (pending > 0) {
          // The skb just filled is recorded and pushed before the next one starts.
          snd.queued(pending, true, false);
          this.queuedEarly += pending;
          pending = 0;
          snd.output();
          c = snd.tailRoom();
        }
        if (c === 0) {
          if (!this.notsentBelowLowat(false)) break;
          c = snd.sizeGoal();
        }
      }
      c = Math.min(c, n - done);
      snd.buf.append(data.subarray(done, done + c));
      this.proto.charge(c);
      done += c;
      pending = c;
    }
    return done;
  }

  shutdown(how: number): NetError | undefined {
    if (this.state === State.Listen) {
      if (how & ShutdownRead) this.close();
      return undefined;
    }
    if (this.state === State.Closed || this.state === State.SynSent) {
      if (!this.connectCalled || this.state === State.Closed) return Err.NotConnected;
    }
    if (how & ShutdownRead) {
      this.rcvShut = true;
    }
    if (how & ShutdownWrite) this.closeSend();
    this.notify();
    return undefined;
  }

  close(): void {
    if (this.orphaned) return;
    this.orphaned = true;
    this.rcvShut = true;
    // Nobody reads any more: release what was received.
    const unread = this.rcv.buf.length;
    this.proto.charge(-unread);
    this.rcv.buf.clear();
    switch (this.state) {
      case State.Listen:
        closeListener(this);
        this.terminate(undefined);
        return;
      case State.Closed:
        this.terminate(undefined);
        return;
      case State.SynSent:
        this.terminate(undefined);
        return;
    }
    // RFC 2525 §2.17 / Linux: closing with unread data, or with SO_LINGER 0, aborts with a RST.
    if (unread > 0 || (this.linger.onoff && this.linger.linger === 0)) {
      this.stats.resetsSent++;
      sendReset(this);
      this.terminate(undefined);
      return;
    }
    this.closeSend();
    if (this.state === State.FinWait2) {
      // Linux tcp_close: TCP_LINGER2 < 0 aborts a FIN-WAIT-2 connection at close.
      if (this.linger2 < 0) {
        this.stats.resetsSent++;
        sendReset(this);
        this.terminate(undefined);
        return;
      }
      this.closeTimer.set(this.finTime());
    }
  }

  /** How long an orphan waits in FIN-WAIT-2: TCP_LINGER2 or tcp_fin_timeout, at least 3.5·RTO (Linux tcp_fin_time). */
  finTime(): number {
    const t = this.linger2 > 0 ? this.linger2 : this.proto.config.finTimeout;
    return Math.max(t, 3.5 * this.snd.rtt.rto);
  }

  localAddress(): SocketAddress | NetError {
    const a = this.localAddr ?? (this.family === 4 ? new Uint8Array(4) : new Uint8Array(16));
    return { address: this.userAddress(a), port: this.localPort };
  }

  remoteAddress(): SocketAddress | NetError {
    if (!this.remoteAddr || this.state === State.Listen) return Err.NotConnected;
    if (this.state === State.Closed && !this.rcv.buf.length) return Err.NotConnected;
    if (this.state === State.SynSent) return Err.NotConnected;
    return { address: this.userAddress(this.remoteAddr), port: this.remotePort };
  }

  getOption(name: string): OptionValue | NetError {
    return getOption(this, name);
  }

  setOption(name: string, value: OptionValue): NetError | undefined {
    return setOption(this, name, value);
  }

  takeQueuedError(): ExtendedError | undefined {
    return this.errQueue.shift();
  }

  takeError(): NetError | undefined {
    const e = this.softError;
    this.softError = undefined;
    return e;
  }

  inQueue(): number {
    return this.rcv.buf.length;
  }

  outQueue(): number {
    return this.snd.buf.length;
  }

  // ---- internals used by the halves, the listener and the protocol ----

  /** Returns a socket whose connection attempt failed to its unconnected state (its options kept). */
  private resetForConnect(): void {
    const c = this.proto.config;
    const snd = new Sender(this, this.proto.newCongestionControl(this.snd.cc.name, 536), this.snd.limit, c.rtoMin);
    const rcv = new Receiver(this, this.rcv.limit);
    rcv.autoTune = this.rcv.autoTune;
    snd.autoTune = this.snd.autoTune;
    this.snd = snd;
    this.rcv = rcv;
    this.connectFailed = false;
    this.connectCalled = false;
    this.rcvShut = false;
    this.sndShut = false;
    this.remoteAddr = null;
    this.remotePort = 0;
    this.route = null;
    this.localAddr = null;
    this.localPort = 0;
    this.bound = false;
    this.synRetries = 0;
    this.softError = undefined;
    // A port chosen at bind() stays the socket's, as on Linux; an ephemeral one was given back.
    if (this.userBind) this.bind(this.userBind);
  }

  /** Replaces the congestion-control algorithm (TCP_CONGESTION), keeping the current window. */
  setCongestion(cc: CongestionControl): void {
    cc.cwnd = this.snd.cc.cwnd;
    cc.ssthresh = this.snd.cc.ssthresh;
    this.snd.cc = cc;
  }

  /** The pending error, without clearing it. */
  get pendingError(): NetError | undefined {
    return this.softError;
  }

  /** Moves to a new state (counted, traced). */
  setState(s: State): void {
    if (this.state === s) return;
    const from = this.state;
    this.st = s;
    this.stateSince = this.clock.now();
    if (s === State.Established) {
      this.stats.established++;
      // Only a SYN-ACK is built from them (SYN-RECEIVED): an established connection keeps no object for them.
      this.peerSynOptions = undefined;
    }
    const tracer = this.proto.net.stats.tracer;
    if (tracer) tracer({ group: 'tcp', counter: 'state', detail: `${stateName(from)} → ${stateName(s)}` });
  }

  /** Prepares buffers, offer and options before a SYN is sent or answered. */
  initConnection(): void {
    const c = this.proto.config;
    const route = this.route!;
    const pathMss = advertisedMss(route.maxPayload(), route.remoteAddress.length === 4 ? 4 : 6);
    const mss = this.userMss > 0 ? Math.min(this.userMss, pathMss) : pathMss;
    this.offer = {
      mss,
      wscale: c.windowScaling ? windowScaleFor(Math.max(c.maxRcvBuf, this.rcv.limit), this.rcv.clamp) : undefined,
      sackPermitted: c.sack,
      timestamps: c.timestamps,
    };
    this.tsOffset = timestampOffset(this.proto.net.secret, this.localAddr!, this.remoteAddr!);
  }

  /** A fresh ISN for this 4-tuple (RFC 6528). */
  newIsn(): number {
    return initialSequence(
      this.proto.net.secret,
      this.clock.now(),
      this.localAddr!,
      this.localPort,
      this.remoteAddr!,
      this.remotePort,
    );
  }

  /** Applies what the handshake agreed on: scaling, SACK, timestamps, MSS (RFC 9293 §3.7.1). */
  applyNegotiated(n: Negotiated): void {
    this.snd.shift = n.sndShift;
    this.rcv.shift = n.rcvShift;
    this.sackOk = n.sackOk;
    this.tsOk = n.tsOk;
    this.peerMss = n.peerMss;
    const path = this.route!.maxPayload() - 20;
    let mss = Math.min(n.peerMss, path);
    if (this.userMss > 0) mss = Math.min(mss, this.userMss);
    mss -= this.tsOk ? TS_OPTION_LEN : 0;
    this.snd.fullMss = Math.max(mss, 64);
    const fresh = this.proto.newCongestionControl(this.snd.cc.name, this.snd.mss);
    this.snd.cc = fresh;
  }

  /** Whether data or a FIN may be (re)transmitted in the current state. */
  canTransmitData(): boolean {
    const s = this.state;
    return (
      s === State.Established ||
      s === State.CloseWait ||
      s === State.FinWait1 ||
      s === State.Closing ||
      s === State.LastAck ||
      (s === State.SynReceived && this.fastOpenListener !== null)
    );
  }

  /** A passive Fast Open child's SYN-ACK was acknowledged, or it closed: it leaves the listener's Fast Open queue. */
  leaveFastOpenQueue(): void {
    const q = this.fastOpenListener;
    if (!q) return;
    this.fastOpenListener = null;
    if (q.fastOpenPending > 0) q.fastOpenPending--;
  }

  /** Marks a passive child as the product of a connection (reads after close then report EOF, not ENOTCONN). */
  markConnected(): void {
    this.connectCalled = true;
  }

  /** Sends data that Nagle or corking held back (TCP_NODELAY set, TCP_CORK cleared). */
  push(): void {
    this.corkTimer?.cancel();
    if (!this.canTransmitData()) return;
    this.moreCork = false;
    this.snd.output();
    this.flushAck();
  }

  /** A packet-too-big / fragmentation-needed error lowered the path MTU (RFC 1191, RFC 8201). */
  onPathMtu(mtu: number): void {
    if (!this.route || mtu <= 0) return;
    const ipHeader = this.route.remoteAddress.length === 4 ? 20 : 40;
    if (this.state === State.SynSent) {
      // Linux's tcp_mtu_reduced before the handshake: later SYNs offer what the path allows, and a SYN whose
      // Fast Open data no longer fits goes again at once, plain (its data follows the handshake).
      const offer = mtu - ipHeader - 20;
      if (!this.offer || offer < 64 || offer >= this.offer.mss) return;
      this.offer.mss = offer;
      if (this.synDataLen > offer) {
        this.synRetransmitted = true;
        sendSyn(this, false);
      }
      return;
    }
    const mss = mtu - ipHeader - 20 - (this.tsOk ? TS_OPTION_LEN : 0);
    if (mss >= 64 && mss < this.snd.fullMss) {
      const before = this.snd.mss;
      this.snd.fullMss = mss;
      if (this.snd.mss >= before) return; // already bounded lower by the window
      // The segments in flight were too big: resend them at the new size (RFC 1191 §6.5).
      this.snd.nxt = this.snd.una;
      this.snd.output();
    }
  }

  /** Sends what is owed: data first (it carries the ACK), else a bare ACK when one is due now. */
  flushAck(): void {
    if (this.rcv.ackNow) {
      if (this.proto.rxMore) this.proto.deferAck(this);
      else if (this.rcv.replyMayCarry) this.proto.deferAckToTurn(this);
      else sendAck(this);
    } else if (this.rcv.unackedSegs > 0) this.rcv.delackTimer.ensure(this.proto.config.delayedAckMs);
  }

  /** The application read: reopen the window when it grew enough to be worth an update (RFC 9293 §3.8.6.2.2). */
  private afterRead(): void {
    if (this.state === State.Closed || this.state === State.SynSent || this.state === State.Listen) return;
    // Linux tcp_cleanup_rbuf: no window update once the receive side is shut (the peer's FIN, or SHUT_RD):
    // the peer sends nothing more, and may have closed already (an update would only earn a RST).
    if (this.rcvShut) {
      this.notify();
      return;
    }
    // Linux's tcp_cleanup_rbuf: a window update of its own only once at most half the window is left to the
    // peer and the read at least doubles it; smaller openings ride on the next ACK (a bulk receiver reading
    // after every burst would otherwise send an update per read on top of its ACKs). Half the largest window the
    // peer was ever offered, when that is less than the buffer: a SYN offers at most 64 KB unscaled, so with a
    // 128 KB buffer the first read of every connection, a request of a few bytes, sent an update of its own, a
    // frame before the reply that carries the same news (Linux's rcv_ssthresh keeps it quiet there).
    const rcv = this.rcv;
    const before = rcv.wnd;
    if (2 * before <= Math.min(rcv.limit, rcv.maxOffered)) {
      const now = Math.min(rcv.windowToAdvertise(this.snd.mss), rcv.updateCap);
      if (now > before && now >= 2 * before) {
        this.proto.clock.hold();
        try {
          sendAck(this);
        } finally {
          this.proto.clock.release();
        }
      }
    }
    this.notify();
  }

  /** Called by the sender when ACKs freed buffer space. */
  onSendSpace(): void {
    this.notify();
  }

  /** Queues the FIN (RFC 9293 §3.10.4 CLOSE in ESTABLISHED / CLOSE-WAIT). */
  closeSend(): void {
    if (this.sndShut) return;
    this.sndShut = true;
    switch (this.state) {
      case State.Established:
        this.setState(State.FinWait1);
        break;
      case State.CloseWait:
        this.setState(State.LastAck);
        break;
      case State.SynReceived:
        this.setState(State.FinWait1);
        break;
      case State.SynSent:
        this.terminate(undefined);
        return;
      default:
        return;
    }
    this.snd.finQueued = true;
    this.moreCork = false;
    this.snd.output();
    this.flushAck();
  }

  /** The retransmission timer fired (RFC 6298 §5.4–5.7). */
  onRetransmitTimeout(): void {
    const c = this.proto.config;
    const snd = this.snd;
    if (this.state === State.SynSent || this.state === State.SynReceived) {
      // Linux's tcp_write_timeout: SYN-SENT gets tcp_syn_linear_timeouts tries on top of its retries, but gives
      // up once the time the retries would take with doubling from 1 s has passed since the first SYN.
      const retries = this.synCount || c.synRetries;
      const limit = this.state === State.SynSent ? retries + c.synLinearTimeouts : c.synAckRetries;
      const outlived = this.state === State.SynSent && this.synRetries > 0 && this.clock.now() - this.stateSince >= synModelTimeout(retries);
      // Linux syn_ack_recalc: a deferred child that saw the bare ACK lives until the defer period ends, and is
      // sent no SYN-ACK until its last round, which gives the peer one more chance to send data or an ACK.
      const defer = this.parent?.deferAccept ?? 0;
      const acked = defer > 0 && this.deferAcked;
      if ((this.synRetries >= limit || outlived) && (!acked || this.synRetries >= defer)) {
        this.stats.timeouts++;
        this.fail(Err.TimedOut);
        return;
      }
      const resend = !acked || this.synRetries >= defer - 1;
      this.synRetries++;
      if (this.state === State.SynSent) this.synRetransmitted = true;
      // Linux's tcp_retransmit_timer: the first tcp_syn_linear_timeouts SYN retransmissions keep the RTO.
      if (this.state !== State.SynSent || this.synRetries > c.synLinearTimeouts) snd.rtt.backoff();
      if (resend) {
        sendSyn(this, this.state === State.SynReceived, this.state === State.SynReceived ? this.peerSynOptions : undefined);
      }
      snd.rtxTimer.set(snd.rtt.rto);
      return;
    }
    if (seq.sub(snd.max, snd.una) <= 0 || this.state === State.Closed) return;
    const now = this.clock.now();
    if (snd.timeouts === 0) snd.firstTimeoutAt = now;
    snd.timeouts++;
    const userExpired = this.userTimeout > 0 && now - snd.firstTimeoutAt >= this.userTimeout;
    // Linux's tcp_write_timeout: an orphan gives up after tcp_orphan_retries (0: 8 while the RTO can still grow).
    const retries = !this.orphaned ? c.retries2 : c.orphanRetries > 0 || snd.rtt.rto >= DEFAULT_RTO_MAX ? c.orphanRetries : 8;
    if (userExpired || (this.userTimeout === 0 && snd.timeouts > retries)) {
      this.fail(Err.TimedOut);
      return;
    }
    snd.onTimeout();
  }

  /** The peer's SYN options, kept to rebuild a retransmitted SYN-ACK; dropped once established. */
  peerSynOptions: TcpOptions | undefined;




  /** Enters TIME-WAIT for 2·MSL (RFC 9293 §3.10.7.4), keeping the 4-tuple in the demux table. */
  enterTimeWait(): void {
    // Linux's tcp_max_tw_buckets: beyond the limit the connection closes at once instead of lingering.
    if (this.proto.timeWaitCount >= this.proto.config.maxTimeWait) {
      this.proto.count('timeWaitOverflows');
      // The peer's FIN must still be acknowledged before the state is gone.
      sendAck(this);
      this.terminate(undefined);
      return;
    }
    this.setState(State.TimeWait);
    this.proto.timeWaitCount++;
    this.cancelTimers();
    this.rcvShut = true;
    this.sndShut = true;
    if (compactable(this)) {
      // The caller may still send the ACK of the peer's FIN from this endpoint; it is whole until it is garbage.
      // FIN-WAIT-2's timeout must not fire on it (nor keep it alive until then).
      this.closeState?.cancel();
      this.timeWaitMoved = true;
      this.compactTw = this.proto.compactTimeWait(this);
      return;
    }
    this.closeTimer.set(2 * this.proto.config.msl);
    this.notify();
  }

  /** Restarts the 2·MSL timer (a retransmitted FIN arrived in TIME-WAIT). */
  restartTimeWait(): void {
    this.closeTimer.set(2 * this.proto.config.msl);
  }

  private onCloseTimer(): void {
    if (this.state === State.TimeWait || this.state === State.FinWait2) this.terminate(undefined);
  }

  /** Entered FIN-WAIT-2: an orphan waits at most tcp_fin_timeout for the peer's FIN. */
  onFinWait2(): void {
    if (!this.orphaned) return;
    // Linux tcp_rcv_state_process: TCP_LINGER2 < 0 closes the orphan as soon as its FIN is acknowledged.
    if (this.linger2 < 0) this.terminate(undefined);
    else this.closeTimer.set(this.finTime());
  }

  /** Aborts with an error reported to the application (ETIMEDOUT, ECONNRESET, ECONNREFUSED). */
  fail(err: NetError): void {
    this.terminate(err);
  }

  /**
   * Enters CLOSED: stops timers, leaves the demux tables, releases the port, and records `err` for the
   * application (RFC 9293 §3.10.7: "delete the TCB").
   */
  terminate(err: NetError | undefined): void {
    if (err) this.softError = err;
    const wasSynReceived = this.state === State.SynReceived;
    if (!this.parent && (this.state === State.SynSent || wasSynReceived)) this.connectFailed = !this.orphaned;
    if (this.state === State.TimeWait && !this.timeWaitMoved) this.proto.timeWaitCount--;
    this.setState(State.Closed);
    this.cancelTimers();
    this.closeState?.cancel();
    this.rcvShut = true;
    this.sndShut = true;
    this.proto.charge(-(this.snd.buf.length + this.rcv.ooo.length));
    this.snd.buf.clear();
    if (this.zcState?.purge(this.orphaned)) this.waiter.notify(EventErr);
    this.tsState?.clear();
    this.rcv.ooo.clear();
    this.leaveFastOpenQueue();
    if (this.parent?.listener) {
      const q = this.parent.listener;
      q.synQueue.delete(this);
      // A connection that ends before accept() (reset, timed out) stays in the accept queue as on Linux: accept()
      // returns it, with what it received and its error. A half-open one vanishes.
      if (wasSynReceived && !q.acceptQueue.includes(this)) this.parent = null;
    }
    this.proto.unregister(this);
    if (this.reservedAddr) {
      this.proto.ports.release(PROTO_TCP, this.reservedAddr, this.localPort, this);
      this.reservedAddr = null;
    }
    if (this.heldPort) {
      this.proto.ports.release(PROTO_TCP, this.heldPort, this.localPort, this);
      this.heldPort = null;
    }
    this.notify();
  }

  private cancelTimers(): void {
    this.snd.rtxTimer.cancel();
    this.snd.persistTimer?.cancel();
    this.snd.tlpState?.cancel();
    this.snd.rackTimer?.cancel();
    this.rcv.delackState?.cancel();
    this.ka.cancel();
    this.corkTimer?.cancel();
  }

  /** Turns a user address into wire form for this family (unwrapping IPv4-mapped on IPv6 sockets). */
  private wireAddress(a: Address): Address | NetError {
    if (this.family === 4) return a.length === 4 ? a : Err.AddressFamilyNotSupported;
    if (a.length !== 16) return Err.AddressFamilyNotSupported;
    const u = unmapV4(a);
    if (u.length === 4 && this.v6only) return Err.NetworkUnreachable;
    return u;
  }

  /** Turns a wire address into what this socket's family reports (IPv4-mapped on IPv6 sockets). */
  private userAddress(a: Address): Address {
    return this.family === 6 && a.length === 4 ? mapV4(a) : a;
  }

  /** Whether this endpoint's local address matches `a` (wildcards match any address of the family). */
  matchesLocal(a: Address): boolean {
    const l = this.localAddr;
    if (!l) return false;
    if (isUnspecified(l)) {
      if (l.length === a.length) return true;
      return this.family === 6 && !this.v6only && a.length === 4;
    }
    return addressEqual(l, a);
  }
}

/**
 * How long `retries` SYN retransmissions take when the RTO doubles from 1 s up to TCP_RTO_MAX (Linux's
 * tcp_model_timeout for a SYN): connect() gives up after this long even if linear timeouts left tries unused.
 */
export function synModelTimeout(retries: number): number {
  const init = 1000;
  const doublings = Math.floor(Math.log2(DEFAULT_RTO_MAX / init));
  if (retries <= doublings) return ((2 << retries) - 1) * init;
  return ((2 << doublings) - 1) * init + (retries - doublings) * DEFAULT_RTO_MAX;
}

/** Linux clamps the backlog to [0, somaxconn]. */
function clampBacklog(backlog: number, max: number): number {
  return Math.max(0, Math.min(Math.trunc(backlog) || 0, max));
}
