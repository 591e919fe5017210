/**
 * The Linux socket ABI as numbers (x86-64 and aarch64 agree on all of these): address families, socket types
 * and flags, levels and option names, message flags, fcntl/ioctl requests, poll and epoll bits, and
 * sockaddr_in / sockaddr_in6 encoding. Errno values come from netstack/errors.ts (ERRNO_NAMES), never from here.
 */
import { ERRNO_NAMES } from '../../netstack/errors.ts';

/** Every constant a script or the syscall layer names, by its Linux name. */
export const LINUX = {
  AF_UNSPEC: 0, AF_INET: 2, AF_INET6: 10, PF_INET: 2, PF_INET6: 10,
  SOCK_STREAM: 1, SOCK_DGRAM: 2, SOCK_RAW: 3, SOCK_NONBLOCK: 0o4000, SOCK_CLOEXEC: 0o2000000,
  IPPROTO_IP: 0, IPPROTO_ICMP: 1, IPPROTO_TCP: 6, IPPROTO_UDP: 17, IPPROTO_IPV6: 41, IPPROTO_ICMPV6: 58,
  SOL_SOCKET: 1, SOL_IP: 0, SOL_TCP: 6, SOL_UDP: 17, SOL_IPV6: 41,
  SO_DEBUG: 1, SO_REUSEADDR: 2, SO_TYPE: 3, SO_ERROR: 4, SO_DONTROUTE: 5, SO_BROADCAST: 6, SO_SNDBUF: 7,
  SO_RCVBUF: 8, SO_KEEPALIVE: 9, SO_OOBINLINE: 10, SO_NO_CHECK: 11, SO_PRIORITY: 12, SO_LINGER: 13,
  SO_REUSEPORT: 15, SO_PASSCRED: 16, SO_RCVLOWAT: 18, SO_SNDLOWAT: 19, SO_RCVTIMEO: 20, SO_SNDTIMEO: 21,
  SO_BINDTODEVICE: 25, SO_TIMESTAMP: 29, SO_ACCEPTCONN: 30, SO_SNDBUFFORCE: 32, SO_RCVBUFFORCE: 33,
  SO_MARK: 36, SO_TIMESTAMPING: 37, SCM_TIMESTAMPING: 37, SO_PROTOCOL: 38, SO_DOMAIN: 39, SO_ZEROCOPY: 60,
  SO_TIMESTAMPNS: 35, SO_TIMESTAMP_NEW: 63, SO_TIMESTAMPNS_NEW: 64,
  SCM_TIMESTAMP: 29, SCM_TIMESTAMPNS: 35, SCM_TIMESTAMP_NEW: 63, SCM_TIMESTAMPNS_NEW: 64,
  TCP_NODELAY: 1, TCP_MAXSEG: 2, TCP_CORK: 3, TCP_KEEPIDLE: 4, TCP_KEEPINTVL: 5, TCP_KEEPCNT: 6, TCP_SYNCNT: 7,
  TCP_LINGER2: 8, TCP_DEFER_ACCEPT: 9, TCP_WINDOW_CLAMP: 10, TCP_INFO: 11, TCP_QUICKACK: 12, TCP_CONGESTION: 13,
  TCP_USER_TIMEOUT: 18, TCP_NOTSENT_LOWAT: 25, TCP_FASTOPEN: 23, TCP_INQ: 36, TCP_CM_INQ: 36,
  TCP_FASTOPEN_CONNECT: 30, TCP_FASTOPEN_KEY: 33, TCP_FASTOPEN_NO_COOKIE: 34, UDP_CORK: 1,
  IP_TOS: 1, IP_TTL: 2, IP_HDRINCL: 3, IP_OPTIONS: 4, IP_RECVERR: 11, IP_MTU_DISCOVER: 10, IP_MTU: 14,
  IP_MULTICAST_IF: 32, IP_MULTICAST_TTL: 33, IP_MULTICAST_LOOP: 34, IP_ADD_MEMBERSHIP: 35, IP_DROP_MEMBERSHIP: 36, IP_PKTINFO: 8, IP_RECVTOS: 13,
  IP_RECVTTL: 12, IP_RECVORIGDSTADDR: 20, IP_ORIGDSTADDR: 20, IP_RECVOPTS: 6, IP_RETOPTS: 7,
  IP_FREEBIND: 15, IP_BIND_ADDRESS_NO_PORT: 24, IPV6_FREEBIND: 78,
  IPV6_UNICAST_HOPS: 16, IPV6_MULTICAST_IF: 17, IPV6_MULTICAST_HOPS: 18, IPV6_MULTICAST_LOOP: 19, IPV6_V6ONLY: 26,
  IPV6_ADD_MEMBERSHIP: 20, IPV6_DROP_MEMBERSHIP: 21,
  IPV6_RECVERR: 25, IPV6_MTU_DISCOVER: 23, IPV6_MTU: 24, IPV6_TCLASS: 67, IPV6_RECVTCLASS: 66, IPV6_RECVPKTINFO: 49,
  IPV6_2292PKTINFO: 2, IPV6_2292HOPLIMIT: 8, IPV6_PKTINFO: 50, IPV6_RECVHOPLIMIT: 51, IPV6_HOPLIMIT: 52, IPV6_RECVORIGDSTADDR: 74, IPV6_ORIGDSTADDR: 74,
  SOL_RAW: 255, ICMP_FILTER: 1, ICMP6_FILTER: 1, IPV6_CHECKSUM: 7,
  MSG_OOB: 0x1, MSG_PEEK: 0x2, MSG_DONTROUTE: 0x4, MSG_CTRUNC: 0x8, MSG_TRUNC: 0x20, MSG_DONTWAIT: 0x40,
  MSG_EOR: 0x80, MSG_WAITALL: 0x100, MSG_CONFIRM: 0x800, MSG_ERRQUEUE: 0x2000, MSG_NOSIGNAL: 0x4000, MSG_MORE: 0x8000,
  MSG_ZEROCOPY: 0x4000000, MSG_FASTOPEN: 0x20000000,
  SHUT_RD: 0, SHUT_WR: 1, SHUT_RDWR: 2,
  F_DUPFD: 0, F_GETFD: 1, F_SETFD: 2, F_GETFL: 3, F_SETFL: 4, FD_CLOEXEC: 1,
  O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_NONBLOCK: 0o4000, O_NDELAY: 0o4000, O_CLOEXEC: 0o2000000,
  FIONREAD: 0x541b, SIOCINQ: 0x541b, SIOCOUTQ: 0x5411, FIONBIO: 0x5421, SIOCOUTQNSD: 0x894b, SIOCATMARK: 0x8905,
  POLLIN: 0x1, POLLPRI: 0x2, POLLOUT: 0x4, POLLERR: 0x8, POLLHUP: 0x10, POLLNVAL: 0x20, POLLRDNORM: 0x40,
  POLLRDBAND: 0x80, POLLWRNORM: 0x100, POLLWRBAND: 0x200, POLLRDHUP: 0x2000,
  EPOLLIN: 0x1, EPOLLPRI: 0x2, EPOLLOUT: 0x4, EPOLLERR: 0x8, EPOLLHUP: 0x10, EPOLLRDNORM: 0x40, EPOLLRDHUP: 0x2000,
  EPOLLEXCLUSIVE: 1 << 28, EPOLLONESHOT: 1 << 30, EPOLLET: 0x80000000,
  EPOLL_CTL_ADD: 1, EPOLL_CTL_DEL: 2, EPOLL_CTL_MOD: 3, EPOLL_CLOEXEC: 0o2000000,
  TCP_ESTABLISHED: 1, TCP_SYN_SENT: 2, TCP_SYN_RECV: 3, TCP_FIN_WAIT1: 4, TCP_FIN_WAIT2: 5, TCP_TIME_WAIT: 6,
  TCP_CLOSE: 7, TCP_CLOSE_WAIT: 8, TCP_LAST_ACK: 9, TCP_LISTEN: 10, TCP_CLOSING: 11,
  IP_PMTUDISC_DONT: 0, IP_PMTUDISC_WANT: 1, IP_PMTUDISC_DO: 2, IP_PMTUDISC_PROBE: 3,
} as const;

