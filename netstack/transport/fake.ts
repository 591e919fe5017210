/**
 * A fake network layer for transport unit tests: hosts on one in-memory segment, packets delivered through a
 * shared VirtualClock, with just enough IP behaviour (routes, broadcast, echo replies, ICMP errors for closed
 * ports) to exercise the transports. Not a stack: the real one is stack.ts.
 */
import {
  type Address,
  type Subnet,
  addressEqual,
  isMulticast,
  isUnspecified,
  parseSubnet,
  subnetBroadcast,
  subnetContains,
  IPV4_BROADCAST,
} from '../addr.ts';
import { VirtualClock } from '../clock.ts';
import { Err, type NetError } from '../errors.ts';
import { Rng } from '../rand.ts';
import { Stats } from '../stats.ts';
import { ICMP_HEADER_LEN, ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST, Icmpv4Packet } from '../wire/icmpv4.ts';
import { ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, Icmpv6Packet } from '../wire/icmpv6.ts';
import {
  type ControlMessage,
  type NetworkLayer,
  type PacketInfo,
  type Route,
  type SendOptions,
  type TransportProtocol,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_UDP,
} from './protocol.ts';

/** One IP packet as the fake carries it. */
export interface FakePacket {
  readonly src: Address;
  readonly dst: Address;
  readonly protocol: number;
  readonly ttl: number;
  readonly tos: number;
  readonly dontFragment: boolean;
  /** A copy of the transport segment. */
  readonly payload: Uint8Array;
}

// ICMP type/code pairs the fake emits, per family (RFC 792, RFC 4443 §3.1).
const ERROR_CODES: Record<string, { 4: [number, number]; 6: [number, number] }> = {
  'net-unreachable': { 4: [3, 0], 6: [1, 0] },
  'host-unreachable': { 4: [3, 1], 6: [1, 3] },
  'port-unreachable': { 4: [3, 3], 6: [1, 4] },
  'protocol-unreachable': { 4: [3, 2], 6: [4, 1] },
};

/** In-memory segment joining FakeHosts; every delivery is a clock task so sends never re-enter receivers. */
export class FakeNetwork {
  readonly hosts: FakeHost[] = [];
  /** Every packet put on the wire, in order. */
  readonly log: FakePacket[] = [];
  /** Drops a packet when it returns false. */
  filter: ((p: FakePacket) => boolean) | undefined;
  /** Largest IP packet on the segment. */
  mtu = 1500;

  constructor(readonly clock: VirtualClock = new VirtualClock()) {}

  /** Adds a host with the given "addr/len" subnets. */
  addHost(subnets: string[], seed = this.hosts.length + 1): FakeHost {
    const h = new FakeHost(
      this,
      subnets.map((s) => parseSubnet(s) ?? fail(s)),
      seed,
    );
    this.hosts.push(h);
    return h;
  }

  /** Delivers everything due now (including what those deliveries send in turn). */
  run(): void {
    this.clock.runDue();
  }

  /** @internal */
  transmit(from: FakeHost, p: FakePacket): void {
    this.log.push(p);
    this.clock.schedule(0, () => {
      if (this.filter && !this.filter(p)) return;
      const fan = isMulticast(p.dst) || this.isBroadcast(p.dst);
      for (const h of this.hosts) {
        if (fan ? h !== from && h.hasFamily(p.dst.length) : h.isLocalAddress(p.dst)) h.receive(p, fan);
      }
    });
  }

  /** Whether `a` is the limited broadcast or the directed broadcast of a host's IPv4 subnet. */
  isBroadcast(a: Address): boolean {
    if (a.length !== 4) return false;
    if (addressEqual(a, IPV4_BROADCAST)) return true;
    return this.hosts.some((h) => h.subnets.some((s) => s.address.length === 4 && addressEqual(subnetBroadcast(s), a)));
  }
}

function fail(s: string): never {
  throw new Error(`bad subnet ${s}`);
}

/** One host of a FakeNetwork; implements the NetworkLayer contract transports are written against. */
export class FakeHost implements NetworkLayer {
  readonly stats = new Stats();
  readonly secret = new Uint8Array(16);
  readonly transports = new Map<number, TransportProtocol>();
  /**
   * When set, every unicast packet this host receives is answered with this ICMP error instead of being
   * delivered; an explicit type and code override the kind's usual pair.
   */
  rejectWith: ControlMessage['kind'] | { kind: ControlMessage['kind']; type: number; code: number } | undefined;
  /** Whether the host answers echo requests (as the real network layer does). */
  answerEcho = true;
  private readonly rng: Rng;

  constructor(
    readonly network: FakeNetwork,
    readonly subnets: Subnet[],
    seed: number,
  ) {
    this.rng = new Rng(seed);
    this.rng.fill(this.secret);
  }

  get clock(): VirtualClock {
    return this.network.clock;
  }

  registerTransport(p: TransportProtocol): void {
    this.transports.set(p.protocolNumber, p);
  }

