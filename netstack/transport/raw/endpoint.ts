/**
 * Raw IP sockets (SOCK_RAW) for ICMP and ICMPv6, after Linux's net/ipv4/raw.c and net/ipv6/raw.c: every packet of
 * the socket's protocol that reaches the stack is also copied to each raw socket whose bound address, connected
 * peer, device and ICMP filter let it through. An IPv4 read returns the whole datagram, IP header included; an
 * IPv6 read starts at the ICMPv6 header (RFC 3542 §3). Sends carry the ICMP message only: the stack builds the IP
 * header (IP_HDRINCL is refused) and fills the ICMPv6 checksum (RFC 3542 §3.1), never the ICMPv4 one.
 */
import { type Address, addressEqual, isLinkLocalV6, isMulticast, isUnspecified } from '../../addr.ts';
import { Err, type NetError, isError } from '../../errors.ts';
import {
  type Endpoint,
  type Family,
  type OptionValue,
  type ReadOptions,
  type SocketAddress,
  type WriteOptions,
  ShutdownRead,
  ShutdownWrite,
} from '../../socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp, WaiterQueue } from '../../waiter.ts';
import { Icmpv6Packet } from '../../wire/icmpv6.ts';
import { type NetworkLayer, type PacketInfo, PROTO_ICMP, PROTO_ICMPV6 } from '../protocol.ts';
import { DATAGRAM_OVERHEAD, type DatagramReadResult, bindableAddress, foreignSource, sendsBroadcast, specDestination, withIp } from '../udp/datagram.ts';
import { DatagramOptions } from '../udp/options.ts';

/** What a raw socket needs from its protocol: the network layer, and a way to leave the delivery list. */
export interface RawHost {
  readonly net: NetworkLayer;
  remove(ep: RawEndpoint): void;
  count(counter: 'sent' | 'sendErrors'): void;
}

interface Queued {
  readonly data: Uint8Array;
  readonly info: PacketInfo;
  readonly charge: number;
  /** When the stack queued it (stack clock, ms). */
  readonly arrival: number;
}

/** Bytes of struct icmp_filter (one 32-bit mask over ICMPv4 types 0..31) and struct icmp6_filter (256 bits). */
const ICMP_FILTER_LEN = 4;
const ICMP6_FILTER_LEN = 32;
/** Where the ICMPv6 checksum sits; RFC 3542 §3.1 makes the kernel compute it, and IPV6_CHECKSUM reports this. */
const ICMPV6_CHECKSUM_OFFSET = 2;

/** A raw ICMP (IPv4) or ICMPv6 (IPv6) socket; create it through RawProtocol.newEndpoint. */
export class RawEndpoint implements Endpoint {
  readonly type = 'raw' as const;
  readonly waiter = new WaiterQueue();
  readonly opts: DatagramOptions;
  /** bind()'s address, all-zero for any: only packets to it are read and it is the source of sends. */
  bindAddr: Address;
  /** connect()'s peer: only packets from it are read, and it is the destination of write() without one. */
  peer: Address | null = null;
  /**
   * ICMP_FILTER / ICMP6_FILTER as Linux keeps them: a set bit blocks that message type (ICMPv4: types 0..31 only;
   * ICMPv6: all 256, RFC 3542 §3.2). Nothing is blocked at first.
   */
  private filter: Uint8Array;
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  private shutRd = false;
  private shutWr = false;
  private closed = false;

  constructor(
    readonly family: Family,
    readonly protocol: number,
    private readonly host: RawHost,
  ) {
    this.opts = new DatagramOptions(family, protocol);
    this.bindAddr = new Uint8Array(family === 4 ? 4 : 16);
    this.filter = new Uint8Array(family === 4 ? ICMP_FILTER_LEN : ICMP6_FILTER_LEN);
  }

  readiness(mask: number): number {
    let r = EventOut;
    if (this.queue.length > 0 || this.shutRd) r |= EventIn;
    if (this.shutRd) r |= EventRdHUp;
    if (this.shutRd && this.shutWr) r |= EventHUp;
    return r & (mask | EventErr | EventHUp);
  }

  /** raw_bind / rawv6_bind: the port is ignored; the address must be ours (or multicast/broadcast). */
  bind(addr: SocketAddress): NetError | undefined {
    if (this.closed) return Err.BadFileDescriptor;
    const a = addr.address;
    if (a.length !== (this.family === 4 ? 4 : 16)) return Err.InvalidArgument;
    if (!isUnspecified(a) && !bindableAddress(this.host.net, a, addr.nicId)) return Err.AddressNotAvailable;
    if (addr.nicId && this.family === 6 && isLinkLocalV6(a)) this.opts.boundNic = addr.nicId;
    this.bindAddr = a.slice();
    return undefined;
  }

