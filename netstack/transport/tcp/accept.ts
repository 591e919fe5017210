/**
 * Listening sockets (RFC 9293 §3.10.7.2, LISTEN): a SYN creates a half-open child in SYN-RECEIVED (the SYN
 * queue, bounded by the backlog), the completing ACK moves it to the accept queue (Linux: full when it holds
 * more than `backlog` connections, and then the ACK is dropped so the peer retries), and accept() takes it.
 * A full SYN queue is answered with SYN cookies (cookie.ts) instead of dropping the SYN. An established child
 * holds its listener's port until it is closed, as a bound socket does.
 */
import type { Address } from '../../addr.ts';
import { PlacedList } from '../../placed-list.ts';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_RST, TCP_SYN, type TcpOptions, type TcpRepr } from '../../wire/tcp.ts';
import { PROTO_TCP, type PacketInfo, type Route } from '../protocol.ts';
import { advertisedMss, defaultMss, negotiate, timestampOffset, windowScaleFor } from './connect.ts';
import { COOKIE_TICK_MS, checkCookie, decodeCookieTs, encodeCookieTs, makeCookie } from './cookie.ts';
import { TcpEndpoint } from './endpoint.ts';
import { ECN_NOT_ECT } from './ecn.ts';
import { serverDecision } from './fastopen.ts';
import { segmentArrives } from './input.ts';
import { sendReply, sendResetFor } from './segment.ts';
import { State } from './state.ts';
import { sendReset, sendSyn } from './output.ts';

/** The queues of a listening socket. */
export interface Listener {
  /** listen()'s backlog, clamped to [0, somaxconn]. */
  backlog: number;
  /** Half-open children in SYN-RECEIVED. */
  readonly synQueue: SynQueue;
  /** Established children waiting for accept(), oldest first. */
  readonly acceptQueue: TcpEndpoint[];
  /** When the last cookie SYN-ACK was sent (ms; -Infinity before any). */
  cookieSentAt: number;
  /** Fast Open children whose SYN-ACK is not yet acknowledged (Linux's fastopenq.qlen). */
  fastOpenPending: number;
}

/**
 * The SYN queue: half-open children, each keeping its place in it (`synQueueIndex`). Not a Set: V8's Set kept
 * deleted children, whole endpoints, alive through young-generation collections (see PlacedList).
 */
export class SynQueue extends PlacedList<TcpEndpoint, 'synQueueIndex'> {
  constructor() {
    super('synQueueIndex');
  }
}

/** Handles a segment addressed to a listening endpoint. */
export function listenArrives(l: TcpEndpoint, r: TcpRepr, info: PacketInfo): void {
  const proto = l.proto;
  const f = r.flags;
  if (f & TCP_RST) return;
  if (f & TCP_ACK) {
    if (!(f & TCP_SYN) && proto.config.synCookies && cookieAck(l, r, info.dst, info.src, info.nicId)) return;
    // No connection matches an ACK here: RFC 9293 §3.10.7.2 answers <SEQ=SEG.ACK><CTL=RST>.
    if (sendResetFor(proto.net, info.dst, info.src, r, info.nicId)) proto.stats.resetsSent++;
    return;
  }
  // Linux drops SYN+FIN (a scanner's probe, never a real open).
  if (!(f & TCP_SYN) || f & TCP_FIN) return;
  const q = l.listener!;
  if (q.acceptQueue.length > q.backlog) {
    proto.count('listenOverflows');
    return;
  }
  const route = proto.net.findRoute(info.src, info.dst, info.nicId, true);
  if (!('send' in route)) return;
  if (q.synQueue.size >= Math.max(q.backlog, 1) || (proto.config.synCookiesAlways && proto.config.synCookies)) {
    if (proto.config.synCookies) sendCookieSynAck(l, r, info, route);
    else proto.count('listenDrops');
    return;
  }
  const tfo = serverDecision(
    {
      sysctl: proto.config.fastOpen,
      keys: l.fastOpenKeys ?? proto.fastOpenKeys,
      noCookie: l.fastOpenNoCookie,
      queueRoom: l.fastOpenQlen > 0 && q.fastOpenPending < l.fastOpenQlen,
    },
    r.options.fastOpen,
    r.payload.length > 0,
    info.src,
    info.dst,
  );
  const child = newChild(l, r, route);
  child.rcv.init(r.seq);
  child.peerSynOptions = r.options;
  child.applyNegotiated(negotiate(child.offer!, r.options, child.family));
  if (child.tsOk) {
    child.rcv.tsRecent = r.options.tsVal!;
    child.rcv.tsRecentAt = proto.net.clock.now();
  }
  const snd = child.snd;
  snd.init(cookieIsnFor(l, r, info) ?? child.newIsn());
  snd.wnd = r.window;
  snd.maxWnd = r.window;
  snd.wl1 = r.seq;
  child.setState(State.SynReceived);
  proto.register(child);
  proto.stats.passiveOpens++;
  child.synFastOpen = tfo.synAckCookie ?? null;
  // RFC 3168 §6.1.1: a SYN asking with ECE and CWR, itself Not-ECT, gets ECN whenever tcp_ecn allows any (Linux's
  // tcp_ecn_create_request); its SYN-ACK says so with ECE.
  if (proto.config.ecn !== 0 && f & TCP_ECE && f & TCP_CWR && (info.tos & 3) === ECN_NOT_ECT) child.ecn.ok = true;
  if (tfo.accept) fastOpenChild(l, child, r);
  else q.synQueue.add(child);
  sendSyn(child, true, r.options);
  snd.nxt = snd.max = (snd.iss + 1) >>> 0;
  // What the Fast Open child writes before its SYN-ACK is acknowledged follows the SYN-ACK in sequence space, and
  // the send buffer counts from SND.UNA: the SYN-ACK stays unacknowledged as far as input.ts and ICMP are
  // concerned (they look at ISS in SYN-RECEIVED), not for the buffer.
  if (tfo.accept) {
    snd.una = snd.nxt;
    l.notify();
  }
  snd.rtxTimer.set(snd.rtt.rto);
}

