/**
 * TCP Fast Open (RFC 7413) as Linux does it (net/ipv4/tcp_fastopen.c): the `net.ipv4.tcp_fastopen` bits, server
 * cookies as SipHash-2-4 of the SYN's source and destination addresses under `tcp_fastopen_key` (so that a cookie
 * Linux would give is the cookie tsvisor gives), the server's decision for one SYN, and the client's cookie cache
 * (Linux keeps it in tcp_metrics, per destination address).
 */
import type { Address } from '../../addr.ts';
import { siphash24 } from '../../hash.ts';

/** tcp_fastopen bit: clients may send data in the SYN (sendto MSG_FASTOPEN, TCP_FASTOPEN_CONNECT). */
export const TFO_CLIENT_ENABLE = 0x1;
/** tcp_fastopen bit: listeners with a Fast Open queue accept data in the SYN. */
export const TFO_SERVER_ENABLE = 0x2;
/** tcp_fastopen bit: clients send SYN data without any cookie option. */
export const TFO_CLIENT_NO_COOKIE = 0x4;
/** tcp_fastopen bit: listeners accept SYN data without a cookie. */
export const TFO_SERVER_COOKIE_NOT_REQD = 0x200;
/** tcp_fastopen bit: every listener gets a Fast Open queue (its listen backlog) without TCP_FASTOPEN. */
export const TFO_SERVER_WO_SOCKOPT1 = 0x400;

/** Linux's TCP_FASTOPEN_COOKIE_SIZE: the cookie a server makes. */
export const COOKIE_SIZE = 8;
/** RFC 7413 §4.1.1: a cookie is 4 to 16 bytes, of even length. */
const COOKIE_MIN = 4;
const COOKIE_MAX = 16;
/** Bytes of one key (TCP_FASTOPEN_KEY takes one or two: primary, then backup). */
export const KEY_SIZE = 16;

/** A Fast Open option as a segment carries it: the cookie (empty for a request) and its form. */
export interface FastOpenCookie {
  readonly cookie: Uint8Array;
  readonly exp: boolean;
}

/**
 * The keys of a `tcp_fastopen_key` value ("%x-%x-%x-%x", a second key after a comma): each word in little-endian
 * byte order, as Linux stores what the sysctl was given.
 */
export function parseFastOpenKeys(v: string): Uint8Array[] {
  return v
    .split(',')
    .filter((k) => k.trim() !== '')
    .map((k) => {
      const b = new Uint8Array(KEY_SIZE);
      const d = new DataView(b.buffer);
      k.trim()
        .split('-')
        .forEach((w, i) => d.setUint32(4 * i, parseInt(w, 16) >>> 0, true));
      return b;
    });
}

/** A key as the sysctl shows it ("%08x-%08x-%08x-%08x"). */
export function formatFastOpenKey(key: Uint8Array): string {
  const d = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return [0, 4, 8, 12].map((o) => d.getUint32(o, true).toString(16).padStart(8, '0')).join('-');
}

/** A Fast Open key derived from the stack's random secret (Linux draws one at random once). */
export function keyFromSecret(secret: Uint8Array): Uint8Array {
  const key = new Uint8Array(KEY_SIZE);
  const d = new DataView(key.buffer);
  for (let i = 0; i < 2; i++) {
    const [lo, hi] = siphash24(secret, new Uint8Array([0x7f, i]));
    d.setUint32(8 * i, lo, true);
    d.setUint32(8 * i + 4, hi, true);
  }
  return key;
}

/** The cookie a server gives the client at `client` for SYNs to `server` (both wire addresses of one family). */
export function fastOpenCookie(key: Uint8Array, client: Address, server: Address): Uint8Array {
  const data = new Uint8Array(client.length + server.length);
  data.set(client, 0);
  data.set(server, client.length);
  const [lo, hi] = siphash24(key, data);
  const out = new Uint8Array(COOKIE_SIZE);
  const d = new DataView(out.buffer);
  d.setUint32(0, lo, true);
  d.setUint32(4, hi, true);
  return out;
}

/**
 * The length Linux gives a received Fast Open option (tcp_parse_fastopen_option): -1 when there is none or it
 * is malformed (odd, or 2 bytes, or longer than 16), 0 for a cookie request, else the cookie's length.
 */
