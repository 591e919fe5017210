/**
 * Fuzzing the stack's receive path: 200,000 random and mutated frames (ARP, IPv4, IPv6, ICMP, NDP, UDP,
 * fragments) go into one stack. No exception may escape, tables and memory stay bounded, and the counters
 * account for every frame: delivered + every drop counter = received.
 */
import t from 'tap';
import { solicitedNodeAddress, multicastMac } from '../../netstack/addr.ts';
import { Rng } from '../../netstack/rand.ts';
import type { DeliverResult, TransportProtocol } from '../../netstack/transport/protocol.ts';
import { ARP_REPLY, ARP_REQUEST } from '../../netstack/wire/arp.ts';
import { Icmpv4Packet } from '../../netstack/wire/icmpv4.ts';
import { Icmpv6Packet } from '../../netstack/wire/icmpv6.ts';
import { Ipv4Packet } from '../../netstack/wire/ipv4.ts';
import { ETHERTYPE_ARP } from '../../netstack/wire/ethernet.ts';
import { A4, A6, X4, X6, accounting, ip, single } from './network/helpers.ts';
import {
  BCAST,
  MAC_A,
  MAC_X,
  arp,
  eth,
  eth4,
  eth6,
  fragment6,
  icmp4,
  icmp6,
  ipv4,
  ipv6,
  ndp,
  udp,
} from './network/frames.ts';

const FRAMES = 200_000;

class Sink implements TransportProtocol {
  delivered = 0;
  controls = 0;
  random = false;
  constructor(
    readonly protocolNumber: number,
    private readonly rng: Rng,
  ) {}
  deliver(): DeliverResult {
    this.delivered++;
    if (!this.random) return 'delivered';
    const r = this.rng.nextInt(3);
    return r === 0 ? 'delivered' : r === 1 ? 'no-endpoint' : 'malformed';
  }
  deliverControl(): void {
    this.controls++;
  }
}

function corpus(): Uint8Array[] {
  const data = new Uint8Array(64).map((_, i) => i);
  const big = new Uint8Array(2000).map((_, i) => i * 7);
  const udpA = ipv4({ src: A4, dst: X4, protocol: 17 }, udp(1000, 2000, data));
  const tcpA = ipv4({ src: A4, dst: X4, protocol: 6, dontFragment: true }, new Uint8Array(40));
  const udp6A = ipv6(A6, X6, 17, udp(1000, 2000, data));
  const sn = solicitedNodeAddress(A6);
  const allNodes = ip('ff02::1');
  const frames: Uint8Array[] = [
    eth(BCAST, MAC_X, ETHERTYPE_ARP, arp(ARP_REQUEST, MAC_X, X4, new Uint8Array(6), A4)),
    eth(MAC_A, MAC_X, ETHERTYPE_ARP, arp(ARP_REPLY, MAC_X, X4, MAC_A, A4)),
    eth(BCAST, MAC_X, ETHERTYPE_ARP, arp(ARP_REQUEST, MAC_X, X4, new Uint8Array(6), X4)),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 1 }, icmp4(8, 0, 0x00010001, data))),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 17 }, udp(2000, 7, data))),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 6 }, new Uint8Array(20))),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 17, options: new Uint8Array([7, 7, 4, 0, 0, 0, 0, 0]) }, udp(1, 2, data))),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 17, identification: 77, moreFragments: true }, big.subarray(0, 1480))),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 17, identification: 77, moreFragments: true, fragmentOffset: 1480 }, big.subarray(0, 256))),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 17, identification: 77, fragmentOffset: 1736 }, big.subarray(0, 100))),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 1 }, icmp4(3, 3, 0, udpA.subarray(0, 28)))),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 1 }, icmp4(3, 4, 1400, tcpA.subarray(0, 48)))),
    eth4(BCAST, MAC_X, ipv4({ src: X4, dst: ip('198.18.0.255'), protocol: 17 }, udp(1, 2, data))),
    eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: 253 }, data)),
    eth6(MAC_A, MAC_X, ipv6(X6, A6, 58, icmp6(X6, A6, 128, 0, 0x00010001, data))),
    eth6(multicastMac(sn), MAC_X, ipv6(X6, sn, 58, ndp(X6, sn, { kind: 'neighbor-solicit', target: A6, sourceLinkLayer: MAC_X }), 255)),
    eth6(MAC_A, MAC_X, ipv6(X6, A6, 58, ndp(X6, A6, { kind: 'neighbor-advert', router: false, solicited: true, override: true, target: X6, targetLinkLayer: MAC_X }), 255)),
    eth6(multicastMac(sn), MAC_X, ipv6(ip('::'), sn, 58, ndp(ip('::'), sn, { kind: 'neighbor-solicit', target: A6 }), 255)),
    eth6(MAC_A, MAC_X, ipv6(X6, A6, 17, udp(1, 2, data))),
    eth6(MAC_A, MAC_X, ipv6(X6, A6, 44, fragment6(17, 0, true, 99, big.subarray(0, 1232)))),
    eth6(MAC_A, MAC_X, ipv6(X6, A6, 44, fragment6(17, 1232, false, 99, big.subarray(0, 300)))),
    eth6(MAC_A, MAC_X, ipv6(X6, A6, 0, new Uint8Array([17, 0, 0x80, 4, 0, 0, 0, 0, ...udp(1, 2, data)]))),
    eth6(MAC_A, MAC_X, ipv6(X6, A6, 58, icmp6(X6, A6, 2, 0, 1300, udp6A.subarray(0, 100)))),
    eth6(multicastMac(allNodes), MAC_X, ipv6(X6, allNodes, 58, icmp6(X6, allNodes, 128, 0, 5, data))),
    eth6(MAC_A, MAC_X, ipv6(X6, A6, 43, new Uint8Array([17, 0, 0, 1, 0, 0, 0, 0, ...udp(1, 2, data)]))),
  ];
  return frames;
}

