import t, { type Test } from 'tap';
import {
  GsoType,
  NO_OFFLOADS,
  VNET_F_DATA_VALID,
  VNET_F_NEEDS_CSUM,
  VNET_HDR_LEN,
  completeChecksum,
  onesComplementSum,
  readVnetHeader,
  writeEmptyVnetHeader,
  writeVnetHeader,
} from '../../lib/vnet.ts';
import { VirtualClock } from '../../netstack/clock.ts';
import { isError } from '../../netstack/errors.ts';
import { Netstack } from '../../netstack/netstack.ts';
import { Recorder, TestLink, net } from '../netstack/network/helpers.ts';
import { checksum, checksumsOk, ip4, mac, pseudoSum4, tcp4, udp } from './frames.ts';

const MAC_A = mac('02:00:00:00:00:0a');
const MAC_B = mac('02:00:00:00:00:0b');
const IP_A = ip4('198.18.70.1');
const IP_B = ip4('198.18.70.2');

t.test('header written → bytes as virtio_net_hdr lays them out (little-endian)', async (t) => {
  const table = [
    {
      name: 'TCPv4 super-frame with partial checksum',
      o: { gsoType: GsoType.TCPV4, gsoSize: 1448, hdrLen: 66, csumStart: 34, csumOffset: 16 },
      bytes: [1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0],
    },
    {
      name: 'USO with ECN flag',
      o: { gsoType: GsoType.UDP_L4 | GsoType.ECN, gsoSize: 0x1234, hdrLen: 0x102, csumStart: 54, csumOffset: 6 },
      bytes: [1, 0x85, 2, 1, 0x34, 0x12, 54, 0, 6, 0],
    },
    { name: 'no checksum, no GSO: gso_size forced to 0', o: { gsoType: GsoType.NONE, gsoSize: 9, hdrLen: 14 }, bytes: [0, 0, 14, 0, 0, 0, 0, 0, 0, 0] },
  ];
  for (const row of table) {
    const b = new Uint8Array(VNET_HDR_LEN + 2).fill(0xee);
    const v = new DataView(b.buffer);
    writeVnetHeader(v, 1, row.o);
    t.same([...b], [0xee, ...row.bytes, 0xee], row.name);
    const h = readVnetHeader(v, 1);
    t.equal(h.gsoType, row.o.gsoType, `${row.name}: gso_type read back`);
    t.equal(h.hdrLen, row.o.hdrLen, `${row.name}: hdr_len read back`);
  }
  const b = new Uint8Array(12).fill(0xff);
  writeEmptyVnetHeader(new DataView(b.buffer), 1);
  t.same([...b], [0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff], 'empty header is ten zero bytes');
});

t.test('header read → fields as the kernel wrote them', async (t) => {
  const b = new Uint8Array([VNET_F_DATA_VALID, GsoType.TCPV6, 0x56, 0, 0xa0, 0x05, 0x36, 0, 0x10, 0]);
  t.same(readVnetHeader(new DataView(b.buffer), 0), {
    flags: VNET_F_DATA_VALID,
    gsoType: GsoType.TCPV6,
    hdrLen: 0x56,
    gsoSize: 1440,
    csumStart: 0x36,
    csumOffset: 16,
  });
  t.equal(VNET_F_NEEDS_CSUM, 1);
});

/** The frame with its L4 checksum field replaced by the pseudo-header sum, as a NEEDS_CSUM sender leaves it. */
function partialOf(full: Uint8Array, csumField: number): Uint8Array {
  const f = full.slice();
  const l4Len = ((f[16]! << 8) | f[17]!) - 20;
  const p = pseudoSum4(f.subarray(26, 30), f.subarray(30, 34), f[23]!, l4Len);
  f[csumField] = p >> 8;
  f[csumField + 1] = p & 0xff;
  return f;
}

t.test('partial checksum completed → same bytes as the full checksum', async (t) => {
  const odd = new Uint8Array(1001).map((_, i) => (i * 7 + 3) & 0xff);
  const big = new Uint8Array(65535 - 40).map((_, i) => (i * 13) & 0xff);
  const table = [
    { name: 'UDP, 18 bytes', full: udp(MAC_A, MAC_B, IP_A, IP_B, 4000, 9000, new Uint8Array(18).fill(0x5a)), off: 6 },
    { name: 'TCP, odd length', full: tcp4(MAC_A, MAC_B, IP_A, IP_B, [40000, 80], 0x01020304, 7, 0x18, odd), off: 16 },
    { name: 'TCP, 64 KB super-frame', full: tcp4(MAC_A, MAC_B, IP_A, IP_B, [1, 2], 0xfffffff0, 0, 0x10, big), off: 16 },
  ];
  for (const row of table) {
    t.ok(checksumsOk(row.full), `${row.name}: reference frame verifies`);
    const f = partialOf(row.full, 34 + row.off);
    t.notOk(checksumsOk(f), `${row.name}: partial frame does not verify`);
    t.equal(completeChecksum(f, 34, row.off), true);
    t.same(f, row.full, `${row.name}: completed frame equals the reference`);
  }
});

