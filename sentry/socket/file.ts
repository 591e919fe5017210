/**
 * `SocketFile`: one socket of the Sentry over a netstack Endpoint, with Linux semantics and Linux values in and
 * out (sockaddr bytes, option buffers, -errno). It knows nothing of fd numbers: the fd table (`SocketLayer`, or
 * the seccomp Sentry where the fd lives in the program) owns them, and passes O_NONBLOCK to each call that can
 * block, because it lives on the open file description (the Sentry reads it with F_GETFL on its dup of the
 * program's fd). A call that waits returns a Promise; its AbortSignal ends the wait before anything is consumed,
 * so an aborted accept dequeues no connection and an aborted recv no data.
 */
import type { Clock, Timer } from '../../netstack/clock.ts';
import { Err, type NetError, isError } from '../../netstack/errors.ts';
import type { Netstack } from '../../netstack/netstack.ts';
import { type Endpoint, type IpSendOptions, type SocketAddress, ShutdownRead, ShutdownWrite } from '../../netstack/socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp } from '../../netstack/waiter.ts';
import { LINUX as L, SOCKADDR_IN6_LEN, SOCKADDR_IN_LEN, decodeSockaddr, encodeSockaddr } from './abi.ts';
import type { MsgHdr, SysRet } from './api.ts';
import {
  type Cmsg,
  type ControlContext,
  type DatagramControl,
  Want,
  datagramControl,
  layOut,
  receiveControl,
  sendControl,
  stamp as stampCmsg,
  wantedControl,
} from './cmsg.ts';
import { type OptSpec, decodeTimeval, encodeLinger, encodeTcpInfo, encodeTimeval, lookupOption } from './sockopt.ts';

const EAGAIN = 11;
const EINTR = 4;
const EINVAL = 22;
const EAFNOSUPPORT = 97;
const ENOPROTOOPT = 92;
const EDOM = 33;
const EINPROGRESS = 115;
const EOPNOTSUPP = 95;
const ENODEV = 19;

/** SO_PEERCRED's optname (asm-generic/socket.h); not in LINUX because only the socket file answers it. */
export const SO_PEERCRED = 17;

/**
 * Options the file keeps itself when the Endpoint does not know them: glibc's resolver sets IP_RECVERR and
 * fails the lookup if refused. Datagram endpoints know IP_RECVERR and queue ICMP errors for it; on TCP it is
 * only accepted and reported back (MSG_ERRQUEUE reads find only MSG_ZEROCOPY completions there).
 */
const KEPT_BY_FILE = new Set(['IP_RECVERR', 'IPV6_RECVERR', 'TCP_INQ', 'SO_MARK']);

/**
 * Kept options whose value is an integer, not a flag: SO_MARK, the socket's 32-bit fwmark, which programs (and
 * upstream's packetdrill scripts) set and read back; the netstack has no policy routing for it to select.
 */
const KEPT_AS_INT = new Set(['SO_MARK']);

/** How often a lingering close() re-reads the TCP state besides waking on the endpoint's waiter (see lingerWait). */
const LINGER_POLL_MS = 200;

/** A value, -errno, or a Promise of either while the call waits. */
export type Blocking<T> = T | number | Promise<T | number>;

/** A connection taken from a listener's queue: its socket and the peer's address. */
export interface Accepted {
  readonly file: SocketFile;
  readonly peer: SocketAddress;
}

/** -errno of a stack error. */
/** The lengths of the iovecs `iov` from byte `skip` of their concatenation on (the part a write has yet to queue). */
function iovecsFrom(iov: readonly Uint8Array[], skip: number): number[] {
  const out: number[] = [];
  for (const b of iov) {
    const n = b.length - Math.min(skip, b.length);
    skip = Math.max(0, skip - b.length);
    if (n > 0) out.push(n);
  }
  return out;
}

function neg(e: NetError): number {
  return -e.errno;
}

/** A little-endian int as getsockopt writes it. */
function int32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

/**
 * Options getsockopt answers from the file, never from the Endpoint: what socket() was called with (asked of the
 * program's fd, the kernel would answer AF_UNIX for the pair), whether it listens, the pending error it hands out
 * once, and the timeouts of the file's own waits.
 */
const ANSWERED_BY_FILE = new Map<string, (f: SocketFile) => Uint8Array>([
  ['SO_TYPE', (f) => int32(f.type)],
  ['SO_DOMAIN', (f) => int32(f.domain)],
  ['SO_PROTOCOL', (f) => int32(f.protocol)],
  [
    'SO_ACCEPTCONN',
    (f) => {
      const v = f.type === L.SOCK_STREAM ? f.ep.getOption('SO_ACCEPTCONN') : 0;
      return int32(isError(v) ? 0 : Number(v));
    },
  ],
  ['SO_ERROR', (f) => int32(f.ep.takeError()?.errno ?? 0)],
  ['SO_RCVTIMEO', (f) => encodeTimeval(f.rcvTimeoMs)],
  ['SO_SNDTIMEO', (f) => encodeTimeval(f.sndTimeoMs)],
]);

