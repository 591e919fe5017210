/**
 * How received ICMP errors become socket errors for datagram sockets, after Linux's icmp_err_convert and
 * icmpv6_err_convert tables. A "hard" error is reported on a connected socket without IP_RECVERR; soft ones
 * (net/host unreachable, time exceeded, fragmentation needed) are not (RFC 1122 §4.1.3.3 leaves that to us).
 */
import { Err, type NetError } from '../../errors.ts';
import type { Address } from '../../addr.ts';
import type { ControlMessage } from '../protocol.ts';

/** A socket error derived from an ICMP message and whether it is hard (reported without IP_RECVERR). */
export interface IcmpSocketError {
  readonly err: NetError;
  readonly hard: boolean;
}

/** What IP_RECVERR's error queue keeps of an ICMP error besides the error: the message and what it quoted. */
export interface IcmpErrorDetail {
  readonly msg: ControlMessage;
  /** The quoted datagram's destination (unmapped) and port (0 for ping sockets). */
  readonly remote: Address;
  readonly remotePort: number;
  /** The quoted datagram's payload (after the UDP header; from the ICMP header on for ping sockets); lent. */
  readonly payload: Uint8Array;
}

// ICMPv4 destination unreachable codes 0–15 (RFC 792, RFC 1812 §5.2.7.1), as Linux's icmp_err_convert.
// Code 8 (source host isolated) is ENONET in Linux, which our errno table lacks: EHOSTUNREACH is the closest.
const V4_UNREACH: [NetError, boolean][] = [
  [Err.NetworkUnreachable, false],
  [Err.HostUnreachable, false],
  [Err.ProtocolNotAvailable, true],
  [Err.ConnectionRefused, true],
  [Err.MessageTooLong, false],
  [Err.NotSupported, false],
  [Err.NetworkUnreachable, true],
  [Err.HostDown, true],
  [Err.HostUnreachable, true],
  [Err.NetworkUnreachable, true],
  [Err.HostUnreachable, true],
  [Err.NetworkUnreachable, false],
  [Err.HostUnreachable, false],
  [Err.HostUnreachable, true],
  [Err.HostUnreachable, true],
  [Err.HostUnreachable, true],
];

// ICMPv6 destination unreachable codes 0–6 (RFC 4443 §3.1), as Linux's icmpv6_err_convert.
const V6_UNREACH: [NetError, boolean][] = [
  [Err.NetworkUnreachable, false],
  [Err.PermissionDenied, true],
  [Err.HostUnreachable, false],
  [Err.HostUnreachable, false],
  [Err.ConnectionRefused, true],
  [Err.PermissionDenied, true],
  [Err.PermissionDenied, true],
];

/** The socket error a UDP socket sees for an ICMP error, or null when the message is ignored (redirects, quench). */
export function udpSocketError(msg: ControlMessage): IcmpSocketError | null {
  if (msg.family === 4) {
    switch (msg.type) {
      case 3: {
        const e = V4_UNREACH[msg.code];
        return e ? { err: e[0], hard: e[1] } : { err: Err.HostUnreachable, hard: false };
      }
      case 11:
        return { err: Err.HostUnreachable, hard: false };
      case 12:
        return { err: Err.ProtocolError, hard: true };
      default:
        return null;
    }
  }
  switch (msg.type) {
    case 1: {
      const e = V6_UNREACH[msg.code];
      return e ? { err: e[0], hard: e[1] } : { err: Err.ProtocolError, hard: true };
    }
    case 2:
      return { err: Err.MessageTooLong, hard: false };
    case 3:
      return { err: Err.HostUnreachable, hard: false };
    case 4:
      return { err: Err.ProtocolError, hard: true };
    default:
      return null;
  }
}

/**
 * The socket error for an ICMP error on a TCP connection: Linux's tcp_v4_err and tcp_v6_err use the same
 * icmp_err_convert / icmpv6_err_convert tables (parameter problem EPROTO, time exceeded EHOSTUNREACH).
 */
export const tcpSocketError: (msg: ControlMessage) => IcmpSocketError | null = udpSocketError;

/**
 * The socket error a ping socket sees, after Linux's ping_err: every IPv4 destination unreachable is a hard
 * EHOSTUNREACH (fragmentation needed: EMSGSIZE), IPv6 uses the same table as UDP.
 */
export function pingSocketError(msg: ControlMessage): IcmpSocketError | null {
  if (msg.family === 6) return udpSocketError(msg);
  switch (msg.type) {
    case 3:
      return msg.code === 4 ? { err: Err.MessageTooLong, hard: true } : { err: Err.HostUnreachable, hard: true };
    case 11:
      return { err: Err.HostUnreachable, hard: false };
    case 12:
      return { err: Err.ProtocolError, hard: true };
    default:
      return null;
  }
}
