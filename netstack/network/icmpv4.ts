/**
 * ICMP for IPv4 (RFC 792, RFC 1122 §3.2.2): echo replies sent by the stack itself, echo replies handed to the
 * ping transport, received errors decoded for the transport that sent the quoted packet (and for the path-MTU
 * cache, RFC 1191), and rate-limited error messages with the RFC 1122 §3.2.2 "never" rules.
 */
import { isMulticast } from '../addr.ts';
import { isError } from '../errors.ts';
import {
  ICMP_HEADER_LEN,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REPLY,
  ICMPV4_FRAG_NEEDED,
  Icmpv4Packet,
  fillIcmpv4Checksum,
  parseIcmpv4,
} from '../wire/icmpv4.ts';
import { IPV4_HEADER_LEN, Ipv4Packet } from '../wire/ipv4.ts';
import { type ControlMessage, PROTO_ICMP, type PacketInfo } from '../transport/protocol.ts';
import type { Verdict } from './counters.ts';
import type { StackInternals } from './internals.ts';
import { ICMPV4_ERROR_MAX, validErrorTarget } from './ipv4.ts';

/** ICMP types that are errors; RFC 1122 §3.2.2 forbids answering them with errors. */
const ERROR_TYPES = new Set([3, 4, 5, 11, 12]);

/** Destination-unreachable codes to the transport's view (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1). */
const UNREACH_KINDS: Record<number, ControlMessage['kind']> = {
  0: 'net-unreachable',
  1: 'host-unreachable',
  2: 'protocol-unreachable',
  3: 'port-unreachable',
  4: 'packet-too-big',
  5: 'source-route-failed',
  6: 'net-unreachable',
  7: 'host-unreachable',
  8: 'host-unreachable',
  9: 'admin-prohibited',
  10: 'admin-prohibited',
  11: 'net-unreachable',
  12: 'host-unreachable',
  13: 'admin-prohibited',
  14: 'admin-prohibited',
  15: 'admin-prohibited',
};

/** ICMPv4 of a stack. */
export class Icmpv4 {
  constructor(private readonly s: StackInternals) {}

  /** Handles one received ICMP message (`payload`) whose IP header is `header`. */
  receive(header: Uint8Array, payload: Uint8Array, info: PacketInfo, linkBroadcast: boolean): Verdict {
    const c = this.s.counters.icmpv4;
    const p = Icmpv4Packet.check(payload);
    if (typeof p === 'string') return 'icmpv4.truncated';
    const r = parseIcmpv4(p);
    if (typeof r === 'string') return r === 'bad-checksum' ? 'icmpv4.badChecksum' : r === 'bad-code' ? 'icmpv4.badCode' : 'icmpv4.unsupportedType';
    switch (r.kind) {
      case 'echo-request': {
        c.rxEchoRequests++;
        // Linux's icmp_echo_ignore_broadcasts=1 default: no smurf amplifier.
        if (info.broadcast || linkBroadcast) return 'icmpv4.broadcastEcho';
        const path = this.s.findPath(info.src, info.dst);
        if (isError(path)) return 'icmpv4.noRoute';
        const buf = new Uint8Array(path.headroom + payload.length);
        buf.set(payload, path.headroom);
        buf[path.headroom] = ICMPV4_ECHO_REPLY;
        const msg = buf.subarray(path.headroom);
        new Icmpv4Packet(msg).fillChecksum();
        c.txEchoReplies++;
        path.send(PROTO_ICMP, buf, path.headroom, { tos: info.tos });
        return undefined;
      }
      case 'echo-reply': {
        c.rxEchoReplies++;
        const t = this.s.transport(PROTO_ICMP);
        if (!t) return 'icmpv4.noEndpoint';
        const res = t.deliver(info, payload);
        if (res === 'delivered') return undefined;
        return res === 'no-endpoint' ? 'icmpv4.noEndpoint' : 'icmpv4.transportMalformed';
      }
      case 'dest-unreachable':
      case 'time-exceeded':
      case 'parameter-problem': {
        c.rxErrors++;
        const kind =
          r.kind === 'dest-unreachable' ? UNREACH_KINDS[r.code] : r.kind === 'time-exceeded' ? 'time-exceeded' : 'parameter-problem';
        if (!kind) return 'icmpv4.badCode';
        return this.control(kind, p.type, r.code, r.kind === 'dest-unreachable' ? r.nextHopMtu : 0, r.data, info);
      }
      default:
        // Redirects are for routers to send and hosts on shared segments to trust; we do neither.
        return 'icmpv4.ignoredType';
    }
  }