t.test('UDP checksum that folds to zero → sent as 0xffff', async (t) => {
  // Two spare payload bytes are chosen so that the complemented sum is zero.
  const data = new Uint8Array(10).fill(0x11);
  const probe = udp(MAC_A, MAC_B, IP_A, IP_B, 1, 2, data);
  const f = partialOf(probe, 40);
  f[42 + 8] = 0;
  f[42 + 9] = 0;
  const s = ~checksum(f.subarray(34)) & 0xffff; // the folded sum with the spare bytes zero
  const spare = (0xffff - s) & 0xffff;
  f[42 + 8] = spare >> 8;
  f[42 + 9] = spare & 0xff;
  t.equal(completeChecksum(f, 34, 6), true);
  t.same([f[40], f[41]], [0xff, 0xff]);
  t.ok(checksumsOk(f), 'and the frame verifies');
});

t.test('checksum start or field outside the frame → refused, frame untouched', async (t) => {
  const f = udp(MAC_A, MAC_B, IP_A, IP_B, 1, 2, new Uint8Array(4));
  const before = f.slice();
  t.equal(completeChecksum(f, f.length, 0), false);
  t.equal(completeChecksum(f, 34, f.length - 34 - 1), false);
  t.same(f, before);
});

t.test('no offloads → every capability off', async (t) => {
  t.same(NO_OFFLOADS, { gso: false, maxGsoSize: 0, rxChecksumOffload: false, txChecksumOffload: false });
  t.ok(Object.isFrozen(NO_OFFLOADS));
});

/** A Netstack on `link` at 198.18.70.1 with a UDP socket bound to port 9000. */
function udpOn(t: Test, clock: VirtualClock, link: TestLink) {
  const ns = new Netstack({ clock, seed: 1 });
  t.teardown(() => ns.close());
  const nic = ns.stack.addNic(link);
  ns.stack.addAddress(nic, net('198.18.70.1/24'));
  clock.advance(5000);
  const sock = ns.socket(4, 'dgram');
  if (isError(sock)) throw new Error(String(sock));
  t.equal(sock.bind({ address: IP_A, port: 9000 }), undefined);
  return { ns, sock };
}

t.test('GRO super-frames delivered to a Netstack larger than its MTU, link with GSO → accepted, not dropped', async (t) => {
  // With offloads the endpoint delivers frames of up to 64 KB on a 1500-byte link: the stack must take them.
  const clock = new VirtualClock();
  const link = new TestLink(MAC_A, 1500);
  link.capabilities = { gso: true, maxGsoSize: 65535 + 40 + 18, rxChecksumOffload: false, txChecksumOffload: true };
  const { ns, sock } = udpOn(t, clock, link);
  const data = new Uint8Array(65535 - 28).map((_, i) => (i * 5) & 0xff);
  link.dispatcher!.deliverFrame(udp(MAC_B, MAC_A, IP_B, IP_A, 4000, 9000, data));
  const r = sock.read();
  if (isError(r)) throw new Error(String(r));
  t.equal(r.data.length, data.length, 'a 65507-byte UDP datagram read whole');
  t.ok(r.data.every((b, i) => b === data[i]), 'byte for byte');
  // TCP: the network layer hands a 64 KB segment to the transport whole (what TCP then does is its concern).
  const tcp = new Recorder(6);
  ns.stack.registerTransport(tcp);
  link.dispatcher!.deliverFrame(tcp4(MAC_B, MAC_A, IP_B, IP_A, [1, 2], 1, 0, 0x10, new Uint8Array(64000)));
  t.same(tcp.packets.map((p) => p.segment.length), [64020], 'the 64020-byte TCP segment reached the transport');
  t.same(ns.stack.dropCounters(), [], 'no drop counted');
});

t.test('the same super-frame on a link without GSO → dropped as link.tooBig', async (t) => {
  const clock = new VirtualClock();
  const link = new TestLink(MAC_A, 1500);
  const { ns, sock } = udpOn(t, clock, link);
  link.dispatcher!.deliverFrame(udp(MAC_B, MAC_A, IP_B, IP_A, 4000, 9000, new Uint8Array(2000)));
  t.ok(isError(sock.read()), 'nothing delivered');
  t.same(ns.stack.dropCounters(), ['link.tooBig']);
});

t.test('one\'s-complement sum by 32-bit words → same as byte pairs, at every alignment and length', async (t) => {
  // Reference: RFC 1071 over big-endian byte pairs, the odd last byte padded with zero.
  const reference = (b: Uint8Array, start: number, end: number) => {
    let s = 0;
    for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    return s;
  };
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
  const backing = new Uint8Array(300).map(() => next() & 0xff);
  let checked = 0;
  let wrong = '';
  for (let base = 0; base < 4; base++) {
    const b = backing.subarray(base, base + 200); // views that start at every alignment
    for (let start = 0; start < 8; start++) {
      for (let end = start; end <= 200; end += 1 + (end % 7)) {
        const got = onesComplementSum(b, start, end);
        const want = reference(b, start, end);
        checked++;
        if (got !== want && wrong === '') wrong = `base ${base} start ${start} end ${end}: ${got} ≠ ${want}`;
      }
    }
  }
  t.equal(wrong, '', `${checked} cases agree`);
  const ones = new Uint8Array(65536).fill(0xff);
  t.equal(onesComplementSum(ones, 0, ones.length), 0xffff, 'all-ones 64 KB folds to 0xffff');
});
