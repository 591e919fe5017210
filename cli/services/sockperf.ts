/**
 * The `sockperf` service: the server half of sockperf's ping-pong test over UDP and TCP, so the stock
 * `sockperf ping-pong` client measures request/response latency through the netstack. Every message starts with a
 * 14-byte header, big-endian: sequence number (8 bytes), flags (2), total message length including the header (4).
 * Flags: 1 = sent by a client, 2 = pong requested, 4 = warm-up. The server answers a client's pong request by
 * sending the whole message back with the client flag cleared (the client counts only replies so marked), and
 * ignores warm-up messages and messages without the client flag. Over UDP a message is one datagram; over TCP the
 * length field frames the byte stream.
 */
import { IPV6_ANY } from '../../netstack/addr.ts';
import { coalesced } from '../../netstack/adapter/common.ts';
import { Err, NetError } from '../../netstack/errors.ts';
import type { Endpoint } from '../../netstack/socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp } from '../../netstack/waiter.ts';
import { bindDatagram, serveDatagrams, type Service, type SocketFactory } from './service.ts';

/** Size of the message header. */
export const HEADER_SIZE = 14;
/** Flag: the message comes from a client. */
export const FLAG_CLIENT = 1;
/** Flag: the client asks for a reply. */
export const FLAG_PONG = 2;
/** Flag: a warm-up message, never answered. */
export const FLAG_WARMUP = 4;
/** The largest message sockperf sends (its MAX_PAYLOAD_SIZE is 65506 plus the header); longer ones end a TCP stream. */
export const MAX_MESSAGE = 65536;

/** A parsed message header. */
export interface SockperfHeader {
  sequence: bigint;
  flags: number;
  length: number;
}

/** Reads the header at the start of `msg` (which must hold at least HEADER_SIZE bytes). */
export function parseHeader(msg: Uint8Array): SockperfHeader {
  const v = new DataView(msg.buffer, msg.byteOffset, HEADER_SIZE);
  return { sequence: v.getBigUint64(0), flags: v.getUint16(8), length: v.getUint32(10) };
}

/** Builds a message of `length` bytes (zero payload) with the given header fields, as a client sends it. */
export function buildMessage(sequence: bigint, flags: number, length: number): Uint8Array {
  const msg = new Uint8Array(Math.max(length, HEADER_SIZE));
  const v = new DataView(msg.buffer);
  v.setBigUint64(0, sequence);
  v.setUint16(8, flags);
  v.setUint32(10, length);
  return msg;
}

/**
 * The reply to one complete message, or null when sockperf's server stays silent: a reply only for a client's
 * pong request that is not warm-up. The reply is the message itself with the client flag cleared (done in place).
 */
export function answer(msg: Uint8Array): Uint8Array | null {
  if (msg.length < HEADER_SIZE) return null;
  // Byte arithmetic rather than a DataView: this runs once per round trip of the latency test.
  const flags = (msg[8]! << 8) | msg[9]!;
  if (!(flags & FLAG_CLIENT) || flags & FLAG_WARMUP || !(flags & FLAG_PONG)) return null;
  const out = flags & ~FLAG_CLIENT;
  msg[8] = out >> 8;
  msg[9] = out & 0xff;
  return msg;
}

/** Splits a TCP byte stream into messages by their length field and answers each. */
export class StreamFramer {
  private pending: Uint8Array = new Uint8Array(0);
  /** Complete messages seen. */
  messages = 0;

  /**
   * Consumes `data`; returns the replies due (in order), or 'error' for a length field outside
   * [HEADER_SIZE, MAX_MESSAGE] (sockperf's server drops such a connection).
   */
  push(data: Uint8Array): Uint8Array[] | 'error' {
    let buf = data;
    if (this.pending.length) {
      buf = new Uint8Array(this.pending.length + data.length);
      buf.set(this.pending);
      buf.set(data, this.pending.length);
    }
    const replies: Uint8Array[] = [];
    let off = 0;
    while (buf.length - off >= HEADER_SIZE) {
      const len = ((buf[off + 10]! << 24) | (buf[off + 11]! << 16) | (buf[off + 12]! << 8) | buf[off + 13]!) >>> 0;
      if (len < HEADER_SIZE || len > MAX_MESSAGE) return 'error';
      if (buf.length - off < len) break;
      // A copy, so replies never alias the caller's buffer or each other.
      const r = answer(buf.slice(off, off + len));
      this.messages++;
      if (r) replies.push(r);
      off += len;
    }
    this.pending = off === buf.length ? new Uint8Array(0) : buf.slice(off);
    return replies;
  }

