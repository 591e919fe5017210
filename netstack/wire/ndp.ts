/**
 * Neighbor Discovery for IPv6 (RFC 4861 §4): router and neighbour solicitation/advertisement and redirect
 * messages, which are ICMPv6 messages, and their options (§4.6), with the validity checks of §6.1 and §7.1.
 */
import { type Address, isMulticast, isLinkLocalV6, isUnspecified } from '../addr.ts';
import { get16, get32, set16, set32 } from './bytes.ts';
import { finishChecksum, pseudoHeaderSum, sum16 } from './checksum.ts';

/** Router Solicitation. */
export const NDP_ROUTER_SOLICIT = 133;
/** Router Advertisement. */
export const NDP_ROUTER_ADVERT = 134;
/** Neighbor Solicitation. */
export const NDP_NEIGHBOR_SOLICIT = 135;
/** Neighbor Advertisement. */
export const NDP_NEIGHBOR_ADVERT = 136;
/** Redirect. */
export const NDP_REDIRECT = 137;
/** Option: Source Link-Layer Address. */
export const NDP_OPT_SOURCE_LL = 1;
/** Option: Target Link-Layer Address. */
export const NDP_OPT_TARGET_LL = 2;
/** Option: Prefix Information. */
export const NDP_OPT_PREFIX_INFO = 3;
/** Option: Redirected Header. */
export const NDP_OPT_REDIRECTED_HEADER = 4;
/** Option: MTU. */
export const NDP_OPT_MTU = 5;
/** Option: Nonce, carried by DAD probes to detect looped-back solicitations (RFC 7527 §4). */
export const NDP_OPT_NONCE = 14;
/** Hop limit every NDP message must arrive with (RFC 4861 §6.1.1, §7.1.1). */
export const NDP_HOP_LIMIT = 255;

const PROTO_ICMPV6 = 58;

/*
 * Router Solicitation (133)           Router Advertisement (134)
 * +-------+-------+---------------+   +-------+-------+---------------+
 * | Type  | Code  |   Checksum    |   | Type  | Code  |   Checksum    |
 * +-------+-------+---------------+   +-------+-+-+---+---------------+
 * |           Reserved            |   |CurHopL|M|O|Res|Router Lifetime|
 * +-------------------------------+   +-------+-+-+---+---------------+
 * | Options ...                       |        Reachable Time         |
 *                                     +-------------------------------+
 *                                     |         Retrans Timer         |
 *                                     +-------------------------------+
 *                                     | Options ...
 *
 * Neighbor Solicitation (135) / Advertisement (136)   Redirect (137)
 * +-------+-------+---------------+                   +-------+-------+---------------+
 * | Type  | Code  |   Checksum    |                   | Type  | Code  |   Checksum    |
 * +-+-+-+-+-------+---------------+                   +-------+-------+---------------+
 * |R|S|O|       Reserved          | (NA flags)        |           Reserved            |
 * +-+-+-+-------------------------+                   +-------------------------------+
 * |      Target Address (16)      |                   |      Target Address (16)      |
 * +-------------------------------+                   +-------------------------------+
 * | Options ...                                       |   Destination Address (16)    |
 *                                                     +-------------------------------+
 *                                                     | Options ...
 *
 * Option (RFC 4861 §4.6): | Type | Length (8-byte units, never 0) | data ... |
 */
const F = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  CUR_HOP_LIMIT: 4,
  RA_FLAGS: 5,
  ROUTER_LIFETIME: 6,
  REACHABLE_TIME: 8,
  RETRANS_TIMER: 12,
  NA_FLAGS: 4,
  TARGET: 8,
  DESTINATION: 24,
} as const;

// Where the options start, by message type; also the minimum message length.
const OPTIONS_AT: Readonly<Record<number, number>> = {
  [NDP_ROUTER_SOLICIT]: 8,
  [NDP_ROUTER_ADVERT]: 16,
  [NDP_NEIGHBOR_SOLICIT]: 24,
  [NDP_NEIGHBOR_ADVERT]: 24,
  [NDP_REDIRECT]: 40,
};

const RA_MANAGED = 0x80;
const RA_OTHER = 0x40;
const NA_ROUTER = 0x80;
const NA_SOLICITED = 0x40;
const NA_OVERRIDE = 0x20;

/** A zero-copy view of an NDP message (an ICMPv6 message of type 133–137); address getters return views. */
export class NdpPacket {
  /** Wraps a message starting at its ICMPv6 type octet; no checks (use `check`). */
  constructor(readonly buffer: Uint8Array) {}

