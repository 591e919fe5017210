/**
 * Seeded property tests: a random Repr, emitted and then checked and parsed, gives back the same Repr, and
 * emitting that again gives the same bytes.
 */
import t from 'tap';
import { ArpPacket, emitArp, parseArp, type ArpRepr } from '../../../netstack/wire/arp.ts';
import { EthernetPacket, emitEthernet, ethernetHeaderLength, parseEthernet, type EthernetRepr } from '../../../netstack/wire/ethernet.ts';
import { Icmpv4Packet, emitIcmpv4, fillIcmpv4Checksum, parseIcmpv4, type Icmpv4Repr } from '../../../netstack/wire/icmpv4.ts';
import { Icmpv6Packet, emitIcmpv6, fillIcmpv6Checksum, parseIcmpv6, type Icmpv6Repr } from '../../../netstack/wire/icmpv6.ts';
import { Ipv4Packet, emitIpv4, ipv4HeaderLength, parseIpv4, type Ipv4Repr } from '../../../netstack/wire/ipv4.ts';
import { Ipv6Packet, emitIpv6, parseIpv6, type Ipv6Repr } from '../../../netstack/wire/ipv6.ts';
import { NdpPacket, emitNdp, ndpHeaderLength, parseNdp, type NdpRepr } from '../../../netstack/wire/ndp.ts';
import { UdpPacket, emitUdp, fillUdpChecksum, parseUdp, type UdpRepr } from '../../../netstack/wire/udp.ts';
import { hex, rng, toHex } from './frames.ts';

const r = rng(4861);
const int = (n: number) => r() % n;
const bytes = (n: number) => Uint8Array.from({ length: n }, () => r() & 0xff);
const bool = () => (r() & 1) === 1;
const TRIALS = 300;

function ok<T>(v: T | string): T {
  if (typeof v === 'string') throw new Error(v);
  return v;
}

t.test('Ethernet: random tags and types → same Repr and bytes', async (t) => {
  for (let i = 0; i < TRIALS; i++) {
    const tags = int(3);
    const rep: EthernetRepr = {
      dst: bytes(6),
      src: bytes(6),
      etherType: 0x0600 + int(0x8000),
      ...(tags ? { vlans: Array.from({ length: tags }, (_, k) => ({ tpid: k === 0 && tags === 2 ? 0x88a8 : 0x8100, pcp: int(8), dei: bool(), id: int(4096) })) } : {}),
    };
    if (rep.etherType === 0x8100 || rep.etherType === 0x88a8) continue;
    const buf = new Uint8Array(ethernetHeaderLength(rep));
    emitEthernet(rep, buf);
    t.same(ok(parseEthernet(ok(EthernetPacket.check(buf)))), rep);
  }
});

t.test('ARP: random requests and replies → same Repr', async (t) => {
  for (let i = 0; i < TRIALS; i++) {
    const rep: ArpRepr = { operation: 1 + int(2), senderHardwareAddress: bytes(6), senderProtocolAddress: bytes(4), targetHardwareAddress: bytes(6), targetProtocolAddress: bytes(4) };
    const buf = new Uint8Array(28);
    emitArp(rep, buf);
    t.same(ok(parseArp(ok(ArpPacket.check(buf)))), rep);
  }
});

t.test('IPv4: random headers with NOP options → same Repr, checksum verifies', async (t) => {
  for (let i = 0; i < TRIALS; i++) {
    const optLen = 4 * int(11);
    const rep: Ipv4Repr = {
      src: bytes(4),
      dst: bytes(4),
      protocol: int(256),
      ttl: int(256),
      payloadLength: int(200),
      dscp: int(64),
      ecn: int(4),
      identification: int(65536),
      dontFragment: bool(),
      moreFragments: bool(),
      fragmentOffset: 8 * int(8192),
      ...(optLen ? { options: new Uint8Array(optLen).fill(1) } : {}),
    };
    const buf = new Uint8Array(ipv4HeaderLength(rep) + rep.payloadLength);
    emitIpv4(rep, buf);
    t.same(ok(parseIpv4(ok(Ipv4Packet.check(buf)))), rep);
  }
});

t.test('IPv6: random fixed headers → same Repr', async (t) => {
  for (let i = 0; i < TRIALS; i++) {
    const rep: Ipv6Repr = { src: bytes(16), dst: bytes(16), nextHeader: int(256), hopLimit: int(256), payloadLength: int(100), trafficClass: int(256), flowLabel: int(1 << 20) };
    const buf = new Uint8Array(40 + rep.payloadLength);
    emitIpv6(rep, buf);
    t.same(ok(parseIpv6(ok(Ipv6Packet.check(buf)))), rep);
  }
});

t.test('UDP: random datagrams over both families → checksum verifies, same Repr', async (t) => {
  for (let i = 0; i < TRIALS; i++) {
    const v6 = bool();
    const src = bytes(v6 ? 16 : 4);
    const dst = bytes(v6 ? 16 : 4);
    const rep: UdpRepr = { srcPort: int(65536), dstPort: 1 + int(65535), payloadLength: int(64) };
    const buf = new Uint8Array(8 + rep.payloadLength);
    emitUdp(rep, buf);
    buf.set(bytes(rep.payloadLength), 8);
    fillUdpChecksum(buf.subarray(0, 8), buf.subarray(8), src, dst);
    t.same(ok(parseUdp(ok(UdpPacket.check(buf)), src, dst)), rep);
  }
});