/**
 * SO_LINGER's time in ms when it is on with a positive time (Linux's sk_lingertime), Infinity when it was set
 * negative (MAX_SCHEDULE_TIMEOUT), else 0.
 */
function lingerTimeMs(ep: Endpoint): number {
  const v = ep.getOption('SO_LINGER');
  if (isError(v) || typeof v !== 'object' || v instanceof Uint8Array) return 0;
  const secs = Number(v['linger'] ?? 0);
  return v['onoff'] && secs > 0 ? secs * 1000 : 0;
}

/** The TCP state by Linux's number (TCP_INFO's tcpi_state), or undefined. */
function tcpState(ep: Endpoint): number | undefined {
  const info = ep.getOption('TCP_INFO');
  if (isError(info) || typeof info !== 'object' || info instanceof Uint8Array) return undefined;
  return Number(info['tcpi_state']);
}

/** Linux's sk_stream_closing: the TCP state is FIN-WAIT-1, CLOSING or LAST-ACK (our FIN not yet acknowledged). */
function tcpClosing(ep: Endpoint): boolean {
  const s = tcpState(ep);
  return s === L.TCP_FIN_WAIT1 || s === L.TCP_CLOSING || s === L.TCP_LAST_ACK;
}

/** One socket: its Endpoint, its socket(2) triple, and the per-file options the Endpoint does not keep. */
export class SocketFile {
  /** SO_RCVTIMEO / SO_SNDTIMEO in ms; 0 waits forever. */
  rcvTimeoMs = 0;
  sndTimeoMs = 0;
  /** The stack's NICs (ids and names), for SO_BINDTODEVICE's interface names; none for a file made without one. */
  private nics: () => readonly { readonly id: number; readonly name: string }[] = () => [];
  /** Values of KEPT_BY_FILE options the Endpoint refused. */
  private readonly kept = new Map<string, number>();
  /** The receive control messages the options ask for (cmsg.ts Want bits), read again after a setsockopt. */
  private wants: number | undefined;

  constructor(
    readonly ep: Endpoint,
    /** AF_INET or AF_INET6. */
    readonly domain: number,
    /** SOCK_STREAM or SOCK_DGRAM (flags stripped). */
    readonly type: number,
    readonly protocol: number,
    private readonly clock: Clock,
    /**
     * CLOCK_REALTIME (ms) of an instant on the stack's clock, for SCM_TIMESTAMPING and SO_TIMESTAMP*: to the
     * microsecond (Date.now() has only milliseconds, too coarse for SO_TIMESTAMPNS).
     */
    private readonly wallTime: (stackMs: number) => number = (ms) => performance.timeOrigin + performance.now() - (clock.now() - ms),
  ) {}

  /**
   * socket(2): a new file over a new Endpoint of `netstack`, or -errno as Linux answers for bad arguments.
   * `type` may carry SOCK_NONBLOCK and SOCK_CLOEXEC; they are the caller's (fd flags), not the file's.
   */
  static open(netstack: Netstack, clock: Clock, domain: number, type: number, protocol: number, wallTime?: (stackMs: number) => number): SocketFile | number {
    const base = type & 0xf;
    if (type & ~(0xf | L.SOCK_NONBLOCK | L.SOCK_CLOEXEC)) return -EINVAL;
    if (domain !== L.AF_INET && domain !== L.AF_INET6) return -EAFNOSUPPORT;
    const kind = base === L.SOCK_STREAM ? 'stream' : base === L.SOCK_DGRAM ? 'dgram' : base === L.SOCK_RAW ? 'raw' : undefined;
    if (!kind) return -EINVAL;
    const ep = netstack.socket(domain === L.AF_INET ? 4 : 6, kind, protocol);
    if (isError(ep)) return neg(ep);
    const file = new SocketFile(ep, domain, base, protocol || ep.protocol, clock, wallTime);
    file.nics = () => netstack.stack.nics();
    return file;
  }

  /** A file of this socket's kind over `ep` (a connection accepted from this listener). */
  sibling(ep: Endpoint): SocketFile {
    const file = new SocketFile(ep, this.domain, this.type, this.protocol, this.clock, this.wallTime);
    file.nics = this.nics;
    return file;
  }

  /** A sockaddr from the program as an Endpoint address, or -errno (EINVAL short, EAFNOSUPPORT wrong family). */
  toAddress(b: Uint8Array): SocketAddress | number {
    const sa = decodeSockaddr(b);
    if (sa === 'short') return -EINVAL;
    if (sa === 'family') return -EAFNOSUPPORT;
    if (sa.family !== this.domain) {
      return this.domain === L.AF_INET && sa.family === L.AF_INET6 ? -EAFNOSUPPORT : sa.family === L.AF_UNSPEC ? -EAFNOSUPPORT : -EINVAL;
    }
    if (this.domain === L.AF_INET && b.length < 16) return -EINVAL;
    return { address: sa.address, port: sa.port, nicId: sa.scopeId || undefined };
  }

