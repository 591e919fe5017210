import t from 'tap';
import { encodeFilter, frameFilter, sharedFilter, runFilter, synFilter } from '../../lib/packet-filter.ts';
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
