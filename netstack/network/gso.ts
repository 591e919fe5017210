/**
 * What IPv4 and IPv6 share when sending a TCP super-segment for the link to cut (TSO, Route.sendGso): the checks,
 * placing the segment behind room for the link and IP headers, and the offload fields handed to the link.
 */
import { Err, type NetError } from '../errors.ts';
import { type GsoOptions, GsoType } from '../link/endpoint.ts';
import { PROTO_TCP } from '../transport/protocol.ts';
import type { StackInternals } from './internals.ts';
import { LINK_HEADROOM, type Path } from './path.ts';

/** A super-segment ready for its IP header: `frame` holds it at LINK_HEADROOM + the IP header length. */
export interface GsoFrame {
  readonly frame: Uint8Array;
  /** Transport header and payload bytes. */
  readonly segmentLength: number;
  /** Segments the link will cut it into. */
  readonly segments: number;
}

// What gsoFrame returns, one record refilled by every call rather than one allocated per segment sent (each reply of
// a request/response exchange): its callers read it before they hand the frame to the link, never after. It keeps
// the last frame referenced until the next call (one frame for the process).
const lastFrame: { frame: Uint8Array; segmentLength: number; segments: number } = { frame: new Uint8Array(0), segmentLength: 0, segments: 0 };

/**
 * Checks a super-segment against the path (counted in `c` when refused) and places it in a frame with room for
 * the link header and `ipHeaderLength` bytes of IP header, in place when the caller left that headroom;
 * `payloadLength` bytes follow the packet elsewhere (a gather payload, Route.sendGso). The record returned is the
 * same for every call: read it before anything else may send.
 */
export function gsoFrame(
  s: StackInternals,
  c: { txNoRoute: number; txTooBig: number },
  path: Path,
  protocol: number,
  packet: Uint8Array,
  offset: number,
  thl: number,
  gsoSize: number,
  ipHeaderLength: number,
  payloadLength = 0,
): GsoFrame | NetError {
  if (s.nic(path.nicId) !== path.nic) {
    c.txNoRoute++;
    return Err.NetworkUnreachable;
  }
  const segmentLength = packet.length - offset + payloadLength;
  if (offset < 0 || segmentLength < thl) throw new RangeError('sendGso: offset outside the packet');
  if (protocol !== PROTO_TCP) return Err.InvalidArgument;
  const max = path.gsoMaxSegment();
  if (max === 0 || segmentLength > max || thl + gsoSize > path.maxPayload() || gsoSize <= 0) {
    c.txTooBig++;
    return Err.MessageTooLong;
  }
  const payload = segmentLength - thl;
  const segments = payload > gsoSize ? Math.ceil(payload / gsoSize) : 1;
  const need = LINK_HEADROOM + ipHeaderLength;
  let frame: Uint8Array;
  if (offset >= need) {
    // The packet itself when it has just the headroom (the link's own send slot, then queued without a copy).
    frame = offset === need ? packet : packet.subarray(offset - need);
  } else {
    frame = new Uint8Array(need + packet.length - offset);
    frame.set(packet.subarray(offset), need);
  }
  const g = lastFrame;
  g.frame = frame;
  g.segmentLength = segmentLength;
  g.segments = segments;
  return g;
}

// The offload fields of a lone segment (a partial checksum only), one frozen record per header layout: every data
// segment of a request/response exchange goes this way, and a record of its own per segment was garbage per answer.
const partialOnly = new Map<number, GsoOptions>();

/**
 * The offload fields for a super-frame whose TCP header starts at `tcpStart`: cut when it spans several segments
 * (`tcpType` TCPV4 or TCPV6), with the ECN flag when CWR is set, since only the first segment may keep CWR
 * (RFC 3168 §6.1.2); the checksum partial from the TCP header on. A lone segment is not cut (gsoSize 0).
 */
export function gsoOptions(g: GsoFrame, tcpStart: number, thl: number, gsoSize: number, tcpType: number): GsoOptions {
  if (g.segments === 1) {
    const key = tcpStart * 256 + thl;
    let o = partialOnly.get(key);
    if (o === undefined) {
      o = Object.freeze({ gsoType: GsoType.NONE, gsoSize: 0, hdrLen: tcpStart + thl, csumStart: tcpStart, csumOffset: 16 });
      partialOnly.set(key, o);
    }
    return o;
  }
  const cwr = (g.frame[tcpStart + 13]! & 0x80) !== 0;
  return {
    gsoType: g.segments > 1 ? tcpType | (cwr ? GsoType.ECN : 0) : GsoType.NONE,
    gsoSize,
    hdrLen: tcpStart + thl,
    csumStart: tcpStart,
    csumOffset: 16,
  };
}
