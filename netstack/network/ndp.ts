/**
 * Neighbor Discovery for a host (RFC 4861 §7): neighbour solicitations and advertisements feeding the NIC's
 * neighbour cache, answers for our addresses, and duplicate address detection (RFC 4862 §5.4). Router
 * discovery and redirects are not implemented: such messages are counted and ignored.
 */
import { type Address, IPV6_ANY, isMulticast, isUnspecified, multicastMac, solicitedNodeAddress } from '../addr.ts';
import { ETHERNET_HEADER_LEN, ETHERTYPE_IPV6 } from '../wire/ethernet.ts';
import { IPV6_HEADER_LEN, emitIpv6 } from '../wire/ipv6.ts';
import { NDP_HOP_LIMIT, NdpPacket, type NdpRepr, emitNdp, ndpHeaderLength, parseNdp } from '../wire/ndp.ts';
import { PROTO_ICMPV6, type PacketInfo } from '../transport/protocol.ts';
import type { Verdict } from './counters.ts';
import type { StackInternals } from './internals.ts';
import type { Ipv6AddressEntry, Nic } from './nic.ts';

const ALL_NODES = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
/** RetransTimer between DAD probes (RFC 4861 §10). */
const DAD_RETRANS_MS = 1000;

/** Parse failures of wire/ndp.ts mapped to drop counters. */
const PARSE_REASONS: Record<string, string> = {
  'bad-hop-limit': 'ndp.badHopLimit',
  'bad-checksum': 'ndp.badChecksum',
  'bad-code': 'ndp.badCode',
  'truncated-option': 'ndp.badOptions',
  'zero-length-option': 'ndp.badOptions',
  'bad-option-length': 'ndp.badOptions',
};

/** NDP of a stack. */
export class Ndp {
  constructor(private readonly s: StackInternals) {}

  /** Handles one received NDP message (an ICMPv6 message of type 133–137). */
  receive(nic: Nic, msg: Uint8Array, info: PacketInfo, _tentative: boolean): Verdict {
    const c = this.s.counters.ndp;
    const p = NdpPacket.check(msg);
    if (typeof p === 'string') return 'ndp.truncated';
    const r = parseNdp(p, info.src, info.dst, info.ttl);
    if (typeof r === 'string') return PARSE_REASONS[r] ?? 'ndp.invalid';
    if (r.kind === 'neighbor-solicit') {
      c.rxSolicits++;
      return this.onSolicit(nic, r.target, r.sourceLinkLayer, info);
    }
    if (r.kind === 'neighbor-advert') {
      c.rxAdverts++;
      return this.onAdvert(nic, r.target, r.targetLinkLayer, r.solicited, r.override);
    }
    return 'ndp.ignoredType';
  }

  /**
   * Sends a solicitation for `target`: to its solicited-node group, or unicast to `mac` (RFC 4861 §7.2.2),
   * from the prompting packet's source when that is an assigned address of the NIC (§7.2.2 SHOULD).
   */
  solicit(nic: Nic, target: Address, mac: Uint8Array | undefined, prompt?: Uint8Array): void {
    const promptSrc = prompt && prompt.length >= 54 ? prompt.subarray(22, 38) : undefined;
    const src = promptSrc && nic.hasV6(promptSrc) ? promptSrc.slice() : this.sourceFor(nic);
    // Without an assigned address we cannot ask: an NS from :: would be a DAD probe (RFC 4861 §7.2.2).
    if (!src) return;
    const dst = mac ? target : solicitedNodeAddress(target);
    this.s.counters.ndp.txSolicits++;
    this.send(nic, src, dst, mac ?? multicastMac(dst), { kind: 'neighbor-solicit', target, sourceLinkLayer: nic.mac });
  }

  /** Starts duplicate address detection for a tentative address (RFC 4862 §5.4.2). */
  startDad(nic: Nic, e: Ipv6AddressEntry): void {
    this.dadProbe(nic, e);
  }

  private dadProbe(nic: Nic, e: Ipv6AddressEntry): void {
    if (e.state !== 'tentative' || this.s.nic(nic.id) !== nic) return;
    if (e.probesLeft <= 0) {
      this.s.counters.ndp.dadSucceeded++;
      this.s.addressReady(nic, e, true);
      return;
    }
    e.probesLeft--;
    this.s.counters.ndp.dadProbes++;
    const a = e.subnet.address;
    const dst = solicitedNodeAddress(a);
    this.send(nic, IPV6_ANY, dst, multicastMac(dst), { kind: 'neighbor-solicit', target: a });
    e.timer = this.s.clock.schedule(DAD_RETRANS_MS, () => {
      e.timer = undefined;
      this.dadProbe(nic, e);
    });
  }

