#!/usr/bin/python3
"""Crafts the frames Linux will not send on its own (VLAN tags, IPv4 options, IPv6 extension headers, NDP
router/redirect messages, ICMP errors) with scapy, into crafted.json ({name: hex}) and crafted.pcap.
Only addresses from 198.18.0.0/15 and fd74:7376::/32 (and link-local/multicast). Nothing is sent.
Run: /usr/bin/python3 crafted.py (python3-scapy)."""
import json
from scapy.all import (Ether, Dot1Q, Dot1AD, IP, IPv6, UDP, ICMP, Raw, IPOption_RR, IPOption_Router_Alert,
                       IPOption_LSRR, IPOption_NOP, IPOption_EOL, IPOption, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, IPv6ExtHdrFragment, RouterAlert, PadN, Pad1,
                       HBHOptUnknown, ICMPv6EchoRequest, ICMPv6PacketTooBig, ICMPv6TimeExceeded,
                       ICMPv6ParamProblem, ICMPv6DestUnreach, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6ND_NS, ICMPv6ND_NA,
                       ICMPv6ND_Redirect, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr, ICMPv6NDOptPrefixInfo,
                       ICMPv6NDOptMTU, ICMPv6NDOptRedirectedHdr, wrpcap)

MA, MB = '02:00:5e:00:00:0a', '02:00:5e:00:00:0b'
A4, B4, C4 = '198.18.0.1', '198.18.0.2', '198.18.1.1'
A6, B6 = 'fd74:7376::1', 'fd74:7376::2'
LLA, LLB = 'fe80::5eff:fe00:a', 'fe80::5eff:fe00:b'

inner4 = IP(src=A4, dst=B4, id=0x1234) / UDP(sport=40000, dport=9) / Raw(b'hello-wire')
inner6 = IPv6(src=A6, dst=B6) / UDP(sport=40000, dport=9) / Raw(b'hello-wire6')

