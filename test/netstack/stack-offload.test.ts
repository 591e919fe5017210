import t from 'tap';
import { VirtualClock } from '../../netstack/clock.ts';
import { Err, NetError } from '../../netstack/errors.ts';
import {
  type GsoOptions,
  GsoType,
  type LinkCapabilities,
  type LinkDispatcher,
  type LinkEndpoint,
  RX_CSUM_VERIFIED,
} from '../../netstack/link/endpoint.ts';
import { ImpairEndpoint } from '../../netstack/link/impair.ts';
import { SnifferEndpoint } from '../../netstack/link/sniffer.ts';
import { Stack } from '../../netstack/stack.ts';
import { PROTO_TCP, PROTO_UDP, type Route } from '../../netstack/transport/protocol.ts';
import { ETHERTYPE_ARP } from '../../netstack/wire/ethernet.ts';
import { Ipv4Packet } from '../../netstack/wire/ipv4.ts';
import { Ipv6Packet } from '../../netstack/wire/ipv6.ts';
import { MAC_A, MAC_X, arp, eth, eth4, eth6, ipv4, ipv6, ndp, udp } from './network/frames.ts';
import { A4, A6, X4, X6, Recorder, hex, net, pattern, route } from './network/helpers.ts';

const GSO_CAPS: LinkCapabilities = { gso: true, maxGsoSize: 65535 + 14, rxChecksumOffload: true, txChecksumOffload: true };

/** A link with (optionally) GSO that records frames and super-frames and lets a test deliver frames with flags. */
class OffloadLink implements LinkEndpoint {
  readonly mtu = 1500;
  readonly macAddress = MAC_A;
  readonly capabilities: LinkCapabilities | undefined;
  readonly written: Uint8Array[] = [];
  readonly gso: { frame: Uint8Array; o: GsoOptions }[] = [];
  dispatcher: LinkDispatcher | null = null;
  constructor(caps: LinkCapabilities | undefined) {
    this.capabilities = caps;
  }
  attach(d: LinkDispatcher | null): void {
    this.dispatcher = d;
  }
  writeFrame(frame: Uint8Array): boolean {
    this.written.push(frame.slice());
    return true;
  }
  writeGso?(frame: Uint8Array, o: GsoOptions): boolean {
    this.gso.push({ frame: frame.slice(), o: { ...o } });
    return true;
  }
  flush(): void {}
  close(): void {}
  deliver(frame: Uint8Array, flags = 0): void {
    this.dispatcher?.deliverFrame(frame, flags);
    this.dispatcher?.deliverBatchEnd?.();
  }
}

/** A plain link: no capabilities property and no writeGso at all. */
class PlainLink extends OffloadLink {
  constructor() {
    super(undefined);
  }
}
Object.defineProperty(PlainLink.prototype, 'writeGso', { value: undefined });

function setup(link: LinkEndpoint & { deliver?: (f: Uint8Array, flags?: number) => void }) {
  const clock = new VirtualClock();
  const s = new Stack({ clock, seed: 1, dadTransmits: 0 });
  const nic = s.addNic(link);
  s.addAddress(nic, net('198.18.0.1/24'));
  s.addAddress(nic, net('fd74:7376::1/64'));
  clock.advance(10);
  const udpRec = new Recorder(PROTO_UDP);
  s.registerTransport(udpRec);
  return { clock, s, nic, udpRec };
}

/** Teaches the stack X's MAC in both families (X's ARP request, X's neighbour advertisement by NS). */
function learnX(link: OffloadLink, s: Stack, nic: number): void {
  link.deliver(eth(MAC_A, MAC_X, ETHERTYPE_ARP, arp(1, MAC_X, X4, new Uint8Array(6), A4)));
  t.equal(s.neighbors(nic, 4).length, 1);
}

t.test('plain link, IP packet of MTU + 1 bytes → dropped as link.tooBig; exactly MTU → delivered', (t) => {
  const link = new PlainLink();
  const { s, udpRec } = setup(link);
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(1500 - 28)))));
  t.equal(udpRec.packets.length, 1, 'MTU-sized datagram delivered');
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(1500 - 27)))));
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, A6, PROTO_UDP, udp(1, 2, pattern(1500 - 47)))));
  t.equal(udpRec.packets.length, 1, 'nothing more delivered');
  const snap = s.stats.snapshot();
  t.equal(snap['link.tooBig'], 2);
  t.equal(snap['link.rxGsoFrames'], 0);
  t.ok(s.dropCounters().includes('link.tooBig'));
  t.end();
});

