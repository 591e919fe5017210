/**
 * TCP segments (RFC 9293 §3.1) and their options: MSS (RFC 9293 §3.2), window scale and timestamps (RFC 7323),
 * SACK-permitted and SACK (RFC 2018). A zero-copy `TcpPacket` view, an option iterator, and a plain `TcpRepr`
 * record with parse and emit; the checksum covers the IPv4 or IPv6 pseudo-header.
 */
import type { Address } from '../addr.ts';
import { get16, get32, set16, set32 } from './bytes.ts';
import { finishChecksum, pseudoHeaderSum, sum16, verifies } from './checksum.ts';

/** IANA protocol number of TCP. */
const PROTO_TCP = 6;

/** FIN flag: no more data from sender (RFC 9293 §3.1). */
export const TCP_FIN = 0x01;
/** SYN flag: synchronize sequence numbers. */
export const TCP_SYN = 0x02;
/** RST flag: reset the connection. */
export const TCP_RST = 0x04;
/** PSH flag: push function. */
export const TCP_PSH = 0x08;
/** ACK flag: the acknowledgment field is significant. */
export const TCP_ACK = 0x10;
/** URG flag: the urgent pointer field is significant. */
export const TCP_URG = 0x20;
/** ECE flag: ECN-Echo (RFC 3168 §6.1). */
export const TCP_ECE = 0x40;
/** CWR flag: congestion window reduced (RFC 3168 §6.1). */
export const TCP_CWR = 0x80;

/** Length of a TCP header without options. */
export const TCP_MIN_HEADER_LEN = 20;
/** Length of the longest TCP header (data offset 15). */
export const TCP_MAX_HEADER_LEN = 60;
/** Most option bytes a header can carry. */
export const TCP_MAX_OPTIONS_LEN = 40;

/** Option kind: end of option list (RFC 9293 §3.2). */
export const TCPOPT_EOL = 0;
/** Option kind: no-operation (RFC 9293 §3.2). */
export const TCPOPT_NOP = 1;
/** Option kind: maximum segment size (RFC 9293 §3.2). */
export const TCPOPT_MSS = 2;
/** Option kind: window scale (RFC 7323 §2.2). */
export const TCPOPT_WSCALE = 3;
/** Option kind: SACK permitted (RFC 2018 §2). */
export const TCPOPT_SACK_PERMITTED = 4;
/** Option kind: SACK blocks (RFC 2018 §3). */
export const TCPOPT_SACK = 5;
/** Option kind: timestamps (RFC 7323 §3.2). */
export const TCPOPT_TIMESTAMP = 8;
/** Option kind: TCP Fast Open cookie (RFC 7413 §4.1.1). */
export const TCPOPT_FASTOPEN = 34;
/** Option kind: experimental (RFC 6994), which carries Fast Open before kind 34 under magic 0xF989. */
export const TCPOPT_EXP = 254;
/** RFC 6994 ExID of the experimental Fast Open option (what Linux still accepts and may send). */
export const TCPOPT_FASTOPEN_MAGIC = 0xf989;

/*
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          Source Port          |       Destination Port        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                        Sequence Number                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Acknowledgment Number                      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Data |       |C|E|U|A|P|R|S|F|                               |
 * | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 * |       |       |R|E|G|K|H|T|N|N|                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           Checksum            |         Urgent Pointer        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                           [Options]                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
const F = {
  SRC_PORT: 0,
  DST_PORT: 2,
  SEQ: 4,
  ACK: 8,
  DATA_OFFSET: 12,
  FLAGS: 13,
  WINDOW: 14,
  CHECKSUM: 16,
  URGENT: 18,
  OPTIONS: 20,
} as const;

/** A zero-copy view of a TCP segment (header, options and payload). */
export class TcpPacket {
  /** Wraps a segment starting at its source port; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /** Validates the fixed header and the data offset once; returns the view or a drop reason. */
  static check(buf: Uint8Array): TcpPacket | string {
    if (buf.length < TCP_MIN_HEADER_LEN) return 'truncated';
    const hl = (buf[F.DATA_OFFSET]! >>> 4) * 4;
    if (hl < TCP_MIN_HEADER_LEN) return 'bad-data-offset';
    if (hl > buf.length) return 'truncated-options';
    return new TcpPacket(buf);
  }

