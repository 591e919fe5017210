/**
 * IP fragmentation for the runner, which packetdrill's language has no words for: `[frag N]` on an inbound
 * packet line (our extension) sends it as fragments of N payload bytes (RFC 791 §3.2, RFC 8200 §4.5), and the
 * DUT's fragments are reassembled before they are compared, so `> udp (3000)` matches a fragmented datagram
 * (the result says how many fragments it took).
 */
import { addressKey } from '../../netstack/addr.ts';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetPacket } from '../../netstack/wire/ethernet.ts';
import { Ipv4Packet, emitIpv4 } from '../../netstack/wire/ipv4.ts';
import { IPV6_FRAGMENT, IPV6_FRAGMENT_HEADER_LEN, Ipv6FragmentHeader } from '../../netstack/wire/ipv6ext.ts';
import { Ipv6Packet, emitIpv6 } from '../../netstack/wire/ipv6.ts';

const ETH = 14;
let nextId = 0x5a00;

/** Splits an unfragmented IP frame into fragments carrying at most `size` payload bytes each (rounded to 8). */
export function fragmentFrame(frame: Uint8Array, size: number): Uint8Array[] {
  const eth = frame.subarray(0, ETH);
  const chunk = Math.max(8, size & ~7);
  const id = nextId++;
  const out: Uint8Array[] = [];
  const ethType = (frame[12]! << 8) | frame[13]!;
  if (ethType === ETHERTYPE_IPV4) {
    const ip = new Ipv4Packet(frame.subarray(ETH));
    const payload = ip.payload;
    for (let off = 0; off < payload.length; off += chunk) {
      const part = payload.subarray(off, Math.min(off + chunk, payload.length));
      const f = new Uint8Array(ETH + 20 + part.length);
      f.set(eth, 0);
      emitIpv4(
        { src: ip.src, dst: ip.dst, protocol: ip.protocol, ttl: ip.ttl, payloadLength: part.length, dscp: ip.dscp, ecn: ip.ecn, identification: id, moreFragments: off + chunk < payload.length, fragmentOffset: off },
        f,
        ETH,
      );
      f.set(part, ETH + 20);
      out.push(f);
    }
    return out;
  }
  if (ethType === ETHERTYPE_IPV6) {
    const ip = new Ipv6Packet(frame.subarray(ETH));
    const payload = ip.payload;
    for (let off = 0; off < payload.length; off += chunk) {
      const part = payload.subarray(off, Math.min(off + chunk, payload.length));
      const f = new Uint8Array(ETH + 40 + IPV6_FRAGMENT_HEADER_LEN + part.length);
      f.set(eth, 0);
      emitIpv6({ src: ip.src, dst: ip.dst, nextHeader: IPV6_FRAGMENT, hopLimit: ip.hopLimit, payloadLength: IPV6_FRAGMENT_HEADER_LEN + part.length, trafficClass: ip.trafficClass }, f, ETH);
      const fh = new Ipv6FragmentHeader(f.subarray(ETH + 40, ETH + 48));
      fh.nextHeader = ip.nextHeader;
      fh.fragmentOffset = off;
      fh.moreFragments = off + chunk < payload.length;
      fh.identification = id;
      f.set(part, ETH + 48);
      out.push(f);
    }
    return out;
  }
  return [frame];
}

interface Pending {
  parts: Map<number, Uint8Array>;
  total?: number;
  count: number;
}

/** Reassembles the DUT's IPv4 and IPv6 fragments (fragment header right after the fixed header). */
export class Reassembler {
  private readonly pending = new Map<string, Pending>();

  /**
   * The frame to compare: `frame` itself when it is not a fragment, the whole datagram (and how many fragments
   * it came in) when this fragment completes one, undefined while fragments are missing.
   */
  push(frame: Uint8Array): { frame: Uint8Array; fragments: number } | undefined {
    const eth = EthernetPacket.check(frame);
    if (typeof eth === 'string') return { frame, fragments: 1 };
    if (eth.etherType === ETHERTYPE_IPV4) {
      const ip = Ipv4Packet.check(eth.payload);
      if (typeof ip === 'string' || !ip.isFragment) return { frame, fragments: 1 };
      const key = `4|${addressKey(ip.src)}|${addressKey(ip.dst)}|${ip.protocol}|${ip.identification}`;
      const done = this.add(key, ip.fragmentOffset, ip.payload, !ip.moreFragments);
      if (!done) return undefined;
      const out = new Uint8Array(ETH + 20 + done.data.length);
      out.set(frame.subarray(0, ETH), 0);
      emitIpv4({ src: ip.src, dst: ip.dst, protocol: ip.protocol, ttl: ip.ttl, payloadLength: done.data.length, dscp: ip.dscp, ecn: ip.ecn, identification: ip.identification }, out, ETH);
      out.set(done.data, ETH + 20);
      return { frame: out, fragments: done.count };
    }
    if (eth.etherType === ETHERTYPE_IPV6) {
      const ip = Ipv6Packet.check(eth.payload);
      if (typeof ip === 'string' || ip.nextHeader !== IPV6_FRAGMENT) return { frame, fragments: 1 };
      const fh = Ipv6FragmentHeader.check(ip.payload);
      if (typeof fh === 'string') return { frame, fragments: 1 };
      const key = `6|${addressKey(ip.src)}|${addressKey(ip.dst)}|${fh.identification}`;
      const done = this.add(key, fh.fragmentOffset, ip.payload.subarray(IPV6_FRAGMENT_HEADER_LEN), !fh.moreFragments);
      if (!done) return undefined;
      const out = new Uint8Array(ETH + 40 + done.data.length);
      out.set(frame.subarray(0, ETH), 0);
      emitIpv6({ src: ip.src, dst: ip.dst, nextHeader: fh.nextHeader, hopLimit: ip.hopLimit, payloadLength: done.data.length, trafficClass: ip.trafficClass }, out, ETH);
      out.set(done.data, ETH + 40);
      return { frame: out, fragments: done.count };
    }
    return { frame, fragments: 1 };
  }

  private add(key: string, offset: number, data: Uint8Array, last: boolean): { data: Uint8Array; count: number } | undefined {
    const p = this.pending.get(key) ?? { parts: new Map<number, Uint8Array>(), count: 0 };
    this.pending.set(key, p);
    p.parts.set(offset, data.slice());
    p.count++;
    if (last) p.total = offset + data.length;
    if (p.total === undefined) return undefined;
    const whole = new Uint8Array(p.total);
    let covered = 0;
    for (const [off, d] of [...p.parts].sort((a, b) => a[0] - b[0])) {
      if (off > covered) return undefined;
      whole.set(d.subarray(0, Math.max(0, Math.min(d.length, p.total - off))), off);
      covered = Math.max(covered, off + d.length);
    }
    if (covered < p.total) return undefined;
    this.pending.delete(key);
    return { data: whole, count: p.count };
  }
}
