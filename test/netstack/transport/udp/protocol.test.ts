import t from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import type { PacketInfo } from '../../../../netstack/transport/protocol.ts';
import { finishChecksum, pseudoHeaderSum, sum16 } from '../../../../netstack/wire/checksum.ts';
import { ip, mustRead, sa, text, world } from './helpers.ts';

const A4 = ip('198.18.0.1');
const B4 = ip('198.18.0.2');
const A6 = ip('fd74:7376::1');
const B6 = ip('fd74:7376::2');

/** A UDP datagram from port 1234 to `dport` with "hi" and a correct checksum unless told otherwise. */
function datagram(src: Uint8Array, dst: Uint8Array, dport: number, checksum?: number): Uint8Array {
  const d = new Uint8Array([0x04, 0xd2, dport >> 8, dport & 0xff, 0x00, 0x0a, 0, 0, 0x68, 0x69]);
  const c = checksum ?? finishChecksum(sum16(d, pseudoHeaderSum(src, dst, 17, d.length)));
  d[6] = c >> 8;
  d[7] = c & 0xff;
  return d;
}

const info = (src: Uint8Array, dst: Uint8Array): PacketInfo => ({ nicId: 1, src, dst, ttl: 64, tos: 0, broadcast: false });

function setup() {
  const w = world();
  const s4 = w.b.t.udp.newEndpoint(4);
  s4.bind(sa('0.0.0.0', 7));
  const s6 = w.b.t.udp.newEndpoint(6);
  s6.setOption('IPV6_V6ONLY', 1);
  s6.bind(sa('::', 7));
  return { udp: w.b.t.udp, s4, s6, stats: w.b.host.stats };
}

// [name, src, dst, segment, result, counter that moves]
const cases: [string, Uint8Array, Uint8Array, Uint8Array, string, string][] = [
  ['v4 good checksum', A4, B4, datagram(A4, B4, 7), 'delivered', 'received'],
  ['v4 zero checksum (none)', A4, B4, datagram(A4, B4, 7, 0), 'delivered', 'received'],
  ['v4 bad checksum', A4, B4, datagram(A4, B4, 7, 0x1234), 'malformed', 'badChecksum'],
  ['v6 good checksum', A6, B6, datagram(A6, B6, 7), 'delivered', 'received'],
  ['v6 zero checksum', A6, B6, datagram(A6, B6, 7, 0), 'malformed', 'badChecksum'],
  ['v6 bad checksum', A6, B6, datagram(A6, B6, 7, 0xbeef), 'malformed', 'badChecksum'],
  ['shorter than a header', A4, B4, new Uint8Array([0, 1, 0, 7, 0]), 'malformed', 'malformed'],
  ['length field below 8', A4, B4, new Uint8Array([0, 1, 0, 7, 0, 4, 0, 0]), 'malformed', 'malformed'],
  ['length field beyond the packet', A4, B4, new Uint8Array([0, 1, 0, 7, 0, 20, 0, 0, 1]), 'malformed', 'malformed'],
  ['destination port 0 (nobody can bind it)', A4, B4, datagram(A4, B4, 0), 'no-endpoint', 'noPort'],
  ['closed port', A4, B4, datagram(A4, B4, 8), 'no-endpoint', 'noPort'],
  ['closed port v6', A6, B6, datagram(A6, B6, 8), 'no-endpoint', 'noPort'],
];

for (const [name, src, dst, seg, result, counter] of cases) {
  t.test(`${name} → ${result}, ${counter}+1`, async (t) => {
    const { udp, stats } = setup();
    const before = { ...udp.counters };
    const traced: string[] = [];
    stats.tracer = (e) => traced.push(`${e.group}.${e.counter}`);
    t.equal(udp.deliver(info(src, dst), seg), result);
    for (const k of Object.keys(before)) t.equal(udp.counters[k], before[k]! + (k === counter ? 1 : 0), k);
    if (counter !== 'received') t.same(traced, [`udp.${counter}`], 'drops are traced');
  });
}

t.test('trailing bytes beyond the UDP length are ignored', async (t) => {
  const { udp, s4 } = setup();
  const d = datagram(A4, B4, 7);
  const padded = new Uint8Array(d.length + 6);
  padded.set(d);
  t.equal(udp.deliver(info(A4, B4), padded), 'delivered');
  t.equal(text(mustRead(s4).data), 'hi');
});

t.test('delivered bytes are copied: the caller may reuse its buffer', async (t) => {
  const { udp, s4 } = setup();
  const d = datagram(A4, B4, 7);
  udp.deliver(info(A4, B4), d);
  d.fill(0);
  const r = mustRead(s4);
  t.equal(text(r.data), 'hi');
  t.same(r.from, sa('198.18.0.1', 1234));
});

t.test('ICMP error quoting fewer than 4 bytes → ignored', async (t) => {
  const { udp, s4 } = setup();
  s4.connect(sa('198.18.0.1', 1234));
  const msg = { kind: 'port-unreachable', type: 3, code: 3, family: 4, from: A4, mtu: 0 } as const;
  udp.deliverControl(msg, B4, A4, new Uint8Array([0, 7, 4]));
  t.equal(s4.takeError(), undefined);
  udp.deliverControl(msg, B4, A4, new Uint8Array([0, 7, 0x04, 0xd2]));
  t.equal(s4.takeError(), Err.ConnectionRefused);
});
