/**
 * Building and sending segments: one packet of headroom + header + payload per segment, in the link's own send
 * memory when the route offers it (Route.packetBuffer, no copy on the way out) or else from wire/alloc.ts, the
 * header emitted in place, the payload copied once from the send buffer (or given), and the
 * pseudo-header checksum filled (RFC 9293 §3.1). A large data segment whose link completes checksums and gathers
 * (Route.gathers) is not copied at all: its header is built alone and the link points at the send buffer's bytes. Also the stateless replies of RFC 9293 §3.10.7.1 (RST for
 * segments to no connection).
 */
import type { Address } from '../../addr.ts';
import type { NetError } from '../../errors.ts';
import type { GatherPayload } from '../../link/endpoint.ts';
import { allocPacket } from '../../wire/alloc.ts';
import { finishChecksum, foldChecksum, pseudoHeaderSum, sum16 } from '../../wire/checksum.ts';
import * as seq from '../../seqnum.ts';
import {
  emitTcpHeader,
  emitTcpHeaderFast,
  fillTcpChecksum,
  setTcpChecksumField,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type TcpHeaderFields,
  type TcpOptions,
  type TcpRepr,
  tcpHeaderLengthFor,
} from '../../wire/tcp.ts';
import { type NetworkLayer, PROTO_TCP, type Route, type SendOptions } from '../protocol.ts';
import type { ByteQueue } from './buffer.ts';

/**
 * A packet of `length` bytes for one segment on `route`, its first `headers` bytes (headroom and TCP header)
 * zero: link memory is handed out as it was left, and the emitters rely on zero for the fields they skip (the
 * checksum, summed over the header before it is set, and the urgent pointer).
 */
function packetFor(route: Route, length: number, headers: number): Uint8Array {
  if (route.packetBuffer === undefined) return allocPacket(length);
  const pkt = route.packetBuffer(length);
  pkt.fill(0, 0, headers);
  return pkt;
}

/**
 * What never changes between a connection's segments on one route: ports and the pseudo-header's address and
 * protocol words (RFC 9293 §3.1), summed once instead of per segment.
 */
export class HeaderTemplate {
  /** Partial sum of the pseudo-header without its length. */
  readonly pseudo: number;
  /**
   * The route's link completes checksums (tx checksum offload with GSO, as a veth with PACKET_VNET_HDR): data
   * segments leave with a partial checksum as Linux's own do (CHECKSUM_PARTIAL), and no payload byte is summed.
   */
  readonly csumOffload: boolean;
  /** Those segments may leave as headers plus views of the send buffer (Route.gathers): the link points at them. */
  readonly gathers: boolean;

  constructor(
    readonly route: Route,
    readonly srcPort: number,
    readonly dstPort: number,
  ) {
    this.pseudo = pseudoHeaderSum(route.localAddress, route.remoteAddress, PROTO_TCP, 0);
    this.csumOffload = route.sendGso !== undefined && (route.gsoMaxSegment?.() ?? 0) > 0;
    this.gathers = this.csumOffload && route.gathers?.() === true;
  }
}

// Fewest payload bytes sent as views of the send buffer rather than copied behind the header: below this the
// copy costs less than finding the views' memory and filling an iovec per view.
const GATHER_MIN = 2048;
// Most views one segment's payload is gathered from (send-buffer chunks are 2 KB to 256 KB); more are copied.
const GATHER_MAX = 8;
// The record sendFast hands the route, refilled per segment (the link takes what it needs before returning).
const NO_OWNER = { hold(): void {}, release(): void {} };
const gather: GatherPayload = { pieces: [], count: 0, length: 0, owner: NO_OWNER };
const EMPTY = new Uint8Array(0);

