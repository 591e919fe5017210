// Raw ICMP/ICMPv6 sockets on two real stacks over an in-memory channel, on a virtual clock.
import t from 'tap';
import { parseAddress, parseSubnet } from '../../../../netstack/addr.ts';
import { VirtualClock } from '../../../../netstack/clock.ts';
import { type NetError, isError } from '../../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../../netstack/link/channel.ts';
import { Netstack } from '../../../../netstack/netstack.ts';
import type { Endpoint, ReadResult } from '../../../../netstack/socket.ts';
import { finishChecksum, pseudoHeaderSum, sum16 } from '../../../../netstack/wire/checksum.ts';

const ip = (s: string) => parseAddress(s)!;
const sa = (s: string, port = 0) => ({ address: ip(s), port });

function ok<T>(v: T | NetError): T {
  if (isError(v)) throw new Error(`unexpected errno ${v.errno}`);
  return v;
}

/** Stacks a (198.18.0.1, fd74:7376::1, and 198.18.0.11) and b (.2, ::2) over a channel with 1 ms latency. */
function pair() {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu: 1500, latencyMs: 1 });
  const a = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  const b = new Netstack({ clock, seed: 2, dadTransmits: 0 });
  const na = a.stack.addNic(la);
  const nb = b.stack.addNic(lb);
  for (const [n, nic, x] of [[a, na, 1], [b, nb, 2]] as const) {
    n.stack.addAddress(nic, parseSubnet(`198.18.0.${x}/24`)!);
    n.stack.addAddress(nic, parseSubnet(`fd74:7376::${x}/64`)!);
  }
  a.stack.addAddress(na, parseSubnet('198.18.0.11/24')!);
  return { clock, a, b, settle: () => { for (let i = 0; i < 20; i++) clock.advance(5); } };
}

/** An ICMP echo request (type 8 or 128) with identifier and sequence; the v4 checksum filled when asked. */
function echo(type: number, id: number, seq: number, data = 'tsvisor raw', v4Checksum = true): Uint8Array {
  const d = new TextEncoder().encode(data);
  const m = new Uint8Array(8 + d.length);
  m.set([type, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff]);
  m.set(d, 8);
  if (v4Checksum) {
    const c = finishChecksum(sum16(m));
    m[2] = c >> 8;
    m[3] = c & 0xff;
  }
  return m;
}

/** Every message queued on `s`. */
function drain(s: Endpoint): ReadResult[] {
  const out: ReadResult[] = [];
  for (;;) {
    const r = s.read();
    if (isError(r)) return out;
    out.push(r);
  }
}

t.test('v4 raw socket sends an echo request → reads the reply with its IPv4 header, from the peer', async (t) => {
  const { a, b, settle } = pair();
  const s = ok(a.socket(4, 'raw', 1));
  t.equal(s.type, 'raw');
  t.equal(s.protocol, 1);
  t.equal(s.write(echo(8, 0x4242, 1), { to: sa('198.18.0.2') }), 19);
  settle();
  const got = drain(s);
  t.equal(got.length, 1, 'one reply (our own request is not looped to us)');
  const r = got[0]!;
  t.equal(r.data[0]! >> 4, 4, 'IP version 4 first');
  const hl = (r.data[0]! & 0xf) * 4;
  t.equal(hl, 20);
  t.equal(r.data[9], 1, 'protocol ICMP');
  t.same([...r.data.subarray(12, 16)], [198, 18, 0, 2], 'source b');
  t.same([...r.data.subarray(16, 20)], [198, 18, 0, 1], 'destination a');
  t.equal((r.data[2]! << 8) | r.data[3]!, r.data.length, 'total length covers the whole datagram');
  t.same([...r.data.subarray(hl, hl + 8)], [0, 0, r.data[hl + 2], r.data[hl + 3], 0x42, 0x42, 0, 1], 'echo reply with our id and sequence');
  t.equal(finishChecksum(sum16(r.data.subarray(hl))), 0, 'ICMP checksum as b sent it');
  t.same(r.from, sa('198.18.0.2'), 'recvfrom gives the peer, port 0');
  t.equal(b.counters()['raw.received'], 0, 'b has no raw socket');
  t.equal(a.counters()['raw.received'], 1);
});