  /** Source port. */
  get srcPort(): number {
    return get16(this.buffer, F.SRC_PORT);
  }
  set srcPort(v: number) {
    set16(this.buffer, F.SRC_PORT, v);
  }

  /** Destination port. */
  get dstPort(): number {
    return get16(this.buffer, F.DST_PORT);
  }
  set dstPort(v: number) {
    set16(this.buffer, F.DST_PORT, v);
  }

  /** Sequence number of the first octet (or of the SYN). */
  get seqNumber(): number {
    return get32(this.buffer, F.SEQ);
  }
  set seqNumber(v: number) {
    set32(this.buffer, F.SEQ, v);
  }

  /** Acknowledgment number: the next sequence number the sender expects. */
  get ackNumber(): number {
    return get32(this.buffer, F.ACK);
  }
  set ackNumber(v: number) {
    set32(this.buffer, F.ACK, v);
  }

  /** Data offset in 32-bit words (5–15). */
  get dataOffset(): number {
    return this.buffer[F.DATA_OFFSET]! >>> 4;
  }
  set dataOffset(words: number) {
    this.buffer[F.DATA_OFFSET] = ((words & 0xf) << 4) | (this.buffer[F.DATA_OFFSET]! & 0x0f);
  }

  /** Header length in bytes, options included. */
  get headerLength(): number {
    return this.dataOffset * 4;
  }
  set headerLength(bytes: number) {
    this.dataOffset = bytes >>> 2;
  }

  /** The eight flag bits (TCP_FIN … TCP_CWR). */
  get flags(): number {
    return this.buffer[F.FLAGS]!;
  }
  set flags(v: number) {
    this.buffer[F.FLAGS] = v & 0xff;
  }

  /** FIN flag. */
  get fin(): boolean {
    return (this.flags & TCP_FIN) !== 0;
  }
  /** SYN flag. */
  get syn(): boolean {
    return (this.flags & TCP_SYN) !== 0;
  }
  /** RST flag. */
  get rst(): boolean {
    return (this.flags & TCP_RST) !== 0;
  }
  /** PSH flag. */
  get psh(): boolean {
    return (this.flags & TCP_PSH) !== 0;
  }
  /** ACK flag. */
  get ack(): boolean {
    return (this.flags & TCP_ACK) !== 0;
  }
  /** URG flag. */
  get urg(): boolean {
    return (this.flags & TCP_URG) !== 0;
  }
  /** ECE flag. */
  get ece(): boolean {
    return (this.flags & TCP_ECE) !== 0;
  }
  /** CWR flag. */
  get cwr(): boolean {
    return (this.flags & TCP_CWR) !== 0;
  }

  /** The window field as sent (unscaled). */
  get window(): number {
    return get16(this.buffer, F.WINDOW);
  }
  set window(v: number) {
    set16(this.buffer, F.WINDOW, v);
  }

  /** Checksum field. */
  get checksum(): number {
    return get16(this.buffer, F.CHECKSUM);
  }
  set checksum(v: number) {
    set16(this.buffer, F.CHECKSUM, v);
  }

  /** Urgent pointer field. */
  get urgentPointer(): number {
    return get16(this.buffer, F.URGENT);
  }
  set urgentPointer(v: number) {
    set16(this.buffer, F.URGENT, v);
  }

  /** The option bytes (view). */
  get options(): Uint8Array {
    return this.buffer.subarray(F.OPTIONS, this.headerLength);
  }

  /** The payload after the header (view). */
  get payload(): Uint8Array {
    return this.buffer.subarray(this.headerLength);
  }

  /** Whether the checksum over the pseudo-header and the whole segment is valid (RFC 9293 §3.1). */
  verifyChecksum(src: Address, dst: Address): boolean {
    return tcpChecksumOk(this.buffer, src, dst);
  }

  /** Computes and stores the checksum over the pseudo-header and the whole segment. */
  fillChecksum(src: Address, dst: Address): void {
    fillTcpChecksum(this.buffer, src, dst);
  }
}

