/**
 * IPv4 headers (RFC 791) with options, the header checksum (RFC 791 §3.1, RFC 1071) and the DSCP/ECN split of
 * the old TOS octet (RFC 2474 §3, RFC 3168 §5).
 */
import type { Address } from '../addr.ts';
import { get16, set16 } from './bytes.ts';
import { finishChecksum, sum16, verifies } from './checksum.ts';

/** Length of an IPv4 header without options. */
export const IPV4_HEADER_LEN = 20;
/** Longest IPv4 header (IHL 15). */
export const IPV4_MAX_HEADER_LEN = 60;
/** Option type: End of Option List (RFC 791 §3.1). */
export const IPV4_OPT_EOL = 0;
/** Option type: No Operation. */
export const IPV4_OPT_NOP = 1;
/** Option type: Record Route. */
export const IPV4_OPT_RR = 7;
/** Option type: Internet Timestamp (RFC 791, RFC 781). */
export const IPV4_OPT_TIMESTAMP = 68;
/** Option type: Loose Source and Record Route. */
export const IPV4_OPT_LSRR = 131;
/** Option type: Strict Source and Record Route. */
export const IPV4_OPT_SSRR = 137;
/** Option type: Router Alert (RFC 2113). */
export const IPV4_OPT_ROUTER_ALERT = 148;

/*
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version|  IHL  |   DSCP    |ECN|          Total Length         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Identification        |Flags|      Fragment Offset    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Time to Live |    Protocol   |         Header Checksum       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                       Source Address                          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Destination Address                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Options                    |    Padding    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
const F = {
  VER_IHL: 0,
  TOS: 1,
  TOTAL_LEN: 2,
  IDENT: 4,
  FLAGS_FRAG: 6,
  TTL: 8,
  PROTOCOL: 9,
  CHECKSUM: 10,
  SRC: 12,
  DST: 16,
  OPTIONS: 20,
} as const;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const FRAG_MASK = 0x1fff;

/** A zero-copy view of an IPv4 packet; address and option getters return subarray views (copy to keep them). */
export class Ipv4Packet {
  /** Wraps a packet starting at the version octet; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /**
   * Validates version 4, IHL ≥ 5, and header ≤ total length ≤ buffer once (RFC 1122 §3.2.1.1-2 minus the
   * checksum, which `parseIpv4` or `verifyChecksum` checks); returns the view or a drop reason.
   */
  static check(buf: Uint8Array): Ipv4Packet | string {
    if (buf.length < IPV4_HEADER_LEN) return 'truncated';
    const p = new Ipv4Packet(buf);
    if (p.version !== 4) return 'bad-version';
    const hl = p.headerLength;
    if (hl < IPV4_HEADER_LEN) return 'bad-header-length';
    if (hl > buf.length) return 'truncated';
    const total = p.totalLength;
    if (total < hl) return 'bad-total-length';
    if (total > buf.length) return 'truncated';
    return p;
  }

  /** Version (4). */
  get version(): number {
    return this.buffer[F.VER_IHL]! >>> 4;
  }
  set version(v: number) {
    this.buffer[F.VER_IHL] = ((v & 0xf) << 4) | (this.buffer[F.VER_IHL]! & 0x0f);
  }

  /** Internet Header Length in 32-bit words. */
  get ihl(): number {
    return this.buffer[F.VER_IHL]! & 0x0f;
  }
  set ihl(v: number) {
    this.buffer[F.VER_IHL] = (this.buffer[F.VER_IHL]! & 0xf0) | (v & 0xf);
  }

  /** Header length in bytes (IHL × 4). */
  get headerLength(): number {
    return this.ihl * 4;
  }
  set headerLength(v: number) {
    this.ihl = v >>> 2;
  }

  /** The whole TOS octet (DSCP and ECN). */
  get tos(): number {
    return this.buffer[F.TOS]!;
  }
  set tos(v: number) {
    this.buffer[F.TOS] = v;
  }

  /** Differentiated Services Code Point (RFC 2474 §3). */
  get dscp(): number {
    return this.buffer[F.TOS]! >>> 2;
  }
  set dscp(v: number) {
    this.buffer[F.TOS] = ((v & 0x3f) << 2) | (this.buffer[F.TOS]! & 3);
  }

  /** Explicit Congestion Notification codepoint (RFC 3168 §5). */
  get ecn(): number {
    return this.buffer[F.TOS]! & 3;
  }
  set ecn(v: number) {
    this.buffer[F.TOS] = (this.buffer[F.TOS]! & 0xfc) | (v & 3);
  }