t.test('v6 raw socket → the stack fills the ICMPv6 checksum; reads start at the ICMPv6 header', async (t) => {
  const { a, settle } = pair();
  const s = ok(a.socket(6, 'raw', 58));
  t.equal(s.getOption('IPV6_CHECKSUM'), 2, 'checksum at offset 2, the kernel computes it');
  t.equal(s.setOption('IPV6_CHECKSUM', -1)?.errno, 22, 'an ICMPv6 socket cannot turn it off');
  // Only echo replies pass, as busybox and iputils set it; the neighbour advertisement of b is filtered.
  const filter = new Uint8Array(32).fill(0xff);
  filter[129 >> 3]! &= ~(1 << (129 & 7));
  t.equal(s.setOption('ICMP6_FILTER', filter), undefined);
  t.same(s.getOption('ICMP6_FILTER'), filter);
  t.equal(s.write(echo(128, 0x77, 3, 'six', false), { to: sa('fd74:7376::2') }), 11);
  settle();
  const got = drain(s);
  t.equal(got.length, 1, 'b answered: the checksum the stack filled verified there');
  const r = got[0]!;
  t.equal(r.data[0], 129, 'no IPv6 header: the echo reply type comes first');
  t.same([...r.data.subarray(4, 8)], [0, 0x77, 0, 3]);
  t.equal(finishChecksum(sum16(r.data, pseudoHeaderSum(ip('fd74:7376::2'), ip('fd74:7376::1'), 58, r.data.length))), 0);
  t.same(r.from, sa('fd74:7376::2'));
  t.ok(a.counters()['raw.unmatched']! >= 1, 'the neighbour advertisement was filtered');
  t.equal((s.write(echo(128, 1, 1, '', false), { to: sa('fd74:7376::2', 17) }) as NetError).errno, 22, 'sin6_port naming another protocol → EINVAL');
});

t.test('v6 raw socket without a filter → sees neighbour discovery too', async (t) => {
  const { a, settle } = pair();
  const s = ok(a.socket(6, 'raw', 58));
  s.write(echo(128, 1, 1, '', false), { to: sa('fd74:7376::2') });
  settle();
  const types = drain(s).map((r) => r.data[0]);
  t.ok(types.includes(136), `neighbour advertisement seen (${types.join(',')})`);
  t.ok(types.includes(129), 'echo reply seen');
});

t.test('raw sockets take copies: ping sockets and the stack\'s own echo replies still work', async (t) => {
  const { a, b, settle } = pair();
  const rawA = ok(a.socket(4, 'raw', 1));
  const rawB = ok(b.socket(4, 'raw', 1));
  const ping = ok(a.socket(4, 'dgram', 1));
  t.equal(ping.write(echo(8, 0, 9, 'ping socket'), { to: sa('198.18.0.2') }), 19);
  settle();
  const viaPing = drain(ping);
  t.equal(viaPing.length, 1, 'the ping socket got its reply');
  t.equal(viaPing[0]!.data[0], 0, 'an echo reply, without IP header');
  const reqAtB = drain(rawB);
  t.equal(reqAtB.length, 1, 'b\'s raw socket saw the request');
  t.equal(reqAtB[0]!.data[20], 8);
  const repAtA = drain(rawA);
  t.equal(repAtA.length, 1, 'a\'s raw socket saw a copy of the reply');
  t.same(repAtA[0]!.data.subarray(20), viaPing[0]!.data, 'the same message');
});

t.test('ICMP_FILTER → blocked types never queued; other types still arrive', async (t) => {
  const { a, settle } = pair();
  const s = ok(a.socket(4, 'raw', 1));
  t.same(s.getOption('ICMP_FILTER'), new Uint8Array(4), 'nothing blocked at first');
  t.equal(s.setOption('ICMP_FILTER', new Uint8Array([1, 0, 0, 0])), undefined, 'block type 0 (echo reply)');
  t.equal(s.setOption('ICMP_FILTER', new Uint8Array(2))?.errno, 22, 'shorter than struct icmp_filter → EINVAL');
  s.write(echo(8, 5, 1), { to: sa('198.18.0.2') });
  settle();
  t.equal(drain(s).length, 0, 'the echo reply was filtered');
  // A request to ourselves loops back: type 8 passes the filter, the reply (type 0) does not.
  s.write(echo(8, 5, 2), { to: sa('198.18.0.1') });
  settle();
  const got = drain(s).map((r) => r.data[20]);
  t.same(got, [8], 'our own echo request passed, its reply did not');
  const v6 = ok(a.socket(6, 'raw', 58));
  t.equal((v6.getOption('ICMP_FILTER') as NetError).errno, 95, 'ICMP_FILTER on an ICMPv6 socket → EOPNOTSUPP');
});