export function cookieLength(fo: FastOpenCookie | undefined): number {
  if (!fo) return -1;
  const n = fo.cookie.length;
  if (n & 1) return -1;
  if (n === 0) return 0;
  return n >= COOKIE_MIN && n <= COOKIE_MAX ? n : -1;
}

/** What a listener's Fast Open settings are, for one SYN. */
export interface FastOpenListener {
  /** net.ipv4.tcp_fastopen. */
  readonly sysctl: number;
  /** The listener's keys (TCP_FASTOPEN_KEY) or the stack's, primary first. */
  readonly keys: readonly Uint8Array[];
  /** TCP_FASTOPEN_NO_COOKIE on the listener. */
  readonly noCookie: boolean;
  /** Whether the Fast Open queue has room (a max_qlen above zero and fewer pending children). */
  readonly queueRoom: boolean;
}

/**
 * The server's answer to a SYN (Linux's tcp_try_fastopen): whether to accept its data in a child created now,
 * and the cookie option the SYN-ACK carries (a requested cookie, or the right one for a wrong or old-key cookie).
 */
export function serverDecision(
  l: FastOpenListener,
  option: FastOpenCookie | undefined,
  synData: boolean,
  client: Address,
  server: Address,
): { accept: boolean; synAckCookie?: FastOpenCookie } {
  const len = cookieLength(option);
  if (!(l.sysctl & TFO_SERVER_ENABLE) || !(synData || len >= 0) || !l.queueRoom) return { accept: false };
  if (l.sysctl & TFO_SERVER_COOKIE_NOT_REQD || l.noCookie) return { accept: true };
  const primary = l.keys[0];
  if (!primary || len < 0) return { accept: false };
  const valid: FastOpenCookie = { cookie: fastOpenCookie(primary, client, server), exp: option!.exp };
  if (len === 0) return { accept: false, synAckCookie: valid };
  if (len === COOKIE_SIZE) {
    for (let i = 0; i < l.keys.length; i++) {
      const c = i === 0 ? valid.cookie : fastOpenCookie(l.keys[i]!, client, server);
      if (!sameBytes(c, option!.cookie)) continue;
      // A cookie of the backup key is good; the SYN-ACK hands out the primary key's.
      return i === 0 ? { accept: true } : { accept: true, synAckCookie: valid };
    }
  }
  return { accept: false, synAckCookie: valid };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What a client remembers about one server (Linux's tcp_fastopen_metrics). */
interface CacheEntry {
  /** The MSS the server's SYN-ACK announced; 0 before one was seen. */
  mss: number;
  /** The server's cookie (length 0: none yet) and whether it came in the experimental form. */
  cookie: FastOpenCookie;
  /** 1: a kind-34 request got no cookie, so ask in the experimental form next; 2: that failed too. */
  tryExp: number;
}

/** The client's Fast Open cookie cache, by server address (Linux keeps it in tcp_metrics). */
export class FastOpenCache {
  private readonly entries = new Map<string, CacheEntry>();

  /** The MSS, cookie and form to use towards `server` (a request in the form due when there is no cookie). */
  get(server: Address): { mss: number; cookie: FastOpenCookie } {
    const e = this.entries.get(addressKey(server));
    if (!e) return { mss: 0, cookie: { cookie: new Uint8Array(0), exp: false } };
    const exp = e.cookie.cookie.length === 0 ? e.tryExp === 1 || e.cookie.exp : e.cookie.exp;
    return { mss: e.mss, cookie: { cookie: e.cookie.cookie, exp } };
  }

  /** Records what a SYN-ACK told (Linux's tcp_fastopen_cache_set). */
  set(server: Address, mss: number, cookie: FastOpenCookie | undefined, tryExp: number): void {
    const k = addressKey(server);
    let e = this.entries.get(k);
    if (!e) {
      e = { mss: 0, cookie: { cookie: new Uint8Array(0), exp: false }, tryExp: 0 };
      this.entries.set(k, e);
    }
    if (mss) e.mss = mss;
    if (cookie && cookieLength(cookie) > 0) e.cookie = { cookie: cookie.cookie.slice(), exp: cookie.exp };
    else if (tryExp > e.tryExp && e.cookie.cookie.length === 0 && !e.cookie.exp) e.tryExp = tryExp;
  }

  /** `ip tcp_metrics flush`: forgets every server. */
  clear(): void {
    this.entries.clear();
  }
}

function addressKey(a: Address): string {
  let s = '';
  for (const b of a) s += b.toString(16).padStart(2, '0');
  return s;
}
