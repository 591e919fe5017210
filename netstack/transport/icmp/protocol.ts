/**
 * The ICMP echo socket transport: one instance for ICMPv4 (protocol 1) and one for ICMPv6 (58). The network
 * layer answers echo requests itself and hands echo replies here; they go to the ping socket whose identifier
 * they carry, as Linux's ping_rcv does. ICMP errors quoting one of our echo requests reach that socket too.
 */
import type { Address } from '../../addr.ts';
import type { Family } from '../../socket.ts';
import { ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST, Icmpv4Packet } from '../../wire/icmpv4.ts';
import { ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, Icmpv6Packet } from '../../wire/icmpv6.ts';
import type { PortManager } from '../ports.ts';
import {
  type ControlMessage,
  type DeliverResult,
  type NetworkLayer,
  type PacketInfo,
  type TransportProtocol,
  PROTO_ICMP,
  PROTO_ICMPV6,
} from '../protocol.ts';
import type { DatagramEndpoint, DatagramHost } from '../udp/datagram.ts';
import { DemuxTable } from '../udp/demux.ts';
import { pingSocketError } from '../udp/icmperr.ts';
import { IcmpEchoEndpoint } from './endpoint.ts';

/** Ping socket counters, registered as Stats group "icmpEcho4" or "icmpEcho6". */
export interface EchoCounters {
  [k: string]: number;
  /** Replies queued to a socket. */
  received: number;
  /** Requests handed to the network layer. */
  sent: number;
  /** Sends the network layer refused. */
  sendErrors: number;
  /** Replies with an identifier no socket holds (dropped silently, as Linux does). */
  noEndpoint: number;
  /** Messages that were not echo replies, too short, or failed the checksum. */
  malformed: number;
  /** Replies dropped because the socket's SO_RCVBUF was full. */
  receiveBufferErrors: number;
  /** ICMP errors that matched a socket. */
  controlDelivered: number;
}

/** Ping sockets of one family. */
export class IcmpEchoProtocol implements TransportProtocol, DatagramHost<DatagramEndpoint> {
  readonly protocolNumber: number;
  readonly table: DemuxTable<DatagramEndpoint>;
  readonly counters: EchoCounters;
  private readonly group: string;

  constructor(
    readonly net: NetworkLayer,
    readonly ports: PortManager,
    readonly family: Family,
  ) {
    this.protocolNumber = family === 4 ? PROTO_ICMP : PROTO_ICMPV6;
    this.table = new DemuxTable(net.secret, false);
    this.group = `icmpEcho${family}`;
    this.counters = net.stats.group<EchoCounters>(this.group, {
      received: 0,
      sent: 0,
      sendErrors: 0,
      noEndpoint: 0,
      malformed: 0,
      receiveBufferErrors: 0,
      controlDelivered: 0,
    });
  }

  /** Creates an unbound ping socket of this protocol's family. */
  newEndpoint(): IcmpEchoEndpoint {
    return new IcmpEchoEndpoint(this.family, this, this.counters);
  }

  deliver(info: PacketInfo, segment: Uint8Array): DeliverResult {
    const ident = this.echoIdentifier(info, segment);
    if (ident < 0) return 'malformed';
    const ep = this.table.lookup({ src: info.src, srcPort: 0, dst: info.dst, dstPort: ident, nicId: info.nicId });
    // A reply nobody waits for is not worth an ICMP error: report it as handled.
    if (!ep) {
      this.count('noEndpoint');
      return 'delivered';
    }
    if (ep.enqueue(info, 0, segment)) this.counters.received++;
    else this.count('receiveBufferErrors');
    return 'delivered';
  }

  deliverControl(msg: ControlMessage, local: Address, remote: Address, quoted: Uint8Array): void {
    if (quoted.length < 8) return;
    const request = this.family === 4 ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
    const q = this.family === 4 ? new Icmpv4Packet(quoted) : new Icmpv6Packet(quoted);
    if (q.type !== request) return;
    const ep = this.table.lookup({ src: remote, srcPort: 0, dst: local, dstPort: q.identifier, nicId: 0 });
    const e = pingSocketError(msg);
    if (!ep || !e) return;
    this.counters.controlDelivered++;
    ep.reportError(e, { msg, remote, remotePort: 0, payload: quoted });
  }

  /** The identifier of a valid echo reply, or -1 after counting why it is not one. */
  private echoIdentifier(info: PacketInfo, segment: Uint8Array): number {
    if (this.family === 4) {
      const p = Icmpv4Packet.check(segment);
      if (typeof p === 'string') return this.bad(p);
      if (p.type !== ICMPV4_ECHO_REPLY || !p.verifyChecksum()) return this.bad('not-echo-reply');
      return p.identifier;
    }
    const p = Icmpv6Packet.check(segment);
    if (typeof p === 'string') return this.bad(p);
    if (p.type !== ICMPV6_ECHO_REPLY || !p.verifyChecksum(info.src, info.dst)) return this.bad('not-echo-reply');
    return p.identifier;
  }

  private bad(detail: string): number {
    this.count('malformed', detail);
    return -1;
  }

  private count(counter: string, detail?: string): void {
    this.net.stats.count(this.counters, this.group, counter, detail);
  }
}