t.test('bound address and connected peer → only matching packets', async (t) => {
  const { a, settle } = pair();
  const other = ok(a.socket(4, 'raw', 1));
  t.equal(other.bind(sa('198.18.0.11')), undefined);
  const mine = ok(a.socket(4, 'raw', 1));
  t.equal(mine.bind(sa('198.18.0.1')), undefined);
  const elsewhere = ok(a.socket(4, 'raw', 1));
  t.equal(elsewhere.connect(sa('198.18.0.3')), undefined);
  const peer = ok(a.socket(4, 'raw', 1));
  t.equal(peer.connect(sa('198.18.0.2')), undefined);
  t.equal(peer.write(echo(8, 6, 1)), 19, 'connected: write without address');
  settle();
  t.equal(drain(other).length, 0, 'bound to another of our addresses: nothing');
  t.equal(drain(elsewhere).length, 0, 'connected to another peer: nothing');
  t.equal(drain(mine).length, 1, 'bound to the destination: the reply');
  t.equal(drain(peer).length, 1, 'connected to the source: the reply');
  t.equal(mine.bind(sa('198.18.0.99'))?.errno, 99, 'bind to an address not ours → EADDRNOTAVAIL');
});

t.test('raw socket errors → errno', async (t) => {
  const { a } = pair();
  t.equal((a.socket(4, 'raw', 6) as NetError).errno, 93, 'raw TCP → EPROTONOSUPPORT');
  t.equal((a.socket(6, 'raw', 1) as NetError).errno, 93, 'ICMPv4 on IPv6 → EPROTONOSUPPORT');
  t.equal((a.socket(4, 'raw', 255) as NetError).errno, 93, 'IPPROTO_RAW → EPROTONOSUPPORT');
  const s = ok(a.socket(4, 'raw', 1));
  t.equal(s.getOption('IP_HDRINCL'), 0);
  t.equal(s.setOption('IP_HDRINCL', 1)?.errno, 95, 'IP_HDRINCL refused: the stack builds the header');
  t.equal(s.setOption('IP_HDRINCL', 0), undefined);
  t.equal((s.write(echo(8, 1, 1)) as NetError).errno, 89, 'no destination → EDESTADDRREQ');
  t.equal(s.listen(1)?.errno, 95);
  t.equal(s.getOption('SO_RCVBUF'), 212992, 'generic options still served');
  s.close();
  t.equal((s.read() as NetError).errno, 9);
  t.equal(a.raw.wants(4, 1), false, 'a closed socket leaves the delivery list');
});

t.test('ICMPv6 with a bad checksum → no raw socket gets it; IPv4 raw sockets get what came', async (t) => {
  const { a } = pair();
  const s6 = ok(a.socket(6, 'raw', 58));
  const s4 = ok(a.socket(4, 'raw', 1));
  const info6 = { nicId: 1, src: ip('fd74:7376::2'), dst: ip('fd74:7376::1'), ttl: 64, tos: 0, broadcast: false };
  const msg = new Uint8Array([129, 0, 0, 0, 0, 1, 0, 1]);
  const c = finishChecksum(sum16(msg, pseudoHeaderSum(info6.src, info6.dst, 58, msg.length)));
  msg[2] = c >> 8;
  msg[3] = c & 0xff;
  a.raw.deliverRaw(6, 58, info6, msg, 0);
  t.equal(drain(s6).length, 1, 'a good one arrives');
  msg[7] ^= 1;
  a.raw.deliverRaw(6, 58, info6, msg, 0);
  t.equal(drain(s6).length, 0, 'a bad one does not');
  t.equal(a.counters()['raw.checksumErrors'], 1);
  const info4 = { nicId: 1, src: ip('198.18.0.2'), dst: ip('198.18.0.1'), ttl: 64, tos: 0, broadcast: false };
  const dgram = new Uint8Array(28);
  dgram.set([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1, 0, 0, 0x12, 0x34, 0, 1, 0, 1]);
  a.raw.deliverRaw(4, 1, info4, dgram, 20);
  t.equal(drain(s4).length, 1, 'raw_rcv checks no ICMP checksum');
});
