/**
 * getsockopt/setsockopt by number: (level, optname) to the Endpoint's option name, and option values between
 * Linux's bytes and the Endpoint's values — ints, struct linger, struct timeval, and TCP_INFO in the byte
 * layout of Linux's struct tcp_info (include/uapi/linux/tcp.h).
 */
import { LINUX as L } from './abi.ts';

/** How an option's value is laid out in the user's buffer. */
export type OptKind = 'int' | 'linger' | 'timeval' | 'tcpinfo' | 'string' | 'bytes';

/** An option the layer knows: the Endpoint's name for it and its layout. */
export interface OptSpec {
  readonly name: string;
  readonly kind: OptKind;
}

const T = (name: string, kind: OptKind = 'int'): OptSpec => ({ name, kind });

/** The options gVisor's netstack serves, by level then optname. */
const TABLE: Record<number, Record<number, OptSpec>> = {
  [L.SOL_SOCKET]: {
    [L.SO_REUSEADDR]: T('SO_REUSEADDR'), [L.SO_REUSEPORT]: T('SO_REUSEPORT'), [L.SO_TYPE]: T('SO_TYPE'),
    [L.SO_ERROR]: T('SO_ERROR'), [L.SO_DONTROUTE]: T('SO_DONTROUTE'), [L.SO_BROADCAST]: T('SO_BROADCAST'),
    [L.SO_SNDBUF]: T('SO_SNDBUF'), [L.SO_RCVBUF]: T('SO_RCVBUF'), [L.SO_KEEPALIVE]: T('SO_KEEPALIVE'),
    [L.SO_OOBINLINE]: T('SO_OOBINLINE'), [L.SO_NO_CHECK]: T('SO_NO_CHECK'), [L.SO_PRIORITY]: T('SO_PRIORITY'),
    [L.SO_LINGER]: T('SO_LINGER', 'linger'), [L.SO_PASSCRED]: T('SO_PASSCRED'), [L.SO_RCVLOWAT]: T('SO_RCVLOWAT'),
    [L.SO_SNDLOWAT]: T('SO_SNDLOWAT'), [L.SO_RCVTIMEO]: T('SO_RCVTIMEO', 'timeval'), [L.SO_SNDTIMEO]: T('SO_SNDTIMEO', 'timeval'),
    [L.SO_BINDTODEVICE]: T('SO_BINDTODEVICE', 'string'), [L.SO_TIMESTAMP]: T('SO_TIMESTAMP'),
    [L.SO_ACCEPTCONN]: T('SO_ACCEPTCONN'), [L.SO_PROTOCOL]: T('SO_PROTOCOL'), [L.SO_DOMAIN]: T('SO_DOMAIN'),
    [L.SO_SNDBUFFORCE]: T('SO_SNDBUF'), [L.SO_RCVBUFFORCE]: T('SO_RCVBUF'),
    [L.SO_ZEROCOPY]: T('SO_ZEROCOPY'), [L.SO_MARK]: T('SO_MARK'),
    [L.SO_TIMESTAMPING]: T('SO_TIMESTAMPING'), [L.SO_TIMESTAMPNS]: T('SO_TIMESTAMPNS'),
    [L.SO_TIMESTAMP_NEW]: T('SO_TIMESTAMP_NEW'), [L.SO_TIMESTAMPNS_NEW]: T('SO_TIMESTAMPNS_NEW'),
  },
  [L.IPPROTO_TCP]: {
    [L.TCP_NODELAY]: T('TCP_NODELAY'), [L.TCP_MAXSEG]: T('TCP_MAXSEG'), [L.TCP_CORK]: T('TCP_CORK'),
    [L.TCP_KEEPIDLE]: T('TCP_KEEPIDLE'), [L.TCP_KEEPINTVL]: T('TCP_KEEPINTVL'), [L.TCP_KEEPCNT]: T('TCP_KEEPCNT'),
    [L.TCP_SYNCNT]: T('TCP_SYNCNT'), [L.TCP_LINGER2]: T('TCP_LINGER2'), [L.TCP_DEFER_ACCEPT]: T('TCP_DEFER_ACCEPT'),
    [L.TCP_WINDOW_CLAMP]: T('TCP_WINDOW_CLAMP'), [L.TCP_INFO]: T('TCP_INFO', 'tcpinfo'), [L.TCP_QUICKACK]: T('TCP_QUICKACK'),
    [L.TCP_CONGESTION]: T('TCP_CONGESTION', 'string'), [L.TCP_USER_TIMEOUT]: T('TCP_USER_TIMEOUT'),
    [L.TCP_NOTSENT_LOWAT]: T('TCP_NOTSENT_LOWAT'), [L.TCP_INQ]: T('TCP_INQ'),
    [L.TCP_FASTOPEN]: T('TCP_FASTOPEN'), [L.TCP_FASTOPEN_CONNECT]: T('TCP_FASTOPEN_CONNECT'),
    [L.TCP_FASTOPEN_NO_COOKIE]: T('TCP_FASTOPEN_NO_COOKIE'), [L.TCP_FASTOPEN_KEY]: T('TCP_FASTOPEN_KEY', 'bytes'),
  },
  [L.IPPROTO_IP]: {
    [L.IP_TOS]: T('IP_TOS'), [L.IP_TTL]: T('IP_TTL'), [L.IP_HDRINCL]: T('IP_HDRINCL'), [L.IP_RECVERR]: T('IP_RECVERR'),
    [L.IP_MTU_DISCOVER]: T('IP_MTU_DISCOVER'), [L.IP_MTU]: T('IP_MTU'), [L.IP_MULTICAST_TTL]: T('IP_MULTICAST_TTL'),
    [L.IP_MULTICAST_LOOP]: T('IP_MULTICAST_LOOP'), [L.IP_PKTINFO]: T('IP_PKTINFO'), [L.IP_RECVTOS]: T('IP_RECVTOS'),
    [L.IP_RECVTTL]: T('IP_RECVTTL'), [L.IP_RECVORIGDSTADDR]: T('IP_RECVORIGDSTADDR'), [L.IP_RECVOPTS]: T('IP_RECVOPTS'),
    [L.IP_RETOPTS]: T('IP_RETOPTS'), [L.IP_FREEBIND]: T('IP_FREEBIND'),
    [L.IP_BIND_ADDRESS_NO_PORT]: T('IP_BIND_ADDRESS_NO_PORT'),
    // struct ip_mreq / ip_mreqn, and IP_MULTICAST_IF's struct in_addr (or ip_mreqn): bytes, parsed by the Endpoint.
    [L.IP_ADD_MEMBERSHIP]: T('IP_ADD_MEMBERSHIP', 'bytes'), [L.IP_DROP_MEMBERSHIP]: T('IP_DROP_MEMBERSHIP', 'bytes'),
    [L.IP_MULTICAST_IF]: T('IP_MULTICAST_IF', 'bytes'),
  },
  [L.IPPROTO_IPV6]: {
    [L.IPV6_V6ONLY]: T('IPV6_V6ONLY'), [L.IPV6_UNICAST_HOPS]: T('IPV6_UNICAST_HOPS'),
    [L.IPV6_MULTICAST_HOPS]: T('IPV6_MULTICAST_HOPS'), [L.IPV6_MULTICAST_LOOP]: T('IPV6_MULTICAST_LOOP'),
    [L.IPV6_TCLASS]: T('IPV6_TCLASS'), [L.IPV6_RECVERR]: T('IPV6_RECVERR'), [L.IPV6_MTU_DISCOVER]: T('IPV6_MTU_DISCOVER'),
    [L.IPV6_MTU]: T('IPV6_MTU'), [L.IPV6_RECVTCLASS]: T('IPV6_RECVTCLASS'), [L.IPV6_RECVPKTINFO]: T('IPV6_RECVPKTINFO'),
    [L.IPV6_CHECKSUM]: T('IPV6_CHECKSUM'), [L.IPV6_RECVHOPLIMIT]: T('IPV6_RECVHOPLIMIT'),
    [L.IPV6_RECVORIGDSTADDR]: T('IPV6_RECVORIGDSTADDR'), [L.IPV6_2292PKTINFO]: T('IPV6_2292PKTINFO'),
    [L.IPV6_2292HOPLIMIT]: T('IPV6_2292HOPLIMIT'), [L.IPV6_FREEBIND]: T('IPV6_FREEBIND'),
    [L.IPV6_ADD_MEMBERSHIP]: T('IPV6_ADD_MEMBERSHIP', 'bytes'), [L.IPV6_DROP_MEMBERSHIP]: T('IPV6_DROP_MEMBERSHIP', 'bytes'),
    [L.IPV6_MULTICAST_IF]: T('IPV6_MULTICAST_IF'),
  },
  [L.IPPROTO_UDP]: { [L.UDP_CORK]: T('UDP_CORK') },
  // Raw sockets: struct icmp_filter (IPv4) and IPV6_CHECKSUM at SOL_RAW, struct icmp6_filter at SOL_ICMPV6.
  [L.SOL_RAW]: { [L.ICMP_FILTER]: T('ICMP_FILTER', 'bytes'), [L.IPV6_CHECKSUM]: T('IPV6_CHECKSUM') },
  [L.IPPROTO_ICMPV6]: { [L.ICMP6_FILTER]: T('ICMP6_FILTER', 'bytes') },
};

