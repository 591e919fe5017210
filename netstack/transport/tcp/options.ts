/**
 * Socket options of TCP endpoints by their Linux names (socket(7), tcp(7)), and TCP_INFO with the field names
 * of Linux's struct tcp_info (include/uapi/linux/tcp.h).
 */
import { Err, type NetError } from '../../errors.ts';
import { Chrono } from './chrono.ts';
import * as seq from '../../seqnum.ts';
import type { OptionValue } from '../../socket.ts';
import { CONGESTION_ALGORITHMS } from './congestion/cc.ts';
import { DEFAULT_TTL } from '../inetopts.ts';
import type { TcpEndpoint } from './endpoint.ts';
import { KEY_SIZE, TFO_CLIENT_ENABLE } from './fastopen.ts';
import { State } from './state.ts';
import { SOF_TIMESTAMPING_MASK, SOF_TIMESTAMPING_OPT_ID, SOF_TIMESTAMPING_OPT_ID_TCP } from './tstamp.ts';
import { sendAck } from './output.ts';

// Linux's TCP_MIN_MSS and MAX_TCP_WINDOW bounds for TCP_MAXSEG.
const MIN_MSS = 88;
const MAX_MSS = 32767;
// Linux's SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF (rounded).
const MIN_RCVBUF = 2304;
const MIN_SNDBUF = 4608;
// The IP headers a route's maxPayload leaves out (no IPv4 options, no IPv6 extension headers on TCP here).
const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
// TCP_INFO option bits.
const TCPI_OPT_TIMESTAMPS = 1;
const TCPI_OPT_SACK = 2;
const TCPI_OPT_WSCALE = 4;
const TCPI_OPT_SYN_DATA = 32;

// Linux's TCP_FIN_TIMEOUT_MAX, and TCP_TIMEOUT_INIT / TCP_RTO_MAX in seconds for TCP_DEFER_ACCEPT.
const FIN_TIMEOUT_MAX_S = 120;
const RTO_INIT_S = 1;
const RTO_MAX_S = 120;

/** Linux secs_to_retrans: the SYN-ACK retransmissions whose backed-off timeouts first cover `secs`. */
function secsToRetrans(secs: number): number {
  if (secs <= 0) return 0;
  let timeout = RTO_INIT_S;
  let period = timeout;
  let n = 1;
  while (secs > period && n < 255) {
    n++;
    timeout = Math.min(timeout * 2, RTO_MAX_S);
    period += timeout;
  }
  return n;
}

/** Linux retrans_to_secs: the seconds `n` backed-off SYN-ACK timeouts take (what getsockopt reports). */
function retransToSecs(n: number): number {
  let timeout = RTO_INIT_S;
  let period = 0;
  for (let i = 0; i < n; i++) {
    period += timeout;
    timeout = Math.min(timeout * 2, RTO_MAX_S);
  }
  return period;
}

/** The least TCP_WINDOW_CLAMP takes: Linux's SOCK_MIN_RCVBUF / 2 (2,048 bytes and a struct sk_buff, halved). */
const MIN_WINDOW_CLAMP = 1152;

/** An option every inet socket takes (../inetopts.ts); one it does not know is ENOPROTOOPT. */
function setInetOption(ep: TcpEndpoint, name: string, value: OptionValue): NetError | undefined {
  const r = ep.inet.set(name, value, ep.family);
  return r === 'unknown' ? Err.ProtocolNotAvailable : r;
}

function bool(v: OptionValue): boolean | NetError {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  return Err.InvalidArgument;
}

function int(v: OptionValue, min: number, max: number): number | NetError {
  const n = typeof v === 'boolean' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) return Err.InvalidArgument;
  return n;
}

