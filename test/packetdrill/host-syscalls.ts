/**
 * The host kernel's socket calls behind the `SocketSyscalls` interface, for the Linux DUT: koffi bindings
 * (libc), sockets created inside the DUT's network namespace. Node's main thread must never block, so a call
 * that would block on a blocking fd is emulated: poll with a zero timeout until the fd is ready, yielding to
 * the event loop (1 ms) in between, then make the call, which cannot block any more. A blocking connect()
 * is made non-blocking for the call and completed through POLLOUT and SO_ERROR, as the kernel would.
 * sendmsg/recvmsg build a real struct msghdr (iovecs and control messages) in memory outside the JS heap, so
 * cmsgs (MSG_ERRQUEUE completions, SCM_TIMESTAMPING, TCP_CM_INQ) and MSG_EOR/MSG_ZEROCOPY mean what they mean.
 * pipe, splice, open and sendfile are here too, for the scripts that use them.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import koffi from 'koffi';
import { type NativeBuffer, mapMemory } from '../../lib/libc.ts';
import { inNetns } from '../../lib/netns.ts';
import { LINUX as L } from '../../sentry/socket/abi.ts';
import { type EpollEvent, type MsgHdr, type PollFd, SocketReadWrite, type SocketSyscalls, type SysRet } from '../../sentry/socket/api.ts';

const libc = koffi.load('libc.so.6');
type Buf = Uint8Array | null;
const f = {
  socket: libc.func('int socket(int, int, int)') as (a: number, b: number, c: number) => number,
  bind: libc.func('int bind(int, void *, uint32_t)') as (fd: number, a: Uint8Array, l: number) => number,
  listen: libc.func('int listen(int, int)') as (fd: number, b: number) => number,
  connect: libc.func('int connect(int, void *, uint32_t)') as (fd: number, a: Uint8Array, l: number) => number,
  accept4: libc.func('int accept4(int, void *, void *, int)') as (fd: number, a: Buf, l: Uint32Array | null, fl: number) => number,
  recvfrom: libc.func('long recvfrom(int, void *, size_t, int, void *, void *)') as (fd: number, b: Uint8Array | null, n: number, fl: number, a: Buf, l: Uint32Array | null) => number,
  sendto: libc.func('long sendto(int, void *, size_t, int, void *, uint32_t)') as (fd: number, b: Uint8Array | null, n: number, fl: number, a: Buf, l: number) => number,
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
  sendmsg: libc.func('long sendmsg(int, uintptr_t, int)') as (fd: number, msg: bigint, fl: number) => number,
  recvmsg: libc.func('long recvmsg(int, uintptr_t, int)') as (fd: number, msg: bigint, fl: number) => number,
  pipe2: libc.func('int pipe2(int *, int)') as (fds: Int32Array, fl: number) => number,
  splice: libc.func('long splice(int, void *, int, void *, size_t, unsigned int)') as (a: number, ao: Buf, b: number, bo: Buf, n: number, fl: number) => number,
  open: libc.func('int open(const char *, int, int)') as (path: string, fl: number, mode: number) => number,
  sendfile: libc.func('long sendfile(int, int, void *, size_t)') as (out: number, inp: number, off: BigInt64Array | null, n: number) => number,
};

/**
 * The thread that makes the blocking calls a script waits in (sendmsg, recvmsg, splice), as packetdrill makes them in a
 * thread of its own: the kernel then sees a writer really waiting (sk_write_pending delays the ACK of a SYN-ACK so
 * data can carry it; a writer woken for buffer space appends at once), which no polling from Node's thread can
 * imitate. It reads and writes the msghdr the main thread laid out in memory outside the JS heap.
 */
