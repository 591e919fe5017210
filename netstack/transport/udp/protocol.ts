/**
 * The UDP transport (RFC 768): checksum verification, demultiplexing of received datagrams to sockets, ICMP
 * errors routed to the socket that sent the offending datagram, and the counters that explain every drop.
 */
import type { Address } from '../../addr.ts';
import type { Family } from '../../socket.ts';
import { UdpPacket, parseUdp } from '../../wire/udp.ts';
import type { PortManager } from '../ports.ts';
import {
  type ControlMessage,
  type DeliverResult,
  type NetworkLayer,
  type PacketInfo,
  type TransportProtocol,
  PROTO_UDP,
} from '../protocol.ts';
import type { DatagramEndpoint, DatagramHost } from './datagram.ts';
import { DemuxTable } from './demux.ts';
import { UdpEndpoint } from './endpoint.ts';
import { udpSocketError } from './icmperr.ts';

/** UDP counters, registered with the stack's Stats as group "udp" (Linux's /proc/net/snmp Udp: names). */
export interface UdpCounters {
  [k: string]: number;
  /** Datagrams queued to at least one socket (InDatagrams). */
  received: number;
  /** Datagrams handed to the network layer (OutDatagrams). */
  sent: number;
  /** Sends the network layer refused. */
  sendErrors: number;
  /** Datagrams for a port nobody listens on (NoPorts). */
  noPort: number;
  /** Broadcast/multicast datagrams nobody wanted (IgnoredMulti). */
  ignoredMulti: number;
  /** Bad or (IPv6) missing checksums (InCsumErrors). */
  badChecksum: number;
  /** Too short or inconsistent lengths, destination port 0. */
  malformed: number;
  /** Datagrams dropped because the socket's SO_RCVBUF was full (RcvbufErrors). */
  receiveBufferErrors: number;
  /** ICMP errors that matched a socket. */
  controlDelivered: number;
}

/** The UDP protocol of one stack. */
export class UdpProtocol implements TransportProtocol, DatagramHost<DatagramEndpoint> {
  readonly protocolNumber = PROTO_UDP;
  readonly table: DemuxTable<DatagramEndpoint>;
  readonly counters: UdpCounters;

  constructor(
    readonly net: NetworkLayer,
    readonly ports: PortManager,
  ) {
    this.table = new DemuxTable(net.secret, true);
    this.counters = net.stats.group<UdpCounters>('udp', {
      received: 0,
      sent: 0,
      sendErrors: 0,
      noPort: 0,
      ignoredMulti: 0,
      badChecksum: 0,
      malformed: 0,
      receiveBufferErrors: 0,
      controlDelivered: 0,
    });
  }

  /** Creates an unbound UDP socket of the given family. */
  newEndpoint(family: Family): UdpEndpoint {
    return new UdpEndpoint(family, this, this.counters);
  }

  deliver(info: PacketInfo, segment: Uint8Array): DeliverResult {
    const pkt = UdpPacket.check(segment);
    if (typeof pkt === 'string') return this.drop('malformed', pkt);
    // A link that verified the checksum (or a local sender that left it partial) spares us the sum.
    const r = parseUdp(pkt, info.src, info.dst, info.csumVerified !== true);
    // RFC 8200 §8.1: a zero UDP checksum over IPv6 is an error, counted like a bad one (as Linux does).
    if (typeof r === 'string') return this.drop('badChecksum', r);
    const key = { src: info.src, srcPort: r.srcPort, dst: info.dst, dstPort: r.dstPort, nicId: info.nicId };
    const payload = pkt.payload;
    if (info.broadcast) {
      const all = this.table.lookupAll(key);
      if (all.length === 0) {
        // RFC 1122 §3.2.2: never an ICMP error for a broadcast, so this is not "no-endpoint".
        this.count('ignoredMulti');
        return 'delivered';
      }
      let queued = false;
      for (const ep of all) {
        if (ep.enqueue(info, r.srcPort, payload)) queued = true;
        else this.count('receiveBufferErrors');
      }
      if (queued) this.counters.received++;
      return 'delivered';
    }
    const ep = this.table.lookup(key);
    if (!ep) {
      this.count('noPort');
      return 'no-endpoint';
    }
    if (ep.enqueue(info, r.srcPort, payload)) this.counters.received++;
    else this.count('receiveBufferErrors');
    return 'delivered';
  }

  deliverControl(msg: ControlMessage, local: Address, remote: Address, quoted: Uint8Array): void {
    if (quoted.length < 4) return;
    // Only the ports are needed; the quote may be shorter than a checked header (RFC 792 quotes 8 bytes).
    const q = new UdpPacket(quoted);
    // Look the socket up as if the datagram came back from the peer, as Linux's __udp4_lib_err does.
    const ep = this.table.lookup({ src: remote, srcPort: q.dstPort, dst: local, dstPort: q.srcPort, nicId: 0 });
    if (!ep) return;
    const e = udpSocketError(msg);
    if (!e) return;
    this.counters.controlDelivered++;
    ep.reportError(e, { msg, remote, remotePort: q.dstPort, payload: quoted.subarray(8) });
  }

  private drop(counter: keyof UdpCounters & string, detail: string): DeliverResult {
    this.count(counter, detail);
    return 'malformed';
  }

  private count(counter: string, detail?: string): void {
    this.net.stats.count(this.counters, 'udp', counter, detail);
  }
}
