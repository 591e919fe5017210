/**
 * Ethernet II frames (IEEE 802.3 clause 3.2.6 with DIX type field) and their 802.1Q / 802.1ad (QinQ) VLAN tags.
 * The frame handed to us carries no preamble and no FCS.
 */

/** EtherType of IPv4 (RFC 894). */
export const ETHERTYPE_IPV4 = 0x0800;
/** EtherType of ARP (RFC 826). */
export const ETHERTYPE_ARP = 0x0806;
/** EtherType of IPv6 (RFC 2464 §3). */
export const ETHERTYPE_IPV6 = 0x86dd;
/** Tag protocol identifier of an IEEE 802.1Q VLAN tag. */
export const ETHERTYPE_VLAN = 0x8100;
/** Tag protocol identifier of an IEEE 802.1ad service (outer, QinQ) tag. */
export const ETHERTYPE_QINQ = 0x88a8;
/** Length of an untagged Ethernet II header. */
export const ETHERNET_HEADER_LEN = 14;
/** Length of one VLAN tag (TPID + TCI). */
export const VLAN_TAG_LEN = 4;
/** Most VLAN tags a frame may carry (one service tag and one customer tag). */
export const MAX_VLAN_TAGS = 2;
/** The broadcast MAC address ff:ff:ff:ff:ff:ff. */
export const MAC_BROADCAST: Uint8Array = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/*
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Destination MAC address                    |
 * +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                               |                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
 * |                      Source MAC address                       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     EtherType or TPID         |  (per tag:) PCP|D|  VLAN ID   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  next EtherType or TPID ...   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
const F = {
  DST: 0,
  SRC: 6,
  TYPE: 12,
  // Within a tag, relative to its TPID.
  TCI: 2,
} as const;

/** One VLAN tag, outermost first in a frame. */
export interface VlanTag {
  /** Tag protocol identifier: ETHERTYPE_VLAN or ETHERTYPE_QINQ. */
  readonly tpid: number;
  /** Priority code point (IEEE 802.1p), 0–7. */
  readonly pcp: number;
  /** Drop eligible indicator. */
  readonly dei: boolean;
  /** VLAN identifier, 0–4095. */
  readonly id: number;
}

function isTpid(type: number): boolean {
  return type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ;
}

/** A zero-copy view of an Ethernet II frame; address getters return subarray views (copy to keep them). */
export class EthernetPacket {
  /** Wraps a frame starting at its destination address; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /** Validates the header and its VLAN tags once; returns the view or a drop reason. */
  static check(buf: Uint8Array): EthernetPacket | string {
    if (buf.length < ETHERNET_HEADER_LEN) return 'truncated';
    let off = F.TYPE;
    let tags = 0;
    while (isTpid((buf[off]! << 8) | buf[off + 1]!)) {
      if (++tags > MAX_VLAN_TAGS) return 'too-many-vlan-tags';
      off += VLAN_TAG_LEN;
      if (buf.length < off + 2) return 'truncated';
    }
    return new EthernetPacket(buf);
  }

  /** Destination MAC address (view). */
  get dst(): Uint8Array {
    return this.buffer.subarray(F.DST, F.DST + 6);
  }
  set dst(mac: Uint8Array) {
    this.buffer.set(mac.subarray(0, 6), F.DST);
  }

  /** Source MAC address (view). */
  get src(): Uint8Array {
    return this.buffer.subarray(F.SRC, F.SRC + 6);
  }
  set src(mac: Uint8Array) {
    this.buffer.set(mac.subarray(0, 6), F.SRC);
  }

  /** Number of VLAN tags (0, 1 or 2 after `check`). */
  get tagCount(): number {
    const b = this.buffer;
    let off = F.TYPE;
    let n = 0;
    while (n < MAX_VLAN_TAGS && isTpid((b[off]! << 8) | b[off + 1]!)) {
      n++;
      off += VLAN_TAG_LEN;
    }
    return n;
  }

  // Offset of the innermost EtherType field.
  private get typeOffset(): number {
    return F.TYPE + this.tagCount * VLAN_TAG_LEN;
  }

