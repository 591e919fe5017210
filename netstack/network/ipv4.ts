/**
 * IPv4 for a host (RFC 791, RFC 1122 §3.2.1, §3.3): header validation, local delivery with the weak host
 * model, fragmentation on send and reassembly on receive, and the identification field per RFC 6864.
 */
import {
  IPV4_BROADCAST,
  addressEqual,
  addressKey,
  isLoopback,
  isMulticast,
  isUnspecified,
} from '../addr.ts';
import { Err, type NetError } from '../errors.ts';
import { keyedHash32 } from '../hash.ts';
import { ETHERTYPE_IPV4 } from '../wire/ethernet.ts';
import { IPV4_HEADER_LEN, Ipv4Packet, emitIpv4, ipv4HeaderLength, ipv4Options } from '../wire/ipv4.ts';
import { PROTO_ICMP, PROTO_TCP, type PacketInfo, type SendOptions } from '../transport/protocol.ts';
import { type Verdict, counterName } from './counters.ts';
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

/** The IPv4 protocol of a stack. */
export class Ipv4 {
  /** Datagrams under reassembly. */
  readonly reassembler: Reassembler<FirstFragment>;
  private readonly idents = new Uint16Array(IDENT_SLOTS);

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

  /** Handles one received IPv4 packet; `linkBroadcast` when the frame went to a group MAC. */
  receive(nic: Nic, buf: Uint8Array, linkBroadcast: boolean, looped: boolean): Verdict {
    this.s.counters.ipv4.rxPackets++;
    const p = Ipv4Packet.check(buf);
    if (typeof p === 'string') return CHECK_REASONS[p] ?? 'ipv4.malformed';
    if (!looped && !p.verifyChecksum()) return 'ipv4.badChecksum';
    const hl = p.headerLength;
    if (hl > IPV4_HEADER_LEN) {
      for (const o of ipv4Options(p.options)) {
        if (o.kind !== 'malformed') continue;
        // RFC 1122 §3.2.2.5: a host SHOULD answer a bad option with a parameter problem.
        const info = this.infoOf(nic, p, false);
        if (info) this.s.icmpv4.sendError(12, 0, (IPV4_HEADER_LEN + o.offset) << 24, p.buffer.subarray(0, hl), p.payload, info, linkBroadcast);
        return 'ipv4.badOptions';
      }
    }
    const src = p.src;
    // RFC 1122 §3.2.1.3: a source must be a unicast address; ours or loopback only over our own loop (martians).
    if (isMulticast(src) || addressEqual(src, IPV4_BROADCAST) || nic.isV4Broadcast(src)) return 'ipv4.badSource';
    if (!looped && (isLoopback(src) || this.s.localNic(src) !== undefined)) return 'ipv4.badSource';
    const dst = p.dst;
    let broadcast = false;
    if (this.s.localNic(dst) === undefined && !(looped && isLoopback(dst))) {
      if (addressEqual(dst, IPV4_BROADCAST) || nic.isV4Broadcast(dst)) broadcast = true;
      else if (isMulticast(dst) && (addressEqual(dst, ALL_HOSTS) || nic.inGroup(dst))) broadcast = true;
      else return 'ipv4.notForUs';
    } else if (!looped && isLoopback(dst)) {
      return 'ipv4.notForUs';
    }
    // RFC 1122 §3.3.6: a unicast datagram that came as a link-layer broadcast is discarded.
    if (linkBroadcast && !broadcast) return 'ipv4.linkBroadcastUnicast';
    const info: PacketInfo = { nicId: nic.id, src: src.slice(), dst: dst.slice(), ttl: p.ttl, tos: p.tos, broadcast };
    if (p.isFragment) return this.reassemble(nic, p, info, linkBroadcast);
    return this.deliverUpper(p.buffer.subarray(0, hl), p.payload, p.protocol, info, linkBroadcast);
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
    base.identification = this.nextIdent(path);
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
      this.output(path, frame);
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
      this.output(path, frame);
    }
    return undefined;
  }

  /** Forgets every datagram under reassembly. */
  close(): void {
    this.reassembler.clear();
  }

  /** Hands a whole datagram's payload to ICMP or the transport; answers unknown protocols and ports. */
  private deliverUpper(header: Uint8Array, payload: Uint8Array, protocol: number, info: PacketInfo, linkBroadcast: boolean): Verdict {
    if (protocol === PROTO_ICMP) return this.s.icmpv4.receive(header, payload, info, linkBroadcast);
    const t = this.s.transport(protocol);
    if (!t) {
      // RFC 1122 §3.2.2.1: protocol unreachable.
      this.s.icmpv4.sendError(3, 2, 0, header, payload, info, linkBroadcast);
      return 'ipv4.unknownProtocol';
    }
    const r = t.deliver(info, payload);
    if (r === 'delivered') {
      this.s.counters.ipv4.delivered++;
      return undefined;
    }
    if (r === 'no-endpoint') {
      this.s.icmpv4.sendError(3, 3, 0, header, payload, info, linkBroadcast);
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
    return this.deliverUpper(header, r.payload, whole.protocol, first.info, first.linkBroadcast);
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

  private nextIdent(path: Path): number {
    if (path.identSlot < 0) {
      path.identSlot = keyedHash32(this.s.secret, path.localAddress, path.remoteAddress) & (IDENT_SLOTS - 1);
    }
    const v = this.idents[path.identSlot]!;
    this.idents[path.identSlot] = (v + 1) & 0xffff;
    return v;
  }

  private output(path: Path, frame: Uint8Array): void {
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
        if (nic.inGroup(dst)) this.s.loopback(nic, frame.slice(LINK_HEADROOM));
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

const CHECK_REASONS: Record<string, string> = {
  truncated: 'ipv4.truncated',
  'bad-version': 'ipv4.badVersion',
  'bad-header-length': 'ipv4.badHeaderLength',
  'bad-total-length': 'ipv4.badTotalLength',
};

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

/** Whether an IPv4 source may receive an ICMP error (RFC 1122 §3.2.2: not unspecified, broadcast, multicast). */
export function validErrorTarget(nic: Nic | undefined, src: Uint8Array): boolean {
  if (isUnspecified(src) || isMulticast(src) || addressEqual(src, IPV4_BROADCAST)) return false;
  return !(nic && nic.isV4Broadcast(src));
}