/** Errno names to numbers (EWOULDBLOCK and EDEADLOCK as Linux aliases), from the one table in errors.ts. */
export const ERRNO_BY_NAME: Readonly<Record<string, number>> = (() => {
  const out: Record<string, number> = {};
  for (const [n, name] of Object.entries(ERRNO_NAMES)) out[name] = Number(n);
  out.EWOULDBLOCK = out.EAGAIN!;
  return out;
})();

/** The value of a Linux constant or errno name, or undefined. */
export function linuxConstant(name: string): number | undefined {
  return (LINUX as Record<string, number>)[name] ?? ERRNO_BY_NAME[name];
}

/** A socket address as a record: family, address bytes (4 or 16), port, IPv6 flow info and scope id. */
export interface SockAddr {
  readonly family: number;
  readonly address: Uint8Array;
  readonly port: number;
  readonly flowinfo?: number;
  readonly scopeId?: number;
}

/** sizeof(struct sockaddr_in) and sizeof(struct sockaddr_in6). */
export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;

/** Encodes a sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes), ports and addresses in network order. */
export function encodeSockaddr(sa: SockAddr): Uint8Array {
  const v4 = sa.family === LINUX.AF_INET;
  const b = new Uint8Array(v4 ? SOCKADDR_IN_LEN : SOCKADDR_IN6_LEN);
  const v = new DataView(b.buffer);
  v.setUint16(0, sa.family, true);
  v.setUint16(2, sa.port, false);
  if (v4) b.set(sa.address.subarray(0, 4), 4);
  else {
    v.setUint32(4, sa.flowinfo ?? 0, false);
    b.set(sa.address.subarray(0, 16), 8);
    v.setUint32(24, sa.scopeId ?? 0, true);
  }
  return b;
}

/** Decodes a sockaddr; a string says why it is not one (EINVAL for short lengths, EAFNOSUPPORT for families). */
export function decodeSockaddr(b: Uint8Array): SockAddr | 'short' | 'family' {
  if (b.length < 2) return 'short';
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = v.getUint16(0, true);
  if (family === LINUX.AF_INET) {
    if (b.length < SOCKADDR_IN_LEN) return 'short';
    return { family, port: v.getUint16(2, false), address: b.slice(4, 8) };
  }
  if (family === LINUX.AF_INET6) {
    if (b.length < 24) return 'short';
    return { family, port: v.getUint16(2, false), flowinfo: v.getUint32(4, false), address: b.slice(8, 24), scopeId: b.length >= 28 ? v.getUint32(24, true) : 0 };
  }
  if (family === LINUX.AF_UNSPEC) return { family, port: 0, address: new Uint8Array(0) };
  return 'family';
}