/** The checksum of a whole segment (checksum field taken as zero) with its pseudo-header (RFC 9293 §3.1). */
export function tcpChecksum(segment: Uint8Array, src: Address, dst: Address): number {
  // Adding the complement of the stored field removes it from the one's-complement sum (RFC 1624 §3).
  const stored = get16(segment, F.CHECKSUM);
  return finishChecksum(sum16(segment, pseudoHeaderSum(src, dst, PROTO_TCP, segment.length)) + (~stored & 0xffff));
}

/** Whether a segment's checksum, with its pseudo-header, is valid. */
export function tcpChecksumOk(segment: Uint8Array, src: Address, dst: Address): boolean {
  return verifies(segment, pseudoHeaderSum(src, dst, PROTO_TCP, segment.length));
}

/** Computes and stores the checksum of a whole segment with its pseudo-header. */
export function fillTcpChecksum(segment: Uint8Array, src: Address, dst: Address): void {
  set16(segment, F.CHECKSUM, 0);
  set16(segment, F.CHECKSUM, finishChecksum(sum16(segment, pseudoHeaderSum(src, dst, PROTO_TCP, segment.length))));
}

/** The 32-bit big-endian word at `off` of a raw segment (sequence, acknowledgment, timestamp fields). */
export function tcpWord(seg: Uint8Array, off: number): number {
  return get32(seg, off);
}

/**
 * Whether a raw segment's options are exactly NOP NOP TS (kind 8, length 10) filling a 32-byte header: the one
 * layout an established connection with timestamps sends on every segment (RFC 7323 appendix A).
 */
export function tcpTimestampsOnly(seg: Uint8Array): boolean {
  return seg[20] === TCPOPT_NOP && seg[21] === TCPOPT_NOP && seg[22] === TCPOPT_TIMESTAMP && seg[23] === 10;
}

/** One raw option as found in the header: kind and its data bytes (view; empty for NOP and EOL). */
export interface TcpRawOption {
  readonly kind: number;
  readonly data: Uint8Array;
}

/**
 * Iterates the options in order (NOP and EOL included; nothing after EOL); yields a string drop reason and stops
 * when an option's length is malformed (RFC 9293 §3.2: a length below 2 or past the end of the header).
 */
export function* tcpOptionsIter(options: Uint8Array): Generator<TcpRawOption | string> {
  let i = 0;
  while (i < options.length) {
    const kind = options[i]!;
    if (kind === TCPOPT_EOL) {
      yield { kind, data: options.subarray(i + 1, i + 1) };
      return;
    }
    if (kind === TCPOPT_NOP) {
      yield { kind, data: options.subarray(i + 1, i + 1) };
      i++;
      continue;
    }
    const len = optionLength(options, i);
    if (typeof len === 'string') {
      yield len;
      return;
    }
    yield { kind, data: options.subarray(i + 2, i + len) };
    i += len;
  }
}

/**
 * The whole length of the option at `i` (kind, length byte and data; a kind other than EOL and NOP), or why it is
 * malformed: no length byte before the end, or a length below 2 or past the end of the header (RFC 9293 §3.2).
 */
function optionLength(options: Uint8Array, i: number): number | 'option-truncated' | 'option-bad-length' {
  if (i + 1 >= options.length) return 'option-truncated';
  const len = options[i + 1]!;
  return len < 2 || i + len > options.length ? 'option-bad-length' : len;
}

/** A SACK block: the left edge and the right edge (one past the last octet) of a received range (RFC 2018 §3). */
export interface SackBlock {
  readonly left: number;
  readonly right: number;
}

/** The options the stack understands, plus any others kept raw. */
export interface TcpOptions {
  /** Maximum segment size (SYN only, RFC 9293 §3.7.1). */
  mss?: number;
  /** Window scale shift count (SYN only, RFC 7323 §2.2), as sent (0–255; the receiver clamps to 14). */
  wscale?: number;
  /** SACK-permitted (SYN only, RFC 2018 §2). */
  sackPermitted?: boolean;
  /** SACK blocks (RFC 2018 §3), first block first. */
  sack?: SackBlock[];
  /** Timestamp value TSval (RFC 7323 §3.2). */
  tsVal?: number;
  /** Timestamp echo reply TSecr (RFC 7323 §3.2); present whenever tsVal is. */
  tsEcr?: number;
  /**
   * Fast Open (RFC 7413 §4.1.1): the cookie (empty for a cookie request; a copy), and whether it came or goes in
   * the experimental form (kind 254, ExID 0xF989) rather than kind 34. The last one in the header wins.
   */
  fastOpen?: { cookie: Uint8Array; exp: boolean };
  /** Options of other kinds, kept in order (copies). */
  unknown?: TcpRawOption[];
}

