/**
 * Hand-built Ethernet frames for the host-link tests: ARP, ICMPv4 echo and UDP over IPv4, as plain bytes.
 * Deliberately independent of netstack/wire (written in parallel), so these tests check lib/ alone.
 */
import { parseAddress, parseMac } from '../../netstack/addr.ts';

/** MAC text → bytes (throws when malformed). */
export function mac(text: string): Uint8Array {
  const m = parseMac(text);
  if (!m) throw new Error(`bad MAC ${text}`);
  return m;
}

/** IPv4 text → 4 bytes (throws when malformed). */
export function ip4(text: string): Uint8Array {
  const a = parseAddress(text);
  if (!a || a.length !== 4) throw new Error(`bad IPv4 ${text}`);
  return a;
}

/** The Internet checksum (RFC 1071) of `b`, starting from `init` (a partial sum). */
export function checksum(b: Uint8Array, init = 0): number {
  let sum = init;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const BROADCAST = new Uint8Array([255, 255, 255, 255, 255, 255]);

function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payloadLen: number): Uint8Array {
  const f = new Uint8Array(14 + payloadLen);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  return f;
}

/** An ARP packet (RFC 826) over Ethernet: op 1 request (to broadcast) or 2 reply. */
export function arp(op: 1 | 2, srcMac: Uint8Array, srcIp: Uint8Array, dstMac: Uint8Array, dstIp: Uint8Array): Uint8Array {
  const f = ethernet(op === 1 ? BROADCAST : dstMac, srcMac, 0x0806, 28);
  f.set([0, 1, 8, 0, 6, 4, 0, op], 14);
  f.set(srcMac, 22);
  f.set(srcIp, 28);
  f.set(op === 1 ? new Uint8Array(6) : dstMac, 32);
  f.set(dstIp, 38);
  return f;
}

/** The fields of an ARP frame, or null when the frame is not Ethernet/IPv4 ARP. */
export function parseArp(
  f: Uint8Array,
): { op: number; senderMac: Uint8Array; senderIp: Uint8Array; targetIp: Uint8Array } | null {
  if (f.length < 42 || f[12] !== 0x08 || f[13] !== 0x06) return null;
  return { op: f[21]!, senderMac: f.slice(22, 28), senderIp: f.slice(28, 32), targetIp: f.slice(38, 42) };
}

/** An IPv4 packet in an Ethernet frame with the given protocol and payload, header checksum filled in. */
export function ipv4(
  srcMac: Uint8Array,
  dstMac: Uint8Array,
  src: Uint8Array,
  dst: Uint8Array,
  protocol: number,
  payload: Uint8Array,
): Uint8Array {
  const f = ethernet(dstMac, srcMac, 0x0800, 20 + payload.length);
  const h = f.subarray(14, 34);
  const total = 20 + payload.length;
  h.set([0x45, 0, total >> 8, total & 0xff, 0, 0, 0x40, 0, 64, protocol, 0, 0]);
  h.set(src, 12);
  h.set(dst, 16);
  const c = checksum(h);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  f.set(payload, 34);
  return f;
}

/** Whether the frame is an ICMPv4 echo request (type 8); returns its IPv4 source/destination and ICMP bytes. */
export function parseEchoRequest(f: Uint8Array): { src: Uint8Array; dst: Uint8Array; icmp: Uint8Array } | null {
  if (f.length < 42 || f[12] !== 0x08 || f[13] !== 0x00 || f[14] !== 0x45 || f[23] !== 1) return null;
  const total = (f[16]! << 8) | f[17]!;
  const icmp = f.slice(34, 14 + total);
  if (icmp[0] !== 8) return null;
  return { src: f.slice(26, 30), dst: f.slice(30, 34), icmp };
}

/** The echo reply (RFC 792) answering a request frame, sent from `ourMac`. */
export function echoReply(request: Uint8Array, ourMac: Uint8Array): Uint8Array | null {
  const req = parseEchoRequest(request);
  if (!req) return null;
  const icmp = req.icmp;
  icmp[0] = 0;
  icmp[2] = 0;
  icmp[3] = 0;
  const c = checksum(icmp);
  icmp[2] = c >> 8;
  icmp[3] = c & 0xff;
  return ipv4(ourMac, request.slice(6, 12), req.dst, req.src, 1, icmp);
}

/** A UDP datagram (RFC 768) in IPv4 in Ethernet, with the UDP checksum filled in. */
export function udp(
  srcMac: Uint8Array,
  dstMac: Uint8Array,
  src: Uint8Array,
  dst: Uint8Array,
  srcPort: number,
  dstPort: number,
  data: Uint8Array,
): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  u.set([srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff, u.length >> 8, u.length & 0xff, 0, 0]);
  u.set(data, 8);
  const pseudo = new Uint8Array(12);
  pseudo.set(src, 0);
  pseudo.set(dst, 4);
  pseudo.set([0, 17, u.length >> 8, u.length & 0xff], 8);
  const partial = ~checksum(pseudo) & 0xffff;
  const c = checksum(u, partial) || 0xffff;
  u[6] = c >> 8;
  u[7] = c & 0xff;
  return ipv4(srcMac, dstMac, src, dst, 17, u);
}

