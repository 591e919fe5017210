import t from 'tap';
import { MAX_REPLICATED_PORTS, encodeFilter, frameFilter, runFilter, sharedFilter, steerProgram, synFilter } from '../../lib/packet-filter.ts';
import { Rng } from '../../netstack/rand.ts';

// Frames as the wire carries them: an Ethernet header, then the bytes each test needs (the rest zero).
function frame(ethertype: number, length: number, bytes: Record<number, number> = {}): Uint8Array {
  const f = new Uint8Array(length);
  f[12] = ethertype >> 8;
  f[13] = ethertype & 0xff;
  for (const [at, v] of Object.entries(bytes)) f[Number(at)] = v;
  return f;
}
const ipv4 = (fragField: number, length = 60) => frame(0x0800, length, { 14: 0x45, 20: fragField >> 8, 21: fragField & 0xff, 23: 6 });
const icmp6 = (type: number, length = 86) => frame(0x86dd, length, { 14: 0x60, 20: 58, 54: type });
// ICMPv4 with a header of `ihl` words (options shift the ICMP type), at fragment field `frag`.
const icmp4 = (type: number, ihl = 5, frag = 0) => frame(0x0800, 14 + ihl * 4 + 36, { 14: 0x40 | ihl, 20: frag >> 8, 21: frag & 0xff, 23: 1, [14 + ihl * 4]: type });

const FRAMES: Record<string, Uint8Array> = {
  arp: frame(0x0806, 42, { 21: 1 }),
  'ipv4 tcp, DF': ipv4(0x4000),
  'ipv4 first fragment (MF)': ipv4(0x2000),
  'ipv4 last fragment (offset 185)': ipv4(185),
  'ipv6 neighbour solicitation': icmp6(135),
  'ipv6 router advertisement': icmp6(134),
  'ipv6 redirect': icmp6(137),
  'ipv6 echo request': icmp6(128),
  'ipv6 mld report (143)': icmp6(143),
  'ipv6 tcp': frame(0x86dd, 74, { 14: 0x60, 20: 6 }),
  'ipv4 echo request': icmp4(8),
  'ipv4 unreachable (fragmentation needed)': icmp4(3),
  'ipv4 time exceeded, header with options': icmp4(11, 6),
  'ipv4 echo fragment at offset 8 (data byte 3 where a type would be)': icmp4(3, 5, 1),
  'ipv6 packet too big': icmp6(2),
  'ipv4 super-frame (3000 B)': ipv4(0x4000, 3000),
  'short ipv6 (20 B)': frame(0x86dd, 20),
};

const taken = (prog: ReturnType<typeof frameFilter>) =>
  Object.entries(FRAMES).filter(([, f]) => runFilter(prog, f) > 0).map(([name]) => name);

t.test('no spec → takes every frame', async (t) => {
  t.same(taken(frameFilter({})), Object.keys(FRAMES));
});

t.test('size split → each frame in exactly one of the two rings', async (t) => {
  const small = frameFilter({ size: { maxFrame: 1518, take: 'small' } });
  const large = frameFilter({ size: { maxFrame: 1518, take: 'large' } });
  t.same(taken(large), ['ipv4 super-frame (3000 B)']);
  t.same(taken(small), Object.keys(FRAMES).filter((n) => n !== 'ipv4 super-frame (3000 B)'));
  t.equal(runFilter(small, new Uint8Array(1518)), 0x40000, 'a frame of exactly maxFrame is small');
  t.equal(runFilter(large, new Uint8Array(1519)), 0x40000, 'one byte more is large');
});

