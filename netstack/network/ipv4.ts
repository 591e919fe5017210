/**
 * IPv4 for a host (RFC 791, RFC 1122 §3.2.1, §3.3): header validation, local delivery with the weak host
 * model, fragmentation on send and reassembly on receive, and the identification field per RFC 6864.
 */
import {
  type Address,
  IPV4_BROADCAST,
  addressEqual,
  addressKey,
  isLoopback,
  isMulticast,
  isUnspecified,
} from '../addr.ts';
import { type GatherPayload, GsoType, RX_CSUM_VERIFIED, RX_LOAN, RX_MORE } from '../link/endpoint.ts';
import { Err, NetError } from '../errors.ts';
import { keyedHash32 } from '../hash.ts';
import { ETHERTYPE_IPV4 } from '../wire/ethernet.ts';
import { IPV4_HEADER_LEN, Ipv4Packet, emitIpv4, emitIpv4Basic, ipv4HeaderLength, ipv4Options } from '../wire/ipv4.ts';
import { PROTO_ICMP, PROTO_TCP, type PacketInfo, type SendOptions } from '../transport/protocol.ts';
import { type Verdict, counterName } from './counters.ts';
import { gsoFrame, gsoOptions } from './gso.ts';
import type { StackInternals } from './internals.ts';
import type { Nic } from './nic.ts';
import { LINK_HEADROOM, type Path } from './path.ts';
import { IPV4_REASSEMBLY, Reassembler, type ReassemblyConfig } from './reassembly.ts';

/** The all-hosts group 224.0.0.1 every IPv4 host belongs to (RFC 1112 §4). */
const ALL_HOSTS = new Uint8Array([224, 0, 0, 1]);
/** Identification counters, hashed by (source, destination) like Linux's ip_idents (RFC 6864 §4.2). */
const IDENT_SLOTS = 2048;
/** Largest IPv4 datagram. */
const MAX_DATAGRAM = 65535;
/** RFC 1122 §3.2.2: error messages carry at most this much in all (576-byte datagram). */
export const ICMPV4_ERROR_MAX = 576;

/** What reassembly keeps from a datagram's first fragment. */
interface FirstFragment {
  readonly nicId: number;
  /** The first fragment's header (options included). */
  readonly header: Uint8Array;
  /** The first fragment's start (header and data), for the time-exceeded quote. */
  readonly quote: Uint8Array;
  readonly info: PacketInfo;
  readonly linkBroadcast: boolean;
}

/** The addresses of an RxInfo not yet filled. */
const EMPTY_ADDRESS: Address = new Uint8Array(4);

/** A received packet's PacketInfo, writable so that `Ipv4.receive` can refill one for TCP (see `tcpInfo`). */
class RxInfo implements PacketInfo {
  nicId = 0;
  src: Address = EMPTY_ADDRESS;
  dst: Address = EMPTY_ADDRESS;
  ttl = 0;
  tos = 0;
  broadcast = false;
  csumVerified = false;
  more = false;
  loan = false;

  /** Sets every field; returns the record. */
  fill(nicId: number, src: Address, dst: Address, ttl: number, tos: number, broadcast: boolean, csumVerified: boolean, more: boolean, loan: boolean): this {
    this.nicId = nicId;
    this.src = src;
    this.dst = dst;
    this.ttl = ttl;
    this.tos = tos;
    this.broadcast = broadcast;
    this.csumVerified = csumVerified;
    this.more = more;
    this.loan = loan;
    return this;
  }
}

/** The IPv4 protocol of a stack. */
export class Ipv4 {
  /** Datagrams under reassembly. */
  readonly reassembler: Reassembler<FirstFragment>;
  private readonly idents = new Uint16Array(IDENT_SLOTS);
  /** The source of the last received packet: a stream's packets share one copy instead of one each. */
  private lastSrc: Address = new Uint8Array(4);
  /**
   * The PacketInfo of an unfragmented TCP packet, refilled for each one rather than allocated: TCP reads it only
   * while its deliver runs (it keeps the addresses, which are copies, never the object). A packet that arrives while
   * one is being delivered (`tcpInfoBusy`), and every other protocol or a fragment (UDP, raw sockets and reassembly
   * keep the object), gets one of its own.
   */
  private readonly tcpInfo = new RxInfo();
  private tcpInfoBusy = false;

