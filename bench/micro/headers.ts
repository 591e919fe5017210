/**
 * Header parse and build: Ethernet-less IPv4 + TCP views (check and parse into a Repr) and emit (header and
 * checksum): `node --import tsx bench/micro/headers.ts`.
 */
import b from 'benny';
import { parseAddress } from '../../netstack/addr.ts';
import { Ipv4Packet, emitIpv4, parseIpv4, type Ipv4Repr } from '../../netstack/wire/ipv4.ts';
import { TCP_ACK, TCP_PSH, TcpPacket, emitTcp, parseTcp, type TcpRepr } from '../../netstack/wire/tcp.ts';

const src = parseAddress('198.18.0.1')!;
const dst = parseAddress('198.18.0.2')!;
const payload = new Uint8Array(1448);
const tcp: TcpRepr = {
  srcPort: 40000,
  dstPort: 5201,
  seq: 1000,
  ack: 2000,
  flags: TCP_ACK | TCP_PSH,
  window: 1024,
  urgentPointer: 0,
  options: { tsVal: 1, tsEcr: 2 },
  payload,
};
const segment = new Uint8Array(1480);
const segLen = emitTcp(tcp, segment, 0, src, dst);
const ipRepr: Ipv4Repr = { src, dst, protocol: 6, ttl: 64, payloadLength: segLen };
const packet = new Uint8Array(1500);
emitIpv4(ipRepr, packet, 0);
packet.set(segment.subarray(0, segLen), 20);
let sink = 0;

await b.suite(
  'headers',
  b.configure({ cases: { minTime: 0.5, maxTime: 1 } }),
  b.add('ipv4 check+parse', () => {
    const p = Ipv4Packet.check(packet);
    if (typeof p !== 'string') {
      const r = parseIpv4(p);
      if (typeof r !== 'string') sink ^= r.protocol;
    }
  }),
  b.add('tcp check+parse (checksum verified)', () => {
    const p = TcpPacket.check(segment.subarray(0, segLen));
    if (typeof p !== 'string') {
      const r = parseTcp(p, src, dst);
      if (typeof r !== 'string') sink ^= r.seq;
    }
  }),
  b.add('tcp check+parse (no checksum)', () => {
    const p = TcpPacket.check(segment.subarray(0, segLen));
    if (typeof p !== 'string') {
      const r = parseTcp(p);
      if (typeof r !== 'string') sink ^= r.seq;
    }
  }),
  b.add('ipv4 emit', () => {
    sink ^= emitIpv4(ipRepr, packet, 0);
  }),
  b.add('tcp emit with checksum (1448 B payload in place)', () => {
    sink ^= emitTcp(tcp, segment, 0, src, dst);
  }),
  b.cycle(),
  b.complete(),
);
if (sink === -1) process.stdout.write('');
