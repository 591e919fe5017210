/**
 * UDP datagrams (RFC 768) with the pseudo-header checksum; a zero checksum means "none" over IPv4 only
 * (RFC 768; RFC 8200 §8.1 makes it mandatory over IPv6).
 */
import type { Address } from '../addr.ts';
import { get16, set16 } from './bytes.ts';
import { finishChecksum, pseudoHeaderSum, sum16 } from './checksum.ts';

/** Length of the UDP header. */
export const UDP_HEADER_LEN = 8;
/** IP protocol number of UDP. */
const PROTO_UDP = 17;

/*
 *  0      7 8     15 16    23 24    31
 * +--------+--------+--------+--------+
 * |     Source      |   Destination   |
 * |      Port       |      Port       |
 * +--------+--------+--------+--------+
 * |     Length      |    Checksum     |
 * +--------+--------+--------+--------+
 * |          data octets ...
 * +---------------- ...
 */
const F = {
  SRC_PORT: 0,
  DST_PORT: 2,
  LENGTH: 4,
  CHECKSUM: 6,
} as const;

/** A zero-copy view of a UDP datagram; the buffer starts at the header and may extend past Length. */
export class UdpPacket {
  /** Wraps a datagram starting at its source port; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /** Validates 8 ≤ Length ≤ buffer length; returns the view or a drop reason. */
  static check(buf: Uint8Array): UdpPacket | string {
    if (buf.length < UDP_HEADER_LEN) return 'truncated';
    const len = get16(buf, F.LENGTH);
    if (len < UDP_HEADER_LEN) return 'bad-length';
    if (len > buf.length) return 'truncated';
    return new UdpPacket(buf);
  }

  /** Source Port (0: none). */
  get srcPort(): number {
    return get16(this.buffer, F.SRC_PORT);
  }
  set srcPort(v: number) {
    set16(this.buffer, F.SRC_PORT, v);
  }

  /** Destination Port. */
  get dstPort(): number {
    return get16(this.buffer, F.DST_PORT);
  }
  set dstPort(v: number) {
    set16(this.buffer, F.DST_PORT, v);
  }

  /** Length of header plus data. */
  get length(): number {
    return get16(this.buffer, F.LENGTH);
  }
  set length(v: number) {
    set16(this.buffer, F.LENGTH, v);
  }

  /** Checksum as stored (0: none, IPv4 only). */
  get checksum(): number {
    return get16(this.buffer, F.CHECKSUM);
  }
  set checksum(v: number) {
    set16(this.buffer, F.CHECKSUM, v);
  }

  /** Header length: 8. */
  get headerLength(): number {
    return UDP_HEADER_LEN;
  }

  /** The data, bounded by Length (view). */
  get payload(): Uint8Array {
    return this.buffer.subarray(UDP_HEADER_LEN, this.length);
  }

  /** Whether the checksum verifies with the pseudo-header of src/dst; a zero checksum passes over IPv4 only. */
  verifyChecksum(src: Address, dst: Address): boolean {
    if (this.checksum === 0) return src.length === 4;
    const len = this.length;
    return finishChecksum(sum16(this.buffer.subarray(0, len), pseudoHeaderSum(src, dst, PROTO_UDP, len))) === 0;
  }

  /** Computes and stores the checksum, sending a computed 0 as 0xffff (RFC 768). */
  fillChecksum(src: Address, dst: Address): void {
    const len = this.length;
    this.checksum = 0;
    const c = finishChecksum(sum16(this.buffer.subarray(0, len), pseudoHeaderSum(src, dst, PROTO_UDP, len)));
    this.checksum = c === 0 ? 0xffff : c;
  }
}

/** The UDP header fields the stack builds and reads. */
export interface UdpRepr {
  /** Source port. */
  readonly srcPort: number;
  /** Destination port. */
  readonly dstPort: number;
  /** Bytes of data after the header. */
  readonly payloadLength: number;
}

/**
 * Reads a checked datagram into a Repr, verifying the checksum with the pseudo-header of src/dst unless
 * `checksum` is false (e.g. validated by the link).
 */
export function parseUdp(pkt: UdpPacket, src: Address, dst: Address, checksum = true): UdpRepr | string {
  if (checksum && !pkt.verifyChecksum(src, dst)) return pkt.checksum === 0 ? 'zero-checksum' : 'bad-checksum';
  return { srcPort: pkt.srcPort, dstPort: pkt.dstPort, payloadLength: pkt.length - UDP_HEADER_LEN };
}

/** Bytes the header occupies: 8. */
export function udpHeaderLength(_r: UdpRepr): number {
  return UDP_HEADER_LEN;
}

/**
 * Writes the header of `r` at `offset` with a zero checksum (it covers the data: call `fillUdpChecksum` or
 * `UdpPacket.fillChecksum`); returns 8.
 */
export function emitUdp(r: UdpRepr, buf: Uint8Array, offset = 0): number {
  set16(buf, offset + F.SRC_PORT, r.srcPort);
  set16(buf, offset + F.DST_PORT, r.dstPort);
  set16(buf, offset + F.LENGTH, UDP_HEADER_LEN + r.payloadLength);
  set16(buf, offset + F.CHECKSUM, 0);
  return UDP_HEADER_LEN;
}

/**
 * Computes and stores the checksum of a datagram held as an 8-byte header plus separate data, with the
 * pseudo-header of src/dst; a computed 0 is sent as 0xffff (RFC 768).
 */
export function fillUdpChecksum(header: Uint8Array, data: Uint8Array, src: Address, dst: Address): void {
  const h = header.subarray(0, UDP_HEADER_LEN);
  set16(h, F.CHECKSUM, 0);
  const len = UDP_HEADER_LEN + data.length;
  const c = finishChecksum(sum16(data, sum16(h, pseudoHeaderSum(src, dst, PROTO_UDP, len))));
  set16(h, F.CHECKSUM, c === 0 ? 0xffff : c);
}
