/**
 * The contract between the network layer (stack.ts, network/) and the transport protocols (udp, tcp, icmp
 * echo sockets, raw). Transports are written against `NetworkLayer`, so they can be tested on any
 * implementation of it and plugged into the real stack unchanged.
 */
import type { Address } from '../addr.ts';
import type { Clock, HeldClock } from '../clock.ts';
import type { NetError } from '../errors.ts';
import type { GatherPayload } from '../link/endpoint.ts';
import type { Stats } from '../stats.ts';

/** IANA protocol numbers the stack knows. */
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

/** Metadata of a received IP packet, given with its transport payload. */
export interface PacketInfo {
  /** The NIC it arrived on. */
  readonly nicId: number;
  /** IP source address. */
  readonly src: Address;
  /** IP destination address (one of ours, a broadcast or a multicast address). */
  readonly dst: Address;
  /** TTL or hop limit as received. */
  readonly ttl: number;
  /** TOS byte or traffic class as received. */
  readonly tos: number;
  /** Whether dst was a broadcast or multicast address. */
  readonly broadcast: boolean;
  /** The link marked the frame RX_CSUM_VERIFIED: the transport skips its checksum check (the field may be partial). */
  readonly csumVerified?: boolean;
  /**
   * The link flagged the frame RX_MORE: more frames of this batch follow at once, so replies such as ACKs may
   * wait for `batchEnd()`.
   */
  readonly more?: boolean;
  /** The link flagged the frame RX_LOAN: its payload may be kept as a view until the transport's returnLoans(). */
  readonly loan?: boolean;
}

/** What a transport did with a packet; "no-endpoint" makes the network layer send an ICMP unreachable. */
export type DeliverResult = 'delivered' | 'no-endpoint' | 'malformed';

/** An ICMP or ICMPv6 error about a packet we sent, decoded by the network layer. */
export interface ControlMessage {
  readonly kind:
    | 'net-unreachable'
    | 'host-unreachable'
    | 'protocol-unreachable'
    | 'port-unreachable'
    | 'admin-prohibited'
    | 'packet-too-big'
    | 'time-exceeded'
    | 'parameter-problem'
    | 'source-route-failed';
  /** ICMP type and code as received. */
  readonly type: number;
  readonly code: number;
  /** 4 for ICMPv4, 6 for ICMPv6. */
  readonly family: 4 | 6;
  /** The node that sent the ICMP message. */
  readonly from: Address;
  /** The next-hop MTU for packet-too-big / fragmentation-needed, else 0. */
  readonly mtu: number;
}

/** A transport protocol registered with the network layer. */
export interface TransportProtocol {
  /** IANA protocol number (PROTO_TCP, PROTO_UDP, ...). */
  readonly protocolNumber: number;
  /**
   * Handles one received transport segment (its header included). The bytes are valid only for the
   * duration of the call. Checksums are the transport's to verify.
   */
  deliver(info: PacketInfo, segment: Uint8Array): DeliverResult;
  /**
   * Handles an ICMP error about a packet we sent from `local` to `remote`; `quoted` starts at the
   * transport header of that packet (as much of it as the ICMP message quoted, at least 8 bytes).
   */
  deliverControl?(msg: ControlMessage, local: Address, remote: Address, quoted: Uint8Array): void;
  /** The end of a batch of received frames (and of every clock tick that sent): send what was deferred. */
  batchEnd?(): void;
  /** The link ends the loans of its RX_LOAN frames (LinkDispatcher.returnLoans): copy what is still held of them. */
  returnLoans?(): void;
}

/**
 * Raw sockets' view of received packets (Linux's raw_local_deliver): the network layer offers each packet it
 * delivers locally here too, before its own protocol handler, and keeps handling it as before.
 */
export interface RawDispatcher {
  /** Whether any raw socket of this family and protocol is open (so a packet is only offered when it may matter). */
  wants(family: 4 | 6, protocol: number): boolean;
  /**
   * Offers one packet: for IPv4 the whole datagram, IP header included (reassembled, with its header fixed up),
   * for IPv6 the transport payload only; `transportOffset` is where the transport header starts in `packet`.
   * The bytes are lent for the duration of the call.
   */
  deliverRaw(family: 4 | 6, protocol: number, info: PacketInfo, packet: Uint8Array, transportOffset: number): void;
}

/** Per-packet send options. */
export interface SendOptions {
  /** TTL or hop limit; the route's default when undefined. */
  ttl?: number;
  /** TOS byte or traffic class. */
  tos?: number;
  /** IPv4: set the DF bit (path-MTU discovery); the default is true for TCP, false for UDP. */
  dontFragment?: boolean;
  /** IPv4: this identification instead of one from the path's counter (0 for replies of no connection). */
  identification?: number;
  /** A multicast datagram is also delivered to this host's members of the group unless false (IP_MULTICAST_LOOP). */
  multicastLoop?: boolean;
}

