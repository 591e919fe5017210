import t from 'tap';
import { PcapWriter } from '../../../netstack/link/pcap.ts';
import { ARP_REQ, ECHO_REQ, READ_BY_TSHARK, concat, noTshark, runTshark, tmpFile, toHex } from './captures.ts';

t.test('PcapWriter → byte-exact global header and record (µs)', async (t) => {
  const out: Uint8Array[] = [];
  const w = new PcapWriter((b) => out.push(b), { snaplen: 65535 });
  t.equal(out.length, 1);
  t.equal(toHex(out[0]!), 'd4c3b2a1' + '0200' + '0400' + '00000000' + '00000000' + 'ffff0000' + '01000000');
  w.write(1234.5678, ARP_REQ);
  t.equal(out.length, 2);
  // 1.234568 s (the µs rounds), 42 bytes captured of 42.
  t.equal(toHex(out[1]!.subarray(0, 16)), '01000000' + '48940300' + '2a000000' + '2a000000');
  t.same(out[1]!.subarray(16), ARP_REQ);
});

t.test('PcapWriter nanosecond → ns magic and fraction; snaplen truncates', async (t) => {
  const out: Uint8Array[] = [];
  const w = new PcapWriter((b) => out.push(b), { nanosecond: true, snaplen: 20 });
  t.equal(toHex(out[0]!.subarray(0, 4)), '4d3cb2a1');
  w.write(2000.000001, ECHO_REQ);
  t.equal(toHex(out[1]!.subarray(0, 16)), '02000000' + '01000000' + '14000000' + '3b000000');
  t.equal(out[1]!.length, 36);
  t.same(out[1]!.subarray(16), ECHO_REQ.subarray(0, 20));
});

t.test('PcapWriter fraction rounding to a whole second → carries into seconds', async (t) => {
  const out: Uint8Array[] = [];
  const w = new PcapWriter((b) => out.push(b));
  w.write(999.9999999, ARP_REQ);
  t.equal(toHex(out[1]!.subarray(0, 8)), '01000000' + '00000000');
});

t.test('PcapWriter with snaplen 20 → tshark sees 20 of 59 bytes captured, nothing malformed but the cut', async (t) => {
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((b) => chunks.push(b), { snaplen: 20 });
  w.write(0, ECHO_REQ);
  w.write(0.001, ARP_REQ);
  t.test(READ_BY_TSHARK, { skip: noTshark }, async (t) => {
    const path = tmpFile(t, 'snap.pcap', concat(chunks));
    const out = runTshark(['-r', path, '-T', 'fields', '-e', 'frame.len', '-e', 'frame.cap_len']);
    t.equal(out, '59\t20\n42\t20\n');
  });
});