  /** Validates that the type is an NDP type and its fixed part fits; returns the view or a drop reason. */
  static check(buf: Uint8Array): NdpPacket | string {
    if (buf.length < 8) return 'truncated';
    const min = OPTIONS_AT[buf[F.TYPE]!];
    if (min === undefined) return 'not-ndp';
    if (buf.length < min) return 'truncated';
    return new NdpPacket(buf);
  }

  /** ICMPv6 Type (133–137). */
  get type(): number {
    return this.buffer[F.TYPE]!;
  }

  /** ICMPv6 Code (0). */
  get code(): number {
    return this.buffer[F.CODE]!;
  }

  /** Checksum as stored. */
  get checksum(): number {
    return get16(this.buffer, F.CHECKSUM);
  }
  set checksum(v: number) {
    set16(this.buffer, F.CHECKSUM, v);
  }

  /** RA Cur Hop Limit (0: unspecified). */
  get curHopLimit(): number {
    return this.buffer[F.CUR_HOP_LIMIT]!;
  }

  /** RA M flag: addresses available via DHCPv6. */
  get managed(): boolean {
    return (this.buffer[F.RA_FLAGS]! & RA_MANAGED) !== 0;
  }

  /** RA O flag: other configuration via DHCPv6. */
  get other(): boolean {
    return (this.buffer[F.RA_FLAGS]! & RA_OTHER) !== 0;
  }

  /** RA Router Lifetime in seconds (0: not a default router). */
  get routerLifetime(): number {
    return get16(this.buffer, F.ROUTER_LIFETIME);
  }

  /** RA Reachable Time in milliseconds (0: unspecified). */
  get reachableTime(): number {
    return get32(this.buffer, F.REACHABLE_TIME);
  }

  /** RA Retrans Timer in milliseconds (0: unspecified). */
  get retransTimer(): number {
    return get32(this.buffer, F.RETRANS_TIMER);
  }

  /** NA R flag: sender is a router. */
  get router(): boolean {
    return (this.buffer[F.NA_FLAGS]! & NA_ROUTER) !== 0;
  }

  /** NA S flag: sent in response to a solicitation. */
  get solicited(): boolean {
    return (this.buffer[F.NA_FLAGS]! & NA_SOLICITED) !== 0;
  }

  /** NA O flag: override an existing cache entry. */
  get override(): boolean {
    return (this.buffer[F.NA_FLAGS]! & NA_OVERRIDE) !== 0;
  }

  /** NS/NA/Redirect Target Address (view). */
  get target(): Address {
    return this.buffer.subarray(F.TARGET, F.TARGET + 16);
  }

  /** Redirect Destination Address (view). */
  get destination(): Address {
    return this.buffer.subarray(F.DESTINATION, F.DESTINATION + 16);
  }

  /** Length of the fixed part before the options. */
  get headerLength(): number {
    return OPTIONS_AT[this.type] ?? 8;
  }

  /** The options area (view). */
  get options(): Uint8Array {
    return this.buffer.subarray(this.headerLength);
  }

  /** Whether the ICMPv6 checksum with the pseudo-header of src/dst verifies (RFC 4443 §2.3). */
  verifyChecksum(src: Address, dst: Address): boolean {
    return finishChecksum(sum16(this.buffer, pseudoHeaderSum(src, dst, PROTO_ICMPV6, this.buffer.length))) === 0;
  }

  /** Computes and stores the ICMPv6 checksum with the pseudo-header of src/dst. */
  fillChecksum(src: Address, dst: Address): void {
    this.checksum = 0;
    this.checksum = finishChecksum(sum16(this.buffer, pseudoHeaderSum(src, dst, PROTO_ICMPV6, this.buffer.length)));
  }
}

/** Prefix Information (RFC 4861 §4.6.2). */
export interface NdpPrefixInfo {
  /** Prefix length in bits. */
  readonly prefixLength: number;
  /** L flag: the prefix is on-link. */
  readonly onLink: boolean;
  /** A flag: usable for stateless address autoconfiguration (RFC 4862). */
  readonly autonomous: boolean;
  /** Valid lifetime in seconds (0xffffffff: infinity). */
  readonly validLifetime: number;
  /** Preferred lifetime in seconds (0xffffffff: infinity). */
  readonly preferredLifetime: number;
  /** The prefix (16 bytes). */
  readonly prefix: Address;
}