/** A resolved path to a remote address, from which a transport sends packets. */
export interface Route {
  readonly nicId: number;
  /** The local address packets are sent from. */
  readonly localAddress: Address;
  /** The final destination. */
  readonly remoteAddress: Address;
  /**
   * Bytes the network layer needs in front of a transport segment (link + IP header). A transport that
   * allocates `headroom + segmentLength` bytes and writes its segment at offset `headroom` is sent with
   * no copy.
   */
  readonly headroom: number;
  /** The largest transport segment that fits one IP packet on the current path MTU (PMTU cache included). */
  maxPayload(): number;
  /**
   * A packet of `length` bytes for one segment that is then sent on this route with `send` or `sendGso` at offset
   * `headroom`, before any other send: built in the link's own send memory when it offers that (so it leaves with
   * no copy), else freshly allocated. Its bytes are NOT zeroed: the caller writes every byte of its headers.
   * Optional: without it, allocate `headroom + segmentLength` bytes.
   */
  packetBuffer?(length: number): Uint8Array;
  /**
   * Sends one transport segment as one IP packet (fragmenting if it is larger than maxPayload and
   * dontFragment is off). `packet[offset..]` is the segment; `packet[0..offset)` is free headroom.
   */
  send(protocol: number, packet: Uint8Array, offset: number, opts?: SendOptions): NetError | undefined;
  /**
   * The largest transport super-segment (transport header + payload) that `sendGso` takes on this route, as
   * TSO/GSO lets the link cut it into maxPayload()-sized packets; 0 (or absent) when the route's link has no GSO.
   */
  gsoMaxSegment?(): number;
  /**
   * Sends one TCP super-segment whose payload (after `transportHeaderLength` bytes of TCP header) the link cuts
   * into segments of `gsoSize` bytes, every segment but the last full (TSO, as Linux's tcp_gso_segment: each
   * copy of the header gets its sequence number advanced, FIN/PSH only on the last, CWR only on the first).
   * The TCP checksum field must hold the pseudo-header sum over the whole super-segment's length, folded and
   * not complemented (Linux's CHECKSUM_PARTIAL): the link completes every segment's checksum. With `payload`,
   * `packet` ends with the transport header and the payload follows from `payload`'s pieces, which a link that
   * gathers points at instead of copying (see `gathers`).
   */
  sendGso?(
    protocol: number,
    packet: Uint8Array,
    offset: number,
    transportHeaderLength: number,
    gsoSize: number,
    opts?: SendOptions,
    payload?: GatherPayload,
  ): NetError | undefined;
  /**
   * Whether sendGso's `payload` reaches a link that points at it rather than joining it to the packet (a copy);
   * false (or absent) when it would be joined, which costs an allocation more than building the whole packet.
   */
  gathers?(): boolean;
  /**
   * Forward-progress confirmation of the route's next hop at time `now` (RFC 4861 §7.3.1), e.g. an ACK of new
   * data: keeps its neighbour entry REACHABLE without probes. Cheap enough to call per segment (no lookup, no
   * timer); absent on routes without a neighbour.
   */
  confirmNeighbor?(now: number): void;
}

/** What the network layer offers transports. */
export interface NetworkLayer {
  /** The stack's clock: every transport timer is scheduled through it. */
  readonly clock: Clock;
  /** The stack's clock as a HeldClock that its own layers read too, for a transport that holds time still. */
  readonly heldClock?: HeldClock;
  /** The stack's counters. */
  readonly stats: Stats;
  /** Registers a transport protocol for its protocol number (IPv4 and IPv6 alike). */
  registerTransport(p: TransportProtocol): void;
  /**
   * Finds a route to `remote`, from `local` when given (it must be one of ours), out of NIC `nicId` when
   * given; errors are NetworkUnreachable / AddressNotAvailable values. `kept`: `remote` is an array nothing
   * writes into (a received packet's PacketInfo.src, which the network layer copies once per source), so the route
   * may keep it rather than a copy of its own.
   */
  findRoute(remote: Address, local?: Address, nicId?: number, kept?: boolean): Route | NetError;
  /** Whether `a` is assigned to one of our NICs (or to `nicId` when given). */
  isLocalAddress(a: Address, nicId?: number): boolean;
  /** Joins (reference-counted) a multicast group on NIC `nicId`: its datagrams are then taken in there. */
  joinGroup?(nicId: number, group: Address): NetError | undefined;
  /** Drops one reference to a group joined with joinGroup. */
  leaveGroup?(nicId: number, group: Address): NetError | undefined;
  /** A random 32-bit unsigned integer from the stack's seeded source (ISNs, ephemeral ports, IDs). */
  random32(): number;
  /** A secret 16-byte key for keyed hashes (RFC 6528 ISNs, RFC 6056 ports, SYN cookies). */
  readonly secret: Uint8Array;
}