// Re-seals checksums after a mutation half of the time, so mutated frames reach the deeper layers.
function reseal(f: Uint8Array, rng: Rng): void {
  if (f.length < 34 || rng.nextInt(2) === 0) return;
  const type = (f[12]! << 8) | f[13]!;
  if (type === 0x0800) {
    const p = Ipv4Packet.check(f.subarray(14));
    if (typeof p === 'string') return;
    p.fillChecksum();
    if (p.protocol === 1 && !p.isFragment && p.payload.length >= 8) new Icmpv4Packet(p.payload).fillChecksum();
  } else if (type === 0x86dd && f.length >= 62 && f[20] === 58) {
    const len = Math.min(f.length - 54, (f[18]! << 8) | f[19]!);
    new Icmpv6Packet(f.subarray(54, 54 + len)).fillChecksum(f.subarray(22, 38), f.subarray(38, 54));
  }
}

function mutate(base: Uint8Array, rng: Rng): Uint8Array {
  let f = base.slice();
  const n = 1 + rng.nextInt(3);
  for (let i = 0; i < n; i++) {
    switch (rng.nextInt(5)) {
      case 0: {
        if (f.length === 0) break;
        const bit = rng.nextInt(f.length * 8);
        f[bit >> 3]! ^= 0x80 >> (bit & 7);
        break;
      }
      case 1:
        f = f.slice(0, rng.nextInt(f.length + 1));
        break;
      case 2: {
        // A length field: IPv4 total length / IHL, IPv6 payload length, UDP length, ARP lengths.
        const at = [14, 16, 17, 18, 19, 38, 39, 58, 59][rng.nextInt(9)]!;
        if (at < f.length) f[at] = rng.nextInt(256);
        break;
      }
      case 3:
        if (f.length > 0) f[rng.nextInt(f.length)] = rng.nextInt(256);
        break;
      case 4: {
        const extra = new Uint8Array(rng.nextInt(64));
        rng.fill(extra);
        const g = new Uint8Array(f.length + extra.length);
        g.set(f);
        g.set(extra, f.length);
        f = g;
        break;
      }
    }
  }
  reseal(f, rng);
  return f;
}

t.test('200,000 random and mutated frames → no exception, bounded state, every frame accounted for', (t) => {
  const { clock, link, s } = single();
  link.keep = false;
  const rng = new Rng(4242);
  const sinks = [1, 6, 17, 58].map((p) => new Sink(p, new Rng(p)));
  for (const sink of sinks) s.registerTransport(sink);
  const base = corpus();
  // Every corpus frame must be valid enough to be taken, or the fuzzing would only scratch the surface.
  const before = accounting(s);
  const reasons: string[] = [];
  s.stats.tracer = (e) => reasons.push(`${e.group}.${e.counter}`);
  for (const f of base) link.deliver(f.slice());
  s.stats.tracer = undefined;
  t.comment(`corpus drops: ${reasons.join(' ')}`);
  const after = accounting(s);
  // Four corpus frames are meant to be refused: a gratuitous ARP, an unknown protocol, an unknown option of
  // action 10 and a routing header with segments left.
  t.equal(after.delivered - before.delivered, base.length - 4, 'the corpus is valid enough to be taken');
  for (const sink of sinks) sink.random = true;
  const heapBefore = process.memoryUsage().heapUsed;
  const started = Date.now();
  for (let i = 0; i < FRAMES; i++) {
    let f: Uint8Array;
    if (rng.nextInt(5) === 0) {
      f = new Uint8Array(rng.nextInt(200));
      rng.fill(f);
      if (f.length >= 14 && rng.nextInt(2) === 0) f.set(MAC_A, 0);
    } else {
      f = mutate(base[rng.nextInt(base.length)]!, rng);
    }
    link.deliver(f);
    if (i % 500 === 499) clock.advance(rng.nextInt(2000));
    if (i % 20000 === 19999) {
      t.ok(s.ipv4.reassembler.memory <= 4 << 20 && s.ipv6.reassembler.memory <= 4 << 20, 'reassembly memory bounded');
    }
  }
  clock.advance(120_000);
  const elapsed = Date.now() - started;
  const acc = accounting(s);
  t.equal(acc.received - s.stats.snapshot()['rx.looped']!, FRAMES + base.length, 'every frame received');
  t.equal(acc.delivered + acc.drops, acc.received, 'delivered + Σ drop counters = received');
  t.equal(acc.dropped, acc.drops, 'rx.dropped = Σ drop counters');
  t.ok(s.ipv4.reassembler.size === 0 && s.ipv6.reassembler.size === 0, 'reassembly empty after every timeout');
  t.ok(s.neighbors(1, 4).length <= 1024 && s.neighbors(1, 6).length <= 1024, 'neighbour tables bounded');
  const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
  t.ok(heapGrowth < 64 << 20, `heap growth bounded (${(heapGrowth / 1048576).toFixed(1)} MiB)`);
  t.comment(`${FRAMES} frames in ${elapsed} ms; ${s.dropCounters().length} distinct drop reasons`);
  t.comment(s.dropCounters().map((k) => `${k}=${s.stats.snapshot()[k]}`).join(' '));
  s.close();
  t.end();
});