/** getsockopt for a TCP endpoint. */
export function getOption(ep: TcpEndpoint, name: string): OptionValue | NetError {
  switch (name) {
    case 'TCP_NODELAY':
      return ep.nodelay ? 1 : 0;
    case 'TCP_CORK':
      return ep.cork ? 1 : 0;
    case 'TCP_MAXSEG':
      return ep.state === State.Closed || ep.state === State.Listen ? ep.userMss || 536 : ep.snd.mss;
    case 'IP_TOS':
      // What the application set, less the ECN bits (TCP's own).
      return ep.tos;
    case 'IP_TTL':
      return ep.ttl < 0 ? DEFAULT_TTL : ep.ttl;
    case 'IP_MTU':
    case 'IPV6_MTU':
      // The path MTU of the connection's route (Linux: dst_mtu of the socket's cached route; none yet: ENOTCONN).
      if (name === 'IPV6_MTU' && ep.family !== 6) return Err.ProtocolNotAvailable;
      if (ep.route === null) return Err.NotConnected;
      return ep.route.maxPayload() + (ep.route.localAddress.length === 4 ? IPV4_HEADER : IPV6_HEADER);
    case 'IPV6_TCLASS':
      return ep.family === 6 ? ep.tclass : Err.ProtocolNotAvailable;
    case 'IPV6_UNICAST_HOPS':
      return ep.family === 6 ? (ep.hops < 0 ? DEFAULT_TTL : ep.hops) : Err.ProtocolNotAvailable;
    case 'IP_MTU_DISCOVER':
      return ep.pmtudisc;
    case 'SO_KEEPALIVE':
      return ep.keepalive ? 1 : 0;
    case 'TCP_KEEPIDLE':
      return ep.keepIdle;
    case 'TCP_KEEPINTVL':
      return ep.keepIntvl;
    case 'TCP_KEEPCNT':
      return ep.keepCnt;
    case 'TCP_USER_TIMEOUT':
      return ep.userTimeout;
    case 'TCP_NOTSENT_LOWAT':
      return ep.notsentLowat | 0;
    case 'SO_RCVBUF':
      // Linux reports twice the requested size (socket(7)).
      return ep.rcv.limit * 2;
    case 'SO_SNDBUF':
      return ep.snd.limit * 2;
    case 'SO_REUSEADDR':
      return ep.reuseAddr ? 1 : 0;
    case 'SO_REUSEPORT':
      return ep.reusePort ? 1 : 0;
    case 'SO_ZEROCOPY':
      return ep.zc.enabled ? 1 : 0;
    case 'SO_TIMESTAMPING':
      return ep.ts.flags;
    case 'IPV6_V6ONLY':
      return ep.family === 6 ? (ep.v6only ? 1 : 0) : Err.ProtocolNotAvailable;
    case 'SO_LINGER':
      // Infinity stands for no time limit; the syscall layer writes it as Linux's int does (sentry encodeLinger).
      return { onoff: ep.linger.onoff, linger: ep.linger.linger };
    case 'TCP_CONGESTION':
      return ep.snd.cc.name;
    case 'SO_ERROR':
      return ep.takeError()?.errno ?? 0;
    case 'SO_ACCEPTCONN':
      return ep.state === State.Listen ? 1 : 0;
    case 'SO_TYPE':
      return 1;
    case 'SO_BINDTODEVICE':
      return ep.boundNic;
    case 'TCP_WINDOW_CLAMP':
      // Linux's window_clamp: 0 until set or connected, then the most the receive buffer lets the window offer
      // (tcp_full_space, which follows the buffer as it is tuned).
      if (ep.rcv.clamp > 0) return ep.rcv.clamp;
      if (ep.state === State.Closed || ep.state === State.Listen) return 0;
      return ep.rcv.autoTune ? Math.floor(ep.rcv.limit / 2) : ep.rcv.limit;
    case 'TCP_QUICKACK':
      // Linux's do_tcp_getsockopt: 1 unless the connection is in ping-pong (delayed-ACK) mode, so 1 on a new socket.
      return ep.rcv.pingpong ? 0 : 1;
    case 'TCP_INFO':
      return tcpInfo(ep);
    case 'TCP_LINGER2':
      return ep.linger2 < 0 ? -1 : Math.round((ep.linger2 || ep.proto.config.finTimeout) / 1000);
    case 'TCP_DEFER_ACCEPT':
      return retransToSecs(ep.deferAccept);
    case 'TCP_SYNCNT':
      return ep.synCount || ep.proto.config.synRetries;
    case 'TCP_FASTOPEN':
      return ep.fastOpenQlen;
    case 'TCP_FASTOPEN_CONNECT':
      return ep.fastOpenConnect ? 1 : 0;
    case 'TCP_FASTOPEN_NO_COOKIE':
      return ep.fastOpenNoCookie ? 1 : 0;
    case 'TCP_FASTOPEN_KEY': {
      const keys = ep.fastOpenKeys ?? ep.proto.fastOpenKeys;
      const out = new Uint8Array(KEY_SIZE * keys.length);
      keys.forEach((k, i) => out.set(k, KEY_SIZE * i));
      return out;
    }
    default:
      return ep.inet.get(name, ep.family) ?? Err.ProtocolNotAvailable;
  }
}