  constructor(
    private readonly s: StackInternals,
    reassembly: Partial<ReassemblyConfig> = {},
  ) {
    this.reassembler = new Reassembler<FirstFragment>(
      s.clock,
      { ...IPV4_REASSEMBLY, ...reassembly },
      (first) => this.reassemblyTimeout(first),
      () => s.counters.frag.evicted++,
    );
    for (let i = 0; i < IDENT_SLOTS; i++) this.idents[i] = s.rng.next32() & 0xffff;
  }

  /**
   * Handles one received IPv4 packet, the bytes of `frame` from `at` on (a link frame's, after its header: no view
   * of the packet is made for the common case); `linkBroadcast` when the frame went to a group MAC, `flags` the
   * link's RX_* bits (RX_CSUM_VERIFIED becomes PacketInfo.csumVerified).
   */
  receive(nic: Nic, frame: Uint8Array, linkBroadcast: boolean, looped: boolean, flags = 0, at = 0): Verdict {
    this.s.counters.ipv4.rxPackets++;
    // Ipv4Packet.check's rules, read straight from the bytes: no view object for the common packet.
    const len = frame.length - at;
    if (len < IPV4_HEADER_LEN) return 'ipv4.truncated';
    if (frame[at]! >>> 4 !== 4) return 'ipv4.badVersion';
    const hl = (frame[at]! & 0x0f) * 4;
    if (hl < IPV4_HEADER_LEN) return 'ipv4.badHeaderLength';
    if (hl > len) return 'ipv4.truncated';
    const total = (frame[at + 2]! << 8) | frame[at + 3]!;
    if (total < hl) return 'ipv4.badTotalLength';
    if (total > len) return 'ipv4.truncated';
    if (!looped && !headerChecksumOk(frame, at, hl)) return 'ipv4.badChecksum';
    if (hl > IPV4_HEADER_LEN) {
      const p = new Ipv4Packet(frame.subarray(at));
      for (const o of ipv4Options(p.options)) {
        if (o.kind !== 'malformed') continue;
        // RFC 1122 §3.2.2.5: a host SHOULD answer a bad option with a parameter problem.
        const info = this.infoOf(nic, p, false);
        if (info) this.s.icmpv4.sendError(12, 0, (IPV4_HEADER_LEN + o.offset) << 24, p.buffer.subarray(0, hl), p.payload, info, linkBroadcast);
        return 'ipv4.badOptions';
      }
    }
    // Addresses as numbers, signed 32-bit as the stack's local-address keys (see localAddress4): no view per packet
    // for the checks below.
    const srcKey = (frame[at + 12]! << 24) | (frame[at + 13]! << 16) | (frame[at + 14]! << 8) | frame[at + 15]!;
    const dstKey = (frame[at + 16]! << 24) | (frame[at + 17]! << 16) | (frame[at + 18]! << 8) | frame[at + 19]!;
    // RFC 1122 §3.2.1.3: a source must be a unicast address; ours or loopback only over our own loop (martians).
    if (srcKey >>> 28 === 0xe || srcKey === -1 || nic.isV4BroadcastKey(srcKey)) return 'ipv4.badSource';
    if (!looped && (srcKey >>> 24 === 127 || this.s.localAddress4(srcKey) !== undefined)) return 'ipv4.badSource';
    const local = this.s.localAddress4(dstKey);
    let broadcast = false;
    if (local === undefined && !(looped && dstKey >>> 24 === 127)) {
      const dst = frame.subarray(at + 16, at + 20);
      if (dstKey === -1 || nic.isV4BroadcastKey(dstKey)) broadcast = true;
      else if (isMulticast(dst) && (addressEqual(dst, ALL_HOSTS) || nic.inGroup(dst))) broadcast = true;
      else return 'ipv4.notForUs';
    } else if (!looped && dstKey >>> 24 === 127) {
      return 'ipv4.notForUs';
    }
    // RFC 1122 §3.3.6: a unicast datagram that came as a link-layer broadcast is discarded.
    if (linkBroadcast && !broadcast) return 'ipv4.linkBroadcastUnicast';
    // Addresses in PacketInfo are kept by transports (a TCP child keeps both), so they are copies no packet
    // overwrites: our stored address for dst, and one copy per distinct source for src.
    let from = this.lastSrc;
    if (from[0] !== frame[at + 12] || from[1] !== frame[at + 13] || from[2] !== frame[at + 14] || from[3] !== frame[at + 15]) {
      from = this.lastSrc = frame.slice(at + 12, at + 16);
    }
    const protocol = frame[at + 9]!;
    // MF or a fragment offset: part of a datagram.
    const fragment = (((frame[at + 6]! << 8) | frame[at + 7]!) & 0x3fff) !== 0;
    const reuse = protocol === PROTO_TCP && !fragment && !this.tcpInfoBusy;
    const info = (reuse ? this.tcpInfo : new RxInfo()).fill(
      nic.id,
      from,
      local !== undefined ? local.address : frame.slice(at + 16, at + 20),
      frame[at + 8]!,
      frame[at + 1]!,
      broadcast,
      (flags & RX_CSUM_VERIFIED) !== 0,
      (flags & RX_MORE) !== 0,
      (flags & RX_LOAN) !== 0,
    );
    if (reuse) {
      this.tcpInfoBusy = true;
      try {
        return this.deliverUpper(frame, at, hl, frame.subarray(at + hl, at + total), protocol, info, linkBroadcast);
      } finally {
        this.tcpInfoBusy = false;
      }
    }
    if (fragment) return this.reassemble(nic, new Ipv4Packet(frame.subarray(at)), info, linkBroadcast);
    return this.deliverUpper(frame, at, hl, frame.subarray(at + hl, at + total), protocol, info, linkBroadcast);
  }

