/**
 * A classic libpcap file writer (the format of tcpdump -w: a 24-byte global header, then a 16-byte record
 * header before each frame), for Ethernet frames. It only produces bytes: the sink that stores them lives
 * with the caller, since the stack does no I/O.
 */

/** LINKTYPE_ETHERNET: IEEE 802.3 frames, no preamble and no FCS (tcpdump.org link-layer header types). */
export const LINKTYPE_ETHERNET = 1;

const MAGIC_MICRO = 0xa1b2c3d4;
const MAGIC_NANO = 0xa1b23c4d;

/** Something that records one frame at a time with its time; both pcap writers implement it. */
export interface PacketRecorder {
  /** Records `frame`, captured at `timeMs` (milliseconds, fractions allowed). */
  write(timeMs: number, frame: Uint8Array): void;
}

/** Options of PcapWriter and PcapngWriter. */
export interface PcapOptions {
  /** Longest part of a frame to keep; 262144 by default (tcpdump's). */
  snaplen?: number;
  /** Record times with nanosecond instead of microsecond resolution. */
  nanosecond?: boolean;
}

/** Splits a time in ms into whole seconds and a fraction in units of 1/fracPerSec s, carrying rounding up. */
export function splitTime(timeMs: number, fracPerSec: number): [sec: number, frac: number] {
  const t = Math.max(0, timeMs);
  let sec = Math.floor(t / 1000);
  let frac = Math.round((t - sec * 1000) * (fracPerSec / 1000));
  if (frac >= fracPerSec) {
    sec += 1;
    frac -= fracPerSec;
  }
  return [sec, frac];
}

/** Writes a classic pcap stream (little-endian) to a sink, one `Uint8Array` per call, which the sink may keep. */
export class PcapWriter implements PacketRecorder {
  /** Longest part of a frame kept. */
  readonly snaplen: number;
  private readonly fracPerSec: number;

  /** Writes the global header to `sink` at once. */
  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    opts: PcapOptions = {},
  ) {
    this.snaplen = opts.snaplen ?? 262144;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1) throw new RangeError(`PcapWriter: bad snaplen`);
    this.fracPerSec = opts.nanosecond ? 1e9 : 1e6;
    const h = new Uint8Array(24);
    const v = new DataView(h.buffer);
    v.setUint32(0, opts.nanosecond ? MAGIC_NANO : MAGIC_MICRO, true);
    v.setUint16(4, 2, true); // version 2.4
    v.setUint16(6, 4, true);
    // thiszone and sigfigs stay 0: times are UTC and their accuracy is not claimed.
    v.setUint32(16, this.snaplen, true);
    v.setUint32(20, LINKTYPE_ETHERNET, true);
    sink(h);
  }

  /** Writes one record: `frame` truncated to snaplen, stamped `timeMs`. */
  write(timeMs: number, frame: Uint8Array): void {
    const incl = Math.min(frame.length, this.snaplen);
    const rec = new Uint8Array(16 + incl);
    const v = new DataView(rec.buffer);
    const [sec, frac] = splitTime(timeMs, this.fracPerSec);
    v.setUint32(0, sec, true);
    v.setUint32(4, frac, true);
    v.setUint32(8, incl, true);
    v.setUint32(12, frame.length, true);
    rec.set(frame.subarray(0, incl), 16);
    this.sink(rec);
  }
}