  /** An Endpoint address as this socket's sockaddr bytes (IPv4 peers of an AF_INET6 socket come back v4-mapped). */
  sockaddr(a: SocketAddress): Uint8Array {
    let address = a.address;
    if (this.domain === L.AF_INET6 && address.length === 4) {
      address = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...address]);
    }
    return encodeSockaddr({ family: this.domain, address, port: a.port, scopeId: a.nicId });
  }

  /** Writes `a` into `out` truncated to addrlen[0] (in), and the full length into addrlen[0] (out), as Linux does. */
  writeAddress(a: SocketAddress, out: Uint8Array | null, outLen: Uint32Array | null): void {
    if (!out || !outLen) return;
    const enc = this.sockaddr(a);
    out.set(enc.subarray(0, Math.min(enc.length, outLen[0]!, out.length)));
    outLen[0] = enc.length;
  }

  /**
   * Tries `attempt` now; when it reports EAGAIN and the call may block, waits for `mask` on the endpoint (with
   * the timeout, after which `onTimeout` is the answer, as Linux's SO_RCVTIMEO gives EAGAIN) and tries again.
   * An abort ends the wait with -EINTR and no further attempt.
   */
  private blockable<T>(
    nonblock: boolean,
    mask: number,
    timeoutMs: number,
    attempt: () => T | number,
    signal?: AbortSignal,
    onTimeout: () => T | number = () => -EAGAIN,
  ): Blocking<T> {
    if (signal?.aborted) return -EINTR;
    const first = attempt();
    if (first !== -EAGAIN || nonblock) return first;
    return new Promise<T | number>((resolve) => {
      let done = false;
      const finish = (r: T | number) => {
        if (done) return;
        done = true;
        unsubscribe();
        timer?.cancel();
        signal?.removeEventListener('abort', onAbort);
        resolve(r);
      };
      const onAbort = () => finish(-EINTR);
      const retry = () => {
        if (done || signal?.aborted) return;
        const r = attempt();
        if (r !== -EAGAIN) finish(r);
      };
      const unsubscribe = this.ep.waiter.subscribe(mask | EventErr | EventHUp, retry);
      const timer = timeoutMs > 0 ? this.clock.schedule(timeoutMs, () => finish(onTimeout())) : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      // Readiness may have arrived between the attempt and the subscription.
      retry();
    });
  }

  bind(addr: Uint8Array): number {
    const a = this.toAddress(addr);
    if (typeof a === 'number') return a;
    const e = this.ep.bind(a);
    return e ? neg(e) : 0;
  }

  listen(backlog: number): number {
    const e = this.ep.listen(backlog);
    return e ? neg(e) : 0;
  }

  /**
   * connect(2). A blocking connect waits for the handshake's outcome and consumes its error (Linux's sock_error);
   * SO_SNDTIMEO ends the wait with EINPROGRESS. An abort stops only the wait: the handshake goes on, as after an
   * interrupted connect on Linux.
   */
  connect(addr: Uint8Array, nonblock: boolean, signal?: AbortSignal): SysRet {
    const sa = decodeSockaddr(addr);
    if (sa !== 'short' && sa !== 'family' && sa.family === L.AF_UNSPEC) {
      const e = this.ep.disconnect();
      return e ? neg(e) : 0;
    }
    const a = this.toAddress(addr);
    if (typeof a === 'number') return a;
    const e = this.ep.connect(a);
    if (!e) return 0;
    // A blocking connect on a socket already connecting waits for that handshake, as Linux's
    // inet_stream_connect does: it is how a connect interrupted by a signal and restarted (SA_RESTART) ends.
    if ((e !== Err.ConnectStarted && e !== Err.AlreadyConnecting) || nonblock) return neg(e);
    return this.connectWait(signal);
  }

  /** Resolves with the outcome of a connect in progress: 0, -errno, -EINPROGRESS (SO_SNDTIMEO) or -EINTR (abort). */
  connectWait(signal?: AbortSignal): Promise<number> {
    return new Promise<number>((resolve) => {
      let done = false;
      const finish = (r: number) => {
        if (done) return;
        done = true;
        unsubscribe();
        timer?.cancel();
        signal?.removeEventListener('abort', onAbort);
        resolve(r);
      };
      const check = () => {
        if (done) return;
        if (!this.ep.readiness(EventOut | EventErr | EventHUp)) return;
        const err = this.ep.takeError();
        // Linux's __inet_stream_connect, when the handshake it waited for fails: the socket is unconnected again
        // (tcp_disconnect), so a second connect() makes a new attempt instead of reporting ECONNABORTED.
        finish(err ? neg(err) : 0);
        if (err) this.ep.disconnect();
      };
      const onAbort = () => finish(-EINTR);
      const unsubscribe = this.ep.waiter.subscribe(EventOut | EventErr | EventHUp, check);
      const timer = this.sndTimeoMs > 0 ? this.clock.schedule(this.sndTimeoMs, () => finish(-EINPROGRESS)) : undefined;
      if (signal?.aborted) return finish(-EINTR);
      signal?.addEventListener('abort', onAbort, { once: true });
      check();
    });
  }

  /** accept(2) on a listener: the new connection's file and peer, waiting (SO_RCVTIMEO) unless `nonblock`. */
  accept(nonblock: boolean, signal?: AbortSignal): Blocking<Accepted> {
    return this.blockable<Accepted>(nonblock, EventIn, this.rcvTimeoMs, () => {
      const r = this.ep.accept();
      if (isError(r)) return neg(r);
      return { file: this.sibling(r.endpoint), peer: r.peer };
    }, signal);
  }

  /** recvmsg(2) into msg.iov; msg.name/namelen/flags receive the source and MSG_TRUNC. */
  recvmsg(msg: MsgHdr, flags: number, nonblockFd: boolean, signal?: AbortSignal): SysRet {
    if (flags & L.MSG_ERRQUEUE) return this.recvErrQueue(msg);
    const total = msg.iov.reduce((n, b) => n + b.length, 0);
    const peek = (flags & L.MSG_PEEK) !== 0;
    const stream = this.type === L.SOCK_STREAM;
    const nonblock = nonblockFd || (flags & L.MSG_DONTWAIT) !== 0;
    const scatter = (data: Uint8Array, at: number) => {
      let off = 0;
      let skip = at;
      for (const b of msg.iov) {
        if (skip >= b.length) {
          skip -= b.length;
          continue;
        }
        const n = Math.min(b.length - skip, data.length - off);
        if (n <= 0) break;
        b.set(data.subarray(off, off + n), skip);
        off += n;
        skip = 0;
      }
    };
    let got = 0;
    const attempt = (): number => {
      const r = this.ep.read({ peek, maxBytes: total - got });
      if (isError(r)) {
        if (r === Err.ClosedForReceive) return got;
        if (r === Err.WouldBlock) return got > 0 && !(flags & L.MSG_WAITALL) ? got : -EAGAIN;
        return got > 0 ? got : neg(r);
      }
      if (stream) {
        if (r.data.length === 0) return got; // end of stream
        scatter(r.data, got);
        got += r.data.length;
        if (flags & L.MSG_WAITALL && !peek && got < total && !nonblock) return -EAGAIN;
        return got;
      }
      scatter(r.data, 0);
      const size = r.size ?? r.data.length;
      if (size > r.data.length) msg.flags |= L.MSG_TRUNC;
      if (r.from && msg.name) {
        const len = new Uint32Array([msg.name.length]);
        this.writeAddress(r.from, msg.name, len);
        msg.namelen = len[0]!;
      } else msg.namelen = 0;
      const d = datagramControl(r);
      if (d) this.putControl(msg, d);
      return flags & L.MSG_TRUNC ? size : r.data.length;
    };
    if (stream) msg.namelen = 0;
    msg.controllen = 0;
    const done = (r: number): number => {
      if (r >= 0 && stream && this.kept.get('TCP_INQ')) this.putInq(msg);
      return r;
    };
    const first = attempt();
    if (first !== -EAGAIN || nonblock) return done(first === -EAGAIN && got > 0 ? got : first);
    const r = this.blockable(false, EventIn | EventRdHUp, this.rcvTimeoMs, attempt, signal, () => (got > 0 ? got : -EAGAIN));
    return typeof r === 'number' ? done(r) : r.then(done);
  }

  /** The receive control messages this socket's options ask for (cmsg.ts Want bits; 0 for none). */
  wantedControl(): number {
    return (this.wants ??= wantedControl(this.ep));
  }

  /** What cmsg.ts needs of this socket to build its control messages. */
  get controlContext(): ControlContext {
    const local = this.ep.localAddress();
    const port = this.protocol === L.IPPROTO_UDP && !isError(local) ? local.port : undefined;
    return { domain: this.domain, port, wallTime: this.wallTime };
  }

  /** The control messages a datagram with `d` brings to this socket's recvmsg (none unless asked for). */
  controlMessages(d: DatagramControl): Cmsg[] {
    const w = this.wantedControl();
    return w ? receiveControl(w, this.controlContext, d) : [];
  }

  /** Lays a datagram's control messages into msg.control (MSG_CTRUNC when it is short), as recvmsg does. */
  private putControl(msg: MsgHdr, d: DatagramControl): void {
    const msgs = this.controlMessages(d);
    if (msgs.length === 0) return;
    const out = layOut(msg.control ?? new Uint8Array(0), msgs);
    if (out.truncated) msg.flags |= L.MSG_CTRUNC;
    msg.controllen = out.used;
  }

  /**
   * recvmsg(MSG_ERRQUEUE), as Linux's ip_recv_error / ipv6_recv_error: the oldest error-queue entry as one
   * IP_RECVERR (SOL_IP) or IPV6_RECVERR (SOL_IPV6) control message by the socket's family, holding the
   * sock_extended_err and the offender's sockaddr (an ICMP error's sender, port 0; all zero, AF_UNSPEC, for a
   * zerocopy completion, which has none); an ICMP error's quoted payload as the data (MSG_TRUNC beyond the
   * buffers) and the destination it was sent to as msg_name; MSG_ERRQUEUE in msg_flags. An empty queue answers
   * EAGAIN at once, blocking socket or not. A control buffer too short gets MSG_CTRUNC and the part that fits
   * (put_cmsg).
   */
  private recvErrQueue(msg: MsgHdr): number {
    const ee = this.ep.takeQueuedError?.();
    if (!ee) return -EAGAIN;
    // A transmit timestamp report: sock_recv_timestamp's SCM_TIMESTAMPING (struct scm_timestamping, the software
    // stamp in ts[0]) comes before the IP_RECVERR; the packet it loops back is not kept, only its length, so the
    // call copies nothing and says MSG_TRUNC when that packet would not have fitted the buffers.
    let stamp: Uint8Array | undefined;
    if (ee.timestamp !== undefined || ee.looped !== undefined) {
      stamp = new Uint8Array(48);
      const sv = new DataView(stamp.buffer);
      if (ee.timestamp !== undefined) {
        const wall = this.wallTime(ee.timestamp);
        const sec = Math.floor(wall / 1000);
        sv.setBigInt64(0, BigInt(sec), true);
        sv.setBigInt64(8, BigInt(Math.round((wall - sec * 1000) * 1e6)), true);
      }
      const room = msg.iov.reduce((n, b) => n + b.length, 0);
      if ((ee.looped ?? 0) > room) msg.flags |= L.MSG_TRUNC;
    }
    const v6 = this.domain === L.AF_INET6;
    const body = new Uint8Array(16 + (v6 ? SOCKADDR_IN6_LEN : SOCKADDR_IN_LEN));
    const bv = new DataView(body.buffer);
    bv.setUint32(0, ee.errno, true);
    body[4] = ee.origin;
    body[5] = ee.type;
    body[6] = ee.code;
    bv.setUint32(8, ee.info >>> 0, true);
    bv.setUint32(12, ee.data >>> 0, true);
    if (ee.offender) body.set(this.sockaddr(ee.offender).subarray(0, body.length - 16), 16);
    msg.namelen = 0;
    if (ee.dest && msg.name) {
      const len = new Uint32Array([msg.name.length]);
      this.writeAddress(ee.dest, msg.name, len);
      msg.namelen = len[0]!;
    }
    let copied = 0;
    if (ee.payload) {
      for (const b of msg.iov) {
        const n = Math.min(b.length, ee.payload.length - copied);
        if (n <= 0) break;
        b.set(ee.payload.subarray(copied, copied + n));
        copied += n;
      }
      if (copied < ee.payload.length) msg.flags |= L.MSG_TRUNC;
    }
    msg.flags |= L.MSG_ERRQUEUE;
    const msgs: Cmsg[] = [{ level: v6 ? L.SOL_IPV6 : L.SOL_IP, type: v6 ? L.IPV6_RECVERR : L.IP_RECVERR, data: body }];
    if (stamp) msgs.unshift({ level: L.SOL_SOCKET, type: L.SCM_TIMESTAMPING, data: stamp });
    // sock_recv_timestamp: an ICMP error carries its arrival as any datagram does, for SO_TIMESTAMP and kin.
    const w = this.wantedControl();
    if (ee.arrival !== undefined && w & Want.STAMP) msgs.unshift(stampCmsg(this.wallTime(ee.arrival), w));
    const out = layOut(msg.control ?? new Uint8Array(0), msgs);
    if (out.truncated) msg.flags |= L.MSG_CTRUNC;
    msg.controllen = out.used;
    return copied;
  }

  /**
   * The TCP_CM_INQ control message a TCP_INQ socket's recvmsg carries (Linux tcp_inq_hint): the bytes left to
   * read, or 1 when none are left but the peer's FIN came, so that the reader goes on to read the end of stream.
   * A control buffer too short for it gets MSG_CTRUNC, as put_cmsg gives.
   */
  private putInq(msg: MsgHdr): void {
    if (!msg.control) return;
    let inq = this.ep.inQueue();
    if (inq === 0 && this.ep.readiness(EventRdHUp) & EventRdHUp) inq = 1;
    const out = layOut(msg.control, [{ level: L.SOL_TCP, type: L.TCP_CM_INQ, data: int32(inq) }]);
    if (out.truncated) msg.flags |= L.MSG_CTRUNC;
    msg.controllen = out.used;
  }

  /** sendmsg(2) of msg.iov, to msg.name when given; a blocking stream send returns once everything is queued. */
  sendmsg(msg: MsgHdr, flags: number, nonblockFd: boolean, signal?: AbortSignal): SysRet {
    let to: SocketAddress | undefined;
    let fastOpen = (flags & L.MSG_FASTOPEN) !== 0 && this.type === L.SOCK_STREAM;
    // The first write after a deferred TCP_FASTOPEN_CONNECT connect() sends the SYN, as MSG_FASTOPEN does.
    // (Such a socket alone is writable in SYN-SENT, tcp_poll.)
    if (
      !fastOpen &&
      this.type === L.SOCK_STREAM &&
      this.ep.getOption('TCP_FASTOPEN_CONNECT') === 1 &&
      tcpState(this.ep) === L.TCP_SYN_SENT &&
      this.ep.readiness(EventOut) !== 0
    ) {
      fastOpen = true;
    }
    if (msg.name && msg.name.length) {
      // Linux's tcp_sendmsg_fastopen refuses AF_UNSPEC (which connect() takes as a disconnect).
      if (fastOpen && msg.name.length >= 2 && (msg.name[0]! | (msg.name[1]! << 8)) === L.AF_UNSPEC) return -EOPNOTSUPP;
      const a = this.toAddress(msg.name);
      if (typeof a === 'number') return a;
      to = a;
    }
    // A datagram's own TTL, TOS and source from its control messages (the IP levels only; the rest as before).
    let ip: IpSendOptions | undefined;
    if (msg.control && msg.control.length > 0 && this.type !== L.SOCK_STREAM) {
      const r = sendControl(msg.control, this.sendsV4(to));
      if (typeof r === 'number') return r;
      ip = r;
    }
    const total = msg.iov.reduce((n, b) => n + b.length, 0);
    // Gathered into a copy of ours: the caller's buffers may change once the call has returned.
    const data = new Uint8Array(total);
    let off = 0;
    for (const b of msg.iov) {
      data.set(b, off);
      off += b.length;
    }
    const nonblock = nonblockFd || (flags & L.MSG_DONTWAIT) !== 0;
    const more = (flags & L.MSG_MORE) !== 0;
    const eor = (flags & L.MSG_EOR) !== 0 && this.type === L.SOCK_STREAM;
    // MSG_ZEROCOPY: the call's first write that queues bytes takes a completion id, later ones join it.
    const zeroCopy = (flags & L.MSG_ZEROCOPY) !== 0 && this.type === L.SOCK_STREAM;
    let sent = 0;
    // A Fast Open send that opened the connection: a blocking one waits for the handshake (Linux's
    // __inet_stream_connect) and then reports its outcome, not the bytes the SYN carried.
    let connecting = false;
    const attempt = (): number => {
      if (connecting) {
        if (!this.ep.readiness(EventOut | EventErr | EventHUp)) return -EAGAIN;
        connecting = false;
        const err = this.ep.takeError();
        if (err) return neg(err);
      }
      const frags = zeroCopy ? iovecsFrom(msg.iov, sent) : undefined;
      const r = this.ep.write(data.subarray(sent), { to, more, eor, fastOpen, zeroCopy: zeroCopy ? (sent > 0 ? 'extend' : 'new') : undefined, frags, ip });
      if (fastOpen) {
        fastOpen = false;
        const opened = r === Err.ConnectStarted || (typeof r === 'number' && tcpState(this.ep) === L.TCP_SYN_SENT);
        if (opened || (r === Err.AlreadyConnecting && !nonblock)) {
          if (typeof r === 'number') sent += r;
          if (nonblock) return sent > 0 ? sent : -EINPROGRESS;
          connecting = true;
          return -EAGAIN;
        }
      }
      if (isError(r)) {
        if (r === Err.WouldBlock) return sent > 0 && nonblock ? sent : -EAGAIN;
        return sent > 0 ? sent : neg(r);
      }
      sent += r;
      // A blocking stream send returns only when everything is queued (Linux's sk_stream_wait_memory loop).
      if (this.type === L.SOCK_STREAM && sent < total && !nonblock) return -EAGAIN;
      return sent;
    };
    const first = attempt();
    if (first !== -EAGAIN || nonblock) return first;
    return this.blockable(false, EventOut, this.sndTimeoMs, attempt, signal, () => (sent > 0 ? sent : -EAGAIN));
  }

  /** Whether a send to `to` (or to the connected peer) goes to an IPv4 destination: IP_* control messages apply. */
  private sendsV4(to: SocketAddress | undefined): boolean {
    if (this.domain === L.AF_INET) return true;
    const peer = to ?? this.ep.remoteAddress();
    if (isError(peer)) return false;
    const a = peer.address;
    return a.length === 4 || (a.length === 16 && a.subarray(0, 10).every((x) => x === 0) && a[10] === 0xff && a[11] === 0xff);
  }

  shutdown(how: number): number {
    const bits = how === L.SHUT_RD ? ShutdownRead : how === L.SHUT_WR ? ShutdownWrite : how === L.SHUT_RDWR ? ShutdownRead | ShutdownWrite : 0;
    if (!bits) return -EINVAL;
    const e = this.ep.shutdown(bits);
    return e ? neg(e) : 0;
  }

  /**
   * Releases the endpoint; a TCP socket with SO_LINGER on and a positive time then waits, as Linux's inet_release
   * and sk_stream_wait_close do, until the connection has left FIN-WAIT-1, CLOSING and LAST-ACK (all queued data
   * and the FIN acknowledged, or the connection reset or timed out) or the linger time passed, and returns 0
   * either way. A linger time set negative waits with no time limit (MAX_SCHEDULE_TIMEOUT). O_NONBLOCK does not
   * shorten the wait (Linux passes sk_lingertime to tcp_close whatever the file flags are).
   */
  close(): SysRet {
    const lingerMs = this.type === L.SOCK_STREAM ? lingerTimeMs(this.ep) : 0;
    this.ep.close();
    if (lingerMs <= 0 || !tcpClosing(this.ep)) return 0;
    return this.lingerWait(lingerMs);
  }

  /** Resolves 0 once the endpoint is no longer closing (tcpClosing) or after `ms` (never for Infinity). */
  private lingerWait(ms: number): Promise<number> {
    const ep = this.ep;
    return new Promise<number>((resolve) => {
      let done = false;
      let queued = false;
      let poll: Timer | undefined;
      const finish = () => {
        if (done) return;
        done = true;
        unsubscribe();
        deadline?.cancel();
        poll?.cancel();
        resolve(0);
      };
      const check = () => {
        if (!tcpClosing(ep)) finish();
      };
      // The TCP endpoint notifies when an ACK frees send space but moves FIN-WAIT-1 → FIN-WAIT-2 only after that
      // notification, in the same segment's processing: look at the state once that processing has finished.
      const unsubscribe = ep.waiter.subscribe(~0, () => {
        if (queued || done) return;
        queued = true;
        void Promise.resolve().then(() => {
          queued = false;
          check();
        });
      });
      const deadline = ms === Infinity ? undefined : this.clock.schedule(ms, finish);
      // Entering FIN-WAIT-2 (unlike CLOSED or TIME-WAIT) notifies no waiter, so the wake-up above rests on the
      // order of the endpoint's internals; a coarse poll bounds how late close() can return if that order changes.
      const tick = () => {
        check();
        if (!done) poll = this.clock.schedule(LINGER_POLL_MS, tick);
      };
      poll = this.clock.schedule(LINGER_POLL_MS, tick);
    });
  }

  getsockname(addr: Uint8Array, addrlen: Uint32Array): number {
    const a = this.ep.localAddress();
    if (isError(a)) return neg(a);
    this.writeAddress(a, addr, addrlen);
    return 0;
  }

  getpeername(addr: Uint8Array, addrlen: Uint32Array): number {
    const a = this.ep.remoteAddress();
    if (isError(a)) return neg(a);
    this.writeAddress(a, addr, addrlen);
    return 0;
  }

  /** Whether SO_LINGER is on with time 0: close() then resets the connection instead of a FIN. */
  lingerAbort(): boolean {
    const v = this.ep.getOption('SO_LINGER');
    if (isError(v) || typeof v !== 'object' || v instanceof Uint8Array) return false;
    return !!v['onoff'] && Number(v['linger'] ?? 0) === 0;
  }

  /** An option the Endpoint holds (or the file keeps for it), as getsockopt writes it; or -errno. */
  private endpointOption(spec: OptSpec): Uint8Array | number {
    const v = this.ep.getOption(spec.name);
    if (isError(v)) return KEPT_BY_FILE.has(spec.name) ? int32(this.kept.get(spec.name) ?? 0) : neg(v);
    if (spec.kind === 'linger') {
      const o = v as { onoff?: number | boolean; linger?: number };
      return encodeLinger(!!o.onoff, Number(o.linger ?? 0));
    }
    if (spec.kind === 'tcpinfo') return encodeTcpInfo(v as { [k: string]: number | boolean });
    if (spec.name === 'SO_BINDTODEVICE') {
      // The interface's name and its NUL, or nothing when the socket is bound to none (sock_getbindtodevice).
      const name = this.nics().find((n) => n.id === Number(v))?.name;
      return name ? new TextEncoder().encode(`${name}\0`) : new Uint8Array(0);
    }
    if (spec.kind === 'string') {
      return typeof v === 'string' ? new TextEncoder().encode(v + '\0') : v instanceof Uint8Array ? v : new Uint8Array(0);
    }
    if (spec.kind === 'bytes') return v instanceof Uint8Array ? v : new Uint8Array(0);
    return int32(Number(v));
  }

  /** getsockopt(2): optlen[0] in: buffer size, out: bytes written. */
  getsockopt(level: number, name: number, optval: Uint8Array, optlen: Uint32Array): number {
    const lvl = level === L.SOL_TCP ? L.IPPROTO_TCP : level;
    if (optlen[0]! > 0x7fffffff) return -EINVAL;
    let bytes: Uint8Array;
    if (this.unknownLevel(lvl)) return -EOPNOTSUPP;
    if (lvl === L.SOL_SOCKET && name === SO_PEERCRED) {
      // An INET socket has no peer credentials: Linux's cred_to_ucred of none gives pid 0, uid and gid -1.
      bytes = new Uint8Array([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    } else {
      const spec = lookupOption(lvl, name);
      if (!spec) return -ENOPROTOOPT;
      const own = ANSWERED_BY_FILE.get(spec.name);
      const r = own ? own(this) : this.endpointOption(spec);
      if (typeof r === 'number') return r;
      bytes = r;
    }
    const n = Math.min(bytes.length, optlen[0]!, optval.length);
    optval.set(bytes.subarray(0, n));
    optlen[0] = n;
    return 0;
  }

  /**
   * Whether getsockopt at `level` falls through to Linux's do_ip_getsockopt on this socket and is EOPNOTSUPP there:
   * an IPv4 socket's level that is not SOL_SOCKET, SOL_IP or its own (TCP's, UDP's, a raw socket's SOL_RAW; a ping
   * socket has none). IPv6 sockets answer ENOPROTOOPT (ipv6_getsockopt).
   */
  private unknownLevel(level: number): boolean {
    if (this.domain !== L.AF_INET || level === L.SOL_SOCKET || level === L.IPPROTO_IP) return false;
    const own = this.type === L.SOCK_STREAM ? L.IPPROTO_TCP : this.type === L.SOCK_RAW ? L.SOL_RAW : this.protocol === L.IPPROTO_UDP ? L.IPPROTO_UDP : -1;
    return level !== own;
  }

  /** setsockopt(2). */
  setsockopt(level: number, name: number, optval: Uint8Array): number {
    const lvl = level === L.SOL_TCP ? L.IPPROTO_TCP : level;
    const spec = lookupOption(lvl, name);
    if (!spec) return -ENOPROTOOPT;
    const v = new DataView(optval.buffer, optval.byteOffset, optval.byteLength);
    if (spec.kind === 'timeval') {
      const ms = decodeTimeval(optval);
      if (optval.length < 16) return -EINVAL;
      if (ms === undefined) return -EDOM;
      if (spec.name === 'SO_RCVTIMEO') this.rcvTimeoMs = ms;
      else this.sndTimeoMs = ms;
      return 0;
    }
    let value: number | string | Uint8Array | { [k: string]: number | boolean };
    if (spec.kind === 'linger') {
      if (optval.length < 8) return -EINVAL;
      value = { onoff: v.getInt32(0, true) !== 0, linger: v.getInt32(4, true) };
    } else if (spec.kind === 'string') {
      const z = optval.indexOf(0);
      value = new TextDecoder().decode(z < 0 ? optval : optval.subarray(0, z));
      if (spec.name === 'SO_BINDTODEVICE') {
        // Linux's sock_setbindtodevice: an interface name (at most IFNAMSIZ - 1 bytes), "" to unbind; the
        // Endpoint takes its NIC id.
        if (value.length >= 16) return -EINVAL;
        const nic = value === '' ? 0 : this.nics().find((n) => n.name === value)?.id;
        if (nic === undefined) return -ENODEV;
        value = nic;
      }
    } else if (spec.kind === 'tcpinfo') {
      return -ENOPROTOOPT;
    } else if (spec.kind === 'bytes') {
      value = optval.slice();
    } else {
      // Linux reads an int, or a single byte for some IP options when optlen < 4.
      if (optval.length >= 4) value = v.getInt32(0, true);
      else if (optval.length >= 1 && lvl === L.IPPROTO_IP) value = optval[0]!;
      else return -EINVAL;
    }
    const e = this.ep.setOption(spec.name, value);
    this.wants = undefined;
    if (e === Err.ProtocolNotAvailable && KEPT_BY_FILE.has(spec.name) && typeof value === 'number') {
      this.kept.set(spec.name, KEPT_AS_INT.has(spec.name) ? value | 0 : value ? 1 : 0);
      return 0;
    }
    return e ? neg(e) : 0;
  }
}
