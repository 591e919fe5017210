/**
 * Frames for the conformance runner, which plays the remote host: building the Ethernet frames it injects
 * (TCP, UDP, ICMP errors quoting a segment, ARP replies and NDP advertisements for its own address), decoding
 * what the DUT sends, and printing both the way tcpdump and packetdrill scripts do.
 */
import { type Address, addressEqual, formatAddress, solicitedNodeAddress } from '../../netstack/addr.ts';
import { ARP_REPLY, ARP_REQUEST, ArpPacket, emitArp, parseArp } from '../../netstack/wire/arp.ts';
import { get16, get32, set16, set32 } from '../../netstack/wire/bytes.ts';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetPacket, emitEthernet } from '../../netstack/wire/ethernet.ts';
import { fillIcmpv4Checksum } from '../../netstack/wire/icmpv4.ts';
import { fillIcmpv6Checksum } from '../../netstack/wire/icmpv6.ts';
import { Ipv4Packet, emitIpv4 } from '../../netstack/wire/ipv4.ts';
import { Ipv6Packet, emitIpv6 } from '../../netstack/wire/ipv6.ts';
import { TcpPacket, fillTcpChecksum, tcpOptionsIter } from '../../netstack/wire/tcp.ts';
import { emitUdp, fillUdpChecksum } from '../../netstack/wire/udp.ts';
import type { TcpOptionSpec } from './script.ts';

const PROTO_ICMP = 1;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_ICMPV6 = 58;

/** The two ends of the test link as the runner sees them. */
export interface Endpoints {
  readonly dutMac: Uint8Array;
  readonly remoteMac: Uint8Array;
  readonly dutIp: Address;
  readonly remoteIp: Address;
}

/** IP header choices of an injected packet. */
export interface IpFields {
  ecn?: number;
  tos?: number;
  ttl?: number;
}

/** A TCP segment to build, with live (already mapped) numbers. */
export interface TcpFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  win: number;
  urg?: number;
  options: readonly TcpOptionSpec[];
  payload: Uint8Array;
}

/** TCP flag letters of packetdrill scripts and their bits (A is the AccECN AE bit, kept out of the byte). */
export const FLAG_BITS: Readonly<Record<string, number>> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, '.': 0x10, U: 0x20, E: 0x40, W: 0x80 };

/** The flag byte of a script's flag letters. */
export function flagsOf(letters: string): number {
  let f = 0;
  for (const c of letters) f |= FLAG_BITS[c] ?? 0;
  return f;
}

/** Flag letters as packetdrill prints them (S F R P then . for ACK, then U E W). */
export function flagLetters(f: number): string {
  let s = '';
  for (const c of ['S', 'F', 'R', 'P', '.', 'U', 'E', 'W']) if (f & FLAG_BITS[c]!) s += c;
  return s;
}

/** Encodes options in the script's order, padding with zeros to a 4-byte multiple as the script did not. */
export function encodeTcpOptions(opts: readonly TcpOptionSpec[]): Uint8Array {
  const out: number[] = [];
  for (const o of opts) {
    switch (o.kind) {
      case 'nop':
        out.push(1);
        break;
      case 'eol':
        out.push(0);
        break;
      case 'mss':
        out.push(2, 4, o.value >> 8, o.value & 0xff);
        break;
      case 'wscale':
        out.push(3, 3, o.value);
        break;
      case 'sackOK':
        out.push(4, 2);
        break;
      case 'sack':
        out.push(5, 2 + 8 * o.blocks.length);
        for (const [l, r] of o.blocks) for (const v of [l, r]) out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
        break;
      case 'TS':
        out.push(8, 10);
        for (const v of [o.val, o.ecr]) out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
        break;
      case 'raw':
        out.push(o.code, 2 + o.data.length, ...o.data);
        break;
      case 'unsupported':
        throw new Error(`cannot encode TCP option "${o.text}"`);
    }
  }
  while (out.length % 4) out.push(0);
  return new Uint8Array(out);
}