/** Parses the option bytes into a record; returns a drop reason on malformed lengths or known options of the wrong size. */
export function parseTcpOptions(options: Uint8Array): TcpOptions | string {
  // Linux's fast path: almost every segment of a connection carries exactly NOP NOP TS, or nothing.
  if (options.length === 0) return {};
  if (options.length === 12 && options[0] === TCPOPT_NOP && options[1] === TCPOPT_NOP && options[2] === TCPOPT_TIMESTAMP && options[3] === 10) {
    return { tsVal: get32(options, 4), tsEcr: get32(options, 8) };
  }
  // The walk of tcpOptionsIter, by index: no generator, no view and no object per option (a SYN's options took
  // 270 ns through the generator and take 80 this way, an ACK with timestamps and two SACK blocks 340 and 110).
  const o: TcpOptions = {};
  const n = options.length;
  let i = 0;
  while (i < n) {
    const kind = options[i]!;
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    const len = optionLength(options, i);
    if (typeof len === 'string') return len;
    const at = i + 2;
    const dlen = len - 2;
    i += len;
    switch (kind) {
      case TCPOPT_MSS:
        if (dlen !== 2) return 'bad-mss-option';
        o.mss = get16(options, at);
        break;
      case TCPOPT_WSCALE:
        if (dlen !== 1) return 'bad-wscale-option';
        o.wscale = options[at]!;
        break;
      case TCPOPT_SACK_PERMITTED:
        if (dlen !== 0) return 'bad-sack-permitted-option';
        o.sackPermitted = true;
        break;
      case TCPOPT_SACK: {
        if (dlen === 0 || dlen % 8 !== 0) return 'bad-sack-option';
        const blocks: SackBlock[] = [];
        for (let j = at; j < at + dlen; j += 8) blocks.push({ left: get32(options, j), right: get32(options, j + 4) });
        o.sack = blocks;
        break;
      }
      case TCPOPT_TIMESTAMP:
        if (dlen !== 8) return 'bad-timestamp-option';
        o.tsVal = get32(options, at);
        o.tsEcr = get32(options, at + 4);
        break;
      case TCPOPT_FASTOPEN:
        o.fastOpen = { cookie: options.slice(at, at + dlen), exp: false };
        break;
      case TCPOPT_EXP:
        if (dlen >= 2 && get16(options, at) === TCPOPT_FASTOPEN_MAGIC) {
          o.fastOpen = { cookie: options.slice(at + 2, at + dlen), exp: true };
          break;
        }
        (o.unknown ??= []).push({ kind, data: options.slice(at, at + dlen) });
        break;
      default:
        (o.unknown ??= []).push({ kind, data: options.slice(at, at + dlen) });
    }
  }
  return o;
}

/** The bytes `o` takes when emitted (Linux's layout with NOP padding), before rounding to 4. */
export function tcpOptionsLength(o: TcpOptions): number {
  let n = 0;
  if (o.mss !== undefined) n += 4;
  if (o.tsVal !== undefined) n += 12; // SACK-permitted rides in the two bytes of padding in front of TS
  else if (o.sackPermitted) n += 4;
  if (o.wscale !== undefined) n += 4;
  if (o.sack && o.sack.length > 0) n += 4 + 8 * o.sack.length;
  if (o.fastOpen) n += (fastOpenLength(o.fastOpen) + 3) & ~3;
  for (const u of o.unknown ?? []) n += 2 + u.data.length;
  return n;
}

/** The bytes of a Fast Open option before padding: kind, length (and ExID), cookie. */
function fastOpenLength(f: { cookie: Uint8Array; exp: boolean }): number {
  return (f.exp ? 4 : 2) + f.cookie.length;
}