/** One NDP option; byte fields are views into the message. */
export type NdpOption =
  | { readonly kind: 'source-link-layer' | 'target-link-layer'; readonly type: number; readonly address: Uint8Array }
  | ({ readonly kind: 'prefix-info'; readonly type: number } & NdpPrefixInfo)
  | { readonly kind: 'redirected-header'; readonly type: number; readonly data: Uint8Array }
  | { readonly kind: 'mtu'; readonly type: number; readonly mtu: number }
  | { readonly kind: 'nonce'; readonly type: number; readonly nonce: Uint8Array }
  | { readonly kind: 'unknown'; readonly type: number; readonly data: Uint8Array };

/**
 * Decodes an options area; a zero-length or overrunning option, or a known option of the wrong size, makes
 * the whole packet invalid (RFC 4861 §4.6: "Nodes MUST silently discard an ND packet that contains an option
 * with length zero"). Unknown options are kept as `unknown` for the caller to ignore.
 */
export function ndpOptions(area: Uint8Array): NdpOption[] | string {
  const out: NdpOption[] = [];
  let i = 0;
  while (i < area.length) {
    if (i + 2 > area.length) return 'truncated-option';
    const type = area[i]!;
    const units = area[i + 1]!;
    if (units === 0) return 'zero-length-option';
    const len = units * 8;
    if (i + len > area.length) return 'truncated-option';
    const o = area.subarray(i, i + len);
    switch (type) {
      case NDP_OPT_SOURCE_LL:
      case NDP_OPT_TARGET_LL:
        // For Ethernet (RFC 2464 §8) the address is 6 bytes in a one-unit option; other links keep the padding.
        out.push({
          kind: type === NDP_OPT_SOURCE_LL ? 'source-link-layer' : 'target-link-layer',
          type,
          address: units === 1 ? o.subarray(2, 8) : o.subarray(2),
        });
        break;
      case NDP_OPT_PREFIX_INFO:
        if (units !== 4) return 'bad-option-length';
        out.push({
          kind: 'prefix-info',
          type,
          prefixLength: o[2]!,
          onLink: (o[3]! & 0x80) !== 0,
          autonomous: (o[3]! & 0x40) !== 0,
          validLifetime: get32(o, 4),
          preferredLifetime: get32(o, 8),
          prefix: o.subarray(16, 32),
        });
        break;
      case NDP_OPT_REDIRECTED_HEADER:
        out.push({ kind: 'redirected-header', type, data: o.subarray(8) });
        break;
      case NDP_OPT_MTU:
        if (units !== 1) return 'bad-option-length';
        out.push({ kind: 'mtu', type, mtu: get32(o, 4) });
        break;
      case NDP_OPT_NONCE:
        out.push({ kind: 'nonce', type, nonce: o.subarray(2) });
        break;
      default:
        out.push({ kind: 'unknown', type, data: o.subarray(2) });
    }
    i += len;
  }
  return out;
}

/** The NDP messages the stack sends and understands; addresses are copies. */
export type NdpRepr =
  | { readonly kind: 'router-solicit'; readonly sourceLinkLayer?: Uint8Array }
  | {
      readonly kind: 'router-advert';
      readonly curHopLimit: number;
      readonly managed: boolean;
      readonly other: boolean;
      readonly routerLifetime: number;
      readonly reachableTime: number;
      readonly retransTimer: number;
      readonly sourceLinkLayer?: Uint8Array;
      readonly mtu?: number;
      readonly prefixes: readonly NdpPrefixInfo[];
    }
  | {
      readonly kind: 'neighbor-solicit';
      readonly target: Address;
      readonly sourceLinkLayer?: Uint8Array;
      /** The DAD nonce (RFC 7527), usually 6 bytes. */
      readonly nonce?: Uint8Array;
    }
  | {
      readonly kind: 'neighbor-advert';
      readonly router: boolean;
      readonly solicited: boolean;
      readonly override: boolean;
      readonly target: Address;
      readonly targetLinkLayer?: Uint8Array;
    }
  | {
      readonly kind: 'redirect';
      readonly target: Address;
      readonly destination: Address;
      readonly targetLinkLayer?: Uint8Array;
      /** The Redirected Header option's data: as much of the redirected packet as fitted. */
      readonly redirectedHeader?: Uint8Array;
    };

/**
 * Validates a checked message as RFC 4861 §6.1.1/§6.1.2/§7.1.1/§7.1.2/§8.1 require, given the IPv6 source,
 * destination and hop limit it arrived with (checksum, hop limit 255, code 0, options, address rules), and
 * reads it into a Repr.
 */