/** Decodes option bytes into the script's vocabulary (unknown kinds as raw). */
export function decodeTcpOptions(bytes: Uint8Array): TcpOptionSpec[] {
  const out: TcpOptionSpec[] = [];
  for (const o of tcpOptionsIter(bytes)) {
    if (typeof o === 'string') {
      out.push({ kind: 'raw', code: 255, data: new Uint8Array() });
      break;
    }
    const d = o.data;
    if (o.kind === 0) out.push({ kind: 'eol' });
    else if (o.kind === 1) out.push({ kind: 'nop' });
    else if (o.kind === 2 && d.length === 2) out.push({ kind: 'mss', value: get16(d, 0) });
    else if (o.kind === 3 && d.length === 1) out.push({ kind: 'wscale', value: d[0]! });
    else if (o.kind === 4 && d.length === 0) out.push({ kind: 'sackOK' });
    else if (o.kind === 8 && d.length === 8) out.push({ kind: 'TS', val: get32(d, 0), ecr: get32(d, 4) });
    else if (o.kind === 5 && d.length % 8 === 0) {
      const blocks: [number, number][] = [];
      for (let i = 0; i < d.length; i += 8) blocks.push([get32(d, i), get32(d, i + 4)]);
      out.push({ kind: 'sack', blocks });
    } else out.push({ kind: 'raw', code: o.kind, data: d.slice() });
  }
  // Linux pads with EOL only when it must; trailing zero padding after an EOL is not an option.
  return out;
}

/** Formats options like a script line: `<mss 1460,nop,wscale 7>`. */
export function formatTcpOptions(opts: readonly TcpOptionSpec[]): string {
  const one = (o: TcpOptionSpec): string => {
    switch (o.kind) {
      case 'mss':
        return `mss ${o.value}`;
      case 'wscale':
        return `wscale ${o.value}`;
      case 'sackOK':
        return 'sackOK';
      case 'sack':
        return `sack ${o.blocks.map(([l, r]) => `${l}:${r}`).join(' ')}`;
      case 'TS':
        return `TS val ${o.val} ecr ${o.ecr}`;
      case 'nop':
        return 'nop';
      case 'eol':
        return 'eol';
      case 'raw': {
        const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
        if (o.code === 34) return o.data.length ? `FO ${hex(o.data)}` : 'FO';
        if (o.code === 254 && o.data[0] === 0xf9 && o.data[1] === 0x89) return o.data.length > 2 ? `FOEXP ${hex(o.data.subarray(2))}` : 'FOEXP';
        if (o.code === 19) return `md5 ${hex(o.data)}`;
        return `opt${o.code}${o.data.length ? ` ${hex(o.data)}` : ''}`;
      }
      case 'unsupported':
        return o.text;
    }
  };
  return `<${opts.map(one).join(',')}>`;
}

function ipFrame(ep: Endpoints, proto: number, l4: Uint8Array, ip: IpFields): Uint8Array {
  const v4 = ep.dutIp.length === 4;
  const ipLen = v4 ? 20 : 40;
  const frame = new Uint8Array(14 + ipLen + l4.length);
  emitEthernet({ dst: ep.dutMac, src: ep.remoteMac, etherType: v4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6 }, frame, 0);
  const tos = ip.tos ?? 0;
  const ecn = ip.ecn ?? tos & 3;
  if (v4) {
    emitIpv4({ src: ep.remoteIp, dst: ep.dutIp, protocol: proto, ttl: ip.ttl ?? 64, payloadLength: l4.length, dscp: tos >> 2, ecn, dontFragment: true }, frame, 14);
  } else {
    emitIpv6({ src: ep.remoteIp, dst: ep.dutIp, nextHeader: proto, hopLimit: ip.ttl ?? 64, payloadLength: l4.length, trafficClass: (tos & ~3) | ecn }, frame, 14);
  }
  frame.set(l4, 14 + ipLen);
  return frame;
}

/** Builds a TCP segment (header, options, payload) with its checksum for src → dst. */
export function buildTcpSegment(t: TcpFields, src: Address, dst: Address): Uint8Array {
  const opts = encodeTcpOptions(t.options);
  const seg = new Uint8Array(20 + opts.length + t.payload.length);
  const p = new TcpPacket(seg);
  p.srcPort = t.srcPort;
  p.dstPort = t.dstPort;
  p.seqNumber = t.seq >>> 0;
  p.ackNumber = t.ack >>> 0;
  p.headerLength = 20 + opts.length;
  p.flags = t.flags;
  p.window = t.win;
  p.urgentPointer = t.urg ?? 0;
  seg.set(opts, 20);
  seg.set(t.payload, 20 + opts.length);
  fillTcpChecksum(seg, src, dst);
  return seg;
}

