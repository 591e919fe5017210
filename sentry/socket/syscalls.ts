/**
 * The Sentry's socket system calls over netstack Endpoints, with Linux semantics: an fd table (lowest free fd
 * from 3, O_NONBLOCK and FD_CLOEXEC per fd, SO_RCVTIMEO/SO_SNDTIMEO), syscall-shaped operations taking and
 * returning Linux values, and errno from the one table in netstack/errors.ts. Non-blocking calls answer
 * synchronously (but close() lingers even on O_NONBLOCK, as on Linux); a blocking call that cannot complete
 * returns a Promise that waits on the endpoint's WaiterQueue (and on the stack's clock for timeouts) and retries
 * when the endpoint becomes ready.
 */
import type { Clock, Timer } from '../../netstack/clock.ts';
import { Err, type NetError, isError } from '../../netstack/errors.ts';
import type { Netstack } from '../../netstack/netstack.ts';
import { type Endpoint, type SocketAddress, ShutdownRead, ShutdownWrite } from '../../netstack/socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp } from '../../netstack/waiter.ts';
import { LINUX as L, decodeSockaddr, encodeSockaddr } from './abi.ts';
import type { EpollEvent, MsgHdr, PollFd, SocketSyscalls, SysRet } from './api.ts';
import { decodeTimeval, encodeLinger, encodeTcpInfo, encodeTimeval, lookupOption } from './sockopt.ts';

const EAGAIN = 11;
const EBADF = 9;
const EINVAL = 22;
const ENOTSOCK = 88;
const EAFNOSUPPORT = 97;
const ENOPROTOOPT = 92;
const EFAULT = 14;
const EEXIST = 17;
const ENOENT = 2;
const EDOM = 33;
const EINPROGRESS = 115;

/** How often a lingering close() re-reads the TCP state besides waking on the endpoint's waiter (see lingerWait). */
const LINGER_POLL_MS = 200;

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

/** Linux's sk_stream_closing: the TCP state is FIN-WAIT-1, CLOSING or LAST-ACK (our FIN not yet acknowledged). */
function tcpClosing(ep: Endpoint): boolean {
  const info = ep.getOption('TCP_INFO');
  if (isError(info) || typeof info !== 'object' || info instanceof Uint8Array) return false;
  const s = info['tcpi_state'];
  return s === L.TCP_FIN_WAIT1 || s === L.TCP_CLOSING || s === L.TCP_LAST_ACK;
}

/** An open socket in the fd table. */
interface SocketFile {
  readonly kind: 'socket';
  readonly ep: Endpoint;
  readonly domain: number;
  readonly type: number;
  readonly protocol: number;
  nonblock: boolean;
  cloexec: boolean;
  /** SO_RCVTIMEO / SO_SNDTIMEO in ms; 0 waits forever. */
  rcvTimeoMs: number;
  sndTimeoMs: number;
}

/** An epoll instance: its interest list (level-triggered). */
interface EpollFile {
  readonly kind: 'epoll';
  readonly interest: Map<number, EpollEvent>;
  cloexec: boolean;
}

type File = SocketFile | EpollFile;

/** -errno of a stack error. */
function neg(e: NetError): number {
  return -e.errno;
}

/** The socket layer of one netstack: an fd table and Linux's socket calls. */
export class SocketLayer implements SocketSyscalls {
  private readonly files = new Map<number, File>();

  constructor(
    private readonly netstack: Netstack,
    private readonly clock: Clock,
  ) {}

  /** The Endpoint behind an fd (for tests and the Sentry's pump). */
  endpoint(fd: number): Endpoint | undefined {
    const f = this.files.get(fd);
    return f?.kind === 'socket' ? f.ep : undefined;
  }

  /** Open fds, ascending. */
  openFds(): number[] {
    return [...this.files.keys()].sort((a, b) => a - b);
  }

  private install(f: File): number {
    let fd = 3;
    while (this.files.has(fd)) fd++;
    this.files.set(fd, f);
    return fd;
  }

  private sock(fd: number): SocketFile | number {
    const f = this.files.get(fd);
    if (!f) return -EBADF;
    if (f.kind !== 'socket') return -ENOTSOCK;
    return f;
  }

