/**
 * What upstream packetdrill's harness (gtests/net/packetdrill/run_all.py) gives every script besides the script
 * itself: the `-D` definitions per IP version, and the Fast Open cookie Linux computes for the two addresses,
 * which that harness passes as TFO_COOKIE. The runner's addresses are not upstream's (ours come from the ranges
 * reserved for tests), so the cookie is computed for ours, the way Linux's tcp_fastopen.c does.
 */
import { parseAddress } from '../../netstack/addr.ts';

const M64 = (1n << 64n) - 1n;
const rotl = (x: bigint, b: bigint) => ((x << b) | (x >> (64n - b))) & M64;

/** SipHash-2-4 of `data` under the 128-bit key (k0, k1), as the kernel's siphash(). */
export function siphash24(data: Uint8Array, k0: bigint, k1: bigint): bigint {
  let v0 = 0x736f6d6570736575n ^ k0;
  let v1 = 0x646f72616e646f6dn ^ k1;
  let v2 = 0x6c7967656e657261n ^ k0;
  let v3 = 0x7465646279746573n ^ k1;
  const round = () => {
    v0 = (v0 + v1) & M64; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M64; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M64; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M64; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const le64 = (b: Uint8Array, o: number, n = 8) => {
    let x = 0n;
    for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[o + i]!);
    return x;
  };
  const whole = data.length - (data.length % 8);
  for (let o = 0; o < whole; o += 8) {
    const m = le64(data, o);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  const last = (BigInt(data.length & 0xff) << 56n) | le64(data, whole, data.length - whole);
  v3 ^= last;
  round();
  round();
  v0 ^= last;
  v2 ^= 0xffn;
  for (let i = 0; i < 4; i++) round();
  return (v0 ^ v1 ^ v2 ^ v3) & M64;
}

/** The default of net.ipv4.tcp_fastopen_key that defaults.sh sets. */
export const DEFAULT_TFO_KEY = 'a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4';

/**
 * The 8-byte Fast Open cookie (hex) Linux gives a client at `client` connecting to `server` under `key` (the
 * sysctl's "%x-%x-%x-%x" form): SipHash-2-4 of the SYN's source and destination addresses, the key being the
 * four words in little-endian order (tcp_fastopen.c, __tcp_fastopen_cookie_gen_cipher).
 */
export function fastOpenCookie(key: string, client: string, server: string): string {
  const words = key.split('-').map((w) => parseInt(w, 16) >>> 0);
  if (words.length !== 4 || words.some((w) => Number.isNaN(w))) throw new Error(`bad tcp_fastopen_key "${key}"`);
  const k0 = (BigInt(words[1]!) << 32n) | BigInt(words[0]!);
  const k1 = (BigInt(words[3]!) << 32n) | BigInt(words[2]!);
  const c = parseAddress(client);
  const s = parseAddress(server);
  if (!c || !s || c.length !== s.length) throw new Error(`bad address pair ${client} → ${server}`);
  const h = siphash24(new Uint8Array([...c, ...s]), k0, k1);
  let hex = '';
  for (let i = 0n; i < 8n; i++) hex += ((h >> (8n * i)) & 0xffn).toString(16).padStart(2, '0');
  return hex;
}

/** run_all.py's `-D` definitions for a run over IPv4 or IPv6, with the cookie for the given addresses. */
export function upstreamDefinitions(ipVersion: 4 | 6, client: string, server: string): Record<string, string> {
  const cookie = fastOpenCookie(DEFAULT_TFO_KEY, client, server);
  return ipVersion === 4
    ? { TFO_COOKIE: cookie, CODE: 'host_unreachable', CMSG_LEVEL_IP: 'SOL_IP', CMSG_TYPE_RECVERR: 'IP_RECVERR' }
    : { TFO_COOKIE: cookie, CMSG_LEVEL_IP: 'SOL_IPV6', CMSG_TYPE_RECVERR: 'IPV6_RECVERR' };
}
