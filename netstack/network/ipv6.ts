/**
 * IPv6 for a host (RFC 8200): fixed-header checks, extension headers through the wire walker (§4), local
 * delivery (tentative addresses only for NDP, RFC 4862 §5.4), source fragmentation with a Fragment header and
 * reassembly (§4.5, RFC 5722 overlaps, RFC 6946 atomic fragments).
 */
import { type Address, addressKey, isLoopback, isMulticast } from '../addr.ts';
import { type GatherPayload, GsoType, RX_CSUM_VERIFIED, RX_LOAN, RX_MORE } from '../link/endpoint.ts';
import { Err, NetError } from '../errors.ts';
import { ETHERTYPE_IPV6 } from '../wire/ethernet.ts';
import { IPV6_HEADER_LEN, Ipv6Packet, emitIpv6 } from '../wire/ipv6.ts';
import {
  IPV6_FRAGMENT,
  IPV6_FRAGMENT_HEADER_LEN,
  IPV6_NO_NEXT_HEADER,
  emitIpv6FragmentHeader,
  walkIpv6,
} from '../wire/ipv6ext.ts';
import { PROTO_ICMPV6, type PacketInfo, type SendOptions } from '../transport/protocol.ts';
import { type Verdict, counterName } from './counters.ts';
import { gsoFrame, gsoOptions } from './gso.ts';
import type { StackInternals } from './internals.ts';
import type { Nic } from './nic.ts';
import { LINK_HEADROOM, type Path } from './path.ts';
import { IPV6_REASSEMBLY, Reassembler, type ReassemblyConfig } from './reassembly.ts';

/** RFC 4443 §2.4(c): an error message must fit the minimum MTU. */
export const ICMPV6_ERROR_MAX = 1280;
const MAX_PAYLOAD = 65535;

/** What reassembly keeps from a packet's first fragment. */
interface FirstFragment {
  /** The first fragment as received, up to what an ICMPv6 error may quote. */
  readonly quote: Uint8Array;
  readonly info: PacketInfo;
  readonly tentative: boolean;
  readonly linkBroadcast: boolean;
  /** Next Header of the fragmentable part. */
  readonly nextHeader: number;
}

/** Drop counters for walker problems, by Parameter Problem code. */
const PROBLEM_COUNTERS = ['ipv6.badHeaderField', 'ipv6.unknownNextHeader', 'ipv6.unknownOption'];

/** The IPv6 protocol of a stack. */
export class Ipv6 {
  /** Packets under reassembly. */
  readonly reassembler: Reassembler<FirstFragment>;
  /** The source of the last received packet: a stream's packets share one copy instead of one each. */
  private lastSrc: Address = new Uint8Array(16);

  constructor(
    private readonly s: StackInternals,
    reassembly: Partial<ReassemblyConfig> = {},
  ) {
    this.reassembler = new Reassembler<FirstFragment>(
      s.clock,
      { ...IPV6_REASSEMBLY, ...reassembly },
      (first) => this.reassemblyTimeout(first),
      () => s.counters.frag.evicted++,
    );
  }