/** The option at (level, optname), or undefined (ENOPROTOOPT). */
export function lookupOption(level: number, optname: number): OptSpec | undefined {
  return TABLE[level]?.[optname];
}

/** Byte offsets and sizes of struct tcp_info's fields (Linux 6.x, 248 bytes). */
const TCP_INFO_FIELDS: readonly [string, number, 1 | 2 | 4 | 8][] = [
  ['tcpi_state', 0, 1], ['tcpi_ca_state', 1, 1], ['tcpi_retransmits', 2, 1], ['tcpi_probes', 3, 1],
  ['tcpi_backoff', 4, 1], ['tcpi_options', 5, 1], ['tcpi_rto', 8, 4], ['tcpi_ato', 12, 4], ['tcpi_snd_mss', 16, 4],
  ['tcpi_rcv_mss', 20, 4], ['tcpi_unacked', 24, 4], ['tcpi_sacked', 28, 4], ['tcpi_lost', 32, 4],
  ['tcpi_retrans', 36, 4], ['tcpi_fackets', 40, 4], ['tcpi_last_data_sent', 44, 4], ['tcpi_last_ack_sent', 48, 4],
  ['tcpi_last_data_recv', 52, 4], ['tcpi_last_ack_recv', 56, 4], ['tcpi_pmtu', 60, 4], ['tcpi_rcv_ssthresh', 64, 4],
  ['tcpi_rtt', 68, 4], ['tcpi_rttvar', 72, 4], ['tcpi_snd_ssthresh', 76, 4], ['tcpi_snd_cwnd', 80, 4],
  ['tcpi_advmss', 84, 4], ['tcpi_reordering', 88, 4], ['tcpi_rcv_rtt', 92, 4], ['tcpi_rcv_space', 96, 4],
  ['tcpi_total_retrans', 100, 4], ['tcpi_pacing_rate', 104, 8], ['tcpi_max_pacing_rate', 112, 8],
  ['tcpi_bytes_acked', 120, 8], ['tcpi_bytes_received', 128, 8], ['tcpi_segs_out', 136, 4], ['tcpi_segs_in', 140, 4],
  ['tcpi_notsent_bytes', 144, 4], ['tcpi_min_rtt', 148, 4], ['tcpi_data_segs_in', 152, 4], ['tcpi_data_segs_out', 156, 4],
  ['tcpi_delivery_rate', 160, 8], ['tcpi_busy_time', 168, 8], ['tcpi_rwnd_limited', 176, 8], ['tcpi_sndbuf_limited', 184, 8],
  ['tcpi_delivered', 192, 4], ['tcpi_delivered_ce', 196, 4], ['tcpi_bytes_sent', 200, 8], ['tcpi_bytes_retrans', 208, 8],
  ['tcpi_dsack_dups', 216, 4], ['tcpi_reord_seen', 220, 4], ['tcpi_rcv_ooopack', 224, 4], ['tcpi_snd_wnd', 228, 4],
  ['tcpi_rcv_wnd', 232, 4], ['tcpi_rehash', 236, 4], ['tcpi_total_rto', 240, 2], ['tcpi_total_rto_recoveries', 242, 2],
  ['tcpi_total_rto_time', 244, 4],
];