  /**
   * Sends an ICMP error about a received packet (`header` + `payload`) unless RFC 1122 §3.2.2 forbids it or
   * the rate limit suppresses it; `rest` is the 32-bit field after the checksum (pointer << 24, or an MTU).
   */
  sendError(type: number, code: number, rest: number, header: Uint8Array, payload: Uint8Array, info: PacketInfo, linkBroadcast: boolean): void {
    const c = this.s.counters.icmpv4;
    if (info.broadcast || linkBroadcast) return;
    // Not about a non-first fragment.
    if ((((header[6]! << 8) | header[7]!) & 0x1fff) !== 0) return;
    if (!validErrorTarget(this.s.nic(info.nicId), info.src)) return;
    if (header[9] === PROTO_ICMP && (payload.length < 1 || ERROR_TYPES.has(payload[0]!))) return;
    if (!this.s.icmpLimiter.take()) {
      this.s.stats.count(c, 'icmpv4', 'rateLimited');
      return;
    }
    // Reply from the address the packet was sent to when it is ours (RFC 1122 §3.2.2), else the NIC's.
    const local = this.s.localNic(info.dst) ? info.dst : undefined;
    const path = this.s.findPath(info.src, local, local ? undefined : info.nicId);
    if (isError(path)) return;
    const quote = Math.min(header.length + payload.length, ICMPV4_ERROR_MAX - IPV4_HEADER_LEN - ICMP_HEADER_LEN);
    const buf = new Uint8Array(path.headroom + ICMP_HEADER_LEN + quote);
    const h = buf.subarray(path.headroom, path.headroom + ICMP_HEADER_LEN);
    const data = buf.subarray(path.headroom + ICMP_HEADER_LEN);
    data.set(header.subarray(0, Math.min(header.length, quote)));
    if (quote > header.length) data.set(payload.subarray(0, quote - header.length), header.length);
    h[0] = type;
    h[1] = code;
    h[4] = rest >>> 24;
    h[5] = (rest >>> 16) & 0xff;
    h[6] = (rest >>> 8) & 0xff;
    h[7] = rest & 0xff;
    fillIcmpv4Checksum(h, data);
    c.txErrors++;
    // RFC 1812 §4.3.2.5 / Linux: errors go out with precedence "internetwork control".
    path.send(PROTO_ICMP, buf, path.headroom, { tos: 0xc0 });
  }

  /**
   * Tells the transport of a packet we sent that its next hop never answered, as the host-unreachable error
   * Linux sends itself on neighbour failure would (RFC 1122 §3.3.1.4).
   */
  localUnreachable(ip: Uint8Array): void {
    const p = Ipv4Packet.check(ip);
    if (typeof p === 'string' || p.fragmentOffset !== 0) return;
    const t = this.s.transport(p.protocol);
    if (!t?.deliverControl) return;
    const msg: ControlMessage = { kind: 'host-unreachable', type: 3, code: 1, family: 4, from: p.src.slice(), mtu: 0 };
    t.deliverControl(msg, p.src.slice(), p.dst.slice(), p.payload);
  }

  /** Decodes an error's quoted packet and tells its transport (and the PMTU cache for code 4). */
  private control(kind: ControlMessage['kind'], type: number, code: number, mtu: number, quoted: Uint8Array, info: PacketInfo): Verdict {
    if (quoted.length < IPV4_HEADER_LEN || quoted[0]! >>> 4 !== 4) return 'icmpv4.badQuote';
    const hl = (quoted[0]! & 0x0f) * 4;
    // RFC 792: the quote is the invoking header plus at least 8 bytes of its data.
    if (hl < IPV4_HEADER_LEN || quoted.length < hl + 8) return 'icmpv4.badQuote';
    const local = quoted.subarray(12, 16);
    const remote = quoted.subarray(16, 20);
    // Only errors about packets we could have sent matter; anything else is spoofed or misdirected.
    const nic = this.s.localNic(local);
    if (!nic || isMulticast(remote)) return 'icmpv4.badQuote';
    let reportedMtu = 0;
    if (type === ICMPV4_DEST_UNREACHABLE && code === ICMPV4_FRAG_NEEDED) {
      const sent = (quoted[2]! << 8) | quoted[3]!;
      reportedMtu = this.s.pmtu.update(remote.slice(), mtu, sent, nic.mtu);
    }
    const fragOffset = ((quoted[6]! << 8) | quoted[7]!) & 0x1fff;
    const t = this.s.transport(quoted[9]!);
    // A non-first fragment quotes no transport header.
    if (t?.deliverControl && fragOffset === 0) {
      const msg: ControlMessage = { kind, type, code, family: 4, from: info.src, mtu: reportedMtu };
      t.deliverControl(msg, local.slice(), remote.slice(), quoted.subarray(hl));
    }
    return undefined;
  }
}
