import t from 'tap';
import { parseAddress } from '../../../netstack/addr.ts';
import {
  emitTcp,
  parseTcp,
  parseTcpOptions,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TcpPacket,
  tcpChecksum,
  tcpHeaderLength,
  tcpOptionsIter,
  type TcpRepr,
} from '../../../netstack/wire/tcp.ts';

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// Captured from Linux 6.18 (nc over a veth between two namespaces, offloads off): TCP segments only.
const A4 = parseAddress('198.18.0.1')!;
const B4 = parseAddress('198.18.0.2')!;
const A6 = parseAddress('fd74:7376::1')!;
const B6 = parseAddress('fd74:7376::2')!;

interface Capture {
  name: string;
  src: Uint8Array;
  dst: Uint8Array;
  hex: string;
  repr: Omit<TcpRepr, 'payload' | 'urgentPointer'> & { payload: string };
}

const CAPTURES: Capture[] = [
  {
    name: 'v4 SYN',
    src: A4,
    dst: B4,
    hex: 'b98c138951eba8b300000000a002faf086580000020405b40402080a2b3647a1000000000103030a',
    repr: {
      srcPort: 47500, dstPort: 5001, seq: 0x51eba8b3, ack: 0, flags: TCP_SYN, window: 64240,
      options: { mss: 1460, sackPermitted: true, tsVal: 724977569, tsEcr: 0, wscale: 10 }, payload: '',
    },
  },
  {
    name: 'v4 SYN-ACK',
    src: B4,
    dst: A4,
    hex: '1389b98c3d847e6351eba8b4a012fe884a7d0000020405b40402080a522c2a1e2b3647a10103030a',
    repr: {
      srcPort: 5001, dstPort: 47500, seq: 0x3d847e63, ack: 0x51eba8b4, flags: TCP_SYN | TCP_ACK, window: 65160,
      options: { mss: 1460, sackPermitted: true, tsVal: 1378626078, tsEcr: 724977569, wscale: 10 }, payload: '',
    },
  },
  {
    name: 'v4 ACK',
    src: A4,
    dst: B4,
    hex: 'b98c138951eba8b43d847e648010003f779500000101080a2b3647a2522c2a1e',
    repr: {
      srcPort: 47500, dstPort: 5001, seq: 0x51eba8b4, ack: 0x3d847e64, flags: TCP_ACK, window: 63,
      options: { tsVal: 724977570, tsEcr: 1378626078 }, payload: '',
    },
  },
  {
    name: 'v4 data',
    src: A4,
    dst: B4,
    hex: 'b98c138951eba8b43d847e648018003f633500000101080a2b3647a3522c2a1e68656c6c6f2074737669736f720a',
    repr: {
      srcPort: 47500, dstPort: 5001, seq: 0x51eba8b4, ack: 0x3d847e64, flags: TCP_ACK | TCP_PSH, window: 63,
      options: { tsVal: 724977571, tsEcr: 1378626078 }, payload: '68656c6c6f2074737669736f720a',
    },
  },
  {
    name: 'v4 FIN',
    src: A4,
    dst: B4,
    hex: 'b98c138951eba8c23d847e648011003f778400000101080a2b3647a3522c2a1f',
    repr: {
      srcPort: 47500, dstPort: 5001, seq: 0x51eba8c2, ack: 0x3d847e64, flags: TCP_ACK | TCP_FIN, window: 63,
      options: { tsVal: 724977571, tsEcr: 1378626079 }, payload: '',
    },
  },
  {
    name: 'v4 RST-ACK to closed port',
    src: B4,
    dst: A4,
    hex: '138aed68000000001ad2ab40501400005ca30000',
    repr: {
      srcPort: 5002, dstPort: 60776, seq: 0, ack: 0x1ad2ab40, flags: TCP_RST | TCP_ACK, window: 0,
      options: {}, payload: '',
    },
  },
  {
    name: 'v6 SYN',
    src: A6,
    dst: B6,
    hex: 'cdf81389771ed59100000000a002fd203f790000020405a00402080acd912dda000000000103030a',
    repr: {
      srcPort: 52728, dstPort: 5001, seq: 0x771ed591, ack: 0, flags: TCP_SYN, window: 64800,
      options: { mss: 1440, sackPermitted: true, tsVal: 3448843738, tsEcr: 0, wscale: 10 }, payload: '',
    },
  },
  {
    name: 'v6 data',
    src: A6,
    dst: B6,
    hex: 'cdf81389771ed592308567028018004002a300000101080acd912ddbf21dca5c68656c6c6f2074737669736f720a',
    repr: {
      srcPort: 52728, dstPort: 5001, seq: 0x771ed592, ack: 0x30856702, flags: TCP_ACK | TCP_PSH, window: 64,
      options: { tsVal: 3448843739, tsEcr: 4062038620 }, payload: '68656c6c6f2074737669736f720a',
    },
  },
  {
    name: 'v6 FIN-ACK',
    src: B6,
    dst: A6,
    hex: '1389cdf830856702771ed5a18011003f16f200000101080af21dca5dcd912ddb',
    repr: {
      srcPort: 5001, dstPort: 52728, seq: 0x30856702, ack: 0x771ed5a1, flags: TCP_ACK | TCP_FIN, window: 63,
      options: { tsVal: 4062038621, tsEcr: 3448843739 }, payload: '',
    },
  },
];

