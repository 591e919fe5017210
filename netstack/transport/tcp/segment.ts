/**
 * Building and sending segments: one range of packet memory (wire/alloc.ts) of headroom + header + payload per
 * segment, the header emitted in place, the payload copied once from the send buffer (or given), and the
 * pseudo-header checksum filled (RFC 9293 §3.1). Also the stateless replies of RFC 9293 §3.10.7.1 (RST for
 * segments to no connection).
 */
import type { Address } from '../../addr.ts';
import type { NetError } from '../../errors.ts';
import { allocPacket } from '../../wire/alloc.ts';
import * as seq from '../../seqnum.ts';
import {
  emitTcpHeader,
  fillTcpChecksum,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type TcpHeaderFields,
  type TcpOptions,
  type TcpRepr,
  tcpHeaderLengthFor,
} from '../../wire/tcp.ts';
import { type NetworkLayer, PROTO_TCP, type Route } from '../protocol.ts';

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
): NetError | undefined {
  const hl = tcpHeaderLengthFor(options);
  const off = route.headroom;
  const pkt = allocPacket(off + hl + len);
  emitTcpHeader(h, options, hl, pkt, off);
  if (len > 0) {
    if (write) write(pkt, off + hl, len);
    else if (payload) pkt.set(payload.subarray(0, len), off + hl);
  }
  fillTcpChecksum(pkt.subarray(off), route.localAddress, route.remoteAddress);
  return route.send(PROTO_TCP, pkt, off);
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
      ? sendSegment(route, { ...h, seq: r.ack, ack: 0, flags: TCP_RST }, {}, 0)
      : sendSegment(route, { ...h, seq: 0, ack: seq.add(r.seq, segmentLength(r)), flags: TCP_RST | TCP_ACK }, {}, 0);
  return err === undefined;
}
