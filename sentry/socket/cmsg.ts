/**
 * The control messages of a datagram receive, in Linux's 64-bit layout (struct cmsghdr: size_t cmsg_len, int
 * level, int type, data padded to CMSG_ALIGN 8): which ones a socket's options ask for, built from what the
 * netstack kept of each datagram, in the order Linux writes them (sock_recv_cmsgs' timestamp first, then
 * ip_cmsg_recv_offset's IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR, or ip6_datagram_recv_ctl's IPV6_PKTINFO,
 * IPV6_HOPLIMIT, IPV6_TCLASS, the RFC 2292 IPV6_2292PKTINFO and IPV6_2292HOPLIMIT, IPV6_ORIGDSTADDR), and laid
 * into the program's buffer as put_cmsg does; and the IP-level control messages of a datagram send, read as
 * ip_cmsg_send and ip6_datagram_send_ctl read them.
 */
import type { Address } from '../../netstack/addr.ts';
import { isError } from '../../netstack/errors.ts';
import type { Endpoint, IpSendOptions, ReadResult } from '../../netstack/socket.ts';
import type { DatagramReadResult } from '../../netstack/transport/udp/datagram.ts';
import { LINUX as L, encodeSockaddr } from './abi.ts';

/** sizeof(struct cmsghdr) on 64-bit Linux. */
export const CMSG_HDR = 16;

/** CMSG_ALIGN: lengths round up to a multiple of sizeof(size_t). */
export function cmsgAlign(n: number): number {
  return (n + 7) & ~7;
}

/** One control message: level, type and its data (the header is added when it is laid out). */
export interface Cmsg {
  readonly level: number;
  readonly type: number;
  readonly data: Uint8Array;
}

/** What the netstack kept of one received datagram for control messages: those fields of its read result. */
export type DatagramControl = Pick<DatagramReadResult, 'localAddress' | 'nicId' | 'specDst' | 'tos' | 'ttl' | 'arrival'>;

/** The control fields of a datagram read, or undefined when the endpoint kept none (a stream). */
export function datagramControl(r: ReadResult): DatagramControl | undefined {
  const d = r as Partial<DatagramControl>;
  if (d.localAddress === undefined || d.arrival === undefined || d.specDst === undefined) return undefined;
  return d as DatagramControl;
}

/** Bits of the receive control messages a socket asked for. */
export const Want = {
  PKTINFO: 1,
  TTL: 2,
  TOS: 4,
  ORIGDST: 8,
  PKTINFO6: 16,
  HOPLIMIT6: 32,
  TCLASS6: 64,
  ORIGDST6: 128,
  STAMP: 256,
  STAMP_NS: 512,
  STAMP_NEW: 1024,
  PKTINFO2292: 2048,
  HOPLIMIT2292: 4096,
} as const;

const FLAG_OPTIONS: readonly [string, number][] = [
  ['IP_PKTINFO', Want.PKTINFO], ['IP_RECVTTL', Want.TTL], ['IP_RECVTOS', Want.TOS], ['IP_RECVORIGDSTADDR', Want.ORIGDST],
  ['IPV6_RECVPKTINFO', Want.PKTINFO6], ['IPV6_RECVHOPLIMIT', Want.HOPLIMIT6], ['IPV6_RECVTCLASS', Want.TCLASS6],
  ['IPV6_RECVORIGDSTADDR', Want.ORIGDST6], ['IPV6_2292PKTINFO', Want.PKTINFO2292], ['IPV6_2292HOPLIMIT', Want.HOPLIMIT2292],
];

/** The control messages `ep`'s options ask for, as Want bits (0 for none, or for an endpoint without them). */
export function wantedControl(ep: Endpoint): number {
  if (ep.type === 'stream') return 0;
  const on = (name: string) => {
    const v = ep.getOption(name);
    return !isError(v) && Number(v) !== 0;
  };
  let w = 0;
  for (const [name, bit] of FLAG_OPTIONS) if (on(name)) w |= bit;
  // getsockopt says SO_TIMESTAMP_NEW for either _NEW unit, and SO_TIMESTAMPNS(_NEW) for nanoseconds.
  if (on('SO_TIMESTAMP_NEW')) w |= Want.STAMP | Want.STAMP_NEW | (on('SO_TIMESTAMPNS_NEW') ? Want.STAMP_NS : 0);
  else if (on('SO_TIMESTAMPNS')) w |= Want.STAMP | Want.STAMP_NS;
  else if (on('SO_TIMESTAMP')) w |= Want.STAMP;
  return w;
}