/**
 * A SYN that Fast Open accepts (Linux's tcp_fastopen_create_child): its child goes to the accept queue at once,
 * before the handshake completes, with the SYN's text already received, which the SYN-ACK acknowledges; it
 * counts in the listener's Fast Open queue until its SYN-ACK is acknowledged (RFC 7413 §4.2.2).
 */
function fastOpenChild(l: TcpEndpoint, child: TcpEndpoint, r: TcpRepr): void {
  const q = l.listener!;
  q.fastOpenPending++;
  child.fastOpenListener = q;
  q.acceptQueue.push(child);
  holdPort(l, child);
  const rcv = child.rcv;
  if (r.payload.length > 0) {
    rcv.onData(rcv.nxt, r.payload.subarray(0, rcv.free), child.snd.mss);
    child.synDataAcked = true;
  }
  rcv.updateCap = 0xffff;
  l.proto.count('fastOpenPassive');
}

/**
 * The ISN of a half-open child while the listener is answering with cookies: the cookie its SYN would get. A SYN
 * retransmitted by a client that was answered late may find room in the SYN queue after its first copy got a
 * cookie; with an ISN of its own the child's SYN-ACK and the cookie's disagree, and whichever segment of the
 * client's reaches the child first after its ACK and data were lost (a challenge ACK for the second SYN-ACK,
 * SEQ past ISN+1, so no cookie check passes either) drew a RST at exactly the client's RCV.NXT. With the same
 * ISN both SYN-ACKs name one connection, which the child completes from any acceptable ACK (FreeBSD's syncache
 * takes every ISN from the cookie for this reason). Outside a cookie period (two ticks, a cookie's lifetime)
 * children keep RFC 6528 ISNs. Not when the two SYN-ACKs would offer different options: without timestamps a
 * cookie offers no window scaling and no SACK.
 */
function cookieIsnFor(l: TcpEndpoint, r: TcpRepr, info: PacketInfo): number | undefined {
  const proto = l.proto;
  const c = proto.config;
  const now = proto.net.clock.now();
  if (!c.synCookies || now - l.listener!.cookieSentAt >= 2 * COOKIE_TICK_MS) return undefined;
  const o = r.options;
  const peerTs = c.timestamps && o.tsVal !== undefined;
  if (!peerTs && ((c.windowScaling && o.wscale !== undefined) || (c.sack && o.sackPermitted))) return undefined;
  return makeCookie(proto.net.secret, now, info.dst, r.dstPort, info.src, r.srcPort, r.seq, peerMssOf(r, info));
}

/** The MSS a cookie encodes for a SYN: its MSS option, or the family's default. */
function peerMssOf(r: TcpRepr, info: PacketInfo): number {
  return r.options.mss ?? defaultMss(info.src.length === 4 ? 4 : 6);
}