  findRoute(remote: Address, local?: Address, nicId?: number): Route | NetError {
    if (nicId !== undefined && nicId !== 0 && nicId !== 1) return Err.NetworkUnreachable;
    if (local && !isUnspecified(local)) {
      if (local.length !== remote.length || !this.isLocalAddress(local)) return Err.AddressNotAvailable;
    }
    const fam = remote.length;
    const onLink =
      isMulticast(remote) ||
      (fam === 4 && addressEqual(remote, IPV4_BROADCAST)) ||
      this.subnets.some((s) => s.address.length === fam && subnetContains(s, remote));
    if (!onLink) return Err.NetworkUnreachable;
    const src =
      local && !isUnspecified(local)
        ? local
        : (this.subnets.find((s) => s.address.length === fam && subnetContains(s, remote)) ??
            this.subnets.find((s) => s.address.length === fam))?.address;
    if (!src) return Err.NetworkUnreachable;
    return this.route(src, remote);
  }

  isLocalAddress(a: Address, nicId?: number): boolean {
    if (nicId !== undefined && nicId !== 0 && nicId !== 1) return false;
    return this.subnets.some((s) => addressEqual(s.address, a));
  }

  random32(): number {
    return this.rng.next32();
  }

  /** @internal */
  hasFamily(len: number): boolean {
    return this.subnets.some((s) => s.address.length === len);
  }

  private route(src: Address, dst: Address): Route & { kind: string } {
    const headerLen = dst.length === 4 ? 20 : 40;
    const net = this.network;
    return {
      kind: net.isBroadcast(dst) ? 'broadcast' : isMulticast(dst) ? 'multicast' : 'unicast',
      nicId: 1,
      localAddress: src,
      remoteAddress: dst,
      headroom: 14 + headerLen,
      maxPayload: () => net.mtu - headerLen,
      send: (protocol: number, packet: Uint8Array, offset: number, opts?: SendOptions) => {
        const len = packet.length - offset;
        const df = opts?.dontFragment ?? protocol !== PROTO_UDP;
        // Without DF the real stack fragments at the source (IPv6 too, RFC 8200 §4.5); the fake carries it whole.
        if (df && len > net.mtu - headerLen) return Err.MessageTooLong;
        if (len > 65535 - (dst.length === 4 ? headerLen : 0)) return Err.MessageTooLong;
        net.transmit(this, {
          src,
          dst,
          protocol,
          ttl: opts?.ttl ?? 64,
          tos: opts?.tos ?? 0,
          dontFragment: df,
          payload: packet.slice(offset),
        });
        return undefined;
      },
    };
  }

  /** @internal */
  receive(p: FakePacket, broadcast: boolean): void {
    const g = this.stats.group('fake', { received: 0, echoAnswered: 0, rejected: 0 });
    g.received++;
    if (this.rejectWith && !broadcast) {
      g.rejected++;
      this.sendError(p, this.rejectWith);
      return;
    }
    const v4 = p.dst.length === 4;
    const echoRequest =
      p.protocol === (v4 ? PROTO_ICMP : PROTO_ICMPV6) &&
      p.payload.length >= ICMP_HEADER_LEN &&
      (v4
        ? new Icmpv4Packet(p.payload).type === ICMPV4_ECHO_REQUEST
        : new Icmpv6Packet(p.payload).type === ICMPV6_ECHO_REQUEST);
    if (echoRequest) {
      if (this.answerEcho && !broadcast) {
        g.echoAnswered++;
        this.sendEchoReply(p);
      }
      return;
    }
    const t = this.transports.get(p.protocol);
    if (!t) {
      if (!broadcast) this.sendError(p, 'protocol-unreachable');
      return;
    }
    const info: PacketInfo = { nicId: 1, src: p.src, dst: p.dst, ttl: p.ttl, tos: p.tos, broadcast };
    const r = t.deliver(info, p.payload);
    if (r === 'no-endpoint' && !broadcast) this.sendError(p, 'port-unreachable');
  }

  private sendEchoReply(p: FakePacket): void {
    const v4 = p.dst.length === 4;
    const reply = p.payload.slice();
    const proto = v4 ? PROTO_ICMP : PROTO_ICMPV6;
    if (v4) {
      const r = new Icmpv4Packet(reply);
      r.type = ICMPV4_ECHO_REPLY;
      r.fillChecksum();
    } else {
      const r = new Icmpv6Packet(reply);
      r.type = ICMPV6_ECHO_REPLY;
      r.fillChecksum(p.dst, p.src);
    }
    const back = { src: p.dst, dst: p.src, protocol: proto, ttl: 64, tos: 0, dontFragment: false, payload: reply };
    this.network.transmit(this, back);
  }

  private sendError(p: FakePacket, how: NonNullable<FakeHost['rejectWith']>): void {
    const sender = this.network.hosts.find((h) => h.isLocalAddress(p.src));
    if (!sender) return;
    const fam = p.dst.length === 4 ? 4 : 6;
    const kind = typeof how === 'string' ? how : how.kind;
    const [type, code] =
      typeof how === 'string' ? (ERROR_CODES[how]?.[fam] ?? [fam === 4 ? 3 : 1, 0]) : [how.type, how.code];
    const msg: ControlMessage = { kind, type, code, family: fam, from: p.dst, mtu: 0 };
    const quoted = p.payload.slice(0, Math.min(p.payload.length, fam === 4 ? 8 : 1232));
    const t = sender.transports.get(p.protocol);
    this.network.clock.schedule(0, () => t?.deliverControl?.(msg, p.src, p.dst, quoted));
  }
}
