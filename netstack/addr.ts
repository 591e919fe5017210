/**
 * IP addresses as plain byte arrays: 4 bytes for IPv4, 16 for IPv6.
 * Parsing and formatting follow RFC 4291 §2.2 and RFC 5952 (canonical text form).
 */

/** An IPv4 (4-byte) or IPv6 (16-byte) address. */
export type Address = Uint8Array;

/** An address with a prefix length, e.g. 198.18.0.1/24. */
export interface Subnet {
  readonly address: Address;
  readonly prefixLength: number;
}

/** The IPv4 unspecified address 0.0.0.0. */
export const IPV4_ANY: Address = new Uint8Array(4);
/** The IPv6 unspecified address ::. */
export const IPV6_ANY: Address = new Uint8Array(16);
/** The IPv4 limited broadcast address 255.255.255.255. */
export const IPV4_BROADCAST: Address = new Uint8Array([255, 255, 255, 255]);

/** Whether the address is IPv4. */
export function isV4(a: Address): boolean {
  return a.length === 4;
}

/** Parses dotted-quad IPv4 or RFC 4291 IPv6 text; null when malformed. */
export function parseAddress(text: string): Address | null {
  return text.includes(':') ? parseV6(text) : parseV4(text);
}

function parseV4(text: string): Address | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

function parseV6(text: string): Address | null {
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const items = s.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (i === items.length - 1 && it.includes('.')) {
        const v4 = parseV4(it);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return null;
        out.push(parseInt(it, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i]! >> 8;
    out[2 * i + 1] = all[i]! & 0xff;
  }
  return out;
}

/** Formats an address as text (RFC 5952 canonical form for IPv6). */
export function formatAddress(a: Address): string {
  if (a.length === 4) return `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((a[2 * i]! << 8) | a[2 * i + 1]!);
  // Longest run of two or more zero groups, first one on ties (RFC 5952 §4.2).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** Parses "addr/len" text; null when malformed. A bare address gets the full-length prefix. */
export function parseSubnet(text: string): Subnet | null {
  const slash = text.indexOf('/');
  const address = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (!address) return null;
  const max = address.length * 8;
  if (slash < 0) return { address, prefixLength: max };
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) return null;
  const prefixLength = Number(lenText);
  if (prefixLength > max) return null;
  return { address, prefixLength };
}

/** Formats a subnet as "addr/len". */
export function formatSubnet(s: Subnet): string {
  return `${formatAddress(s.address)}/${s.prefixLength}`;
}

/** Byte-wise equality of two addresses. */
export function addressEqual(a: Address, b: Address): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A string key for maps; distinct for every address of either family. */
export function addressKey(a: Address): string {
  // Demux builds keys per packet: spreading a typed array goes through its iterator, explicit arguments do not.
  if (a.length === 4) return String.fromCharCode(a[0]!, a[1]!, a[2]!, a[3]!);
  return String.fromCharCode.apply(null, a as unknown as number[]);
}

/** Whether the address is all zeroes (0.0.0.0 or ::). */
export function isUnspecified(a: Address): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

/**
 * Where a connect or send to the unspecified address goes, as Linux sends it: this host. IPv4 takes the socket's
 * bound source address, else 127.0.0.1 (ip_route_output_key_hash_rcu); IPv6 takes ::1 (tcp_v6_connect,
 * ip6_datagram_connect, udpv6_sendmsg). `length` is the destination's (4 or 16), `bound` the socket's address.
 */
export function thisHost(length: number, bound: Address | null | undefined): Address {
  if (length === 16) {
    const a = new Uint8Array(16);
    a[15] = 1;
    return a;
  }
  return bound && bound.length === 4 && !isUnspecified(bound) ? bound : Uint8Array.of(127, 0, 0, 1);
}

/** Whether the address is multicast (224.0.0.0/4 or ff00::/8). */
export function isMulticast(a: Address): boolean {
  return a.length === 4 ? (a[0]! & 0xf0) === 0xe0 : a[0] === 0xff;
}

/** Whether the address is in IPv6 link-local unicast fe80::/10. */
export function isLinkLocalV6(a: Address): boolean {
  return a.length === 16 && a[0] === 0xfe && (a[1]! & 0xc0) === 0x80;
}

/** Whether the address is loopback (127.0.0.0/8 or ::1). */
export function isLoopback(a: Address): boolean {
  if (a.length === 4) return a[0] === 127;
  for (let i = 0; i < 15; i++) if (a[i] !== 0) return false;
  return a[15] === 1;
}

/** Whether the first prefixLength bits of a and b agree (same family required). */
export function prefixMatch(a: Address, b: Address, prefixLength: number): boolean {
  if (a.length !== b.length) return false;
  const full = prefixLength >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rest = prefixLength & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[full]! & mask) === (b[full]! & mask);
}

/** Whether the address lies in the subnet. */
export function subnetContains(s: Subnet, a: Address): boolean {
  return prefixMatch(s.address, a, s.prefixLength);
}

/** The IPv4 directed broadcast address of a subnet (all host bits set). */
export function subnetBroadcast(s: Subnet): Address {
  const out = new Uint8Array(s.address);
  for (let bit = s.prefixLength; bit < out.length * 8; bit++) out[bit >> 3]! |= 0x80 >> (bit & 7);
  return out;
}

/** The solicited-node multicast address ff02::1:ffXX:XXXX of an IPv6 address (RFC 4291 §2.7.1). */
export function solicitedNodeAddress(a: Address): Address {
  const out = new Uint8Array(16);
  out[0] = 0xff;
  out[1] = 0x02;
  out[11] = 0x01;
  out[12] = 0xff;
  out[13] = a[13]!;
  out[14] = a[14]!;
  out[15] = a[15]!;
  return out;
}

/** The modified-EUI-64 link-local address fe80::/64 for a 6-byte MAC (RFC 4291 appendix A). */
export function linkLocalFromMac(mac: Uint8Array): Address {
  const out = new Uint8Array(16);
  out[0] = 0xfe;
  out[1] = 0x80;
  out[8] = mac[0]! ^ 0x02;
  out[9] = mac[1]!;
  out[10] = mac[2]!;
  out[11] = 0xff;
  out[12] = 0xfe;
  out[13] = mac[3]!;
  out[14] = mac[4]!;
  out[15] = mac[5]!;
  return out;
}

/** The Ethernet multicast MAC for an IP multicast address (RFC 1112 §6.4, RFC 2464 §7). */
export function multicastMac(a: Address): Uint8Array {
  if (a.length === 4) return new Uint8Array([0x01, 0x00, 0x5e, a[1]! & 0x7f, a[2]!, a[3]!]);
  return new Uint8Array([0x33, 0x33, a[12]!, a[13]!, a[14]!, a[15]!]);
}

/** Parses "aa:bb:cc:dd:ee:ff"; null when malformed. */
export function parseMac(text: string): Uint8Array | null {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) return null;
  return new Uint8Array(parts.map((p) => parseInt(p, 16)));
}

/** Formats a MAC as lower-case "aa:bb:cc:dd:ee:ff". */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}
