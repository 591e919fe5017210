import t from 'tap';
import { encodeFilter, frameFilter, sharedFilter, runFilter } from '../../lib/packet-filter.ts';

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
