/**
 * The IPv6 fixed header (RFC 8200 §3); extension headers live in ipv6ext.ts.
 */
import type { Address } from '../addr.ts';
import { get16, get32, set16, set32 } from './bytes.ts';

/** Length of the IPv6 fixed header. */
export const IPV6_HEADER_LEN = 40;
/** The minimum link MTU every IPv6 link supports (RFC 8200 §5). */
export const IPV6_MIN_MTU = 1280;

/*
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version| Traffic Class |           Flow Label                  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Payload Length        |  Next Header  |   Hop Limit   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                                                               |
 * +                         Source Address (16)                   +
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                                                               |
 * +                      Destination Address (16)                 +
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
const F = {
  VER_TC_FLOW: 0,
  PAYLOAD_LEN: 4,
  NEXT_HEADER: 6,
  HOP_LIMIT: 7,
  SRC: 8,
  DST: 24,
} as const;

/** A zero-copy view of an IPv6 packet; address getters return subarray views (copy to keep them). */
export class Ipv6Packet {
  /** Wraps a packet starting at the version nibble; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /** Validates length, version 6 and that Payload Length fits the buffer; returns the view or a drop reason. */
  static check(buf: Uint8Array): Ipv6Packet | string {
    if (buf.length < IPV6_HEADER_LEN) return 'truncated';
    const p = new Ipv6Packet(buf);
    if (p.version !== 6) return 'bad-version';
    // Jumbograms (Payload Length 0 with a Jumbo option, RFC 2675) are not supported: 0 means an empty payload.
    if (IPV6_HEADER_LEN + p.payloadLength > buf.length) return 'truncated';
    return p;
  }

  /** Version (6). */
  get version(): number {
    return this.buffer[0]! >>> 4;
  }
  set version(v: number) {
    this.buffer[0] = ((v & 0xf) << 4) | (this.buffer[0]! & 0x0f);
  }

  /** Traffic Class (DSCP << 2 | ECN). */
  get trafficClass(): number {
    return (get16(this.buffer, F.VER_TC_FLOW) >>> 4) & 0xff;
  }
  set trafficClass(v: number) {
    const w = get16(this.buffer, F.VER_TC_FLOW);
    set16(this.buffer, F.VER_TC_FLOW, (w & 0xf00f) | ((v & 0xff) << 4));
  }

  /** Flow Label (20 bits, RFC 6437). */
  get flowLabel(): number {
    return get32(this.buffer, F.VER_TC_FLOW) & 0xfffff;
  }
  set flowLabel(v: number) {
    const w = get32(this.buffer, F.VER_TC_FLOW);
    set32(this.buffer, F.VER_TC_FLOW, ((w & 0xfff00000) | (v & 0xfffff)) >>> 0);
  }

  /** Payload Length: bytes after the fixed header, extension headers included. */
  get payloadLength(): number {
    return get16(this.buffer, F.PAYLOAD_LEN);
  }
  set payloadLength(v: number) {
    set16(this.buffer, F.PAYLOAD_LEN, v);
  }

  /** Next Header: the first extension header or the upper-layer protocol. */
  get nextHeader(): number {
    return this.buffer[F.NEXT_HEADER]!;
  }
  set nextHeader(v: number) {
    this.buffer[F.NEXT_HEADER] = v;
  }

  /** Hop Limit. */
  get hopLimit(): number {
    return this.buffer[F.HOP_LIMIT]!;
  }
  set hopLimit(v: number) {
    this.buffer[F.HOP_LIMIT] = v;
  }

  /** Source Address (view). */
  get src(): Address {
    return this.buffer.subarray(F.SRC, F.SRC + 16);
  }
  set src(a: Address) {
    this.buffer.set(a.subarray(0, 16), F.SRC);
  }

  /** Destination Address (view). */
  get dst(): Address {
    return this.buffer.subarray(F.DST, F.DST + 16);
  }
  set dst(a: Address) {
    this.buffer.set(a.subarray(0, 16), F.DST);
  }

  /** Fixed header length: 40. */
  get headerLength(): number {
    return IPV6_HEADER_LEN;
  }

  /** The bytes after the fixed header, bounded by Payload Length (extension headers included). */
  get payload(): Uint8Array {
    return this.buffer.subarray(IPV6_HEADER_LEN, IPV6_HEADER_LEN + this.payloadLength);
  }
}

/** The IPv6 fixed-header fields the stack builds and reads. */
export interface Ipv6Repr {
  /** Source address (16 bytes). */
  readonly src: Address;
  /** Destination address (16 bytes). */
  readonly dst: Address;
  /** Next Header. */
  readonly nextHeader: number;
  /** Hop Limit. */
  readonly hopLimit: number;
  /** Bytes after the fixed header. */
  readonly payloadLength: number;
  /** Traffic Class (default 0). */
  readonly trafficClass?: number;
  /** Flow Label (default 0). */
  readonly flowLabel?: number;
}

/** Reads a checked packet into a Repr (addresses copied). */
export function parseIpv6(pkt: Ipv6Packet): Ipv6Repr | string {
  return {
    src: pkt.src.slice(),
    dst: pkt.dst.slice(),
    nextHeader: pkt.nextHeader,
    hopLimit: pkt.hopLimit,
    payloadLength: pkt.payloadLength,
    trafficClass: pkt.trafficClass,
    flowLabel: pkt.flowLabel,
  };
}

/** Bytes the fixed header occupies: 40. */
export function ipv6HeaderLength(_r: Ipv6Repr): number {
  return IPV6_HEADER_LEN;
}

/** Writes the fixed header of `r` at `offset`; returns bytes written (40). */
export function emitIpv6(r: Ipv6Repr, buf: Uint8Array, offset = 0): number {
  const first = (6 << 28) | (((r.trafficClass ?? 0) & 0xff) << 20) | ((r.flowLabel ?? 0) & 0xfffff);
  set32(buf, offset + F.VER_TC_FLOW, first >>> 0);
  set16(buf, offset + F.PAYLOAD_LEN, r.payloadLength);
  buf[offset + F.NEXT_HEADER] = r.nextHeader;
  buf[offset + F.HOP_LIMIT] = r.hopLimit;
  buf.set(r.src.subarray(0, 16), offset + F.SRC);
  buf.set(r.dst.subarray(0, 16), offset + F.DST);
  return IPV6_HEADER_LEN;
}
