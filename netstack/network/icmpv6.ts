/**
 * ICMPv6 (RFC 4443): echo replies sent by the stack itself, echo replies handed to the ping transport, NDP
 * messages passed to ndp.ts, received errors decoded for the transport that sent the quoted packet (and
 * packet-too-big for the path-MTU cache, RFC 8201), and rate-limited errors with the §2.4(e) rules.
 */
import { isMulticast, isUnspecified } from '../addr.ts';
import { isError } from '../errors.ts';
import {
  ICMPV6_ECHO_REPLY,
  ICMPV6_HEADER_LEN,
  Icmpv6Packet,
  fillIcmpv6Checksum,
  parseIcmpv6,
} from '../wire/icmpv6.ts';
import { IPV6_HEADER_LEN } from '../wire/ipv6.ts';
import { IPV6_AH, IPV6_DEST_OPTS, IPV6_FRAGMENT, IPV6_HOP_BY_HOP, IPV6_ROUTING } from '../wire/ipv6ext.ts';
import { type ControlMessage, PROTO_ICMPV6, type PacketInfo } from '../transport/protocol.ts';
import type { Verdict } from './counters.ts';
import type { StackInternals } from './internals.ts';
import { ICMPV6_ERROR_MAX } from './ipv6.ts';
import type { Nic } from './nic.ts';

/** Destination-unreachable codes to the transport's view (RFC 4443 §3.1). */
const UNREACH_KINDS: Record<number, ControlMessage['kind']> = {
  0: 'net-unreachable',
  1: 'admin-prohibited',
  2: 'host-unreachable',
  3: 'host-unreachable',
  4: 'port-unreachable',
  5: 'admin-prohibited',
  6: 'admin-prohibited',
};

/** ICMPv6 of a stack. */
export class Icmpv6 {
  constructor(private readonly s: StackInternals) {}

  /** Handles one received ICMPv6 message (`payload`) of the IPv6 packet `packet`. */
  receive(nic: Nic, packet: Uint8Array, payload: Uint8Array, info: PacketInfo, tentative: boolean, linkBroadcast: boolean): Verdict {
    const c = this.s.counters.icmpv6;
    const p = Icmpv6Packet.check(payload);
    if (typeof p === 'string') return 'icmpv6.truncated';
    if (p.type >= 133 && p.type <= 137) return this.s.ndp.receive(nic, payload, info, tentative);
    if (tentative) return 'ipv6.tentativeDestination';
    const r = parseIcmpv6(p, info.src, info.dst);
    if (typeof r === 'string') {
      if (r === 'bad-checksum') return 'icmpv6.badChecksum';
      if (r === 'bad-code') return 'icmpv6.badCode';
      // MLD and unknown informational messages are not ours to answer (RFC 4443 §2.4 b).
      return 'icmpv6.ignoredType';
    }
    switch (r.kind) {
      case 'echo-request': {
        c.rxEchoRequests++;
        // Linux answers multicast echo requests (echo_ignore_multicast=0), from a unicast address of the NIC.
        const local = info.broadcast ? undefined : info.dst;
        const path = this.s.findPath(info.src, local, info.nicId);
        if (isError(path)) return 'icmpv6.noRoute';
        const buf = new Uint8Array(path.headroom + payload.length);
        buf.set(payload, path.headroom);
        const msg = new Icmpv6Packet(buf.subarray(path.headroom));
        msg.type = ICMPV6_ECHO_REPLY;
        msg.fillChecksum(path.localAddress, info.src);
        c.txEchoReplies++;
        path.send(PROTO_ICMPV6, buf, path.headroom, { tos: info.tos });
        return undefined;
      }
      case 'echo-reply': {
        c.rxEchoReplies++;
        const t = this.s.transport(PROTO_ICMPV6);
        if (!t) return 'icmpv6.noEndpoint';
        const res = t.deliver(info, payload);
        if (res === 'delivered') return undefined;
        return res === 'no-endpoint' ? 'icmpv6.noEndpoint' : 'icmpv6.transportMalformed';
      }
      case 'dest-unreachable':
        c.rxErrors++;
        return this.control(UNREACH_KINDS[r.code] ?? 'host-unreachable', p.type, r.code, 0, r.data, info);
      case 'packet-too-big':
        c.rxErrors++;
        return this.control('packet-too-big', p.type, 0, r.mtu, r.data, info);
      case 'time-exceeded':
        c.rxErrors++;
        return this.control('time-exceeded', p.type, r.code, 0, r.data, info);
      case 'parameter-problem':
        c.rxErrors++;
        return this.control('parameter-problem', p.type, r.code, 0, r.data, info);
    }
  }

