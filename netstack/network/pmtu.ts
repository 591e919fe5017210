/**
 * The path-MTU cache fed by ICMP fragmentation-needed (RFC 1191) and packet-too-big (RFC 8201) messages.
 * Entries expire after 10 minutes, like Linux's mtu_expires, so a path that grew again is rediscovered.
 * Floors: IPv4 never below 68 (RFC 1191 §3 and RFC 791's minimum; we do not copy Linux's min_pmtu of 552,
 * which only works because Linux then clears DF, something our transports do not do), IPv6 never below
 * 1280 (RFC 8201 §4).
 */
import { type Address, addressKey } from '../addr.ts';
import type { Clock } from '../clock.ts';

/** Minimum IPv4 MTU every link must carry (RFC 791). */
export const IPV4_MIN_MTU = 68;
/** Minimum IPv6 link MTU (RFC 8200 §5). */
export const IPV6_MIN_MTU = 1280;
/** How long a learned path MTU is trusted. */
export const PMTU_EXPIRES_MS = 600_000;
/** Destinations remembered at most; the oldest entry makes way. */
export const PMTU_MAX_ENTRIES = 4096;

/** RFC 1191 §7 plateau table, for fragmentation-needed messages from routers that leave the MTU field 0. */
const PLATEAUS = [32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

interface Entry {
  mtu: number;
  expires: number;
}

/** Learned path MTUs per destination, both families. */
export class PmtuCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly clock: Clock) {}

  /** Entries held, for bounds checks. */
  get size(): number {
    return this.entries.size;
  }

  /** The path MTU towards `dst`: the learned value if fresh, capped by the link MTU. */
  get(dst: Address, linkMtu: number): number {
    // The common case, nothing learned, must not pay for building a key on every packet.
    if (this.entries.size === 0) return linkMtu;
    const key = addressKey(dst);
    const e = this.entries.get(key);
    if (!e) return linkMtu;
    if (e.expires <= this.clock.now()) {
      this.entries.delete(key);
      return linkMtu;
    }
    return Math.min(e.mtu, linkMtu);
  }

  /**
   * Lowers the path MTU towards `dst` after an ICMP report of `reported` bytes (0 when the router did not say)
   * about a packet of `sentLength` bytes; increases are ignored (RFC 1191 §3, RFC 8201 §4). Returns the new value.
   */
  update(dst: Address, reported: number, sentLength: number, linkMtu: number): number {
    const v4 = dst.length === 4;
    const floor = v4 ? IPV4_MIN_MTU : IPV6_MIN_MTU;
    let mtu = reported;
    if (v4 && mtu === 0) mtu = PLATEAUS.find((p) => p < sentLength) ?? IPV4_MIN_MTU;
    mtu = Math.max(floor, mtu);
    const current = this.get(dst, linkMtu);
    if (mtu >= current) return current;
    const key = addressKey(dst);
    this.entries.delete(key);
    if (this.entries.size >= PMTU_MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { mtu, expires: this.clock.now() + PMTU_EXPIRES_MS });
    return mtu;
  }

  /** Forgets everything. */
  clear(): void {
    this.entries.clear();
  }
}