/** An Ethernet frame carrying a TCP segment from the remote host to the DUT. */
export function buildTcpFrame(ep: Endpoints, t: TcpFields, ip: IpFields = {}): Uint8Array {
  return ipFrame(ep, PROTO_TCP, buildTcpSegment(t, ep.remoteIp, ep.dutIp), ip);
}

/** An Ethernet frame carrying a UDP datagram of `payload` from the remote host to the DUT. */
export function buildUdpFrame(ep: Endpoints, srcPort: number, dstPort: number, payload: Uint8Array, ip: IpFields = {}): Uint8Array {
  const l4 = new Uint8Array(8 + payload.length);
  emitUdp({ srcPort, dstPort, payloadLength: payload.length }, l4, 0);
  l4.set(payload, 8);
  fillUdpChecksum(l4.subarray(0, 8), l4.subarray(8), ep.remoteIp, ep.dutIp);
  return ipFrame(ep, PROTO_UDP, l4, ip);
}

/** Type and code numbers of an ICMP message named the packetdrill way, for IPv4 or IPv6. */
export function icmpNumbers(v4: boolean, type: string, code: string | undefined): { type: number; code: number } | string {
  const T4: Record<string, number> = { echo_reply: 0, unreachable: 3, destination_unreachable: 3, source_quench: 4, redirect: 5, echo_request: 8, time_exceeded: 11, parameter_problem: 12 };
  const T6: Record<string, number> = { unreachable: 1, destination_unreachable: 1, packet_too_big: 2, time_exceeded: 3, parameter_problem: 4, echo_request: 128, echo_reply: 129 };
  const C4: Record<string, number> = {
    net_unreachable: 0, host_unreachable: 1, protocol_unreachable: 2, port_unreachable: 3, frag_needed: 4, source_route_failed: 5,
    net_unknown: 6, host_unknown: 7, source_host_isolated: 8, net_prohibited: 9, host_prohibited: 10, net_unreachable_for_tos: 11,
    host_unreachable_for_tos: 12, packet_filtered: 13, admin_prohibited: 13, precedence_violation: 14, precedence_cutoff: 15,
    ttl_exceeded_in_transit: 0, ttl_exceeded: 0, frag_reass_exceeded: 1, exceeded_frag_time: 1,
  };
  const C6: Record<string, number> = {
    no_route: 0, admin_prohibited: 1, not_neighbour: 2, beyond_scope: 2, address_unreachable: 3, port_unreachable: 4,
    source_address_failed: 5, reject_route: 6, exceeded_hop_limit: 0, hop_limit_exceeded: 0, exceeded_frag_time: 1,
    header_field: 0, erroneous_header: 0, unknown_next_header: 1, unknown_option: 2,
  };
  const t = (v4 ? T4 : T6)[type];
  if (t === undefined) return `unknown ICMP${v4 ? '' : 'v6'} type "${type}"`;
  if (code === undefined) return { type: t, code: 0 };
  const m = /^code_(\d+)$/.exec(code);
  if (m) return { type: t, code: Number(m[1]) };
  const c = (v4 ? C4 : C6)[code];
  if (c === undefined) return `unknown ICMP${v4 ? '' : 'v6'} code "${code}" for type "${type}"`;
  return { type: t, code: c };
}

/**
 * An ICMP error from the remote host quoting `quoted` (a transport header the DUT sent, src DUT → dst remote),
 * inside an IP header as the DUT would have sent it (RFC 792, RFC 4443 §3).
 */
export function buildIcmpErrorFrame(ep: Endpoints, type: number, code: number, quotedProto: number, quoted: Uint8Array, mtu = 0): Uint8Array {
  const v4 = ep.dutIp.length === 4;
  const inner = new Uint8Array((v4 ? 20 : 40) + quoted.length);
  if (v4) emitIpv4({ src: ep.dutIp, dst: ep.remoteIp, protocol: quotedProto, ttl: 64, payloadLength: quoted.length, dontFragment: true }, inner, 0);
  else emitIpv6({ src: ep.dutIp, dst: ep.remoteIp, nextHeader: quotedProto, hopLimit: 64, payloadLength: quoted.length }, inner, 0);
  inner.set(quoted, v4 ? 20 : 40);
  const l4 = new Uint8Array(8 + inner.length);
  l4[0] = type;
  l4[1] = code;
  // Fragmentation needed (v4) keeps the next-hop MTU in bytes 6–7; packet too big (v6) the MTU in bytes 4–7.
  if (v4 && type === 3 && code === 4) set16(l4, 6, mtu);
  if (!v4 && type === 2) set32(l4, 4, mtu);
  l4.set(inner, 8);
  if (v4) fillIcmpv4Checksum(l4.subarray(0, 8), l4.subarray(8));
  else fillIcmpv6Checksum(l4.subarray(0, 8), l4.subarray(8), ep.remoteIp, ep.dutIp);
  return ipFrame(ep, v4 ? PROTO_ICMP : PROTO_ICMPV6, l4, {});
}

