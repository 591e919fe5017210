/**
 * The socket-level endpoint API that every transport implements (UDP, TCP, ICMP echo sockets) and that the
 * Sentry, the Node adapter and the conformance runner drive. Every operation is non-blocking: it completes,
 * or returns `Err.WouldBlock` and the caller waits on the endpoint's `WaiterQueue` for readiness.
 * Semantics follow Linux sockets; errors are `NetError` values mapped to errno by `ERRNO`.
 */
import type { Address } from './addr.ts';
import type { NetError } from './errors.ts';
import type { WaiterQueue } from './waiter.ts';

/** An IP address and port (a sockaddr_in / sockaddr_in6). IPv4-mapped IPv6 addresses are 16 bytes. */
export interface SocketAddress {
  readonly address: Address;
  readonly port: number;
  /** IPv6 scope id / bound NIC; 0 or undefined for any. */
  readonly nicId?: number;
}

/** Address family of a socket: AF_INET or AF_INET6 (IPv6 sockets accept IPv4-mapped peers unless V6ONLY). */
export type Family = 4 | 6;

/** Socket type. */
export type SocketType = 'stream' | 'dgram' | 'raw';

/** Options for read(). */
export interface ReadOptions {
  /** MSG_PEEK: return data without consuming it. */
  peek?: boolean;
  /** At most this many bytes (stream) or the user buffer size (datagram; the rest is truncated). */
  maxBytes?: number;
  /**
   * Datagram sockets: leave a pending error (SO_ERROR, an ICMP error) pending instead of returning it first, for
   * a reader that only moves data on (the Sentry's pump): the error is for the program's own next call.
   */
  keepError?: boolean;
  /**
   * Stream sockets: copy the bytes into this buffer (at most its length) and return a view of it, as recv(2)
   * into a user buffer, instead of a view of the socket's memory or a fresh array.
   */
  into?: Uint8Array;
  /**
   * Stream sockets, with `into`: MSG_TRUNC as Linux's tcp_recvmsg takes it, the bytes are read (or, with `peek`,
   * looked at) without being copied: the result is `into` cut to their count, its contents untouched. For a reader
   * that throws the data away (a discard or iperf3 sink), which then costs no copy per byte.
   */
  discard?: boolean;
}

/** The result of a successful read(). A zero-length `data` on a stream socket means end of stream. */
export interface ReadResult {
  readonly data: Uint8Array;
  /** The sender (datagram sockets). */
  readonly from?: SocketAddress;
  /** Datagram sockets: the datagram's full length (larger than data.length when truncated, MSG_TRUNC). */
  readonly size?: number;
}

/** One send's own IP header fields and source, as sendmsg's IP_TTL, IP_TOS, IP_PKTINFO (and IPv6 twins) give them. */
export interface IpSendOptions {
  /** TTL or hop limit instead of the socket's (IP_TTL / IPV6_HOPLIMIT). */
  readonly ttl?: number;
  /** TOS byte or traffic class instead of the socket's (IP_TOS / IPV6_TCLASS). */
  readonly tos?: number;
  /** The source address (ipi_spec_dst / ipi6_addr); it must be one of ours. Unspecified: the route's. */
  readonly source?: Address;
  /** The interface to send from (ipi_ifindex / ipi6_ifindex); 0 for the route's. */
  readonly nicId?: number;
}

/** Options for write(). */
export interface WriteOptions {
  /** Datagram sockets: this send's TTL, TOS, source or interface (sendmsg's control messages). */
  ip?: IpSendOptions;
  /** sendto() destination (datagram sockets; EISCONN-free on connected UDP as Linux allows). */
  to?: SocketAddress;
  /** MSG_MORE: more data follows soon (corks a stream, merges datagrams). */
  more?: boolean;
  /** MSG_EOR on a stream: later writes never share a segment with these bytes' last one (Linux's skb EOR). */
  eor?: boolean;
  /** With `zeroCopy`: the lengths of the call's iovecs from this write's first byte (Linux pins each as frags). */
  frags?: readonly number[];
  /**
   * MSG_FASTOPEN on a stream: connect to `to` with the data in the SYN (RFC 7413); the bytes the SYN carries are
   * the count written, and Err.ConnectStarted says the connection started with none of them.
   */
  fastOpen?: boolean;
  /**
   * MSG_ZEROCOPY on a stream with SO_ZEROCOPY on: `'new'` gives the bytes this write queues the socket's next
   * completion id, `'extend'` adds them to the id of the same send call's earlier write (a call that queued in
   * steps). Ignored without SO_ZEROCOPY, as Linux ignores the flag.
   */
  zeroCopy?: 'new' | 'extend';
  /**
   * Stream sockets: the caller never changes `data` again, so the socket may queue the array itself until it is
   * acknowledged instead of a copy of it (a sender of one constant block, as the iperf3 and chargen services are).
   */
  keep?: boolean;
}

