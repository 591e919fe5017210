/**
 * IPv6 extension headers (RFC 8200 §4): Hop-by-Hop and Destination Options (§4.3, §4.6) with their TLV
 * options (§4.2), Routing (§4.4) and Fragment (§4.5), and a walker that applies the §4 processing rules.
 */
import { isMulticast } from '../addr.ts';
import { get16, get32, set16, set32 } from './bytes.ts';
import { IPV6_HEADER_LEN, type Ipv6Packet } from './ipv6.ts';

/** Next Header value of a Hop-by-Hop Options header. */
export const IPV6_HOP_BY_HOP = 0;
/** Next Header value of a Routing header. */
export const IPV6_ROUTING = 43;
/** Next Header value of a Fragment header. */
export const IPV6_FRAGMENT = 44;
/** Next Header value of ESP (RFC 4303); the walker stops there. */
export const IPV6_ESP = 50;
/** Next Header value of AH (RFC 4302); the walker stops there. */
export const IPV6_AH = 51;
/** Next Header value meaning nothing follows (RFC 8200 §4.7). */
export const IPV6_NO_NEXT_HEADER = 59;
/** Next Header value of a Destination Options header. */
export const IPV6_DEST_OPTS = 60;
/** Length of a Fragment header. */
export const IPV6_FRAGMENT_HEADER_LEN = 8;
/** Option type Pad1 (RFC 8200 §4.2). */
export const IPV6_OPT_PAD1 = 0;
/** Option type PadN (RFC 8200 §4.2). */
export const IPV6_OPT_PADN = 1;
/** Option type Router Alert (RFC 2711). */
export const IPV6_OPT_ROUTER_ALERT = 5;
/** ICMPv6 Parameter Problem code: erroneous header field (RFC 4443 §3.4). */
export const PARAM_PROBLEM_HEADER = 0;
/** ICMPv6 Parameter Problem code: unrecognized Next Header type. */
export const PARAM_PROBLEM_NEXT_HEADER = 1;
/** ICMPv6 Parameter Problem code: unrecognized IPv6 option. */
export const PARAM_PROBLEM_OPTION = 2;

/*
 * Hop-by-Hop / Destination Options and Routing headers (RFC 8200 §4.3, §4.4, §4.6):
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Next Header  |  Hdr Ext Len  | Options... / Routing Type, Segments Left
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * .              (Hdr Ext Len + 1) × 8 bytes in all                .
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Fragment header (RFC 8200 §4.5):
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                         Identification                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
const F = {
  NEXT_HEADER: 0,
  EXT_LEN: 1,
  OPTIONS: 2,
  ROUTING_TYPE: 2,
  SEGMENTS_LEFT: 3,
  ROUTING_DATA: 4,
  FRAG_OFFSET: 2,
  FRAG_IDENT: 4,
} as const;

/** A view of a Hop-by-Hop or Destination Options header. */
export class Ipv6OptionsHeader {
  /** Wraps a header starting at its Next Header octet; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /** Validates that the whole header fits; returns the view or a drop reason. */
  static check(buf: Uint8Array): Ipv6OptionsHeader | string {
    if (buf.length < 8 || buf.length < (buf[F.EXT_LEN]! + 1) * 8) return 'truncated';
    return new Ipv6OptionsHeader(buf);
  }

  /** Next Header. */
  get nextHeader(): number {
    return this.buffer[F.NEXT_HEADER]!;
  }
  set nextHeader(v: number) {
    this.buffer[F.NEXT_HEADER] = v;
  }

  /** Hdr Ext Len in 8-byte units beyond the first 8. */
  get hdrExtLen(): number {
    return this.buffer[F.EXT_LEN]!;
  }

  /** Header length in bytes. */
  get headerLength(): number {
    return (this.hdrExtLen + 1) * 8;
  }

  /** The options area (view). */
  get options(): Uint8Array {
    return this.buffer.subarray(F.OPTIONS, this.headerLength);
  }
}

/** A view of a Routing header. */
export class Ipv6RoutingHeader {
  /** Wraps a header starting at its Next Header octet; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /** Validates that the whole header fits; returns the view or a drop reason. */
  static check(buf: Uint8Array): Ipv6RoutingHeader | string {
    if (buf.length < 8 || buf.length < (buf[F.EXT_LEN]! + 1) * 8) return 'truncated';
    return new Ipv6RoutingHeader(buf);
  }