  /** The innermost EtherType, i.e. the protocol of the payload. */
  get etherType(): number {
    const off = this.typeOffset;
    return (this.buffer[off]! << 8) | this.buffer[off + 1]!;
  }
  set etherType(v: number) {
    const off = this.typeOffset;
    this.buffer[off] = v >>> 8;
    this.buffer[off + 1] = v & 0xff;
  }

  /** The VLAN tags, outermost first. */
  get vlanTags(): VlanTag[] {
    const out: VlanTag[] = [];
    const b = this.buffer;
    const n = this.tagCount;
    for (let i = 0, off = F.TYPE; i < n; i++, off += VLAN_TAG_LEN) {
      const tci = (b[off + F.TCI]! << 8) | b[off + F.TCI + 1]!;
      out.push({ tpid: (b[off]! << 8) | b[off + 1]!, pcp: tci >>> 13, dei: (tci & 0x1000) !== 0, id: tci & 0xfff });
    }
    return out;
  }

  /** The VLAN ids, outermost first; empty when untagged. */
  get vlanIds(): number[] {
    return this.vlanTags.map((t) => t.id);
  }

  /** The innermost (customer) VLAN id, or undefined when untagged. */
  get vlanId(): number | undefined {
    const n = this.tagCount;
    if (n === 0) return undefined;
    const off = F.TYPE + (n - 1) * VLAN_TAG_LEN + F.TCI;
    return ((this.buffer[off]! << 8) | this.buffer[off + 1]!) & 0xfff;
  }

  /** Header length: 14, 18 or 22 bytes. */
  get headerLength(): number {
    return this.typeOffset + 2;
  }

  /** The bytes after the header (may include padding up to the 60-byte minimum frame). */
  get payload(): Uint8Array {
    return this.buffer.subarray(this.headerLength);
  }
}

/** The Ethernet header fields the stack builds and reads. */
export interface EthernetRepr {
  /** Destination MAC. */
  readonly dst: Uint8Array;
  /** Source MAC. */
  readonly src: Uint8Array;
  /** The innermost EtherType. */
  readonly etherType: number;
  /** VLAN tags, outermost first; absent or empty when untagged. */
  readonly vlans?: readonly VlanTag[];
}

/** Reads a checked frame into a Repr (MACs copied); rejects IEEE 802.3 length-field frames. */
export function parseEthernet(pkt: EthernetPacket): EthernetRepr | string {
  const etherType = pkt.etherType;
  // Values up to 1500 are an 802.3 length, 1501–1535 undefined; only Ethernet II carries IP (RFC 894).
  if (etherType < 0x0600) return 'not-ethernet-ii';
  const vlans = pkt.vlanTags;
  const r: EthernetRepr = { dst: pkt.dst.slice(), src: pkt.src.slice(), etherType };
  return vlans.length > 0 ? { ...r, vlans } : r;
}

/** Bytes the header of `r` occupies. */
export function ethernetHeaderLength(r: EthernetRepr): number {
  return ETHERNET_HEADER_LEN + (r.vlans?.length ?? 0) * VLAN_TAG_LEN;
}

/** Writes the header of `r` at `offset`; returns bytes written. */
export function emitEthernet(r: EthernetRepr, buf: Uint8Array, offset = 0): number {
  buf.set(r.dst.subarray(0, 6), offset + F.DST);
  buf.set(r.src.subarray(0, 6), offset + F.SRC);
  let off = offset + F.TYPE;
  for (const tag of r.vlans ?? []) {
    const tci = ((tag.pcp & 7) << 13) | (tag.dei ? 0x1000 : 0) | (tag.id & 0xfff);
    buf[off] = tag.tpid >>> 8;
    buf[off + 1] = tag.tpid & 0xff;
    buf[off + 2] = tci >>> 8;
    buf[off + 3] = tci & 0xff;
    off += VLAN_TAG_LEN;
  }
  buf[off] = r.etherType >>> 8;
  buf[off + 1] = r.etherType & 0xff;
  return off + 2 - offset;
}