/** The one's-complement sum of the IPv4 pseudo-header (RFC 793 §3.1), folded, not complemented. */
export function pseudoSum4(src: Uint8Array, dst: Uint8Array, protocol: number, l4Length: number): number {
  const pseudo = new Uint8Array(12);
  pseudo.set(src, 0);
  pseudo.set(dst, 4);
  pseudo.set([0, protocol, l4Length >> 8, l4Length & 0xff], 8);
  return ~checksum(pseudo) & 0xffff;
}

/**
 * A TCP segment (RFC 793 §3.1, 20-byte header, no options) in IPv4 in Ethernet. With `partial` the checksum
 * field holds only the pseudo-header sum, as a sender leaving the checksum to offload writes it.
 */
export function tcp4(
  srcMac: Uint8Array,
  dstMac: Uint8Array,
  src: Uint8Array,
  dst: Uint8Array,
  ports: [number, number],
  seq: number,
  ack: number,
  flags: number,
  data: Uint8Array,
  partial = false,
): Uint8Array {
  const t = new Uint8Array(20 + data.length);
  const v = new DataView(t.buffer);
  v.setUint16(0, ports[0]);
  v.setUint16(2, ports[1]);
  v.setUint32(4, seq >>> 0);
  v.setUint32(8, ack >>> 0);
  t[12] = 5 << 4;
  t[13] = flags;
  v.setUint16(14, 65535);
  t.set(data, 20);
  const p = pseudoSum4(src, dst, 6, t.length);
  v.setUint16(16, partial ? p : checksum(t, p));
  return ipv4(srcMac, dstMac, src, dst, 6, t);
}

/** Whether an Ethernet/IPv4 frame's IP header checksum and, for TCP or UDP, its L4 checksum verify. */
export function checksumsOk(f: Uint8Array): boolean {
  if (f.length < 34 || f[12] !== 0x08 || f[13] !== 0x00) return false;
  const hl = (f[14]! & 0x0f) * 4;
  const total = (f[16]! << 8) | f[17]!;
  if (checksum(f.subarray(14, 14 + hl)) !== 0) return false;
  const proto = f[23]!;
  if (proto !== 6 && proto !== 17) return true;
  const l4 = f.subarray(14 + hl, 14 + total);
  if (proto === 17 && l4[6] === 0 && l4[7] === 0) return true; // no checksum (IPv4 UDP only)
  return checksum(l4, pseudoSum4(f.subarray(26, 30), f.subarray(30, 34), proto, l4.length)) === 0;
}

/** A TCP segment (20-byte header) in IPv6 (RFC 8200) in Ethernet; with `partial` only the pseudo-header sum. */
export function tcp6(
  srcMac: Uint8Array,
  dstMac: Uint8Array,
  src: Uint8Array,
  dst: Uint8Array,
  ports: [number, number],
  seq: number,
  data: Uint8Array,
  partial = false,
): Uint8Array {
  const f = ethernet(dstMac, srcMac, 0x86dd, 40 + 20 + data.length);
  const v = new DataView(f.buffer);
  f[14] = 0x60;
  v.setUint16(18, 20 + data.length);
  f[20] = 6; // next header: TCP
  f[21] = 64;
  f.set(src, 22);
  f.set(dst, 38);
  const t = f.subarray(54);
  v.setUint16(54, ports[0]);
  v.setUint16(56, ports[1]);
  v.setUint32(58, seq >>> 0);
  t[12] = 5 << 4;
  t[13] = 0x10;
  v.setUint16(68, 65535);
  t.set(data, 20);
  const p = pseudoSum6(src, dst, 6, t.length);
  v.setUint16(70, partial ? p : checksum(t, p));
  return f;
}

/** The one's-complement sum of the IPv6 pseudo-header (RFC 8200 §8.1), folded, not complemented. */
export function pseudoSum6(src: Uint8Array, dst: Uint8Array, next: number, l4Length: number): number {
  const pseudo = new Uint8Array(40);
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  new DataView(pseudo.buffer).setUint32(32, l4Length);
  pseudo[39] = next;
  return ~checksum(pseudo) & 0xffff;
}

/** Whether an Ethernet/IPv6 frame carrying TCP or UDP directly has a valid L4 checksum. */
export function checksums6Ok(f: Uint8Array): boolean {
  if (f.length < 54 || f[12] !== 0x86 || f[13] !== 0xdd) return false;
  const l4 = f.subarray(54, 54 + ((f[18]! << 8) | f[19]!));
  return checksum(l4, pseudoSum6(f.subarray(22, 38), f.subarray(38, 54), f[20]!, l4.length)) === 0;
}
