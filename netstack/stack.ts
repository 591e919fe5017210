/**
 * The stack: NICs, addresses, routes and the demultiplexing of received frames to ARP, IPv4 and IPv6, with the
 * transports registered on top (the `NetworkLayer` contract of transport/protocol.ts). Everything runs on the
 * injected clock; received frames are handled synchronously, packets to ourselves are looped back on the clock.
 */
import {
  type Address,
  IPV4_BROADCAST,
  type Subnet,
  addressEqual,
  addressKey,
  isLinkLocalV6,
  isLoopback,
  isMulticast,
  linkLocalFromMac,
  multicastMac,
  prefixMatch,
  solicitedNodeAddress,
} from './addr.ts';
import { type Clock, HeldClock, type Timer } from './clock.ts';
import { Err, type NetError } from './errors.ts';
import { type GatherPayload, type GsoOptions, type LinkEndpoint, RX_MORE, joinGather } from './link/endpoint.ts';
import { Rng } from './rand.ts';
import { Stats } from './stats.ts';
import type { NetworkLayer, RawDispatcher, Route, TransportProtocol } from './transport/protocol.ts';
import { EthernetPacket, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from './wire/ethernet.ts';
import { Arp } from './network/arp.ts';
import { type Counters, type Verdict, createCounters } from './network/counters.ts';
import { Icmpv4 } from './network/icmpv4.ts';
import { Icmpv6 } from './network/icmpv6.ts';
import type { StackInternals } from './network/internals.ts';
import { Ipv4 } from './network/ipv4.ts';
import { Ipv6 } from './network/ipv6.ts';
import { Ndp } from './network/ndp.ts';
import { NeighborCache, type NeighborConfig, type NeighborInfo } from './network/neighbor.ts';
import { type Ipv6AddressEntry, type Ipv6AddressState, Nic } from './network/nic.ts';
import { Path } from './network/path.ts';
import { PmtuCache } from './network/pmtu.ts';
import { TokenBucket } from './network/ratelimit.ts';
import type { ReassemblyConfig } from './network/reassembly.ts';
import { type RouteEntry, RouteTable } from './network/route.ts';

/** Options of a Stack. */
export interface StackOptions {
  /** Time and timers. */
  clock: Clock;
  /** Seed of the stack's random source (default 1). */
  seed?: number;
  /** 16-byte key for keyed hashes; drawn from the seeded source when absent. */
  secret?: Uint8Array;
  /** DupAddrDetectTransmits (RFC 4862 §5.1): NS probes per new IPv6 address, 0 disables DAD (default 1). */
  dadTransmits?: number;
  /** Default TTL and hop limit (default 64, as Linux's ip_default_ttl). */
  defaultTtl?: number;
  /** Neighbour cache timing and bounds. */
  neighbor?: Partial<NeighborConfig>;
  /** Reassembly limits per family. */
  reassembly?: { v4?: Partial<ReassemblyConfig>; v6?: Partial<ReassemblyConfig> };
  /** ICMP error rate limit (default Linux's 1000 per second, burst 50). */
  icmpRate?: { perSecond: number; burst: number };
}

/** Options of addNic. */
export interface NicOptions {
  /** A name for listings (default "nic<id>"). */
  name?: string;
  /** Whether the NIC runs IPv6 (default true): it then gets a link-local address and listens to all-nodes. */
  ipv6?: boolean;
}

/** A NIC as listed by `nics()`. */
export interface NicInfo {
  readonly id: number;
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
}

/** An address as listed by `addresses()`. */
export interface AddressInfo {
  readonly nicId: number;
  readonly subnet: Subnet;
  /** IPv6 DAD state; IPv4 addresses are always "preferred". */
  readonly state: Ipv6AddressState;
}

/** Options of addRoute. */
export interface AddRouteOptions {
  readonly destination: Subnet;
  readonly gateway?: Address;
  readonly nicId: number;
  readonly metric?: number;
}

/** A local address with its NIC: the stored copy of the address, shared (never mutated) by received packets' PacketInfo. */
export interface LocalAddress {
  readonly nic: Nic;
  readonly address: Address;
}

const ALL_HOSTS = new Uint8Array([224, 0, 0, 1]);
const ALL_NODES = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

/** A TCP/IP host stack over any number of Ethernet links. */
export class Stack implements NetworkLayer, StackInternals {
  readonly clock: Clock;
  /**
   * The clock held still while a transport processes one segment or one read or write: the neighbour cache reads
   * it for every frame sent, which then costs no host clock read of its own.
   */
  readonly heldClock: HeldClock;
  readonly stats = new Stats();
  readonly secret: Uint8Array;
  /** @internal */ readonly rng: Rng;
  /** @internal */ readonly counters: Counters;
  /** @internal */ readonly pmtu: PmtuCache;
  /** @internal */ readonly icmpLimiter: TokenBucket;
  /** @internal */ readonly arp: Arp;
  /** @internal */ readonly ndp: Ndp;
  /** @internal */ readonly ipv4: Ipv4;
  /** @internal */ readonly ipv6: Ipv6;
  /** @internal */ readonly icmpv4: Icmpv4;
  /** @internal */ readonly icmpv6: Icmpv6;
  /** @internal */ readonly defaultTtl: number;
  /** @internal */ raw: RawDispatcher | undefined;
  /** NS probes per new IPv6 address. */
  readonly dadTransmits: number;
  /** Told when duplicate address detection of an IPv6 address ends: `ok` false means a duplicate was found. */
  onAddressReady: ((nicId: number, address: Address, ok: boolean) => void) | undefined;

  private readonly routeTable = new RouteTable();
  private readonly transports = new Map<number, TransportProtocol>();
  // Transports with a batchEnd hook, called before the links are flushed.
  private batchEnders: TransportProtocol[] = [];
  // Transports that may hold views of RX_LOAN frames, asked to copy them when the link ends the loans.
  private lenders: TransportProtocol[] = [];
  private readonly nicMap = new Map<number, Nic>();
  private readonly local4 = new Map<number, LocalAddress>();
  private readonly local6 = new Map<string, LocalAddress>();
  private readonly dropKeys = new Set<string>();
  private readonly neighborConfig: Partial<NeighborConfig>;
  private nextNicId = 1;
  private flushTimer: Timer | undefined;
  private loopQueue: { nic: Nic; packet: Uint8Array }[] = [];
  private loopTimer: Timer | undefined;
  private closed = false;

  constructor(opts: StackOptions) {
    this.clock = opts.clock;
    this.heldClock = new HeldClock(opts.clock);
    this.rng = new Rng(opts.seed ?? 1);
    if (opts.secret && opts.secret.length !== 16) throw new RangeError('Stack: secret must be 16 bytes');
    this.secret = opts.secret ? opts.secret.slice() : new Uint8Array(16);
    if (!opts.secret) this.rng.fill(this.secret);
    this.dadTransmits = opts.dadTransmits ?? 1;
    this.defaultTtl = opts.defaultTtl ?? 64;
    this.neighborConfig = opts.neighbor ?? {};
    this.counters = createCounters(this.stats);
    this.pmtu = new PmtuCache(this.clock);
    this.icmpLimiter = new TokenBucket(this.clock, opts.icmpRate?.perSecond ?? 1000, opts.icmpRate?.burst ?? 50);
    this.arp = new Arp(this);
    this.ndp = new Ndp(this);
    this.ipv4 = new Ipv4(this, opts.reassembly?.v4);
    this.ipv6 = new Ipv6(this, opts.reassembly?.v6);
    this.icmpv4 = new Icmpv4(this);
    this.icmpv6 = new Icmpv6(this);
  }

  // ---- NICs ----

  /** Attaches a link as a new NIC and returns its id; IPv6 NICs get their EUI-64 link-local address (RFC 4862 §5.3). */
  addNic(link: LinkEndpoint, opts: NicOptions = {}): number {
    if (this.closed) throw new Error('Stack: closed');
    const id = this.nextNicId++;
    let nic: Nic;
    const hooks = (family: 4 | 6) => ({
      solicit: (target: Address, mac: Uint8Array | undefined, prompt: Uint8Array | undefined) =>
        family === 4 ? this.arp.solicit(nic, target, mac, prompt) : this.ndp.solicit(nic, target, mac, prompt),
      transmit: (frame: Uint8Array, gso: GsoOptions | undefined, payload?: GatherPayload) => this.writeOut(nic, frame, gso, payload),
      unreachable: (target: Address, frames: Uint8Array[]) => this.notifyUnreachable(nic, frames),
      count: (counter: string) => {
        const g = family === 4 ? this.counters.arp : this.counters.ndp;
        this.stats.count(g, family === 4 ? 'arp' : 'ndp', counter);
      },
    });
    const arp = new NeighborCache(this.heldClock, this.rng, hooks(4), this.neighborConfig);
    const ndp = new NeighborCache(this.heldClock, this.rng, hooks(6), this.neighborConfig);
    nic = new Nic(id, opts.name ?? `nic${id}`, link, arp, ndp);
    this.nicMap.set(id, nic);
    link.attach({
      deliverFrame: (frame, flags) => this.receiveFrame(nic, frame, flags ?? 0),
      deliverBatchEnd: () => this.flushDirty(),
      returnLoans: () => {
        for (const t of this.lenders) t.returnLoans!();
      },
    });
    // RFC 1112 §4: every IPv4 host belongs to all-hosts 224.0.0.1.
    nic.joinGroup(ALL_HOSTS);
    nic.joinMac(multicastMac(ALL_HOSTS));
    if (opts.ipv6 !== false) {
      nic.ipv6 = true;
      nic.joinGroup(ALL_NODES);
      nic.joinMac(multicastMac(ALL_NODES));
      if (!nic.loopback) this.addAddress(id, { address: linkLocalFromMac(nic.mac), prefixLength: 64 });
    }
    return id;
  }

  /** Detaches and forgets a NIC with its addresses, routes and caches; the link itself is not closed. */
  removeNic(id: number): boolean {
    const nic = this.nicMap.get(id);
    if (!nic) return false;
    for (const s of [...nic.v4]) this.removeAddress(id, s.address);
    for (const e of [...nic.v6]) this.removeAddress(id, e.subnet.address);
    this.routeTable.removeNic(id);
    nic.arp.clear();
    nic.ndp.clear();
    nic.link.attach(null);
    this.nicMap.delete(id);
    return true;
  }

  /** The NICs. */
  nics(): NicInfo[] {
    return [...this.nicMap.values()].map((n) => ({ id: n.id, name: n.name, mac: n.mac.slice(), mtu: n.mtu }));
  }

  /**
   * Turns a NIC's TSO on or off, as `ethtool -K DEV tso off`: with it off TCP's GSO packets leave cut into
   * segments by TCP itself. Returns false for an unknown NIC or one whose link has no TSO.
   */
  setNicTso(nicId: number, on: boolean): boolean {
    const nic = this.nicMap.get(nicId);
    return nic ? nic.setTso(on) : false;
  }

  // ---- addresses ----

  /**
   * Assigns an address; adds the on-link route of its subnet. IPv4 addresses are announced with gratuitous
   * ARP; IPv6 addresses stay tentative during duplicate address detection (RFC 4862 §5.4).
   */
  addAddress(nicId: number, subnet: Subnet): NetError | undefined {
    const nic = this.nicMap.get(nicId);
    if (!nic) return Err.InvalidArgument;
    const a = subnet.address;
    const max = a.length * 8;
    if ((a.length !== 4 && a.length !== 16) || subnet.prefixLength < 0 || subnet.prefixLength > max) return Err.InvalidArgument;
    if (isMulticast(a) || (a.length === 4 && addressEqual(a, IPV4_BROADCAST))) return Err.InvalidArgument;
    if (this.localNic(a) || (a.length === 16 && this.nicMap.get(nicId)!.findV6(a))) return Err.AddressInUse;
    const s: Subnet = { address: a.slice(), prefixLength: subnet.prefixLength };
    if (a.length === 4) {
      nic.v4.push(s);
      this.local4.set(v4Key(a), { nic, address: s.address });
      this.addOnLink(nic, s);
      if (!nic.loopback) this.arp.announce(nic, s.address);
      return undefined;
    }
    if (!nic.ipv6) return Err.AddressFamilyNotSupported;
    const e: Ipv6AddressEntry = { subnet: s, state: 'tentative', probesLeft: this.dadTransmits, timer: undefined, waiters: [] };
    nic.v6.push(e);
    const sn = solicitedNodeAddress(a);
    nic.joinGroup(sn);
    nic.joinMac(multicastMac(sn));
    this.addOnLink(nic, s);
    if (this.dadTransmits <= 0 || nic.loopback) this.addressReady(nic, e, true);
    else this.ndp.startDad(nic, e);
    return undefined;
  }

  /** Removes an address (and its on-link route when no other address needs it). */
  removeAddress(nicId: number, address: Address): NetError | undefined {
    const nic = this.nicMap.get(nicId);
    if (!nic) return Err.InvalidArgument;
    if (address.length === 4) {
      const i = nic.v4.findIndex((s) => addressEqual(s.address, address));
      if (i < 0) return Err.AddressNotAvailable;
      const [s] = nic.v4.splice(i, 1);
      this.local4.delete(v4Key(address));
      this.dropOnLink(nic, s!);
      return undefined;
    }
    const i = nic.v6.findIndex((e) => addressEqual(e.subnet.address, address));
    if (i < 0) return Err.AddressNotAvailable;
    const [e] = nic.v6.splice(i, 1);
    e!.timer?.cancel();
    this.local6.delete(v6Key(address));
    const sn = solicitedNodeAddress(address);
    nic.leaveGroup(sn);
    nic.leaveMac(multicastMac(sn));
    this.dropOnLink(nic, e!.subnet);
    for (const w of e!.waiters.splice(0)) w(false);
    return undefined;
  }

  /** Addresses of one NIC, or of all. */
  addresses(nicId?: number): AddressInfo[] {
    const out: AddressInfo[] = [];
    for (const nic of this.nicMap.values()) {
      if (nicId !== undefined && nic.id !== nicId) continue;
      for (const s of nic.v4) out.push({ nicId: nic.id, subnet: s, state: 'preferred' });
      for (const e of nic.v6) out.push({ nicId: nic.id, subnet: e.subnet, state: e.state });
    }
    return out;
  }

  /**
   * Resolves true once `addr` is usable (IPv4 at once; IPv6 when DAD finishes without conflict), false when
   * DAD found a duplicate (RFC 4862 §5.4.5) or the address is not ours.
   */
  whenAddressReady(addr: Address): Promise<boolean> {
    if (addr.length === 4) return Promise.resolve(this.local4.has(v4Key(addr)));
    for (const nic of this.nicMap.values()) {
      const e = nic.findV6(addr);
      if (!e) continue;
      if (e.state !== 'tentative') return Promise.resolve(e.state === 'preferred');
      return new Promise((resolve) => e.waiters.push(resolve));
    }
    return Promise.resolve(false);
  }

  /** Joins an IP multicast group on a NIC (frames for its MAC are then accepted). */
  joinGroup(nicId: number, group: Address): NetError | undefined {
    const nic = this.nicMap.get(nicId);
    if (!nic || !isMulticast(group)) return Err.InvalidArgument;
    nic.joinGroup(group);
    nic.joinMac(multicastMac(group));
    return undefined;
  }

  /** Leaves an IP multicast group on a NIC. */
  leaveGroup(nicId: number, group: Address): NetError | undefined {
    const nic = this.nicMap.get(nicId);
    if (!nic || !isMulticast(group)) return Err.InvalidArgument;
    nic.leaveGroup(group);
    nic.leaveMac(multicastMac(group));
    return undefined;
  }

  // ---- routes ----

  /** Adds a route; longest prefix wins, then the lowest metric. */
  addRoute(r: AddRouteOptions): NetError | undefined {
    if (!this.nicMap.has(r.nicId)) return Err.InvalidArgument;
    const a = r.destination.address;
    if (r.gateway && r.gateway.length !== a.length) return Err.InvalidArgument;
    const destination = { address: masked(a, r.destination.prefixLength), prefixLength: r.destination.prefixLength };
    const gateway = r.gateway?.slice();
    const ok = this.routeTable.add({ destination, gateway, gatewayKey: gateway && addressKey(gateway), nicId: r.nicId, metric: r.metric ?? 0 });
    return ok ? undefined : Err.AddressInUse;
  }

  /** Removes matching routes; returns whether any went. */
  removeRoute(destination: Subnet, gateway?: Address, nicId?: number): boolean {
    return this.routeTable.remove(destination, gateway, nicId) > 0;
  }

  /** The routing table. */
  routes(): RouteEntry[] {
    return this.routeTable.list();
  }

  findRoute(remote: Address, local?: Address, nicId?: number, kept?: boolean): Route | NetError {
    return this.findPath(remote, local, nicId, kept);
  }

  /** @internal */
  findPath(remote: Address, local?: Address, nicId?: number, kept = false): Path | NetError {
    const v4 = remote.length === 4;
    if (!v4 && remote.length !== 16) return Err.InvalidArgument;
    // A socket bound to a multicast group sends from a unicast address of its own choosing.
    if (local !== undefined && isMulticast(local)) local = undefined;
    if (local !== undefined) {
      if (local.length !== remote.length) return Err.AddressNotAvailable;
      // Loopback sources only talk to loopback destinations (RFC 1122 §3.2.1.3 (g), RFC 4291 §2.5.3), and to groups
      // on the loopback NIC (IP_MULTICAST_IF 127.0.0.1, as Linux sends them over lo).
      if (isLoopback(local) ? !isLoopback(remote) && !isMulticast(remote) : !this.localNic(local)) return Err.AddressNotAvailable;
    }
    const ownerOfRemote = this.localNic(remote);
    if (ownerOfRemote || isLoopback(remote)) {
      const nic = ownerOfRemote ?? (nicId !== undefined ? this.nicMap.get(nicId) : this.nicMap.values().next().value);
      if (!nic) return this.noRoute(v4, Err.NetworkUnreachable);
      return new Path(this, nic, local ?? remote.slice(), remote.slice(), undefined, 'local');
    }
    if (isMulticast(remote) || (v4 && addressEqual(remote, IPV4_BROADCAST))) {
      let nic = nicId !== undefined ? this.nicMap.get(nicId) : local ? this.localNic(local) : undefined;
      // A NIC asked for by id (IP_MULTICAST_IF, IPV6_MULTICAST_IF, a scope id) that does not exist is no route.
      if (!nic && nicId !== undefined) return this.noRoute(v4, Err.NetworkUnreachable);
      if (!nic) {
        const e = this.routeTable.lookup(remote);
        nic = e ? this.nicMap.get(e.nicId) : undefined;
      }
      // IPv4 as Linux's ip_route_output_key_hash: with no interface asked for and no source bound, the limited
      // broadcast and a group go where a route (the default one) leads, and nowhere without one (ENETUNREACH). IPv6
      // has a multicast route on each interface (Linux's ff00::/8 in the local table): the first that has IPv6.
      if (!v4) nic ??= [...this.nicMap.values()].find((n) => n.ipv6);
      if (!nic) return this.noRoute(v4, Err.NetworkUnreachable);
      const src = local ?? this.selectSource(nic, remote);
      if (!src) return this.noRoute(v4, Err.AddressNotAvailable);
      return new Path(this, nic, src.slice(), remote.slice(), undefined, isMulticast(remote) ? 'multicast' : 'broadcast');
    }
    const entry = this.routeTable.lookup(remote, nicId);
    if (!entry) return this.noRoute(v4, Err.NetworkUnreachable);
    const nic = this.nicMap.get(entry.nicId)!;
    const src = local ?? this.selectSource(nic, entry.gateway ?? remote);
    if (!src) return this.noRoute(v4, Err.AddressNotAvailable);
    if (v4 && nic.isV4Broadcast(remote)) return new Path(this, nic, src.slice(), remote.slice(), undefined, 'broadcast');
    // Each copy of an address is a Uint8Array, an ArrayBuffer and its backing store, ~300 B in all, and every TCP
    // connection holds a path: the source is our stored address itself (nothing writes into it), the destination a
    // received packet's source itself when the caller says it is kept, and a path to a neighbour on the link has the
    // destination as its next hop.
    const to = kept ? remote : remote.slice();
    const from = this.localAddress(src)?.address ?? src.slice();
    // The gateway is the route's own copy (nothing writes into either), with its neighbour key: a stateless reply
    // (a cookie SYN-ACK, a RST) builds a path per packet.
    if (entry.gateway) return new Path(this, nic, from, to, entry.gateway, 'unicast', entry.gatewayKey);
    return new Path(this, nic, from, to, to, 'unicast');
  }

  /** Counts a path not found (a closure per findPath for this was garbage on every stateless reply). */
  private noRoute(v4: boolean, e: NetError): NetError {
    (v4 ? this.counters.ipv4 : this.counters.ipv6).txNoRoute++;
    return e;
  }

  // ---- transports and the NetworkLayer contract ----

  /** Installs the raw sockets' dispatcher, offered a copy of every packet delivered to this stack. */
  setRawDispatcher(d: RawDispatcher): void {
    this.raw = d;
  }

  registerTransport(p: TransportProtocol): void {
    this.transports.set(p.protocolNumber, p);
    this.batchEnders = [...this.transports.values()].filter((t) => t.batchEnd !== undefined);
    this.lenders = [...this.transports.values()].filter((t) => t.returnLoans !== undefined);
  }

  /** @internal */
  transport(protocol: number): TransportProtocol | undefined {
    return this.transports.get(protocol);
  }

  /** Whether `a` is ours: assigned to a NIC (to `nicId` when given), or any loopback address, as on Linux's lo. */
  isLocalAddress(a: Address, nicId?: number): boolean {
    const nic = this.localNic(a);
    if (nic) return nicId === undefined || nic.id === nicId;
    return nicId === undefined && (a.length === 4 || a.length === 16) && isLoopback(a);
  }

  random32(): number {
    return this.rng.next32();
  }

  /** Neighbour cache entries of a NIC for one family, for tests and the CLI. */
  neighbors(nicId: number, family: 4 | 6): NeighborInfo[] {
    const nic = this.nicMap.get(nicId);
    if (!nic) return [];
    return (family === 4 ? nic.arp : nic.ndp).list();
  }

  /** Every drop counter that has fired, as "group.counter"; with `rx.delivered` they sum to `rx.received`. */
  dropCounters(): string[] {
    return [...this.dropKeys].sort();
  }

  /** Cancels every timer and detaches every link; the stack sends and receives nothing afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const nic of this.nicMap.values()) {
      for (const e of nic.v6) e.timer?.cancel();
      nic.arp.clear();
      nic.ndp.clear();
      nic.link.attach(null);
    }
    this.ipv4.close();
    this.ipv6.close();
    this.loopTimer?.cancel();
    this.flushTimer?.cancel();
    this.loopQueue = [];
  }

  // ---- internals used by network/ ----

  /** @internal */
  nic(id: number): Nic | undefined {
    return this.nicMap.get(id);
  }

  /** @internal */
  localNic(a: Address): Nic | undefined {
    return (a.length === 4 ? this.local4.get(v4Key(a)) : this.local6.get(v6Key(a)))?.nic;
  }

  /** @internal */
  localAddress(a: Address): LocalAddress | undefined {
    return a.length === 4 ? this.local4.get(v4Key(a)) : this.local6.get(v6Key(a));
  }

  /** @internal */
  localAddress4(key: number): LocalAddress | undefined {
    return this.local4.get(key);
  }

  /** @internal Called by NDP when DAD of `e` ends. */
  addressReady(nic: Nic, e: Ipv6AddressEntry, ok: boolean): void {
    e.timer?.cancel();
    e.timer = undefined;
    e.state = ok ? 'preferred' : 'duplicate';
    if (ok) this.local6.set(v6Key(e.subnet.address), { nic, address: e.subnet.address });
    for (const w of e.waiters.splice(0)) w(ok);
    this.onAddressReady?.(nic.id, e.subnet.address, ok);
  }

  /** @internal */
  transmit(nic: Nic, frame: Uint8Array, etherType: number): void {
    frame.set(nic.mac, 6);
    frame[12] = etherType >>> 8;
    frame[13] = etherType & 0xff;
    this.writeOut(nic, frame);
  }

  /** @internal */
  resolve(nic: Nic, nextHop: Address, frame: Uint8Array, etherType: number, nextHopKey?: string, gso?: GsoOptions, payload?: GatherPayload): void {
    const mac = nic.mac;
    frame[6] = mac[0]!;
    frame[7] = mac[1]!;
    frame[8] = mac[2]!;
    frame[9] = mac[3]!;
    frame[10] = mac[4]!;
    frame[11] = mac[5]!;
    frame[12] = etherType >>> 8;
    frame[13] = etherType & 0xff;
    if (nic.loopback) {
      frame.fill(0, 0, 6);
      this.writeOut(nic, frame, gso, payload);
      return;
    }
    (nextHop.length === 4 ? nic.arp : nic.ndp).send(nextHop, frame, nextHopKey ?? addressKey(nextHop), gso, payload);
  }

  /** @internal */
  loopback(nic: Nic, packet: Uint8Array): void {
    if (this.closed) return;
    this.loopQueue.push({ nic, packet });
    this.loopTimer ??= this.clock.schedule(0, () => this.runLoopback());
  }

  private runLoopback(): void {
    this.loopTimer = undefined;
    const q = this.loopQueue;
    this.loopQueue = [];
    for (const { nic, packet } of q) {
      this.counters.rx.received++;
      this.counters.rx.looped++;
      let v: Verdict;
      if (this.nicMap.get(nic.id) !== nic) v = 'link.nicGone';
      else if (packet.length > 0 && packet[0]! >>> 4 === 6) v = this.ipv6.receive(nic, packet, false, true);
      else v = this.ipv4.receive(nic, packet, false, true);
      this.account(v);
    }
    this.flushDirty();
  }

  private writeOut(nic: Nic, frame: Uint8Array, gso?: GsoOptions, payload?: GatherPayload): void {
    if (this.closed) return;
    const c = this.counters.link;
    c.txFrames++;
    let ok: boolean;
    const link = nic.link;
    if (gso === undefined) {
      ok = link.writeFrame(payload === undefined ? frame : joinGather(frame, payload));
    } else {
      if (gso.gsoType !== 0) c.txGsoFrames++;
      if (payload === undefined) ok = link.writeGso!(frame, gso);
      else ok = link.writeGsoGather !== undefined ? link.writeGsoGather(frame, gso, payload) : link.writeGso!(joinGather(frame, payload), gso);
    }
    if (!ok) c.txErrors++;
    // One flush per batch (deliverBatchEnd) or per clock tick, so a link can send many frames per syscall; a link
    // that flushes by itself needs no tick (a clock timer, an immediate on Node, per reply written outside a batch).
    nic.dirty = true;
    if (nic.link.flushesItself !== true) this.flushTimer ??= this.clock.schedule(0, this.flushDirtyFn);
  }

  /**
   * Has every link send the frames it holds now, those that flush by themselves too: for a producer that queues
   * many frames in one turn and would have them reach the receiver in bursts no larger than it chooses.
   */
  flushLinks(): void {
    this.flushNics(true);
  }

  private readonly flushDirtyFn = (): void => this.flushDirty();

  private flushDirty(): void {
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    for (const t of this.batchEnders) t.batchEnd!();
    // A link that flushes by itself sends the batch's replies with what the applications write after it.
    this.flushNics(false);
  }

  /** Flushes the links of the NICs that queued frames since their last flush (`all`: those that flush by themselves too). */
  private flushNics(all: boolean): void {
    for (const nic of this.nicMap.values()) {
      if (!nic.dirty) continue;
      nic.dirty = false;
      if (all || nic.link.flushesItself !== true) nic.link.flush();
    }
  }

  private receiveFrame(nic: Nic, frame: Uint8Array, flags: number): void {
    this.counters.rx.received++;
    this.counters.link.rxFrames++;
    // Replies deferred for the rest of the batch go out at deliverBatchEnd, or at the next tick should a link
    // flag RX_MORE and then not end its batch. A link that always ends them saves the tick: an immediate and
    // three clock reads per batch of requests on a packet ring.
    if ((flags & RX_MORE) !== 0 && nic.link.endsBatches !== true) this.flushTimer ??= this.clock.schedule(0, this.flushDirtyFn);
    this.account(this.dispatchFrame(nic, frame, flags));
  }

  private dispatchFrame(nic: Nic, frame: Uint8Array, flags: number): Verdict {
    if (this.closed) return 'link.closed';
    if (frame.length < 14) return 'link.truncated';
    const etherType = (frame[12]! << 8) | frame[13]!;
    if (etherType === 0x8100 || etherType === 0x88a8 || etherType === 0x9100) {
      // We run no VLAN interfaces: tagged frames belong to someone else.
      return EthernetPacket.check(frame) === 'truncated' ? 'link.truncated' : 'link.vlanTagged';
    }
    const group = (frame[0]! & 1) !== 0;
    if (group) {
      const dst = frame.subarray(0, 6);
      if (!isBroadcastMac(dst) && !nic.acceptsMac(dst)) return 'link.notForUs';
    } else {
      const mac = nic.mac;
      if (
        frame[0] !== mac[0] || frame[1] !== mac[1] || frame[2] !== mac[2] ||
        frame[3] !== mac[3] || frame[4] !== mac[4] || frame[5] !== mac[5]
      ) return 'link.notForUs';
    }
    // Larger than the MTU allows: a GRO'd super-frame on a link with GSO, else not a frame this NIC can take.
    if (frame.length > nic.mtu + 14) {
      if (frame.length > nic.maxRxFrame) return 'link.tooBig';
      this.counters.link.rxGsoFrames++;
    }
    switch (etherType) {
      case ETHERTYPE_ARP:
        return nic.loopback ? 'link.unknownEtherType' : this.arp.receive(nic, frame.subarray(14));
      case ETHERTYPE_IPV4:
        // IPv4 reads its packet in place, after the link header.
        return this.ipv4.receive(nic, frame, group, false, flags, 14);
      case ETHERTYPE_IPV6:
        return nic.ipv6 ? this.ipv6.receive(nic, frame.subarray(14), group, false, flags) : 'link.unknownEtherType';
      default:
        return 'link.unknownEtherType';
    }
  }

  private account(v: Verdict): void {
    if (v === undefined) {
      this.counters.rx.delivered++;
      return;
    }
    const dot = v.indexOf('.');
    const name = v.slice(0, dot);
    this.stats.count(this.stats.group(name, {}), name, v.slice(dot + 1));
    this.counters.rx.dropped++;
    this.dropKeys.add(v);
  }

  // Queued frames whose next hop never answered: tell the local sender's transport, as Linux's
  // neigh_invalidate → icmp_send(host unreachable) would (RFC 1122 §3.3.1.4, RFC 4443 §3.1 code 3).
  // Deferred to the clock: a refusal inside Route.send must not call back into the sending transport.
  private notifyUnreachable(nic: Nic, frames: Uint8Array[]): void {
    this.clock.schedule(0, () => {
      if (!this.closed) this.tellUnreachable(nic, frames);
    });
  }

  private tellUnreachable(nic: Nic, frames: Uint8Array[]): void {
    for (const f of frames) {
      if (f.length < 14 || nic.loopback) continue;
      const ip = f.subarray(14);
      if (ip.length > 0 && ip[0]! >>> 4 === 6) this.icmpv6.localUnreachable(ip);
      else this.icmpv4.localUnreachable(ip);
    }
  }

  private selectSource(nic: Nic, dst: Address): Address | undefined {
    if (dst.length === 4) {
      return (nic.v4.find((s) => prefixMatch(s.address, dst, s.prefixLength)) ?? nic.v4[0])?.address;
    }
    // RFC 6724 §5, reduced: assigned addresses only, same scope preferred, then the longest common prefix.
    const usable = nic.v6.filter((e) => e.state === 'preferred').map((e) => e.subnet.address);
    const wantLinkLocal = isLinkLocalV6(dst) || isMulticast(dst);
    let best: Address | undefined;
    let bestScore = -1;
    for (const a of usable) {
      const score = (isLinkLocalV6(a) === wantLinkLocal ? 1000 : 0) + commonPrefix(a, dst);
      if (score > bestScore) {
        best = a;
        bestScore = score;
      }
    }
    return best;
  }

  private addOnLink(nic: Nic, s: Subnet): void {
    if (s.prefixLength >= s.address.length * 8) return;
    const destination = { address: masked(s.address, s.prefixLength), prefixLength: s.prefixLength };
    this.routeTable.add({ destination, nicId: nic.id, metric: 0 });
  }

  private dropOnLink(nic: Nic, s: Subnet): void {
    const stillNeeded =
      s.address.length === 4
        ? nic.v4.some((o) => o.prefixLength === s.prefixLength && prefixMatch(o.address, s.address, s.prefixLength))
        : nic.v6.some((o) => o.subnet.prefixLength === s.prefixLength && prefixMatch(o.subnet.address, s.address, s.prefixLength));
    if (stillNeeded || s.prefixLength >= s.address.length * 8) return;
    const destination = { address: masked(s.address, s.prefixLength), prefixLength: s.prefixLength };
    // Only the gateway-less on-link route goes.
    for (const r of this.routeTable.list()) {
      if (r.nicId === nic.id && !r.gateway && r.destination.prefixLength === s.prefixLength && addressEqual(r.destination.address, destination.address)) {
        this.routeTable.removeExact(r);
      }
    }
  }
}

// Local-address lookups run twice per received packet: cheaper keys than addressKey's spread. Signed 32-bit, not
// `>>> 0`: an address above 127.255.255.255 is then still a small integer to V8, which a Map hashes as it is, where
// the unsigned number is a heap number boxed and hashed as a double on every lookup (about twice the time).
function v4Key(a: Address): number {
  return (a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!;
}

function v6Key(a: Address): string {
  return String.fromCharCode(
    (a[0]! << 8) | a[1]!, (a[2]! << 8) | a[3]!, (a[4]! << 8) | a[5]!, (a[6]! << 8) | a[7]!,
    (a[8]! << 8) | a[9]!, (a[10]! << 8) | a[11]!, (a[12]! << 8) | a[13]!, (a[14]! << 8) | a[15]!,
  );
}

function isBroadcastMac(mac: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (mac[i] !== 0xff) return false;
  return true;
}

function masked(a: Address, prefixLength: number): Address {
  const out = new Uint8Array(a.length);
  for (let bit = 0; bit < prefixLength; bit++) out[bit >> 3]! |= a[bit >> 3]! & (0x80 >> (bit & 7));
  return out;
}

function commonPrefix(a: Address, b: Address): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! ^ b[i]!;
    if (x === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(x) - 24;
  }
  return n;
}