  /**
   * Sends an ICMPv6 error about a received packet unless RFC 4443 §2.4(e) forbids it or the rate limit
   * suppresses it; `rest` is the 32-bit field after the checksum (pointer or MTU). `evenMulticast` allows
   * the §2.4(e.3) exceptions (packet too big, unrecognized option with action 10).
   */
  sendError(type: number, code: number, rest: number, packet: Uint8Array, info: PacketInfo, linkBroadcast: boolean, evenMulticast: boolean): void {
    const c = this.s.counters.icmpv6;
    if ((info.broadcast || linkBroadcast) && !evenMulticast) return;
    if (isUnspecified(info.src) || isMulticast(info.src)) return;
    if (packet.length < IPV6_HEADER_LEN) return;
    // §2.4(e.1, e.2): never about an ICMPv6 error or a redirect.
    const inner = quotedIcmpType(packet);
    if (inner !== undefined && (inner < 128 || inner === 137)) return;
    if (!this.s.icmpLimiter.take()) {
      this.s.stats.count(c, 'icmpv6', 'rateLimited');
      return;
    }
    const local = this.s.localNic(info.dst) ? info.dst : undefined;
    const path = this.s.findPath(info.src, local, info.nicId);
    if (isError(path)) return;
    const quote = Math.min(packet.length, ICMPV6_ERROR_MAX - IPV6_HEADER_LEN - ICMPV6_HEADER_LEN);
    const buf = new Uint8Array(path.headroom + ICMPV6_HEADER_LEN + quote);
    const h = buf.subarray(path.headroom, path.headroom + ICMPV6_HEADER_LEN);
    const data = buf.subarray(path.headroom + ICMPV6_HEADER_LEN);
    data.set(packet.subarray(0, quote));
    h[0] = type;
    h[1] = code;
    h[4] = rest >>> 24;
    h[5] = (rest >>> 16) & 0xff;
    h[6] = (rest >>> 8) & 0xff;
    h[7] = rest & 0xff;
    fillIcmpv6Checksum(h, data, path.localAddress, info.src);
    c.txErrors++;
    path.send(PROTO_ICMPV6, buf, path.headroom);
  }

  /** Tells the transport of a packet we sent that its next hop never answered (RFC 4443 §3.1 code 3). */
  localUnreachable(ip: Uint8Array): void {
    const q = locateTransport(ip);
    if (!q) return;
    const t = this.s.transport(q.protocol);
    if (!t?.deliverControl) return;
    const src = ip.slice(8, 24);
    const msg: ControlMessage = { kind: 'host-unreachable', type: 1, code: 3, family: 6, from: src, mtu: 0 };
    t.deliverControl(msg, src, ip.slice(24, 40), ip.subarray(q.offset));
  }

  private control(kind: ControlMessage['kind'], type: number, code: number, mtu: number, quoted: Uint8Array, info: PacketInfo): Verdict {
    if (quoted.length < IPV6_HEADER_LEN || quoted[0]! >>> 4 !== 6) return 'icmpv6.badQuote';
    const local = quoted.subarray(8, 24);
    const remote = quoted.subarray(24, 40);
    const owner = this.s.localNic(local);
    if (!owner) return 'icmpv6.badQuote';
    let reportedMtu = 0;
    if (kind === 'packet-too-big') {
      const sent = IPV6_HEADER_LEN + ((quoted[4]! << 8) | quoted[5]!);
      reportedMtu = this.s.pmtu.update(remote.slice(), mtu, sent, owner.mtu);
    }
    const q = locateTransport(quoted);
    if (!q || q.offset + 8 > quoted.length) {
      // The PMTU update above still counts; there is just no transport header to hand on.
      return kind === 'packet-too-big' ? undefined : 'icmpv6.badQuote';
    }
    const t = this.s.transport(q.protocol);
    if (t?.deliverControl) {
      const msg: ControlMessage = { kind, type, code, family: 6, from: info.src, mtu: reportedMtu };
      t.deliverControl(msg, local.slice(), remote.slice(), quoted.subarray(q.offset));
    }
    return undefined;
  }
}

/**
 * Finds the transport header in a (possibly truncated) quoted IPv6 packet, skipping extension headers;
 * undefined when the quote ends first or it is a non-first fragment.
 */
function locateTransport(q: Uint8Array): { protocol: number; offset: number } | undefined {
  if (q.length < IPV6_HEADER_LEN) return undefined;
  let nh = q[6]!;
  let off = IPV6_HEADER_LEN;
  for (;;) {
    switch (nh) {
      case IPV6_HOP_BY_HOP:
      case IPV6_ROUTING:
      case IPV6_DEST_OPTS:
        if (off + 2 > q.length) return undefined;
        nh = q[off]!;
        off += (q[off + 1]! + 1) * 8;
        break;
      case IPV6_AH:
        if (off + 2 > q.length) return undefined;
        nh = q[off]!;
        off += (q[off + 1]! + 2) * 4;
        break;
      case IPV6_FRAGMENT:
        if (off + 8 > q.length) return undefined;
        if ((((q[off + 2]! << 8) | q[off + 3]!) & 0xfff8) !== 0) return undefined;
        nh = q[off]!;
        off += 8;
        break;
      default:
        return off <= q.length ? { protocol: nh, offset: off } : undefined;
    }
  }
}

/** The ICMPv6 type of a packet whose transport is ICMPv6, else undefined. */
function quotedIcmpType(packet: Uint8Array): number | undefined {
  const q = locateTransport(packet);
  if (!q || q.protocol !== PROTO_ICMPV6 || q.offset >= packet.length) return undefined;
  return packet[q.offset];
}