  /**
   * Tries `attempt` now; when it reports EAGAIN on a blocking fd, waits for `mask` on the endpoint (with the
   * timeout, after which EAGAIN is the answer, as Linux's SO_RCVTIMEO gives) and tries again.
   */
  private blockable(f: SocketFile, mask: number, timeoutMs: number, attempt: () => number, onTimeout = -EAGAIN): SysRet {
    const first = attempt();
    if (first !== -EAGAIN || f.nonblock) return first;
    return new Promise<number>((resolve) => {
      let done = false;
      const finish = (r: number) => {
        if (done) return;
        done = true;
        unsubscribe();
        timer?.cancel();
        resolve(r);
      };
      const unsubscribe = f.ep.waiter.subscribe(mask | EventErr | EventHUp, () => {
        const r = attempt();
        if (r !== -EAGAIN) finish(r);
      });
      const timer = timeoutMs > 0 ? this.clock.schedule(timeoutMs, () => finish(onTimeout)) : undefined;
      // Readiness may have arrived between the attempt and the subscription.
      const r = attempt();
      if (r !== -EAGAIN) finish(r);
    });
  }

  private toAddress(f: SocketFile, b: Uint8Array): SocketAddress | number {
    const sa = decodeSockaddr(b);
    if (sa === 'short') return -EINVAL;
    if (sa === 'family') return -EAFNOSUPPORT;
    if (sa.family !== f.domain) return f.domain === L.AF_INET && sa.family === L.AF_INET6 ? -EAFNOSUPPORT : sa.family === L.AF_UNSPEC ? -EAFNOSUPPORT : -EINVAL;
    if (f.domain === L.AF_INET && b.length < 16) return -EINVAL;
    return { address: sa.address, port: sa.port, nicId: sa.scopeId || undefined };
  }