  /**
   * Handles one received IPv6 packet; `linkBroadcast` when the frame went to a group MAC, `flags` the link's RX_*
   * bits (RX_CSUM_VERIFIED becomes PacketInfo.csumVerified).
   */
  receive(nic: Nic, buf: Uint8Array, linkBroadcast: boolean, looped: boolean, flags = 0): Verdict {
    this.s.counters.ipv6.rxPackets++;
    const p = Ipv6Packet.check(buf);
    if (typeof p === 'string') return p === 'bad-version' ? 'ipv6.badVersion' : 'ipv6.truncated';
    const src = p.src;
    const dst = p.dst;
    // RFC 4291 §2.7: never a multicast source; ::1 only over our own loop (RFC 4291 §2.5.3).
    if (isMulticast(src) || (!looped && isLoopback(src))) return 'ipv6.badSource';
    let broadcast = false;
    let tentative = false;
    const local = this.s.localAddress(dst);
    if (local === undefined) {
      if (isMulticast(dst)) {
        // Interface-local scope (ff01::/16) never leaves a node (RFC 4291 §2.7).
        if ((dst[1]! & 0x0f) === 1 && !looped) return 'ipv6.badDestination';
        if (!nic.inGroup(dst)) return 'ipv6.notForUs';
        broadcast = true;
      } else if (looped && isLoopback(dst)) {
        // ::1 to ourselves.
      } else if (nic.findV6(dst)?.state === 'tentative') {
        tentative = true;
      } else {
        return 'ipv6.notForUs';
      }
    } else if (!looped && isLoopback(dst)) {
      return 'ipv6.notForUs';
    }
    const walk = walkIpv6(p);
    if (typeof walk === 'string') return 'ipv6.truncatedExtension';
    const packet = p.buffer.subarray(0, IPV6_HEADER_LEN + p.payloadLength);
    // Transports keep PacketInfo addresses (a TCP child keeps both): copies that no later packet overwrites.
    let from = this.lastSrc;
    for (let i = 15; i >= 0; i--) {
      if (from[i] !== src[i]) {
        from = this.lastSrc = src.slice();
        break;
      }
    }
    const info: PacketInfo = {
      nicId: nic.id,
      src: from,
      dst: local !== undefined ? local.address : dst.slice(),
      ttl: p.hopLimit,
      tos: p.trafficClass,
      broadcast,
      csumVerified: (flags & RX_CSUM_VERIFIED) !== 0,
      more: (flags & RX_MORE) !== 0,
      loan: (flags & RX_LOAN) !== 0,
    };
    if (walk.problem) {
      const pr = walk.problem;
      if (pr.icmp && !tentative) {
        this.s.icmpv6.sendError(4, pr.code, pr.pointer, packet, info, linkBroadcast, pr.icmpIfMulticast);
      }
      return PROBLEM_COUNTERS[pr.code] ?? 'ipv6.badHeaderField';
    }
    const frag = walk.fragment;
    if (frag) {
      this.s.counters.frag.v6Fragments++;
      const data = packet.subarray(walk.payloadOffset);
      if (frag.offset === 0 && !frag.more) {
        // RFC 6946: an atomic fragment is processed in isolation, never mixed with a reassembly.
        this.s.counters.frag.atomic++;
        return this.deliverFragmentable(nic, packet, walk.protocol, data, info, tentative, linkBroadcast);
      }
      const key = `6${addressKey(src)}${addressKey(dst)}${frag.identification}`;
      const meta: FirstFragment | undefined =
        frag.offset === 0
          ? { quote: packet.slice(0, ICMPV6_ERROR_MAX - 48), info, tentative, linkBroadcast, nextHeader: walk.protocol }
          : undefined;
      const unfragmentable = frag.headerOffset - IPV6_HEADER_LEN;
      const r = this.reassembler.add({
        key,
        offset: frag.offset,
        data,
        more: frag.more,
        maxLength: MAX_PAYLOAD - unfragmentable - IPV6_FRAGMENT_HEADER_LEN,
        meta,
      });
      if (r.kind === 'queued') return undefined;
      if (r.kind === 'dropped') return `frag.${counterName(r.reason)}`;
      this.s.counters.frag.reassembled++;
      const m = r.meta;
      return this.deliverFragmentable(nic, m.quote, m.nextHeader, r.payload, m.info, m.tentative, m.linkBroadcast);
    }
    return this.deliverUpper(nic, packet, walk.protocol, walk.payloadOffset, packet.subarray(walk.payloadOffset), info, tentative, linkBroadcast);
  }

