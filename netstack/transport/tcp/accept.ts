/**
 * Listening sockets (RFC 9293 §3.10.7.2, LISTEN): a SYN creates a half-open child in SYN-RECEIVED (the SYN
 * queue, bounded by the backlog), the completing ACK moves it to the accept queue (Linux: full when it holds
 * more than `backlog` connections, and then the ACK is dropped so the peer retries), and accept() takes it.
 */
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpRepr } from '../../wire/tcp.ts';
import type { PacketInfo } from '../protocol.ts';
import { negotiate } from './connect.ts';
import { TcpEndpoint } from './endpoint.ts';
import { sendResetFor } from './segment.ts';
import { State } from './state.ts';

/** The queues of a listening socket. */
export interface Listener {
  /** listen()'s backlog, clamped to [0, somaxconn]. */
  backlog: number;
  /** Half-open children in SYN-RECEIVED. */
  readonly synQueue: Set<TcpEndpoint>;
  /** Established children waiting for accept(), oldest first. */
  readonly acceptQueue: TcpEndpoint[];
}

/** Handles a segment addressed to a listening endpoint. */
export function listenArrives(l: TcpEndpoint, r: TcpRepr, info: PacketInfo): void {
  const proto = l.proto;
  const f = r.flags;
  if (f & TCP_RST) return;
  if (f & TCP_ACK) {
    // No connection matches an ACK here: RFC 9293 §3.10.7.2 answers <SEQ=SEG.ACK><CTL=RST>.
    if (sendResetFor(proto.net, info.dst, info.src, r, info.nicId)) proto.stats.resetsSent++;
    return;
  }
  if (!(f & TCP_SYN)) return;
  const q = l.listener!;
  if (q.acceptQueue.length > q.backlog) {
    proto.stats.listenOverflows++;
    return;
  }
  if (q.synQueue.size >= Math.max(q.backlog, 1)) {
    proto.stats.listenDrops++;
    return;
  }
  const route = proto.net.findRoute(info.src, info.dst, info.nicId);
  if (!('send' in route)) return;
  const child = new TcpEndpoint(proto, l.family);
  inheritOptions(l, child);
  child.localAddr = info.dst;
  child.localPort = r.dstPort;
  child.remoteAddr = info.src;
  child.remotePort = r.srcPort;
  child.route = route;
  child.bound = true;
  child.parent = l;
  child.markConnected();
  child.initConnection();
  child.rcv.init(r.seq);
  child.peerSynOptions = r.options;
  child.applyNegotiated(negotiate(child.offer!, r.options, child.family));
  if (child.tsOk) {
    child.rcv.tsRecent = r.options.tsVal!;
    child.rcv.tsRecentAt = proto.net.clock.now();
  }
  const snd = child.snd;
  snd.init(child.newIsn());
  snd.wnd = r.window;
  snd.maxWnd = r.window;
  snd.wl1 = r.seq;
  child.setState(State.SynReceived);
  proto.register(child);
  q.synQueue.add(child);
  proto.stats.passiveOpens++;
  child.sendSyn(true, r.options);
  snd.nxt = snd.max = (snd.iss + 1) >>> 0;
  snd.rtxTimer.set(snd.rtt.rto);
}

/**
 * The handshake of a passive child completed: move it to the accept queue, or report false when that queue is
 * full (the ACK is then ignored and the SYN-ACK retransmitted, as Linux does without tcp_abort_on_overflow).
 */
export function childEstablished(child: TcpEndpoint): boolean {
  const l = child.parent!;
  const q = l.listener;
  if (!q || l.state !== State.Listen) return false;
  if (q.acceptQueue.length > q.backlog) {
    l.proto.stats.listenOverflows++;
    return false;
  }
  q.synQueue.delete(child);
  q.acceptQueue.push(child);
  l.notify();
  return true;
}

/** Closing a listener resets every connection it still holds (Linux inet_csk_listen_stop). */
export function closeListener(l: TcpEndpoint): void {
  const q = l.listener;
  if (!q) return;
  l.proto.removeListener(l);
  for (const c of [...q.synQueue, ...q.acceptQueue]) {
    c.parent = null;
    c.sendReset();
    c.terminate(undefined);
  }
  q.synQueue.clear();
  q.acceptQueue.length = 0;
  l.listener = null;
}

/** Socket options a child inherits from its listener (Linux copies the socket on accept). */
function inheritOptions(l: TcpEndpoint, c: TcpEndpoint): void {
  c.nodelay = l.nodelay;
  c.cork = l.cork;
  c.keepalive = l.keepalive;
  c.keepIdle = l.keepIdle;
  c.keepIntvl = l.keepIntvl;
  c.keepCnt = l.keepCnt;
  c.userTimeout = l.userTimeout;
  c.linger = { ...l.linger };
  c.userMss = l.userMss;
  c.v6only = l.v6only;
  c.rcv.limit = l.rcv.limit;
  c.snd.limit = l.snd.limit;
  c.snd.cc = l.proto.newCongestionControl(l.snd.cc.name, c.snd.mss);
}
