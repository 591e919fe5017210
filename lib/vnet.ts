/**
 * `struct virtio_net_hdr`, the 10-byte header a packet socket with PACKET_VNET_HDR puts in front of every frame
 * (virtio 1.x §5.1.6 "Device Operation"; Linux include/uapi/linux/virtio_net.h), and the link capabilities
 * that follow from it.
 *
 * With the option on, the kernel hands over frames exactly as its own stack holds them: GRO'd super-frames of up
 * to 64 KB (gso_type/gso_size say how they were built) and frames whose L4 checksum is only partial
 * (NEEDS_CSUM: the pseudo-header sum sits in the checksum field; the sum over csum_start..end is still to be
 * folded in). In the other direction it accepts the same: one 64 KB TCP segment with gso fields set, which the
 * kernel (or the veth peer's stack) cuts into MSS-sized segments, and partial checksums it completes. That is how
 * a veth keeps TSO/GSO/GRO and checksum offload on while a userspace stack owns it, as gVisor's fdbased endpoint
 * does for runsc.
 *
 * Fields are little-endian: packet sockets use the host's byte order for the header (x86-64 and aarch64 are
 * little-endian; the legacy virtio big-endian mode is never selected for packet sockets on these hosts).
 */

/** Length of `struct virtio_net_hdr` (without num_buffers, which packet sockets do not use). */
export const VNET_HDR_LEN = 10;

/** `flags`: the L4 checksum is partial and must be completed over csum_start..end (VIRTIO_NET_HDR_F_NEEDS_CSUM). */
export const VNET_F_NEEDS_CSUM = 1;
/** `flags`: the kernel (or device) has verified the checksums (VIRTIO_NET_HDR_F_DATA_VALID). */
export const VNET_F_DATA_VALID = 2;

import { GsoType, type GsoOptions } from '../netstack/link/endpoint.ts';

export { GsoType, type GsoOptions };

/** A decoded `struct virtio_net_hdr`. */
export interface VnetHeader {
  /** VNET_F_NEEDS_CSUM and/or VNET_F_DATA_VALID. */
  flags: number;
  /** One of `GsoType`, possibly with `GsoType.ECN`. */
  gsoType: number;
  /** Bytes of headers in front of the payload. */
  hdrLen: number;
  /** Payload bytes per segment. */
  gsoSize: number;
  /** Start of the L4 checksum's coverage. */
  csumStart: number;
  /** Offset of the checksum field from csumStart. */
  csumOffset: number;
}

export { type LinkCapabilities, NO_OFFLOADS } from '../netstack/link/endpoint.ts';

/** Reads the virtio_net_hdr at `off` of `v`. */
export function readVnetHeader(v: DataView, off: number): VnetHeader {
  return {
    flags: v.getUint8(off),
    gsoType: v.getUint8(off + 1),
    hdrLen: v.getUint16(off + 2, true),
    gsoSize: v.getUint16(off + 4, true),
    csumStart: v.getUint16(off + 6, true),
    csumOffset: v.getUint16(off + 8, true),
  };
}

/** Writes the virtio_net_hdr for `o` at `off` of `v` (NEEDS_CSUM when csumStart/csumOffset are given). */
export function writeVnetHeader(v: DataView, off: number, o: GsoOptions): void {
  const csum = o.csumStart !== undefined && o.csumOffset !== undefined;
  v.setUint8(off, csum ? VNET_F_NEEDS_CSUM : 0);
  v.setUint8(off + 1, o.gsoType);
  v.setUint16(off + 2, o.hdrLen, true);
  v.setUint16(off + 4, o.gsoType === GsoType.NONE ? 0 : o.gsoSize, true);
  v.setUint16(off + 6, csum ? o.csumStart! : 0, true);
  v.setUint16(off + 8, csum ? o.csumOffset! : 0, true);
}

/** Writes an all-zero virtio_net_hdr at `off` (a plain frame: no segmentation, checksum as it is). */
export function writeEmptyVnetHeader(v: DataView, off: number): void {
  v.setUint32(off, 0, true);
  v.setUint32(off + 4, 0, true);
  v.setUint16(off + 8, 0, true);
}

/**
 * Completes a partial checksum in place, as Linux's skb_checksum_help does: the field at start+offset holds
 * the pseudo-header sum, so the one's-complement sum (RFC 1071) over frame[start..end], field included, is
 * folded and complemented into the field; a result of 0 is sent as 0xffff (the same value in one's
 * complement, and the only form UDP allows, RFC 768). Returns false when start/offset lie outside the frame.
 */
export function completeChecksum(frame: Uint8Array, start: number, offset: number): boolean {
  const field = start + offset;
  if (start >= frame.length || field + 2 > frame.length) return false;
  const c = ~onesComplementSum(frame, start, frame.length) & 0xffff;
  const out = c === 0 ? 0xffff : c;
  frame[field] = out >> 8;
  frame[field + 1] = out & 0xff;
  return true;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The folded one's-complement sum of frame[start..end) as big-endian 16-bit words (RFC 1071 §1). The bulk is
 * summed as native 32-bit words, which RFC 1071 §2 allows (the sum is independent of word size and, up to one
 * final byte swap, of byte order): four times fewer steps than byte pairs, which matters for 64 KB frames.
 */
export function onesComplementSum(frame: Uint8Array, start: number, end: number): number {
  let sum = 0;
  let i = start;
  // Odd or unaligned head, byte by byte: even positions (from start) are high bytes.
  while (i < end && ((frame.byteOffset + i) & 3) !== 0) {
    sum += ((i - start) & 1) === 0 ? frame[i]! << 8 : frame[i]!;
    i++;
  }
  const words = (end - i) >> 2;
  if (words > 0) {
    const w = new Uint32Array(frame.buffer, frame.byteOffset + i, words);
    let wide = 0; // below 2^53 for any frame: 16K words of at most 2^32 each
    for (let k = 0; k < words; k++) wide += w[k]!;
    // Native words summed: fold to 16 bits, then swap when native order and our pairing disagree (on a
    // little-endian host, when the pairing starts on an even position).
    let x = wide;
    while (x > 0xffff) x = (x % 0x10000) + Math.floor(x / 0x10000);
    const even = ((i - start) & 1) === 0;
    sum += even === LITTLE_ENDIAN ? ((x & 0xff) << 8) | (x >> 8) : x;
    i += words * 4;
  }
  for (; i < end; i++) sum += ((i - start) & 1) === 0 ? frame[i]! << 8 : frame[i]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}
