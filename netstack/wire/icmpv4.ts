/**
 * ICMP for IPv4 (RFC 792): echo, destination unreachable (with the RFC 1191 next-hop MTU), time exceeded,
 * parameter problem and redirect, whose data is the invoking packet's header plus at least 8 bytes.
 */
import type { Address } from '../addr.ts';
import { IcmpHeaderView } from './icmp.ts';
import { get16, set16 } from './bytes.ts';
import { finishChecksum, sum16, verifies } from './checksum.ts';

/** Length of the ICMP header (type, code, checksum and the 4-byte rest of header). */
export const ICMP_HEADER_LEN = 8;
/** Echo Reply. */
export const ICMPV4_ECHO_REPLY = 0;
/** Destination Unreachable. */
export const ICMPV4_DEST_UNREACHABLE = 3;
/** Redirect. */
export const ICMPV4_REDIRECT = 5;
/** Echo Request. */
export const ICMPV4_ECHO_REQUEST = 8;
/** Time Exceeded. */
export const ICMPV4_TIME_EXCEEDED = 11;
/** Parameter Problem. */
export const ICMPV4_PARAMETER_PROBLEM = 12;
/** Destination Unreachable code: net unreachable. */
export const ICMPV4_NET_UNREACHABLE = 0;
/** Destination Unreachable code: host unreachable. */
export const ICMPV4_HOST_UNREACHABLE = 1;
/** Destination Unreachable code: protocol unreachable. */
export const ICMPV4_PROTOCOL_UNREACHABLE = 2;
/** Destination Unreachable code: port unreachable. */
export const ICMPV4_PORT_UNREACHABLE = 3;
/** Destination Unreachable code: fragmentation needed and DF set (RFC 1191 §4). */
export const ICMPV4_FRAG_NEEDED = 4;
/** Destination Unreachable code: source route failed. */
export const ICMPV4_SOURCE_ROUTE_FAILED = 5;
/** Destination Unreachable code: communication administratively prohibited (RFC 1812 §5.2.7.1). */
export const ICMPV4_ADMIN_PROHIBITED = 13;
/** Time Exceeded code: TTL exceeded in transit. */
export const ICMPV4_TTL_EXCEEDED = 0;
/** Time Exceeded code: fragment reassembly time exceeded. */
export const ICMPV4_REASSEMBLY_TIMEOUT = 1;

/*
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Type      |     Code      |          Checksum             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  echo: Identifier             |  echo: Sequence Number        |
 * |  unreachable: unused          |  code 4: Next-Hop MTU         |
 * |  param. problem: Pointer | unused                             |
 * |  redirect: Gateway Internet Address                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Data / Internet Header + 64 bits of Original Data ...
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
 */
const F = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  IDENT: 4,
  SEQ: 6,
  POINTER: 4,
  GATEWAY: 4,
  MTU: 6,
  DATA: 8,
} as const;

/** A zero-copy view of an ICMP message; the buffer must end where the IP payload ends. */
export class Icmpv4Packet extends IcmpHeaderView {
  /** Validates that the 8-byte header fits; returns the view or a drop reason. */
  static check(buf: Uint8Array): Icmpv4Packet | string {
    if (buf.length < ICMP_HEADER_LEN) return 'truncated';
    return new Icmpv4Packet(buf);
  }

  /** Next-Hop MTU of a fragmentation-needed message (RFC 1191 §4; 0 from old routers). */
  get nextHopMtu(): number {
    return get16(this.buffer, F.MTU);
  }
  set nextHopMtu(v: number) {
    set16(this.buffer, F.MTU, v);
  }

  /** Parameter problem pointer: the offending octet of the invoking header. */
  get pointer(): number {
    return this.buffer[F.POINTER]!;
  }
  set pointer(v: number) {
    this.buffer[F.POINTER] = v;
  }

  /** Redirect gateway address (view). */
  get gateway(): Address {
    return this.buffer.subarray(F.GATEWAY, F.GATEWAY + 4);
  }
  set gateway(a: Address) {
    this.buffer.set(a.subarray(0, 4), F.GATEWAY);
  }

  /** Whether the checksum over the whole message verifies. */
  verifyChecksum(): boolean {
    return verifies(this.buffer);
  }