  /** Total Length: header plus data in bytes. */
  get totalLength(): number {
    return get16(this.buffer, F.TOTAL_LEN);
  }
  set totalLength(v: number) {
    set16(this.buffer, F.TOTAL_LEN, v);
  }

  /** Identification, for reassembly. */
  get identification(): number {
    return get16(this.buffer, F.IDENT);
  }
  set identification(v: number) {
    set16(this.buffer, F.IDENT, v);
  }

  /** The DF (don't fragment) flag. */
  get dontFragment(): boolean {
    return (get16(this.buffer, F.FLAGS_FRAG) & FLAG_DF) !== 0;
  }
  set dontFragment(v: boolean) {
    const w = get16(this.buffer, F.FLAGS_FRAG);
    set16(this.buffer, F.FLAGS_FRAG, v ? w | FLAG_DF : w & ~FLAG_DF);
  }

  /** The MF (more fragments) flag. */
  get moreFragments(): boolean {
    return (get16(this.buffer, F.FLAGS_FRAG) & FLAG_MF) !== 0;
  }
  set moreFragments(v: boolean) {
    const w = get16(this.buffer, F.FLAGS_FRAG);
    set16(this.buffer, F.FLAGS_FRAG, v ? w | FLAG_MF : w & ~FLAG_MF);
  }

  /** Fragment Offset in bytes (the field counts 8-byte units). */
  get fragmentOffset(): number {
    return (get16(this.buffer, F.FLAGS_FRAG) & FRAG_MASK) * 8;
  }
  set fragmentOffset(bytes: number) {
    const w = get16(this.buffer, F.FLAGS_FRAG);
    set16(this.buffer, F.FLAGS_FRAG, (w & ~FRAG_MASK) | ((bytes >>> 3) & FRAG_MASK));
  }

  /** Whether this is a fragment of a larger datagram (MF set or offset non-zero). */
  get isFragment(): boolean {
    return (get16(this.buffer, F.FLAGS_FRAG) & (FLAG_MF | FRAG_MASK)) !== 0;
  }

  /** Time to Live. */
  get ttl(): number {
    return this.buffer[F.TTL]!;
  }
  set ttl(v: number) {
    this.buffer[F.TTL] = v;
  }

  /** Protocol number of the payload. */
  get protocol(): number {
    return this.buffer[F.PROTOCOL]!;
  }
  set protocol(v: number) {
    this.buffer[F.PROTOCOL] = v;
  }

  /** Header Checksum as stored. */
  get checksum(): number {
    return get16(this.buffer, F.CHECKSUM);
  }
  set checksum(v: number) {
    set16(this.buffer, F.CHECKSUM, v);
  }

  /** Source Address (view). */
  get src(): Address {
    return this.buffer.subarray(F.SRC, F.SRC + 4);
  }
  set src(a: Address) {
    this.buffer.set(a.subarray(0, 4), F.SRC);
  }

  /** Destination Address (view). */
  get dst(): Address {
    return this.buffer.subarray(F.DST, F.DST + 4);
  }
  set dst(a: Address) {
    this.buffer.set(a.subarray(0, 4), F.DST);
  }

  /** The raw options area including padding (view; empty when IHL is 5). */
  get options(): Uint8Array {
    return this.buffer.subarray(F.OPTIONS, this.headerLength);
  }

  /** The data after the header, bounded by Total Length (excludes link-layer padding). */
  get payload(): Uint8Array {
    return this.buffer.subarray(this.headerLength, this.totalLength);
  }

  /** Whether the header checksum verifies (RFC 791 §3.1). */
  verifyChecksum(): boolean {
    return verifies(this.buffer.subarray(0, this.headerLength));
  }

