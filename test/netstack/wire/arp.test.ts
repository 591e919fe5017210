import t from 'tap';
import { ARP_HEADER_LEN, ARP_REPLY, ARP_REQUEST, ArpPacket, arpHeaderLength, emitArp, parseArp } from '../../../netstack/wire/arp.ts';
import { hex, linux, toHex } from './frames.ts';

function view(buf: Uint8Array): ArpPacket {
  const p = ArpPacket.check(buf);
  if (typeof p === 'string') throw new Error(p);
  return p;
}

const cases = [
  { name: 'linux request who-has 198.18.0.2', frame: linux[12]!, op: ARP_REQUEST, sha: '02005e00000a', spa: 'c6120001', tha: '000000000000', tpa: 'c6120002' },
  { name: 'linux reply 198.18.0.2 is-at', frame: linux[13]!, op: ARP_REPLY, sha: '02005e00000b', spa: 'c6120002', tha: '02005e00000a', tpa: 'c6120001' },
];

for (const c of cases) {
  t.test(`${c.name}: check → fields; parse → emit → same bytes`, async (t) => {
    const body = c.frame.subarray(14);
    const p = view(body);
    t.equal(p.hardwareType, 1);
    t.equal(p.protocolType, 0x0800);
    t.equal(p.hardwareLength, 6);
    t.equal(p.protocolLength, 4);
    t.equal(p.operation, c.op);
    t.equal(toHex(p.senderHardwareAddress), c.sha);
    t.equal(toHex(p.senderProtocolAddress), c.spa);
    t.equal(toHex(p.targetHardwareAddress), c.tha);
    t.equal(toHex(p.targetProtocolAddress), c.tpa);
    t.equal(p.headerLength, 28);
    const r = parseArp(p);
    if (typeof r === 'string') throw new Error(r);
    t.equal(arpHeaderLength(r), ARP_HEADER_LEN);
    const out = new Uint8Array(30);
    t.equal(emitArp(r, out, 2), 28);
    t.equal(toHex(out.subarray(2)), toHex(body.subarray(0, 28)));
  });
}

t.test('parse copies addresses: later writes to the frame do not change the Repr', async (t) => {
  const body = linux[12]!.slice(14);
  const r = parseArp(view(body));
  if (typeof r === 'string') throw new Error(r);
  body.fill(0);
  t.equal(toHex(r.senderHardwareAddress), '02005e00000a');
});

t.test('check: every length below 28 → truncated', async (t) => {
  const body = linux[12]!.subarray(14);
  for (let n = 0; n < 28; n++) t.equal(ArpPacket.check(body.subarray(0, n)), 'truncated', `${n} bytes`);
});

t.test('check: address lengths decide the size (hln 16 needs 48 bytes)', async (t) => {
  const b = linux[12]!.slice(14, 14 + 28);
  b[4] = 16;
  t.equal(ArpPacket.check(b), 'truncated');
  const big = new Uint8Array(48);
  big.set(b);
  t.type(ArpPacket.check(big), ArpPacket);
});

t.test('parse: unsupported hardware, protocol, lengths and operation → reasons', async (t) => {
  const base = linux[12]!.subarray(14, 42);
  const mutate = (i: number, v: number) => {
    const b = base.slice();
    b[i] = v;
    return parseArp(view(b));
  };
  t.equal(mutate(1, 6), 'unsupported-hardware'); // IEEE 802 hardware type
  t.equal(mutate(2, 0x86), 'unsupported-protocol');
  t.equal(mutate(5, 2), 'unsupported-protocol');
  t.equal(mutate(7, 3), 'bad-operation'); // RARP request
  t.equal(mutate(7, 0), 'bad-operation');
});

t.test('emit: a gratuitous reply Repr → exact bytes', async (t) => {
  const out = new Uint8Array(28);
  emitArp(
    {
      operation: ARP_REPLY,
      senderHardwareAddress: hex('02005e00000b'),
      senderProtocolAddress: hex('c6120002'),
      targetHardwareAddress: hex('ffffffffffff'),
      targetProtocolAddress: hex('c6120002'),
    },
    out,
  );
  t.equal(toHex(out), '0001080006040002' + '02005e00000b' + 'c6120002' + 'ffffffffffff' + 'c6120002');
});

t.test('setters write the right offsets', async (t) => {
  const p = view(new Uint8Array(28));
  p.hardwareType = 1;
  p.protocolType = 0x0800;
  p.hardwareLength = 6;
  p.protocolLength = 4;
  p.operation = ARP_REQUEST;
  p.senderHardwareAddress = hex('010203040506');
  p.senderProtocolAddress = hex('c6120001');
  p.targetHardwareAddress = hex('0a0b0c0d0e0f');
  p.targetProtocolAddress = hex('c6120002');
  t.equal(toHex(p.buffer), '0001080006040001' + '010203040506c6120001' + '0a0b0c0d0e0fc6120002');
});
