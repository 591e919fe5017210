import t from 'tap';
import { PcapngWriter } from '../../../netstack/link/pcapng.ts';
import { ARP_REQ, ECHO_REQ, READ_BY_TSHARK, concat, frameFields, noTshark, runTshark, tmpFile, toHex } from './captures.ts';

t.test('PcapngWriter → byte-exact blocks; tshark reads it with ns timestamps', async (t) => {
  const chunks: Uint8Array[] = [];
  const w = new PcapngWriter((c) => chunks.push(c), { nanosecond: true, ifName: 'tsv0' });
  t.equal(chunks.length, 2);
  t.equal(toHex(chunks[0]!), '0a0d0d0a' + '1c000000' + '4d3c2b1a' + '0100' + '0000' + 'ffffffffffffffff' + '1c000000');
  t.equal(
    toHex(chunks[1]!),
    '01000000' + '28000000' + '0100' + '0000' + '00000400' + '02000400' + '74737630' + '09000100' + '09000000' +
      '00000000' + '28000000',
  );
  w.write(1500.000001, ECHO_REQ);
  w.write(1700000000000.5, ARP_REQ);
  const epb = chunks[2]!;
  const v = new DataView(epb.buffer);
  t.equal(v.getUint32(0, true), 6);
  t.equal(v.getUint32(4, true), 28 + 60 + 4, 'length with the 59-byte frame padded to 60');
  t.equal(v.getUint32(12, true) * 2 ** 32 + v.getUint32(16, true), 1_500_000_001);
  t.equal(v.getUint32(20, true), 59);
  t.equal(v.getUint32(24, true), 59);
  t.same(epb.subarray(28, 87), ECHO_REQ);
  t.equal(epb[87], 0, 'padding is zero');
  t.equal(v.getUint32(epb.length - 4, true), epb.length);
  const v2 = new DataView(chunks[3]!.buffer);
  const ticks = (BigInt(v2.getUint32(12, true)) << 32n) | BigInt(v2.getUint32(16, true));
  t.equal(ticks, 1_700_000_000_000_500_000n, 'ns since the epoch kept exactly beyond 2^53');

  t.test(READ_BY_TSHARK, { skip: noTshark }, async (t) => {
    const path = tmpFile(t, 'sniff.pcapng', concat(chunks));
    t.same(
      frameFields(path),
      [
        ['59', 'eth:ethertype:ip:icmp:data', '1.500000001'],
        ['42', 'eth:ethertype:arp', '1700000000.000500000'],
      ],
    );
    t.equal(runTshark(['-r', path, '-Y', '_ws.malformed']), '');
  });
});
