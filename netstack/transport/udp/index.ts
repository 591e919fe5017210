/**
 * Datagram sockets of a stack in one place: UDP and both ICMP echo socket protocols, registered with the network
 * layer and sharing one PortManager, plus `socket(family, SOCK_DGRAM, protocol)` as Linux's inet_create maps it.
 */
import { Err, type NetError } from '../../errors.ts';
import type { Family } from '../../socket.ts';
import { IcmpEchoProtocol } from '../icmp/protocol.ts';
import { PortManager } from '../ports.ts';
import { type NetworkLayer, PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP } from '../protocol.ts';
import type { DatagramEndpoint } from './datagram.ts';
import { UdpProtocol } from './protocol.ts';

export { UdpProtocol } from './protocol.ts';
export { UdpEndpoint, UDP_MAX_V4, UDP_MAX_V6 } from './endpoint.ts';
export { DatagramEndpoint, type DatagramReadResult } from './datagram.ts';
export { IcmpEchoProtocol } from '../icmp/protocol.ts';
export { IcmpEchoEndpoint } from '../icmp/endpoint.ts';

/** The datagram transports installed on one network layer. */
export interface DatagramTransports {
  readonly ports: PortManager;
  readonly udp: UdpProtocol;
  readonly icmp4: IcmpEchoProtocol;
  readonly icmp6: IcmpEchoProtocol;
}

/** Creates UDP and ICMP echo protocols on `net` and registers them; pass the stack's PortManager to share with TCP. */
export function installDatagramTransports(
  net: NetworkLayer,
  ports: PortManager = new PortManager(net),
): DatagramTransports {
  const udp = new UdpProtocol(net, ports);
  const icmp4 = new IcmpEchoProtocol(net, ports, 4);
  const icmp6 = new IcmpEchoProtocol(net, ports, 6);
  net.registerTransport(udp);
  net.registerTransport(icmp4);
  net.registerTransport(icmp6);
  return { ports, udp, icmp4, icmp6 };
}

/**
 * socket(AF_INET/AF_INET6, SOCK_DGRAM, protocol): 0 or 17 gives UDP, 1 (IPv4) or 58 (IPv6) a ping socket,
 * anything else Err.UnknownProtocol (EPROTONOSUPPORT).
 */
export function newDatagramEndpoint(t: DatagramTransports, family: Family, protocol = 0): DatagramEndpoint | NetError {
  if (protocol === 0 || protocol === PROTO_UDP) return t.udp.newEndpoint(family);
  if (family === 4 && protocol === PROTO_ICMP) return t.icmp4.newEndpoint();
  if (family === 6 && protocol === PROTO_ICMPV6) return t.icmp6.newEndpoint();
  return Err.UnknownProtocol;
}