const BLOCKING_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const koffi = require(workerData.koffi);
const libc = koffi.load('libc.so.6');
const calls = {
  sendmsg: libc.func('long sendmsg(int, uintptr_t, int)'),
  recvmsg: libc.func('long recvmsg(int, uintptr_t, int)'),
  splice: libc.func('long splice(int, void *, int, void *, size_t, unsigned int)'),
};
parentPort.on('message', (m) => {
  const r = m.op === 'splice' ? calls.splice(m.fd, null, m.out, null, m.len, m.flags) : calls[m.op](m.fd, m.msg, m.flags);
  parentPort.postMessage({ id: m.id, r: r < 0 ? -koffi.errno() : r });
});
parentPort.postMessage({ ready: true });
`;

/** The one blocking-call worker of the process (started with the first Linux DUT), and the calls waiting in it. */
let worker: Worker | undefined;
let workerReady: Promise<void> = Promise.resolve();
let users = 0;
let nextCall = 0;
const pending = new Map<number, (r: number) => void>();

function blockingWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(BLOCKING_WORKER, { eval: true, workerData: { koffi: createRequire(import.meta.url).resolve('koffi') } });
  w.unref();
  let ready!: () => void;
  workerReady = new Promise((r) => (ready = r));
  w.on('message', (m: { id: number; r: number; ready?: boolean }) => {
    if (m.ready) return ready();
    const done = pending.get(m.id);
    pending.delete(m.id);
    done?.(m.r);
  });
  w.on('error', () => {
    for (const done of pending.values()) done(-5); // EIO: the worker died
    pending.clear();
    worker = undefined;
    ready();
  });
  worker = w;
  return w;
}

/** Resolves once the blocking-call worker has loaded koffi (a DUT waits for it before its script starts). */
export function blockingWorkerReady(): Promise<void> {
  return workerReady;
}

/** A msghdr with control messages (what the runner's calls carry beyond the Sentry's MsgHdr). */
export interface MsgHdrWithControl extends MsgHdr {
  /** sendmsg: the control bytes; recvmsg: a buffer for them (its length is msg_controllen). */
  control?: Uint8Array;
  /** recvmsg: how many control bytes came. */
  controllen?: number;
}

// The scratch area's layout: struct msghdr, then the name, the iovec array, the control bytes, the data.
const M_NAME = 64;
const M_IOV = 256;
const MAX_IOV = 64;
const M_CONTROL = M_IOV + 16 * MAX_IOV;
const MAX_CONTROL = 8192;
const M_DATA = M_CONTROL + MAX_CONTROL;
const SCRATCH = M_DATA + 4 * 1024 * 1024;

/**
 * Where the iovec after one of `len` bytes at `off` starts: never right after it, as buffers malloc'd one by one
 * (packetdrill's) are not. The kernel makes one frag of adjacent bytes of a page, so with MSG_ZEROCOPY 18 one-byte
 * iovecs laid end to end would go out as one frag, where packetdrill's go out as 18 (zerocopy/maxfrags).
 */
function nextIovOffset(off: number, len: number): number {
  return ((off + len + 15) & ~15) + 16;
}

const ret = (r: number): number => (r < 0 ? -koffi.errno() : r);
const EAGAIN = 11;
const MSG_ERRQUEUE = 0x2000;
const MSG_FASTOPEN = 0x20000000;
const SPLICE_F_NONBLOCK = 2;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
// struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere (16).
const EPOLL_EVENT_LEN = process.arch === 'x64' ? 12 : 16;
const EPOLL_DATA_OFF = process.arch === 'x64' ? 4 : 8;

/** The host kernel's sockets in one network namespace, every fd created through this object tracked for cleanup. */
/**
 * A script's `NULL` buffer with a length (`write(4, NULL, 1000)`): the kernel is handed a null pointer and the
 * length, and fails the copy with EFAULT as for upstream packetdrill; a DUT without an address space (tsvisor in
 * this process) gets EFAULT from the runner's copy-in (see Calls).
 */
export class NullBuffer extends Uint8Array {}

export class HostSyscalls extends SocketReadWrite implements SocketSyscalls {
  private readonly fds = new Set<number>();
  private scratchMem: NativeBuffer | undefined;
  /** This object's calls now waiting in the worker, by call id. */
  private readonly waiting = new Map<number, (r: number) => void>();
  /** Gives up waiting in emulated blocking calls (the script's deadline passed). */
  aborted = false;

  private closed = false;

  constructor(private readonly netns: string) {
    super();
    blockingWorker(); // started now: loading koffi in it takes longer than a script's first events may wait
    users++;
  }

  /** Closes every fd this object created that the script left open. */
  closeAll(): void {
    // A call blocked in the worker holds its socket: shutdown wakes it (EPIPE / 0) before the fds go.
    if (this.waiting.size) for (const fd of this.fds) f.shutdown(fd, 2);
    for (const [id, resolve] of this.waiting) {
      pending.delete(id);
      resolve(-4);
    }
    this.waiting.clear();
    for (const fd of this.fds) f.close(fd);
    this.fds.clear();
    this.scratchMem?.free();
    this.scratchMem = undefined;
    // The worker goes with the last DUT using it: a thread left running would keep the process from exiting.
    if (!this.closed && --users === 0 && worker) {
      void worker.terminate();
      worker = undefined;
    }
    this.closed = true;
  }

  private get scratch(): NativeBuffer {
    this.scratchMem ??= mapMemory(SCRATCH);
    return this.scratchMem;
  }

  /**
   * Makes a blocking sendmsg/recvmsg on the worker thread with the msghdr at `msg` (in the scratch area), or a
   * splice from `fd` to `extra.out` of `extra.len` bytes.
   */
  private blockingCall(op: 'sendmsg' | 'recvmsg' | 'splice', fd: number, msg: bigint, flags: number, extra?: { out: number; len: number }): Promise<number> {
    const id = nextCall++;
    return new Promise((resolve) => {
      const done = (r: number) => {
        this.waiting.delete(id);
        resolve(r);
      };
      this.waiting.set(id, done);
      pending.set(id, done);
      blockingWorker().postMessage({ id, op, fd, msg, flags, ...extra });
    });
  }

  /** Lays out a struct msghdr for `msg` in the scratch area: data from `skip` bytes on when resuming a send. */
  private layout(msg: MsgHdrWithControl, send: boolean, skip = 0): bigint {
    const m = this.scratch;
    const v = m.view;
    m.bytes.fill(0, 0, M_DATA);
    const iov = msg.iov.slice(0, MAX_IOV);
    let off = M_DATA;
    let n = 0;
    let left = skip;
    for (const b of iov) {
      const part = left >= b.length ? b.subarray(b.length) : b.subarray(left);
      left = Math.max(0, left - b.length);
      if (!part.length && b.length) continue;
      if (off + part.length > SCRATCH) throw new Error(`sendmsg/recvmsg: more than ${SCRATCH - M_DATA} bytes`);
      if (send) m.bytes.set(part, off);
      v.setBigUint64(M_IOV + 16 * n, m.address + BigInt(off), true);
      v.setBigUint64(M_IOV + 16 * n + 8, BigInt(part.length), true);
      off = nextIovOffset(off, part.length);
      n++;
    }
    if (msg.name) {
      if (send) m.bytes.set(msg.name.subarray(0, 128), M_NAME);
      v.setBigUint64(0, m.address + BigInt(M_NAME), true);
      v.setUint32(8, send ? msg.name.length : Math.min(128, msg.name.length), true);
    }
    v.setBigUint64(16, m.address + BigInt(M_IOV), true);
    v.setBigUint64(24, BigInt(n), true);
    const control = msg.control;
    if (control && control.length) {
      if (send) m.bytes.set(control.subarray(0, MAX_CONTROL), M_CONTROL);
      v.setBigUint64(32, m.address + BigInt(M_CONTROL), true);
      v.setBigUint64(40, BigInt(Math.min(MAX_CONTROL, control.length)), true);
    }
    return m.address;
  }

  /** Copies a recvmsg's results out of the scratch area into `msg`. */
  private gather(msg: MsgHdrWithControl, r: number): number {
    if (r < 0) return r;
    const m = this.scratch;
    const v = m.view;
    let off = M_DATA;
    let left = r;
    for (const b of msg.iov.slice(0, MAX_IOV)) {
      const n = Math.min(b.length, left);
      b.set(m.bytes.subarray(off, off + n));
      off = nextIovOffset(off, b.length);
      left -= n;
    }
    if (msg.name) {
      msg.namelen = v.getUint32(8, true);
      msg.name.set(m.bytes.subarray(M_NAME, M_NAME + Math.min(msg.name.length, msg.namelen)));
    }
    msg.flags = v.getInt32(48, true);
    if (msg.control) {
      msg.controllen = Number(v.getBigUint64(40, true));
      msg.control.set(m.bytes.subarray(M_CONTROL, M_CONTROL + Math.min(msg.control.length, msg.controllen)));
    }
    return r;
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

  /**
   * A blocking call made without blocking Node's thread: tried with the fd non-blocking, and while it answers
   * EAGAIN, retried whenever poll says `events` are ready, yielding to the event loop (1 ms) in between. Trying
   * first (not polling first) keeps the kernel's own answer where readiness would not predict it (a splice at
   * the urgent mark returns 0 though POLLIN is clear).
   */
  private maybeBlock(fd: number, events: number, call: () => number): SysRet {
    if (!this.blocking(fd)) return call();
    const fl = f.fcntl(fd, L.F_GETFL);
    const nonblocking = () => {
      f.fcntl(fd, L.F_SETFL, 'int', fl | L.O_NONBLOCK);
      try {
        return call();
      } finally {
        f.fcntl(fd, L.F_SETFL, 'int', fl);
      }
    };
    const r = nonblocking();
    if (r !== -EAGAIN) return r;
    return (async () => {
      for (;;) {
        while (this.ready(fd, events) === 0) {
          if (this.aborted) return -4; // EINTR: the runner gave up on the script
          await sleep(1);
        }
        const r = nonblocking();
        if (r !== -EAGAIN) return r;
        await sleep(1);
      }
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
  recvfrom(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null, addrlen: Uint32Array | null): SysRet {
    // With nothing to read yet a blocking read would wait, not fault: that case is asked without waiting.
    if (buf instanceof NullBuffer) return ret(f.recvfrom(fd, null, buf.length, flags | (this.blocking(fd) && this.ready(fd, L.POLLIN) === 0 ? L.MSG_DONTWAIT : 0), addr, addrlen));
    const call = () => ret(f.recvfrom(fd, buf, buf.length, flags, addr, addrlen));
    if (flags & L.MSG_DONTWAIT || !this.blocking(fd) || this.ready(fd, L.POLLIN) !== 0) return call();
    const msg: MsgHdrWithControl = { name: addr, namelen: 0, iov: [buf], flags: 0 };
    return (this.recvmsg(fd, msg, flags) as Promise<number>).then((r) => {
      if (addrlen && r >= 0) addrlen[0] = msg.namelen;
      return r;
    });
  }
  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null): SysRet {
    if (buf instanceof NullBuffer) return ret(f.sendto(fd, null, buf.length, flags | L.MSG_NOSIGNAL, addr, addr?.length ?? 0));
    if (flags & L.MSG_DONTWAIT || !this.blocking(fd)) return ret(f.sendto(fd, buf, buf.length, flags | L.MSG_NOSIGNAL, addr, addr?.length ?? 0));
    return this.sendmsg(fd, { name: addr, namelen: 0, iov: [buf], flags: 0 }, flags);
  }
  recvmsg(fd: number, msg: MsgHdrWithControl, flags: number): SysRet {
    const call = () => this.gather(msg, ret(f.recvmsg(fd, this.layout(msg, false), flags)));
    if (flags & (L.MSG_DONTWAIT | MSG_ERRQUEUE) || !this.blocking(fd) || this.ready(fd, L.POLLIN) !== 0) return call();
    return this.blockingCall('recvmsg', fd, this.layout(msg, false), flags).then((r) => this.gather(msg, r));
  }
  sendmsg(fd: number, msg: MsgHdrWithControl, flags: number): SysRet {
    const total = msg.iov.reduce((n, b) => n + b.length, 0);
    const once = (skip: number, extra: number) => ret(f.sendmsg(fd, this.layout(skip ? { ...msg, control: undefined } : msg, true, skip), flags | extra | L.MSG_NOSIGNAL));
    if (flags & L.MSG_DONTWAIT || !this.blocking(fd)) return once(0, 0);
    // A send that would wait (no room, a handshake under way, MSG_FASTOPEN) is made whole on the worker thread.
    if (flags & MSG_FASTOPEN || this.synSent(fd) || this.ready(fd, L.POLLOUT) === 0) {
      return this.blockingCall('sendmsg', fd, this.layout(msg, true), flags | L.MSG_NOSIGNAL);
    }
    const first = once(0, L.MSG_DONTWAIT);
    if (first === total || (first < 0 && first !== -EAGAIN)) return first;
    const sent = Math.max(0, first);
    return this.blockingCall('sendmsg', fd, this.layout({ ...msg, control: undefined }, true, sent), flags | L.MSG_NOSIGNAL).then((r) => (r < 0 ? sent || r : sent + r));
  }
  /** Whether a TCP socket is in SYN-SENT (tcp_info's state), where a blocking send waits for the handshake. */
  private synSent(fd: number): boolean {
    const b = new Uint8Array(8);
    return f.getsockopt(fd, L.IPPROTO_TCP, L.TCP_INFO, b, new Uint32Array([8])) === 0 && b[0] === 2;
  }

  /**
   * poll(2)-like waiting for calls asked without waiting: `once()` now, then every millisecond until it reports
   * something, `timeoutMs` has passed (negative: no bound) or the script is aborted.
   */
  private pollLoop(once: () => number, timeoutMs: number): SysRet {
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

  /** pipe2(2): the two fds, tracked for cleanup. */
  pipe(fds: Int32Array): number {
    const r = ret(f.pipe2(fds, 0));
    if (r === 0) for (const x of fds) this.fds.add(x);
    return r;
  }
  /**
   * A blocking splice from a socket is made as it is, never made non-blocking: that would answer EAGAIN where the
   * blocking call returns 0 (at the urgent mark tcp_splice_read stops rather than wait, the urgent byte's skb still
   * queued, though POLLIN is clear and SIOCINQ counts nothing). So with POLLIN or at the mark (SIOCATMARK) it is
   * made here, where it cannot wait; otherwise on the worker thread, where it may.
   */
  splice(fdIn: number, fdOut: number, len: number, flags: number): SysRet {
    const call = () => ret(f.splice(fdIn, null, fdOut, null, len, flags));
    if (!this.blocking(fdIn) || flags & SPLICE_F_NONBLOCK || this.ready(fdIn, L.POLLIN) !== 0) return call();
    const atMark = new Int32Array(1);
    if (f.ioctl(fdIn, L.SIOCATMARK, atMark) === 0 && atMark[0] === 1) return call();
    return this.blockingCall('splice', fdIn, 0n, flags, { out: fdOut, len });
  }
  open(path: string, flags: number, mode: number): number {
    return this.track(ret(f.open(path, flags, mode)));
  }
  sendfile(out: number, inp: number, offset: BigInt64Array | null, count: number): number {
    return ret(f.sendfile(out, inp, offset, count));
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
    return this.pollLoop(once, timeoutMs);
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
    return this.pollLoop(once, timeoutMs);
  }
}