  /**
   * Builds and sends one datagram (fragmenting when allowed and needed) on `path`. `options` are raw IPv4
   * options for callers inside the stack (transports cannot set them yet); non-first fragments keep only the
   * options whose copied flag is set (RFC 791 §3.2), the others turned into NOPs as Linux does.
   */
  send(path: Path, protocol: number, packet: Uint8Array, offset: number, opts?: SendOptions, options?: Uint8Array): NetError | undefined {
    const c = this.s.counters.ipv4;
    if (this.s.nic(path.nicId) !== path.nic) {
      c.txNoRoute++;
      return Err.NetworkUnreachable;
    }
    const payloadLength = packet.length - offset;
    if (offset < 0 || payloadLength < 0) throw new RangeError('Ipv4.send: offset outside the packet');
    if (!options && IPV4_HEADER_LEN + payloadLength <= MAX_DATAGRAM && IPV4_HEADER_LEN + payloadLength <= path.mtu()) {
      // The per-segment case: one whole datagram with a plain header, written from scalars (no repr object).
      const need = LINK_HEADROOM + IPV4_HEADER_LEN;
      let frame: Uint8Array;
      if (offset >= need) {
        frame = offset === need ? packet : packet.subarray(offset - need);
      } else {
        frame = new Uint8Array(need + payloadLength);
        frame.set(packet.subarray(offset), need);
      }
      const tos = opts?.tos ?? 0;
      const ttl = opts?.ttl ?? (path.kind === 'multicast' ? 1 : this.s.defaultTtl);
      const df = opts?.dontFragment ?? protocol === PROTO_TCP;
      const ident = opts?.identification ?? this.nextIdent(path);
      emitIpv4Basic(frame, LINK_HEADROOM, path.localAddress, path.remoteAddress, protocol, ttl, tos, ident, df, payloadLength);
      c.txPackets++;
      this.output(path, frame, opts);
      return undefined;
    }
    const base = {
      src: path.localAddress,
      dst: path.remoteAddress,
      protocol,
      ttl: opts?.ttl ?? (path.kind === 'multicast' ? 1 : this.s.defaultTtl),
      dscp: (opts?.tos ?? 0) >>> 2,
      ecn: (opts?.tos ?? 0) & 3,
      identification: 0,
      dontFragment: opts?.dontFragment ?? protocol === PROTO_TCP,
      options,
      payloadLength,
    };
    const hl = options ? ipv4HeaderLength(base) : IPV4_HEADER_LEN;
    if (hl + payloadLength > MAX_DATAGRAM) {
      c.txTooBig++;
      return Err.MessageTooLong;
    }
    const mtu = path.mtu();
    base.identification = opts?.identification ?? this.nextIdent(path);
    const need = LINK_HEADROOM + hl;
    if (hl + payloadLength <= mtu) {
      let frame: Uint8Array;
      if (offset >= need) {
        frame = packet.subarray(offset - need);
      } else {
        frame = new Uint8Array(need + payloadLength);
        frame.set(packet.subarray(offset), need);
      }
      emitIpv4(base, frame, LINK_HEADROOM);
      c.txPackets++;
      this.output(path, frame, opts);
      return undefined;
    }
    if (base.dontFragment) {
      c.txTooBig++;
      return Err.MessageTooLong;
    }
    // RFC 791 §3.2: every fragment but the last carries a multiple of 8 data bytes.
    const chunk = (mtu - hl) & ~7;
    if (chunk <= 0) return Err.MessageTooLong;
    const laterOptions = options && copiedOptions(options);
    c.txPackets++;
    for (let at = 0; at < payloadLength; at += chunk) {
      const len = Math.min(chunk, payloadLength - at);
      const frame = new Uint8Array(need + len);
      const more = at + len < payloadLength;
      emitIpv4({ ...base, options: at === 0 ? options : laterOptions, payloadLength: len, fragmentOffset: at, moreFragments: more }, frame, LINK_HEADROOM);
      frame.set(packet.subarray(offset + at, offset + at + len), need);
      c.txFragments++;
      this.output(path, frame, opts);
    }
    return undefined;
  }

