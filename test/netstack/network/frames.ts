/**
 * Frame builders for network-layer tests, made with the wire library's Repr emitters (never ad-hoc offsets
 * except where a test corrupts a field on purpose).
 */
import type { Address } from '../../../netstack/addr.ts';
import { ARP_REQUEST, emitArp } from '../../../netstack/wire/arp.ts';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, emitEthernet } from '../../../netstack/wire/ethernet.ts';
import { Icmpv4Packet } from '../../../netstack/wire/icmpv4.ts';
import { Icmpv6Packet } from '../../../netstack/wire/icmpv6.ts';
import { type Ipv4Repr, emitIpv4, ipv4HeaderLength } from '../../../netstack/wire/ipv4.ts';
import { emitIpv6 } from '../../../netstack/wire/ipv6.ts';
import { emitIpv6FragmentHeader } from '../../../netstack/wire/ipv6ext.ts';
import { NdpPacket, type NdpRepr, emitNdp, ndpHeaderLength } from '../../../netstack/wire/ndp.ts';

export const MAC_A = new Uint8Array([2, 0, 0, 0, 0, 1]);
export const MAC_B = new Uint8Array([2, 0, 0, 0, 0, 2]);
export const MAC_X = new Uint8Array([2, 0, 0, 0, 0, 0x99]);
export const BCAST = new Uint8Array([255, 255, 255, 255, 255, 255]);

/** An Ethernet II frame. */
export function eth(dst: Uint8Array, src: Uint8Array, etherType: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  emitEthernet({ dst, src, etherType }, f, 0);
  f.set(payload, 14);
  return f;
}

/** An Ethernet/IPv4 ARP packet (no Ethernet header). */
export function arp(op: number, sha: Uint8Array, spa: Address, tha: Uint8Array, tpa: Address): Uint8Array {
  const b = new Uint8Array(28);
  emitArp({ operation: op, senderHardwareAddress: sha, senderProtocolAddress: spa, targetHardwareAddress: tha, targetProtocolAddress: tpa }, b, 0);
  return b;
}

/** An ARP request frame from X for `tpa`. */
export function arpRequestFrame(sha: Uint8Array, spa: Address, tpa: Address): Uint8Array {
  return eth(BCAST, sha, ETHERTYPE_ARP, arp(ARP_REQUEST, sha, spa, new Uint8Array(6), tpa));
}

/** An IPv4 packet with a correct header checksum. */
export function ipv4(r: Omit<Ipv4Repr, 'payloadLength' | 'ttl'> & { ttl?: number }, payload: Uint8Array): Uint8Array {
  const repr: Ipv4Repr = { ttl: 64, ...r, payloadLength: payload.length };
  const hl = ipv4HeaderLength(repr);
  const b = new Uint8Array(hl + payload.length);
  emitIpv4(repr, b, 0);
  b.set(payload, hl);
  return b;
}

/** An IPv6 packet; `nextHeader` names the first header of `payload`. */
export function ipv6(src: Address, dst: Address, nextHeader: number, payload: Uint8Array, hopLimit = 64): Uint8Array {
  const b = new Uint8Array(40 + payload.length);
  emitIpv6({ src, dst, nextHeader, hopLimit, payloadLength: payload.length }, b, 0);
  b.set(payload, 40);
  return b;
}

/** An IPv6 Fragment header followed by `data`. */
export function fragment6(nextHeader: number, offset: number, more: boolean, id: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(8 + data.length);
  emitIpv6FragmentHeader({ nextHeader, fragmentOffset: offset, moreFragments: more, identification: id }, b, 0);
  b.set(data, 8);
  return b;
}

/** A UDP datagram (checksum 0: the network layer does not look at it). */
export function udp(sport: number, dport: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(8 + data.length);
  b[0] = sport >> 8;
  b[1] = sport & 0xff;
  b[2] = dport >> 8;
  b[3] = dport & 0xff;
  b[4] = b.length >> 8;
  b[5] = b.length & 0xff;
  b.set(data, 8);
  return b;
}

/** An ICMPv4 message with checksum; `rest` is the 4 bytes after the checksum. */
export function icmp4(type: number, code: number, rest: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(8 + data.length);
  b[0] = type;
  b[1] = code;
  b[4] = rest >>> 24;
  b[5] = (rest >>> 16) & 0xff;
  b[6] = (rest >>> 8) & 0xff;
  b[7] = rest & 0xff;
  b.set(data, 8);
  new Icmpv4Packet(b).fillChecksum();
  return b;
}

/** An ICMPv6 message with checksum over the pseudo-header of src/dst. */
export function icmp6(src: Address, dst: Address, type: number, code: number, rest: number, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(8 + data.length);
  b[0] = type;
  b[1] = code;
  b[4] = rest >>> 24;
  b[5] = (rest >>> 16) & 0xff;
  b[6] = (rest >>> 8) & 0xff;
  b[7] = rest & 0xff;
  b.set(data, 8);
  new Icmpv6Packet(b).fillChecksum(src, dst);
  return b;
}

/** An NDP message with checksum. */
export function ndp(src: Address, dst: Address, r: NdpRepr): Uint8Array {
  const b = new Uint8Array(ndpHeaderLength(r));
  emitNdp(r, b, 0);
  new NdpPacket(b).fillChecksum(src, dst);
  return b;
}

/** Ethernet+IPv4 frame. */
export function eth4(dst: Uint8Array, src: Uint8Array, packet: Uint8Array): Uint8Array {
  return eth(dst, src, ETHERTYPE_IPV4, packet);
}

/** Ethernet+IPv6 frame. */
export function eth6(dst: Uint8Array, src: Uint8Array, packet: Uint8Array): Uint8Array {
  return eth(dst, src, ETHERTYPE_IPV6, packet);
}