  private dadFailed(nic: Nic, e: Ipv6AddressEntry): void {
    this.s.stats.count(this.s.counters.ndp, 'ndp', 'dadFailed');
    this.s.addressReady(nic, e, false);
  }

  private onSolicit(nic: Nic, target: Address, sll: Uint8Array | undefined, info: PacketInfo): Verdict {
    const e = nic.findV6(target);
    if (!e || e.state === 'duplicate') return 'ndp.notForUs';
    const dadProbe = isUnspecified(info.src);
    if (e.state === 'tentative') {
      // RFC 4862 §5.4.3: another node probing the same tentative address means it is a duplicate; resolution
      // requests for it are ignored.
      if (!dadProbe) return 'ndp.tentativeTarget';
      this.dadFailed(nic, e);
      return undefined;
    }
    if (dadProbe) {
      // RFC 4861 §7.2.4: answer a DAD probe to all-nodes, unsolicited, so the prober sees the conflict.
      this.advertise(nic, target, ALL_NODES, multicastMac(ALL_NODES), false);
      return undefined;
    }
    // RFC 4861 §7.2.3: the source link-layer option creates or updates the solicitor's entry.
    if (sll && sll.length === 6) nic.ndp.learn(info.src, sll, true);
    this.advertise(nic, target, info.src, undefined, true);
    return undefined;
  }

  private onAdvert(nic: Nic, target: Address, tll: Uint8Array | undefined, solicited: boolean, override: boolean): Verdict {
    const e = nic.findV6(target);
    if (e) {
      // RFC 4862 §5.4.4: an advertisement for a tentative address of ours means it is a duplicate.
      if (e.state === 'tentative') {
        this.dadFailed(nic, e);
        return undefined;
      }
      this.s.stats.count(this.s.counters.ndp, 'ndp', 'conflicts');
      return 'ndp.conflict';
    }
    if (tll && tll.length !== 6) return 'ndp.badOptions';
    nic.ndp.advertise(target, tll, solicited, override);
    return undefined;
  }

  // RFC 4861 §7.2.4: S set when answering a unicast solicitation, O set (we are no anycast responder),
  // target link-layer address always included.
  private advertise(nic: Nic, target: Address, dst: Address, dstMac: Uint8Array | undefined, solicited: boolean): void {
    this.s.counters.ndp.txAdverts++;
    this.send(nic, target, dst, dstMac, {
      kind: 'neighbor-advert',
      router: false,
      solicited,
      override: true,
      target,
      targetLinkLayer: nic.mac,
    });
  }

  private send(nic: Nic, src: Address, dst: Address, dstMac: Uint8Array | undefined, r: NdpRepr): void {
    const len = ndpHeaderLength(r);
    const frame = new Uint8Array(ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + len);
    emitIpv6({ src, dst, nextHeader: PROTO_ICMPV6, hopLimit: NDP_HOP_LIMIT, payloadLength: len }, frame, ETHERNET_HEADER_LEN);
    const at = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;
    emitNdp(r, frame, at);
    new NdpPacket(frame.subarray(at)).fillChecksum(src, dst);
    if (dstMac) {
      frame.set(dstMac, 0);
      this.s.transmit(nic, frame, ETHERTYPE_IPV6);
    } else if (isMulticast(dst)) {
      frame.set(multicastMac(dst), 0);
      this.s.transmit(nic, frame, ETHERTYPE_IPV6);
    } else {
      this.s.resolve(nic, dst, frame, ETHERTYPE_IPV6);
    }
  }

  // A solicitation's source: an assigned address of the NIC, link-local first (RFC 4861 §7.2.2 prefers the
  // address of the packet that prompted it; link-local always works on the link).
  private sourceFor(nic: Nic): Address | undefined {
    let fallback: Address | undefined;
    for (const e of nic.v6) {
      if (e.state !== 'preferred') continue;
      const a = e.subnet.address;
      if (a[0] === 0xfe && (a[1]! & 0xc0) === 0x80) return a;
      fallback ??= a;
    }
    return fallback;
  }
}