for (const c of CAPTURES) {
  t.test(`${c.name}: parse → repr → emit is byte-exact`, async (t) => {
    const bytes = hex(c.hex);
    const pkt = TcpPacket.check(bytes);
    if (typeof pkt === 'string') throw new Error(pkt);
    t.ok(pkt.verifyChecksum(c.src, c.dst), 'checksum verifies');
    t.equal(tcpChecksum(bytes, c.src, c.dst), pkt.checksum, 'checksum recomputes to the captured value');
    const repr = parseTcp(pkt, c.src, c.dst);
    if (typeof repr === 'string') throw new Error(repr);
    t.same({ ...repr, payload: toHex(repr.payload) }, { ...c.repr, urgentPointer: 0 });
    t.equal(tcpHeaderLength(repr), pkt.headerLength);
    const out = new Uint8Array(bytes.length + 7);
    const n = emitTcp(repr, out, 7, c.src, c.dst);
    t.equal(n, bytes.length);
    t.equal(toHex(out.subarray(7)), c.hex);
  });
}

t.test('view getters and setters', async (t) => {
  const bytes = hex(CAPTURES[0]!.hex);
  const p = TcpPacket.check(bytes) as TcpPacket;
  t.equal(p.srcPort, 47500);
  t.equal(p.dstPort, 5001);
  t.equal(p.headerLength, 40);
  t.equal(p.dataOffset, 10);
  t.ok(p.syn);
  t.notOk(p.ack || p.fin || p.rst || p.psh || p.urg || p.ece || p.cwr);
  t.equal(p.options.length, 20);
  t.equal(p.payload.length, 0);
  p.srcPort = 1;
  p.dstPort = 2;
  p.seqNumber = 0xfffffffe;
  p.ackNumber = 0x01020304;
  p.flags = 0xff;
  p.window = 0xabcd;
  p.urgentPointer = 0x1234;
  t.equal(toHex(bytes.subarray(0, 20)), '00010002fffffffe01020304a0ffabcd86581234');
  t.ok(p.fin && p.syn && p.rst && p.psh && p.ack && p.urg && p.ece && p.cwr);
  t.notOk(p.verifyChecksum(A4, B4), 'checksum no longer matches');
  p.fillChecksum(A4, B4);
  t.ok(p.verifyChecksum(A4, B4));
  t.notOk(p.verifyChecksum(A4, A4), 'pseudo-header covers the addresses');
});

t.test('check rejects bad headers', async (t) => {
  const cases: [string, string][] = [
    ['truncated', 'b98c1389'],
    ['bad-data-offset', 'b98c138951eba8b300000000400200000000000000000000'],
    ['truncated-options', 'b98c138951eba8b30000000060020000000000000000'],
  ];
  for (const [reason, h] of cases) t.equal(TcpPacket.check(hex(h)), reason, reason);
});

t.test('options iterator and parser', async (t) => {
  const table: [string, string, unknown][] = [
    ['nop nop eol stops', '0101000204ffff', { }],
    ['mss', '020405b4', { mss: 1460 }],
    ['sack 2 blocks', '0101051200000001000000050000000a00000014', { sack: [{ left: 1, right: 5 }, { left: 10, right: 20 }] }],
    ['unknown kept', '1e0401020101', { unknown: [{ kind: 30, data: Uint8Array.from([1, 2]) }] }],
    ['length 1 is malformed', '020105b4', 'option-bad-length'],
    ['length 0 is malformed', '0300', 'option-bad-length'],
    ['length past end', '0101080a0000', 'option-bad-length'],
    ['kind without length', '010102', 'option-truncated'],
    ['mss wrong size', '0203ff', 'bad-mss-option'],
    ['timestamp wrong size', '08060000000001', 'bad-timestamp-option'],
    ['sack not a multiple of 8', '050600000000', 'bad-sack-option'],
  ];
  for (const [name, h, want] of table) t.same(parseTcpOptions(hex(h)), want, name);
  const kinds = [...tcpOptionsIter(hex('0101080a00000001000000020000'))].map((o) => (typeof o === 'string' ? o : o.kind));
  t.same(kinds, [1, 1, 8, 0]);
});