  /** Builds and sends one packet on `path`, fragmenting it to the path MTU when needed (RFC 8200 §4.5). */
  send(path: Path, protocol: number, packet: Uint8Array, offset: number, opts?: SendOptions): NetError | undefined {
    const c = this.s.counters.ipv6;
    if (this.s.nic(path.nicId) !== path.nic) {
      c.txNoRoute++;
      return Err.NetworkUnreachable;
    }
    const payloadLength = packet.length - offset;
    if (offset < 0 || payloadLength < 0) throw new RangeError('Ipv6.send: offset outside the packet');
    if (payloadLength > MAX_PAYLOAD) {
      c.txTooBig++;
      return Err.MessageTooLong;
    }
    const hopLimit = opts?.ttl ?? (path.kind === 'multicast' ? 1 : this.s.defaultTtl);
    const base = { src: path.localAddress, dst: path.remoteAddress, hopLimit, trafficClass: opts?.tos ?? 0 };
    const mtu = path.mtu();
    const need = LINK_HEADROOM + IPV6_HEADER_LEN;
    if (IPV6_HEADER_LEN + payloadLength <= mtu) {
      let frame: Uint8Array;
      if (offset >= need) {
        frame = packet.subarray(offset - need);
      } else {
        frame = new Uint8Array(need + payloadLength);
        frame.set(packet.subarray(offset), need);
      }
      emitIpv6({ ...base, nextHeader: protocol, payloadLength }, frame, LINK_HEADROOM);
      c.txPackets++;
      this.output(path, frame, opts);
      return undefined;
    }
    // IPV6_DONTFRAG semantics: the caller asked for no fragmentation.
    if (opts?.dontFragment === true) {
      c.txTooBig++;
      return Err.MessageTooLong;
    }
    const chunk = (mtu - IPV6_HEADER_LEN - IPV6_FRAGMENT_HEADER_LEN) & ~7;
    // RFC 7739: identifications must be unpredictable.
    const identification = this.s.rng.next32();
    const head = need + IPV6_FRAGMENT_HEADER_LEN;
    c.txPackets++;
    for (let at = 0; at < payloadLength; at += chunk) {
      const len = Math.min(chunk, payloadLength - at);
      const frame = new Uint8Array(head + len);
      emitIpv6({ ...base, nextHeader: IPV6_FRAGMENT, payloadLength: IPV6_FRAGMENT_HEADER_LEN + len }, frame, LINK_HEADROOM);
      emitIpv6FragmentHeader({ nextHeader: protocol, fragmentOffset: at, moreFragments: at + len < payloadLength, identification }, frame, need);
      frame.set(packet.subarray(offset + at, offset + at + len), head);
      c.txFragments++;
      this.output(path, frame, opts);
    }
    return undefined;
  }

  /** Forgets every packet under reassembly. */
  close(): void {
    this.reassembler.clear();
  }

  /**
   * Processes the fragmentable part of a reassembled (or atomic) packet, which may start with more extension
   * headers, by walking a rebuilt packet whose fixed header announces it directly.
   */
  private deliverFragmentable(
    nic: Nic,
    original: Uint8Array,
    nextHeader: number,
    payload: Uint8Array,
    info: PacketInfo,
    tentative: boolean,
    linkBroadcast: boolean,
  ): Verdict {
    if (payload.length > MAX_PAYLOAD) return 'frag.tooBig';
    const whole = new Uint8Array(IPV6_HEADER_LEN + payload.length);
    whole.set(original.subarray(0, IPV6_HEADER_LEN));
    const p = new Ipv6Packet(whole);
    p.nextHeader = nextHeader;
    p.payloadLength = payload.length;
    whole.set(payload, IPV6_HEADER_LEN);
    const walk = walkIpv6(p);
    if (typeof walk === 'string') return 'ipv6.truncatedExtension';
    if (walk.problem) {
      const pr = walk.problem;
      if (pr.icmp && !tentative) this.s.icmpv6.sendError(4, pr.code, pr.pointer, whole, info, linkBroadcast, pr.icmpIfMulticast);
      return PROBLEM_COUNTERS[pr.code] ?? 'ipv6.badHeaderField';
    }
    // A Fragment header inside a fragmentable part would be a nested fragment: nothing legitimate does that.
    if (walk.fragment) return 'frag.nested';
    return this.deliverUpper(nic, whole, walk.protocol, walk.payloadOffset, whole.subarray(walk.payloadOffset), info, tentative, linkBroadcast);
  }

