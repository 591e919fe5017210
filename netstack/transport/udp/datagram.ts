/**
 * The socket semantics that UDP and ICMP echo ("ping") sockets share, after Linux's inet datagram sockets:
 * bind/autobind, connect/disconnect, the receive queue bounded by SO_RCVBUF, pending ICMP errors (SO_ERROR),
 * shutdown, readiness and the SOL_SOCKET/SOL_IP/SOL_IPV6 options. Subclasses build and send the packets.
 */
import { type Address, IPV4_BROADCAST, addressEqual, isLinkLocalV6, isMulticast, isUnspecified, thisHost } from '../../addr.ts';
import { Err, type NetError, isError } from '../../errors.ts';
import {
  type Endpoint,
  type ExtendedError,
  type Family,
  type IpSendOptions,
  type OptionValue,
  type ReadOptions,
  type ReadResult,
  type SocketAddress,
  type WriteOptions,
  ShutdownRead,
  ShutdownWrite,
} from '../../socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp, WaiterQueue } from '../../waiter.ts';
import type { PortManager } from '../ports.ts';
import { mapV4, unmapV4 } from '../ports.ts';
import { type NetworkLayer, type PacketInfo, PROTO_UDP, type Route, type SendOptions } from '../protocol.ts';
import type { DemuxEntry, DemuxTable } from './demux.ts';
import { DatagramOptions } from './options.ts';
import type { IcmpErrorDetail, IcmpSocketError } from './icmperr.ts';

/** Whether a datagram socket may bind `a`: one of ours, or a multicast/broadcast address (Linux allows both). */
export function bindableAddress(net: NetworkLayer, a: Address, nicId?: number): boolean {
  if (isMulticast(a) || (a.length === 4 && addressEqual(a, IPV4_BROADCAST))) return true;
  return net.isLocalAddress(a, nicId || undefined);
}

/**
 * Whether sending to `a` over `route` needs SO_BROADCAST: the limited broadcast address, or a route the network
 * layer marks as a broadcast one (the Stack's Path has `kind`; the Route contract has no such field yet).
 */
export function sendsBroadcast(a: Address, route: Route): boolean {
  if (a.length === 4 && addressEqual(a, IPV4_BROADCAST)) return true;
  return (route as { readonly kind?: string }).kind === 'broadcast';
}

/**
 * IP_PKTINFO's ipi_spec_dst, as Linux's fib_compute_spec_dst finds it: the destination itself when it is one of
 * ours, else (a broadcast or multicast datagram) the source address of the route back to the sender.
 */
export function specDestination(net: NetworkLayer, info: PacketInfo): Address {
  if (!info.broadcast) return info.dst;
  const r = net.findRoute(info.src, undefined, info.nicId);
  return isError(r) ? info.dst : r.localAddress;
}

/**
 * Why a send may not use `source` (IP_PKTINFO's ipi_spec_dst, IPV6_PKTINFO's address) toward `dest`, or
 * undefined when it may: one that is not ours is ENETUNREACH for IPv4 (ip_route_output_key finds no device for
 * it) and EINVAL for IPv6 (ip6_datagram_send_ctl checks it), as Linux 6.18 answers.
 */
export function foreignSource(net: NetworkLayer, source: Address, dest: Address): NetError | undefined {
  if (source.length === dest.length && net.isLocalAddress(source)) return undefined;
  return dest.length === 4 ? Err.NetworkUnreachable : Err.InvalidArgument;
}

/** A socket's send options with one send's own TTL and TOS over them (sendmsg's IP_TTL, IP_TOS). */
export function withIp(so: SendOptions, ip: IpSendOptions | undefined): SendOptions {
  if (!ip || (ip.ttl === undefined && ip.tos === undefined)) return so;
  return { ...so, ttl: ip.ttl ?? so.ttl, tos: ip.tos ?? so.tos };
}

/** Bytes charged per queued datagram beyond its payload, standing in for Linux's skb truesize overhead. */
export const DATAGRAM_OVERHEAD = 768;

/**
 * A datagram read: the ReadResult plus what the receive control messages carry (IP_PKTINFO, IP_RECVTOS,
 * IP_RECVTTL and their IPv6 twins, SO_TIMESTAMP*), kept per datagram as Linux keeps them in the skb.
 */