  /**
   * Sends one TCP super-segment as one IPv4 super-frame for the link to cut (TSO): DF set, the total length of the
   * whole, and as many identifications taken as segments will leave, as Linux's TSO does. The caller checked
   * `path.gsoMaxSegment()`; the transport checksum is partial (see Route.sendGso).
   */
  sendGso(path: Path, protocol: number, packet: Uint8Array, offset: number, thl: number, gsoSize: number, opts?: SendOptions, payload?: GatherPayload): NetError | undefined {
    const c = this.s.counters.ipv4;
    const g = gsoFrame(this.s, c, path, protocol, packet, offset, thl, gsoSize, IPV4_HEADER_LEN, payload?.length);
    if (g instanceof NetError) return g;
    const ttl = opts?.ttl ?? this.s.defaultTtl;
    const ident = this.nextIdent(path, g.segments);
    emitIpv4Basic(g.frame, LINK_HEADROOM, path.localAddress, path.remoteAddress, protocol, ttl, opts?.tos ?? 0, ident, true, g.segmentLength);
    c.txPackets += g.segments;
    const o = gsoOptions(g, LINK_HEADROOM + IPV4_HEADER_LEN, thl, gsoSize, GsoType.TCPV4);
    this.s.resolve(path.nic, path.nextHop!, g.frame, ETHERTYPE_IPV4, path.nextHopKey, o, payload);
    return undefined;
  }

  /** Forgets every datagram under reassembly. */
  close(): void {
    this.reassembler.clear();
  }

