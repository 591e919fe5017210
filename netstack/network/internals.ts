/**
 * What the network-layer modules (arp, ndp, ipv4, ipv6, icmp) need from the stack that owns them. Stack
 * implements it; the modules depend on this interface only, which keeps them testable and free of cycles.
 */
import type { Address } from '../addr.ts';
import type { Clock } from '../clock.ts';
import type { NetError } from '../errors.ts';
import type { Rng } from '../rand.ts';
import type { Stats } from '../stats.ts';
import type { GatherPayload, GsoOptions } from '../link/endpoint.ts';
import type { RawDispatcher, TransportProtocol } from '../transport/protocol.ts';
import type { Arp } from './arp.ts';
import type { Counters } from './counters.ts';
import type { Icmpv4 } from './icmpv4.ts';
import type { Icmpv6 } from './icmpv6.ts';
import type { Ipv4 } from './ipv4.ts';
import type { Ipv6 } from './ipv6.ts';
import type { Ndp } from './ndp.ts';
import type { Ipv6AddressEntry, Nic } from './nic.ts';
import type { Path } from './path.ts';
import type { PmtuCache } from './pmtu.ts';
import type { TokenBucket } from './ratelimit.ts';

/** The stack as its network-layer modules see it. */
export interface StackInternals {
  readonly clock: Clock;
  readonly stats: Stats;
  readonly counters: Counters;
  readonly rng: Rng;
  readonly secret: Uint8Array;
  readonly pmtu: PmtuCache;
  /** Shared by ICMPv4 and ICMPv6 errors, like Linux's global icmp_msgs_per_sec. */
  readonly icmpLimiter: TokenBucket;
  readonly arp: Arp;
  readonly ndp: Ndp;
  readonly ipv4: Ipv4;
  readonly ipv6: Ipv6;
  readonly icmpv4: Icmpv4;
  readonly icmpv6: Icmpv6;
  /** Default TTL / hop limit of unicast packets. */
  readonly defaultTtl: number;
  /** The raw sockets, offered every locally delivered packet; undefined while none are installed. */
  readonly raw: RawDispatcher | undefined;
  /** The transport registered for a protocol number. */
  transport(protocol: number): TransportProtocol | undefined;
  /** A NIC by id. */
  nic(id: number): Nic | undefined;
  /** The NIC owning a unicast address (IPv6: only an assigned, non-tentative one), if it is ours. */
  localNic(a: Address): Nic | undefined;
  /** Like localNic, with the stack's own copy of the address (immutable, so packets may share it). */
  localAddress(a: Address): { readonly nic: Nic; readonly address: Address } | undefined;
  /** localAddress for an IPv4 address given as a signed 32-bit number, `a[0] << 24 | …` (no view of the packet needed). */
  localAddress4(key: number): { readonly nic: Nic; readonly address: Address } | undefined;
  /** A path to `remote` (see NetworkLayer.findRoute). */
  findPath(remote: Address, local?: Address, nicId?: number): Path | NetError;
  /** Sends a frame whose destination MAC is set: fills the source MAC and EtherType, writes it to the link. */
  transmit(nic: Nic, frame: Uint8Array, etherType: number): void;
  /**
   * Sends a frame to an IP next hop on `nic`, resolving its MAC through the neighbour cache; with `gso` the frame
   * is a super-frame for the link's writeGso, and `payload` the rest of its bytes when gathered (Route.sendGso).
   */
  resolve(nic: Nic, nextHop: Address, frame: Uint8Array, etherType: number, nextHopKey?: string, gso?: GsoOptions, payload?: GatherPayload): void;
  /** Ends duplicate address detection of `e`: assigned when `ok`, else marked duplicate (RFC 4862 §5.4.5). */
  addressReady(nic: Nic, e: Ipv6AddressEntry, ok: boolean): void;
  /** Queues an IP packet to ourselves for delivery from a clock callback (never synchronously). */
  loopback(nic: Nic, packet: Uint8Array): void;
}
