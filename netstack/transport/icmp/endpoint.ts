/**
 * ICMP echo ("ping") sockets as Linux's SOCK_DGRAM/IPPROTO_ICMP and IPPROTO_ICMPV6 sockets: the user writes an
 * echo request header plus data, the socket stamps its bound identifier and the checksum (RFC 792 echo,
 * RFC 4443 §4.1), and reads back whole echo replies carrying that identifier.
 */
import type { Address } from '../../addr.ts';
import { Err, type NetError } from '../../errors.ts';
import type { Family } from '../../socket.ts';
import { ICMP_HEADER_LEN, ICMPV4_ECHO_REQUEST, Icmpv4Packet } from '../../wire/icmpv4.ts';
import { ICMPV6_ECHO_REQUEST, Icmpv6Packet } from '../../wire/icmpv6.ts';
import { PROTO_ICMP, PROTO_ICMPV6, type Route, type SendOptions } from '../protocol.ts';
import { type DatagramHost, DatagramEndpoint, type Dest } from '../udp/datagram.ts';

/** Counters a ping socket updates on its protocol. */
export interface EchoSendCounters {
  sent: number;
  sendErrors: number;
}

/** A ping socket endpoint; create it through IcmpEchoProtocol.newEndpoint. */
export class IcmpEchoEndpoint extends DatagramEndpoint {
  protected override readonly dualStack = false;
  protected override readonly portless = true;

  constructor(
    family: Family,
    host: DatagramHost<DatagramEndpoint>,
    private readonly counters: EchoSendCounters,
  ) {
    super(family, family === 4 ? PROTO_ICMP : PROTO_ICMPV6, host);
  }

  protected maxMessage(v4: boolean): number {
    // ip_append_data leaves room for the IPv4 header; an IPv6 payload may use all 65535 bytes.
    return v4 ? 0xffff - 20 : 0xffff;
  }

  protected checkDestPort(_port: number): NetError | undefined {
    return undefined;
  }

  protected override validate(data: Uint8Array): NetError | undefined {
    // ping_common_sendmsg: at least a header, and only echo requests with code 0.
    if (data.length < ICMP_HEADER_LEN) return Err.InvalidArgument;
    const request = this.family === 4 ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
    if (data[0] !== request || data[1] !== 0) return Err.InvalidArgument;
    return undefined;
  }

  protected override portAddress(_a: Address): Address {
    return new Uint8Array(this.family === 4 ? 4 : 16);
  }

  protected send(route: Route, _dest: Dest, data: Uint8Array, opts: SendOptions): number | NetError {
    const off = route.headroom;
    const buf = new Uint8Array(off + data.length);
    buf.set(data, off);
    const msg = buf.subarray(off);
    if (this.family === 4) {
      const p = new Icmpv4Packet(msg);
      p.identifier = this.localPort;
      p.fillChecksum();
    } else {
      const p = new Icmpv6Packet(msg);
      p.identifier = this.localPort;
      p.fillChecksum(route.localAddress, route.remoteAddress);
    }
    const err = route.send(this.protocol, buf, off, opts);
    if (err) {
      this.counters.sendErrors++;
      return err;
    }
    this.counters.sent++;
    return data.length;
  }
}