  /**
   * Hands a whole datagram's payload to ICMP or the transport; answers unknown protocols and ports. Its header is
   * `packet[at, at + hl)`, cut out only where it is needed (ICMP and errors), not per delivered packet.
   */
  private deliverUpper(packet: Uint8Array, at: number, hl: number, payload: Uint8Array, protocol: number, info: PacketInfo, linkBroadcast: boolean): Verdict {
    // Raw sockets copy the packet first: the ICMP handler below may build its reply in these very bytes.
    const raw = this.s.raw;
    if (raw !== undefined && raw.wants(4, protocol)) raw.deliverRaw(4, protocol, info, wholeDatagram(packet.subarray(at), hl, payload), hl);
    if (protocol === PROTO_ICMP) return this.s.icmpv4.receive(packet.subarray(at, at + hl), payload, info, linkBroadcast);
    const t = this.s.transport(protocol);
    if (!t) {
      // RFC 1122 §3.2.2.1: protocol unreachable.
      this.s.icmpv4.sendError(3, 2, 0, packet.subarray(at, at + hl), payload, info, linkBroadcast);
      return 'ipv4.unknownProtocol';
    }
    const r = t.deliver(info, payload);
    if (r === 'delivered') {
      this.s.counters.ipv4.delivered++;
      return undefined;
    }
    if (r === 'no-endpoint') {
      this.s.icmpv4.sendError(3, 3, 0, packet.subarray(at, at + hl), payload, info, linkBroadcast);
      return 'ipv4.noEndpoint';
    }
    return 'ipv4.transportMalformed';
  }

  private reassemble(nic: Nic, p: Ipv4Packet, info: PacketInfo, linkBroadcast: boolean): Verdict {
    this.s.counters.frag.v4Fragments++;
    const hl = p.headerLength;
    const offset = p.fragmentOffset;
    const data = p.payload;
    // RFC 791: every fragment but the last carries a multiple of 8 bytes.
    if (p.moreFragments && data.length % 8 !== 0) return 'frag.badLength';
    const key = `4${addressKey(p.src)}${addressKey(p.dst)}${String.fromCharCode(p.protocol, p.identification)}`;
    let meta: FirstFragment | undefined;
    if (offset === 0) {
      const header = p.buffer.slice(0, hl);
      const quote = p.buffer.slice(0, Math.min(p.totalLength, ICMPV4_ERROR_MAX - 28));
      meta = { nicId: nic.id, header, quote, info, linkBroadcast };
    }
    const r = this.reassembler.add({ key, offset, data, more: p.moreFragments, maxLength: MAX_DATAGRAM - hl, meta });
    if (r.kind === 'queued') return undefined;
    if (r.kind === 'dropped') return `frag.${counterName(r.reason)}`;
    this.s.counters.frag.reassembled++;
    const first = r.meta;
    // The header of the whole datagram, for ICMP quotes: the first fragment's, without fragmentation fields.
    const header = first.header.slice();
    const whole = new Ipv4Packet(header);
    whole.totalLength = Math.min(MAX_DATAGRAM, header.length + r.payload.length);
    whole.moreFragments = false;
    whole.fragmentOffset = 0;
    whole.fillChecksum();
    return this.deliverUpper(header, 0, header.length, r.payload, whole.protocol, first.info, first.linkBroadcast);
  }

  // RFC 792 / RFC 1122 §3.3.2: time exceeded (code 1) only when the first fragment arrived.
  private reassemblyTimeout(first: FirstFragment | undefined): void {
    this.s.counters.frag.timeouts++;
    if (!first) return;
    const hl = first.header.length;
    this.s.icmpv4.sendError(11, 1, 0, first.quote.subarray(0, hl), first.quote.subarray(hl), first.info, first.linkBroadcast);
  }

  private infoOf(nic: Nic, p: Ipv4Packet, broadcast: boolean): PacketInfo | undefined {
    if (this.s.localNic(p.dst) === undefined) return undefined;
    return { nicId: nic.id, src: p.src.slice(), dst: p.dst.slice(), ttl: p.ttl, tos: p.tos, broadcast };
  }