/** The parser as it was written over tcpOptionsIter, option by option: what the index walk must agree with. */
function parseByIter(options: Uint8Array): ReturnType<typeof parseTcpOptions> {
  const o: Record<string, unknown> = {};
  for (const opt of tcpOptionsIter(options)) {
    if (typeof opt === 'string') return opt;
    const d = opt.data;
    const u32 = (i: number) => ((d[i]! << 24) | (d[i + 1]! << 16) | (d[i + 2]! << 8) | d[i + 3]!) >>> 0;
    switch (opt.kind) {
      case 0:
      case 1:
        break;
      case 2:
        if (d.length !== 2) return 'bad-mss-option';
        o.mss = (d[0]! << 8) | d[1]!;
        break;
      case 3:
        if (d.length !== 1) return 'bad-wscale-option';
        o.wscale = d[0];
        break;
      case 4:
        if (d.length !== 0) return 'bad-sack-permitted-option';
        o.sackPermitted = true;
        break;
      case 5: {
        if (d.length === 0 || d.length % 8 !== 0) return 'bad-sack-option';
        const blocks = [];
        for (let j = 0; j < d.length; j += 8) blocks.push({ left: u32(j), right: u32(j + 4) });
        o.sack = blocks;
        break;
      }
      case 8:
        if (d.length !== 8) return 'bad-timestamp-option';
        o.tsVal = u32(0);
        o.tsEcr = u32(4);
        break;
      case 34:
        o.fastOpen = { cookie: d.slice(), exp: false };
        break;
      case 254:
        if (d.length >= 2 && ((d[0]! << 8) | d[1]!) === 0xf989) {
          o.fastOpen = { cookie: d.slice(2), exp: true };
          break;
        }
        ((o.unknown ??= []) as unknown[]).push({ kind: opt.kind, data: d.slice() });
        break;
      default:
        ((o.unknown ??= []) as unknown[]).push({ kind: opt.kind, data: d.slice() });
    }
  }
  return o;
}

t.test('the parser agrees with a walk of tcpOptionsIter on 20,000 random option fields, broken ones included', async (t) => {
  let seed = 30;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const KINDS = [0, 1, 2, 3, 4, 5, 8, 34, 254, 30];
  let differ = 0;
  let malformed = 0;
  for (let c = 0; c < 20_000; c++) {
    const bytes: number[] = [];
    const want = rand(41);
    while (bytes.length < want) {
      const kind = KINDS[rand(KINDS.length)]!;
      bytes.push(kind);
      if (kind <= 1) continue;
      // Mostly the lengths the kinds should have, sometimes any: the parser's checks must trip as the walk's do.
      const proper: Record<number, number> = { 2: 4, 3: 3, 4: 2, 5: 2 + 8 * (1 + rand(3)), 8: 10, 34: 2 + rand(17), 254: 4 + rand(9), 30: 2 + rand(5) };
      const len = rand(8) === 0 ? rand(12) : proper[kind]!;
      bytes.push(len);
      if (kind === 254 && rand(2) === 0) bytes.push(0xf9, 0x89);
      for (let k = 2; k < len && bytes.length < 40; k++) bytes.push(rand(256));
    }
    const opts = Uint8Array.from(bytes.slice(0, 40));
    const got = parseTcpOptions(opts);
    if (typeof got === 'string') malformed++;
    if (JSON.stringify(got) !== JSON.stringify(parseByIter(opts))) {
      differ++;
      if (differ <= 3) t.fail(`${Buffer.from(opts).toString('hex')}: ${JSON.stringify(got)} against ${JSON.stringify(parseByIter(opts))}`);
    }
  }
  t.equal(differ, 0, 'no field parsed differently');
  t.ok(malformed > 1000 && malformed < 19_000, `both kinds of field were tried (${malformed} malformed)`);
});

t.test('emit: SYN without timestamps, sack blocks, payload copy', async (t) => {
  const r: TcpRepr = {
    srcPort: 1000, dstPort: 2000, seq: 1, ack: 2, flags: TCP_SYN, window: 100, urgentPointer: 0,
    options: { mss: 536, sackPermitted: true, wscale: 7 }, payload: new Uint8Array(),
  };
  t.equal(tcpHeaderLength(r), 32);
  const buf = new Uint8Array(32);
  emitTcp(r, buf, 0);
  t.equal(toHex(buf.subarray(20)), '020402180101040201030307');
  const d: TcpRepr = {
    ...r, flags: TCP_ACK, options: { tsVal: 1, tsEcr: 2, sack: [{ left: 10, right: 20 }] },
    payload: Uint8Array.from([9, 8, 7]),
  };
  const buf2 = new Uint8Array(tcpHeaderLength(d) + 3);
  t.equal(emitTcp(d, buf2, 0, A4, B4), 47);
  t.equal(toHex(buf2.subarray(20)), '0101080a00000001000000020101050a0000000a00000014090807');
  const p = TcpPacket.check(buf2) as TcpPacket;
  t.ok(p.verifyChecksum(A4, B4));
  t.throws(() => tcpHeaderLength({ ...d, options: { tsVal: 1, tsEcr: 1, sack: [d.options.sack![0]!, d.options.sack![0]!, d.options.sack![0]!, d.options.sack![0]!] } }));
});