frames = {
    # Ethernet
    'vlan': Ether(src=MA, dst=MB) / Dot1Q(vlan=100, prio=3) / inner4,
    'qinq': Ether(src=MA, dst=MB) / Dot1AD(vlan=200, prio=5, id=1) / Dot1Q(vlan=100) / inner6,
    'double-8100': Ether(src=MA, dst=MB) / Dot1Q(vlan=7) / Dot1Q(vlan=4094) / inner4,
    # IPv4 options
    'ipv4-rr-ra': Ether(src=MA, dst=MB) / IP(src=A4, dst=B4, id=7, tos=0xb9,
                                         options=[IPOption_RR(routers=['0.0.0.0'] * 2), IPOption_Router_Alert()])
                  / UDP(sport=5000, dport=9) / Raw(b'opts'),
    'ipv4-lsrr': Ether(src=MA, dst=MB) / IP(src=A4, dst=B4, id=8, flags='DF',
                                          options=[IPOption_NOP(), IPOption_LSRR(routers=[C4, B4], pointer=4),
                                                   IPOption_EOL()])
                 / UDP(sport=5000, dport=9) / Raw(b'lsrr'),
    'ipv4-unknown-opt': Ether(src=MA, dst=MB) / IP(src=A4, dst=B4, id=9,
                                                 options=[IPOption(b'\x9e\x04\xab\xcd')])
                        / UDP(sport=5000, dport=9),
    # IPv6 extension headers
    'ipv6-hbh-dest': Ether(src=MA, dst=MB) / IPv6(src=A6, dst=B6)
                     / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0), PadN(optdata=b'')])
                     / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1e, optdata=b'\x01\x02'), Pad1(), Pad1(),
                                                  ])
                     / UDP(sport=40000, dport=9) / Raw(b'ext'),
    'ipv6-routing-0': Ether(src=MA, dst=MB) / IPv6(src=A6, dst=B6)
                      / IPv6ExtHdrRouting(type=0, segleft=0, addresses=['fd74:7376::3'])
                      / UDP(sport=40000, dport=9) / Raw(b'rt'),
    'ipv6-routing-1': Ether(src=MA, dst=MB) / IPv6(src=A6, dst=B6)
                      / IPv6ExtHdrRouting(type=0, segleft=1, addresses=['fd74:7376::3'])
                      / UDP(sport=40000, dport=9) / Raw(b'rt'),
    'ipv6-dest-action01': Ether(src=MA, dst=MB) / IPv6(src=A6, dst=B6)
                          / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x5e, optdata=b'\x00\x00\x00\x00')])
                          / UDP(sport=40000, dport=9),
    'ipv6-dest-action10-mc': Ether(src=MA, dst='33:33:00:00:00:01') / IPv6(src=A6, dst='ff02::1')
                             / IPv6ExtHdrDestOpt(options=[PadN(optdata=b'\x00'), HBHOptUnknown(otype=0x9e, optdata=b'\x00')])
                             / UDP(sport=40000, dport=9),
    'ipv6-dest-action11-mc': Ether(src=MA, dst='33:33:00:00:00:01') / IPv6(src=A6, dst='ff02::1')
                             / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0xde, optdata=b'\x00\x00\x00\x00')])
                             / UDP(sport=40000, dport=9),
    'ipv6-hbh-second': Ether(src=MA, dst=MB) / IPv6(src=A6, dst=B6)
                       / IPv6ExtHdrDestOpt(options=[PadN(optdata=b'\x00\x00\x00\x00')])
                       / IPv6ExtHdrHopByHop(options=[PadN(optdata=b'\x00\x00\x00\x00')])
                       / UDP(sport=40000, dport=9),
    'ipv6-frag-last': Ether(src=MA, dst=MB) / IPv6(src=A6, dst=B6)
                      / IPv6ExtHdrFragment(offset=185, m=0, id=0xdeadbeef, nh=17) / Raw(b'tail of a datagram'),
    # NDP
    'ndp-rs': Ether(src=MA, dst='33:33:00:00:00:02') / IPv6(src=LLA, dst='ff02::2', hlim=255)
              / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MA),
    'ndp-ra': Ether(src=MB, dst='33:33:00:00:00:01') / IPv6(src=LLB, dst='ff02::1', hlim=255)
              / ICMPv6ND_RA(chlim=64, M=0, O=1, routerlifetime=1800, reachabletime=30000, retranstimer=1000, prf=0)
              / ICMPv6NDOptSrcLLAddr(lladdr=MB) / ICMPv6NDOptMTU(mtu=1500)
              / ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=14400,
                                      prefix='fd74:7376:1::'),
    'ndp-ns-dad': Ether(src=MA, dst='33:33:ff:00:00:01') / IPv6(src='::', dst='ff02::1:ff00:1', hlim=255)
                  / ICMPv6ND_NS(tgt=A6),
    'ndp-na-unsolicited': Ether(src=MA, dst='33:33:00:00:00:01') / IPv6(src=A6, dst='ff02::1', hlim=255)
                          / ICMPv6ND_NA(R=0, S=0, O=1, tgt=A6) / ICMPv6NDOptDstLLAddr(lladdr=MA),
    'ndp-redirect': Ether(src=MB, dst=MA) / IPv6(src=LLB, dst=A6, hlim=255)
                    / ICMPv6ND_Redirect(tgt='fe80::5eff:fe00:c', dst='fd74:7376:2::9')
                    / ICMPv6NDOptDstLLAddr(lladdr='02:00:5e:00:00:0c')
                    / ICMPv6NDOptRedirectedHdr(pkt=bytes(IPv6(src=A6, dst='fd74:7376:2::9') / UDP(sport=40000, dport=9))),
    # ICMPv4 errors
    'icmpv4-frag-needed': Ether(src=MB, dst=MA) / IP(src=B4, dst=A4) / ICMP(type=3, code=4, nexthopmtu=1400)
                          / bytes(IP(src=A4, dst=C4, flags='DF', len=1500) / UDP(sport=40000, dport=9))[:28],
    'icmpv4-time-exceeded': Ether(src=MB, dst=MA) / IP(src=B4, dst=A4) / ICMP(type=11, code=0)
                            / bytes(IP(src=A4, dst=C4, ttl=1) / UDP(sport=40000, dport=33434))[:28],
    'icmpv4-param-problem': Ether(src=MB, dst=MA) / IP(src=B4, dst=A4) / ICMP(type=12, code=0, ptr=20)
                            / bytes(IP(src=A4, dst=B4, options=[IPOption(b'\x9e\x04\xab\xcd')]) / UDP(sport=1, dport=9))[:32],
    'icmpv4-redirect': Ether(src=MB, dst=MA) / IP(src=B4, dst=A4) / ICMP(type=5, code=1, gw='198.18.0.254')
                       / bytes(IP(src=A4, dst=C4) / UDP(sport=40000, dport=9))[:28],
    # ICMPv6 errors
    'icmpv6-packet-too-big': Ether(src=MB, dst=MA) / IPv6(src=B6, dst=A6) / ICMPv6PacketTooBig(mtu=1280)
                             / bytes(IPv6(src=A6, dst='fd74:7376:2::9', plen=1452) / UDP(sport=40000, dport=9))[:48],
    'icmpv6-time-exceeded': Ether(src=MB, dst=MA) / IPv6(src=B6, dst=A6) / ICMPv6TimeExceeded(code=0)
                            / bytes(IPv6(src=A6, dst='fd74:7376:2::9', hlim=1) / UDP(sport=40000, dport=33434)),
    'icmpv6-param-problem': Ether(src=MB, dst=MA) / IPv6(src=B6, dst=A6) / ICMPv6ParamProblem(code=1, ptr=40)
                            / bytes(IPv6(src=A6, dst=B6, nh=0) / IPv6ExtHdrDestOpt(nh=0) / UDP(sport=40000, dport=9)),
}

out = {name: bytes(p).hex() for name, p in frames.items()}
with open('crafted.json', 'w') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
wrpcap('crafted.pcap', list(frames.values()))
print(len(out), 'frames')