/** sizeof(struct tcp_info). */
export const TCP_INFO_LEN = 248;

/** Lays a TCP_INFO record out as Linux's struct tcp_info (little-endian; wscales packed in byte 6). */
export function encodeTcpInfo(info: { readonly [k: string]: number | boolean }): Uint8Array {
  const b = new Uint8Array(TCP_INFO_LEN);
  const v = new DataView(b.buffer);
  const num = (k: string) => Number(info[k] ?? 0);
  for (const [name, off, size] of TCP_INFO_FIELDS) {
    const x = num(name);
    if (size === 1) v.setUint8(off, x & 0xff);
    else if (size === 2) v.setUint16(off, x & 0xffff, true);
    else if (size === 4) v.setUint32(off, x >>> 0, true);
    else v.setBigUint64(off, BigInt(Math.max(0, Math.floor(x))), true);
  }
  v.setUint8(6, (num('tcpi_snd_wscale') & 0xf) | ((num('tcpi_rcv_wscale') & 0xf) << 4));
  return b;
}

/** Reads a tcp_info field back by name (tests and the conformance runner). */
export function tcpInfoField(b: Uint8Array, name: string): number | undefined {
  const f = TCP_INFO_FIELDS.find((x) => x[0] === name);
  if (!f) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const [, off, size] = f;
  if (off + size > b.length) return undefined;
  return size === 1 ? v.getUint8(off) : size === 2 ? v.getUint16(off, true) : size === 4 ? v.getUint32(off, true) : Number(v.getBigUint64(off, true));
}

