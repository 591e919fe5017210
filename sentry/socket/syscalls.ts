/**
 * The Sentry's socket system calls over netstack Endpoints, with Linux semantics: an fd table (lowest free fd
 * from 3, O_NONBLOCK and FD_CLOEXEC per fd) over `SocketFile`s, which hold the per-socket calls, plus poll and
 * epoll across them. Non-blocking calls answer synchronously (but close() lingers even on O_NONBLOCK, as on
 * Linux); a blocking call that cannot complete returns a Promise that waits on the endpoint's WaiterQueue (and on
 * the stack's clock for timeouts) and retries when the endpoint becomes ready. The conformance runner drives it.
 */
import type { Clock } from '../../netstack/clock.ts';
import type { Netstack } from '../../netstack/netstack.ts';
import type { Endpoint, SocketAddress } from '../../netstack/socket.ts';
import { EventIn, EventOut } from '../../netstack/waiter.ts';
import { LINUX as L } from './abi.ts';
import { type EpollEvent, type MsgHdr, type PollFd, SocketReadWrite, type SocketSyscalls, type SysRet } from './api.ts';
import { SocketFile } from './file.ts';

const EBADF = 9;
const EINVAL = 22;
const ENOTSOCK = 88;
const EFAULT = 14;
const EEXIST = 17;
const ENOENT = 2;

/** An open socket in the fd table: the file and the flags the fd carries. */
interface SocketEntry {
  readonly kind: 'socket';
  readonly file: SocketFile;
  readonly ep: Endpoint;
  nonblock: boolean;
  cloexec: boolean;
}

/**
 * One fd on an epoll interest list. An EPOLLET entry also has `edge`: it is reported only after a wake-up of its
 * socket for the events it asks (new data, a state change), as Linux puts an item on the ready list from the
 * socket's wake-up callback and takes it off when epoll_wait reports it; level-triggered entries report readiness.
 */
interface Interest extends EpollEvent {
  edge?: { pending: boolean; off: () => void };
  /** EPOLLONESHOT reported once: nothing, not even EPOLLERR or EPOLLHUP, until EPOLL_CTL_MOD re-arms it. */
  disarmed?: boolean;
}

/** An epoll instance: its interest list. */
interface EpollFile {
  readonly kind: 'epoll';
  readonly interest: Map<number, Interest>;
  cloexec: boolean;
}

type File = SocketEntry | EpollFile;

/** The socket layer of one netstack: an fd table and Linux's socket calls. */
export class SocketLayer extends SocketReadWrite implements SocketSyscalls {
  private readonly files = new Map<number, File>();

  constructor(
    private readonly netstack: Netstack,
    private readonly clock: Clock,
    /** CLOCK_REALTIME (ms) of an instant on the stack's clock (SCM_TIMESTAMPING); by default from Date.now(). */
    private readonly wallTime?: (stackMs: number) => number,
  ) {
    super();
  }

  /** The Endpoint behind an fd (for tests and the Sentry's pump). */
  endpoint(fd: number): Endpoint | undefined {
    const f = this.files.get(fd);
    return f?.kind === 'socket' ? f.ep : undefined;
  }

  /** The SocketFile behind an fd. */
  socketFile(fd: number): SocketFile | undefined {
    const f = this.files.get(fd);
    return f?.kind === 'socket' ? f.file : undefined;
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

  private installSocket(file: SocketFile, flags: number): number {
    return this.install({
      kind: 'socket', file, ep: file.ep, nonblock: (flags & L.SOCK_NONBLOCK) !== 0, cloexec: (flags & L.SOCK_CLOEXEC) !== 0,
    });
  }

  private sock(fd: number): SocketEntry | number {
    const f = this.files.get(fd);
    if (!f) return -EBADF;
    if (f.kind !== 'socket') return -ENOTSOCK;
    this.inCall(f);
    return f;
  }

  /**
   * Marks `f` as in a call of the program's own until the current turn ends: the wake-ups the call itself causes
   * (a read that reopens the window, a write) do not put it on an edge-triggered epoll's ready list, as Linux's
   * own reads and writes never call the socket's data_ready or write_space.
   */
  private inCall(f: SocketEntry): void {
    if (this.calling.has(f)) return;
    this.calling.add(f);
    queueMicrotask(() => this.calling.delete(f));
  }

  /** Sockets in a call of the program's own this turn (see inCall). */
  private readonly calling = new Set<SocketEntry>();

  socket(domain: number, type: number, protocol: number): number {
    const file = SocketFile.open(this.netstack, this.clock, domain, type, protocol, this.wallTime);
    if (typeof file === 'number') return file;
    return this.installSocket(file, type);
  }

  bind(fd: number, addr: Uint8Array): number {
    const f = this.sock(fd);
    return typeof f === 'number' ? f : f.file.bind(addr);
  }

  listen(fd: number, backlog: number): number {
    const f = this.sock(fd);
    return typeof f === 'number' ? f : f.file.listen(backlog);
  }

  connect(fd: number, addr: Uint8Array): SysRet {
    const f = this.sock(fd);
    return typeof f === 'number' ? f : f.file.connect(addr, f.nonblock);
  }

  accept4(fd: number, addr: Uint8Array | null, addrlen: Uint32Array | null, flags: number): SysRet {
    const f = this.sock(fd);
    if (typeof f === 'number') return f;
    if (flags & ~(L.SOCK_NONBLOCK | L.SOCK_CLOEXEC)) return -EINVAL;
    const done = (r: number | { file: SocketFile; peer: SocketAddress }): number => {
      if (typeof r === 'number') return r;
      const nfd = this.installSocket(r.file, flags);
      f.file.writeAddress(r.peer, addr, addrlen);
      return nfd;
    };
    const r = f.file.accept(f.nonblock);
    return r instanceof Promise ? r.then(done) : done(r);
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
    return typeof f === 'number' ? f : f.file.recvmsg(msg, flags, f.nonblock);
  }

  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null): SysRet {
    return this.sendmsg(fd, { name: addr, namelen: addr?.length ?? 0, iov: [buf], flags: 0 }, flags);
  }