  private deliverUpper(
    nic: Nic,
    packet: Uint8Array,
    protocol: number,
    payloadOffset: number,
    payload: Uint8Array,
    info: PacketInfo,
    tentative: boolean,
    linkBroadcast: boolean,
  ): Verdict {
    // Raw sockets copy the packet first (rawv6 sees no IPv6 header): the ICMPv6 handler may reply in these bytes.
    // A tentative address takes nothing but NDP, and no raw socket sees it (RFC 4862 §5.4).
    const raw = this.s.raw;
    if (!tentative && raw !== undefined && raw.wants(6, protocol)) raw.deliverRaw(6, protocol, info, payload, 0);
    if (protocol === PROTO_ICMPV6) return this.s.icmpv6.receive(nic, packet, payload, info, tentative, linkBroadcast);
    // RFC 4862 §5.4: a tentative address accepts nothing but NDP.
    if (tentative) return 'ipv6.tentativeDestination';
    if (protocol === IPV6_NO_NEXT_HEADER) return 'ipv6.noNextHeader';
    const t = this.s.transport(protocol);
    if (!t) {
      // RFC 8200 §4 / RFC 4443 §3.4: parameter problem code 1 pointing at the Next Header field that named it.
      this.s.icmpv6.sendError(4, 1, nextHeaderField(packet, payloadOffset), packet, info, linkBroadcast, false);
      return 'ipv6.unknownProtocol';
    }
    const r = t.deliver(info, payload);
    if (r === 'delivered') {
      this.s.counters.ipv6.delivered++;
      return undefined;
    }
    if (r === 'no-endpoint') {
      this.s.icmpv6.sendError(1, 4, 0, packet, info, linkBroadcast, false);
      return 'ipv6.noEndpoint';
    }
    return 'ipv6.transportMalformed';
  }

  // RFC 8200 §4.5: time exceeded code 1 only when the first fragment arrived.
  private reassemblyTimeout(first: FirstFragment | undefined): void {
    this.s.counters.frag.timeouts++;
    if (!first || first.tentative) return;
    this.s.icmpv6.sendError(3, 1, 0, first.quote, first.info, first.linkBroadcast, false);
  }

  /**
   * Sends one TCP super-segment as one IPv6 super-frame for the link to cut (TSO6), its payload length that of
   * the whole. The caller checked `path.gsoMaxSegment()`; the transport checksum is partial (see Route.sendGso).
   */
  sendGso(path: Path, protocol: number, packet: Uint8Array, offset: number, thl: number, gsoSize: number, opts?: SendOptions, payload?: GatherPayload): NetError | undefined {
    const c = this.s.counters.ipv6;
    const g = gsoFrame(this.s, c, path, protocol, packet, offset, thl, gsoSize, IPV6_HEADER_LEN, payload?.length);
    if (g instanceof NetError) return g;
    const base = {
      src: path.localAddress,
      dst: path.remoteAddress,
      hopLimit: opts?.ttl ?? this.s.defaultTtl,
      trafficClass: opts?.tos ?? 0,
      nextHeader: protocol,
      payloadLength: g.segmentLength,
    };
    emitIpv6(base, g.frame, LINK_HEADROOM);
    c.txPackets += g.segments;
    const o = gsoOptions(g, LINK_HEADROOM + IPV6_HEADER_LEN, thl, gsoSize, GsoType.TCPV6);
    this.s.resolve(path.nic, path.nextHop!, g.frame, ETHERTYPE_IPV6, path.nextHopKey, o, payload);
    return undefined;
  }

  private output(path: Path, frame: Uint8Array, opts?: SendOptions): void {
    const nic = path.nic;
    switch (path.kind) {
      case 'local':
        this.s.counters.ipv6.loopback++;
        this.s.loopback(nic, frame.subarray(LINK_HEADROOM));
        return;
      case 'broadcast':
      case 'multicast': {
        const dst = path.remoteAddress;
        if (opts?.multicastLoop !== false && nic.inGroup(dst)) this.s.loopback(nic, frame.slice(LINK_HEADROOM));
        // RFC 2464 §7: 33:33 and the low 32 bits of the group.
        frame[0] = 0x33;
        frame[1] = 0x33;
        frame.set(dst.subarray(12, 16), 2);
        this.s.transmit(nic, frame, ETHERTYPE_IPV6);
        return;
      }
      case 'unicast':
        this.s.resolve(nic, path.nextHop!, frame, ETHERTYPE_IPV6, path.nextHopKey);
        return;
    }
  }
}

/** The offset of the Next Header field that names the header at `payloadOffset` (a checked chain). */
function nextHeaderField(packet: Uint8Array, payloadOffset: number): number {
  let field = 6;
  let nh = packet[6]!;
  let off = IPV6_HEADER_LEN;
  while (off < payloadOffset && off + 2 <= packet.length) {
    field = off;
    const len = nh === IPV6_FRAGMENT ? IPV6_FRAGMENT_HEADER_LEN : (packet[off + 1]! + 1) * 8;
    nh = packet[off]!;
    off += len;
  }
  return field;
}