t.test('ICMPv4 and ICMPv6: every kind with random fields → same Repr', async (t) => {
  for (let i = 0; i < TRIALS; i++) {
    const data = bytes(int(40));
    const four: Icmpv4Repr[] = [
      { kind: 'echo-request', identifier: int(65536), sequence: int(65536), data },
      { kind: 'echo-reply', identifier: int(65536), sequence: int(65536), data },
      { kind: 'dest-unreachable', code: 4, nextHopMtu: int(65536), data },
      { kind: 'time-exceeded', code: int(2), data },
      { kind: 'parameter-problem', code: int(3), pointer: int(256), data },
      { kind: 'redirect', code: int(4), gateway: bytes(4), data },
    ];
    const rep4 = four[int(four.length)]!;
    const b4 = new Uint8Array(8 + data.length);
    emitIcmpv4(rep4, b4);
    b4.set(data, 8);
    fillIcmpv4Checksum(b4, b4.subarray(8));
    t.same(ok(parseIcmpv4(ok(Icmpv4Packet.check(b4)))), rep4);
    const src = bytes(16);
    const dst = bytes(16);
    const six: Icmpv6Repr[] = [
      { kind: 'echo-request', identifier: int(65536), sequence: int(65536), data },
      { kind: 'echo-reply', identifier: int(65536), sequence: int(65536), data },
      { kind: 'dest-unreachable', code: int(7), data },
      { kind: 'packet-too-big', mtu: r(), data },
      { kind: 'time-exceeded', code: int(2), data },
      { kind: 'parameter-problem', code: int(3), pointer: r(), data },
    ];
    const rep6 = six[int(six.length)]!;
    const b6 = new Uint8Array(8 + data.length);
    emitIcmpv6(rep6, b6);
    b6.set(data, 8);
    fillIcmpv6Checksum(b6, b6.subarray(8), src, dst);
    t.same(ok(parseIcmpv6(ok(Icmpv6Packet.check(b6)), src, dst)), rep6);
  }
});

t.test('NDP: every message with random fields and options → same Repr and bytes', async (t) => {
  const ll = hex('fe80 0000 0000 0000 0000 0000 0000 0001');
  const unicast = () => {
    const a = bytes(16);
    a[0] = 0xfd;
    return a;
  };
  for (let i = 0; i < TRIALS; i++) {
    const maybe = <K extends string, V>(k: K, v: V) => (bool() ? ({ [k]: v } as Record<K, V>) : {});
    const msgs: NdpRepr[] = [
      { kind: 'router-solicit', ...maybe('sourceLinkLayer', bytes(6)) },
      {
        kind: 'router-advert',
        curHopLimit: int(256),
        managed: bool(),
        other: bool(),
        routerLifetime: int(65536),
        reachableTime: r(),
        retransTimer: r(),
        ...maybe('sourceLinkLayer', bytes(6)),
        ...maybe('mtu', r()),
        prefixes: Array.from({ length: int(3) }, () => ({ prefixLength: int(129), onLink: bool(), autonomous: bool(), validLifetime: r(), preferredLifetime: r(), prefix: bytes(16) })),
      },
      { kind: 'neighbor-solicit', target: unicast(), ...maybe('sourceLinkLayer', bytes(6)), ...maybe('nonce', bytes(6)) },
      { kind: 'neighbor-advert', router: bool(), solicited: bool(), override: bool(), target: unicast(), ...maybe('targetLinkLayer', bytes(6)) },
      { kind: 'redirect', target: unicast(), destination: unicast(), ...maybe('targetLinkLayer', bytes(6)), ...maybe('redirectedHeader', bytes(int(60))) },
    ];
    const rep = msgs[int(msgs.length)]!;
    const buf = new Uint8Array(ndpHeaderLength(rep));
    t.equal(emitNdp(rep, buf), buf.length);
    const p = ok(NdpPacket.check(buf));
    const dst = unicast();
    p.fillChecksum(ll, dst);
    const back = ok(parseNdp(p, ll, dst, 255));
    // The Redirected Header option is padded to 8 bytes; compare its prefix.
    if (rep.kind === 'redirect' && back.kind === 'redirect' && rep.redirectedHeader) {
      t.equal(toHex(back.redirectedHeader!.subarray(0, rep.redirectedHeader.length)), toHex(rep.redirectedHeader));
      t.same({ ...back, redirectedHeader: undefined }, { ...rep, redirectedHeader: undefined });
    } else {
      t.same(back, rep);
    }
    const again = new Uint8Array(ndpHeaderLength(back));
    emitNdp(back, again);
    new NdpPacket(again).fillChecksum(ll, dst);
    t.equal(toHex(again), toHex(buf));
  }
});