t.test('GSO link, 64000-byte IPv4 and IPv6 packets → delivered whole, counted as rx super-frames', (t) => {
  const link = new OffloadLink(GSO_CAPS);
  const { s, udpRec } = setup(link);
  const d4 = udp(1, 2, pattern(64000));
  const d6 = udp(3, 4, pattern(65000, 1));
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, d4)));
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, A6, PROTO_UDP, d6)));
  t.equal(udpRec.packets.length, 2);
  t.equal(hex(udpRec.packets[0]!.segment), hex(d4));
  t.equal(hex(udpRec.packets[1]!.segment), hex(d6));
  t.equal(s.stats.snapshot()['link.rxGsoFrames'], 2);
  // Beyond maxGsoSize (65535 + 14): an IPv6 packet with a 65535-byte payload is 65589 bytes with its headers.
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, A6, PROTO_UDP, udp(3, 4, pattern(65535 - 8)))));
  t.equal(udpRec.packets.length, 2);
  t.equal(s.stats.snapshot()['link.tooBig'], 1);
  t.end();
});

t.test('RX_CSUM_VERIFIED → PacketInfo.csumVerified true; no flag → false (both families)', (t) => {
  const link = new OffloadLink(GSO_CAPS);
  const { udpRec } = setup(link);
  const f4 = eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(10))));
  const f6 = eth6(MAC_A, MAC_X, ipv6(X6, A6, PROTO_UDP, udp(1, 2, pattern(10))));
  link.deliver(f4, RX_CSUM_VERIFIED);
  link.deliver(f4);
  link.deliver(f6, RX_CSUM_VERIFIED);
  link.deliver(f6, 0);
  t.same(udpRec.packets.map((p) => p.info.csumVerified), [true, false, true, false]);
  t.same(Array.from(udpRec.packets[0]!.info.src), Array.from(X4));
  t.same(Array.from(udpRec.packets[2]!.info.dst), Array.from(A6));
  t.end();
});

t.test('IPv4 packets from two sources → each PacketInfo keeps its own source (shared copies are never overwritten)', (t) => {
  const link = new OffloadLink(undefined);
  const { udpRec } = setup(link);
  const Y4 = new Uint8Array([198, 18, 0, 77]);
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(4)))));
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: Y4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(4)))));
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(4)))));
  t.same(udpRec.packets.map((p) => Array.from(p.info.src).join('.')), ['198.18.0.99', '198.18.0.77', '198.18.0.99']);
  t.same(udpRec.packets.map((p) => Array.from(p.info.dst).join('.')), ['198.18.0.1', '198.18.0.1', '198.18.0.1']);
  t.end();
});

/** A TCP super-segment with headroom: 20-byte header (flags given) then `payload` bytes of pattern. */
function superSegment(r: Route, payload: number, flags = 0x10): Uint8Array {
  const buf = new Uint8Array(r.headroom + 20 + payload);
  const h = r.headroom;
  buf[h] = 0x9c;
  buf[h + 1] = 0x40; // port 40000
  buf[h + 3] = 80;
  buf[h + 12] = 5 << 4;
  buf[h + 13] = flags;
  buf.set(pattern(payload, 3), h + 20);
  return buf;
}

t.test('gsoMaxSegment → IP length bound on a GSO link; 0 on plain, impaired, loopback-to-self and broadcast routes', (t) => {
  const gso = setup(new OffloadLink(GSO_CAPS));
  t.equal(route(gso.s, X4).gsoMaxSegment!(), 65535 - 20, 'IPv4: total length includes the header');
  t.equal(route(gso.s, X6).gsoMaxSegment!(), 65535 - 40, 'IPv6: bounded by maxGsoSize - 14 - 40');
  t.equal(route(gso.s, A4).gsoMaxSegment!(), 0, 'to ourselves');
  t.equal(route(gso.s, new Uint8Array([198, 18, 0, 255])).gsoMaxSegment!(), 0, 'broadcast');
  const plain = setup(new PlainLink());
  t.equal(route(plain.s, X4).gsoMaxSegment!(), 0);
  const noTxCsum = setup(new OffloadLink({ ...GSO_CAPS, txChecksumOffload: false }));
  t.equal(route(noTxCsum.s, X4).gsoMaxSegment!(), 0, 'GSO needs tx checksum offload');
  const clock = new VirtualClock();
  const impaired = setup(new ImpairEndpoint(new OffloadLink(GSO_CAPS), clock, {}));
  t.equal(route(impaired.s, X4).gsoMaxSegment!(), 0, 'impair sends plain frames');
  const sniffed = setup(new SnifferEndpoint(new OffloadLink(GSO_CAPS), { clock, out: () => {} }));
  t.equal(route(sniffed.s, X4).gsoMaxSegment!(), 65515, 'the sniffer passes offloads through');
  t.end();
});

