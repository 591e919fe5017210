/**
 * SYN cookies (RFC 4987 §3.6): when the SYN queue is full, a listener answers with a SYN-ACK whose ISN encodes
 * the connection instead of remembering it. The cookie is a 5-bit time counter (64 s ticks), a 3-bit MSS index
 * and a 24-bit keyed hash of the 4-tuple, the peer's ISN and the counter; the returning ACK proves it. When the
 * SYN carried timestamps, the window scale and SACK-permitted ride in the low 6 bits of our TSval (as Linux).
 */
import type { Address } from '../../addr.ts';
import { keyedHash32Pair } from '../../hash.ts';
import * as seq from '../../seqnum.ts';

/** MSS values a cookie can express (index in 3 bits); the largest not above the peer's MSS is used. */
export const COOKIE_MSS = [216, 536, 1200, 1360, 1400, 1440, 1452, 1460] as const;
/** Length of one cookie time tick in ms; a cookie is honoured for one to two ticks. */
export const COOKIE_TICK_MS = 64_000;

function tick(nowMs: number): number {
  return Math.floor(nowMs / COOKIE_TICK_MS);
}

function mac(secret: Uint8Array, l: Address, lp: number, r: Address, rp: number, peerIsn: number, t: number): number {
  return keyedHash32Pair(secret, 0xc0, l, lp, r, rp, peerIsn, t) & 0xffffff;
}

/** The ISN for a SYN-ACK sent without state; `peerMss` is the SYN's MSS option (or the family default). */
export function makeCookie(
  secret: Uint8Array,
  nowMs: number,
  local: Address,
  localPort: number,
  remote: Address,
  remotePort: number,
  peerIsn: number,
  peerMss: number,
): number {
  let idx = 0;
  for (let i = 0; i < COOKIE_MSS.length; i++) if (COOKIE_MSS[i]! <= peerMss) idx = i;
  const t = tick(nowMs);
  return (((t & 0x1f) << 27) | (idx << 24) | mac(secret, local, localPort, remote, remotePort, peerIsn, t)) >>> 0;
}

/**
 * Checks the cookie acknowledged by `ack` (our ISN + 1) for a connection whose peer ISN is `seqNum − 1`;
 * returns the encoded MSS, or 0 when the cookie is forged or expired.
 */
export function checkCookie(
  secret: Uint8Array,
  nowMs: number,
  local: Address,
  localPort: number,
  remote: Address,
  remotePort: number,
  seqNum: number,
  ack: number,
): number {
  const cookie = seq.add(ack, -1);
  const peerIsn = seq.add(seqNum, -1);
  const now = tick(nowMs);
  for (const t of [now, now - 1]) {
    if (t < 0 || (t & 0x1f) !== cookie >>> 27) continue;
    if (mac(secret, local, localPort, remote, remotePort, peerIsn, t) === (cookie & 0xffffff)) {
      return COOKIE_MSS[(cookie >>> 24) & 7]!;
    }
  }
  return 0;
}

/** Options a cookie SYN-ACK's TSval carries: 0x20 marks them present, 0x10 SACK, the low 4 bits wscale (15 = none). */
export function encodeCookieTs(tsVal: number, wscale: number | undefined, sack: boolean): number {
  const bits = 0x20 | (sack ? 0x10 : 0) | (wscale === undefined ? 15 : Math.min(wscale, 14));
  const ts = ((tsVal & ~0x3f) | bits) >>> 0;
  // Never ahead of the real clock, or our next segments would look older to the peer's PAWS.
  return seq.gt(ts, tsVal) ? seq.add(ts, -0x40) : ts;
}

/** Decodes what encodeCookieTs stored, from the TSecr of the returning ACK; null when nothing was stored. */
export function decodeCookieTs(tsEcr: number): { wscale: number | undefined; sack: boolean } | null {
  if (!(tsEcr & 0x20)) return null;
  const w = tsEcr & 0xf;
  return { wscale: w === 15 ? undefined : w, sack: (tsEcr & 0x10) !== 0 };
}