  connect(addr: SocketAddress): NetError | undefined {
    if (this.closed) return Err.BadFileDescriptor;
    const a = addr.address;
    if (a.length !== (this.family === 4 ? 4 : 16)) return Err.AddressFamilyNotSupported;
    const route = this.route(a, addr.nicId);
    if (isError(route)) return route;
    this.peer = a.slice();
    return undefined;
  }

  disconnect(): NetError | undefined {
    if (this.closed) return Err.BadFileDescriptor;
    this.peer = null;
    return undefined;
  }

  listen(_backlog: number): NetError | undefined {
    return Err.NotSupported;
  }

  accept(): { endpoint: Endpoint; peer: SocketAddress } | NetError {
    return Err.NotSupported;
  }

  read(opts?: ReadOptions): DatagramReadResult | NetError {
    if (this.closed) return Err.BadFileDescriptor;
    const q = this.queue[0];
    if (!q) return this.shutRd ? Err.ClosedForReceive : Err.WouldBlock;
    if (!opts?.peek) {
      this.queue.shift();
      this.queuedBytes -= q.charge;
    }
    const max = opts?.maxBytes;
    const data = max !== undefined && max < q.data.length ? q.data.subarray(0, Math.max(0, max)) : q.data;
    // raw_recvmsg and rawv6_recvmsg report the sender with port 0; a link-local one keeps its scope.
    const from: SocketAddress = isLinkLocalV6(q.info.src) ? { address: q.info.src, port: 0, nicId: q.info.nicId } : { address: q.info.src, port: 0 };
    return { data, from, size: q.data.length, localAddress: q.info.dst, nicId: q.info.nicId, specDst: specDestination(this.host.net, q.info), tos: q.info.tos, ttl: q.info.ttl, arrival: q.arrival };
  }

  write(data: Uint8Array, opts?: WriteOptions): number | NetError {
    if (this.closed) return Err.BadFileDescriptor;
    let dest: Address;
    let nicId: number | undefined;
    if (opts?.to) {
      const a = opts.to.address;
      if (a.length !== (this.family === 4 ? 4 : 16)) return this.family === 4 ? Err.AddressFamilyNotSupported : Err.InvalidArgument;
      // rawv6_sendmsg takes sin6_port as the protocol: another protocol than the socket's is EINVAL.
      if (this.family === 6 && opts.to.port !== 0 && opts.to.port !== this.protocol) return Err.InvalidArgument;
      dest = a;
      nicId = opts.to.nicId;
    } else {
      if (!this.peer) return Err.DestinationRequired;
      dest = this.peer;
    }
    if (data.length > (this.family === 4 ? 0xffff - 20 : 0xffff)) return Err.MessageTooLong;
    if (this.family === 6 && this.protocol === PROTO_ICMPV6 && data.length < ICMPV6_CHECKSUM_OFFSET + 2) return Err.InvalidArgument;
    const src = opts?.ip?.source && !isUnspecified(opts.ip.source) ? opts.ip.source : undefined;
    const bad = src && foreignSource(this.host.net, src, dest);
    if (bad) return bad;
    const route = this.route(dest, opts?.ip?.nicId || nicId, src);
    if (isError(route)) return route;
    if (sendsBroadcast(dest, route) && !this.opts.broadcast) return Err.PermissionDenied;
    if (this.shutWr) return Err.ClosedForSend;
    const off = route.headroom;
    const buf = new Uint8Array(off + data.length);
    buf.set(data, off);
    if (this.family === 6 && this.protocol === PROTO_ICMPV6) {
      new Icmpv6Packet(buf.subarray(off)).fillChecksum(route.localAddress, route.remoteAddress);
    }
    const err = route.send(this.protocol, buf, off, withIp(this.opts.sendOptions(dest), opts?.ip));
    if (err) {
      this.host.count('sendErrors');
      return err;
    }
    this.host.count('sent');
    return data.length;
  }

  shutdown(how: number): NetError | undefined {
    if (this.closed) return Err.BadFileDescriptor;
    if (how === 0 || (how & ~(ShutdownRead | ShutdownWrite)) !== 0) return Err.InvalidArgument;
    if (how & ShutdownRead) this.shutRd = true;
    if (how & ShutdownWrite) this.shutWr = true;
    this.waiter.notify(this.readiness(EventIn | EventOut | EventRdHUp | EventHUp));
    return this.peer ? undefined : Err.NotConnected;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.host.remove(this);
  }

  localAddress(): SocketAddress | NetError {
    if (this.closed) return Err.BadFileDescriptor;
    // inet_create makes a raw socket's protocol its local "port", which getsockname reports.
    return { address: this.bindAddr, port: this.protocol };
  }

  remoteAddress(): SocketAddress | NetError {
    if (this.closed) return Err.BadFileDescriptor;
    if (!this.peer) return Err.NotConnected;
    return { address: this.peer, port: 0 };
  }