  sendmsg(fd: number, msg: MsgHdr, flags: number): SysRet {
    const f = this.sock(fd);
    return typeof f === 'number' ? f : f.file.sendmsg(msg, flags, f.nonblock);
  }

  shutdown(fd: number, how: number): number {
    const f = this.sock(fd);
    return typeof f === 'number' ? f : f.file.shutdown(how);
  }

  /** Frees the fd at once; the socket's close may linger (SocketFile.close). */
  close(fd: number): SysRet {
    const f = this.files.get(fd);
    if (!f) return -EBADF;
    this.files.delete(fd);
    for (const g of this.files.values()) if (g.kind === 'epoll') SocketLayer.dropInterest(g, fd);
    if (f.kind === 'epoll') for (const i of f.interest.values()) i.edge?.off();
    if (f.kind !== 'socket') return 0;
    return f.file.close();
  }

  getsockname(fd: number, addr: Uint8Array, addrlen: Uint32Array): number {
    const f = this.sock(fd);
    return typeof f === 'number' ? f : f.file.getsockname(addr, addrlen);
  }

  getpeername(fd: number, addr: Uint8Array, addrlen: Uint32Array): number {
    const f = this.sock(fd);
    return typeof f === 'number' ? f : f.file.getpeername(addr, addrlen);
  }

  getsockopt(fd: number, level: number, name: number, optval: Uint8Array, optlen: Uint32Array): number {
    const f = this.sock(fd);
    return typeof f === 'number' ? f : f.file.getsockopt(level, name, optval, optlen);
  }

  setsockopt(fd: number, level: number, name: number, optval: Uint8Array): number {
    const f = this.sock(fd);
    return typeof f === 'number' ? f : f.file.setsockopt(level, name, optval);
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
      return this.epollReady(f, 64, false).length ? events & (L.POLLIN | L.POLLRDNORM) : 0;
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
        e.interest.set(fd, this.interest(fd, event));
        return 0;
      case L.EPOLL_CTL_MOD:
        if (!e.interest.has(fd)) return -ENOENT;
        if (!event) return -EFAULT;
        SocketLayer.dropInterest(e, fd);
        e.interest.set(fd, this.interest(fd, event));
        return 0;
      case L.EPOLL_CTL_DEL:
        return SocketLayer.dropInterest(e, fd) ? 0 : -ENOENT;
      default:
        return -EINVAL;
    }
  }

  /** A new interest entry; an edge-triggered one starts pending, as Linux checks readiness when it is added. */
  private interest(fd: number, event: EpollEvent): Interest {
    const i: Interest = { ...event };
    const f = this.files.get(fd);
    if (event.events & L.EPOLLET && f?.kind === 'socket') {
      const edge = { pending: true, off: () => {} };
      edge.off = f.ep.waiter.subscribe((event.events & 0xffff) | L.EPOLLERR | L.EPOLLHUP, () => {
        if (!this.calling.has(f)) edge.pending = true;
      });
      i.edge = edge;
    }
    return i;
  }

  /** Takes `fd` off an epoll interest list (and its wake-up subscription); whether it was there. */
  private static dropInterest(e: EpollFile, fd: number): boolean {
    e.interest.get(fd)?.edge?.off();
    return e.interest.delete(fd);
  }

  /** The ready entries; `consume` (epoll_wait) takes reported edge-triggered entries off the ready list. */
  private epollReady(e: EpollFile, max: number, consume = true): EpollEvent[] {
    const out: EpollEvent[] = [];
    for (const [fd, ev] of e.interest) {
      if (out.length >= max) break;
      const f = this.files.get(fd);
      if (!f || f.kind !== 'socket' || ev.disarmed) continue;
      if (ev.edge && !ev.edge.pending) continue;
      const mask = (ev.events & 0xffff) | L.EPOLLERR | L.EPOLLHUP;
      const r = f.ep.readiness(mask) & mask;
      if (r) {
        out.push({ events: r, data: ev.data });
        if (!consume) continue;
        if (ev.edge) ev.edge.pending = false;
        // EPOLLONESHOT disarms the entry after one report (Linux clears its events, the EPOLLERR and EPOLLHUP
        // it always adds included, until EPOLL_CTL_MOD).
        if (ev.events & L.EPOLLONESHOT) {
          ev.events &= ~0xffff;
          ev.disarmed = true;
        }
      } else if (consume && ev.edge) {
        ev.edge.pending = false;
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
