import t from 'tap';
import {
  ETHERNET_HEADER_LEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_QINQ,
  ETHERTYPE_VLAN,
  EthernetPacket,
  emitEthernet,
  ethernetHeaderLength,
  parseEthernet,
  type EthernetRepr,
} from '../../../netstack/wire/ethernet.ts';
import { crafted, hex, linux, toHex } from './frames.ts';

function view(buf: Uint8Array): EthernetPacket {
  const p = EthernetPacket.check(buf);
  if (typeof p === 'string') throw new Error(p);
  return p;
}
function repr(p: EthernetPacket): EthernetRepr {
  const r = parseEthernet(p);
  if (typeof r === 'string') throw new Error(r);
  return r;
}

const cases: { name: string; frame: Uint8Array; type: number; vlans: number[]; hl: number; dst: string; src: string }[] = [
  { name: 'linux ARP request (broadcast)', frame: linux[12]!, type: ETHERTYPE_ARP, vlans: [], hl: 14, dst: 'ffffffffffff', src: '02005e00000a' },
  { name: 'linux ICMP echo reply', frame: linux[15]!, type: ETHERTYPE_IPV4, vlans: [], hl: 14, dst: '02005e00000a', src: '02005e00000b' },
  { name: 'linux MLDv2 report', frame: linux[1]!, type: ETHERTYPE_IPV6, vlans: [], hl: 14, dst: '333300000016', src: '02005e00000b' },
  { name: 'scapy 802.1Q vlan 100', frame: crafted('vlan'), type: ETHERTYPE_IPV4, vlans: [100], hl: 18, dst: '02005e00000b', src: '02005e00000a' },
  { name: 'scapy QinQ 200/100', frame: crafted('qinq'), type: ETHERTYPE_IPV6, vlans: [200, 100], hl: 22, dst: '02005e00000b', src: '02005e00000a' },
  { name: 'scapy double 0x8100 7/4094', frame: crafted('double-8100'), type: ETHERTYPE_IPV4, vlans: [7, 4094], hl: 22, dst: '02005e00000b', src: '02005e00000a' },
];

for (const c of cases) {
  t.test(`${c.name}: check → fields; parse → emit → same bytes`, async (t) => {
    const p = view(c.frame);
    t.equal(p.etherType, c.type);
    t.same(p.vlanIds, c.vlans);
    t.equal(p.vlanId, c.vlans.length ? c.vlans[c.vlans.length - 1] : undefined);
    t.equal(p.tagCount, c.vlans.length);
    t.equal(p.headerLength, c.hl);
    t.equal(toHex(p.dst), c.dst);
    t.equal(toHex(p.src), c.src);
    t.equal(p.payload.length, c.frame.length - c.hl);
    t.equal(p.payload.byteOffset, c.frame.byteOffset + c.hl, 'payload is a view');
    const r = repr(p);
    t.equal(ethernetHeaderLength(r), c.hl);
    const out = new Uint8Array(c.hl + 3);
    t.equal(emitEthernet(r, out, 3), c.hl);
    t.equal(toHex(out.subarray(3)), toHex(c.frame.subarray(0, c.hl)));
  });
}

t.test('QinQ tags → tpid, pcp and dei per tag, outermost first', async (t) => {
  t.same(view(crafted('qinq')).vlanTags, [
    { tpid: ETHERTYPE_QINQ, pcp: 5, dei: true, id: 200 },
    { tpid: ETHERTYPE_VLAN, pcp: 0, dei: false, id: 100 },
  ]);
  t.same(view(crafted('vlan')).vlanTags, [{ tpid: ETHERTYPE_VLAN, pcp: 3, dei: false, id: 100 }]);
});

t.test('check: every length below the header (and below each tag) → truncated', async (t) => {
  const plain = linux[12]!;
  for (let n = 0; n < ETHERNET_HEADER_LEN; n++) t.equal(EthernetPacket.check(plain.subarray(0, n)), 'truncated', `untagged ${n}`);
  t.type(EthernetPacket.check(plain.subarray(0, 14)), EthernetPacket);
  const qinq = crafted('qinq');
  for (let n = 0; n < 22; n++) t.equal(EthernetPacket.check(qinq.subarray(0, n)), 'truncated', `qinq ${n}`);
  t.type(EthernetPacket.check(qinq.subarray(0, 22)), EthernetPacket);
});

t.test('check: three VLAN tags → too-many-vlan-tags', async (t) => {
  const f = hex('02005e00000b 02005e00000a 8100 0001 8100 0002 8100 0003 0800 45');
  t.equal(EthernetPacket.check(f), 'too-many-vlan-tags');
});

t.test('parse: IEEE 802.3 length field → not-ethernet-ii', async (t) => {
  const f = hex('0180c2000000 02005e00000a 0026 424203000000');
  t.equal(parseEthernet(view(f)), 'not-ethernet-ii');
});

t.test('setters on a tagged frame → innermost EtherType and addresses rewritten in place', async (t) => {
  const f = crafted('qinq');
  const p = view(f);
  p.etherType = ETHERTYPE_IPV4;
  p.dst = hex('ffffffffffff');
  p.src = hex('020000000001');
  t.equal(toHex(f.subarray(0, 22)), 'ffffffffffff020000000001' + '88a8b0c8' + '81000064' + '0800');
});

t.test('emit: untagged Repr → 14 bytes', async (t) => {
  const out = new Uint8Array(14);
  const n = emitEthernet({ dst: hex('333300000001'), src: hex('02005e00000a'), etherType: ETHERTYPE_IPV6 }, out);
  t.equal(n, 14);
  t.equal(toHex(out), '33330000000102005e00000a86dd');
});