  private fromAddress(f: SocketFile, a: SocketAddress, out: Uint8Array | null, outLen: Uint32Array | null): void {
    if (!out || !outLen) return;
    let address = a.address;
    if (f.domain === L.AF_INET6 && address.length === 4) {
      address = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...address]);
    }
    const enc = encodeSockaddr({ family: f.domain, address, port: a.port, scopeId: a.nicId });
    out.set(enc.subarray(0, Math.min(enc.length, outLen[0]!, out.length)));
    outLen[0] = enc.length;
  }

  socket(domain: number, type: number, protocol: number): number {
    const base = type & 0xf;
    if (type & ~(0xf | L.SOCK_NONBLOCK | L.SOCK_CLOEXEC)) return -EINVAL;
    if (domain !== L.AF_INET && domain !== L.AF_INET6) return -EAFNOSUPPORT;
    const kind = base === L.SOCK_STREAM ? 'stream' : base === L.SOCK_DGRAM ? 'dgram' : base === L.SOCK_RAW ? 'raw' : undefined;
    if (!kind) return -EINVAL;
    const ep = this.netstack.socket(domain === L.AF_INET ? 4 : 6, kind, protocol);
    if (isError(ep)) return neg(ep);
    return this.install({
      kind: 'socket', ep, domain, type: base, protocol: protocol || ep.protocol,
      nonblock: (type & L.SOCK_NONBLOCK) !== 0, cloexec: (type & L.SOCK_CLOEXEC) !== 0, rcvTimeoMs: 0, sndTimeoMs: 0,
    });
  }

  bind(fd: number, addr: Uint8Array): number {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    const a = this.toAddress(f, addr);
    if (typeof a === 'number') return a;
    const e = f.ep.bind(a);
    return e ? neg(e) : 0;
  }

  listen(fd: number, backlog: number): number {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    const e = f.ep.listen(backlog);
    return e ? neg(e) : 0;
  }

  connect(fd: number, addr: Uint8Array): SysRet {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    const sa = decodeSockaddr(addr);
    if (sa !== 'short' && sa !== 'family' && sa.family === L.AF_UNSPEC) {
      const e = f.ep.disconnect();
      return e ? neg(e) : 0;
    }
    const a = this.toAddress(f, addr);
    if (typeof a === 'number') return a;
    const e = f.ep.connect(a);
    if (!e) return 0;
    if (e !== Err.ConnectStarted || f.nonblock) return neg(e);
    // A blocking connect waits for the handshake's outcome and consumes its error (as Linux's sock_error).
    return new Promise<number>((resolve) => {
      let done = false;
      const check = () => {
        if (done) return;
        const r = f.ep.readiness(EventOut | EventErr | EventHUp);
        if (!r) return;
        done = true;
        unsubscribe();
        timer?.cancel();
        const err = f.ep.takeError();
        resolve(err ? neg(err) : 0);
      };
      const unsubscribe = f.ep.waiter.subscribe(EventOut | EventErr | EventHUp, check);
      const timer = f.sndTimeoMs > 0 ? this.clock.schedule(f.sndTimeoMs, () => {
        if (done) return;
        done = true;
        unsubscribe();
        resolve(-EINPROGRESS);
      }) : undefined;
      check();
    });
  }

  accept4(fd: number, addr: Uint8Array | null, addrlen: Uint32Array | null, flags: number): SysRet {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    if (flags & ~(L.SOCK_NONBLOCK | L.SOCK_CLOEXEC)) return -EINVAL;
    return this.blockable(f, EventIn, f.rcvTimeoMs, () => {
      const r = f.ep.accept();
      if (isError(r)) return neg(r);
      const nfd = this.install({
        kind: 'socket', ep: r.endpoint, domain: f.domain, type: f.type, protocol: f.protocol,
        nonblock: (flags & L.SOCK_NONBLOCK) !== 0, cloexec: (flags & L.SOCK_CLOEXEC) !== 0, rcvTimeoMs: 0, sndTimeoMs: 0,
      });
      this.fromAddress(f, r.peer, addr, addrlen);
      return nfd;
    });
  }

  read(fd: number, buf: Uint8Array): SysRet {
    return this.recvfrom(fd, buf, 0, null, null);
  }

  write(fd: number, buf: Uint8Array): SysRet {
    return this.sendto(fd, buf, 0, null);
  }

  readv(fd: number, iov: Uint8Array[]): SysRet {
    return this.recvmsg(fd, { name: null, namelen: 0, iov, flags: 0 }, 0);
  }

  writev(fd: number, iov: Uint8Array[]): SysRet {
    return this.sendmsg(fd, { name: null, namelen: 0, iov, flags: 0 }, 0);
  }

  recvfrom(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null, addrlen: Uint32Array | null): SysRet {
    const msg: MsgHdr = { name: addr, namelen: addrlen?.[0] ?? 0, iov: [buf], flags: 0 };
    const r = this.recvmsg(fd, msg, flags);
    const fin = (n: number) => {
      if (n >= 0 && addrlen) addrlen[0] = msg.namelen;
      return n;
    };
    return typeof r === 'number' ? fin(r) : r.then(fin);
  }

  recvmsg(fd: number, msg: MsgHdr, flags: number): SysRet {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    const total = msg.iov.reduce((n, b) => n + b.length, 0);
    const peek = (flags & L.MSG_PEEK) !== 0;
    const stream = f.type === L.SOCK_STREAM;
    const nonblock = f.nonblock || (flags & L.MSG_DONTWAIT) !== 0;
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
      const r = f.ep.read({ peek, maxBytes: total - got });
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
        this.fromAddress(f, r.from, msg.name, len);
        msg.namelen = len[0]!;
      } else msg.namelen = 0;
      return flags & L.MSG_TRUNC ? size : r.data.length;
    };
    if (stream) msg.namelen = 0;
    const first = attempt();
    if (first !== -EAGAIN || nonblock) return first === -EAGAIN && got > 0 ? got : first;
    return this.blockable({ ...f, nonblock: false }, EventIn | EventRdHUp, f.rcvTimeoMs, attempt, got > 0 ? got : -EAGAIN);
  }

  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null): SysRet {
    return this.sendmsg(fd, { name: addr, namelen: addr?.length ?? 0, iov: [buf], flags: 0 }, flags);
  }

  sendmsg(fd: number, msg: MsgHdr, flags: number): SysRet {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    let to: SocketAddress | undefined;
    if (msg.name && msg.name.length) {
      const a = this.toAddress(f, msg.name);
      if (typeof a === 'number') return a;
      to = a;
    }
    const total = msg.iov.reduce((n, b) => n + b.length, 0);
    const data = new Uint8Array(total);
    let off = 0;
    for (const b of msg.iov) {
      data.set(b, off);
      off += b.length;
    }
    const nonblock = f.nonblock || (flags & L.MSG_DONTWAIT) !== 0;
    const more = (flags & L.MSG_MORE) !== 0;
    let sent = 0;
    const attempt = (): number => {
      const r = f.ep.write(data.subarray(sent), { to, more });
      if (isError(r)) {
        if (r === Err.WouldBlock) return sent > 0 && nonblock ? sent : -EAGAIN;
        return sent > 0 ? sent : neg(r);
      }
      sent += r;
      // A blocking stream send returns only when everything is queued (Linux's sk_stream_wait_memory loop).
      if (f.type === L.SOCK_STREAM && sent < total && !nonblock) return -EAGAIN;
      return sent;
    };
    const first = attempt();
    if (first !== -EAGAIN || nonblock) return first;
    return this.blockable({ ...f, nonblock: false }, EventOut, f.sndTimeoMs, attempt, sent > 0 ? sent : -EAGAIN);
  }

  shutdown(fd: number, how: number): number {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    const bits = how === L.SHUT_RD ? ShutdownRead : how === L.SHUT_WR ? ShutdownWrite : how === L.SHUT_RDWR ? ShutdownRead | ShutdownWrite : 0;
    if (!bits) return -EINVAL;
    const e = f.ep.shutdown(bits);
    return e ? neg(e) : 0;
  }

  /**
   * Frees the fd at once; a TCP socket with SO_LINGER on and a positive time then waits, as Linux's inet_release
   * and sk_stream_wait_close do, until the connection has left FIN-WAIT-1, CLOSING and LAST-ACK (all queued data
   * and the FIN acknowledged, or the connection reset or timed out) or the linger time passed, and returns 0
   * either way. A linger time set negative waits with no time limit (MAX_SCHEDULE_TIMEOUT). O_NONBLOCK does not
   * shorten the wait (Linux passes sk_lingertime to tcp_close whatever the file flags are).
   */
  close(fd: number): SysRet {
    const f = this.files.get(fd);
    if (!f) return -EBADF;
    this.files.delete(fd);
    for (const g of this.files.values()) if (g.kind === 'epoll') g.interest.delete(fd);
    if (f.kind !== 'socket') return 0;
    const lingerMs = f.type === L.SOCK_STREAM ? lingerTimeMs(f.ep) : 0;
    f.ep.close();
    if (lingerMs <= 0 || !tcpClosing(f.ep)) return 0;
    return this.lingerWait(f.ep, lingerMs);
  }

  /**
   * Resolves 0 once `ep` is no longer closing (tcpClosing) or after `ms` (never for Infinity); the endpoint
   * closes on regardless.
   */
  private lingerWait(ep: Endpoint, ms: number): Promise<number> {
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

  getsockname(fd: number, addr: Uint8Array, addrlen: Uint32Array): number {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    const a = f.ep.localAddress();
    if (isError(a)) return neg(a);
    this.fromAddress(f, a, addr, addrlen);
    return 0;
  }

  getpeername(fd: number, addr: Uint8Array, addrlen: Uint32Array): number {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    const a = f.ep.remoteAddress();
    if (isError(a)) return neg(a);
    this.fromAddress(f, a, addr, addrlen);
    return 0;
  }

  getsockopt(fd: number, level: number, name: number, optval: Uint8Array, optlen: Uint32Array): number {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    const lvl = level === L.SOL_TCP ? L.IPPROTO_TCP : level;
    const spec = lookupOption(lvl, name);
    if (!spec) return -ENOPROTOOPT;
    if (optlen[0]! > 0x7fffffff) return -EINVAL;
    let bytes: Uint8Array;
    const int = (v: number) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, v, true);
      return b;
    };
    switch (spec.name) {
      case 'SO_TYPE':
        bytes = int(f.type);
        break;
      case 'SO_DOMAIN':
        bytes = int(f.domain);
        break;
      case 'SO_PROTOCOL':
        bytes = int(f.protocol);
        break;
      case 'SO_ERROR':
        bytes = int(f.ep.takeError()?.errno ?? 0);
        break;
      case 'SO_RCVTIMEO':
        bytes = encodeTimeval(f.rcvTimeoMs);
        break;
      case 'SO_SNDTIMEO':
        bytes = encodeTimeval(f.sndTimeoMs);
        break;
      default: {
        const v = f.ep.getOption(spec.name);
        if (isError(v)) return neg(v);
        if (spec.kind === 'linger') {
          const o = v as { onoff?: number | boolean; linger?: number };
          bytes = encodeLinger(!!o.onoff, Number(o.linger ?? 0));
        } else if (spec.kind === 'tcpinfo') {
          bytes = encodeTcpInfo(v as { [k: string]: number | boolean });
        } else if (spec.kind === 'string') {
          bytes = typeof v === 'string' ? new TextEncoder().encode(v + '\0') : v instanceof Uint8Array ? v : new Uint8Array(0);
        } else bytes = int(typeof v === 'boolean' ? Number(v) : Number(v));
      }
    }
    const n = Math.min(bytes.length, optlen[0]!, optval.length);
    optval.set(bytes.subarray(0, n));
    optlen[0] = n;
    return 0;
  }

  setsockopt(fd: number, level: number, name: number, optval: Uint8Array): number {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    const lvl = level === L.SOL_TCP ? L.IPPROTO_TCP : level;
    const spec = lookupOption(lvl, name);
    if (!spec) return -ENOPROTOOPT;
    const v = new DataView(optval.buffer, optval.byteOffset, optval.byteLength);
    if (spec.kind === 'timeval') {
      const ms = decodeTimeval(optval);
      if (optval.length < 16) return -EINVAL;
      if (ms === undefined) return -EDOM;
      if (spec.name === 'SO_RCVTIMEO') f.rcvTimeoMs = ms;
      else f.sndTimeoMs = ms;
      return 0;
    }
    let value: number | string | { [k: string]: number | boolean };
    if (spec.kind === 'linger') {
      if (optval.length < 8) return -EINVAL;
      value = { onoff: v.getInt32(0, true) !== 0, linger: v.getInt32(4, true) };
    } else if (spec.kind === 'string') {
      const z = optval.indexOf(0);
      value = new TextDecoder().decode(z < 0 ? optval : optval.subarray(0, z));
    } else if (spec.kind === 'tcpinfo') {
      return -ENOPROTOOPT;
    } else {
      // Linux reads an int, or a single byte for some IP options when optlen < 4.
      if (optval.length >= 4) value = v.getInt32(0, true);
      else if (optval.length >= 1 && lvl === L.IPPROTO_IP) value = optval[0]!;
      else return -EINVAL;
    }
    const e = f.ep.setOption(spec.name, value);
    return e ? neg(e) : 0;
  }

  fcntl(fd: number, cmd: number, arg: number): number {
    const f = this.files.get(fd);
    if (!f) return -EBADF;
    switch (cmd) {
      case L.F_GETFL:
        return L.O_RDWR | (f.kind === 'socket' && f.nonblock ? L.O_NONBLOCK : 0);
      case L.F_SETFL:
        if (f.kind === 'socket') f.nonblock = (arg & L.O_NONBLOCK) !== 0;
        return 0;
      case L.F_GETFD:
        return f.cloexec ? L.FD_CLOEXEC : 0;
      case L.F_SETFD:
        f.cloexec = (arg & L.FD_CLOEXEC) !== 0;
        return 0;
      default:
        return -EINVAL;
    }
  }

  ioctl(fd: number, request: number, arg: Int32Array): number {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    switch (request) {
      case L.FIONREAD:
        arg[0] = f.ep.inQueue();
        return 0;
      case L.SIOCOUTQ:
        arg[0] = f.ep.outQueue();
        return 0;
      case L.FIONBIO:
        f.nonblock = arg[0] !== 0;
        return 0;
      default:
        return -25; // ENOTTY
    }
  }

  /** poll(2) revents of one fd. */
  private revents(fd: number, events: number): number {
    const f = this.files.get(fd);
    if (!f) return L.POLLNVAL;
    if (f.kind === 'epoll') {
      return this.epollReady(f, 64).length ? events & (L.POLLIN | L.POLLRDNORM) : 0;
    }
    const want = events | L.POLLERR | L.POLLHUP;
    const r = f.ep.readiness(want | (events & L.POLLRDNORM ? EventIn : 0) | (events & L.POLLWRNORM ? EventOut : 0));
    let out = r & (events | L.POLLERR | L.POLLHUP);
    if (events & L.POLLRDNORM && r & EventIn) out |= L.POLLRDNORM;
    if (events & L.POLLWRNORM && r & EventOut) out |= L.POLLWRNORM;
    return out;
  }

  /** Waits until `ready()` is non-zero on any of `eps`' readiness, or the timeout; resolves ready()'s value. */
  private waitAny(eps: Endpoint[], timeoutMs: number, ready: () => number): SysRet {
    const now = ready();
    if (now !== 0 || timeoutMs === 0) return now;
    return new Promise<number>((resolve) => {
      let done = false;
      const subs: (() => void)[] = [];
      const finish = (r: number) => {
        if (done) return;
        done = true;
        for (const u of subs) u();
        timer?.cancel();
        resolve(r);
      };
      for (const ep of eps) subs.push(ep.waiter.subscribe(~0, () => {
        const r = ready();
        if (r !== 0) finish(r);
      }));
      const timer = timeoutMs > 0 ? this.clock.schedule(timeoutMs, () => finish(ready())) : undefined;
    });
  }

  poll(fds: PollFd[], timeoutMs: number): SysRet {
    const eps = fds.map((p) => this.endpoint(p.fd)).filter((e): e is Endpoint => !!e);
    const ready = () => {
      let n = 0;
      for (const p of fds) {
        p.revents = p.fd < 0 ? 0 : this.revents(p.fd, p.events);
        if (p.revents) n++;
      }
      return n;
    };
    return this.waitAny(eps, timeoutMs, ready);
  }

  epollCreate(flags: number): number {
    if (flags & ~L.EPOLL_CLOEXEC) return -EINVAL;
    return this.install({ kind: 'epoll', interest: new Map(), cloexec: (flags & L.EPOLL_CLOEXEC) !== 0 });
  }

  epollCtl(epfd: number, op: number, fd: number, event: EpollEvent | null): number {
    const e = this.files.get(epfd);
    if (!e) return -EBADF;
    if (e.kind !== 'epoll' || epfd === fd) return -EINVAL;
    if (!this.files.has(fd)) return -EBADF;
    switch (op) {
      case L.EPOLL_CTL_ADD:
        if (e.interest.has(fd)) return -EEXIST;
        if (!event) return -EFAULT;
        e.interest.set(fd, { ...event });
        return 0;
      case L.EPOLL_CTL_MOD:
        if (!e.interest.has(fd)) return -ENOENT;
        if (!event) return -EFAULT;
        e.interest.set(fd, { ...event });
        return 0;
      case L.EPOLL_CTL_DEL:
        return e.interest.delete(fd) ? 0 : -ENOENT;
      default:
        return -EINVAL;
    }
  }

  private epollReady(e: EpollFile, max: number): EpollEvent[] {
    const out: EpollEvent[] = [];
    for (const [fd, ev] of e.interest) {
      if (out.length >= max) break;
      const f = this.files.get(fd);
      if (!f || f.kind !== 'socket') continue;
      const mask = (ev.events & 0xffff) | L.EPOLLERR | L.EPOLLHUP;
      const r = f.ep.readiness(mask) & mask;
      if (r) {
        out.push({ events: r, data: ev.data });
        // EPOLLONESHOT disarms the entry after one report (events cleared until EPOLL_CTL_MOD).
        if (ev.events & L.EPOLLONESHOT) ev.events &= ~0xffff;
      }
    }
    return out;
  }

  epollWait(epfd: number, events: EpollEvent[], maxEvents: number, timeoutMs: number): SysRet {
    const e = this.files.get(epfd);
    if (!e) return -EBADF;
    if (e.kind !== 'epoll' || maxEvents <= 0) return -EINVAL;
    const eps = [...e.interest.keys()].map((fd) => this.endpoint(fd)).filter((x): x is Endpoint => !!x);
    const ready = () => {
      const r = this.epollReady(e, maxEvents);
      events.length = 0;
      events.push(...r);
      return r.length;
    };
    return this.waitAny(eps, timeoutMs, ready);
  }
}