t.test('fanout member with a shared socket → ARP, NDP and ICMP errors to the shared socket, the rest to the member', async (t) => {
  const member = frameFilter({ size: { maxFrame: 1518, take: 'small' }, noShared: true, noIpv4Fragments: true });
  const neigh = sharedFilter();
  t.same(taken(neigh), [
    'arp', 'ipv6 neighbour solicitation', 'ipv6 router advertisement', 'ipv6 redirect',
    'ipv4 unreachable (fragmentation needed)', 'ipv4 time exceeded, header with options', 'ipv6 packet too big',
  ]);
  t.same(taken(member), ['ipv4 tcp, DF', 'ipv6 echo request', 'ipv6 mld report (143)', 'ipv6 tcp', 'ipv4 echo request']);
  for (const [name, f] of Object.entries(FRAMES)) {
    t.notOk(runFilter(member, f) > 0 && runFilter(neigh, f) > 0, `${name}: not in both`);
  }
});

t.test('fanout member without the fragment rule → IPv4 fragments stay (a single socket reassembles itself)', async (t) => {
  const member = frameFilter({ noShared: true });
  t.ok(runFilter(member, FRAMES['ipv4 echo fragment at offset 8 (data byte 3 where a type would be)']!) > 0, 'a later fragment is not read as an ICMP error');
  t.ok(runFilter(member, FRAMES['ipv4 first fragment (MF)']!) > 0);
  t.ok(runFilter(member, FRAMES['ipv4 last fragment (offset 185)']!) > 0);
  t.equal(runFilter(member, FRAMES.arp!), 0);
});

t.test('encodeFilter → struct sock_filter layout, jumps relative to the next instruction', async (t) => {
  const prog = frameFilter({ size: { maxFrame: 1518, take: 'small' } });
  const bytes = encodeFilter(prog);
  t.equal(bytes.length, prog.length * 8);
  const v = new DataView(bytes.buffer);
  // ld len; jgt #1518 → drop (2 ahead) else next; ret #0x40000; ret #0
  t.same([v.getUint16(0, true), v.getUint16(8, true), v.getUint8(10), v.getUint8(11), v.getUint32(12, true)], [0x80, 0x25, 1, 0, 1518]);
  t.same([v.getUint16(16, true), v.getUint32(20, true), v.getUint16(24, true), v.getUint32(28, true)], [0x06, 0x40000, 0x06, 0]);
});

// TCP segments with `flags`: IPv4 with a header of `ihl` words (options push the TCP header back) at fragment field
// `frag`, or IPv6 with next header `next` (6: TCP right after the header).
const tcp4 = (flags: number, o: { ihl?: number; frag?: number; length?: number } = {}) => {
  const ihl = o.ihl ?? 5;
  const len = o.length ?? 14 + ihl * 4 + 24;
  return frame(0x0800, len, { 14: 0x40 | ihl, 20: (o.frag ?? 0x4000) >> 8, 21: (o.frag ?? 0x4000) & 0xff, 23: 6, [14 + ihl * 4 + 13]: flags });
};
const tcp6 = (flags: number, o: { next?: number; length?: number } = {}) =>
  frame(0x86dd, o.length ?? 14 + 40 + 24, { 14: 0x60, 20: o.next ?? 6, [14 + 40 + 13]: flags });
const SYN = 0x02;
const SEGMENTS: Record<string, Uint8Array> = {
  'ipv4 SYN': tcp4(SYN),
  'ipv4 SYN, ECN setup (SYN|ECE|CWR)': tcp4(SYN | 0xc0),
  'ipv4 SYN, header with options': tcp4(SYN, { ihl: 7 }),
  'ipv4 SYN with 100 bytes of data (TFO)': tcp4(SYN, { length: 14 + 20 + 24 + 100 }),
  'ipv6 SYN': tcp6(SYN),
  'ipv4 SYN-ACK': tcp4(SYN | 0x10),
  'ipv4 SYN|RST': tcp4(SYN | 0x04),
  'ipv4 ACK': tcp4(0x10),
  'ipv4 SYN, first fragment (MF)': tcp4(SYN, { frag: 0x2000 }),
  'ipv4 SYN-looking fragment at offset 8': tcp4(SYN, { frag: 1 }),
  'ipv4 SYN of 300 bytes': tcp4(SYN, { length: 300 }),
  'ipv4 SYN cut before its flags (ihl 15, 60 B)': tcp4(SYN, { ihl: 15, length: 60 }),
  'ipv6 SYN-ACK': tcp6(SYN | 0x10),
  'ipv6 SYN after a hop-by-hop header': tcp6(SYN, { next: 0 }),
  'ipv6 SYN cut short (60 B)': tcp6(SYN, { length: 60 }),
  'short ipv4 (20 B)': frame(0x0800, 20),
  arp: frame(0x0806, 42, { 21: 1 }),
};