  /** Next Header. */
  get nextHeader(): number {
    return this.buffer[F.NEXT_HEADER]!;
  }
  set nextHeader(v: number) {
    this.buffer[F.NEXT_HEADER] = v;
  }

  /** Hdr Ext Len in 8-byte units beyond the first 8. */
  get hdrExtLen(): number {
    return this.buffer[F.EXT_LEN]!;
  }

  /** Header length in bytes. */
  get headerLength(): number {
    return (this.hdrExtLen + 1) * 8;
  }

  /** Routing Type. */
  get routingType(): number {
    return this.buffer[F.ROUTING_TYPE]!;
  }

  /** Segments Left. */
  get segmentsLeft(): number {
    return this.buffer[F.SEGMENTS_LEFT]!;
  }
  set segmentsLeft(v: number) {
    this.buffer[F.SEGMENTS_LEFT] = v;
  }

  /** The type-specific data (view). */
  get data(): Uint8Array {
    return this.buffer.subarray(F.ROUTING_DATA, this.headerLength);
  }
}

/** A view of a Fragment header. */
export class Ipv6FragmentHeader {
  /** Wraps a header starting at its Next Header octet; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /** Validates that the 8-byte header fits; returns the view or a drop reason. */
  static check(buf: Uint8Array): Ipv6FragmentHeader | string {
    if (buf.length < IPV6_FRAGMENT_HEADER_LEN) return 'truncated';
    return new Ipv6FragmentHeader(buf);
  }

  /** Next Header of the fragmentable part. */
  get nextHeader(): number {
    return this.buffer[F.NEXT_HEADER]!;
  }
  set nextHeader(v: number) {
    this.buffer[F.NEXT_HEADER] = v;
  }

  /** Fragment Offset in bytes (the field counts 8-byte units). */
  get fragmentOffset(): number {
    return get16(this.buffer, F.FRAG_OFFSET) & 0xfff8;
  }
  set fragmentOffset(bytes: number) {
    set16(this.buffer, F.FRAG_OFFSET, (bytes & 0xfff8) | (get16(this.buffer, F.FRAG_OFFSET) & 7));
  }

  /** The M (more fragments) flag. */
  get moreFragments(): boolean {
    return (this.buffer[F.FRAG_OFFSET + 1]! & 1) !== 0;
  }
  set moreFragments(v: boolean) {
    this.buffer[F.FRAG_OFFSET + 1] = (this.buffer[F.FRAG_OFFSET + 1]! & 0xfe) | (v ? 1 : 0);
  }

  /** Identification. */
  get identification(): number {
    return get32(this.buffer, F.FRAG_IDENT);
  }
  set identification(v: number) {
    set32(this.buffer, F.FRAG_IDENT, v);
  }

  /** Header length: 8. */
  get headerLength(): number {
    return IPV6_FRAGMENT_HEADER_LEN;
  }
}

/** One TLV option of a Hop-by-Hop or Destination Options header (RFC 8200 §4.2). */
export interface Ipv6Option {
  /** Option Type. */
  readonly type: number;
  /** Offset of the type octet within the options area. */
  readonly offset: number;
  /** Option Data (view; empty for Pad1). */
  readonly data: Uint8Array;
  /** Set when the option overruns the area; iteration ends after it. */
  readonly malformed?: true;
}

/** Iterates the TLV options of an options area, Pad1 and PadN included; ends after a malformed option. */
export function* ipv6Options(area: Uint8Array): Generator<Ipv6Option, void, undefined> {
  let i = 0;
  while (i < area.length) {
    const type = area[i]!;
    if (type === IPV6_OPT_PAD1) {
      yield { type, offset: i, data: area.subarray(i + 1, i + 1) };
      i++;
      continue;
    }
    if (i + 2 > area.length || i + 2 + area[i + 1]! > area.length) {
      yield { type, offset: i, data: area.subarray(i, i), malformed: true };
      return;
    }
    const len = area[i + 1]!;
    yield { type, offset: i, data: area.subarray(i + 2, i + 2 + len) };
    i += 2 + len;
  }
}

/** What RFC 8200 §4 requires for a packet that must be discarded, with the ICMPv6 Parameter Problem to send. */
export interface Ipv6Problem {
  /** ICMPv6 Parameter Problem code (RFC 4443 §3.4): 0 header field, 1 next header, 2 option. */
  readonly code: number;
  /** Offset of the offending octet from the start of the IPv6 header. */
  readonly pointer: number;
  /** Whether to send a Parameter Problem for this packet, its destination considered (action 01: never). */
  readonly icmp: boolean;
  /** Whether the rule sends it even to a multicast destination (option action 10 only, RFC 4443 §2.4 e.3). */
  readonly icmpIfMulticast: boolean;
}

