/**
 * AF_UNIX socketpairs and raw fd I/O through koffi for the Sentry's data path: the pairs whose one end the
 * program holds, non-blocking recv/send that return -errno instead of throwing (hot path), the socket-buffer
 * knobs the non-blocking-connect and listener tricks turn, fstat's inode (which of our sockets an fd is), and
 * a poll handle on the main loop whose readable and writable interests can both be switched off.
 * Struct layouts are x86-64's (the only architecture the Sentry supports).
 */
import koffi from 'koffi';
import { C, minusErrno, SysError } from './libc.ts';

const libc = koffi.load('libc.so.6');

type Buf = Uint8Array | Int32Array | Uint32Array;

const raw = {
  socketpair: libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)') as (
    d: number, t: number, p: number, sv: number[]) => number,
  recv: libc.func('long recv(int fd, void *buf, size_t len, int flags)') as (fd: number, b: Buf | null, n: number, f: number) => number,
  send: libc.func('long send(int fd, void *buf, size_t len, int flags)') as (fd: number, b: Buf | null, n: number, f: number) => number,
  shutdown: libc.func('int shutdown(int fd, int how)') as (fd: number, how: number) => number,
  close: libc.func('int close(int fd)') as (fd: number) => number,
  dup: libc.func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number,
  fstat: libc.func('int fstat(int fd, void *buf)') as (fd: number, b: Uint8Array) => number,
  ioctl: libc.func('int ioctl(int fd, unsigned long req, void *arg)') as (fd: number, req: number, a: Buf) => number,
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, void *val, uint32_t len)') as (
    fd: number, level: number, name: number, val: Buf, len: number) => number,
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, void *val, void *len)') as (
    fd: number, level: number, name: number, val: Buf, len: Uint32Array) => number,
  poll: libc.func('int poll(void *fds, unsigned long n, int timeout)') as (fds: Uint8Array, n: number, t: number) => number,
};

/** Numbers of the UAPI this file uses beyond lib/libc.ts's C. */
export const U = {
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_SEQPACKET: 5,
  O_NONBLOCK: 0o4000,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  F_DUPFD_CLOEXEC: 1030,
  F_GETFL: 3,
  F_SETFL: 4,
  FIONREAD: 0x541b,
  SIOCOUTQ: 0x5411,
  MSG_PEEK: 0x2,
  MSG_TRUNC: 0x20,
  MSG_DONTWAIT: 0x40,
  MSG_NOSIGNAL: 0x4000,
  POLLIN: 0x1,
  POLLOUT: 0x4,
  POLLERR: 0x8,
  POLLHUP: 0x10,
  POLLRDHUP: 0x2000,
  SO_ERROR: 4,
  SO_RCVTIMEO: 20,
  SO_SNDTIMEO: 21,
  EAGAIN: 11,
  EPIPE: 32,
  ECONNRESET: 104,
} as const;

/** A socketpair(AF_UNIX, type) with both ends close-on-exec; `nonblock` sets O_NONBLOCK on both. Throws SysError. */
export function socketPair(type: 'stream' | 'dgram' | 'seqpacket', nonblock = true): [number, number] {
  const sv = [0, 0];
  const base = type === 'stream' ? U.SOCK_STREAM : type === 'dgram' ? U.SOCK_DGRAM : U.SOCK_SEQPACKET;
  const t = base | C.SOCK_CLOEXEC | (nonblock ? C.SOCK_NONBLOCK : 0);
  if (raw.socketpair(C.AF_UNIX, t, 0, sv) < 0) throw new SysError('socketpair', koffi.errno(), type);
  return [sv[0]!, sv[1]!];
}

/** recv(2): bytes read, 0 at end of stream (or an empty datagram), or -errno. */
export function recv(fd: number, buf: Uint8Array, flags: number = U.MSG_DONTWAIT): number {
  const n = raw.recv(fd, buf, buf.length, flags);
  return minusErrno(n);
}

/** send(2) without SIGPIPE: bytes sent or -errno. */
export function send(fd: number, buf: Uint8Array, flags: number = U.MSG_DONTWAIT): number {
  const n = raw.send(fd, buf, buf.length, flags | U.MSG_NOSIGNAL);
  return minusErrno(n);
}

/** shutdown(2): 0 or -errno. */
export function shutdown(fd: number, how: number): number {
  return raw.shutdown(fd, how) < 0 ? -koffi.errno() : 0;
}

/** close(2): 0 or -errno. */
export function close(fd: number): number {
  return raw.close(fd) < 0 ? -koffi.errno() : 0;
}

/** A close-on-exec duplicate of `fd`, or -errno. */
export function dup(fd: number): number {
  const r = raw.dup(fd, U.F_DUPFD_CLOEXEC, 0);
  return minusErrno(r);
}

/** fcntl(F_GETFL): the open file description's status flags, or -errno. */
export function getFl(fd: number): number {
  const r = raw.dup(fd, U.F_GETFL, 0);
  return minusErrno(r);
}

/** fcntl(F_SETFL): 0 or -errno. */
export function setFl(fd: number, flags: number): number {
  return raw.dup(fd, U.F_SETFL, flags) < 0 ? -koffi.errno() : 0;
}

const statBuf = new Uint8Array(144);

/** fstat(2)'s st_ino (offset 8 of x86-64's struct stat), or -errno. */
export function inode(fd: number): number | bigint {
  if (raw.fstat(fd, statBuf) < 0) return -koffi.errno();
  const ino = new DataView(statBuf.buffer).getBigUint64(8, true);
  return ino <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(ino) : ino;
}

const intBuf = new Int32Array(1);
const lenBuf = new Uint32Array(1);

