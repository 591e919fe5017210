/**
 * ARP (RFC 826) for Ethernet/IPv4: answers requests for our addresses, feeds the NIC's neighbour cache from
 * requests and replies, solicits addresses the cache needs, and announces new addresses with gratuitous ARP
 * (RFC 5227 §3).
 */
import { type Address, IPV4_ANY, addressEqual, isMulticast, subnetContains } from '../addr.ts';
import {
  ARP_HEADER_LEN,
  ARP_REPLY,
  ARP_REQUEST,
  ArpPacket,
  type ArpRepr,
  emitArp,
  parseArp,
} from '../wire/arp.ts';
import { ETHERNET_HEADER_LEN, ETHERTYPE_ARP, MAC_BROADCAST } from '../wire/ethernet.ts';
import type { Verdict } from './counters.ts';
import type { Nic } from './nic.ts';
import type { StackInternals } from './internals.ts';

const ZERO_MAC = new Uint8Array(6);

/** The ARP protocol of a stack. */
export class Arp {
  constructor(private readonly s: StackInternals) {}

  /** Handles one received ARP packet (the Ethernet payload). */
  receive(nic: Nic, buf: Uint8Array): Verdict {
    const c = this.s.counters.arp;
    const p = ArpPacket.check(buf);
    if (typeof p === 'string') return 'arp.truncated';
    const r = parseArp(p);
    if (typeof r === 'string') return r === 'bad-operation' ? 'arp.badOperation' : 'arp.unsupported';
    if (r.operation === ARP_REQUEST) c.rxRequests++;
    else c.rxReplies++;
    const sha = r.senderHardwareAddress;
    const spa = r.senderProtocolAddress;
    // A group MAC as sender would make us send unicast traffic to a group; such packets are bogus.
    if ((sha[0]! & 1) !== 0) return 'arp.badSender';
    if (isMulticast(spa) || spa[0] === 255) return 'arp.badSender';
    if (nic.hasV4(spa) && !addressEqual(sha, nic.mac)) {
      // Someone else claims one of our addresses (RFC 5227 §2.4); we only count it.
      this.s.stats.count(c, 'arp', 'conflicts');
      return 'arp.conflict';
    }
    const probe = addressEqual(spa, IPV4_ANY);
    const forUs = nic.hasV4(r.targetProtocolAddress);
    if (!probe) {
      // RFC 826 "merge": update a known sender; add it only when the packet is addressed to us.
      if (r.operation === ARP_REPLY && forUs) nic.arp.advertise(spa, sha, true, true);
      else nic.arp.learn(spa, sha, forUs);
    }
    if (!forUs) return 'arp.notForUs';
    if (r.operation === ARP_REQUEST) this.reply(nic, r);
    return undefined;
  }

  /**
   * Sends a request for `target`: broadcast, or unicast to `mac` when re-confirming a known neighbour. The
   * sender address is that of the prompting packet when it is ours (as Linux's arp_solicit), else one on the
   * target's subnet.
   */
  solicit(nic: Nic, target: Address, mac: Uint8Array | undefined, prompt?: Uint8Array): void {
    const promptSrc = prompt && prompt.length >= 34 ? prompt.subarray(26, 30) : undefined;
    const src =
      (promptSrc && nic.hasV4(promptSrc) ? promptSrc.slice() : undefined) ??
      nic.v4.find((s) => subnetContains(s, target))?.address ??
      nic.v4[0]?.address ??
      IPV4_ANY;
    this.s.counters.arp.txRequests++;
    this.send(nic, mac ?? MAC_BROADCAST, {
      operation: ARP_REQUEST,
      senderHardwareAddress: nic.mac,
      senderProtocolAddress: src,
      targetHardwareAddress: ZERO_MAC,
      targetProtocolAddress: target,
    });
  }

  /** Broadcasts a gratuitous ARP request announcing `addr` (RFC 5227 §3), so peers refresh their caches. */
  announce(nic: Nic, addr: Address): void {
    this.s.counters.arp.txGratuitous++;
    this.send(nic, MAC_BROADCAST, {
      operation: ARP_REQUEST,
      senderHardwareAddress: nic.mac,
      senderProtocolAddress: addr,
      targetHardwareAddress: ZERO_MAC,
      targetProtocolAddress: addr,
    });
  }

  private reply(nic: Nic, req: ArpRepr): void {
    this.s.counters.arp.txReplies++;
    this.send(nic, req.senderHardwareAddress, {
      operation: ARP_REPLY,
      senderHardwareAddress: nic.mac,
      senderProtocolAddress: req.targetProtocolAddress,
      targetHardwareAddress: req.senderHardwareAddress,
      targetProtocolAddress: req.senderProtocolAddress,
    });
  }

  private send(nic: Nic, dstMac: Uint8Array, r: ArpRepr): void {
    const frame = new Uint8Array(ETHERNET_HEADER_LEN + ARP_HEADER_LEN);
    emitArp(r, frame, ETHERNET_HEADER_LEN);
    frame.set(dstMac, 0);
    this.s.transmit(nic, frame, ETHERTYPE_ARP);
  }
}
