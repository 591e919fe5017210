import t from 'tap';
import { parseAddress } from '../../netstack/addr.ts';
import { fragmentFrame, Reassembler } from './fragments.ts';
import {
  buildTcpFrame,
  buildUdpFrame,
  decodeFrame,
  decodeTcpOptions,
  encodeTcpOptions,
  formatDecoded,
  icmpNumbers,
  neighborReply,
} from './packets.ts';

const ep4 = {
  dutMac: new Uint8Array([2, 0, 0, 0, 0, 1]),
  remoteMac: new Uint8Array([2, 0, 0, 0, 0, 2]),
  dutIp: parseAddress('198.18.0.1')!,
  remoteIp: parseAddress('198.18.0.2')!,
};
const ep6 = { ...ep4, dutIp: parseAddress('fd74:7376::1')!, remoteIp: parseAddress('fd74:7376::2')! };

t.test('TCP options keep the script order, byte-exact, and decode back', async (t) => {
  const opts = [{ kind: 'mss', value: 1460 }, { kind: 'sackOK' }, { kind: 'nop' }, { kind: 'nop' }, { kind: 'nop' }, { kind: 'wscale', value: 7 }] as const;
  const b = encodeTcpOptions(opts);
  t.same([...b], [2, 4, 5, 180, 4, 2, 1, 1, 1, 3, 3, 7]);
  t.same(decodeTcpOptions(b), opts);
  const ts = encodeTcpOptions([{ kind: 'nop' }, { kind: 'nop' }, { kind: 'TS', val: 1, ecr: 2 }, { kind: 'sack', blocks: [[5, 9]] }]);
  t.equal(ts.length, 24, 'padded to a multiple of 4');
  t.same(decodeTcpOptions(ts).slice(0, 4), [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'TS', val: 1, ecr: 2 }, { kind: 'sack', blocks: [[5, 9]] }]);
});

t.test('a built TCP frame decodes to the same fields and prints like tcpdump', async (t) => {
  const f = buildTcpFrame(ep4, { srcPort: 40000, dstPort: 8080, seq: 7, ack: 9, flags: 0x12, win: 1000, options: [{ kind: 'mss', value: 1460 }], payload: new Uint8Array(3) });
  const d = decodeFrame(f)!;
  t.equal(d.ipChecksumOk, true);
  t.match(d.tcp, { srcPort: 40000, dstPort: 8080, seq: 7, ack: 9, flags: 0x12, win: 1000 });
  t.equal(formatDecoded(d), '198.18.0.2.40000 > 198.18.0.1.8080: S. 7:10(3) ack 9 win 1000 <mss 1460>');
});

t.test('ICMP names map to type/code per family', async (t) => {
  t.same(icmpNumbers(true, 'unreachable', 'port_unreachable'), { type: 3, code: 3 });
  t.same(icmpNumbers(false, 'unreachable', 'port_unreachable'), { type: 1, code: 4 });
  t.same(icmpNumbers(true, 'unreachable', 'frag_needed'), { type: 3, code: 4 });
  t.same(icmpNumbers(false, 'packet_too_big', undefined), { type: 2, code: 0 });
  t.same(icmpNumbers(true, 'parameter_problem', 'code_2'), { type: 12, code: 2 });
  t.match(icmpNumbers(true, 'bogus', undefined), /unknown ICMP type "bogus"/);
});

t.test('the runner answers ARP for the remote address only', async (t) => {
  const req = new Uint8Array(42);
  req.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 8, 6], 0);
  req.set([0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2], 14);
  const rep = neighborReply(ep4, req)!;
  t.same([...rep.subarray(0, 14)], [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 6]);
  t.same([...rep.subarray(20, 42)], [0, 2, 2, 0, 0, 0, 0, 2, 198, 18, 0, 2, 2, 0, 0, 0, 0, 1, 198, 18, 0, 1]);
  req[41] = 3;
  t.equal(neighborReply(ep4, req), undefined, 'another address: no answer');
});

t.test('fragment → reassemble gives back the datagram, IPv4 and IPv6', async (t) => {
  for (const ep of [ep4, ep6]) {
    const whole = buildUdpFrame(ep, 1, 2, new Uint8Array(2500).map((_, i) => i & 0xff));
    const frags = fragmentFrame(whole, 1000);
    t.equal(frags.length, 3);
    const r = new Reassembler();
    t.equal(r.push(frags[2]!), undefined);
    t.equal(r.push(frags[0]!), undefined);
    const out = r.push(frags[1]!)!;
    t.equal(out.fragments, 3);
    const d = decodeFrame(out.frame)!;
    t.equal(d.udp!.payload.length, 2500);
    t.equal(d.udp!.payload[2499], 2499 & 0xff);
    t.same(r.push(whole), { frame: whole, fragments: 1 }, 'unfragmented frames pass through');
  }
});