/** A child endpoint for a connection to listener `l`, with the listener's options and the route's addresses. */
function newChild(l: TcpEndpoint, r: TcpRepr, route: Route): TcpEndpoint {
  // The listener's congestion control from the start, not the stack's built and then replaced for every child.
  const child = new TcpEndpoint(l.proto, l.family, l.snd.cc.name);
  inheritOptions(l, child);
  // The route's copies of the addresses (equal to the segment's, which findRoute was asked with), not two more.
  child.localAddr = route.localAddress;
  child.localPort = r.dstPort;
  child.remoteAddr = route.remoteAddress;
  child.remotePort = r.srcPort;
  child.route = route;
  child.bound = true;
  child.parent = l;
  child.markConnected();
  child.initConnection();
  return child;
}

/** Answers a SYN statelessly with a cookie ISN (RFC 4987 §3.6). */
function sendCookieSynAck(l: TcpEndpoint, r: TcpRepr, info: PacketInfo, route: Route): void {
  const proto = l.proto;
  const c = proto.config;
  const now = proto.net.clock.now();
  const isn = makeCookie(proto.net.secret, now, info.dst, r.dstPort, info.src, r.srcPort, r.seq, peerMssOf(r, info));
  const pathMss = advertisedMss(route.maxPayload(), route.remoteAddress.length === 4 ? 4 : 6);
  const peerTs = r.options.tsVal !== undefined && c.timestamps;
  // Without timestamps there is nowhere to keep window scaling and SACK, so they are not offered (as Linux).
  const wscale = c.windowScaling && peerTs && r.options.wscale !== undefined
    ? windowScaleFor(Math.max(c.maxRcvBuf, l.rcv.limit), l.rcv.clamp)
    : undefined;
  const sack = c.sack && peerTs && !!r.options.sackPermitted;
  const opts: TcpOptions = { mss: l.userMss > 0 ? Math.min(l.userMss, pathMss) : pathMss };
  if (peerTs) {
    const tsNow = (Math.floor(now) + timestampOffset(proto.net.secret, info.dst, info.src)) >>> 0;
    // The peer's shift is what must be remembered; ours is recomputed from the configuration.
    opts.tsVal = encodeCookieTs(tsNow, wscale === undefined ? undefined : r.options.wscale, sack);
    opts.tsEcr = r.options.tsVal;
    if (sack) opts.sackPermitted = true;
    if (wscale !== undefined) opts.wscale = wscale;
  }
  const h = {
    srcPort: r.dstPort,
    dstPort: r.srcPort,
    seq: isn,
    ack: (r.seq + 1) >>> 0,
    flags: TCP_SYN | TCP_ACK,
    window: l.rcv.synWindow(opts.mss! - (peerTs ? 12 : 0)),
  };
  sendReply(route, h, opts);
  proto.stats.segmentsSent++;
  proto.stats.syncookiesSent++;
  l.listener!.cookieSentAt = now;
}

/**
 * A half-open child got an ACK of some other ISN: the peer may be answering a cookie SYN-ACK that its first SYN
 * got while the SYN queue was full, the child having come from its retransmitted SYN once there was room in a
 * later cookie tick (in the same tick the child's ISN is that cookie, see cookieIsnFor). Linux
 * (tcp_check_req) hands such an ACK to the listener, whose cookie check completes the connection; resetting it
 * instead would reset a connection the peer already counts as established. Returns false when the ACK holds no
 * valid cookie (the caller then resets, as before).
 */
export function cookieSupersedes(child: TcpEndpoint, r: TcpRepr): boolean {
  const l = child.parent;
  const proto = child.proto;
  if (!l?.listener || l.state !== State.Listen || !proto.config.synCookies || r.flags & TCP_SYN) return false;
  const local = child.localAddr!;
  const remote = child.remoteAddr!;
  const now = proto.net.clock.now();
  if (checkCookie(proto.net.secret, now, local, r.dstPort, remote, r.srcPort, r.seq, r.ack) === 0) return false;
  const nicId = child.route!.nicId;
  child.terminate(undefined);
  return cookieAck(l, r, local, remote, nicId);
}