t.test('ring for SYNs → bare SYNs up to its frame size; every other frame to the ring of small frames', async (t) => {
  const syn = synFilter(256);
  const small = frameFilter({ size: { maxFrame: 1518, take: 'small' }, noBareSyns: 256 });
  const by = (prog: ReturnType<typeof synFilter>) => Object.entries(SEGMENTS).filter(([, f]) => runFilter(prog, f) > 0).map(([n]) => n);
  t.same(by(syn), ['ipv4 SYN', 'ipv4 SYN, ECN setup (SYN|ECE|CWR)', 'ipv4 SYN, header with options', 'ipv4 SYN with 100 bytes of data (TFO)', 'ipv6 SYN']);
  t.same(by(small), Object.keys(SEGMENTS).filter((n) => !by(syn).includes(n)));
  t.same(taken(frameFilter({ noBareSyns: 256 })), Object.keys(FRAMES), 'none of the other test frames is a bare SYN');
});

/**
 * A random frame of 0 to 400 bytes (one in eight: 1,519 to 2,018), most of them IPv4 or IPv6 carrying TCP (one in four
 * ICMP) with random header lengths, flags and fragment fields, half with the fragment field cleared.
 */
function randomFrame(rng: Rng): Uint8Array {
  const next = (): number => rng.next32();
  const len = next() % 8 === 0 ? 1519 + (next() % 500) : next() % 400;
  const f = new Uint8Array(len);
  for (let j = 0; j < len; j++) f[j] = next() & 0xff;
  const kind = next() % 4;
  if (len > 14 && kind < 3) {
    f[12] = kind === 2 ? 0x86 : 0x08;
    f[13] = kind === 2 ? 0xdd : 0x00;
    if (len > 23) f[kind === 2 ? 20 : 23] = next() % 4 === 0 ? (kind === 2 ? 58 : 1) : 6;
    if (len > 21 && next() % 2 === 0) f[20] = f[21] = 0;
  }
  return f;
}

t.test('three rings (small, super-frames, SYNs) → 20,000 random frames each taken by exactly one', async (t) => {
  const rng = new Rng(31);
  const rings = [
    frameFilter({ size: { maxFrame: 1518, take: 'small' }, noBareSyns: 256 }),
    frameFilter({ size: { maxFrame: 1518, take: 'large' } }),
    synFilter(256),
  ];
  const counts = [0, 0, 0];
  const wrong: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    const f = randomFrame(rng);
    const len = f.length;
    const takers = rings.map((r) => (runFilter(r, f) > 0 ? 1 : 0) as number);
    const n = takers.reduce((a, b) => a + b, 0);
    if (n !== 1) wrong.push(`frame ${i} (${len} B) taken by ${n} rings`);
    takers.forEach((x, k) => (counts[k]! += x));
  }
  t.same(wrong.slice(0, 5), [], `no frame lost or doubled (${wrong.length} were)`);
  t.ok(counts.every((c) => c > 100), `each ring took its share (${counts.join(', ')})`);
});

