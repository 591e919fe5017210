/**
 * iperf3's UDP data streams, for the iperf3 service: the 4-byte connect exchange that stands in for TCP's
 * accept, the header every data datagram starts with, the receiver's loss, reordering and jitter accounting
 * (as iperf3's iperf_udp_recv, with jitter after RFC 3550 §6.4.1 / A.8), and a paced sender.
 *
 * A client opens a UDP stream by sending one 4-byte datagram from the socket it will use; the server answers it
 * with 4 bytes, after which datagrams from that address and port belong to the stream. Data datagrams start
 * with the send time (seconds, microseconds; 4 bytes each) and a packet count from 1 (4 bytes, or 8 with
 * `udp_counters_64bit`), all big-endian.
 */
import { Err, NetError } from '../../netstack/errors.ts';
import type { Endpoint, SocketAddress } from '../../netstack/socket.ts';

/**
 * The server's answer to a stream's connect datagram: iperf3 writes UDP_CONNECT_REPLY (0x39383736) as a native
 * int, which on the little-endian machines iperf3 runs on is the text "6789".
 */
export const UDP_CONNECT_REPLY: Uint8Array = Uint8Array.of(0x36, 0x37, 0x38, 0x39);

/** Header length of a data datagram: 12 bytes, or 16 with 64-bit packet counters. */
export function headerSize(counters64: boolean): number {
  return counters64 ? 16 : 12;
}

/** A data datagram's header fields. */
export interface UdpHeader {
  /** Send time, seconds. */
  sec: number;
  /** Send time, microseconds within the second. */
  usec: number;
  /** Packet count, from 1. */
  count: number;
}

/** Writes the header into the start of `buf` (which must hold headerSize bytes). */
export function writeHeader(buf: Uint8Array, h: UdpHeader, counters64: boolean): void {
  const v = new DataView(buf.buffer, buf.byteOffset, headerSize(counters64));
  v.setUint32(0, h.sec);
  v.setUint32(4, h.usec);
  if (counters64) v.setBigUint64(8, BigInt(h.count));
  else v.setUint32(8, h.count >>> 0);
}

/** Reads the header at the start of `buf`, or null when the datagram is shorter than one. */
export function readHeader(buf: Uint8Array, counters64: boolean): UdpHeader | null {
  if (buf.length < headerSize(counters64)) return null;
  const v = new DataView(buf.buffer, buf.byteOffset, headerSize(counters64));
  const count = counters64 ? Number(v.getBigUint64(8)) : v.getUint32(8);
  return { sec: v.getUint32(0), usec: v.getUint32(4), count };
}

/** What the receiving end of a UDP stream counted, as iperf3 reports it in the results exchange. */
export class UdpReceiver {
  bytes = 0;
  /** The highest packet count seen (iperf3 reports this as the packets received). */
  packets = 0;
  /** Packets missing from the sequence (gaps, less the late arrivals that filled them). */
  lost = 0;
  outOfOrder = 0;
  /** Smoothed transit-time variation, seconds. */
  jitter = 0;
  private prevTransit = 0;
  private seen = false;

  constructor(private readonly counters64: boolean) {}

  /** Accounts one data datagram that arrived at `arrivalMs` (any clock: only differences of transit matter). */
  receive(data: Uint8Array, arrivalMs: number): void {
    const h = readHeader(data, this.counters64);
    if (!h) return;
    this.bytes += data.length;
    if (h.count >= this.packets + 1) {
      if (h.count > this.packets + 1) this.lost += h.count - 1 - this.packets;
      this.packets = h.count;
    } else {
      this.outOfOrder++;
      // A late packet fills a gap that was counted as lost.
      if (this.lost > 0) this.lost--;
    }
    const transit = arrivalMs / 1000 - (h.sec + h.usec / 1e6);
    if (!this.seen) {
      this.seen = true;
      this.prevTransit = transit;
    }
    const d = Math.abs(transit - this.prevTransit);
    this.prevTransit = transit;
    this.jitter += (d - this.jitter) / 16;
  }
}

/**
 * The sending end of a UDP stream: datagrams of `len` bytes to `peer`, at `rateBps` bits per second measured
 * from the first call to pump() (0: as fast as the endpoint takes them, `burst` datagrams per call).
 */
export class UdpSender {
  bytes = 0;
  packets = 0;
  private readonly block: Uint8Array;
  private startMs = -1;

  constructor(
    private readonly ep: Endpoint,
    private readonly peer: SocketAddress,
    len: number,
    private readonly counters64: boolean,
    private readonly rateBps: number,
  ) {
    this.block = new Uint8Array(Math.max(len, headerSize(counters64)));
  }

  /**
   * Sends what the rate allows by `nowMs` (at most `burst` datagrams), stamping each with `wallMs`; returns the
   * datagrams sent, or an error the endpoint gave other than a full buffer.
   */
  pump(nowMs: number, wallMs: number, burst: number): number | NetError {
    if (this.startMs < 0) this.startMs = nowMs;
    // A datagram may go once everything before it fits in the time elapsed at the rate (the first goes at once).
    const allowed = this.rateBps > 0 ? ((nowMs - this.startMs) / 1000) * (this.rateBps / 8) : Infinity;
    let sent = 0;
    while (sent < burst && this.bytes <= allowed) {
      writeHeader(this.block, { sec: Math.floor(wallMs / 1000), usec: Math.floor((wallMs % 1000) * 1000), count: this.packets + 1 }, this.counters64);
      const r = this.ep.write(this.block, { to: this.peer });
      if (r === Err.WouldBlock) break;
      if (r instanceof NetError) return r;
      this.packets++;
      this.bytes += r;
      sent++;
    }
    return sent;
  }
}
