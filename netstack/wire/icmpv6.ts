/**
 * ICMPv6 (RFC 4443): echo, destination unreachable, packet too big, time exceeded and parameter problem, with
 * the checksum over the IPv6 pseudo-header (RFC 4443 §2.3). NDP messages are ICMPv6 too; see ndp.ts.
 */
import type { Address } from '../addr.ts';
import { IcmpHeaderView } from './icmp.ts';
import { get32, set16, set32 } from './bytes.ts';
import { finishChecksum, pseudoHeaderSum, sum16 } from './checksum.ts';

// IPv6 Next Header value of ICMPv6, for the pseudo-header.
const PROTO_ICMPV6 = 58;
/** Length of the ICMPv6 header (type, code, checksum and 4 type-specific bytes). */
export const ICMPV6_HEADER_LEN = 8;
/** Destination Unreachable. */
export const ICMPV6_DEST_UNREACHABLE = 1;
/** Packet Too Big. */
export const ICMPV6_PACKET_TOO_BIG = 2;
/** Time Exceeded. */
export const ICMPV6_TIME_EXCEEDED = 3;
/** Parameter Problem. */
export const ICMPV6_PARAMETER_PROBLEM = 4;
/** Echo Request. */
export const ICMPV6_ECHO_REQUEST = 128;
/** Echo Reply. */
export const ICMPV6_ECHO_REPLY = 129;
/** Destination Unreachable code: no route to destination. */
export const ICMPV6_NO_ROUTE = 0;
/** Destination Unreachable code: administratively prohibited. */
export const ICMPV6_ADMIN_PROHIBITED = 1;
/** Destination Unreachable code: address unreachable. */
export const ICMPV6_ADDRESS_UNREACHABLE = 3;
/** Destination Unreachable code: port unreachable. */
export const ICMPV6_PORT_UNREACHABLE = 4;
/** Time Exceeded code: hop limit exceeded in transit. */
export const ICMPV6_HOP_LIMIT_EXCEEDED = 0;
/** Time Exceeded code: fragment reassembly time exceeded. */
export const ICMPV6_REASSEMBLY_TIMEOUT = 1;
/** Parameter Problem code: erroneous header field. */
export const ICMPV6_ERRONEOUS_HEADER = 0;
/** Parameter Problem code: unrecognized Next Header type. */
export const ICMPV6_UNRECOGNIZED_NEXT_HEADER = 1;
/** Parameter Problem code: unrecognized IPv6 option. */
export const ICMPV6_UNRECOGNIZED_OPTION = 2;
/** Most bytes an ICMPv6 error may occupy so the whole packet fits the minimum MTU (RFC 4443 §2.4 c). */
export const ICMPV6_ERROR_MAX_LEN = 1280 - 40;

/*
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Type      |     Code      |          Checksum             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  echo: Identifier             |  echo: Sequence Number        |
 * |  packet too big: MTU                                          |
 * |  parameter problem: Pointer                                   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Data / as much of the invoking packet as fits ...
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
 */
const F = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  IDENT: 4,
  SEQ: 6,
  MTU: 4,
  POINTER: 4,
  DATA: 8,
} as const;

/** A zero-copy view of an ICMPv6 message; the buffer must end where the IPv6 payload ends. */
export class Icmpv6Packet extends IcmpHeaderView {
  /** Validates that the 8-byte header fits; returns the view or a drop reason. */
  static check(buf: Uint8Array): Icmpv6Packet | string {
    if (buf.length < ICMPV6_HEADER_LEN) return 'truncated';
    return new Icmpv6Packet(buf);
  }

  /** Packet Too Big MTU. */
  get mtu(): number {
    return get32(this.buffer, F.MTU);
  }
  set mtu(v: number) {
    set32(this.buffer, F.MTU, v);
  }

  /** Parameter Problem pointer: offset of the offending octet in the invoking packet. */
  get pointer(): number {
    return get32(this.buffer, F.POINTER);
  }
  set pointer(v: number) {
    set32(this.buffer, F.POINTER, v);
  }

  /** Whether the checksum over the pseudo-header and the whole message verifies (RFC 4443 §2.3). */
  verifyChecksum(src: Address, dst: Address): boolean {
    const s = sum16(this.buffer, pseudoHeaderSum(src, dst, PROTO_ICMPV6, this.buffer.length));
    return finishChecksum(s) === 0;
  }

  /** Computes and stores the checksum over the pseudo-header and the whole message. */
  fillChecksum(src: Address, dst: Address): void {
    this.checksum = 0;
    this.checksum = finishChecksum(sum16(this.buffer, pseudoHeaderSum(src, dst, PROTO_ICMPV6, this.buffer.length)));
  }
}

