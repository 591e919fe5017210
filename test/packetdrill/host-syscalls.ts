/**
 * The host kernel's socket calls behind the `SocketSyscalls` interface, for the Linux DUT: koffi bindings
 * (libc), sockets created inside the DUT's network namespace. Node's main thread must never block, so a call
 * that would block on a blocking fd is emulated: poll with a zero timeout until the fd is ready, yielding to
 * the event loop (1 ms) in between, then make the call, which cannot block any more. A blocking connect()
 * is made non-blocking for the call and completed through POLLOUT and SO_ERROR, as the kernel would.
 * readv/writev/sendmsg/recvmsg go through one contiguous buffer (same bytes on the wire, no struct iovec).
 */
import koffi from 'koffi';
import { inNetns } from '../../lib/netns.ts';
import { LINUX as L } from '../../sentry/socket/abi.ts';
import type { EpollEvent, MsgHdr, PollFd, SocketSyscalls, SysRet } from '../../sentry/socket/api.ts';

const libc = koffi.load('libc.so.6');
type Buf = Uint8Array | null;
const f = {
  socket: libc.func('int socket(int, int, int)') as (a: number, b: number, c: number) => number,
  bind: libc.func('int bind(int, void *, uint32_t)') as (fd: number, a: Uint8Array, l: number) => number,
  listen: libc.func('int listen(int, int)') as (fd: number, b: number) => number,
  connect: libc.func('int connect(int, void *, uint32_t)') as (fd: number, a: Uint8Array, l: number) => number,
  accept4: libc.func('int accept4(int, void *, void *, int)') as (fd: number, a: Buf, l: Uint32Array | null, fl: number) => number,
  recvfrom: libc.func('long recvfrom(int, void *, size_t, int, void *, void *)') as (fd: number, b: Uint8Array, n: number, fl: number, a: Buf, l: Uint32Array | null) => number,
  sendto: libc.func('long sendto(int, void *, size_t, int, void *, uint32_t)') as (fd: number, b: Uint8Array, n: number, fl: number, a: Buf, l: number) => number,
  shutdown: libc.func('int shutdown(int, int)') as (fd: number, how: number) => number,
  close: libc.func('int close(int)') as (fd: number) => number,
  getsockname: libc.func('int getsockname(int, void *, void *)') as (fd: number, a: Uint8Array, l: Uint32Array) => number,
  getpeername: libc.func('int getpeername(int, void *, void *)') as (fd: number, a: Uint8Array, l: Uint32Array) => number,
  getsockopt: libc.func('int getsockopt(int, int, int, void *, void *)') as (fd: number, lv: number, n: number, v: Uint8Array, l: Uint32Array) => number,
  setsockopt: libc.func('int setsockopt(int, int, int, void *, uint32_t)') as (fd: number, lv: number, n: number, v: Uint8Array, l: number) => number,
  fcntl: libc.func('int fcntl(int, int, ...)') as (fd: number, cmd: number, ...va: unknown[]) => number,
  ioctl: libc.func('int ioctl(int, unsigned long, void *)') as (fd: number, req: number, arg: Int32Array) => number,
  poll: libc.func('int poll(void *, unsigned long, int)') as (fds: Uint8Array, n: number, t: number) => number,
  epollCreate1: libc.func('int epoll_create1(int)') as (fl: number) => number,
  epollCtl: libc.func('int epoll_ctl(int, int, int, void *)') as (e: number, op: number, fd: number, ev: Buf) => number,
  epollWait: libc.func('int epoll_wait(int, void *, int, int)') as (e: number, ev: Uint8Array, n: number, t: number) => number,
};

const ret = (r: number): number => (r < 0 ? -koffi.errno() : r);
const EAGAIN = 11;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
// struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere (16).
const EPOLL_EVENT_LEN = process.arch === 'x64' ? 12 : 16;
const EPOLL_DATA_OFF = process.arch === 'x64' ? 4 : 8;

/** The host kernel's sockets in one network namespace, every fd created through this object tracked for cleanup. */
export class HostSyscalls implements SocketSyscalls {
  private readonly fds = new Set<number>();
  /** Gives up waiting in emulated blocking calls (the script's deadline passed). */
  aborted = false;

  constructor(private readonly netns: string) {}

  /** Closes every fd this object created that the script left open. */
  closeAll(): void {
    for (const fd of this.fds) f.close(fd);
    this.fds.clear();
  }

