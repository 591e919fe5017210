/**
 * The raw sockets of a stack and their delivery, as Linux's raw_local_deliver: the network layer offers each
 * packet addressed to the stack here before its own protocol handler sees it, and every matching raw socket
 * gets a copy. Nothing is taken away: ICMP echo requests are still answered, echo replies still reach ping
 * sockets, and a packet no raw socket wants costs one map lookup by a number (a key made as text was a string
 * built and hashed for every packet the stack received).
 */
import { Err, type NetError } from '../../errors.ts';
import type { Family } from '../../socket.ts';
import { type NetworkLayer, type PacketInfo, type RawDispatcher, PROTO_ICMP, PROTO_ICMPV6 } from '../protocol.ts';
import { Icmpv6Packet } from '../../wire/icmpv6.ts';
import { RawEndpoint } from './endpoint.ts';

/** Raw socket counters, registered as Stats group "raw". */
export interface RawCounters {
  [k: string]: number;
  /** Packets handed to the network layer. */
  sent: number;
  /** Sends the network layer refused. */
  sendErrors: number;
  /** Copies queued to sockets. */
  received: number;
  /** Copies a socket did not take: another bound address, peer or device, or its ICMP filter. */
  unmatched: number;
  /** Copies dropped because the socket's SO_RCVBUF was full. */
  receiveBufferErrors: number;
  /** ICMPv6 messages kept from raw sockets because their checksum failed (rawv6_rcv's csum check). */
  checksumErrors: number;
}

/** The sockets map's key of a family and an IP protocol number (0-255). */
function rawKey(family: number, protocol: number): number {
  return family * 256 + protocol;
}

/** Raw sockets of both families. */
export class RawProtocol implements RawDispatcher {
  readonly counters: RawCounters;
  /** Open sockets by family and protocol (rawKey). */
  private readonly sockets = new Map<number, Set<RawEndpoint>>();

  constructor(readonly net: NetworkLayer) {
    this.counters = net.stats.group<RawCounters>('raw', { sent: 0, sendErrors: 0, received: 0, unmatched: 0, receiveBufferErrors: 0, checksumErrors: 0 });
  }

  /**
   * socket(family, SOCK_RAW, protocol): ICMP on IPv4 and ICMPv6 on IPv6; other protocols (IPPROTO_RAW, raw UDP
   * or TCP) are Err.UnknownProtocol (EPROTONOSUPPORT) here, as the stack would also have to stop answering them.
   */
  newEndpoint(family: Family, protocol: number): RawEndpoint | NetError {
    if (protocol !== (family === 4 ? PROTO_ICMP : PROTO_ICMPV6)) return Err.UnknownProtocol;
    const ep = new RawEndpoint(family, protocol, this);
    const key = rawKey(family, protocol);
    let set = this.sockets.get(key);
    if (!set) this.sockets.set(key, (set = new Set()));
    set.add(ep);
    return ep;
  }

  /** Forgets a closed socket. */
  remove(ep: RawEndpoint): void {
    this.sockets.get(rawKey(ep.family, ep.protocol))?.delete(ep);
  }

  /** Counts one event of a socket. */
  count(counter: 'sent' | 'sendErrors'): void {
    this.counters[counter]++;
  }

  wants(family: 4 | 6, protocol: number): boolean {
    return (this.sockets.get(rawKey(family, protocol))?.size ?? 0) > 0;
  }

  deliverRaw(family: 4 | 6, protocol: number, info: PacketInfo, packet: Uint8Array, transportOffset: number): void {
    const set = this.sockets.get(rawKey(family, protocol));
    if (!set) return;
    // IPv6 raw sockets have a checksum to check (always, for ICMPv6: RFC 3542 §3.1), and get no bad message;
    // IPv4 raw sockets get what came, as Linux's raw_rcv checks nothing.
    if (family === 6 && protocol === PROTO_ICMPV6 && !info.csumVerified) {
      // A whole 8-byte header is not needed: ICMPv6's fixed part is 4 bytes, and a shorter message fails the filter.
      if (!new Icmpv6Packet(packet).verifyChecksum(info.src, info.dst)) {
        this.counters.checksumErrors++;
        return;
      }
    }
    // The filters read the type only from a whole header: struct icmphdr (8 bytes), or ICMPv6's first 4.
    const need = family === 4 ? 8 : 4;
    const type = packet.length >= transportOffset + need ? packet[transportOffset]! : -1;
    for (const ep of set) {
      if (!ep.matches(info, type)) {
        this.counters.unmatched++;
        continue;
      }
      if (ep.enqueue(info, packet)) this.counters.received++;
      else this.counters.receiveBufferErrors++;
    }
  }
}