t.test('fanout member with a ring for SYNs → 20,000 random frames fare as without it, but bare SYNs move from the member ring to it', async (t) => {
  const rng = new Rng(47);
  const member = { size: { maxFrame: 1518, take: 'small' as const }, noShared: true, noIpv4Fragments: true };
  const large = frameFilter({ size: { maxFrame: 1518, take: 'large' } });
  const before = [frameFilter(member), large, sharedFilter()];
  const after = [frameFilter({ ...member, noBareSyns: 256 }), large, sharedFilter(), synFilter(256)];
  let moved = 0;
  const wrong: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    const f = randomFrame(rng);
    const len = f.length;
    const was = before.map((r) => runFilter(r, f) > 0);
    const is = after.map((r) => runFilter(r, f) > 0);
    const same = was[1] === is[1] && was[2] === is[2] && (is[3] ? was[0] && !is[0] : was[0] === is[0]);
    if (!same) wrong.push(`frame ${i} (${len} B): [${was.join(',')}] → [${is.join(',')}]`);
    if (is[3]) moved++;
  }
  t.same(wrong.slice(0, 5), [], `every frame where it went before, but bare SYNs (${wrong.length} differed)`);
  t.ok(moved > 50, `${moved} bare SYNs moved to their ring`);
});

// Packets as a fanout program sees them: from the IP header on (the kernel has pulled the Ethernet header).
function ip4Packet(proto: number, src: number[], l4: number[], opts: { ihl?: number; frag?: number } = {}): Uint8Array {
  const ihl = opts.ihl ?? 5;
  const p = new Uint8Array(ihl * 4 + Math.max(l4.length, 8));
  p[0] = 0x40 | ihl;
  p[6] = (opts.frag ?? 0) >> 8;
  p[7] = (opts.frag ?? 0) & 0xff;
  p[9] = proto;
  p.set(src, 12);
  p.set([198, 18, 0, 99], 16);
  p.set(l4, ihl * 4);
  return p;
}
function ip6Packet(next: number, src: number[], l4: number[]): Uint8Array {
  const p = new Uint8Array(40 + Math.max(l4.length, 8));
  p[0] = 0x60;
  p[6] = next;
  p.set(src, 8);
  p.set(l4, 40);
  return p;
}
const ports = (sport: number, dport: number) => [sport >> 8, sport & 0xff, dport >> 8, dport & 0xff];
const V6_SRC = [0xfd, 0x74, 0x73, 0x76, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

t.test('steering: a local port no shard shares → the shard its residue names, TCP and UDP, IPv4 (with options) and IPv6', async (t) => {
  for (const shards of [1, 2, 3, 4]) {
    const prog = steerProgram({ shards, replicated: { tcp: [80], udp: [53] } });
    for (const dport of [1, 2, 1024, 32768, 32769, 40001, 60999, 65535]) {
      const want = dport % shards;
      t.equal(runFilter(prog, ip4Packet(6, [198, 18, 0, 2], ports(5000, dport))), want, `${shards} shards, tcp4 → ${dport}`);
      t.equal(runFilter(prog, ip4Packet(17, [198, 18, 0, 2], ports(5000, dport), { ihl: 7 })), want, `${shards} shards, udp4 with options → ${dport}`);
      t.equal(runFilter(prog, ip6Packet(6, V6_SRC, ports(5000, dport))), want, `${shards} shards, tcp6 → ${dport}`);
      t.equal(runFilter(prog, ip6Packet(17, V6_SRC, ports(5000, dport))), want, `${shards} shards, udp6 → ${dport}`);
    }
  }
});

t.test('steering: a replicated port → the remote address and port pick the shard: the same remote always the same one, remotes over every shard', async (t) => {
  const shards = 3;
  const prog = steerProgram({ shards, replicated: { tcp: [80, 443], udp: [53] } });
  const spread = SPREAD_REFERENCE(shards);
  const hits4 = new Set<number>();
  const hits6 = new Set<number>();
  for (let i = 0; i < 64; i++) {
    const src = [198, 18, 1, i];
    const sport = 40000 + 7 * i;
    const s4 = runFilter(prog, ip4Packet(6, src, ports(sport, 80)));
    t.equal(runFilter(prog, ip4Packet(6, src, ports(sport, 443))), s4, 'the remote decides, not which replicated port');
    t.equal(s4, spread(((src[0]! << 24) | (src[1]! << 16) | (src[2]! << 8) | src[3]!) >>> 0, sport), 'address and port, spread');
    hits4.add(s4);
    const src6 = [...V6_SRC.slice(0, 15), i];
    hits6.add(runFilter(prog, ip6Packet(6, src6, ports(sport, 443))));
  }
  t.same([...hits4].sort(), [0, 1, 2], 'IPv4 remotes reach every shard');
  const onePeer = new Set(Array.from({ length: 16 }, (_, i) => runFilter(prog, ip4Packet(6, [198, 18, 1, 9], ports(40000 + 2 * i, 80)))));
  t.same([...onePeer].sort(), [0, 1, 2], 'one peer\'s successive even ports (Linux\'s connect() choice) reach every shard');
  t.same([...hits6].sort(), [0, 1, 2], 'IPv6 remotes reach every shard');
  // UDP's list is its own: TCP to 53 is one shard's, UDP to 53 everyone's.
  t.equal(runFilter(prog, ip4Packet(6, [198, 18, 1, 1], ports(40000, 53))), 53 % shards);
  const udp53 = new Set(Array.from({ length: 32 }, (_, i) => runFilter(prog, ip4Packet(17, [198, 18, 1, i], ports(40000 + i, 53)))));
  t.ok(udp53.size > 1, 'UDP to a replicated port spreads');
  t.equal(runFilter(prog, ip4Packet(17, [198, 18, 1, 1], ports(40000, 80))), 80 % shards, 'UDP to a TCP-only replicated port is one shard\'s');
});

t.test('steering: a pinned port → its shard, for its protocol only, IPv4 and IPv6; pins to no shard are refused', async (t) => {
  const prog = steerProgram({ shards: 4, replicated: { tcp: [80], udp: [] }, pinned: { tcp: [[5001, 2], [40000, 3]], udp: [[53, 1]] } });
  t.equal(runFilter(prog, ip4Packet(6, [198, 18, 0, 2], ports(9999, 5001))), 2, 'tcp4 5001 → its pin, not 5001 % 4 = 1');
  t.equal(runFilter(prog, ip6Packet(6, V6_SRC, ports(9999, 40000))), 3, 'tcp6 40000 → its pin, not 0');
  t.equal(runFilter(prog, ip4Packet(17, [198, 18, 0, 2], ports(9999, 53))), 1, 'udp4 53 → its pin');
  t.equal(runFilter(prog, ip4Packet(17, [198, 18, 0, 2], ports(9999, 5001))), 5001 % 4, 'udp 5001: pinned for TCP only');
  t.equal(runFilter(prog, ip4Packet(6, [198, 18, 0, 2], ports(9999, 53))), 53 % 4, 'tcp 53: pinned for UDP only');
  t.equal(runFilter(prog, ip4Packet(6, [198, 18, 0, 2], ports(9999, 5002))), 5002 % 4, 'a port beside a pin');
  const list = Array.from({ length: MAX_REPLICATED_PORTS }, (_, i) => [2000 + i, i % 4] as const);
  const long = steerProgram({ shards: 4, replicated: { tcp: list.map(([p]) => p), udp: [] }, pinned: { tcp: list.map(([p, s]) => [p + 1000, s]) } });
  t.equal(runFilter(long, ip4Packet(6, [198, 18, 0, 2], ports(9999, 3000 + MAX_REPLICATED_PORTS - 1))), (MAX_REPLICATED_PORTS - 1) % 4, 'the last of the longest pin list');
  t.ok(encodeFilter(long).length / 8 < 4096, 'within the kernel\'s BPF_MAXINSNS');
  t.throws(() => steerProgram({ shards: 2, replicated: { tcp: [], udp: [] }, pinned: { tcp: [[80, 2]] } }), /pinned to shard 2 of 2/);
});

t.test('steering: ICMP echo replies by identifier; everything else without ports to shard 0', async (t) => {
  const prog = steerProgram({ shards: 4, replicated: { tcp: [], udp: [] } });
  const echo4 = (type: number, id: number) => ip4Packet(1, [198, 18, 0, 2], [type, 0, 0, 0, id >> 8, id & 0xff, 0, 1]);
  const echo6 = (type: number, id: number) => ip6Packet(58, V6_SRC, [type, 0, 0, 0, id >> 8, id & 0xff, 0, 1]);
  for (const id of [1, 2, 3, 4, 0x1235, 0xffff]) {
    t.equal(runFilter(prog, echo4(0, id)), id % 4, `ICMP echo reply id ${id}`);
    t.equal(runFilter(prog, echo6(129, id)), id % 4, `ICMPv6 echo reply id ${id}`);
  }
  t.equal(runFilter(prog, echo4(8, 3)), 0, 'echo request');
  t.equal(runFilter(prog, echo4(3, 3)), 0, 'unreachable');
  t.equal(runFilter(prog, echo6(128, 3)), 0, 'ICMPv6 echo request');
  t.equal(runFilter(prog, ip4Packet(6, [198, 18, 0, 2], ports(5000, 33), { frag: 185 })), 0, 'a later IPv4 fragment');
  t.equal(runFilter(prog, ip4Packet(6, [198, 18, 0, 2], ports(5000, 33), { frag: 0x2000 })), 1, 'a first fragment has its ports');
  t.equal(runFilter(prog, ip6Packet(0, V6_SRC, ports(5000, 33))), 0, 'IPv6 with a hop-by-hop header');
  t.equal(runFilter(prog, ip4Packet(47, [198, 18, 0, 2], ports(5000, 33))), 0, 'GRE');
  t.equal(runFilter(prog, Uint8Array.of(0x00, 0x01, 0x08, 0x00, 6, 4, 0, 1)), 0, 'ARP');
  t.equal(runFilter(prog, Uint8Array.of(0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6)), 0, 'a packet cut short');
});

t.test('steering: the longest list works to its last port; longer lists, bad ports and bad shard counts are refused', async (t) => {
  const list = Array.from({ length: MAX_REPLICATED_PORTS }, (_, i) => 1000 + i);
  const prog = steerProgram({ shards: 2, replicated: { tcp: list, udp: list } });
  const last = list[list.length - 1]!;
  const seen = new Set(Array.from({ length: 16 }, (_, i) => runFilter(prog, ip4Packet(6, [198, 18, 2, i], ports(41000 + i, last)))));
  t.same([...seen].sort(), [0, 1], 'the last listed port spreads');
  t.equal(runFilter(prog, ip4Packet(6, [198, 18, 2, 1], ports(41001, 999))), 999 % 2, 'one below the list is owned');
  t.ok(encodeFilter(prog).length / 8 < 4096, 'within the kernel\'s BPF_MAXINSNS');
  t.throws(() => steerProgram({ shards: 2, replicated: { tcp: [...list, 9], udp: [] } }), /at most/);
  t.throws(() => steerProgram({ shards: 2, replicated: { tcp: [0], udp: [] } }), /bad tcp port 0/);
  t.throws(() => steerProgram({ shards: 0, replicated: { tcp: [], udp: [] } }), /shards must be/);
});

// What the program computes for a replicated port, written out: ((address · S) ^ port) · S >> 16, mod shards.
function SPREAD_REFERENCE(shards: number): (address: number, port: number) => number {
  return (address, port) => (Math.imul((Math.imul(address, 0x9e3779b1) ^ port) >>> 0, 0x9e3779b1) >>> 16) % shards;
}