/** Whether an ICMPv6 type is an error message (RFC 4443 §2.1: high bit clear). */
export function isIcmpv6Error(type: number): boolean {
  return type < 128;
}

/** The ICMPv6 messages of RFC 4443 the stack sends and understands; `data` is a view of the message's data. */
export type Icmpv6Repr =
  | {
      readonly kind: 'echo-request' | 'echo-reply';
      readonly identifier: number;
      readonly sequence: number;
      readonly data: Uint8Array;
    }
  | { readonly kind: 'dest-unreachable'; readonly code: number; readonly data: Uint8Array }
  | { readonly kind: 'packet-too-big'; readonly mtu: number; readonly data: Uint8Array }
  | { readonly kind: 'time-exceeded'; readonly code: number; readonly data: Uint8Array }
  | { readonly kind: 'parameter-problem'; readonly code: number; readonly pointer: number; readonly data: Uint8Array };

/**
 * Reads a checked message into a Repr after verifying its checksum against src/dst; other types (NDP, MLD,
 * unknown) give "unsupported-type" so the caller dispatches them (RFC 4443 §2.4 b: unknown informational
 * messages are discarded).
 */
export function parseIcmpv6(pkt: Icmpv6Packet, src: Address, dst: Address): Icmpv6Repr | string {
  if (!pkt.verifyChecksum(src, dst)) return 'bad-checksum';
  const data = pkt.payload;
  const code = pkt.code;
  switch (pkt.type) {
    case ICMPV6_ECHO_REQUEST:
    case ICMPV6_ECHO_REPLY:
      if (code !== 0) return 'bad-code';
      return {
        kind: pkt.type === ICMPV6_ECHO_REQUEST ? 'echo-request' : 'echo-reply',
        identifier: pkt.identifier,
        sequence: pkt.sequence,
        data,
      };
    case ICMPV6_DEST_UNREACHABLE:
      return { kind: 'dest-unreachable', code, data };
    case ICMPV6_PACKET_TOO_BIG:
      return { kind: 'packet-too-big', mtu: pkt.mtu, data };
    case ICMPV6_TIME_EXCEEDED:
      return { kind: 'time-exceeded', code, data };
    case ICMPV6_PARAMETER_PROBLEM:
      return { kind: 'parameter-problem', code, pointer: pkt.pointer, data };
    default:
      return 'unsupported-type';
  }
}

/** Bytes the header of `r` occupies: 8 (the data follows it). */
export function icmpv6HeaderLength(_r: Icmpv6Repr): number {
  return ICMPV6_HEADER_LEN;
}

/**
 * Writes the 8-byte header of `r` at `offset` with a zero checksum, since the checksum covers the data and
 * the pseudo-header: write or gather the data, then call `fillIcmpv6Checksum`. Returns 8.
 */
export function emitIcmpv6(r: Icmpv6Repr, buf: Uint8Array, offset = 0): number {
  const h = buf.subarray(offset, offset + ICMPV6_HEADER_LEN);
  set16(h, F.CHECKSUM, 0);
  set32(h, 4, 0);
  switch (r.kind) {
    case 'echo-request':
    case 'echo-reply':
      h[F.TYPE] = r.kind === 'echo-request' ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY;
      h[F.CODE] = 0;
      set16(h, F.IDENT, r.identifier);
      set16(h, F.SEQ, r.sequence);
      break;
    case 'dest-unreachable':
      h[F.TYPE] = ICMPV6_DEST_UNREACHABLE;
      h[F.CODE] = r.code;
      break;
    case 'packet-too-big':
      h[F.TYPE] = ICMPV6_PACKET_TOO_BIG;
      h[F.CODE] = 0;
      set32(h, F.MTU, r.mtu);
      break;
    case 'time-exceeded':
      h[F.TYPE] = ICMPV6_TIME_EXCEEDED;
      h[F.CODE] = r.code;
      break;
    case 'parameter-problem':
      h[F.TYPE] = ICMPV6_PARAMETER_PROBLEM;
      h[F.CODE] = r.code;
      set32(h, F.POINTER, r.pointer);
      break;
  }
  return ICMPV6_HEADER_LEN;
}

/**
 * Computes and stores the checksum of an ICMPv6 message held as an 8-byte header plus separate data, with the
 * IPv6 pseudo-header of src and dst (RFC 4443 §2.3).
 */
export function fillIcmpv6Checksum(header: Uint8Array, data: Uint8Array, src: Address, dst: Address): void {
  const h = header.subarray(0, ICMPV6_HEADER_LEN);
  set16(h, F.CHECKSUM, 0);
  const s = sum16(data, sum16(h, pseudoHeaderSum(src, dst, PROTO_ICMPV6, ICMPV6_HEADER_LEN + data.length)));
  set16(h, F.CHECKSUM, finishChecksum(s));
}