/**
 * Writes `o` at `off` in Linux's order (MSS, SACK-permitted+TS or NOP NOP TS, NOP WS, NOP NOP SACK, Fast Open
 * padded with NOPs, others) padded with EOL to a multiple of 4; returns bytes written.
 */
export function emitTcpOptions(o: TcpOptions, buf: Uint8Array, off: number): number {
  const start = off;
  if (o.mss !== undefined) {
    buf[off] = TCPOPT_MSS;
    buf[off + 1] = 4;
    set16(buf, off + 2, o.mss);
    off += 4;
  }
  if (o.tsVal !== undefined) {
    if (o.sackPermitted) {
      buf[off] = TCPOPT_SACK_PERMITTED;
      buf[off + 1] = 2;
    } else {
      buf[off] = TCPOPT_NOP;
      buf[off + 1] = TCPOPT_NOP;
    }
    buf[off + 2] = TCPOPT_TIMESTAMP;
    buf[off + 3] = 10;
    set32(buf, off + 4, o.tsVal);
    set32(buf, off + 8, o.tsEcr ?? 0);
    off += 12;
  } else if (o.sackPermitted) {
    buf[off] = TCPOPT_NOP;
    buf[off + 1] = TCPOPT_NOP;
    buf[off + 2] = TCPOPT_SACK_PERMITTED;
    buf[off + 3] = 2;
    off += 4;
  }
  if (o.wscale !== undefined) {
    buf[off] = TCPOPT_NOP;
    buf[off + 1] = TCPOPT_WSCALE;
    buf[off + 2] = 3;
    buf[off + 3] = o.wscale;
    off += 4;
  }
  if (o.sack && o.sack.length > 0) {
    buf[off] = TCPOPT_NOP;
    buf[off + 1] = TCPOPT_NOP;
    buf[off + 2] = TCPOPT_SACK;
    buf[off + 3] = 2 + 8 * o.sack.length;
    off += 4;
    for (const b of o.sack) {
      set32(buf, off, b.left);
      set32(buf, off + 4, b.right);
      off += 8;
    }
  }
  if (o.fastOpen) {
    const f = o.fastOpen;
    const len = fastOpenLength(f);
    buf[off] = f.exp ? TCPOPT_EXP : TCPOPT_FASTOPEN;
    buf[off + 1] = len;
    if (f.exp) set16(buf, off + 2, TCPOPT_FASTOPEN_MAGIC);
    buf.set(f.cookie, off + (f.exp ? 4 : 2));
    off += len;
    // Linux pads a Fast Open option of length 4n+2 with two NOPs (tcp_options_write).
    while ((off - start) & 3) buf[off++] = TCPOPT_NOP;
  }
  for (const u of o.unknown ?? []) {
    buf[off] = u.kind;
    buf[off + 1] = 2 + u.data.length;
    buf.set(u.data, off + 2);
    off += 2 + u.data.length;
  }
  while ((off - start) & 3) buf[off++] = TCPOPT_EOL;
  return off - start;
}

/** The TCP header fields the stack builds and reads. */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** The eight flag bits (TCP_FIN … TCP_CWR). */
  flags: number;
  /** The window field as on the wire (unscaled). */
  window: number;
  urgentPointer: number;
  options: TcpOptions;
  /** The payload (a view into the parsed segment, or the data to emit). */
  payload: Uint8Array;
}

/**
 * Parses a checked segment into a Repr (payload is a view); when src and dst are given, verifies the checksum
 * first. Returns a drop reason for bad checksums, malformed options or port 0.
 */
export function parseTcp(pkt: TcpPacket, src?: Address, dst?: Address): TcpRepr | string {
  if (src && dst && !pkt.verifyChecksum(src, dst)) return 'bad-checksum';
  const srcPort = pkt.srcPort;
  const dstPort = pkt.dstPort;
  if (srcPort === 0 || dstPort === 0) return 'port-zero';
  const options = parseTcpOptions(pkt.options);
  if (typeof options === 'string') return options;
  return {
    srcPort,
    dstPort,
    seq: pkt.seqNumber,
    ack: pkt.ackNumber,
    flags: pkt.flags,
    window: pkt.window,
    urgentPointer: pkt.urgentPointer,
    options,
    payload: pkt.payload,
  };
}