/** What building the messages needs to know of the socket besides its wants. */
export interface ControlContext {
  /** AF_INET or AF_INET6. */
  readonly domain: number;
  /** The socket's port (IP_ORIGDSTADDR's sin_port); undefined for sockets without ports. */
  readonly port: number | undefined;
  /** CLOCK_REALTIME (ms) of an instant on the stack's clock. */
  wallTime(stackMs: number): number;
}

function int32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

function isMapped(a: Address): boolean {
  if (a.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

/** struct in6_pktinfo: the destination (v4-mapped for an IPv4 datagram), then the interface index. */
function in6Pktinfo(d: DatagramControl): Uint8Array {
  const data = new Uint8Array(20);
  if (d.localAddress.length === 16) data.set(d.localAddress);
  else {
    data[10] = data[11] = 0xff;
    data.set(d.localAddress, 12);
  }
  new DataView(data.buffer).setInt32(16, d.nicId, true);
  return data;
}

/**
 * The receive timestamp (SCM_TIMESTAMP, SCM_TIMESTAMPNS or their _NEW types by the Want bits `w`): struct
 * timeval or struct timespec, both two 64-bit words on 64-bit Linux.
 */
export function stamp(wallMs: number, w: number): Cmsg {
  const ns = (w & Want.STAMP_NS) !== 0;
  const sec = Math.floor(wallMs / 1000);
  const nsec = Math.min(999_999_999, Math.max(0, Math.round((wallMs - sec * 1000) * 1e6)));
  const data = new Uint8Array(16);
  const v = new DataView(data.buffer);
  v.setBigInt64(0, BigInt(sec), true);
  v.setBigInt64(8, BigInt(ns ? nsec : Math.floor(nsec / 1000)), true);
  const type = w & Want.STAMP_NEW ? (ns ? L.SCM_TIMESTAMPNS_NEW : L.SCM_TIMESTAMP_NEW) : ns ? L.SCM_TIMESTAMPNS : L.SCM_TIMESTAMP;
  return { level: L.SOL_SOCKET, type, data };
}

/** The control messages of one received datagram for a socket that wants `w`, in Linux's order. */
export function receiveControl(w: number, ctx: ControlContext, d: DatagramControl): Cmsg[] {
  const out: Cmsg[] = [];
  if (w & Want.STAMP) out.push(stamp(ctx.wallTime(d.arrival), w));
  const v6 = ctx.domain === L.AF_INET6;
  const dst4 = d.localAddress.length === 4 ? d.localAddress : isMapped(d.localAddress) ? d.localAddress.subarray(12) : undefined;
  if (v6 && w & Want.PKTINFO6) out.push({ level: L.SOL_IPV6, type: L.IPV6_PKTINFO, data: in6Pktinfo(d) });
  if (dst4) {
    // An IPv4 datagram, on an IPv4 socket or v4-mapped on an IPv6 one: the IP_* messages (ip_cmsg_recv_offset).
    if (w & Want.PKTINFO) {
      // struct in_pktinfo: ipi_ifindex, ipi_spec_dst, ipi_addr.
      const data = new Uint8Array(12);
      new DataView(data.buffer).setInt32(0, d.nicId, true);
      data.set(d.specDst.length === 4 ? d.specDst : d.specDst.subarray(12), 4);
      data.set(dst4, 8);
      out.push({ level: L.SOL_IP, type: L.IP_PKTINFO, data });
    }
    if (w & Want.TTL) out.push({ level: L.SOL_IP, type: L.IP_TTL, data: int32(d.ttl) });
    // IP_TOS is the one byte of the header.
    if (w & Want.TOS) out.push({ level: L.SOL_IP, type: L.IP_TOS, data: new Uint8Array([d.tos & 0xff]) });
    if (w & Want.ORIGDST && ctx.port !== undefined) {
      out.push({ level: L.SOL_IP, type: L.IP_ORIGDSTADDR, data: encodeSockaddr({ family: L.AF_INET, address: dst4, port: ctx.port }) });
    }
    return out;
  }
  if (!v6) return out;
  if (w & Want.HOPLIMIT6) out.push({ level: L.SOL_IPV6, type: L.IPV6_HOPLIMIT, data: int32(d.ttl) });
  if (w & Want.TCLASS6) out.push({ level: L.SOL_IPV6, type: L.IPV6_TCLASS, data: int32(d.tos) });
  if (w & Want.PKTINFO2292) out.push({ level: L.SOL_IPV6, type: L.IPV6_2292PKTINFO, data: in6Pktinfo(d) });
  if (w & Want.HOPLIMIT2292) out.push({ level: L.SOL_IPV6, type: L.IPV6_2292HOPLIMIT, data: int32(d.ttl) });
  if (w & Want.ORIGDST6 && ctx.port !== undefined) {
    out.push({ level: L.SOL_IPV6, type: L.IPV6_ORIGDSTADDR, data: encodeSockaddr({ family: L.AF_INET6, address: d.localAddress, port: ctx.port }) });
  }
  return out;
}

/** A laid-out control buffer: the bytes msg_controllen reports, and whether anything was cut (MSG_CTRUNC). */
export interface LaidOut {
  readonly used: number;
  readonly truncated: boolean;
}

/**
 * Lays `msgs` into `buf` (the program's msg_control, `buf.length` its msg_controllen) as put_cmsg does for each
 * in turn: a message that does not fit whole is cut to the room left, its cmsg_len saying so, with MSG_CTRUNC;
 * with less room than a header nothing is written and MSG_CTRUNC is set. Each message takes CMSG_SPACE of the
 * room (at most what is left), which is what msg_controllen adds up to.
 */
export function layOut(buf: Uint8Array, msgs: readonly Cmsg[]): LaidOut {
  let at = 0;
  let truncated = false;
  for (const m of msgs) {
    const room = buf.length - at;
    if (room < CMSG_HDR) {
      truncated = true;
      continue;
    }
    let len = CMSG_HDR + m.data.length;
    if (room < len) {
      truncated = true;
      len = room;
    }
    const v = new DataView(buf.buffer, buf.byteOffset + at, CMSG_HDR);
    v.setBigUint64(0, BigInt(len), true);
    v.setInt32(8, m.level, true);
    v.setInt32(12, m.type, true);
    buf.set(m.data.subarray(0, len - CMSG_HDR), at + CMSG_HDR);
    const space = Math.min(cmsgAlign(CMSG_HDR + m.data.length), room);
    // The kernel copies nothing into the padding; a buffer of ours that is copied out whole shows zeros there.
    buf.fill(0, at + len, at + space);
    at += space;
  }
  return { used: at, truncated };
}

/**
 * The IP-level control messages of a sendmsg, read as ip_cmsg_send (to an IPv4 destination, from an AF_INET
 * socket or v4-mapped from an AF_INET6 one) and ip6_datagram_send_ctl (to an IPv6 destination) read them:
 * IP_TTL (1..255), IP_TOS (an int or one byte), IP_PKTINFO (interface and source), IPV6_HOPLIMIT and
 * IPV6_TCLASS (-1 for the socket's), IPV6_PKTINFO. A malformed one (length, range) is -EINVAL; a cmsg_len that
 * does not fit the buffer too (CMSG_OK). Other levels and types are left alone, as the native send they used to
 * get left them. Undefined when there is no SOL_IP/SOL_IPV6 message at all.
 */
export function sendControl(control: Uint8Array, v4dest: boolean): IpSendOptions | undefined | number {
  const EINVAL = -22;
  const v = new DataView(control.buffer, control.byteOffset, control.byteLength);
  let out: { ttl?: number; tos?: number; source?: Address; nicId?: number } | undefined;
  for (let at = 0; at + CMSG_HDR <= control.length; ) {
    const len = Number(v.getBigUint64(at, true));
    if (len < CMSG_HDR || len > control.length - at) return EINVAL;
    const level = v.getInt32(at + 8, true);
    const type = v.getInt32(at + 12, true);
    const n = len - CMSG_HDR;
    const d = at + CMSG_HDR;
    if (level === L.SOL_IP || level === L.SOL_IPV6) out ??= {};
    if (level === L.SOL_IP && v4dest) {
      if (type === L.IP_TTL) {
        const ttl = n === 4 ? v.getInt32(d, true) : -1;
        if (ttl < 1 || ttl > 255) return EINVAL;
        out!.ttl = ttl;
      } else if (type === L.IP_TOS) {
        if (n !== 4 && n !== 1) return EINVAL;
        const tos = n === 4 ? v.getInt32(d, true) : control[d]!;
        if (tos < 0 || tos > 255) return EINVAL;
        out!.tos = tos;
      } else if (type === L.IP_PKTINFO) {
        if (n !== 12) return EINVAL;
        out!.nicId = v.getInt32(d, true);
        out!.source = control.slice(d + 4, d + 8);
      }
    } else if (level === L.SOL_IPV6 && !v4dest) {
      if (type === L.IPV6_HOPLIMIT || type === L.IPV6_TCLASS) {
        const x = n === 4 ? v.getInt32(d, true) : -2;
        if (x < -1 || x > 255) return EINVAL;
        if (x >= 0) out![type === L.IPV6_HOPLIMIT ? 'ttl' : 'tos'] = x;
      } else if (type === L.IPV6_PKTINFO) {
        if (n < 20) return EINVAL;
        out!.source = control.slice(d, d + 16);
        out!.nicId = v.getInt32(d + 16, true);
      }
    }
    at += cmsgAlign(len);
  }
  return out;
}