/** The result of walking an IPv6 packet's extension headers. */
export interface Ipv6Walk {
  /** The upper-layer protocol (or 59 No Next Header, or the fragmentable part's protocol after a fragment). */
  readonly protocol: number;
  /** Offset of the upper-layer payload (or of the fragment data) from the start of the IPv6 header. */
  readonly payloadOffset: number;
  /** The Fragment header, if any; walking stops there since the rest is fragment data. */
  readonly fragment?: {
    /** Fragment offset in bytes. */
    readonly offset: number;
    /** The M flag. */
    readonly more: boolean;
    /** Identification. */
    readonly identification: number;
    /** Offset of the Fragment header from the start of the IPv6 header. */
    readonly headerOffset: number;
  };
  /** Present when a Hop-by-Hop header was processed. */
  readonly hopByHop?: {
    /** Offset of the header from the start of the IPv6 header. */
    readonly headerOffset: number;
    /** The Router Alert value (RFC 2711), when that option was present. */
    readonly routerAlert?: number;
  };
  /** The last Routing header seen (all had Segments Left 0, else `problem` is set). */
  readonly routing?: { readonly type: number; readonly segmentsLeft: number };
  /** Set when the packet must be discarded, with the Parameter Problem to answer. */
  readonly problem?: Ipv6Problem;
}

/**
 * Walks the extension headers of a checked packet per RFC 8200 §4.1: stops at the first upper-layer header,
 * ESP/AH, No Next Header or Fragment header; returns a drop reason string when a header is truncated.
 * The host supports no source routing, so a Routing header with Segments Left > 0 is a problem (§4.4).
 */
export function walkIpv6(pkt: Ipv6Packet): Ipv6Walk | string {
  const end = IPV6_HEADER_LEN + pkt.payloadLength;
  const buf = pkt.buffer.subarray(0, end);
  const multicastDst = isMulticast(pkt.dst);
  let nh = pkt.nextHeader;
  // The octet that named `nh`, for code-1 pointers.
  let nhField = 6;
  let off = IPV6_HEADER_LEN;
  let hopByHop: Ipv6Walk['hopByHop'];
  let routing: Ipv6Walk['routing'];
  const result = (extra: Partial<Ipv6Walk>): Ipv6Walk => ({
    protocol: nh,
    payloadOffset: off,
    ...(hopByHop ? { hopByHop } : {}),
    ...(routing ? { routing } : {}),
    ...extra,
  });
  // RFC 4443 §2.4 (e.3): no ICMPv6 error answers a multicast destination, except option action 10.
  const problem = (code: number, pointer: number, send = true, evenMulticast = false): { problem: Ipv6Problem } => ({
    problem: { code, pointer, icmp: send && (evenMulticast || !multicastDst), icmpIfMulticast: send && evenMulticast },
  });
  const headerProblem = (code: number, pointer: number): Ipv6Walk => result(problem(code, pointer));

  for (;;) {
    switch (nh) {
      case IPV6_HOP_BY_HOP:
      case IPV6_DEST_OPTS: {
        // §4.3: Hop-by-Hop is allowed only immediately after the IPv6 header.
        if (nh === IPV6_HOP_BY_HOP && off !== IPV6_HEADER_LEN) return headerProblem(PARAM_PROBLEM_NEXT_HEADER, nhField);
        const h = Ipv6OptionsHeader.check(buf.subarray(off));
        if (typeof h === 'string') return h;
        let routerAlert: number | undefined;
        for (const opt of ipv6Options(h.options)) {
          const at = off + F.OPTIONS + opt.offset;
          if (opt.malformed) return headerProblem(PARAM_PROBLEM_HEADER, at);
          if (opt.type === IPV6_OPT_PAD1 || opt.type === IPV6_OPT_PADN) continue;
          if (nh === IPV6_HOP_BY_HOP && opt.type === IPV6_OPT_ROUTER_ALERT && opt.data.length === 2) {
            routerAlert = get16(opt.data, 0);
            continue;
          }
          // §4.2: the two high-order bits of an unrecognized option's type choose the action.
          const action = opt.type >>> 6;
          if (action === 0) continue;
          return result(problem(PARAM_PROBLEM_OPTION, at, action !== 1, action === 2));
        }
        if (nh === IPV6_HOP_BY_HOP) hopByHop = routerAlert === undefined ? { headerOffset: off } : { headerOffset: off, routerAlert };
        nhField = off + F.NEXT_HEADER;
        nh = h.nextHeader;
        off += h.headerLength;
        break;
      }
      case IPV6_ROUTING: {
        const h = Ipv6RoutingHeader.check(buf.subarray(off));
        if (typeof h === 'string') return h;
        routing = { type: h.routingType, segmentsLeft: h.segmentsLeft };
        // §4.4: a router would process known types; as a host every type with segments left is unrecognized.
        if (h.segmentsLeft !== 0) return headerProblem(PARAM_PROBLEM_HEADER, off + F.ROUTING_TYPE);
        nhField = off + F.NEXT_HEADER;
        nh = h.nextHeader;
        off += h.headerLength;
        break;
      }
      case IPV6_FRAGMENT: {
        const h = Ipv6FragmentHeader.check(buf.subarray(off));
        if (typeof h === 'string') return h;
        const headerOffset = off;
        const fragment = {
          offset: h.fragmentOffset,
          more: h.moreFragments,
          identification: h.identification,
          headerOffset,
        };
        nh = h.nextHeader;
        off += IPV6_FRAGMENT_HEADER_LEN;
        const dataLength = end - off;
        // §4.5: a non-final fragment's length must be a multiple of 8, pointing at Payload Length.
        if (fragment.more && dataLength % 8 !== 0) return result({ fragment, ...problem(PARAM_PROBLEM_HEADER, 4) });
        // §4.5: the reassembled Payload Length (unfragmentable headers + offset + data) would exceed 65535.
        if (headerOffset - IPV6_HEADER_LEN + fragment.offset + dataLength > 65535) {
          return result({ fragment, ...problem(PARAM_PROBLEM_HEADER, headerOffset + F.FRAG_OFFSET) });
        }
        return result({ fragment });
      }
      default:
        return result({});
    }
  }
}