/** setsockopt for a TCP endpoint. */
export function setOption(ep: TcpEndpoint, name: string, value: OptionValue): NetError | undefined {
  switch (name) {
    case 'TCP_NODELAY': {
      const b = bool(value);
      if (typeof b !== 'boolean') return b;
      ep.nodelay = b;
      // Linux pushes whatever Nagle or the cork was holding back (TCP_NAGLE_PUSH).
      if (b) ep.pushQueued();
      return undefined;
    }
    case 'TCP_CORK': {
      const b = bool(value);
      if (typeof b !== 'boolean') return b;
      ep.cork = b;
      if (!b && ep.nodelay) ep.pushQueued();
      else if (!b) ep.push();
      return undefined;
    }
    case 'IP_TOS': {
      // do_ip_setsockopt on a stream socket: the ECN bits are TCP's, only the rest is the application's.
      const n = int(value, -0x80000000, 0x7fffffff);
      if (typeof n !== 'number') return n;
      ep.tos = n & 0xfc;
      return undefined;
    }
    case 'IP_TTL':
    case 'IPV6_UNICAST_HOPS': {
      // do_ip_setsockopt / do_ipv6_setsockopt: 1-255, or -1 for the default.
      if (name === 'IPV6_UNICAST_HOPS' && ep.family !== 6) return Err.ProtocolNotAvailable;
      const n = int(value, -1, 255);
      if (typeof n !== 'number' || n === 0) return Err.InvalidArgument;
      if (name === 'IP_TTL') ep.ttl = n;
      else ep.hops = n;
      return undefined;
    }
    case 'IPV6_TCLASS': {
      // do_ipv6_setsockopt: -1 is the default (0); a stream socket keeps its own ECN bits.
      if (ep.family !== 6) return Err.ProtocolNotAvailable;
      const n = int(value, -1, 0xff);
      if (typeof n !== 'number') return n;
      ep.tclass = n < 0 ? 0 : n & 0xfc;
      return undefined;
    }
    case 'IP_MTU_DISCOVER': {
      // IP_PMTUDISC_DONT … IP_PMTUDISC_OMIT.
      const n = int(value, 0, 5);
      if (typeof n !== 'number') return n;
      ep.pmtudisc = n;
      return undefined;
    }
    case 'TCP_MAXSEG': {
      const n = int(value, 0, MAX_MSS);
      if (typeof n !== 'number') return n;
      if (n !== 0 && n < MIN_MSS) return Err.InvalidArgument;
      ep.userMss = n;
      return undefined;
    }
    case 'SO_KEEPALIVE': {
      const b = bool(value);
      if (typeof b !== 'boolean') return b;
      ep.keepalive = b;
      ep.ka.update();
      return undefined;
    }
    case 'TCP_KEEPIDLE':
    case 'TCP_KEEPINTVL': {
      const n = int(value, 1, 32767);
      if (typeof n !== 'number') return n;
      if (name === 'TCP_KEEPIDLE') ep.keepIdle = n;
      else ep.keepIntvl = n;
      ep.ka.update();
      return undefined;
    }
    case 'TCP_KEEPCNT': {
      const n = int(value, 1, 127);
      if (typeof n !== 'number') return n;
      ep.keepCnt = n;
      return undefined;
    }
    case 'TCP_USER_TIMEOUT': {
      const n = int(value, 0, 0x7fffffff);
      if (typeof n !== 'number') return n;
      ep.userTimeout = n;
      return undefined;
    }
    case 'TCP_NOTSENT_LOWAT': {
      // Linux keeps the int as a u32 (a negative value is a huge mark) and wakes a writer the new mark frees.
      const n = int(value, -0x80000000, 0x7fffffff);
      if (typeof n !== 'number') return n;
      ep.notsentLowat = n >>> 0;
      ep.notify();
      return undefined;
    }
    case 'SO_RCVBUF': {
      const n = int(value, 0, 0x7fffffff);
      if (typeof n !== 'number') return n;
      ep.rcv.limit = Math.max(MIN_RCVBUF / 2, Math.min(n, ep.proto.config.maxRcvBuf));
      ep.rcv.autoTune = false;
      return undefined;
    }
    case 'SO_SNDBUF': {
      const n = int(value, 0, 0x7fffffff);
      if (typeof n !== 'number') return n;
      ep.snd.limit = Math.max(MIN_SNDBUF / 2, Math.min(n, ep.proto.config.maxSndBuf));
      ep.snd.autoTune = false;
      ep.notify();
      return undefined;
    }
    case 'SO_ZEROCOPY': {
      // Linux's sk_setsockopt takes 0 or 1 only (EINVAL otherwise), in any state.
      const n = int(value, 0, 1);
      if (typeof n !== 'number') return n;
      ep.zc.enabled = n === 1;
      return undefined;
    }
    case 'SO_TIMESTAMPING': {
      // Linux's sock_set_timestamping: only known flags; OPT_ID_TCP only with OPT_ID; a TCP key base needs a
      // connection (not CLOSE or LISTEN).
      const n = int(value, -0x80000000, 0x7fffffff);
      if (typeof n !== 'number') return n;
      if (n & ~SOF_TIMESTAMPING_MASK) return Err.InvalidArgument;
      if (n & SOF_TIMESTAMPING_OPT_ID_TCP && !(n & SOF_TIMESTAMPING_OPT_ID)) return Err.InvalidArgument;
      if (n & SOF_TIMESTAMPING_OPT_ID && !(ep.ts.flags & SOF_TIMESTAMPING_OPT_ID) && (ep.state === State.Closed || ep.state === State.Listen)) {
        return Err.InvalidArgument;
      }
      const snd = ep.snd;
      ep.ts.set(n, snd.bytesAcked, snd.bytesAcked + snd.buf.length);
      return undefined;
    }
    case 'SO_REUSEADDR':
    case 'SO_REUSEPORT': {
      const b = bool(value);
      if (typeof b !== 'boolean') return b;
      if (name === 'SO_REUSEADDR') ep.reuseAddr = b;
      else ep.reusePort = b;
      return undefined;
    }
    case 'IPV6_V6ONLY': {
      if (ep.family !== 6) return Err.ProtocolNotAvailable;
      if (ep.bound) return Err.InvalidArgument;
      const b = bool(value);
      if (typeof b !== 'boolean') return b;
      ep.v6only = b;
      return undefined;
    }
    case 'SO_LINGER': {
      if (typeof value !== 'object' || value instanceof Uint8Array) return Err.InvalidArgument;
      const on = value['onoff'];
      const secs = value['linger'];
      if (typeof secs !== 'number' || Number.isNaN(secs)) return Err.InvalidArgument;
      // Linux sk_setsockopt: l_onoff 0 only clears the flag and keeps the time; a time too large for the
      // scheduler (every negative l_linger, read as unsigned long) becomes MAX_SCHEDULE_TIMEOUT, no limit at all.
      if (!on) ep.linger = { onoff: false, linger: ep.linger.linger };
      else ep.linger = { onoff: true, linger: secs < 0 ? Infinity : Math.trunc(secs) };
      return undefined;
    }
    case 'TCP_CONGESTION': {
      if (typeof value !== 'string') return Err.InvalidArgument;
      // Linux's tcp_set_congestion_control: a name it has no module for is ENOENT.
      if (!(CONGESTION_ALGORITHMS as readonly string[]).includes(value)) return Err.UnknownAlgorithm;
      if (value !== ep.snd.cc.name) ep.setCongestion(ep.proto.newCongestionControl(value, ep.snd.mss));
      return undefined;
    }
    case 'TCP_LINGER2': {
      const n = int(value, -0x80000000, 0x7fffffff);
      if (typeof n !== 'number') return n;
      // Linux: negative → -1, beyond TCP_FIN_TIMEOUT_MAX (120 s) → clamped, 0 → tcp_fin_timeout.
      ep.linger2 = n < 0 ? -1 : Math.min(n, FIN_TIMEOUT_MAX_S) * 1000;
      return undefined;
    }
    case 'TCP_DEFER_ACCEPT': {
      const n = int(value, -0x80000000, 0x7fffffff);
      if (typeof n !== 'number') return n;
      ep.deferAccept = secsToRetrans(n);
      return undefined;
    }
    case 'TCP_SYNCNT': {
      // Linux: 1 to MAX_TCP_SYNCNT (127).
      const n = int(value, 1, 127);
      if (typeof n !== 'number') return n;
      ep.synCount = n;
      return undefined;
    }
    case 'TCP_FASTOPEN': {
      // Linux: the listener's Fast Open queue length, set before or after listen(); capped at somaxconn.
      const n = int(value, -0x80000000, 0x7fffffff);
      if (typeof n !== 'number') return n;
      if (n < 0 || (ep.state !== State.Closed && ep.state !== State.Listen)) return Err.InvalidArgument;
      ep.fastOpenQlen = Math.min(n, ep.proto.config.somaxconn);
      return undefined;
    }
    case 'TCP_FASTOPEN_CONNECT': {
      const n = int(value, -0x80000000, 0x7fffffff);
      if (typeof n !== 'number') return n;
      if (n < 0 || n > 1) return Err.InvalidArgument;
      if (!(ep.proto.config.fastOpen & TFO_CLIENT_ENABLE)) return Err.NotSupported;
      if (ep.state !== State.Closed) return Err.InvalidArgument;
      ep.fastOpenConnect = n === 1;
      return undefined;
    }
    case 'TCP_FASTOPEN_NO_COOKIE': {
      const n = int(value, -0x80000000, 0x7fffffff);
      if (typeof n !== 'number') return n;
      if (n < 0 || n > 1 || (ep.state !== State.Closed && ep.state !== State.Listen)) return Err.InvalidArgument;
      ep.fastOpenNoCookie = n === 1;
      return undefined;
    }
    case 'TCP_FASTOPEN_KEY': {
      // A primary key, or a primary and a backup key (Linux's TCP_FASTOPEN_KEY_LENGTH, _BUF_LENGTH).
      if (!(value instanceof Uint8Array) || (value.length !== KEY_SIZE && value.length !== 2 * KEY_SIZE)) {
        return Err.InvalidArgument;
      }
      const keys = [value.slice(0, KEY_SIZE)];
      if (value.length === 2 * KEY_SIZE) keys.push(value.slice(KEY_SIZE));
      ep.fastOpenKeys = keys;
      return undefined;
    }
    case 'SO_BINDTODEVICE': {
      // A NIC id (the socket layer turns Linux's interface name into one); 0 unbinds.
      const n = int(value, 0, 0x7fffffff);
      if (typeof n !== 'number') return n;
      ep.boundNic = n;
      return undefined;
    }
    case 'TCP_WINDOW_CLAMP': {
      const n = int(value, -0x80000000, 0x7fffffff);
      if (typeof n !== 'number') return n;
      // Linux's tcp_set_window_clamp: 0 clears it, only on a closed socket; anything else is at least half of
      // SOCK_MIN_RCVBUF.
      if (n === 0) {
        if (ep.state !== State.Closed) return Err.InvalidArgument;
        ep.rcv.clamp = 0;
        return undefined;
      }
      ep.rcv.clamp = Math.max(n, MIN_WINDOW_CLAMP);
      return undefined;
    }
    case 'TCP_QUICKACK': {
      const b = bool(value);
      if (typeof b !== 'boolean') return b;
      // Linux: 1 enters quick-ACK mode (and sends an owed ACK now); 0 leaves it for delayed ACKs.
      if (b) {
        ep.rcv.quickAcks = 16;
        ep.rcv.pingpong = false;
        if (ep.rcv.unackedSegs > 0) sendAck(ep);
      } else {
        // Linux's inet_csk_enter_pingpong_mode: delayed ACKs until the delayed-ACK timer fires once.
        ep.rcv.quickAcks = 0;
        ep.rcv.pingpong = true;
      }
      return undefined;
    }
    case 'SO_RCVLOWAT': {
      const e = setInetOption(ep, name, value);
      if (e) return e;
      // Linux's tcp_set_rcvlowat: at most half the buffer the window may grow to (SO_RCVBUF's when set), and
      // readers are woken for the new mark at once.
      const cap = Math.floor((ep.rcv.autoTune ? Math.max(ep.proto.config.maxRcvBuf, ep.rcv.limit) : ep.rcv.limit) / 2);
      if (ep.inet.rcvlowat > cap) ep.inet.rcvlowat = Math.max(cap, 1);
      ep.notify();
      return undefined;
    }
    default:
      return setInetOption(ep, name, value);
  }
}

