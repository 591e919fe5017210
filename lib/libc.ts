/**
 * libc through koffi: the few system calls lib/ needs, their constants, and `SysError`.
 * Setup paths throw `SysError` through `check()`; hot paths call the raw functions and read `errno()` themselves,
 * so a failed send or an empty ring costs a comparison, not an exception.
 * Struct layouts here are those of 64-bit Linux (x86-64 and aarch64 agree on all of them).
 */
import { linkSync, rmSync } from 'node:fs';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

/** Raw libc functions; pointers are BigInt addresses or typed arrays (passed in place, no copy). */
export const sys = {
  socket: libc.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number,
  socketpair: libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)') as (
    d: number,
    t: number,
    p: number,
    sv: number[],
  ) => number,
  bind: libc.func('int bind(int fd, void *addr, uint32_t len)') as (fd: number, a: Uint8Array, l: number) => number,
  connect: libc.func('int connect(int fd, void *addr, uint32_t len)') as (fd: number, a: Uint8Array, l: number) => number,
  listen: libc.func('int listen(int fd, int backlog)') as (fd: number, backlog: number) => number,
  close: libc.func('int close(int fd)') as (fd: number) => number,
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, void *val, uint32_t len)') as (
    fd: number,
    level: number,
    name: number,
    val: Uint8Array | Int32Array | Uint32Array,
    len: number,
  ) => number,
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, void *val, void *len)') as (
    fd: number,
    level: number,
    name: number,
    val: Uint8Array | Int32Array | Uint32Array,
    len: Uint32Array,
  ) => number,
  ioctl: libc.func('int ioctl(int fd, unsigned long req, void *arg)') as (fd: number, req: number, arg: Uint8Array) => number,
  sendmmsg: libc.func('int sendmmsg(int fd, void *vec, unsigned int n, int flags)') as (
    fd: number,
    vec: bigint,
    n: number,
    flags: number,
  ) => number,
  recvmmsg: libc.func('int recvmmsg(int fd, void *vec, unsigned int n, int flags, void *timeout)') as (
    fd: number,
    vec: bigint,
    n: number,
    flags: number,
    timeout: null,
  ) => number,
  send: libc.func('long send(int fd, void *buf, size_t len, int flags)') as (
    fd: number,
    buf: Uint8Array | null,
    len: number,
    flags: number,
  ) => number,
  sched_yield: libc.func('int sched_yield(void)') as () => number,
  read: libc.func('long read(int fd, void *buf, size_t n)') as (fd: number, buf: Uint8Array | bigint, n: number) => number,
  write: libc.func('long write(int fd, void *buf, size_t n)') as (fd: number, buf: Uint8Array | bigint, n: number) => number,
  writev: libc.func('long writev(int fd, void *iov, int iovcnt)') as (fd: number, iov: bigint, iovcnt: number) => number,
  poll: libc.func('int poll(void *fds, unsigned long n, int timeout)') as (fds: Uint8Array, n: number, t: number) => number,
  setns: libc.func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number,
  unshare: libc.func('int unshare(int flags)') as (flags: number) => number,
  mount: libc.func('int mount(const char *src, const char *target, const char *type, unsigned long flags, const char *data)') as (
    src: string,
    target: string,
    type: string | null,
    flags: number,
    data: string | null,
  ) => number,
  umount2: libc.func('int umount2(const char *target, int flags)') as (target: string, flags: number) => number,
  setpriority: libc.func('int setpriority(int which, unsigned int who, int prio)') as (which: number, who: number, prio: number) => number,
  dup2: libc.func('int dup2(int oldfd, int newfd)') as (oldfd: number, newfd: number) => number,
  prlimit: libc.func('int prlimit(int pid, int resource, void *newLimit, void *oldLimit)') as (
    pid: number,
    resource: number,
    newLimit: BigUint64Array | null,
    oldLimit: BigUint64Array | null,
  ) => number,
  flock: libc.func('int flock(int fd, int op)') as (fd: number, op: number) => number,
  open: libc.func('int open(const char *path, int flags, uint32_t mode)') as (p: string, f: number, m: number) => number,
  mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as (
    addr: null,
    len: number,
    prot: number,
    flags: number,
    fd: number,
    off: number,
  ) => bigint,
  munmap: libc.func('int munmap(void *addr, size_t len)') as (addr: bigint, len: number) => number,
  ifNameToIndex: libc.func('unsigned int if_nametoindex(const char *name)') as (name: string) => number,
  strerror: libc.func('const char *strerror(int errnum)') as (e: number) => string,
};

/** The errno left by the last libc call on this thread; read it right after the call. */
export function errno(): number {
  return koffi.errno();
}