export function parseNdp(pkt: NdpPacket, src: Address, dst: Address, hopLimit: number): NdpRepr | string {
  if (hopLimit !== NDP_HOP_LIMIT) return 'bad-hop-limit';
  if (!pkt.verifyChecksum(src, dst)) return 'bad-checksum';
  if (pkt.code !== 0) return 'bad-code';
  const opts = ndpOptions(pkt.options);
  if (typeof opts === 'string') return opts;
  let sll: Uint8Array | undefined;
  let tll: Uint8Array | undefined;
  let mtu: number | undefined;
  let redirected: Uint8Array | undefined;
  let nonce: Uint8Array | undefined;
  const prefixes: NdpPrefixInfo[] = [];
  for (const o of opts) {
    if (o.kind === 'source-link-layer') sll ??= o.address.slice();
    else if (o.kind === 'target-link-layer') tll ??= o.address.slice();
    else if (o.kind === 'mtu') mtu ??= o.mtu;
    else if (o.kind === 'redirected-header') redirected ??= o.data;
    else if (o.kind === 'nonce') nonce ??= o.nonce.slice();
    else if (o.kind === 'prefix-info') {
      const { kind: _k, type: _t, ...p } = o;
      prefixes.push({ ...p, prefix: p.prefix.slice() });
    }
  }
  const unspecifiedSrc = isUnspecified(src);
  switch (pkt.type) {
    case NDP_ROUTER_SOLICIT:
      // §6.1.1: an unspecified source must not carry a source link-layer address.
      if (unspecifiedSrc && sll) return 'sll-from-unspecified';
      return sll ? { kind: 'router-solicit', sourceLinkLayer: sll } : { kind: 'router-solicit' };
    case NDP_ROUTER_ADVERT: {
      // §6.1.2: advertisements come from the router's link-local address.
      if (!isLinkLocalV6(src)) return 'source-not-link-local';
      const r = {
        kind: 'router-advert' as const,
        curHopLimit: pkt.curHopLimit,
        managed: pkt.managed,
        other: pkt.other,
        routerLifetime: pkt.routerLifetime,
        reachableTime: pkt.reachableTime,
        retransTimer: pkt.retransTimer,
        prefixes,
      };
      return { ...r, ...(sll ? { sourceLinkLayer: sll } : {}), ...(mtu !== undefined ? { mtu } : {}) };
    }
    case NDP_NEIGHBOR_SOLICIT: {
      // §7.1.1: the target is never multicast; DAD probes (unspecified source) go to a solicited-node address.
      if (isMulticast(pkt.target)) return 'multicast-target';
      if (unspecifiedSrc && (sll || !isSolicitedNode(dst))) return 'bad-dad-probe';
      const r = { kind: 'neighbor-solicit' as const, target: pkt.target.slice() };
      return { ...r, ...(sll ? { sourceLinkLayer: sll } : {}), ...(nonce ? { nonce } : {}) };
    }
    case NDP_NEIGHBOR_ADVERT: {
      // §7.1.2: the target is never multicast, and a multicast advertisement is never "solicited".
      if (isMulticast(pkt.target)) return 'multicast-target';
      if (isMulticast(dst) && pkt.solicited) return 'solicited-to-multicast';
      const r = {
        kind: 'neighbor-advert' as const,
        router: pkt.router,
        solicited: pkt.solicited,
        override: pkt.override,
        target: pkt.target.slice(),
      };
      return tll ? { ...r, targetLinkLayer: tll } : r;
    }
    default: {
      // §8.1: redirects come from a link-local address and never name a multicast destination.
      if (!isLinkLocalV6(src)) return 'source-not-link-local';
      if (isMulticast(pkt.destination)) return 'multicast-destination';
      const r = { kind: 'redirect' as const, target: pkt.target.slice(), destination: pkt.destination.slice() };
      return {
        ...r,
        ...(tll ? { targetLinkLayer: tll } : {}),
        ...(redirected ? { redirectedHeader: redirected.slice() } : {}),
      };
    }
  }
}

function isSolicitedNode(a: Address): boolean {
  // ff02::1:ffXX:XXXX (RFC 4291 §2.7.1).
  const prefix = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff];
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
  return true;
}

function llOptionLength(ll: Uint8Array | undefined): number {
  return ll ? (ll.length + 2 + 7) & ~7 : 0;
}

/** Bytes the whole message of `r` occupies, options included. */
export function ndpHeaderLength(r: NdpRepr): number {
  switch (r.kind) {
    case 'router-solicit':
      return 8 + llOptionLength(r.sourceLinkLayer);
    case 'router-advert':
      return 16 + llOptionLength(r.sourceLinkLayer) + (r.mtu !== undefined ? 8 : 0) + 32 * r.prefixes.length;
    case 'neighbor-solicit':
      return 24 + llOptionLength(r.sourceLinkLayer) + llOptionLength(r.nonce);
    case 'neighbor-advert':
      return 24 + llOptionLength(r.targetLinkLayer);
    case 'redirect':
      return 40 + llOptionLength(r.targetLinkLayer) + (r.redirectedHeader ? redirectedLength(r.redirectedHeader) : 0);
  }
}