t.test('sendGso IPv4, neighbour known → one writeGso with TCPV4 options and the super-frame\'s IP header', (t) => {
  const link = new OffloadLink(GSO_CAPS);
  const { s, nic } = setup(link);
  learnX(link, s, nic);
  link.written.length = 0;
  const r = route(s, X4);
  const pkt = superSegment(r, 10000);
  const seg = pkt.slice(r.headroom);
  t.equal(r.sendGso!(PROTO_TCP, pkt, r.headroom, 20, 1448), undefined);
  t.equal(link.gso.length, 1);
  t.equal(link.written.length, 0);
  const { frame, o } = link.gso[0]!;
  t.same(o, { gsoType: GsoType.TCPV4, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 });
  t.same(Array.from(frame.subarray(0, 6)), Array.from(MAC_X), 'to X\'s MAC');
  t.same(Array.from(frame.subarray(6, 12)), Array.from(MAC_A));
  const ip = new Ipv4Packet(frame.subarray(14));
  t.equal(ip.totalLength, 20 + 20 + 10000);
  t.equal(ip.dontFragment, true);
  t.equal(ip.protocol, PROTO_TCP);
  t.ok(ip.verifyChecksum(), 'IP header checksum');
  t.equal(hex(frame.subarray(34)), hex(seg), 'TCP super-segment untouched');
  // 10000 bytes at 1448 a segment is 7 segments: the next datagram's identification is 7 further on.
  t.equal(r.send(PROTO_UDP, new Uint8Array(r.headroom + 8), r.headroom), undefined);
  const next = new Ipv4Packet(link.written[0]!.subarray(14));
  t.equal((next.identification - ip.identification) & 0xffff, 7);
  const snap = s.stats.snapshot();
  t.equal(snap['link.txGsoFrames'], 1);
  t.equal(snap['ipv4.txPackets'], 8);
  t.end();
});

t.test('sendGso IPv4 with CWR → gsoType carries the ECN flag; payload within one segment → NONE with the checksum still partial', (t) => {
  const link = new OffloadLink(GSO_CAPS);
  const { s, nic } = setup(link);
  learnX(link, s, nic);
  const r = route(s, X4);
  t.equal(r.sendGso!(PROTO_TCP, superSegment(r, 5000, 0x80 | 0x10), r.headroom, 20, 1448), undefined);
  t.equal(r.sendGso!(PROTO_TCP, superSegment(r, 1000), r.headroom, 20, 1448), undefined);
  t.same(link.gso.map((g) => g.o.gsoType), [GsoType.TCPV4 | GsoType.ECN, GsoType.NONE]);
  t.same(link.gso.map((g) => g.o.csumStart), [34, 34]);
  t.equal(s.stats.snapshot()['link.txGsoFrames'], 1, 'only the one cut into segments');
  t.end();
});

t.test('sendGso refused: segments larger than the path allows, a super-segment beyond gsoMaxSegment, not TCP', (t) => {
  const link = new OffloadLink(GSO_CAPS);
  const { s, nic } = setup(link);
  learnX(link, s, nic);
  const r = route(s, X4);
  t.equal(r.sendGso!(PROTO_TCP, superSegment(r, 10000), r.headroom, 20, 1461), Err.MessageTooLong, 'gsoSize + header > 1480');
  t.equal(r.sendGso!(PROTO_TCP, superSegment(r, 65535 - 40 + 1), r.headroom, 20, 1448), Err.MessageTooLong);
  t.equal(r.sendGso!(PROTO_UDP, superSegment(r, 10000), r.headroom, 20, 1448), Err.InvalidArgument);
  t.equal(link.gso.length, 0);
  t.end();
});

t.test('sendGso IPv6, neighbour unknown → queued while resolving, then one writeGso with TCPV6 options', (t) => {
  const link = new OffloadLink(GSO_CAPS);
  const { s } = setup(link);
  link.written.length = 0;
  const r = route(s, X6);
  const pkt = superSegment(r, 30000);
  const seg = pkt.slice(r.headroom);
  t.equal(r.sendGso!(PROTO_TCP, pkt, r.headroom, 20, 1428), undefined);
  t.equal(link.gso.length, 0, 'held while the neighbour is resolved');
  t.equal(link.written.length, 1, 'a neighbour solicitation went out');
  const ns = new Ipv6Packet(link.written[0]!.subarray(14));
  t.equal(ns.nextHeader, 58);
  // X answers with a solicited advertisement.
  const na = ndp(X6, A6, { kind: 'neighbor-advert', router: false, solicited: true, override: true, target: X6, targetLinkLayer: MAC_X });
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, A6, 58, na, 255)));
  t.equal(link.gso.length, 1, 'sent once resolved');
  const { frame, o } = link.gso[0]!;
  t.same(o, { gsoType: GsoType.TCPV6, gsoSize: 1428, hdrLen: 74, csumStart: 54, csumOffset: 16 });
  t.same(Array.from(frame.subarray(0, 6)), Array.from(MAC_X));
  const ip = new Ipv6Packet(frame.subarray(14));
  t.equal(ip.payloadLength, 20 + 30000);
  t.equal(ip.nextHeader, PROTO_TCP);
  t.equal(hex(frame.subarray(54)), hex(seg));
  t.equal(s.stats.snapshot()['link.txGsoFrames'], 1);
  t.end();
});

