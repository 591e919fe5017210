import t from 'tap';
import { VirtualClock } from '../../../netstack/clock.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import { SnifferEndpoint } from '../../../netstack/link/sniffer.ts';
import { ARP_REP, ARP_REQ, ECHO_REP, ECHO_REQ, READ_BY_TSHARK, concat, frameFields, noTshark, runTshark, tmpFile } from './captures.ts';
import { Recorder } from './recorder.ts';

t.test('sniffer over a channel → frames pass unchanged both ways and are recorded with clock time', async (t) => {
  const clock = new VirtualClock(1000);
  const [a, b] = ChannelEndpoint.pair({ clock });
  const chunks: Uint8Array[] = [];
  const sn = new SnifferEndpoint(a, { clock, out: (c) => chunks.push(c) });
  t.equal(sn.mtu, a.mtu);
  t.equal(sn.macAddress, a.macAddress);
  const ra = new Recorder();
  const rb = new Recorder();
  sn.attach(ra);
  b.attach(rb);

  t.equal(sn.writeFrame(ARP_REQ.slice()), true);
  clock.advance(1);
  b.writeFrame(ARP_REP.slice());
  clock.advance(1);
  sn.writeFrame(ECHO_REQ.slice());
  clock.advance(0.25);
  b.writeFrame(ECHO_REP.slice());
  clock.advance(1);

  t.same(rb.frames, [ARP_REQ, ECHO_REQ], 'sent frames reach the peer unchanged');
  t.same(ra.frames, [ARP_REP, ECHO_REP], 'received frames reach the dispatcher unchanged');
  t.same(ra.log, ['f0', '|', 'f69', '|'], 'batch ends pass through');
  t.equal(sn.framesOut, 2);
  t.equal(sn.framesIn, 2);

  const file = concat(chunks);
  const recs: [number, number, Uint8Array][] = [];
  const v = new DataView(file.buffer);
  for (let o = 24; o < file.length; ) {
    const len = v.getUint32(o + 8, true);
    recs.push([v.getUint32(o, true), v.getUint32(o + 4, true), file.subarray(o + 16, o + 16 + len)]);
    o += 16 + len;
  }
  t.same(
    recs.map(([s, us]) => [s, us]),
    [
      [1, 0],
      [1, 1000],
      [1, 2000],
      [1, 2250],
    ],
  );
  t.same(
    recs.map((r) => r[2]),
    [ARP_REQ, ARP_REP, ECHO_REQ, ECHO_REP],
  );

  t.test(READ_BY_TSHARK, { skip: noTshark }, async (t) => {
    const path = tmpFile(t, 'sniff.pcap', file);
    const lines = frameFields(path);
    t.same(lines.map((l) => l.slice(0, 2).join(' ')), [
      '42 eth:ethertype:arp',
      '42 eth:ethertype:arp',
      '59 eth:ethertype:ip:icmp:data',
      '59 eth:ethertype:ip:icmp:data',
    ]);
    t.same(
      lines.map((l) => Number(l[2])),
      [1, 1.001, 1.002, 1.00225],
    );
    t.equal(runTshark(['-r', path, '-Y', '_ws.malformed']), '');
    const icmp = runTshark(['-r', path, '-Y', 'icmp', '-T', 'fields', '-e', 'icmp.type', '-e', 'icmp.checksum.status']);
    t.equal(icmp, '8\t1\n0\t1\n', 'ICMP types and good checksums');
  });
});

t.test('sniffer direction "in" → records only received frames', async (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock });
  const chunks: Uint8Array[] = [];
  const sn = new SnifferEndpoint(a, { clock, out: (c) => chunks.push(c), direction: 'in' });
  sn.attach(new Recorder());
  b.attach(new Recorder());
  sn.writeFrame(ARP_REQ.slice());
  b.writeFrame(ARP_REP.slice());
  clock.runDue();
  t.equal(chunks.length, 2, 'global header and one record');
  t.same(chunks[1]!.subarray(16), ARP_REP);
  t.equal(sn.framesOut, 0);
});

t.test('sniffer detach → inner link detached too', async (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock });
  const sn = new SnifferEndpoint(a, { clock, out: () => {} });
  const r = new Recorder();
  sn.attach(r);
  sn.attach(null);
  b.writeFrame(ARP_REP.slice());
  clock.runDue();
  t.same(r.log, []);
  t.equal(a.dropped, 1, 'the inner link had no dispatcher');
  sn.close();
  t.equal(a.writeFrame(ARP_REQ.slice()), false, 'close reaches the inner link');
});