/** A decoded frame the DUT sent. */
export interface Decoded {
  readonly v: 4 | 6;
  readonly src: Address;
  readonly dst: Address;
  readonly tos: number;
  readonly ttl: number;
  /** The IPv6 flow label (0 for IPv4). */
  readonly flowLabel: number;
  readonly proto: number;
  readonly ipChecksumOk: boolean;
  readonly tcp?: {
    readonly srcPort: number;
    readonly dstPort: number;
    readonly seq: number;
    readonly ack: number;
    readonly flags: number;
    readonly win: number;
    readonly urg: number;
    readonly options: TcpOptionSpec[];
    /** Bytes of TCP options (header length beyond the fixed 20). */
    readonly optionsLength: number;
    readonly payload: Uint8Array;
  };
  readonly udp?: { readonly srcPort: number; readonly dstPort: number; readonly payload: Uint8Array };
  readonly icmp?: { readonly type: number; readonly code: number; readonly body: Uint8Array };
}

/** Decodes an IP frame the DUT sent; undefined for anything else (ARP, malformed). */
export function decodeFrame(frame: Uint8Array): Decoded | undefined {
  const eth = EthernetPacket.check(frame);
  if (typeof eth === 'string') return undefined;
  let src: Address, dst: Address, tos: number, ttl: number, proto: number, payload: Uint8Array, v: 4 | 6;
  let flowLabel = 0;
  let ipChecksumOk = true;
  if (eth.etherType === ETHERTYPE_IPV4) {
    const ip = Ipv4Packet.check(eth.payload);
    if (typeof ip === 'string') return undefined;
    v = 4;
    src = ip.src.slice();
    dst = ip.dst.slice();
    tos = ip.tos;
    ttl = ip.ttl;
    proto = ip.protocol;
    payload = ip.payload;
    ipChecksumOk = ip.verifyChecksum();
  } else if (eth.etherType === ETHERTYPE_IPV6) {
    const ip = Ipv6Packet.check(eth.payload);
    if (typeof ip === 'string') return undefined;
    v = 6;
    src = ip.src.slice();
    dst = ip.dst.slice();
    tos = ip.trafficClass;
    ttl = ip.hopLimit;
    flowLabel = ip.flowLabel;
    proto = ip.nextHeader;
    payload = ip.payload;
  } else return undefined;
  const base = { v, src, dst, tos, ttl, flowLabel, proto, ipChecksumOk };
  if (proto === PROTO_TCP) {
    const t = TcpPacket.check(payload);
    if (typeof t === 'string') return base;
    return {
      ...base,
      tcp: {
        srcPort: t.srcPort, dstPort: t.dstPort, seq: t.seqNumber, ack: t.ackNumber, flags: t.flags, win: t.window,
        urg: t.urgentPointer, options: decodeTcpOptions(t.options), optionsLength: t.headerLength - 20, payload: t.payload.slice(),
      },
    };
  }
  if (proto === PROTO_UDP && payload.length >= 8) {
    return { ...base, udp: { srcPort: get16(payload, 0), dstPort: get16(payload, 2), payload: payload.slice(8, get16(payload, 4)) } };
  }
  if ((proto === PROTO_ICMP || proto === PROTO_ICMPV6) && payload.length >= 4) {
    return { ...base, icmp: { type: payload[0]!, code: payload[1]!, body: payload.slice(4) } };
  }
  return base;
}

/**
 * The reply the remote host owes to an ARP request or IPv6 neighbour solicitation for its own address
 * (RFC 826, RFC 4861 §7.2.4), or undefined when `frame` is not one.
 */
