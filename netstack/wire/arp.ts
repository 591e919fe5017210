/**
 * ARP packets (RFC 826). The view reads any hardware/protocol address sizes; the Repr covers only Ethernet
 * hardware addresses with IPv4 protocol addresses, the only pair the stack resolves.
 */
import { get16, set16 } from './bytes.ts';
import { ETHERTYPE_IPV4 } from './ethernet.ts';

/** ar$hrd value for Ethernet (RFC 826; IANA ARP parameters). */
export const ARP_HTYPE_ETHERNET = 1;
/** ar$op for a request. */
export const ARP_REQUEST = 1;
/** ar$op for a reply. */
export const ARP_REPLY = 2;
/** Length of the fixed part before the addresses. */
export const ARP_FIXED_LEN = 8;
/** Length of an Ethernet/IPv4 ARP packet. */
export const ARP_HEADER_LEN = 28;

/*
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Hardware Type         |         Protocol Type         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  HW Addr Len  | Proto Addr Len|           Operation           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Sender Hardware Address (HLN bytes), Sender Protocol Address |
 * |  (PLN bytes), Target Hardware Address, Target Protocol Address|
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
const F = {
  HTYPE: 0,
  PTYPE: 2,
  HLEN: 4,
  PLEN: 5,
  OPER: 6,
  SHA: 8,
} as const;

/** A zero-copy view of an ARP packet; address getters return subarray views (copy to keep them). */
export class ArpPacket {
  /** Wraps a packet starting at the hardware type; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /** Validates that the fixed part and all four addresses fit; returns the view or a drop reason. */
  static check(buf: Uint8Array): ArpPacket | string {
    if (buf.length < ARP_FIXED_LEN) return 'truncated';
    const p = new ArpPacket(buf);
    if (buf.length < p.headerLength) return 'truncated';
    return p;
  }

  /** ar$hrd: hardware address space. */
  get hardwareType(): number {
    return get16(this.buffer, F.HTYPE);
  }
  set hardwareType(v: number) {
    set16(this.buffer, F.HTYPE, v);
  }

  /** ar$pro: protocol address space (an EtherType). */
  get protocolType(): number {
    return get16(this.buffer, F.PTYPE);
  }
  set protocolType(v: number) {
    set16(this.buffer, F.PTYPE, v);
  }

  /** ar$hln: bytes per hardware address. */
  get hardwareLength(): number {
    return this.buffer[F.HLEN]!;
  }
  set hardwareLength(v: number) {
    this.buffer[F.HLEN] = v;
  }

  /** ar$pln: bytes per protocol address. */
  get protocolLength(): number {
    return this.buffer[F.PLEN]!;
  }
  set protocolLength(v: number) {
    this.buffer[F.PLEN] = v;
  }

  /** ar$op: ARP_REQUEST or ARP_REPLY. */
  get operation(): number {
    return get16(this.buffer, F.OPER);
  }
  set operation(v: number) {
    set16(this.buffer, F.OPER, v);
  }

  // The four addresses follow each other, hardware/protocol alternating: index 0 sha, 1 spa, 2 tha, 3 tpa.
  private field(index: number): Uint8Array {
    const h = this.hardwareLength;
    const p = this.protocolLength;
    const start = F.SHA + (index >>> 1) * (h + p) + (index & 1) * h;
    return this.buffer.subarray(start, start + ((index & 1) === 0 ? h : p));
  }

  /** ar$sha: sender hardware address (view). */
  get senderHardwareAddress(): Uint8Array {
    return this.field(0);
  }
  set senderHardwareAddress(v: Uint8Array) {
    this.field(0).set(v);
  }

  /** ar$spa: sender protocol address (view). */
  get senderProtocolAddress(): Uint8Array {
    return this.field(1);
  }
  set senderProtocolAddress(v: Uint8Array) {
    this.field(1).set(v);
  }

  /** ar$tha: target hardware address (view). */
  get targetHardwareAddress(): Uint8Array {
    return this.field(2);
  }
  set targetHardwareAddress(v: Uint8Array) {
    this.field(2).set(v);
  }

  /** ar$tpa: target protocol address (view). */
  get targetProtocolAddress(): Uint8Array {
    return this.field(3);
  }
  set targetProtocolAddress(v: Uint8Array) {
    this.field(3).set(v);
  }

  /** Length of the packet as its address lengths define it (28 for Ethernet/IPv4). */
  get headerLength(): number {
    return ARP_FIXED_LEN + 2 * (this.hardwareLength + this.protocolLength);
  }
}

/** An Ethernet/IPv4 ARP request or reply. */
export interface ArpRepr {
  /** ARP_REQUEST or ARP_REPLY. */
  readonly operation: number;
  /** Sender MAC (6 bytes). */
  readonly senderHardwareAddress: Uint8Array;
  /** Sender IPv4 address (4 bytes). */
  readonly senderProtocolAddress: Uint8Array;
  /** Target MAC (6 bytes; zero in a request). */
  readonly targetHardwareAddress: Uint8Array;
  /** Target IPv4 address (4 bytes). */
  readonly targetProtocolAddress: Uint8Array;
}

/** Reads a checked packet into a Repr (addresses copied); only Ethernet/IPv4 requests and replies. */
export function parseArp(pkt: ArpPacket): ArpRepr | string {
  if (pkt.hardwareType !== ARP_HTYPE_ETHERNET || pkt.hardwareLength !== 6) return 'unsupported-hardware';
  if (pkt.protocolType !== ETHERTYPE_IPV4 || pkt.protocolLength !== 4) return 'unsupported-protocol';
  const operation = pkt.operation;
  if (operation !== ARP_REQUEST && operation !== ARP_REPLY) return 'bad-operation';
  return {
    operation,
    senderHardwareAddress: pkt.senderHardwareAddress.slice(),
    senderProtocolAddress: pkt.senderProtocolAddress.slice(),
    targetHardwareAddress: pkt.targetHardwareAddress.slice(),
    targetProtocolAddress: pkt.targetProtocolAddress.slice(),
  };
}

/** Bytes `r` occupies: always 28. */
export function arpHeaderLength(_r: ArpRepr): number {
  return ARP_HEADER_LEN;
}

/** Writes `r` at `offset`; returns bytes written (28). */
export function emitArp(r: ArpRepr, buf: Uint8Array, offset = 0): number {
  set16(buf, offset + F.HTYPE, ARP_HTYPE_ETHERNET);
  set16(buf, offset + F.PTYPE, ETHERTYPE_IPV4);
  buf[offset + F.HLEN] = 6;
  buf[offset + F.PLEN] = 4;
  set16(buf, offset + F.OPER, r.operation);
  buf.set(r.senderHardwareAddress.subarray(0, 6), offset + 8);
  buf.set(r.senderProtocolAddress.subarray(0, 4), offset + 14);
  buf.set(r.targetHardwareAddress.subarray(0, 6), offset + 18);
  buf.set(r.targetProtocolAddress.subarray(0, 4), offset + 24);
  return ARP_HEADER_LEN;
}
