// The Linux DUT's frame handling that needs no namespace: how an inbound frame longer than the link MTU goes in.
import t from 'tap';
import { parseAddress } from '../../netstack/addr.ts';
import { GsoType } from '../../netstack/link/endpoint.ts';
import { oversizeGso } from './dut-linux.ts';
import { buildTcpFrame } from './packets.ts';

const ep4 = {
  dutMac: new Uint8Array([2, 0, 0, 0, 0, 1]),
  remoteMac: new Uint8Array([2, 0, 0, 0, 0, 2]),
  dutIp: parseAddress('198.18.0.1')!,
  remoteIp: parseAddress('198.18.0.2')!,
};
const ep6 = { ...ep4, dutIp: parseAddress('fd74:7376::1')!, remoteIp: parseAddress('fd74:7376::2')! };
const seg = (payload: number, options: { kind: 'nop' }[] | [] = []) => ({ srcPort: 40000, dstPort: 8080, seq: 1, ack: 1, flags: 0x10, win: 320, options, payload: new Uint8Array(payload) });

t.test('inbound TCP frame within the MTU → written as it is (no GSO)', async (t) => {
  t.equal(oversizeGso(buildTcpFrame(ep4, seg(1460)), 1500), undefined, '1514-byte frame at MTU 1500');
  t.equal(oversizeGso(buildTcpFrame(ep4, seg(1464)), 1500), undefined, 'a VLAN tag\'s 4 bytes over still pass a veth');
});

t.test('inbound TCP frame over the MTU → one GSO packet whose segment is nearly all of it (a veth drops it otherwise)', async (t) => {
  const f = buildTcpFrame(ep4, seg(4000));
  t.same(oversizeGso(f, 1500), { gsoType: GsoType.TCPV4, gsoSize: 3999, hdrLen: 14 + 20 + 20 });
  // With options the segment can cover the whole payload: what follows the fixed TCP header is longer than it.
  const withOpts = buildTcpFrame(ep4, seg(4000, [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'nop' }, { kind: 'nop' }]));
  t.same(oversizeGso(withOpts, 1500), { gsoType: GsoType.TCPV4, gsoSize: 4003, hdrLen: 14 + 20 + 24 });
  t.same(oversizeGso(buildTcpFrame(ep6, seg(2000)), 1500), { gsoType: GsoType.TCPV6, gsoSize: 1999, hdrLen: 14 + 40 + 20 });
});