/**
 * Linux's lost_out in segments: those deemed lost and not delivered since, retransmitted or not. After a
 * retransmission timeout (TCP_CA_Loss) Linux marks everything not SACKed lost (tcp_timeout_mark_lost) until it is
 * acknowledged; without SACK nothing is logged per segment and it stays 0, as tcpi_retrans.
 */
function lostOut(ep: TcpEndpoint, mss: number): number {
  const snd = ep.snd;
  if (!ep.sackOk) return 0;
  if (snd.timeouts > 0 && !snd.inRecovery) return Math.max(0, Math.ceil(seq.sub(snd.max, snd.una) / mss) - Math.ceil(snd.sb.sacked / mss));
  return snd.rack.lostOut(mss);
}

/** struct tcp_info, with Linux's field names; times in µs where Linux uses µs. */
export function tcpInfo(ep: TcpEndpoint): { [k: string]: number } {
  const snd = ep.snd;
  const rcv = ep.rcv;
  const now = ep.clock.now();
  const synced = ep.state !== State.Closed && ep.state !== State.Listen && ep.state !== State.SynSent;
  let options = 0;
  if (ep.tsOk) options |= TCPI_OPT_TIMESTAMPS;
  if (ep.sackOk) options |= TCPI_OPT_SACK;
  if (snd.shift || rcv.shift) options |= TCPI_OPT_WSCALE;
  if (ep.synDataAcked) options |= TCPI_OPT_SYN_DATA;
  const mss = snd.mss;
  // Linux's TCP_CA_Open 0, Disorder 1, CWR 2 (an ECN echo's reduction under way), Recovery 3, Loss 4.
  const caState = snd.inRecovery ? 3 : snd.timeouts > 0 ? 4 : snd.inCwr ? 2 : snd.dupAcks > 0 ? 1 : 0;
  return {
    tcpi_state: ep.state,
    tcpi_ca_state: caState,
    tcpi_retransmits: snd.timeouts,
    tcpi_probes: snd.probes,
    tcpi_backoff: snd.rtt.backoffs,
    tcpi_options: options,
    tcpi_snd_wscale: snd.shift,
    tcpi_rcv_wscale: rcv.shift,
    tcpi_rto: Math.round(snd.rtt.rto * 1000),
    tcpi_ato: ep.proto.config.delayedAckMs * 1000,
    tcpi_snd_mss: mss,
    tcpi_rcv_mss: ep.peerMss || mss,
    tcpi_unacked: synced ? Math.ceil(Math.max(0, seq.sub(snd.max, snd.una)) / mss) : 0,
    tcpi_sacked: Math.ceil(snd.sb.sacked / mss),
    tcpi_lost: lostOut(ep, mss),
    // Known per segment only where RACK logs transmissions (SACK); without SACK it stays 0.
    tcpi_retrans: ep.sackOk ? snd.rack.retransOut(mss) : 0,
    tcpi_pmtu: ep.route ? ep.route.maxPayload() + (ep.route.remoteAddress.length === 4 ? 20 : 40) : 0,
    tcpi_rcv_ssthresh: rcv.limit,
    tcpi_rtt: Math.round(snd.rtt.srtt * 1000),
    tcpi_rttvar: Math.round(snd.rtt.rttvar * 1000),
    tcpi_snd_ssthresh: Math.min(0x7fffffff, Math.floor(snd.cc.ssthresh / mss)),
    tcpi_snd_cwnd: Math.floor(snd.cc.cwnd / mss),
    tcpi_advmss: ep.offer?.mss ?? mss,
    tcpi_reordering: snd.rack.reordering,
    tcpi_rcv_space: rcv.limit,
    tcpi_total_retrans: snd.totalRetrans,
    tcpi_bytes_acked: snd.bytesAcked,
    tcpi_delivered: snd.delivered,
    tcpi_bytes_received: rcv.bytesReceived,
    tcpi_bytes_sent: snd.bytesSent,
    tcpi_bytes_retrans: snd.retransBytes,
    tcpi_segs_out: snd.segsOut,
    tcpi_segs_in: rcv.segsIn,
    tcpi_data_segs_out: snd.dataSegsOut,
    tcpi_data_segs_in: rcv.dataSegsIn,
    tcpi_notsent_bytes: snd.unsent,
    tcpi_min_rtt: Number.isFinite(snd.rtt.minRtt) ? Math.round(snd.rtt.minRtt * 1000) : 0,
    tcpi_dsack_dups: snd.sb.dsacks,
    tcpi_reord_seen: snd.rack.reordSeen,
    tcpi_snd_wnd: snd.wnd,
    tcpi_rcv_wnd: rcv.wnd,
    tcpi_last_data_sent: snd.lastSend ? Math.round(now - snd.lastSend) : 0,
    // Linux counts both from when the connection was set up until the first data or ACK arrives.
    tcpi_last_data_recv: synced ? Math.round(now - rcv.lastDataAt) : 0,
    tcpi_last_ack_recv: synced && snd.lastAckAt ? Math.round(now - snd.lastAckAt) : 0,
    // Linux's tcp_get_info_chrono_stats, in µs: busy time counts the limited stretches too.
    tcpi_busy_time: Math.round(
      (snd.chrono.time(Chrono.Busy, now) + snd.chrono.time(Chrono.RwndLimited, now) + snd.chrono.time(Chrono.SndbufLimited, now)) * 1000,
    ),
    tcpi_rwnd_limited: Math.round(snd.chrono.time(Chrono.RwndLimited, now) * 1000),
    tcpi_sndbuf_limited: Math.round(snd.chrono.time(Chrono.SndbufLimited, now) * 1000),
  };
}