/** The fields of a Fragment header the stack writes. */
export interface Ipv6FragmentRepr {
  /** Next Header of the fragmentable part. */
  readonly nextHeader: number;
  /** Fragment offset in bytes, a multiple of 8. */
  readonly fragmentOffset: number;
  /** The M flag. */
  readonly moreFragments: boolean;
  /** Identification. */
  readonly identification: number;
}

/** Reads a checked Fragment header into a Repr. */
export function parseIpv6FragmentHeader(h: Ipv6FragmentHeader): Ipv6FragmentRepr {
  return {
    nextHeader: h.nextHeader,
    fragmentOffset: h.fragmentOffset,
    moreFragments: h.moreFragments,
    identification: h.identification,
  };
}

/** Writes a Fragment header (RFC 8200 §4.5) at `offset`; returns bytes written (8). */
export function emitIpv6FragmentHeader(r: Ipv6FragmentRepr, buf: Uint8Array, offset = 0): number {
  buf[offset + F.NEXT_HEADER] = r.nextHeader;
  buf[offset + 1] = 0;
  set16(buf, offset + F.FRAG_OFFSET, (r.fragmentOffset & 0xfff8) | (r.moreFragments ? 1 : 0));
  set32(buf, offset + F.FRAG_IDENT, r.identification);
  return IPV6_FRAGMENT_HEADER_LEN;
}

/** Bytes a Hop-by-Hop header carrying only a Router Alert option occupies: 8. */
export const IPV6_ROUTER_ALERT_HEADER_LEN = 8;

/** Writes a Hop-by-Hop header holding one Router Alert option (RFC 2711; MLD uses value 0); returns 8. */
export function emitIpv6RouterAlertHeader(nextHeader: number, value: number, buf: Uint8Array, offset = 0): number {
  buf[offset] = nextHeader;
  buf[offset + 1] = 0;
  buf[offset + 2] = IPV6_OPT_ROUTER_ALERT;
  buf[offset + 3] = 2;
  set16(buf, offset + 4, value);
  // PadN with zero data bytes fills the 8-byte unit (RFC 8200 §4.2).
  buf[offset + 6] = IPV6_OPT_PADN;
  buf[offset + 7] = 0;
  return IPV6_ROUTER_ALERT_HEADER_LEN;
}
