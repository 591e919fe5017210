/**
 * The handshake's arithmetic (RFC 9293 §3.5): initial sequence numbers by RFC 6528 §3, the options a SYN or
 * SYN-ACK offers, what the peer's SYN negotiated (MSS §3.7.1, window scale RFC 7323 §2.2, timestamps RFC 7323
 * §3.2, SACK-permitted RFC 2018 §2), and the timestamp clock's per-connection offset (RFC 7323 §5.4).
 */
import type { Address } from '../../addr.ts';
import { keyedHash32 } from '../../hash.ts';
import type { TcpOptions } from '../../wire/tcp.ts';

/** RFC 7323 §2.3: the largest shift a receiver honours. */
export const MAX_WSCALE = 14;
/** RFC 9293 §3.7.1 default send MSS when the peer sends no MSS option: 536 for IPv4, 1220 for IPv6 (RFC 8200 §5). */
export function defaultMss(family: 4 | 6): number {
  return family === 4 ? 536 : 1220;
}
/**
 * The MSS a SYN or SYN-ACK offers for a path whose packets carry `maxPayload` bytes after the IP header, as
 * Linux's route computes it (ipv4_default_advmss, ip6_default_advmss): never below the route minimum
 * (net.ipv4.route.min_adv_mss 256, net.ipv6.route.min_adv_mss 1220), even on a smaller MTU.
 */
export function advertisedMss(maxPayload: number, family: 4 | 6): number {
  return Math.max(maxPayload - 20, family === 4 ? 256 : 1220);
}
/** Bytes the timestamps option takes in every segment once negotiated (NOP NOP TS). */
export const TS_OPTION_LEN = 12;

/** RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 µs clock. */
export function initialSequence(
  secret: Uint8Array,
  nowMs: number,
  local: Address,
  localPort: number,
  remote: Address,
  remotePort: number,
): number {
  const m = Math.floor(nowMs * 250);
  return (m + keyedHash32(secret, 0x15, local, localPort, remote, remotePort)) >>> 0;
}

/** RFC 7323 §5.4: a per-connection random offset for TSval, so that timestamps reveal no host uptime. */
export function timestampOffset(secret: Uint8Array, local: Address, remote: Address): number {
  return keyedHash32(secret, 0x75, local, remote);
}

/**
 * The shift that lets a `maxBuffer`-byte window fit the 16-bit window field (RFC 7323 §2.2), `maxBuffer` no more
 * than a TCP_WINDOW_CLAMP `clamp` (Linux's tcp_select_initial_window scales for the clamped space).
 */
export function windowScaleFor(maxBuffer: number, clamp = 0): number {
  if (clamp > 0 && maxBuffer > clamp) maxBuffer = clamp;
  let s = 0;
  while (s < MAX_WSCALE && maxBuffer >> s > 0xffff) s++;
  return s;
}

/** What we offer in a SYN, or answer in a SYN-ACK given the peer's SYN options. */
export interface SynOffer {
  mss: number;
  wscale: number | undefined;
  sackPermitted: boolean;
  timestamps: boolean;
}

/** The options of our SYN (peer undefined) or SYN-ACK (only what the peer offered, RFC 7323 §1.3, RFC 2018 §2). */
export function synOptions(offer: SynOffer, tsVal: number, peer?: TcpOptions): TcpOptions {
  const o: TcpOptions = { mss: offer.mss };
  if (offer.sackPermitted && (!peer || peer.sackPermitted)) o.sackPermitted = true;
  if (offer.timestamps && (!peer || peer.tsVal !== undefined)) {
    o.tsVal = tsVal;
    o.tsEcr = peer?.tsVal ?? 0;
  }
  if (offer.wscale !== undefined && (!peer || peer.wscale !== undefined)) o.wscale = offer.wscale;
  return o;
}

/** The result of a handshake: what both sides agreed on. */
export interface Negotiated {
  /** Peer's window shift (0 when scaling is off). */
  sndShift: number;
  /** Our window shift (0 when scaling is off). */
  rcvShift: number;
  sackOk: boolean;
  tsOk: boolean;
  /** The MSS the peer announced (or the RFC 9293 default). */
  peerMss: number;
}

/** Combines our offer and the peer's SYN options (RFC 7323 §2.2: scaling only when both sides sent it). */
export function negotiate(offer: SynOffer, peer: TcpOptions, family: 4 | 6): Negotiated {
  const scaling = offer.wscale !== undefined && peer.wscale !== undefined;
  return {
    sndShift: scaling ? Math.min(peer.wscale!, MAX_WSCALE) : 0,
    rcvShift: scaling ? offer.wscale! : 0,
    sackOk: offer.sackPermitted && !!peer.sackPermitted,
    tsOk: offer.timestamps && peer.tsVal !== undefined,
    peerMss: peer.mss !== undefined && peer.mss > 0 ? peer.mss : defaultMss(family),
  };
}
