/**
 * A UDP socket (RFC 768) with Linux semantics: the shared datagram behaviour of DatagramEndpoint plus the UDP
 * header, its checksum and UDP's size limits.
 */
import { Err, type NetError } from '../../errors.ts';
import type { Family } from '../../socket.ts';
import { UDP_HEADER_LEN, UdpPacket, emitUdp } from '../../wire/udp.ts';
import { PROTO_UDP, type Route, type SendOptions } from '../protocol.ts';
import { type DatagramHost, DatagramEndpoint, type Dest } from './datagram.ts';

/** Largest UDP payload over IPv4: 65535 − 20 (IP header) − 8. */
export const UDP_MAX_V4 = 65507;
/** Largest UDP payload over IPv6 without jumbograms: 65535 − 8 (RFC 8200 §3 payload length). */
export const UDP_MAX_V6 = 65527;

/** Counters a UDP endpoint updates on its protocol. */
export interface UdpSendCounters {
  sent: number;
  sendErrors: number;
}

/** A UDP socket endpoint; create it through UdpProtocol.newEndpoint. */
export class UdpEndpoint extends DatagramEndpoint {
  protected override readonly corkable = true;

  constructor(
    family: Family,
    host: DatagramHost<DatagramEndpoint>,
    private readonly counters: UdpSendCounters,
  ) {
    super(family, PROTO_UDP, host);
  }

  protected maxMessage(v4: boolean): number {
    return v4 ? UDP_MAX_V4 : UDP_MAX_V6;
  }

  protected checkDestPort(port: number): NetError | undefined {
    // udp_sendmsg refuses sendto() port 0 (connect() to port 0 is allowed and sends there).
    return port === 0 ? Err.InvalidArgument : undefined;
  }

  protected send(route: Route, dest: Dest, data: Uint8Array, opts: SendOptions): number | NetError {
    const off = route.headroom;
    const buf = new Uint8Array(off + UDP_HEADER_LEN + data.length);
    buf.set(data, off + UDP_HEADER_LEN);
    emitUdp({ srcPort: this.localPort, dstPort: dest.port, payloadLength: data.length }, buf, off);
    new UdpPacket(buf.subarray(off)).fillChecksum(route.localAddress, route.remoteAddress);
    const err = route.send(PROTO_UDP, buf, off, opts);
    if (err) {
      this.counters.sendErrors++;
      return err;
    }
    this.counters.sent++;
    return data.length;
  }
}