export interface DatagramReadResult extends ReadResult {
  readonly from: SocketAddress;
  readonly size: number;
  /** The datagram's destination address (IP_PKTINFO ipi_addr / in6_pktinfo), in the socket's family. */
  readonly localAddress: Address;
  /** The NIC it arrived on (ipi_ifindex). */
  readonly nicId: number;
  /** The address a reply would come from (IP_PKTINFO ipi_spec_dst), unmapped. */
  readonly specDst: Address;
  readonly tos: number;
  readonly ttl: number;
  /** When the stack queued it, on the stack's clock (ms): the receive timestamp (skb->tstamp). */
  readonly arrival: number;
}

/** An entry of the error queue: what recvmsg(MSG_ERRQUEUE) reads, the error it stands for, its charge. */
interface QueuedError {
  readonly ee: ExtendedError;
  readonly err: NetError;
  readonly charge: number;
}

/** Linux's net.ipv4.igmp_max_memberships default: groups one socket may join. */
const MAX_MEMBERSHIPS = 20;
/** Groups used only to ask for the route of multicast out of a NIC (224.0.0.1, ff02::1). */
const MCAST_ALL_HOSTS = new Uint8Array([224, 0, 0, 1]);
const MCAST_ALL_NODES = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

/** The little-endian int at byte `at` of an option's bytes (an interface index in ip_mreqn, ipv6_mreq), or 0 past its end. */
function int32At(v: Uint8Array, at: number): number {
  return v.length >= at + 4 ? new DataView(v.buffer, v.byteOffset, v.length).getInt32(at, true) : 0;
}

/** A membership's key: the NIC and the group. */
function membershipKey(nicId: number, group: Address): string {
  return `${nicId} ${group.join('.')}`;
}

/** SO_EE_ORIGIN_ICMP and SO_EE_ORIGIN_ICMP6 (linux/errqueue.h). */
const ORIGIN_ICMP = 2;
const ORIGIN_ICMP6 = 3;

interface Queued {
  readonly data: Uint8Array;
  readonly src: Address;
  readonly srcPort: number;
  readonly info: PacketInfo;
  readonly charge: number;
  readonly arrival: number;
}

/** What a datagram socket needs from its protocol. */
export interface DatagramHost<E extends DemuxEntry> {
  readonly net: NetworkLayer;
  readonly ports: PortManager;
  readonly table: DemuxTable<E>;
}

/** A destination: an unmapped address and a port. */
export interface Dest {
  readonly address: Address;
  readonly port: number;
  readonly nicId: number;
}

/** The shared datagram-socket state machine; `send` and a few limits are the subclass's. */
export abstract class DatagramEndpoint implements Endpoint, DemuxEntry {
  readonly type = 'dgram' as const;
  readonly waiter = new WaiterQueue();

  /** Bound port (UDP) or echo identifier (ping); 0 while unbound. */
  localPort = 0;
  /** Local address in unmapped form; all-zero for the wildcard (4 bytes: IPv4 only). Set by connect() too. */
  bindAddr: Address;
  /** The connected peer in unmapped form. */
  peer: { address: Address; port: number } | null = null;
  /** The socket's options (SO_*, IP_*, IPV6_*). */
  readonly opts: DatagramOptions;