/** An entry of a socket's error queue (Linux's struct sock_extended_err), read with recvmsg(MSG_ERRQUEUE). */
export interface ExtendedError {
  readonly errno: number;
  /** SO_EE_ORIGIN_*. */
  readonly origin: number;
  readonly type: number;
  readonly code: number;
  readonly info: number;
  readonly data: number;
  /** A transmit timestamp report's time on the stack's clock (ms), given as SCM_TIMESTAMPING; none for others. */
  readonly timestamp?: number;
  /** Bytes of the packet a timestamp report loops back (Linux queues a clone of it); only the length is kept. */
  readonly looped?: number;
  /** An ICMP error's sender (SO_EE_OFFENDER), port 0. */
  readonly offender?: SocketAddress;
  /** An ICMP error: the destination of the datagram it is about (recvmsg's msg_name). */
  readonly dest?: SocketAddress;
  /** An ICMP error: the payload of that datagram as the ICMP message quoted it (recvmsg's data). */
  readonly payload?: Uint8Array;
  /** An ICMP error: when it arrived, on the stack's clock (ms): SO_TIMESTAMP's stamp on its MSG_ERRQUEUE read. */
  readonly arrival?: number;
}

/** shutdown(2) directions, with Linux's SHUT_* values plus one. */
export const ShutdownRead = 1;
export const ShutdownWrite = 2;

/** A socket option value: integers and booleans as numbers, linger as an object, TCP_INFO as a record. */
export type OptionValue = number | boolean | string | Uint8Array | { [k: string]: number | boolean };

/** A socket endpoint inside the stack. */
export interface Endpoint {
  readonly family: Family;
  readonly type: SocketType;
  /** IANA protocol number (6, 17, 1 or 58). */
  readonly protocol: number;
  /** Readiness notifications (EventIn, EventOut, EventErr, EventHUp, EventRdHUp). */
  readonly waiter: WaiterQueue;

  /** The events in `mask` that are ready now, as poll(2) would report them. */
  readiness(mask: number): number;
  bind(addr: SocketAddress): NetError | undefined;
  /** Stream: starts connecting and returns Err.ConnectStarted (EINPROGRESS); readiness EventOut when done. */
  connect(addr: SocketAddress): NetError | undefined;
  /** Datagram: connect(AF_UNSPEC), dissolving the association. */
  disconnect(): NetError | undefined;
  listen(backlog: number): NetError | undefined;
  accept(): { endpoint: Endpoint; peer: SocketAddress } | NetError;
  read(opts?: ReadOptions): ReadResult | NetError;
  /**
   * Returns the number of bytes accepted (streams may accept fewer than given). The bytes are copied, as by
   * send(2): the caller may reuse `data` at once (tsvisor/net hands over one shared scratch buffer).
   */
  write(data: Uint8Array, opts?: WriteOptions): number | NetError;
  /**
   * Streams: the writes until the matching releaseTime() are one send call's, taking the stack's time once as
   * one sendmsg of several iovecs does (Linux's tcp_mstamp for the call), instead of once per write. Holds nest.
   */
  holdTime?(): void;
  /** Ends one holdTime(). */
  releaseTime?(): void;
  /** `how` is a bit set of ShutdownRead and ShutdownWrite. */
  shutdown(how: number): NetError | undefined;
  /** Releases the endpoint (a stream goes on closing in the background per its linger setting). */
  close(): void;
  localAddress(): SocketAddress | NetError;
  remoteAddress(): SocketAddress | NetError;
  /** Options by their Linux names: "SO_RCVBUF", "TCP_NODELAY", "IP_TTL", "IPV6_V6ONLY", ... */
  getOption(name: string): OptionValue | NetError;
  setOption(name: string, value: OptionValue): NetError | undefined;
  /** SO_ERROR: returns and clears the pending asynchronous error. */
  takeError(): NetError | undefined;
  /**
   * recvmsg(MSG_ERRQUEUE): takes the oldest entry of the socket's error queue, or undefined when it is empty (or
   * the transport keeps none).
   */
  takeQueuedError?(): ExtendedError | undefined;
  /** Bytes readable now (FIONREAD / SIOCINQ). */
  inQueue(): number;
  /** Bytes written but not yet acknowledged or sent (SIOCOUTQ). */
  outQueue(): number;
}