/**
 * What Linux's getsockopt(SO_LINGER) reports for a linger time without limit (set with a negative l_linger):
 * sk_lingertime = MAX_SCHEDULE_TIMEOUT (LONG_MAX) divided by HZ and truncated to the int l_linger, here for HZ=250
 * (the common distribution kernel; checked on Linux 6.18 with CONFIG_HZ=250). Another HZ gives another number
 * (HZ=1000: -1511828489, HZ=100: 2061584302); 64-bit kernels before the 2023 sk_setsockopt change (unsigned long
 * t_sec) kept (u32)l_linger·HZ and so reported l_linger as given.
 */
export const LINGER_UNLIMITED_REPORTED = Number(BigInt.asIntN(32, 0x7fffffffffffffffn / 250n));

/** struct linger { int l_onoff; int l_linger; }; a `linger` of Infinity (no time limit) as Linux reports it. */
export function encodeLinger(onoff: boolean, linger: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setInt32(0, onoff ? 1 : 0, true);
  v.setInt32(4, linger === Infinity ? LINGER_UNLIMITED_REPORTED : linger, true);
  return b;
}

/** struct timeval (64-bit): milliseconds to { tv_sec, tv_usec }. */
export function encodeTimeval(ms: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigInt64(0, BigInt(Math.floor(ms / 1000)), true);
  v.setBigInt64(8, BigInt(Math.round((ms % 1000) * 1000)), true);
  return b;
}

/** struct timeval to milliseconds; undefined when malformed (EDOM in Linux for tv_usec out of range). */
export function decodeTimeval(b: Uint8Array): number | undefined {
  if (b.length < 16) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const sec = Number(v.getBigInt64(0, true));
  const usec = Number(v.getBigInt64(8, true));
  if (usec < 0 || usec >= 1_000_000) return undefined;
  if (sec < 0) return 0;
  return sec * 1000 + usec / 1000;
}