  private reservedAddr: Address | null = null;
  private explicitAddr = false;
  private explicitPort = false;
  private readonly queue: Queued[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  /** IP_RECVERR's error queue (Linux's sk_error_queue), oldest first, charged against SO_RCVBUF too. */
  private readonly errQueue: QueuedError[] = [];
  private errBytes = 0;
  private error: NetError | undefined;
  private shutRd = false;
  private shutWr = false;
  private closed = false;
  private cork: { route: Route; dest: Dest; chunks: Uint8Array[]; length: number } | null = null;
  /** UDP_CORK: every write is held as if sent with MSG_MORE, until the option is cleared. */
  private corkOpt = false;
  /** Multicast groups joined through this socket (IP_ADD_MEMBERSHIP, IPV6_ADD_MEMBERSHIP): "NIC group" → both. */
  private memberships: Map<string, { nicId: number; group: Address }> | null = null;
  /** IP_MULTICAST_IF: the NIC and source address of IPv4 multicast sends (0 and 0.0.0.0: the route's). */
  private mcastNic4 = 0;
  private mcastAddr4: Address = new Uint8Array(4);
  /** IPV6_MULTICAST_IF: the NIC of IPv6 multicast sends (0: the route's). */
  private mcastNic6 = 0;

  constructor(
    readonly family: Family,
    readonly protocol: number,
    private readonly host: DatagramHost<DatagramEndpoint>,
  ) {
    this.opts = new DatagramOptions(family, protocol);
    this.bindAddr = this.wildcard();
  }

  /** IPV6_V6ONLY (for the demuxer). */
  get v6only(): boolean {
    return this.opts.v6only;
  }

  /** SO_BINDTODEVICE (for the demuxer). */
  get boundNic(): number {
    return this.opts.boundNic;
  }

  /** SO_REUSEPORT (for the demuxer). */
  get reusePort(): boolean {
    return this.opts.reusePort;
  }

  /** Builds and sends one datagram from the bound port to `dest` over `route`; returns bytes sent. */
  protected abstract send(route: Route, dest: Dest, data: Uint8Array, opts: SendOptions): number | NetError;
  /** The largest message accepted for an IPv4 (true) or IPv6 destination. */
  protected abstract maxMessage(v4: boolean): number;
  /** Checks a destination port; UDP refuses 0 on sendto, ping sockets ignore ports. */
  protected abstract checkDestPort(port: number): NetError | undefined;
  /** Whether an IPv6 socket also talks to IPv4 peers as ::ffff:a.b.c.d (UDP yes, ping sockets no). */
  protected readonly dualStack: boolean = true;
  /** Whether MSG_MORE merges writes into one datagram (UDP yes; Linux's ping sockets ignore it). */
  protected readonly corkable: boolean = false;
  /** Whether peers have no ports (ping sockets): destination ports are ignored and reported as 0. */
  protected readonly portless: boolean = false;
  /** Checks a message before anything is sent (ping sockets insist on an echo request header). */
  protected validate(_data: Uint8Array): NetError | undefined {
    return undefined;
  }
  /** The address a port is reserved under; ping identifiers conflict whatever the address (Linux ping_get_port). */
  protected portAddress(a: Address): Address {
    return a;
  }

  // --- Endpoint: readiness ---

  readiness(mask: number): number {
    // Datagrams leave at once, so the socket is always writable. A pending error also makes it readable
    // (a read returns at once), so that a waiter that asked only for EventIn still wakes up.
    let r = EventOut;
    if (this.queueHead < this.queue.length || this.error || this.shutRd) r |= EventIn;
    // datagram_poll: a queued error is POLLERR as much as a pending one.
    if (this.error || this.errQueue.length > 0) r |= EventErr;
    if (this.shutRd) r |= EventRdHUp;
    if (this.shutRd && this.shutWr) r |= EventHUp;
    // poll(2) reports errors and hang-ups whatever was asked for.
    return r & (mask | EventErr | EventHUp);
  }

  // --- bind / connect ---

  bind(addr: SocketAddress): NetError | undefined {
    if (this.closed) return Err.BadFileDescriptor;
    if (this.localPort !== 0) return Err.InvalidArgument;
    const a = addr.address;
    if (this.family === 4 ? a.length !== 4 : a.length !== 16) return Err.AddressFamilyNotSupported;
    const plain = unmapV4(a);
    if (this.family === 6 && plain.length === 4 && (this.v6only || !this.dualStack)) return Err.InvalidArgument;
    // Linux's __inet6_bind: a link-local address needs its interface, from the scope id or SO_BINDTODEVICE.
    if (plain.length === 16 && isLinkLocalV6(plain) && !addr.nicId && !this.opts.boundNic) return Err.InvalidArgument;
    if (!isUnspecified(plain) && !this.opts.freebind && !this.bindable(plain, addr.nicId)) return Err.AddressNotAvailable;
    if (addr.nicId && this.family === 6 && isLinkLocalV6(plain)) this.opts.boundNic = addr.nicId;
    const r = this.reserve(this.portAddress(a), addr.port);
    // Linux reports an exhausted range on bind(port 0) as EADDRINUSE (inet_csk_get_port).
    if (isError(r)) return r === Err.NoPortAvailable ? Err.AddressInUse : r;
    this.bindAddr = plain;
    // Linux's __inet6_bind (UDP's, not the ping socket's): bound to one IPv6 address, not the wildcard nor a
    // v4-mapped one, the socket is IPv6-only, as IPV6_V6ONLY then reads.
    if (this.protocol === PROTO_UDP && plain.length === 16 && !isUnspecified(plain)) this.opts.v6only = true;
    // ::ffff:0.0.0.0 is an explicit choice too: the IPv4 wildcard only.
    this.explicitAddr = !isUnspecified(plain) || plain.length !== this.wildcard().length;
    this.explicitPort = addr.port !== 0;
    return undefined;
  }

  connect(addr: SocketAddress): NetError | undefined {
    if (this.closed) return Err.BadFileDescriptor;
    const dest = this.destination(addr, true);
    if (isError(dest)) return dest;
    if (this.localPort === 0) {
      const r = this.reserve(this.portAddress(this.wildcard()), 0);
      if (isError(r)) return r;
    }
    const route = this.route(dest);
    if (isError(route)) return route;
    if (sendsBroadcast(dest.address, route) && !this.opts.broadcast) return Err.PermissionDenied;
    // Linux fixes the source address at connect time (ip4_datagram_connect) unless bind() chose one.
    if (!this.explicitAddr) this.bindAddr = route.localAddress;
    this.peer = { address: dest.address, port: dest.port };
    return undefined;
  }

  disconnect(): NetError | undefined {
    if (this.closed) return Err.BadFileDescriptor;
    this.peer = null;
    this.cork = null;
    if (!this.explicitAddr) this.bindAddr = this.wildcard();
    // udp_disconnect: an autobound port goes back to the pool.
    if (!this.explicitPort && this.localPort !== 0) this.unbind();
    return undefined;
  }

  listen(_backlog: number): NetError | undefined {
    return Err.NotSupported;
  }

  accept(): { endpoint: Endpoint; peer: SocketAddress } | NetError {
    return Err.NotSupported;
  }

  // --- data ---

  read(opts?: ReadOptions): DatagramReadResult | NetError {
    if (this.closed) return Err.BadFileDescriptor;
    // Linux's __skb_recv_udp reports a pending error before queued data.
    const e = opts?.keepError ? undefined : this.takeError();
    if (e) return e;
    const q = this.queue[this.queueHead];
    if (!q) return this.shutRd ? Err.ClosedForReceive : Err.WouldBlock;
    if (!opts?.peek) this.dequeue();
    const max = opts?.maxBytes;
    const data = max !== undefined && max < q.data.length ? q.data.subarray(0, Math.max(0, max)) : q.data;
    // A link-local source carries its scope (sin6_scope_id) so that replies leave by the same NIC.
    const from: SocketAddress = isLinkLocalV6(q.src)
      ? { address: q.src, port: q.srcPort, nicId: q.info.nicId }
      : { address: this.present(q.src), port: q.srcPort };
    return {
      data,
      from,
      size: q.data.length,
      localAddress: this.present(q.info.dst),
      nicId: q.info.nicId,
      specDst: specDestination(this.host.net, q.info),
      tos: q.info.tos,
      ttl: q.info.ttl,
      arrival: q.arrival,
    };
  }

  write(data: Uint8Array, opts?: WriteOptions): number | NetError {
    if (this.closed) return Err.BadFileDescriptor;
    // inet_send_prepare autobinds before anything else is checked.
    if (this.localPort === 0) {
      const r = this.reserve(this.portAddress(this.wildcard()), 0);
      if (isError(r)) return r;
    }
    const more = opts?.more === true || this.corkOpt;
    if (this.cork) return this.appendCorked(data, more);
    if (data.length > 0xffff) return Err.MessageTooLong;
    const invalid = this.validate(data);
    if (invalid) return invalid;
    let dest: Dest;
    if (opts?.to) {
      const d = this.destination(opts.to, false);
      if (isError(d)) return d;
      const bad = this.checkDestPort(d.port);
      if (bad) return bad;
      dest = d;
    } else {
      if (!this.peer) return Err.DestinationRequired;
      dest = { address: this.peer.address, port: this.peer.port, nicId: 0 };
    }
    const route = this.route(dest, opts?.ip);
    if (isError(route)) return route;
    if (sendsBroadcast(dest.address, route) && !this.opts.broadcast) return Err.PermissionDenied;
    if (data.length > this.maxMessage(dest.address.length === 4)) return Err.MessageTooLong;
    const e = this.takeError();
    if (e) return e;
    if (this.shutWr) return Err.ClosedForSend;
    if (more && this.corkable) {
      this.cork = { route, dest, chunks: [data.slice()], length: data.length };
      return data.length;
    }
    return this.send(route, dest, data, withIp(this.opts.sendOptions(dest.address), opts?.ip));
  }

  /**
   * MSG_MORE on a corked socket: appends to the pending datagram, whose destination was fixed by the first
   * call (udp_sendmsg ignores later addresses); the first write without MSG_MORE sends it all as one datagram.
   */
  private appendCorked(data: Uint8Array, more: boolean): number | NetError {
    const c = this.cork!;
    if (c.length + data.length > this.maxMessage(c.dest.address.length === 4)) {
      // ip_append_data fails and udp_flush_pending_frames discards the whole corked datagram.
      this.cork = null;
      return Err.MessageTooLong;
    }
    c.chunks.push(data.slice());
    c.length += data.length;
    if (more) return data.length;
    this.cork = null;
    const whole = new Uint8Array(c.length);
    let off = 0;
    for (const chunk of c.chunks) {
      whole.set(chunk, off);
      off += chunk.length;
    }
    const r = this.send(c.route, c.dest, whole, this.opts.sendOptions(c.dest.address));
    return isError(r) ? r : data.length;
  }

  shutdown(how: number): NetError | undefined {
    if (this.closed) return Err.BadFileDescriptor;
    if (how === 0 || (how & ~(ShutdownRead | ShutdownWrite)) !== 0) return Err.InvalidArgument;
    // inet_shutdown marks an unconnected datagram socket too (waking pollers) but still says ENOTCONN.
    if (how & ShutdownRead) this.shutRd = true;
    if (how & ShutdownWrite) this.shutWr = true;
    this.waiter.notify(this.readiness(EventIn | EventOut | EventRdHUp | EventHUp));
    return this.peer ? undefined : Err.NotConnected;
  }

  close(): void {
    if (this.closed) return;
    if (this.localPort !== 0) this.unbind();
    for (const m of this.memberships?.values() ?? []) this.host.net.leaveGroup?.(m.nicId, m.group);
    this.memberships = null;
    this.closed = true;
    this.cork = null;
    this.queue.length = 0;
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.errQueue.length = 0;
    this.errBytes = 0;
    this.peer = null;
  }

  localAddress(): SocketAddress | NetError {
    if (this.closed) return Err.BadFileDescriptor;
    return { address: this.present(this.bindAddr), port: this.localPort };
  }

  remoteAddress(): SocketAddress | NetError {
    if (this.closed) return Err.BadFileDescriptor;
    if (!this.peer) return Err.NotConnected;
    return { address: this.present(this.peer.address), port: this.peer.port };
  }

  takeError(): NetError | undefined {
    const e = this.error;
    this.error = undefined;
    return e;
  }

  inQueue(): number {
    return this.queue[this.queueHead]?.data.length ?? 0;
  }

  /** SIOCOUTQ: datagrams leave at once, so only a corked (MSG_MORE) datagram is waiting. */
  outQueue(): number {
    return this.cork?.length ?? 0;
  }

  // --- options ---

  getOption(name: string): OptionValue | NetError {
    if (name === 'IP_MULTICAST_IF') return this.mcastAddr4.slice();
    if (name === 'IPV6_MULTICAST_IF' && this.family === 6) return this.mcastNic6;
    if (name === 'UDP_CORK' && this.corkable) return this.corkOpt ? 1 : 0;
    return this.opts.get(name, () => this.takeError());
  }

  setOption(name: string, value: OptionValue): NetError | undefined {
    switch (name) {
      case 'IP_ADD_MEMBERSHIP':
      case 'IP_DROP_MEMBERSHIP':
        return this.membership4(name === 'IP_ADD_MEMBERSHIP', value);
      case 'IPV6_ADD_MEMBERSHIP':
      case 'IPV6_DROP_MEMBERSHIP':
        return this.family === 6 ? this.membership6(name === 'IPV6_ADD_MEMBERSHIP', value) : Err.ProtocolNotAvailable;
      case 'IP_MULTICAST_IF':
        return this.multicastIf4(value);
      case 'IPV6_MULTICAST_IF':
        return this.family === 6 ? this.multicastIf6(value) : Err.ProtocolNotAvailable;
      case 'UDP_CORK':
        return this.corkable ? this.setCork(value) : Err.ProtocolNotAvailable;
    }
    return this.opts.set(name, value, this.localPort !== 0);
  }

  /**
   * UDP_CORK (Linux's udp_lib_setsockopt): on, writes are appended to one pending datagram as MSG_MORE ones are;
   * off, the pending datagram is sent at once (udp_push_pending_frames), its error lost as Linux's is.
   */
  private setCork(value: OptionValue): NetError | undefined {
    if (typeof value !== 'number') return Err.InvalidArgument;
    this.corkOpt = value !== 0;
    if (!this.corkOpt && this.cork) this.appendCorked(new Uint8Array(0), false);
    return undefined;
  }

  /**
   * IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP with a struct ip_mreq (group, interface address) or ip_mreqn (and an
   * interface index, which here is the NIC's id): the NIC is the index's, else the address's, else the route's to
   * the group (Linux's ip_mc_find_dev); ENODEV when there is none. A second join of a group on a NIC is EADDRINUSE,
   * a drop of one not joined EADDRNOTAVAIL, more than 20 groups ENOBUFS (igmp_max_memberships).
   */
  private membership4(join: boolean, v: OptionValue): NetError | undefined {
    if (!(v instanceof Uint8Array) || v.length < 8) return Err.InvalidArgument;
    const group = v.slice(0, 4);
    if (!isMulticast(group)) return Err.InvalidArgument;
    const ifaddr = v.subarray(4, 8);
    const nic = this.groupNic(group, isUnspecified(ifaddr) ? undefined : ifaddr.slice(), int32At(v, 8));
    if (isError(nic)) return join ? nic : Err.AddressNotAvailable;
    if (join && (this.memberships?.size ?? 0) >= MAX_MEMBERSHIPS) return Err.NoBufferSpace;
    return join ? this.join(nic, group) : this.leave(nic, group);
  }

  /** IPV6_ADD_MEMBERSHIP / IPV6_DROP_MEMBERSHIP with a struct ipv6_mreq (group, interface index: the NIC's id). */
  private membership6(join: boolean, v: OptionValue): NetError | undefined {
    if (!(v instanceof Uint8Array) || v.length < 20) return Err.InvalidArgument;
    const group = v.slice(0, 16);
    if (!isMulticast(group)) return Err.InvalidArgument;
    const nic = this.groupNic(group, undefined, int32At(v, 16));
    if (isError(nic)) return join ? nic : Err.AddressNotAvailable;
    return join ? this.join(nic, group) : this.leave(nic, group);
  }

  /** The NIC a group is joined on: `ifindex`'s, else the one holding `ifaddr`, else the route's to the group. */
  private groupNic(group: Address, ifaddr: Address | undefined, ifindex: number): number | NetError {
    if (ifindex <= 0 && ifaddr) {
      // The NIC that holds the address: the route to it is that NIC's own.
      if (!this.host.net.isLocalAddress(ifaddr)) return Err.NoDevice;
      const own = this.host.net.findRoute(ifaddr);
      return 'send' in own ? own.nicId : Err.NoDevice;
    }
    const r = this.host.net.findRoute(group, undefined, ifindex > 0 ? ifindex : undefined);
    return 'send' in r ? r.nicId : Err.NoDevice;
  }

  private join(nicId: number, group: Address): NetError | undefined {
    const key = membershipKey(nicId, group);
    this.memberships ??= new Map();
    if (this.memberships.has(key)) return Err.AddressInUse;
    const e = this.host.net.joinGroup?.(nicId, group);
    if (e) return e;
    this.memberships.set(key, { nicId, group });
    return undefined;
  }

  private leave(nicId: number, group: Address): NetError | undefined {
    if (!this.memberships?.delete(membershipKey(nicId, group))) return Err.AddressNotAvailable;
    this.host.net.leaveGroup?.(nicId, group);
    return undefined;
  }

  /**
   * IP_MULTICAST_IF: a struct in_addr (the interface's address), or an ip_mreq / ip_mreqn (address, index); the
   * unspecified address and no index go back to the route's choice; an address no NIC has is EADDRNOTAVAIL.
   */
  private multicastIf4(v: OptionValue): NetError | undefined {
    if (!(v instanceof Uint8Array) || v.length < 4) return Err.InvalidArgument;
    const addr = (v.length >= 8 ? v.subarray(4, 8) : v.subarray(0, 4)).slice();
    const ifindex = int32At(v, 8);
    if (ifindex <= 0 && isUnspecified(addr)) {
      this.mcastNic4 = 0;
      this.mcastAddr4 = addr;
      return undefined;
    }
    const nic = this.groupNic(MCAST_ALL_HOSTS, ifindex > 0 ? undefined : addr, ifindex);
    if (isError(nic)) return Err.AddressNotAvailable;
    this.mcastNic4 = nic;
    this.mcastAddr4 = addr;
    return undefined;
  }

  /** IPV6_MULTICAST_IF: an interface index (the NIC's id), 0 for the route's choice; ENODEV for none. */
  private multicastIf6(v: OptionValue): NetError | undefined {
    if (typeof v !== 'number' || !Number.isInteger(v)) return Err.InvalidArgument;
    if (v !== 0) {
      const nic = this.groupNic(MCAST_ALL_NODES, undefined, v);
      if (isError(nic)) return Err.NoDevice;
    }
    this.mcastNic6 = v;
    return undefined;
  }

  // --- used by the protocol ---

  /**
   * Queues a received datagram (copying it, since the caller's bytes are only lent), or returns false when
   * SO_RCVBUF is exceeded: like Linux's __udp_enqueue_schedule_skb, a datagram is refused only once the
   * queue already holds more than the limit, so one datagram always fits.
   */
  enqueue(info: PacketInfo, srcPort: number, payload: Uint8Array): boolean {
    if (this.closed || this.queuedBytes > this.opts.rcvbuf) return false;
    const charge = payload.length + DATAGRAM_OVERHEAD;
    const src = info.src.slice();
    const copy: PacketInfo = { ...info, src, dst: info.dst.slice() };
    this.queue.push({ data: payload.slice(), src, srcPort, info: copy, charge, arrival: this.host.net.clock.now() });
    this.queuedBytes += charge;
    this.waiter.notify(EventIn);
    return true;
  }

  /**
   * Records an ICMP-derived error as Linux's __udp4_lib_err / __udp6_lib_err (and ping_err) do: without
   * IP_RECVERR (IPV6_RECVERR for an ICMPv6 error) only a hard error on a connected socket, as the pending error;
   * with it every error, also queued with its details for recvmsg(MSG_ERRQUEUE) (ip_icmp_error).
   */
  reportError(e: IcmpSocketError, detail?: IcmpErrorDetail): void {
    if (this.closed) return;
    const recverr = detail !== undefined && this.opts.flag(detail.msg.family === 4 ? 'IP_RECVERR' : 'IPV6_RECVERR');
    if (!recverr) {
      if (!e.hard || !this.peer) return;
    } else this.queueError(e, detail);
    this.error = e.err;
    this.waiter.notify(EventErr | EventIn);
  }

  /**
   * recvmsg(MSG_ERRQUEUE): the oldest queued error. As sock_dequeue_err_skb, the pending error becomes the next
   * queued one's (or none): a program that drains the queue is left with no stale SO_ERROR.
   */
  takeQueuedError(): ExtendedError | undefined {
    const q = this.errQueue.shift();
    if (!q) return undefined;
    this.errBytes -= q.charge;
    this.error = this.errQueue[0]?.err;
    return q.ee;
  }

  private queueError(e: IcmpSocketError, d: IcmpErrorDetail): void {
    const payload = d.payload.slice();
    const charge = payload.length + DATAGRAM_OVERHEAD;
    // sock_queue_err_skb: refused once the receive memory with it would reach SO_RCVBUF.
    if (this.queuedBytes + this.errBytes + charge >= this.opts.rcvbuf) return;
    const m = d.msg;
    // ee_info: the next-hop MTU of "fragmentation needed" and "packet too big" (icmp_err's info), else 0.
    const ee: ExtendedError = {
      errno: e.err.errno,
      origin: m.family === 4 ? ORIGIN_ICMP : ORIGIN_ICMP6,
      type: m.type,
      code: m.code,
      info: m.mtu,
      data: 0,
      offender: { address: this.present(m.from), port: 0 },
      dest: { address: this.present(d.remote), port: d.remotePort },
      payload,
      arrival: this.host.net.clock.now(),
    };
    this.errQueue.push({ ee, err: e.err, charge });
    this.errBytes += charge;
  }

  /** Bytes charged against SO_RCVBUF now (payloads plus per-datagram overhead). */
  get receiveBufferUsed(): number {
    return this.queuedBytes;
  }

  // --- internals ---

  private dequeue(): void {
    const q = this.queue[this.queueHead]!;
    this.queuedBytes -= q.charge;
    this.queueHead++;
    if (this.queueHead > 64 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    } else if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
  }

  private wildcard(): Address {
    return new Uint8Array(this.family === 4 ? 4 : 16);
  }

  private bindable(a: Address, nicId?: number): boolean {
    return bindableAddress(this.host.net, a, nicId);
  }

  private reserve(address: Address, port: number): number | NetError {
    const r = this.host.ports.reserve({
      protocol: this.protocol,
      address,
      port,
      family: this.family,
      v6only: this.v6only,
      reuseAddr: this.opts.reuseAddr,
      reusePort: this.reusePort,
      nicId: this.boundNic,
      owner: this,
    });
    if (isError(r)) return r;
    this.reservedAddr = address;
    this.localPort = r;
    this.host.table.add(this);
    return r;
  }

  private unbind(): void {
    this.host.table.remove(this, this.localPort);
    this.host.ports.release(this.protocol, this.reservedAddr!, this.localPort, this);
    this.localPort = 0;
    this.reservedAddr = null;
    this.explicitPort = false;
  }

  /** Normalises a user-given peer to unmapped form, checking families as inet/inet6 sendmsg and connect do. */
  private destination(addr: SocketAddress, connecting: boolean): Dest | NetError {
    const a = addr.address;
    if (a.length !== 4 && a.length !== 16) return Err.InvalidArgument;
    if (this.family === 4 && a.length !== 4) return Err.AddressFamilyNotSupported;
    const plain = unmapV4(a);
    if (this.family === 6 && plain.length === 4) {
      if (!this.dualStack) return a.length === 4 ? Err.AddressFamilyNotSupported : Err.InvalidArgument;
      if (this.v6only) return a.length === 4 && connecting ? Err.AddressFamilyNotSupported : Err.NetworkUnreachable;
      if (!isUnspecified(this.bindAddr) && this.bindAddr.length === 16) return Err.NetworkUnreachable;
    }
    if (this.family === 6 && plain.length === 16 && this.bindAddr.length === 4) return Err.NetworkUnreachable;
    if (!Number.isInteger(addr.port) || addr.port < 0 || addr.port > 65535) return Err.InvalidArgument;
    // The unspecified address is this host, as Linux routes it (addr.ts thisHost).
    const address = isUnspecified(plain) ? thisHost(plain.length, this.bindAddr) : plain;
    return { address, port: this.portless ? 0 : addr.port, nicId: addr.nicId ?? 0 };
  }

  private route(dest: Dest, ip?: IpSendOptions): Route | NetError {
    let local = isUnspecified(this.bindAddr) || isMulticast(this.bindAddr) ? undefined : this.bindAddr;
    const source = ip?.source && !isUnspecified(unmapV4(ip.source)) ? unmapV4(ip.source) : undefined;
    if (source) {
      const bad = foreignSource(this.host.net, source, dest.address);
      if (bad) return bad;
      local = source;
    }
    let mcastNic = 0;
    if (isMulticast(dest.address)) {
      // Linux's udp_sendmsg: a multicast datagram leaves by IP_MULTICAST_IF's NIC, from its address when given.
      mcastNic = dest.address.length === 4 ? this.mcastNic4 : this.mcastNic6;
      if (!local && dest.address.length === 4 && !isUnspecified(this.mcastAddr4)) local = this.mcastAddr4;
    }
    const nic = ip?.nicId || this.boundNic || mcastNic || dest.nicId || undefined;
    if (local && local.length !== dest.address.length) return Err.NetworkUnreachable;
    return this.host.net.findRoute(dest.address, local, nic);
  }


  /** An address as this socket's family shows it: IPv4 peers of an IPv6 socket are ::ffff:a.b.c.d. */
  private present(a: Address): Address {
    return this.family === 6 && a.length === 4 ? mapV4(a) : a;
  }
}