  /** The identification for a datagram, reserving `count` consecutive ones (a TSO frame's segments use them all). */
  private nextIdent(path: Path, count = 1): number {
    if (path.identSlot < 0) {
      path.identSlot = keyedHash32(this.s.secret, path.localAddress, path.remoteAddress) & (IDENT_SLOTS - 1);
    }
    const v = this.idents[path.identSlot]!;
    this.idents[path.identSlot] = (v + count) & 0xffff;
    return v;
  }

  private output(path: Path, frame: Uint8Array, opts?: SendOptions): void {
    const nic = path.nic;
    switch (path.kind) {
      case 'local':
        this.s.counters.ipv4.loopback++;
        this.s.loopback(nic, frame.subarray(LINK_HEADROOM));
        return;
      case 'broadcast':
        // Like Linux, a broadcast is also delivered to our own sockets.
        this.s.loopback(nic, frame.slice(LINK_HEADROOM));
        frame.fill(0xff, 0, 6);
        this.s.transmit(nic, frame, ETHERTYPE_IPV4);
        return;
      case 'multicast': {
        const dst = path.remoteAddress;
        if (opts?.multicastLoop !== false && nic.inGroup(dst)) this.s.loopback(nic, frame.slice(LINK_HEADROOM));
        // RFC 1112 §6.4: the low 23 bits of the group in 01:00:5e:00:00:00.
        frame[0] = 0x01;
        frame[1] = 0x00;
        frame[2] = 0x5e;
        frame[3] = dst[1]! & 0x7f;
        frame[4] = dst[2]!;
        frame[5] = dst[3]!;
        this.s.transmit(nic, frame, ETHERTYPE_IPV4);
        return;
      }
      case 'unicast':
        this.s.resolve(nic, path.nextHop!, frame, ETHERTYPE_IPV4, path.nextHopKey);
        return;
    }
  }
}

/**
 * The options of a non-first fragment (RFC 791 §3.2): options without the copied flag become NOPs, keeping
 * the header length (as Linux's ip_options_fragment); the list ends at End of Option List.
 */
export function copiedOptions(options: Uint8Array): Uint8Array {
  const out = options.slice();
  for (const o of ipv4Options(options)) {
    if (o.kind === 'eol') break;
    if (o.kind === 'malformed') {
      out.fill(0, o.offset);
      break;
    }
    if (o.kind === 'nop' || (o.type & 0x80) !== 0) continue;
    const len = options[o.offset + 1]!;
    out.fill(1, o.offset, o.offset + len);
  }
  return out;
}

/** Whether the IPv4 header checksum of `buf[at, at + hl)` verifies (RFC 791 §3.1, RFC 1071), without a view per packet. */
function headerChecksumOk(buf: Uint8Array, at: number, hl: number): boolean {
  let sum = 0;
  for (let i = at; i < at + hl; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

/** Whether an IPv4 source may receive an ICMP error (RFC 1122 §3.2.2: not unspecified, broadcast, multicast). */
export function validErrorTarget(nic: Nic | undefined, src: Uint8Array): boolean {
  if (isUnspecified(src) || isMulticast(src) || addressEqual(src, IPV4_BROADCAST)) return false;
  return !(nic && nic.isV4Broadcast(src));
}

/** The datagram `packet[0..hl)` + `payload` as one run of bytes: a view when they are adjacent, else a copy. */
function wholeDatagram(packet: Uint8Array, hl: number, payload: Uint8Array): Uint8Array {
  if (payload.buffer === packet.buffer && payload.byteOffset === packet.byteOffset + hl) {
    return new Uint8Array(packet.buffer, packet.byteOffset, hl + payload.length);
  }
  const whole = new Uint8Array(hl + payload.length);
  whole.set(packet.subarray(0, hl));
  whole.set(payload, hl);
  return whole;
}
