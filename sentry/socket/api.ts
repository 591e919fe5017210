/**
 * The socket system calls as Linux programs make them, with Linux values in and out: fds, sockaddr bytes,
 * option buffers, flag words; a result ≥ 0 or -errno. Calls that can block return a Promise when they do
 * (blocking fd, nothing ready) and a number otherwise. The Sentry's socket layer implements it over the
 * netstack; the conformance runner's Linux DUT implements it over the host kernel, so one interpreter drives both.
 */

/** A result: ≥ 0 on success, -errno on failure; a Promise when the call blocked. */
export type SysRet = number | Promise<number>;

/** struct pollfd. */
export interface PollFd {
  fd: number;
  events: number;
  revents: number;
}

/** struct epoll_event: the event bits and the 64-bit user data (kept as a number). */
export interface EpollEvent {
  events: number;
  data: number;
}

/** struct msghdr without ancillary data: the name buffer (in/out), the iovecs, and msg_flags (out). */
export interface MsgHdr {
  /** sendmsg: destination sockaddr; recvmsg: buffer for the source (null for none). */
  name: Uint8Array | null;
  /** recvmsg: set to the source's length. */
  namelen: number;
  iov: Uint8Array[];
  /** recvmsg: MSG_TRUNC etc. */
  flags: number;
  /** sendmsg: the control bytes; recvmsg: a buffer for the control messages (its length is msg_controllen). */
  control?: Uint8Array;
  /** recvmsg: how many control bytes came. */
  controllen?: number;
}

/** The socket calls, Linux-shaped. */
export interface SocketSyscalls {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Uint8Array): number;
  listen(fd: number, backlog: number): number;
  connect(fd: number, addr: Uint8Array): SysRet;
  /** `addr`/`addrlen` receive the peer (addrlen[0] in: buffer size, out: address length). */
  accept4(fd: number, addr: Uint8Array | null, addrlen: Uint32Array | null, flags: number): SysRet;
  read(fd: number, buf: Uint8Array): SysRet;
  write(fd: number, buf: Uint8Array): SysRet;
  readv(fd: number, iov: Uint8Array[]): SysRet;
  writev(fd: number, iov: Uint8Array[]): SysRet;
  recvfrom(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null, addrlen: Uint32Array | null): SysRet;
  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null): SysRet;
  recvmsg(fd: number, msg: MsgHdr, flags: number): SysRet;
  sendmsg(fd: number, msg: MsgHdr, flags: number): SysRet;
  shutdown(fd: number, how: number): number;
  /** Frees the fd at once; blocks (a Promise) only while a TCP socket lingers (SO_LINGER on, time not 0). */
  close(fd: number): SysRet;
  getsockname(fd: number, addr: Uint8Array, addrlen: Uint32Array): number;
  getpeername(fd: number, addr: Uint8Array, addrlen: Uint32Array): number;
  /** optlen[0] in: buffer size, out: bytes written. */
  getsockopt(fd: number, level: number, name: number, optval: Uint8Array, optlen: Uint32Array): number;
  setsockopt(fd: number, level: number, name: number, optval: Uint8Array): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  /** `arg` is the int the request reads or writes. */
  ioctl(fd: number, request: number, arg: Int32Array): number;
  poll(fds: PollFd[], timeoutMs: number): SysRet;
  epollCreate(flags: number): number;
  epollCtl(epfd: number, op: number, fd: number, event: EpollEvent | null): number;
  epollWait(epfd: number, events: EpollEvent[], maxEvents: number, timeoutMs: number): SysRet;
}

/**
 * read, write, readv and writev of a socket, which Linux serves as recvfrom, sendto, recvmsg and sendmsg with no
 * flags and no address: the base of an implementation whose general calls already do it all.
 */
export abstract class SocketReadWrite {
  abstract recvfrom(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null, addrlen: Uint32Array | null): SysRet;
  abstract sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null): SysRet;
  abstract recvmsg(fd: number, msg: MsgHdr, flags: number): SysRet;
  abstract sendmsg(fd: number, msg: MsgHdr, flags: number): SysRet;

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
}