/** Header bytes of `r`, options included and padded; throws when the options exceed 40 bytes (a caller bug). */
export function tcpHeaderLength(r: TcpRepr): number {
  return tcpHeaderLengthFor(r.options);
}

/** Header bytes with options `o`, padded; throws when the options exceed 40 bytes (a caller bug). */
export function tcpHeaderLengthFor(o: TcpOptions): number {
  const n = (tcpOptionsLength(o) + 3) & ~3;
  if (n > TCP_MAX_OPTIONS_LEN) throw new RangeError(`tcp options too long: ${n}`);
  return TCP_MIN_HEADER_LEN + n;
}

/** The header fields `emitTcpHeader` writes (a TcpRepr without options and payload). */
export interface TcpHeaderFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
}

/**
 * Writes a header of `hl` bytes (from `tcpHeaderLengthFor(options)`) at `offset`, urgent pointer and checksum
 * zero: the segment-building fast path, which needs no Repr.
 */
export function emitTcpHeader(h: TcpHeaderFields, options: TcpOptions, hl: number, buf: Uint8Array, offset: number): void {
  set16(buf, offset + F.SRC_PORT, h.srcPort);
  set16(buf, offset + F.DST_PORT, h.dstPort);
  set32(buf, offset + F.SEQ, h.seq);
  set32(buf, offset + F.ACK, h.ack);
  buf[offset + F.DATA_OFFSET] = (hl / 4) << 4;
  buf[offset + F.FLAGS] = h.flags & 0xff;
  set16(buf, offset + F.WINDOW, h.window);
  set16(buf, offset + F.CHECKSUM, 0);
  set16(buf, offset + F.URGENT, 0);
  if (hl > TCP_MIN_HEADER_LEN) emitTcpOptions(options, buf, offset + F.OPTIONS);
}

/**
 * Writes the header of an established connection's segment at `offset` into zero-filled memory: 20 bytes, or
 * 32 with NOP NOP TS when `ts` (RFC 7323 appendix A layout); urgent pointer and checksum stay zero. The send fast
 * path, which builds no options record.
 */
export function emitTcpHeaderFast(
  buf: Uint8Array,
  offset: number,
  srcPort: number,
  dstPort: number,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  ts: boolean,
  tsVal: number,
  tsEcr: number,
): void {
  set16(buf, offset, srcPort);
  set16(buf, offset + F.DST_PORT, dstPort);
  set32(buf, offset + F.SEQ, seq);
  set32(buf, offset + F.ACK, ack);
  buf[offset + F.FLAGS] = flags & 0xff;
  set16(buf, offset + F.WINDOW, window);
  if (!ts) {
    buf[offset + F.DATA_OFFSET] = 5 << 4;
    return;
  }
  buf[offset + F.DATA_OFFSET] = 8 << 4;
  buf[offset + 20] = TCPOPT_NOP;
  buf[offset + 21] = TCPOPT_NOP;
  buf[offset + 22] = TCPOPT_TIMESTAMP;
  buf[offset + 23] = 10;
  set32(buf, offset + 24, tsVal);
  set32(buf, offset + 28, tsEcr);
}

/** Stores a checksum value (complemented, or partial for offloads) into a segment starting at `offset`. */
export function setTcpChecksumField(buf: Uint8Array, offset: number, v: number): void {
  set16(buf, offset + F.CHECKSUM, v);
}

/**
 * Writes the header of `r` at `offset` and its payload after it (skipped when the payload already sits there),
 * with the checksum field zero; returns the segment length. Fill the checksum with `fillTcpChecksum`, or pass
 * src and dst to have it filled here.
 */
export function emitTcp(r: TcpRepr, buf: Uint8Array, offset = 0, src?: Address, dst?: Address): number {
  const hl = tcpHeaderLength(r);
  emitTcpHeader(r, r.options, hl, buf, offset);
  set16(buf, offset + F.URGENT, r.urgentPointer);
  const p = r.payload;
  const at = offset + hl;
  if (p.length > 0 && !(p.buffer === buf.buffer && p.byteOffset === buf.byteOffset + at)) buf.set(p, at);
  const total = hl + p.length;
  if (src && dst) fillTcpChecksum(buf.subarray(offset, offset + total), src, dst);
  return total;
}