  /** Computes and stores the checksum over the whole message. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = finishChecksum(sum16(this.buffer));
  }
}

/** The ICMP messages the stack sends and understands; `data` is a view of the message's data. */
export type Icmpv4Repr =
  | {
      readonly kind: 'echo-request' | 'echo-reply';
      readonly identifier: number;
      readonly sequence: number;
      readonly data: Uint8Array;
    }
  | {
      readonly kind: 'dest-unreachable';
      readonly code: number;
      /** Next-Hop MTU for code 4, else 0. */
      readonly nextHopMtu: number;
      /** The invoking packet. */
      readonly data: Uint8Array;
    }
  | { readonly kind: 'time-exceeded'; readonly code: number; readonly data: Uint8Array }
  | { readonly kind: 'parameter-problem'; readonly code: number; readonly pointer: number; readonly data: Uint8Array }
  | { readonly kind: 'redirect'; readonly code: number; readonly gateway: Address; readonly data: Uint8Array };

/**
 * Reads a checked message into a Repr, verifying its checksum unless `checksum` is false; unknown types give
 * "unsupported-type" (RFC 1122 §3.2.2: silently discarded). `data` stays a view.
 */
export function parseIcmpv4(pkt: Icmpv4Packet, checksum = true): Icmpv4Repr | string {
  if (checksum && !pkt.verifyChecksum()) return 'bad-checksum';
  const data = pkt.payload;
  const code = pkt.code;
  switch (pkt.type) {
    case ICMPV4_ECHO_REQUEST:
    case ICMPV4_ECHO_REPLY:
      if (code !== 0) return 'bad-code';
      return {
        kind: pkt.type === ICMPV4_ECHO_REQUEST ? 'echo-request' : 'echo-reply',
        identifier: pkt.identifier,
        sequence: pkt.sequence,
        data,
      };
    case ICMPV4_DEST_UNREACHABLE:
      return { kind: 'dest-unreachable', code, nextHopMtu: code === ICMPV4_FRAG_NEEDED ? pkt.nextHopMtu : 0, data };
    case ICMPV4_TIME_EXCEEDED:
      return { kind: 'time-exceeded', code, data };
    case ICMPV4_PARAMETER_PROBLEM:
      return { kind: 'parameter-problem', code, pointer: pkt.pointer, data };
    case ICMPV4_REDIRECT:
      return { kind: 'redirect', code, gateway: pkt.gateway.slice(), data };
    default:
      return 'unsupported-type';
  }
}

/** Bytes the header of `r` occupies: 8 (the data follows it). */
export function icmpv4HeaderLength(_r: Icmpv4Repr): number {
  return ICMP_HEADER_LEN;
}

/**
 * Writes the 8-byte header of `r` at `offset` with a zero checksum, since the checksum covers the data too:
 * write or gather the data, then call `fillIcmpv4Checksum`. Returns 8.
 */
export function emitIcmpv4(r: Icmpv4Repr, buf: Uint8Array, offset = 0): number {
  const h = buf.subarray(offset, offset + ICMP_HEADER_LEN);
  set16(h, F.CHECKSUM, 0);
  set16(h, 4, 0);
  set16(h, 6, 0);
  switch (r.kind) {
    case 'echo-request':
    case 'echo-reply':
      h[F.TYPE] = r.kind === 'echo-request' ? ICMPV4_ECHO_REQUEST : ICMPV4_ECHO_REPLY;
      h[F.CODE] = 0;
      set16(h, F.IDENT, r.identifier);
      set16(h, F.SEQ, r.sequence);
      break;
    case 'dest-unreachable':
      h[F.TYPE] = ICMPV4_DEST_UNREACHABLE;
      h[F.CODE] = r.code;
      set16(h, F.MTU, r.nextHopMtu);
      break;
    case 'time-exceeded':
      h[F.TYPE] = ICMPV4_TIME_EXCEEDED;
      h[F.CODE] = r.code;
      break;
    case 'parameter-problem':
      h[F.TYPE] = ICMPV4_PARAMETER_PROBLEM;
      h[F.CODE] = r.code;
      h[F.POINTER] = r.pointer;
      break;
    case 'redirect':
      h[F.TYPE] = ICMPV4_REDIRECT;
      h[F.CODE] = r.code;
      h.set(r.gateway.subarray(0, 4), F.GATEWAY);
      break;
  }
  return ICMP_HEADER_LEN;
}

/** Computes and stores the checksum of an ICMP message held as an 8-byte header plus separate data. */
export function fillIcmpv4Checksum(header: Uint8Array, data: Uint8Array): void {
  set16(header, F.CHECKSUM, 0);
  set16(header, F.CHECKSUM, finishChecksum(sum16(data, sum16(header.subarray(0, ICMP_HEADER_LEN)))));
}