/**
 * Builds and sends a segment whose only option is the timestamp pair (or none, when `ts` is false), with `len`
 * payload bytes copied from `src` at `srcOff`. With `gsoSize` > 0 the segment is a TSO super-segment for
 * `route.sendGso`: its checksum field holds the folded pseudo-header sum over its whole length and the payload is
 * not summed (the link completes each segment's checksum). A data segment on a route whose link completes
 * checksums goes the same way as a super-segment of one (a request's answer is not summed byte by byte: issue 15);
 * a bare ACK's 32 bytes are summed here, which costs less than the offload's bookkeeping.
 */
export function sendFast(
  t: HeaderTemplate,
  s: number,
  ack: number,
  flags: number,
  window: number,
  ts: boolean,
  tsVal: number,
  tsEcr: number,
  len: number,
  src: ByteQueue | null,
  srcOff: number,
  gsoSize = 0,
  ecn = 0,
): NetError | undefined {
  const route = t.route;
  const hl = ts ? 32 : 20;
  const off = route.headroom;
  const total = hl + len;
  // A large payload on a link that gathers: its views in the send buffer (in `gather`), which the link points at
  // instead of our copying them behind the header; 0 when copied.
  const views = t.gathers && len >= GATHER_MIN && src !== null ? src.gather(srcOff, len, gather.pieces, GATHER_MAX) : 0;
  const pkt = packetFor(route, off + (views > 0 ? hl : total), off + hl);
  emitTcpHeaderFast(pkt, off, t.srcPort, t.dstPort, s, ack, flags, window, ts, tsVal, tsEcr);
  if (len > 0 && views === 0) {
    // Never stale link memory on the wire, even if the buffer holds fewer bytes than asked for.
    const got = src ? src.copyOut(srcOff, len, pkt, off + hl) : 0;
    if (got < len) pkt.fill(0, off + hl + got, off + total);
  }
  const pseudo = t.pseudo + (total >>> 16) + (total & 0xffff);
  // (A gathering link completes checksums: t.gathers implies t.csumOffload, so views are sent here.)
  if (route.sendGso !== undefined && (gsoSize > 0 || (len > 0 && t.csumOffload))) {
    setTcpChecksumField(pkt, off, foldChecksum(pseudo));
    const segment = gsoSize > 0 ? gsoSize : len;
    if (views > 0) return sendGathered(route, pkt, off, hl, segment, ecn, src!, views, len);
    return route.sendGso(PROTO_TCP, pkt, off, hl, segment, ipOptions(ecn));
  }
  setTcpChecksumField(pkt, off, finishChecksum(sum16(off === 0 ? pkt : pkt.subarray(off), pseudo)));
  return route.send(PROTO_TCP, pkt, off, ipOptions(ecn));
}

/**
 * sendFast's super-segment of the header in `pkt` and `len` payload bytes that are `n` views of `src` (in
 * `gather`): the link points its send at the views, which `src` keeps unchanged while it does.
 */
function sendGathered(
  route: Route,
  pkt: Uint8Array,
  off: number,
  hl: number,
  segment: number,
  ecn: number,
  src: ByteQueue,
  n: number,
  len: number,
): NetError | undefined {
  gather.count = n;
  gather.length = len;
  gather.owner = src;
  const err = route.sendGso!(PROTO_TCP, pkt, off, hl, segment, ipOptions(ecn), gather);
  // The record outlives the call: it keeps neither the views nor the queue alive.
  gather.pieces.fill(EMPTY, 0, n);
  gather.count = 0;
  gather.owner = NO_OWNER;
  return err;
}

// One options object per TOS byte and TTL, made once when first used, so that marking a segment allocates nothing.
const IP_OPTIONS = new Map<number, SendOptions>();

/**
 * Send options from `bits` (TcpEndpoint.ipBits with the segment's ECN codepoint): the TOS/traffic-class byte in bits
 * 0-7, the socket's IP_TOS or IPV6_TCLASS (DSCP bits) with the ECN codepoint (RFC 3168 §5) in its low two bits, and
 * IP_TTL or IPV6_UNICAST_HOPS in bits 8-15 (0: the route's default); none when both are 0.
 */