  /** Bytes held for an incomplete message. */
  get buffered(): number {
    return this.pending.length;
  }
}

/** Counts of what the sockperf service has done. */
export interface SockperfStats {
  /** Messages received (UDP and TCP). */
  messages: number;
  /** Replies sent. */
  replies: number;
  /** TCP connections accepted. */
  connections: number;
}

/** sockperf over UDP on `port` (default 11111). */
export function udpSockperf(sockets: SocketFactory, port = 11111): (Service & { stats: SockperfStats }) | NetError {
  const eps = bindDatagram(sockets, port);
  if (eps instanceof NetError) return eps;
  const stats: SockperfStats = { messages: 0, replies: 0, connections: 0 };
  const stops = eps.map((ep) =>
    serveDatagrams(ep, (data, from) => {
      stats.messages++;
      const r = answer(data);
      if (r && typeof ep.write(r, { to: from }) === 'number') stats.replies++;
    }),
  );
  return {
    name: 'sockperf',
    port,
    stats,
    close() {
      for (const s of stops) s();
      for (const ep of eps) ep.close();
    },
  };
}

/** sockperf over TCP on `port` (default 11111): every connection framed and answered in order. */
export function tcpSockperf(sockets: SocketFactory, port = 11111): (Service & { stats: SockperfStats }) | NetError {
  const listener = sockets(6, 'stream');
  if (listener instanceof NetError) return listener;
  listener.setOption('SO_REUSEADDR', 1);
  const err = listener.bind({ address: IPV6_ANY, port }) ?? listener.listen(1024);
  if (err) {
    listener.close();
    return err;
  }
  const stats: SockperfStats = { messages: 0, replies: 0, connections: 0 };
  const open = new Set<() => void>();

  const start = (ep: Endpoint) => {
    stats.connections++;
    ep.setOption('TCP_NODELAY', 1);
    const framer = new StreamFramer();
    const out: Uint8Array[] = [];
    let unsubscribe = () => {};
    const finish = () => {
      if (!open.delete(finish)) return;
      unsubscribe();
      ep.close();
    };
    /** Writes queued replies; false when the connection failed. */
    const flush = (): boolean => {
      while (out.length) {
        const n = ep.write(out[0]!);
        if (n === Err.WouldBlock) return true;
        if (n instanceof NetError) return false;
        if (n < out[0]!.length) {
          out[0] = out[0]!.subarray(n);
          return true;
        }
        out.shift();
        stats.replies++;
      }
      return true;
    };
    const step = coalesced(() => {
      if (!open.has(finish)) return;
      if (!flush()) return finish();
      // Read only while replies drain, so a client that never reads cannot grow our queue.
      while (out.length === 0) {
        const r = ep.read({ maxBytes: 65536 });
        if (r === Err.WouldBlock) return;
        if (r instanceof NetError || r.data.length === 0) return finish();
        const before = framer.messages;
        const replies = framer.push(r.data);
        if (replies === 'error') return finish();
        stats.messages += framer.messages - before;
        out.push(...replies);
        if (!flush()) return finish();
      }
    });
    open.add(finish);
    unsubscribe = ep.waiter.subscribe(EventIn | EventOut | EventErr | EventHUp | EventRdHUp, step);
    step();
  };

  const accept = coalesced(() => {
    for (;;) {
      const r = listener.accept();
      if (r instanceof NetError) return;
      start(r.endpoint);
    }
  });
  const stopAccepting = listener.waiter.subscribe(EventIn, accept);
  accept();
  return {
    name: 'sockperf',
    port,
    stats,
    close() {
      stopAccepting();
      listener.close();
      for (const f of [...open]) f();
    },
  };
}