/** Constants of Linux's UAPI headers used by lib/. */
export const C = {
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 10,
  AF_PACKET: 17,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  O_RDONLY: 0,
  O_RDWR: 2,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_SNDBUFFORCE: 32,
  SO_RCVBUFFORCE: 33,
  SOL_PACKET: 263,
  PACKET_RX_RING: 5,
  PACKET_STATISTICS: 6,
  PACKET_VERSION: 10,
  PACKET_TX_RING: 13,
  PACKET_VNET_HDR: 15,
  PACKET_QDISC_BYPASS: 20,
  PACKET_IGNORE_OUTGOING: 23,
  TPACKET_V2: 1,
  ETH_P_ALL: 0x0003,
  CLONE_NEWNET: 0x40000000,
  MS_BIND: 0x1000,
  LOCK_EX: 2,
  LOCK_NB: 4,
  LOCK_UN: 8,
  PROT_READ: 1,
  PROT_WRITE: 2,
  MAP_SHARED: 0x01,
  MAP_PRIVATE: 0x02,
  MAP_ANONYMOUS: 0x20,
  MAP_LOCKED: 0x2000,
  POLLIN: 0x1,
  POLLOUT: 0x4,
  MSG_DONTWAIT: 0x40,
  SIOCGIFMTU: 0x8921,
  SIOCGIFHWADDR: 0x8927,
  SIOCGIFINDEX: 0x8933,
  TUNSETIFF: 0x400454ca,
  IFF_TAP: 0x0002,
  IFF_NO_PI: 0x1000,
  EINTR: 4,
  EAGAIN: 11,
  EWOULDBLOCK: 11,
  ENOENT: 2,
  ENOBUFS: 105,
  ENODEV: 19,
} as const;

/**
 * Linux errno values by name: the host C library's own table through koffi, so lib/ and gofer/ (which cannot import
 * the netstack's `ERRNO` of stack error kinds) share one table of the numbers themselves.
 */
export const ERRNO: Readonly<Record<string, number>> = koffi.os.errno;

const errnoNames = new Map<number, string>();
// Aliases share a number; the name Linux's own headers and errno(1) use first wins (EOPNOTSUPP, not ENOTSUP).
errnoNames.set(95, 'EOPNOTSUPP');
for (const [name, value] of Object.entries(koffi.os.errno)) if (!errnoNames.has(value)) errnoNames.set(value, name);

/** The symbolic name of an errno value, e.g. "ENOENT". */
export function errnoName(e: number): string {
  return errnoNames.get(e) ?? `errno ${e}`;
}

/** A failed system call during setup: errno, the call's name, and what it was doing. */
export class SysError extends Error {
  /** The errno value. */
  readonly errno: number;
  /** The symbolic errno, e.g. "ENODEV". */
  readonly code: string;
  /** The call that failed, e.g. "bind". */
  readonly syscall: string;

  constructor(syscall: string, errnoValue: number, context?: string) {
    const what = context ? `${syscall} (${context})` : syscall;
    super(`${what}: ${errnoName(errnoValue)} (${sys.strerror(errnoValue)})`);
    this.name = 'SysError';
    this.errno = errnoValue;
    this.code = errnoName(errnoValue);
    this.syscall = syscall;
  }
}

/**
 * A libc call's result as our bindings return it: `ret` when it is not negative, else minus the errno the call
 * left. Call it on the call's return value directly, before anything else can touch errno.
 */
export function minusErrno(ret: number): number {
  return ret < 0 ? -koffi.errno() : ret;
}

/** Returns `ret` when it is not negative; otherwise throws a SysError with the current errno. */
export function check(ret: number, syscall: string, context?: string): number {
  if (ret < 0) throw new SysError(syscall, koffi.errno(), context);
  return ret;
}

/** Memory outside the JS heap (an anonymous mapping), with its address for structs that point into it. */
export interface NativeBuffer {
  /** The address of the first byte. */
  readonly address: bigint;
  /** The bytes, viewed without copy. */
  readonly bytes: Uint8Array;
  /** The same bytes for little-endian field access. */
  readonly view: DataView;
  /** Unmaps the memory; idempotent. Views must not be touched afterwards. */
  free(): void;
}

const MAP_FAILED = 0xffffffffffffffffn;

/** Maps `length` bytes (anonymous, or `fd`'s at `offset` when given) and views them without copy. */
export function mapMemory(length: number, fd = -1, offset = 0): NativeBuffer {
  const flags = fd < 0 ? C.MAP_PRIVATE | C.MAP_ANONYMOUS : C.MAP_SHARED;
  const addr = sys.mmap(null, length, C.PROT_READ | C.PROT_WRITE, flags, fd, offset);
  if (addr === MAP_FAILED || addr === -1n) throw new SysError('mmap', koffi.errno(), `${length} bytes`);
  const ab = koffi.view(addr, length);
  let live = true;
  return {
    address: addr,
    bytes: new Uint8Array(ab),
    view: new DataView(ab),
    free() {
      if (!live) return;
      live = false;
      sys.munmap(addr, length);
    },
  };
}

// Where each ArrayBuffer's bytes lie, asked of V8 once per buffer (about 80 ns a time); -1 for memory koffi gives
// no address of (a SharedArrayBuffer).
const addresses = new WeakMap<ArrayBufferLike, number>();

/**
 * The address of `bytes`' first byte, for the kernel to read from (an iovec), or -1 when it has none to give: V8
 * keeps an ArrayBuffer's backing store where it is for the buffer's life (only typed arrays of a few dozen bytes
 * start on the heap, and moving them off it happens when their `.buffer` is first read, here before the address
 * is). A number: user-space addresses fit 53 bits.
 */