function redirectedLength(data: Uint8Array): number {
  return (8 + data.length + 7) & ~7;
}

// Writes a type/length/bytes option padded to 8-byte units (link-layer address or nonce).
function emitLl(type: number, ll: Uint8Array | undefined, buf: Uint8Array, off: number): number {
  if (!ll) return off;
  const len = llOptionLength(ll);
  buf[off] = type;
  buf[off + 1] = len / 8;
  buf.set(ll, off + 2);
  buf.fill(0, off + 2 + ll.length, off + len);
  return off + len;
}

/**
 * Writes the whole message of `r` at `offset` with a zero checksum (it needs the IPv6 pseudo-header: call
 * `NdpPacket.fillChecksum`); options in the order link-layer address, nonce or MTU, prefixes. Returns bytes written.
 */
export function emitNdp(r: NdpRepr, buf: Uint8Array, offset = 0): number {
  const len = ndpHeaderLength(r);
  const m = buf.subarray(offset, offset + len);
  m.fill(0, 0, Math.min(len, 40));
  let off: number;
  switch (r.kind) {
    case 'router-solicit':
      m[F.TYPE] = NDP_ROUTER_SOLICIT;
      off = emitLl(NDP_OPT_SOURCE_LL, r.sourceLinkLayer, m, 8);
      break;
    case 'router-advert':
      m[F.TYPE] = NDP_ROUTER_ADVERT;
      m[F.CUR_HOP_LIMIT] = r.curHopLimit;
      m[F.RA_FLAGS] = (r.managed ? RA_MANAGED : 0) | (r.other ? RA_OTHER : 0);
      set16(m, F.ROUTER_LIFETIME, r.routerLifetime);
      set32(m, F.REACHABLE_TIME, r.reachableTime);
      set32(m, F.RETRANS_TIMER, r.retransTimer);
      off = emitLl(NDP_OPT_SOURCE_LL, r.sourceLinkLayer, m, 16);
      if (r.mtu !== undefined) {
        m[off] = NDP_OPT_MTU;
        m[off + 1] = 1;
        set16(m, off + 2, 0);
        set32(m, off + 4, r.mtu);
        off += 8;
      }
      for (const p of r.prefixes) {
        m[off] = NDP_OPT_PREFIX_INFO;
        m[off + 1] = 4;
        m[off + 2] = p.prefixLength;
        m[off + 3] = (p.onLink ? 0x80 : 0) | (p.autonomous ? 0x40 : 0);
        set32(m, off + 4, p.validLifetime);
        set32(m, off + 8, p.preferredLifetime);
        set32(m, off + 12, 0);
        m.set(p.prefix.subarray(0, 16), off + 16);
        off += 32;
      }
      break;
    case 'neighbor-solicit':
      m[F.TYPE] = NDP_NEIGHBOR_SOLICIT;
      m.set(r.target.subarray(0, 16), F.TARGET);
      off = emitLl(NDP_OPT_SOURCE_LL, r.sourceLinkLayer, m, 24);
      off = emitLl(NDP_OPT_NONCE, r.nonce, m, off);
      break;
    case 'neighbor-advert':
      m[F.TYPE] = NDP_NEIGHBOR_ADVERT;
      m[F.NA_FLAGS] = (r.router ? NA_ROUTER : 0) | (r.solicited ? NA_SOLICITED : 0) | (r.override ? NA_OVERRIDE : 0);
      m.set(r.target.subarray(0, 16), F.TARGET);
      off = emitLl(NDP_OPT_TARGET_LL, r.targetLinkLayer, m, 24);
      break;
    case 'redirect':
      m[F.TYPE] = NDP_REDIRECT;
      m.set(r.target.subarray(0, 16), F.TARGET);
      m.set(r.destination.subarray(0, 16), F.DESTINATION);
      off = emitLl(NDP_OPT_TARGET_LL, r.targetLinkLayer, m, 40);
      if (r.redirectedHeader) {
        const rl = redirectedLength(r.redirectedHeader);
        m[off] = NDP_OPT_REDIRECTED_HEADER;
        m[off + 1] = rl / 8;
        m.fill(0, off + 2, off + 8);
        m.set(r.redirectedHeader, off + 8);
        m.fill(0, off + 8 + r.redirectedHeader.length, off + rl);
        off += rl;
      }
      break;
  }
  return off;
}