/** Completes a connection from the ACK of a cookie SYN-ACK; false when the ACK holds no valid cookie. */
function cookieAck(l: TcpEndpoint, r: TcpRepr, local: Address, remote: Address, nicId: number): boolean {
  const proto = l.proto;
  const now = proto.net.clock.now();
  const mss = checkCookie(proto.net.secret, now, local, r.dstPort, remote, r.srcPort, r.seq, r.ack);
  if (mss === 0) {
    proto.count('syncookiesFailed');
    return false;
  }
  const q = l.listener!;
  if (q.acceptQueue.length > q.backlog) {
    proto.count('listenOverflows');
    return true;
  }
  // `remote` is a received packet's source or a child's kept address: nothing writes into either.
  const route = proto.net.findRoute(remote, local, nicId, true);
  if (!('send' in route)) return true;
  const child = newChild(l, r, route);
  const coded = r.options.tsEcr !== undefined ? decodeCookieTs(r.options.tsEcr) : null;
  const peer: TcpOptions = { mss };
  if (coded) {
    peer.tsVal = r.options.tsVal;
    peer.sackPermitted = coded.sack;
    if (coded.wscale !== undefined) peer.wscale = coded.wscale;
  }
  const irs = (r.seq - 1) >>> 0;
  child.rcv.init(irs);
  child.applyNegotiated(negotiate(child.offer!, peer, child.family));
  if (child.tsOk) {
    child.rcv.tsRecent = r.options.tsVal!;
    child.rcv.tsRecentAt = now;
  }
  const snd = child.snd;
  snd.init((r.ack - 1) >>> 0);
  snd.una = snd.nxt = snd.max = r.ack;
  // A valid cookie acknowledges our SYN-ACK: forward progress, as in the SYN-RECEIVED path (input.ts).
  route.confirmNeighbor?.(now);
  snd.wnd = r.window * (1 << snd.shift);
  snd.maxWnd = snd.wnd;
  snd.wl1 = r.seq;
  snd.wl2 = r.ack;
  // What the cookie SYN-ACK offered (the same MSS, less the timestamp option when agreed); later segments must not
  // offer less.
  const synWnd = child.rcv.synWindow(child.offer!.mss - (child.tsOk ? 12 : 0));
  child.rcv.advRight = (child.rcv.nxt + synWnd) >>> 0;
  child.rcv.maxOffered = synWnd;
  child.setState(State.Established);
  proto.register(child);
  proto.stats.passiveOpens++;
  proto.stats.syncookiesRecv++;
  q.acceptQueue.push(child);
  holdPort(l, child);
  child.ka.touch();
  if (r.payload.length > 0 || r.flags & TCP_FIN) segmentArrives(child, r);
  l.notify();
  return true;
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
    l.proto.count('listenOverflows');
    return false;
  }
  q.synQueue.delete(child);
  q.acceptQueue.push(child);
  holdPort(l, child);
  l.notify();
  return true;
}

/**
 * Reserves the listener's port for an established child until it is CLOSED, TIME-WAIT included, so that a bind
 * conflicts with it by the usual rules (Linux puts the child in the listener's bind bucket; a half-open one is
 * not there). The child carries the listener's SO_REUSEADDR, which decides whether a later bind may share;
 * terminate() gives the reservation back (TcpEndpoint.heldPort).
 */
function holdPort(l: TcpEndpoint, child: TcpEndpoint): void {
  const address = child.localAddr!;
  l.proto.ports.inherit({
    protocol: PROTO_TCP,
    address,
    port: child.localPort,
    family: child.family,
    v6only: child.v6only,
    reuseAddr: l.reuseAddr,
    reusePort: l.reusePort,
    remote: { address: child.remoteAddr!, port: child.remotePort },
    owner: child,
  });
  child.heldPort = address;
}

/**
 * Closing a listener resets every established connection it still holds (Linux inet_csk_listen_stop); half-open
 * children vanish silently, so a later segment for one finds no connection and gets the stateless RST.
 */
export function closeListener(l: TcpEndpoint): void {
  const q = l.listener;
  if (!q) return;
  l.proto.removeListener(l);
  for (const c of q.synQueue.drain()) {
    c.parent = null;
    c.terminate(undefined);
  }
  for (const c of q.acceptQueue) {
    c.parent = null;
    // A connection that already ended in the queue (accept() would have returned it closed) sends nothing.
    if (c.state === State.Closed) continue;
    sendReset(c);
    c.terminate(undefined);
  }
  q.acceptQueue.length = 0;
  q.fastOpenPending = 0;
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
  c.linger = l.linger;
  c.userMss = l.userMss;
  c.linger2 = l.linger2;
  c.v6only = l.v6only;
  c.reuseAddr = l.reuseAddr;
  c.reusePort = l.reusePort;
  c.boundNic = l.boundNic;
  c.tos = l.tos;
  c.tclass = l.tclass;
  c.ttl = l.ttl;
  c.hops = l.hops;
  c.inet = l.inet.clone();
  if (l.zcState?.enabled) c.zc.enabled = true;
  c.rcv.limit = l.rcv.limit;
  c.rcv.clamp = l.rcv.clamp;
  c.rcv.autoTune = l.rcv.autoTune;
  c.snd.limit = l.snd.limit;
  c.snd.autoTune = l.snd.autoTune;
}
