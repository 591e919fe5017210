/**
 * A pcapng writer (draft-ietf-opsawg-pcapng): a Section Header Block, one Interface Description Block for an
 * Ethernet interface, then one Enhanced Packet Block per frame; little-endian, like the host we run on.
 */

import { LINKTYPE_ETHERNET, splitTime, type PacketRecorder, type PcapOptions } from './pcap.ts';

const SHB = 0x0a0d0d0a;
const IDB = 0x00000001;
const EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const OPT_END = 0;
const OPT_IF_NAME = 2;
const OPT_IF_TSRESOL = 9;

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Writes a pcapng stream to a sink, one `Uint8Array` per block, which the sink may keep. */
export class PcapngWriter implements PacketRecorder {
  /** Longest part of a frame kept. */
  readonly snaplen: number;
  private readonly fracPerSec: number;

  /** Writes the section header and the interface description to `sink` at once. */
  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    opts: PcapOptions & { ifName?: string } = {},
  ) {
    this.snaplen = opts.snaplen ?? 262144;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1) throw new RangeError(`PcapngWriter: bad snaplen`);
    this.fracPerSec = opts.nanosecond ? 1e9 : 1e6;

    // §4.1: the section length -1 says "not given", so the stream can be written as it goes.
    const shb = new Uint8Array(28);
    const s = new DataView(shb.buffer);
    s.setUint32(0, SHB, true);
    s.setUint32(4, 28, true);
    s.setUint32(8, BYTE_ORDER_MAGIC, true);
    s.setUint16(12, 1, true);
    s.setUint16(14, 0, true);
    s.setInt32(16, -1, true);
    s.setInt32(20, -1, true);
    s.setUint32(24, 28, true);
    sink(shb);

    // §4.2, with if_tsresol (§4.2 option 9) as a power of ten: 6 for µs, 9 for ns.
    const name = new TextEncoder().encode(opts.ifName ?? 'tsvisor');
    const opt = 4 + pad4(name.length) + 4 + 4 + 4;
    const len = 20 + opt;
    const idb = new Uint8Array(len);
    const d = new DataView(idb.buffer);
    d.setUint32(0, IDB, true);
    d.setUint32(4, len, true);
    d.setUint16(8, LINKTYPE_ETHERNET, true);
    d.setUint32(12, this.snaplen, true);
    let o = 16;
    d.setUint16(o, OPT_IF_NAME, true);
    d.setUint16(o + 2, name.length, true);
    idb.set(name, o + 4);
    o += 4 + pad4(name.length);
    d.setUint16(o, OPT_IF_TSRESOL, true);
    d.setUint16(o + 2, 1, true);
    idb[o + 4] = opts.nanosecond ? 9 : 6;
    o += 8;
    d.setUint16(o, OPT_END, true);
    d.setUint16(o + 2, 0, true);
    d.setUint32(len - 4, len, true);
    sink(idb);
  }

  /** Writes one Enhanced Packet Block (§4.3): `frame` truncated to snaplen, stamped `timeMs`. */
  write(timeMs: number, frame: Uint8Array): void {
    const incl = Math.min(frame.length, this.snaplen);
    const len = 28 + pad4(incl) + 4;
    const b = new Uint8Array(len);
    const v = new DataView(b.buffer);
    const [sec, frac] = splitTime(timeMs, this.fracPerSec);
    // A 64-bit count of tsresol units, split into high and low words; BigInt because ns since the epoch
    // exceed 2^53.
    const ticks = BigInt(sec) * BigInt(this.fracPerSec) + BigInt(frac);
    v.setUint32(0, EPB, true);
    v.setUint32(4, len, true);
    v.setUint32(8, 0, true);
    v.setUint32(12, Number(ticks >> 32n), true);
    v.setUint32(16, Number(ticks & 0xffffffffn), true);
    v.setUint32(20, incl, true);
    v.setUint32(24, frame.length, true);
    b.set(frame.subarray(0, incl), 28);
    v.setUint32(len - 4, len, true);
    this.sink(b);
  }
}