export function memoryAddress(bytes: Uint8Array): number {
  const buf = bytes.buffer;
  let a = addresses.get(buf);
  if (a === undefined) {
    try {
      a = Number(koffi.address(buf));
    } catch {
      a = -1;
    }
    addresses.set(buf, a);
  }
  return a < 0 ? -1 : a + bytes.byteOffset;
}

/** A zeroed `struct ifreq` (40 bytes) carrying the interface name. */
export function ifreq(name: string): Uint8Array {
  const enc = new TextEncoder().encode(name);
  if (enc.length === 0 || enc.length > 15) throw new Error(`interface name '${name}' must be 1..15 bytes`);
  const req = new Uint8Array(40);
  req.set(enc, 0);
  return req;
}

/** A `struct sockaddr_in` for an IPv4 address and port. */
export function sockaddrIn(ip: Uint8Array, port: number): Uint8Array {
  const sa = new Uint8Array(16);
  sa[0] = C.AF_INET;
  sa[2] = port >> 8;
  sa[3] = port & 0xff;
  sa.set(ip, 4);
  return sa;
}

/** Sets an int socket option, throwing SysError with the option's name on failure. */
export function setIntOption(fd: number, level: number, name: number, value: number, label: string): void {
  check(sys.setsockopt(fd, level, name, new Int32Array([value]), 4), 'setsockopt', label);
}

/** Readiness of one fd on Node's own event loop. */
export interface FdWatch {
  /** Also asks for writability (after a send hit EAGAIN) or stops asking. */
  wantWritable(on: boolean): void;
  /** Stops watching; idempotent. Must happen before the fd is closed. */
  close(): void;
  /** Lets the process exit while the watch is active. */
  unref(): void;
}

/**
 * Calls `onEvent` on the main event loop whenever `fd` is readable (and writable, when asked), level-triggered,
 * with no thread of ours: libuv's uv_poll through koffi. A negative `status` is a libuv error (the watch stops).
 * koffi marks this API as not yet documented, so it is kept behind this one function: a Worker blocked in poll()
 * waking the main thread through Atomics could replace it without touching callers.
 * libuv allows only one poll handle per fd, hence readable and writable share this one.
 */
export function watchFd(
  fd: number,
  onEvent: (readable: boolean, writable: boolean, status: number) => void,
): FdWatch {
  const cb = (status: number, ev: { readable: boolean; writable: boolean } | undefined) => {
    if (status < 0) {
      watch.close();
      onEvent(false, false, status);
      return;
    }
    onEvent(ev?.readable ?? false, ev?.writable ?? false, 0);
  };
  const handle = koffi.node.poll(fd, { readable: true }, cb as never);
  let open = true;
  let writable = false;
  const watch: FdWatch = {
    wantWritable(on) {
      if (!open || on === writable) return;
      writable = on;
      handle.start({ readable: true, writable: on }, cb as never);
    },
    close() {
      if (!open) return;
      open = false;
      handle.close();
    },
    unref() {
      handle.unref();
    },
  };
  return watch;
}

/** A `struct sockaddr_un` for a path (at most 107 bytes), and its length for bind/connect. */
export function sockaddrUn(path: string): [Uint8Array, number] {
  const p = new TextEncoder().encode(path);
  if (p.length === 0 || p.length > 107) throw new Error(`unix socket path '${path}' must be 1..107 bytes`);
  const sa = new Uint8Array(110);
  sa[0] = C.AF_UNIX;
  sa.set(p, 2);
  return [sa, 2 + p.length + 1];
}

/**
 * A listening unix stream socket bound to `path`, as a raw descriptor (close-on-exec), so that it can be handed to
 * a child process before that process starts (Node's own listening sockets expose no descriptor).
 */
export function listenUnix(path: string, backlog = 511): number {
  sockaddrUn(path);
  // The name appears only once the socket listens: bound under a private name, it is linked to `path` after
  // listen(), so whoever waits for the file never connects between bind and listen (ECONNREFUSED). link() refuses
  // an existing `path` as bind() would (EADDRINUSE).
  const slash = path.lastIndexOf('/');
  const temp = `${path.slice(0, slash + 1)}.t${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  const direct = new TextEncoder().encode(temp).length > 107;
  const [sa, len] = sockaddrUn(direct ? path : temp);
  const fd = check(sys.socket(C.AF_UNIX, 1 | C.SOCK_CLOEXEC, 0), 'socket', 'AF_UNIX');
  if (sys.bind(fd, sa, len) < 0 || sys.listen(fd, backlog) < 0) {
    const e = koffi.errno();
    sys.close(fd);
    if (!direct) rmSync(temp, { force: true });
    throw new SysError('bind', e, path);
  }
  if (direct) return fd;
  try {
    linkSync(temp, path);
  } catch (e) {
    sys.close(fd);
    const err = e as NodeJS.ErrnoException;
    throw new SysError('bind', err.code === 'EEXIST' ? 98 /* EADDRINUSE */ : Math.abs(err.errno ?? 5), path);
  } finally {
    rmSync(temp, { force: true });
  }
  return fd;
}