  /** Computes and stores the header checksum. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = finishChecksum(sum16(this.buffer.subarray(0, this.headerLength)));
  }
}

/** One decoded IPv4 option (RFC 791 §3.1); `offset` is relative to the options area (add 20 for a pointer). */
export type Ipv4Option =
  | { readonly kind: 'eol'; readonly type: number; readonly offset: number }
  | { readonly kind: 'nop'; readonly type: number; readonly offset: number }
  | {
      readonly kind: 'record-route' | 'lsrr' | 'ssrr';
      readonly type: number;
      readonly offset: number;
      /** The route pointer octet (1-based, ≥ 4). */
      readonly pointer: number;
      /** The route data area (view). */
      readonly route: Uint8Array;
    }
  | {
      readonly kind: 'timestamp';
      readonly type: number;
      readonly offset: number;
      /** The pointer octet (1-based, ≥ 5). */
      readonly pointer: number;
      /** Overflow count. */
      readonly overflow: number;
      /** Flag (0 timestamps only, 1 with addresses, 3 prespecified). */
      readonly flag: number;
      /** The timestamp data area (view). */
      readonly data: Uint8Array;
    }
  | { readonly kind: 'router-alert'; readonly type: number; readonly offset: number; readonly value: number }
  | { readonly kind: 'unknown'; readonly type: number; readonly offset: number; readonly data: Uint8Array }
  | {
      readonly kind: 'malformed';
      readonly type: number;
      /** Offset of the octet that is wrong (type, length or pointer), relative to the options area. */
      readonly offset: number;
      /** Offset of the malformed option's type octet. */
      readonly start: number;
      /** What is wrong: "truncated", "bad-length" or "bad-pointer". */
      readonly reason: string;
    };

/**
 * Iterates the options area of an IPv4 header; stops after End of Option List, and after yielding one
 * `malformed` item (bad length octet, option overrunning the header, bad pointer).
 */
export function* ipv4Options(options: Uint8Array): Generator<Ipv4Option, void, undefined> {
  let i = 0;
  while (i < options.length) {
    const type = options[i]!;
    if (type === IPV4_OPT_EOL) {
      yield { kind: 'eol', type, offset: i };
      return;
    }
    if (type === IPV4_OPT_NOP) {
      yield { kind: 'nop', type, offset: i };
      i++;
      continue;
    }
    if (i + 1 >= options.length) {
      yield { kind: 'malformed', type, offset: i, start: i, reason: 'truncated' };
      return;
    }
    const len = options[i + 1]!;
    if (len < 2 || i + len > options.length) {
      yield { kind: 'malformed', type, offset: i + 1, start: i, reason: 'bad-length' };
      return;
    }
    const body = options.subarray(i + 2, i + len);
    const bad = (reason: string, at: number): Ipv4Option => ({ kind: 'malformed', type, offset: i + at, start: i, reason });
    switch (type) {
      case IPV4_OPT_RR:
      case IPV4_OPT_LSRR:
      case IPV4_OPT_SSRR: {
        // RFC 791: length 3 + 4n, pointer 1-based and at least 4.
        if (len < 3 || (len - 3) % 4 !== 0) return void (yield bad('bad-length', 1));
        const pointer = body[0]!;
        if (pointer < 4) return void (yield bad('bad-pointer', 2));
        const kind = type === IPV4_OPT_RR ? 'record-route' : type === IPV4_OPT_LSRR ? 'lsrr' : 'ssrr';
        yield { kind, type, offset: i, pointer, route: body.subarray(1) };
        break;
      }
      case IPV4_OPT_TIMESTAMP: {
        if (len < 4) return void (yield bad('bad-length', 1));
        const pointer = body[0]!;
        if (pointer < 5) return void (yield bad('bad-pointer', 2));
        yield { kind: 'timestamp', type, offset: i, pointer, overflow: body[1]! >>> 4, flag: body[1]! & 0xf, data: body.subarray(2) };
        break;
      }
      case IPV4_OPT_ROUTER_ALERT:
        if (len !== 4) return void (yield bad('bad-length', 1));
        yield { kind: 'router-alert', type, offset: i, value: get16(body, 0) };
        break;
      default:
        yield { kind: 'unknown', type, offset: i, data: body };
    }
    i += len;
  }
}

/** The IPv4 header fields the stack builds and reads. */
export interface Ipv4Repr {
  /** Source address (4 bytes). */
  readonly src: Address;
  /** Destination address (4 bytes). */
  readonly dst: Address;
  /** Payload protocol number. */
  readonly protocol: number;
  /** Time to Live. */
  readonly ttl: number;
  /** Bytes after the header. */
  readonly payloadLength: number;
  /** DSCP (default 0). */
  readonly dscp?: number;
  /** ECN codepoint (default 0). */
  readonly ecn?: number;
  /** Identification (default 0). */
  readonly identification?: number;
  /** DF flag (default false). */
  readonly dontFragment?: boolean;
  /** MF flag (default false). */
  readonly moreFragments?: boolean;
  /** Fragment offset in bytes, a multiple of 8 (default 0). */
  readonly fragmentOffset?: number;
  /** Raw options; emit pads them with zeros (EOL) to a multiple of 4 bytes. */
  readonly options?: Uint8Array;
}

/**
 * Reads a checked packet into a Repr (addresses and options copied), verifying the header checksum unless
 * `checksum` is false (e.g. when the link already validated it).
 */
export function parseIpv4(pkt: Ipv4Packet, checksum = true): Ipv4Repr | string {
  if (checksum && !pkt.verifyChecksum()) return 'bad-checksum';
  const hl = pkt.headerLength;
  const r: Ipv4Repr = {
    src: pkt.src.slice(),
    dst: pkt.dst.slice(),
    protocol: pkt.protocol,
    ttl: pkt.ttl,
    payloadLength: pkt.totalLength - hl,
    dscp: pkt.dscp,
    ecn: pkt.ecn,
    identification: pkt.identification,
    dontFragment: pkt.dontFragment,
    moreFragments: pkt.moreFragments,
    fragmentOffset: pkt.fragmentOffset,
  };
  return hl > IPV4_HEADER_LEN ? { ...r, options: pkt.options.slice() } : r;
}

/** Bytes the header of `r` occupies (options padded to 4-byte words). */
export function ipv4HeaderLength(r: Ipv4Repr): number {
  return IPV4_HEADER_LEN + (((r.options?.length ?? 0) + 3) & ~3);
}

/** Writes the header of `r` at `offset` with its checksum; returns bytes written. */
export function emitIpv4(r: Ipv4Repr, buf: Uint8Array, offset = 0): number {
  const hl = ipv4HeaderLength(r);
  if (hl > IPV4_MAX_HEADER_LEN) throw new RangeError(`IPv4 options too long: ${r.options!.length} bytes`);
  const h = buf.subarray(offset, offset + hl);
  h[F.VER_IHL] = 0x40 | (hl >>> 2);
  h[F.TOS] = (((r.dscp ?? 0) & 0x3f) << 2) | ((r.ecn ?? 0) & 3);
  set16(h, F.TOTAL_LEN, hl + r.payloadLength);
  set16(h, F.IDENT, r.identification ?? 0);
  const flags = (r.dontFragment ? FLAG_DF : 0) | (r.moreFragments ? FLAG_MF : 0);
  set16(h, F.FLAGS_FRAG, flags | (((r.fragmentOffset ?? 0) >>> 3) & FRAG_MASK));
  h[F.TTL] = r.ttl;
  h[F.PROTOCOL] = r.protocol;
  set16(h, F.CHECKSUM, 0);
  // Four bytes each: plain stores beat a subarray and a native set per packet.
  const src = r.src;
  const dst = r.dst;
  for (let i = 0; i < 4; i++) {
    h[F.SRC + i] = src[i]!;
    h[F.DST + i] = dst[i]!;
  }
  if (r.options) {
    h.set(r.options, F.OPTIONS);
    h.fill(0, F.OPTIONS + r.options.length, hl);
  }
  set16(h, F.CHECKSUM, finishChecksum(sum16(h)));
  return hl;
}

/**
 * Writes an option-less 20-byte IPv4 header (RFC 791 §3.1) with its checksum at `offset`, from scalars: the
 * per-packet path of emitIpv4 for the common datagram, summing the header's ten words inline (RFC 1071) rather
 * than building a repr and checksumming a view of the bytes just written. `tos` is the whole TOS byte.
 */
export function emitIpv4Basic(
  buf: Uint8Array,
  offset: number,
  src: Address,
  dst: Address,
  protocol: number,
  ttl: number,
  tos: number,
  identification: number,
  dontFragment: boolean,
  payloadLength: number,
): void {
  const total = IPV4_HEADER_LEN + payloadLength;
  const ident = identification & 0xffff;
  const flags = dontFragment ? FLAG_DF : 0;
  const s0 = src[0]!, s1 = src[1]!, s2 = src[2]!, s3 = src[3]!;
  const d0 = dst[0]!, d1 = dst[1]!, d2 = dst[2]!, d3 = dst[3]!;
  let sum = (0x4500 | (tos & 0xff)) + (total & 0xffff) + ident + flags + (((ttl & 0xff) << 8) | (protocol & 0xff));
  sum += ((s0 << 8) | s1) + ((s2 << 8) | s3) + ((d0 << 8) | d1) + ((d2 << 8) | d3);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  const ck = ~sum & 0xffff;
  const o = offset;
  buf[o] = 0x45;
  buf[o + 1] = tos;
  buf[o + 2] = total >>> 8;
  buf[o + 3] = total;
  buf[o + 4] = ident >>> 8;
  buf[o + 5] = ident;
  buf[o + 6] = flags >>> 8;
  buf[o + 7] = 0;
  buf[o + 8] = ttl;
  buf[o + 9] = protocol;
  buf[o + 10] = ck >>> 8;
  buf[o + 11] = ck;
  buf[o + 12] = s0;
  buf[o + 13] = s1;
  buf[o + 14] = s2;
  buf[o + 15] = s3;
  buf[o + 16] = d0;
  buf[o + 17] = d1;
  buf[o + 18] = d2;
  buf[o + 19] = d3;
}