function ipOptions(bits: number): SendOptions | undefined {
  const v = bits & 0xffff;
  if (v === 0) return undefined;
  let o = IP_OPTIONS.get(v);
  if (o === undefined) {
    const ttl = v >> 8;
    o = ttl === 0 ? { tos: v & 0xff } : { tos: v & 0xff, ttl };
    IP_OPTIONS.set(v, o);
  }
  return o;
}

/** The sequence space a received segment occupies: payload plus one for SYN and one for FIN (RFC 9293 §3.4). */
export function segmentLength(r: TcpRepr): number {
  return r.payload.length + (r.flags & TCP_SYN ? 1 : 0) + (r.flags & TCP_FIN ? 1 : 0);
}

/** Writes payload bytes into a packet being built. */
export type PayloadWriter = (buf: Uint8Array, at: number, len: number) => void;

/**
 * Builds one segment from header fields, options and `len` payload bytes (produced by `write`, or taken from
 * `payload`) and sends it on `route`.
 */
export function sendSegment(
  route: Route,
  h: TcpHeaderFields,
  options: TcpOptions,
  len: number,
  write?: PayloadWriter,
  payload?: Uint8Array,
  ecn = 0,
): NetError | undefined {
  return route.send(PROTO_TCP, buildSegment(route, h, options, len, write, payload), route.headroom, ipOptions(ecn));
}

/** IPv4 identification 0, for replies that belong to no connection. */
const NO_CONNECTION: SendOptions = { identification: 0 };

/**
 * Sends a header-only segment that answers for no connection (a SYN cookie's SYN-ACK, a RST to a segment no
 * connection owns). Over IPv4 it leaves with DF and identification 0, as Linux sends these (ip_build_and_send_pkt
 * and the per-CPU control socket's replies): there is no connection whose counter it could take, and drawing
 * from the per-path counters cost a keyed hash per flood SYN.
 */
export function sendReply(route: Route, h: TcpHeaderFields, options: TcpOptions): NetError | undefined {
  return route.send(PROTO_TCP, buildSegment(route, h, options, 0), route.headroom, NO_CONNECTION);
}

/** The packet of one segment, header and `len` payload bytes at the route's headroom, its checksum filled. */
function buildSegment(route: Route, h: TcpHeaderFields, options: TcpOptions, len: number, write?: PayloadWriter, payload?: Uint8Array): Uint8Array {
  const hl = tcpHeaderLengthFor(options);
  const off = route.headroom;
  const pkt = packetFor(route, off + hl + len, off + hl);
  emitTcpHeader(h, options, hl, pkt, off);
  if (len > 0) {
    if (write) write(pkt, off + hl, len);
    else {
      const got = payload ? Math.min(len, payload.length) : 0;
      if (got > 0) pkt.set(payload!.subarray(0, got), off + hl);
      if (got < len) pkt.fill(0, off + hl + got, off + hl + len);
    }
  }
  fillTcpChecksum(pkt.subarray(off), route.localAddress, route.remoteAddress);
  return pkt;
}

/**
 * Answers a segment that matches no connection (RFC 9293 §3.10.7.1): an ACK gets <SEQ=SEG.ACK><CTL=RST>,
 * anything else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; a RST gets nothing. Returns whether a RST was sent.
 */
export function sendResetFor(net: NetworkLayer, local: Address, remote: Address, r: TcpRepr, nicId?: number): boolean {
  if (r.flags & TCP_RST) return false;
  const route = net.findRoute(remote, local, nicId);
  if (!(route && 'send' in route)) return false;
  const h = { srcPort: r.dstPort, dstPort: r.srcPort, window: 0 };
  const err =
    r.flags & TCP_ACK
      ? sendReply(route, { ...h, seq: r.ack, ack: 0, flags: TCP_RST }, {})
      : sendReply(route, { ...h, seq: 0, ack: seq.add(r.seq, segmentLength(r)), flags: TCP_RST | TCP_ACK }, {});
  return err === undefined;
}