  private track(r: number): number {
    if (r >= 0) this.fds.add(r);
    return r;
  }

  private blocking(fd: number): boolean {
    const fl = f.fcntl(fd, L.F_GETFL);
    return fl >= 0 && (fl & L.O_NONBLOCK) === 0;
  }

  private ready(fd: number, events: number): number {
    const p = new Uint8Array(8);
    const v = new DataView(p.buffer);
    v.setInt32(0, fd, true);
    v.setInt16(4, events, true);
    f.poll(p, 1, 0);
    return v.getInt16(6, true);
  }

  /** Runs `call` now if the fd is non-blocking or ready; else waits for readiness on the event loop first. */
  private maybeBlock(fd: number, events: number, call: () => number): SysRet {
    if (!this.blocking(fd) || this.ready(fd, events) !== 0) return call();
    return (async () => {
      while (this.ready(fd, events) === 0) {
        if (this.aborted) return -4; // EINTR: the runner gave up on the script
        await sleep(1);
      }
      return call();
    })();
  }

  socket(domain: number, type: number, protocol: number): number {
    return this.track(inNetns(this.netns, () => ret(f.socket(domain, type, protocol))));
  }
  bind(fd: number, addr: Uint8Array): number {
    return ret(f.bind(fd, addr, addr.length));
  }
  listen(fd: number, backlog: number): number {
    return ret(f.listen(fd, backlog));
  }
  connect(fd: number, addr: Uint8Array): SysRet {
    if (!this.blocking(fd)) return ret(f.connect(fd, addr, addr.length));
    const fl = f.fcntl(fd, L.F_GETFL);
    f.fcntl(fd, L.F_SETFL, 'int', fl | L.O_NONBLOCK);
    const r = ret(f.connect(fd, addr, addr.length));
    f.fcntl(fd, L.F_SETFL, 'int', fl);
    if (r !== -115) return r;
    return (async () => {
      while (this.ready(fd, L.POLLOUT) === 0) {
        if (this.aborted) return -4;
        await sleep(1);
      }
      const v = new Uint8Array(4);
      f.getsockopt(fd, L.SOL_SOCKET, L.SO_ERROR, v, new Uint32Array([4]));
      const e = new DataView(v.buffer).getInt32(0, true);
      return e ? -e : 0;
    })();
  }
  accept4(fd: number, addr: Uint8Array | null, addrlen: Uint32Array | null, flags: number): SysRet {
    return this.maybeBlock(fd, L.POLLIN, () => this.track(ret(f.accept4(fd, addr, addrlen, flags))));
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
    const call = () => ret(f.recvfrom(fd, buf, buf.length, flags, addr, addrlen));
    if (flags & L.MSG_DONTWAIT) return call();
    return this.maybeBlock(fd, L.POLLIN, call);
  }
  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null): SysRet {
    const once = (from: number, extra: number) => ret(f.sendto(fd, buf.subarray(from), buf.length - from, flags | extra | L.MSG_NOSIGNAL, addr, addr?.length ?? 0));
    if (flags & L.MSG_DONTWAIT || !this.blocking(fd)) return once(0, 0);
    // A blocking send returns once all of it is queued, which may take ACKs only the runner can inject: so the
    // call is made without blocking, and what did not fit waits for POLLOUT on the event loop, as the kernel's
    // sk_stream_wait_memory would wait.
    const first = once(0, L.MSG_DONTWAIT);
    if (first === buf.length || (first < 0 && first !== -EAGAIN)) return first;
    return (async () => {
      let sent = Math.max(0, first);
      while (sent < buf.length) {
        while (this.ready(fd, L.POLLOUT) === 0) {
          if (this.aborted) return sent || -4;
          await sleep(1);
        }
        const r = once(sent, L.MSG_DONTWAIT);
        if (r < 0 && r !== -EAGAIN) return sent || r;
        if (r > 0) sent += r;
      }
      return sent;
    })();
  }
  recvmsg(fd: number, msg: MsgHdr, flags: number): SysRet {
    const total = msg.iov.reduce((n, b) => n + b.length, 0);
    const buf = new Uint8Array(total);
    const len = new Uint32Array([msg.name?.length ?? 0]);
    const scatter = (n: number): number => {
      if (n < 0) return n;
      let off = 0;
      for (const b of msg.iov) {
        b.set(buf.subarray(off, Math.min(off + b.length, n)));
        off += b.length;
      }
      msg.namelen = len[0]!;
      return n;
    };
    const r = this.recvfrom(fd, buf, flags, msg.name, msg.name ? len : null);
    return typeof r === 'number' ? scatter(r) : r.then(scatter);
  }
  sendmsg(fd: number, msg: MsgHdr, flags: number): SysRet {
    const total = msg.iov.reduce((n, b) => n + b.length, 0);
    const buf = new Uint8Array(total);
    let off = 0;
    for (const b of msg.iov) {
      buf.set(b, off);
      off += b.length;
    }
    return this.sendto(fd, buf, flags, msg.name);
  }
  shutdown(fd: number, how: number): number {
    return ret(f.shutdown(fd, how));
  }
  close(fd: number): number {
    this.fds.delete(fd);
    return ret(f.close(fd));
  }
  getsockname(fd: number, addr: Uint8Array, addrlen: Uint32Array): number {
    return ret(f.getsockname(fd, addr, addrlen));
  }
  getpeername(fd: number, addr: Uint8Array, addrlen: Uint32Array): number {
    return ret(f.getpeername(fd, addr, addrlen));
  }
  getsockopt(fd: number, level: number, name: number, optval: Uint8Array, optlen: Uint32Array): number {
    return ret(f.getsockopt(fd, level, name, optval, optlen));
  }
  setsockopt(fd: number, level: number, name: number, optval: Uint8Array): number {
    return ret(f.setsockopt(fd, level, name, optval, optval.length));
  }
  fcntl(fd: number, cmd: number, arg: number): number {
    return ret(f.fcntl(fd, cmd, 'int', arg));
  }
  ioctl(fd: number, request: number, arg: Int32Array): number {
    return ret(f.ioctl(fd, request, arg));
  }
  poll(fds: PollFd[], timeoutMs: number): SysRet {
    const p = new Uint8Array(8 * fds.length);
    const v = new DataView(p.buffer);
    fds.forEach((x, i) => {
      v.setInt32(8 * i, x.fd, true);
      v.setInt16(8 * i + 4, x.events, true);
    });
    const once = () => {
      const r = ret(f.poll(p, fds.length, 0));
      fds.forEach((x, i) => (x.revents = v.getUint16(8 * i + 6, true)));
      return r;
    };
    const r = once();
    if (r !== 0 || timeoutMs === 0) return r;
    const deadline = performance.now() + (timeoutMs < 0 ? Infinity : timeoutMs);
    return (async () => {
      for (;;) {
        await sleep(1);
        const n = once();
        if (n !== 0 || performance.now() >= deadline || this.aborted) return n;
      }
    })();
  }
  epollCreate(flags: number): number {
    return this.track(ret(f.epollCreate1(flags)));
  }
  epollCtl(epfd: number, op: number, fd: number, event: EpollEvent | null): number {
    let b: Uint8Array | null = null;
    if (event) {
      b = new Uint8Array(EPOLL_EVENT_LEN);
      const v = new DataView(b.buffer);
      v.setUint32(0, event.events >>> 0, true);
      v.setBigUint64(EPOLL_DATA_OFF, BigInt(event.data), true);
    }
    return ret(f.epollCtl(epfd, op, fd, b));
  }
  epollWait(epfd: number, events: EpollEvent[], maxEvents: number, timeoutMs: number): SysRet {
    const b = new Uint8Array(EPOLL_EVENT_LEN * Math.max(1, maxEvents));
    const v = new DataView(b.buffer);
    const once = () => {
      const n = ret(f.epollWait(epfd, b, maxEvents, 0));
      events.length = 0;
      for (let i = 0; i < n; i++) events.push({ events: v.getUint32(i * EPOLL_EVENT_LEN, true), data: Number(v.getBigUint64(i * EPOLL_EVENT_LEN + EPOLL_DATA_OFF, true)) });
      return n;
    };
    const r = once();
    if (r !== 0 || timeoutMs === 0) return r;
    const deadline = performance.now() + (timeoutMs < 0 ? Infinity : timeoutMs);
    return (async () => {
      for (;;) {
        await sleep(1);
        const n = once();
        if (n !== 0 || performance.now() >= deadline || this.aborted) return n;
      }
    })();
  }
}