/** ioctl(FIONREAD): bytes queued to read (stream) or the next datagram's length, or -errno. */
export function inQueue(fd: number): number {
  return raw.ioctl(fd, U.FIONREAD, intBuf) < 0 ? -koffi.errno() : intBuf[0]!;
}

/** ioctl(SIOCOUTQ): bytes written and not yet read by the peer, or -errno. */
export function outQueue(fd: number): number {
  return raw.ioctl(fd, U.SIOCOUTQ, intBuf) < 0 ? -koffi.errno() : intBuf[0]!;
}

/** An int socket option, or -errno. */
export function getIntOpt(fd: number, level: number, name: number): number {
  lenBuf[0] = 4;
  return raw.getsockopt(fd, level, name, intBuf, lenBuf) < 0 ? -koffi.errno() : intBuf[0]!;
}

/** Sets an int socket option: 0 or -errno. */
export function setIntOpt(fd: number, level: number, name: number, value: number): number {
  intBuf[0] = value;
  return raw.setsockopt(fd, level, name, intBuf, 4) < 0 ? -koffi.errno() : 0;
}

/** Sets a socket option from bytes (a struct timeval, say): 0 or -errno. */
export function setOpt(fd: number, level: number, name: number, value: Uint8Array): number {
  return raw.setsockopt(fd, level, name, value, value.length) < 0 ? -koffi.errno() : 0;
}

/** SO_ERROR: the socket's pending error, which reading it clears (0 when none), or -errno. */
export function takeSocketError(fd: number): number {
  return getIntOpt(fd, C.SOL_SOCKET, U.SO_ERROR);
}

/** SO_SNDBUF as getsockopt reports it (twice what was set). */
export function sndBuf(fd: number): number {
  return getIntOpt(fd, C.SOL_SOCKET, C.SO_SNDBUF);
}

/** Sets SO_SNDBUF (the kernel doubles it and clamps it to its minimum): 0 or -errno. */
export function setSndBuf(fd: number, bytes: number): number {
  return setIntOpt(fd, C.SOL_SOCKET, C.SO_SNDBUF, bytes);
}

/**
 * Sets SO_SNDBUF beyond net.core.wmem_max with SO_SNDBUFFORCE (CAP_NET_ADMIN), falling back to SO_SNDBUF (clamped
 * to wmem_max) without it: 0 or -errno.
 */
export function forceSndBuf(fd: number, bytes: number): number {
  const r = setIntOpt(fd, C.SOL_SOCKET, C.SO_SNDBUFFORCE, bytes);
  return r === 0 ? 0 : setSndBuf(fd, bytes);
}

const pollBuf = new Uint8Array(8);

/** poll(2) of one fd with timeout 0: the revents, or -errno. */
export function pollNow(fd: number, events: number): number {
  const v = new DataView(pollBuf.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  v.setInt16(6, 0, true);
  const r = raw.poll(pollBuf, 1, 0);
  if (r < 0) return -koffi.errno();
  return r === 0 ? 0 : v.getUint16(6, true);
}

/** Readiness of one fd on the main loop, whose two interests switch independently (both off stops the handle). */
export interface FdPoll {
  /**
   * Sets the interests; an unchanged set costs nothing. `disconnect` (EPOLLRDHUP) also reports POLLHUP, which
   * epoll always delivers and libuv hands over as the interests asked for: the only way to hear of a peer's close
   * on an fd that stays readable.
   */
  set(readable: boolean, writable: boolean, disconnect?: boolean): void;
  /** Stops watching; idempotent. Must happen before the fd is closed. */
  close(): void;
  /**
   * Hands the handle to a new owner: `onEvent` gets its events from now on, with the interests as they are until
   * it sets its own. Saves making a second handle for the same fd (uv_poll_init's epoll_ctl check and FIONBIO).
   */
  retarget(onEvent: (readable: boolean, writable: boolean, status: number) => void): void;
}

/**
 * Calls `onEvent(readable, writable)` on the main loop while `fd` is ready for an interest that is on
 * (level-triggered, libuv's uv_poll through koffi); a negative `status` is a libuv error and stops the handle.
 * Unlike lib/libc.ts's watchFd, readability can be switched off: a pump that cannot forward what it would read
 * must stop asking, or the level-triggered poll spins.
 */
export function pollFd(fd: number, onEvent: (readable: boolean, writable: boolean, status: number) => void): FdPoll {
  let handler = onEvent;
  let r = false;
  let w = false;
  let d = false;
  let open = true;
  const cb = (status: number, ev: { readable: boolean; writable: boolean; disconnect: boolean } | undefined) => {
    if (!open) return;
    if (status < 0) {
      handle.stop();
      handler(false, false, status);
      return;
    }
    handler(ev?.readable ?? false, ev?.writable ?? false, 0);
  };
  // libuv's uv_poll_init_socket sets O_NONBLOCK, which lives on the open file description: on a dup of the
  // program's end it would make the program's own blocking socket non-blocking. Put the flags back.
  const fl = raw.dup(fd, U.F_GETFL, 0);
  const handle = koffi.node.poll(fd, { readable: false, writable: false }, cb as never);
  if (fl >= 0 && !(fl & U.O_NONBLOCK)) raw.dup(fd, U.F_SETFL, fl);
  handle.stop();
  return {
    set(readable, writable, disconnect = false) {
      if (!open || (readable === r && writable === w && disconnect === d)) return;
      r = readable;
      w = writable;
      d = disconnect;
      if (!r && !w && !d) handle.stop();
      else handle.start({ readable: r, writable: w, disconnect: d }, cb as never);
    },
    close() {
      if (!open) return;
      open = false;
      handle.close();
    },
    retarget(next) {
      handler = next;
    },
  };
}