  getOption(name: string): OptionValue | NetError {
    switch (name) {
      case 'ICMP_FILTER':
        // raw_geticmpfilter: only on an IPv4 ICMP socket.
        return this.family === 4 && this.protocol === PROTO_ICMP ? this.filter.slice() : this.wrongFilter();
      case 'ICMP6_FILTER':
        return this.family === 6 && this.protocol === PROTO_ICMPV6 ? this.filter.slice() : this.wrongFilter();
      case 'IPV6_CHECKSUM':
        if (this.family !== 6) return Err.ProtocolNotAvailable;
        return this.protocol === PROTO_ICMPV6 ? ICMPV6_CHECKSUM_OFFSET : -1;
      case 'IP_HDRINCL':
        return this.family === 4 ? 0 : Err.ProtocolNotAvailable;
    }
    return this.opts.get(name, () => this.takeError());
  }

  setOption(name: string, value: OptionValue): NetError | undefined {
    switch (name) {
      case 'ICMP_FILTER':
      case 'ICMP6_FILTER': {
        const ok = name === 'ICMP_FILTER' ? this.family === 4 && this.protocol === PROTO_ICMP : this.family === 6 && this.protocol === PROTO_ICMPV6;
        if (!ok) return this.wrongFilter();
        if (!(value instanceof Uint8Array)) return Err.InvalidArgument;
        // Linux copies at most the struct's size; a shorter IPv4 value is EINVAL (raw_seticmpfilter).
        if (name === 'ICMP_FILTER' && value.length < ICMP_FILTER_LEN) return Err.InvalidArgument;
        const f = new Uint8Array(this.filter.length);
        f.set(value.subarray(0, f.length));
        this.filter = f;
        return undefined;
      }
      case 'IPV6_CHECKSUM':
        // RFC 3542 §3.1: an ICMPv6 socket's checksum is always the kernel's; Linux refuses to change it.
        return this.family === 6 ? Err.InvalidArgument : Err.ProtocolNotAvailable;
      case 'IP_HDRINCL':
        // Sends always get their IP header from the stack: asking to supply one is refused, not ignored.
        if (this.family !== 4) return Err.ProtocolNotAvailable;
        return value ? Err.NotSupported : undefined;
    }
    return this.opts.set(name, value, false);
  }

  /** No error is ever pending: ICMP errors are not queued to raw sockets (no IP_RECVERR), as SO_ERROR then shows. */
  takeError(): NetError | undefined {
    return undefined;
  }

  inQueue(): number {
    return this.queue[0]?.data.length ?? 0;
  }

  outQueue(): number {
    return 0;
  }

  /**
   * Whether a received packet is this socket's (raw_v4_match / raw_v6_match plus the ICMP filter):
   * `icmpType` is the type of the ICMP message it carries, or -1 when it is too short to have one.
   */
  matches(info: PacketInfo, icmpType: number): boolean {
    if (this.closed || this.shutRd) return false;
    if (!isUnspecified(this.bindAddr) && !addressEqual(this.bindAddr, info.dst)) return false;
    if (this.peer && !addressEqual(this.peer, info.src)) return false;
    if (this.opts.boundNic && this.opts.boundNic !== info.nicId) return false;
    return !this.filtered(icmpType);
  }

  /** Queues a copy of `packet`, or returns false when SO_RCVBUF is already exceeded (as sock_queue_rcv_skb). */
  enqueue(info: PacketInfo, packet: Uint8Array): boolean {
    if (this.closed || this.queuedBytes > this.opts.rcvbuf) return false;
    const charge = packet.length + DATAGRAM_OVERHEAD;
    this.queue.push({ data: packet.slice(), info: { ...info, src: info.src.slice(), dst: info.dst.slice() }, charge, arrival: this.host.net.clock.now() });
    this.queuedBytes += charge;
    this.waiter.notify(EventIn);
    return true;
  }

  private filtered(icmpType: number): boolean {
    // icmp_filter and rawv6_filter drop a message too short to hold an ICMP header, filter or not.
    if (icmpType < 0) return true;
    if (this.family === 4) {
      // Types above 31 have no bit in struct icmp_filter and always pass.
      if (icmpType > 31) return false;
      const mask = this.filter[0]! | (this.filter[1]! << 8) | (this.filter[2]! << 16) | (this.filter[3]! << 24);
      return ((mask >>> icmpType) & 1) === 1;
    }
    // struct icmp6_filter is 8 host-order 32-bit words: on little-endian, bit t of word t>>5 is byte t>>3, bit t&7.
    return ((this.filter[icmpType >> 3]! >> (icmpType & 7)) & 1) === 1;
  }

  /** ICMP_FILTER on a socket of another protocol: EOPNOTSUPP, as raw_getsockopt answers. */
  private wrongFilter(): NetError {
    return Err.NotSupported;
  }

  private route(dest: Address, nicId?: number, source?: Address) {
    const local = source ?? (isUnspecified(this.bindAddr) || isMulticast(this.bindAddr) ? undefined : this.bindAddr);
    return this.host.net.findRoute(dest, local, this.opts.boundNic || nicId || undefined);
  }
}
