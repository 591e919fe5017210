/**
 * The network layer's `Route`: a resolved path from one of our addresses to a remote address through a NIC,
 * from which transports send segments.
 */
import { type Address, addressKey } from '../addr.ts';
import type { NetError } from '../errors.ts';
import type { GatherPayload } from '../link/endpoint.ts';
import type { Route, SendOptions } from '../transport/protocol.ts';
import { allocPacket } from '../wire/alloc.ts';
import type { StackInternals } from './internals.ts';
import type { NeighborRef } from './neighbor.ts';
import type { Nic } from './nic.ts';

/** How a path's packets leave: to a neighbour, back to ourselves, or to a link-layer broadcast/multicast. */
export type PathKind = 'unicast' | 'local' | 'broadcast' | 'multicast';

/** Ethernet header bytes in front of every IP packet. */
export const LINK_HEADROOM = 14;

/** A Route as the stack implements it. */
export class Path implements Route {
  /** Link plus fixed IP header. */
  readonly headroom: number;
  /** IPv4: which identification counter this path draws from; computed on first use. */
  identSlot = -1;
  /** The neighbour cache key of nextHop, so sending does not rebuild it per packet. */
  readonly nextHopKey: string | undefined;
  /** nextHop's neighbour entry, looked up on the first confirmation and again only after it left the table. */
  private neighbor: NeighborRef | undefined;

  constructor(
    private readonly s: StackInternals,
    /** The NIC packets leave through. */
    readonly nic: Nic,
    readonly localAddress: Address,
    readonly remoteAddress: Address,
    /** The neighbour frames go to (the gateway or the destination); undefined unless kind is unicast. */
    readonly nextHop: Address | undefined,
    readonly kind: PathKind,
    /** nextHop's addressKey when the caller has it. */
    nextHopKey?: string,
  ) {
    this.headroom = LINK_HEADROOM + (remoteAddress.length === 4 ? 20 : 40);
    this.nextHopKey = nextHopKey ?? (nextHop && addressKey(nextHop));
  }

  get nicId(): number {
    return this.nic.id;
  }

  confirmNeighbor(now: number): void {
    if (this.nextHop === undefined || this.nic.loopback) return;
    const cache = this.nextHop.length === 4 ? this.nic.arp : this.nic.ndp;
    const n = this.neighbor;
    if (n !== undefined && cache.confirmRef(n, now)) return;
    this.neighbor = cache.ref(this.nextHop, this.nextHopKey);
    if (this.neighbor !== undefined) cache.confirmRef(this.neighbor, now);
  }

  /** The path MTU (PMTU cache, link MTU; 65535 for packets to ourselves). */
  mtu(): number {
    if (this.kind === 'local') return 65535;
    return this.s.pmtu.get(this.remoteAddress, this.nic.mtu);
  }

  maxPayload(): number {
    return this.mtu() - (this.headroom - LINK_HEADROOM);
  }

  /**
   * The link's send memory for a unicast path out of a real link that offers it (frame offset 0 is the link
   * header, as send/sendGso use a packet with `headroom` in place), else allocPacket: packets to ourselves wait
   * in the loopback queue, so they must not live in link memory.
   */
  packetBuffer(length: number): Uint8Array {
    if (this.kind === 'unicast' && !this.nic.loopback) {
      const link = this.nic.link;
      const view = link.frameBuffer === undefined ? null : link.frameBuffer(length);
      if (view !== null) return view;
    }
    return allocPacket(length);
  }

  send(protocol: number, packet: Uint8Array, offset: number, opts?: SendOptions): NetError | undefined {
    return this.remoteAddress.length === 4
      ? this.s.ipv4.send(this, protocol, packet, offset, opts)
      : this.s.ipv6.send(this, protocol, packet, offset, opts);
  }

  /**
   * The largest TCP super-segment the NIC's link cuts for us: bounded by the IP length field (IPv4's total length
   * includes its header, IPv6's payload length does not) and by the link's GSO size; 0 unless the path is unicast
   * out of a link with GSO and tx checksum offload (loopback, broadcast and plain links send MTU-sized packets).
   */
  gsoMaxSegment(): number {
    const caps = this.nic.txGso;
    if (caps === undefined || this.kind !== 'unicast') return 0;
    const ip = this.headroom - LINK_HEADROOM;
    return Math.max(0, Math.min(ip === 20 ? 65535 - ip : 65535, caps.maxGsoSize - LINK_HEADROOM - ip));
  }

  sendGso(
    protocol: number,
    packet: Uint8Array,
    offset: number,
    transportHeaderLength: number,
    gsoSize: number,
    opts?: SendOptions,
    payload?: GatherPayload,
  ): NetError | undefined {
    return this.remoteAddress.length === 4
      ? this.s.ipv4.sendGso(this, protocol, packet, offset, transportHeaderLength, gsoSize, opts, payload)
      : this.s.ipv6.sendGso(this, protocol, packet, offset, transportHeaderLength, gsoSize, opts, payload);
  }

  /** A unicast path out of a link that points at gather payloads (a resolving neighbour entry still joins them). */
  gathers(): boolean {
    return this.kind === 'unicast' && !this.nic.loopback && this.nic.link.gathers === true;
  }
}