export function neighborReply(ep: Endpoints, frame: Uint8Array): Uint8Array | undefined {
  const eth = EthernetPacket.check(frame);
  if (typeof eth === 'string') return undefined;
  if (eth.etherType === ETHERTYPE_ARP) {
    const a = ArpPacket.check(eth.payload);
    if (typeof a === 'string') return undefined;
    const r = parseArp(a);
    if (typeof r === 'string' || r.operation !== ARP_REQUEST || !addressEqual(r.targetProtocolAddress, ep.remoteIp)) return undefined;
    const out = new Uint8Array(14 + 28);
    emitEthernet({ dst: r.senderHardwareAddress, src: ep.remoteMac, etherType: ETHERTYPE_ARP }, out, 0);
    emitArp({ operation: ARP_REPLY, senderHardwareAddress: ep.remoteMac, senderProtocolAddress: ep.remoteIp, targetHardwareAddress: r.senderHardwareAddress, targetProtocolAddress: r.senderProtocolAddress }, out, 14);
    return out;
  }
  const d = decodeFrame(frame);
  if (!d || d.v !== 6 || !d.icmp || d.icmp.type !== 135 || d.icmp.body.length < 20) return undefined;
  const target = d.icmp.body.subarray(4, 20);
  if (!addressEqual(target, ep.remoteIp)) return undefined;
  // Reply to the solicitation's source (the DUT), or to all-nodes when it came from the unspecified address.
  const unspecified = d.src.every((b) => b === 0);
  const to = unspecified ? new Uint8Array([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]) : d.src;
  const l4 = new Uint8Array(32);
  l4[0] = 136;
  l4[4] = unspecified ? 0x20 : 0x60; // Solicited (when unicast) and Override
  l4.set(ep.remoteIp, 8);
  l4[24] = 2; // target link-layer address option
  l4[25] = 1;
  l4.set(ep.remoteMac, 26);
  fillIcmpv6Checksum(l4.subarray(0, 8), l4.subarray(8), ep.remoteIp, to);
  const out = new Uint8Array(14 + 40 + 32);
  emitEthernet({ dst: eth.src, src: ep.remoteMac, etherType: ETHERTYPE_IPV6 }, out, 0);
  emitIpv6({ src: ep.remoteIp, dst: to, nextHeader: PROTO_ICMPV6, hopLimit: 255, payloadLength: 32 }, out, 14);
  out.set(l4, 54);
  return out;
}

/** Whether a decoded frame is neighbour discovery or multicast listener noise (not part of any script). */
export function isNoise(d: Decoded): boolean {
  if (d.icmp && d.v === 6 && (d.icmp.type >= 130 && d.icmp.type <= 137 || d.icmp.type === 143)) return true;
  return false;
}

/** One line like tcpdump's: `198.18.0.1.8080 > 198.18.0.2.40000: S. 0:0(0) ack 1 win 65535 <mss 1460>`. */
export function formatDecoded(d: Decoded, seqOffset = 0, ackOffset = 0, withAck = true): string {
  const a = (x: Address, port?: number) => `${formatAddress(x)}${port === undefined ? '' : '.' + port}`;
  const ecn = ['', ' [ect1]', ' [ect0]', ' [ce]'][d.tos & 3];
  if (d.tcp) {
    const t = d.tcp;
    const seq = (t.seq - seqOffset) >>> 0;
    let s = `${a(d.src, t.srcPort)} > ${a(d.dst, t.dstPort)}:${ecn} ${flagLetters(t.flags) || '-'} ${seq}:${(seq + t.payload.length) >>> 0}(${t.payload.length})`;
    if (t.flags & 0x10 && withAck) s += ` ack ${(t.ack - ackOffset) >>> 0}`;
    else if (t.ack !== 0) s += ` ack-field ${t.ack}`;
    s += ` win ${t.win}`;
    if (t.urg) s += ` urg ${t.urg}`;
    if (t.options.length) s += ' ' + formatTcpOptions(t.options);
    return s;
  }
  if (d.udp) return `${a(d.src, d.udp.srcPort)} > ${a(d.dst, d.udp.dstPort)}:${ecn} udp (${d.udp.payload.length})`;
  if (d.icmp) return `${a(d.src)} > ${a(d.dst)}: icmp${d.v === 6 ? 'v6' : ''} type ${d.icmp.type} code ${d.icmp.code}`;
  return `${a(d.src)} > ${a(d.dst)}: ip proto ${d.proto}`;
}

/** The solicited-node group of an address (re-exported for DUT setup). */
export { solicitedNodeAddress };