t.test('sniffer over a GSO link → super-frame recorded whole and passed to the inner writeGso', (t) => {
  const clock = new VirtualClock();
  const inner = new OffloadLink(GSO_CAPS);
  const recorded: Uint8Array[] = [];
  const sniffer = new SnifferEndpoint(inner, { clock, out: { write: (_ts: number, f: Uint8Array) => void recorded.push(f.slice()) } });
  const { s, nic } = setup(sniffer);
  learnX(inner, s, nic);
  recorded.length = 0;
  const out = sniffer.framesOut;
  const r = route(s, X4);
  t.equal(r.sendGso!(PROTO_TCP, superSegment(r, 20000), r.headroom, 20, 1448), undefined);
  t.equal(inner.gso.length, 1);
  t.equal(recorded.length, 1);
  t.equal(recorded[0]!.length, 14 + 20 + 20 + 20000);
  t.equal(hex(recorded[0]!), hex(inner.gso[0]!.frame), 'the pcap holds the super-frame as handed over');
  t.equal(sniffer.framesOut, out + 1);
  // Received flags pass through the sniffer too.
  const udpRec = new Recorder(PROTO_UDP);
  s.registerTransport(udpRec);
  inner.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(3000)))), RX_CSUM_VERIFIED);
  t.equal(udpRec.packets[0]?.info.csumVerified, true);
  t.end();
});

t.test('impair over a GSO link → large received frames still delivered, flags kept unless corrupted', (t) => {
  const clock = new VirtualClock();
  const inner = new OffloadLink(GSO_CAPS);
  const impair = new ImpairEndpoint(inner, clock, { corrupt: 0 });
  const { s, udpRec } = setup(impair);
  inner.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(30000)))), RX_CSUM_VERIFIED);
  t.equal(udpRec.packets.length, 1);
  t.equal(udpRec.packets[0]!.info.csumVerified, true);
  t.equal(s.stats.snapshot()['link.tooBig'] ?? 0, 0);
  impair.spec.corrupt = 1;
  impair.spec.seed = 1;
  const before = udpRec.packets.length;
  // Corrupt a byte somewhere: whatever the flip hits, a delivered packet is no longer flagged verified.
  inner.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, udp(1, 2, pattern(30000)))), RX_CSUM_VERIFIED);
  for (const p of udpRec.packets.slice(before)) t.equal(p.info.csumVerified, false);
  t.equal(impair.counters.corrupted, 1);
  t.end();
});

t.test('UDP datagram with a wrong checksum → dropped without RX_CSUM_VERIFIED, delivered with it', async (t) => {
  const { Netstack } = await import('../../netstack/netstack.ts');
  const { ChannelEndpoint } = await import('../../netstack/link/channel.ts');
  const clock = new VirtualClock();
  const link = new ChannelEndpoint({ clock, macAddress: MAC_A });
  const ns = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  ns.stack.addAddress(ns.stack.addNic(link), net('198.18.0.1/24'));
  const sock = ns.socket(4, 'dgram') as import('../../netstack/socket.ts').Endpoint;
  t.equal(sock.bind({ address: new Uint8Array(4), port: 7 }), undefined);
  const d = udp(1000, 7, pattern(100));
  d[6] = 0x12; // not the checksum of this datagram
  d[7] = 0x34;
  const frame = eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP }, d));
  link.inject(frame);
  clock.advance(1);
  t.ok(sock.read() instanceof NetError, 'nothing to read');
  const snap = ns.stack.stats.snapshot();
  t.equal(Object.entries(snap).filter(([k, v]) => /udp.*[cC]hecksum/.test(k) && v > 0).length, 1, 'counted as a bad checksum');
  link.inject(frame, RX_CSUM_VERIFIED);
  clock.advance(1);
  const r = sock.read();
  t.notOk(r instanceof NetError);
  if (!(r instanceof NetError)) t.equal(hex(r.data), hex(pattern(100)));
  t.end();
});
