/**
 * A network interface: a link endpoint with its addresses, the multicast groups it listens to, and its two
 * neighbour caches (ARP for IPv4, NDP for IPv6).
 */
import { type Address, type Subnet, addressEqual, addressKey } from '../addr.ts';
import type { Timer } from '../clock.ts';
import type { LinkCapabilities, LinkEndpoint } from '../link/endpoint.ts';
import type { NeighborCache } from './neighbor.ts';

/** DAD state of an IPv6 address (RFC 4862 §5.4). */
export type Ipv6AddressState = 'tentative' | 'preferred' | 'duplicate';

/** An IPv6 address on a NIC with its duplicate address detection state. */
export interface Ipv6AddressEntry {
  readonly subnet: Subnet;
  state: Ipv6AddressState;
  /** NS probes still to send. */
  probesLeft: number;
  timer: Timer | undefined;
  /** Resolvers of `whenAddressReady`. */
  waiters: ((ok: boolean) => void)[];
}

/** One NIC of a stack. */
export class Nic {
  /** IPv4 addresses. */
  readonly v4: Subnet[] = [];
  /** IPv6 addresses, tentative and duplicate ones included. */
  readonly v6: Ipv6AddressEntry[] = [];
  /** Multicast MACs accepted, with reference counts. */
  private readonly macGroups = new Map<string, number>();
  /** IP multicast groups joined (both families), with reference counts. */
  private readonly ipGroups = new Map<string, number>();
  /** Whether the NIC runs IPv6 (link-local address, all-nodes group, NDP). */
  ipv6 = false;
  /** Set when frames were written and the link needs a flush. */
  dirty = false;
  /** A loopback-style link (all-zero MAC): no address resolution, frames carry a zero MAC. */
  readonly loopback: boolean;
  /** The link's MAC address (copied). */
  readonly mac: Uint8Array;
  /** Largest frame received (Ethernet header included): the GSO size on links with GSO, else MTU + 14. */
  readonly maxRxFrame: number;
  /**
   * The link's offloads when it takes TSO super-frames with partial checksums (gso, tx checksum offload, writeGso)
   * and TSO is on (`setTso`, as `ethtool -K dev tso off` turns a device's off).
   */
  get txGso(): LinkCapabilities | undefined {
    return this.tso ? this.gsoCaps : undefined;
  }
  private readonly gsoCaps: LinkCapabilities | undefined;
  private tso = true;

  constructor(
    readonly id: number,
    readonly name: string,
    readonly link: LinkEndpoint,
    readonly arp: NeighborCache,
    readonly ndp: NeighborCache,
  ) {
    this.mac = link.macAddress.slice();
    this.loopback = this.mac.every((b) => b === 0);
    const caps = link.capabilities;
    this.maxRxFrame = Math.max(caps?.gso ? caps.maxGsoSize : 0, caps?.maxRxFrame ?? 0, link.mtu + 14);
    this.gsoCaps = caps?.gso && caps.txChecksumOffload && typeof link.writeGso === 'function' && !this.loopback ? caps : undefined;
  }

  /** Turns sending TSO super-frames on or off (paths made afterwards see it); false when the link has no TSO. */
  setTso(on: boolean): boolean {
    this.tso = on;
    return this.gsoCaps !== undefined;
  }

  /** Largest IP packet the link carries. */
  get mtu(): number {
    return this.link.mtu;
  }

  /** Whether `a` is an IPv4 address of this NIC. */
  hasV4(a: Address): boolean {
    return this.v4.some((s) => addressEqual(s.address, a));
  }

  /** The IPv6 entry for `a` in any DAD state. */
  findV6(a: Address): Ipv6AddressEntry | undefined {
    return this.v6.find((e) => addressEqual(e.subnet.address, a));
  }

  /** Whether `a` is an assigned (not tentative, not duplicate) IPv6 address of this NIC. */
  hasV6(a: Address): boolean {
    const e = this.findV6(a);
    return e !== undefined && e.state === 'preferred';
  }

  /** Whether `a` is a directed broadcast address of one of this NIC's IPv4 subnets (not /31, /32). */
  isV4Broadcast(a: Address): boolean {
    return this.isV4BroadcastKey(((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0);
  }

  /** isV4Broadcast for an address as a 32-bit number, signed or not (runs twice per received packet: builds no address). */
  isV4BroadcastKey(v: number): boolean {
    for (let i = 0; i < this.v4.length; i++) {
      const s = this.v4[i]!;
      const p = s.prefixLength;
      if (p >= 31) continue;
      const x = s.address;
      const net = ((x[0]! << 24) | (x[1]! << 16) | (x[2]! << 8) | x[3]!) >>> 0;
      const host = p === 0 ? 0xffffffff : (0xffffffff >>> p);
      if (((v | host) >>> 0) === ((net | host) >>> 0) && ((v & host) >>> 0) === host) return true;
    }
    return false;
  }

  /** Starts accepting frames for a multicast MAC. */
  joinMac(mac: Uint8Array): void {
    const k = addressKey(mac);
    this.macGroups.set(k, (this.macGroups.get(k) ?? 0) + 1);
  }

  /** Stops accepting frames for a multicast MAC once every joiner left. */
  leaveMac(mac: Uint8Array): void {
    const k = addressKey(mac);
    const n = (this.macGroups.get(k) ?? 0) - 1;
    if (n <= 0) this.macGroups.delete(k);
    else this.macGroups.set(k, n);
  }

  /** Whether frames for this multicast MAC are accepted. */
  acceptsMac(mac: Uint8Array): boolean {
    return this.macGroups.has(addressKey(mac));
  }

  /** Joins an IP multicast group (reference-counted). */
  joinGroup(group: Address): void {
    const k = addressKey(group);
    this.ipGroups.set(k, (this.ipGroups.get(k) ?? 0) + 1);
  }

  /** Leaves an IP multicast group (reference-counted). */
  leaveGroup(group: Address): void {
    const k = addressKey(group);
    const n = (this.ipGroups.get(k) ?? 0) - 1;
    if (n <= 0) this.ipGroups.delete(k);
    else this.ipGroups.set(k, n);
  }

  /** Whether this NIC listens to an IP multicast group. */
  inGroup(group: Address): boolean {
    return this.ipGroups.has(addressKey(group));
  }
}
