import t from 'tap';
import { tcpPair } from '../../../bench/micro/pair.ts';
import { VirtualClock } from '../../../netstack/clock.ts';
import { NetError } from '../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import { GsoType, type LinkDispatcher, RX_CSUM_VERIFIED } from '../../../netstack/link/endpoint.ts';

function frameOf(len: number, fill = 0x11): Uint8Array {
  const f = new Uint8Array(len).fill(fill);
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

function recorder() {
  const got: { frame: Uint8Array; flags: number | undefined }[] = [];
  const d: LinkDispatcher = { deliverFrame: (frame, flags) => void got.push({ frame: frame.slice(), flags }) };
  return { got, d };
}

t.test('gso channel → capabilities of a veth: GSO up to 64 KB, both checksum offloads', (t) => {
  const clock = new VirtualClock();
  const [a] = ChannelEndpoint.pair({ clock, gso: true });
  t.same(a.capabilities, { gso: true, maxGsoSize: 65535 + 14, rxChecksumOffload: true, txChecksumOffload: true });
  const [p] = ChannelEndpoint.pair({ clock });
  t.equal(p.capabilities.gso, false);
  t.throws(() => p.writeGso(frameOf(100), { gsoType: GsoType.NONE, gsoSize: 0, hdrLen: 54 }), /gso option/);
  t.end();
});

t.test('gso channel writeGso 64 KB super-frame → peer gets it whole, flagged RX_CSUM_VERIFIED', (t) => {
  const clock = new VirtualClock();
  const [a, b] = ChannelEndpoint.pair({ clock, gso: true });
  const { got, d } = recorder();
  b.attach(d);
  const big = frameOf(14 + 65535, 0x22);
  t.equal(a.writeGso(big, { gsoType: GsoType.TCPV4, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 }), true);
  t.equal(a.writeFrame(frameOf(1514)), true, 'plain frames still go');
  clock.advance(0);
  t.equal(got.length, 2);
  t.equal(got[0]!.frame.length, 14 + 65535);
  t.ok(Buffer.compare(Buffer.from(got[0]!.frame), Buffer.from(big)) === 0, 'byte for byte');
  t.equal(got[0]!.flags, RX_CSUM_VERIFIED);
  t.equal(got[1]!.flags, 0, 'a plain frame carries its own checksum');
  t.equal(a.gsoFramesSent, 1);
  t.equal(a.framesSent, 2);
  t.equal(a.writeGso(frameOf(14 + 65536), { gsoType: GsoType.TCPV4, gsoSize: 1448, hdrLen: 54 }), false, 'beyond maxGsoSize');
  t.equal(a.writeFrame(frameOf(1515)), false, 'writeFrame keeps the MTU');
  t.equal(a.dropped, 2);
  t.end();
});

t.test('plain channel → a frame larger than the MTU from a gso peer is dropped and counted', (t) => {
  const clock = new VirtualClock();
  const a = new ChannelEndpoint({ clock, gso: true });
  const b = new ChannelEndpoint({ clock });
  a.connect(b);
  const { got, d } = recorder();
  b.attach(d);
  a.writeGso(frameOf(3000), { gsoType: GsoType.TCPV4, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 });
  b.inject(frameOf(1514), RX_CSUM_VERIFIED);
  clock.advance(0);
  t.equal(got.length, 1);
  t.equal(got[0]!.frame.length, 1514);
  t.equal(got[0]!.flags, RX_CSUM_VERIFIED, 'inject passes flags');
  t.equal(b.dropped, 1);
  t.end();
});

/** Two Netstacks on a gso (or plain) channel with one TCP connection; the client sends `data`, the server reads it. */
function transfer(gso: boolean, data: Uint8Array) {
  const { clock, client, server, links, stacks } = tcpPair(1500, { gso });
  const [la] = links;
  const [a, b] = stacks;
  const sizes: number[] = [];
  la.onWrite = (f) => void sizes.push(f.length);
  const chunks: Uint8Array[] = [];
  let sent = 0;
  let got = 0;
  for (let ms = 0; got < data.length && ms < 60_000; ms++) {
    while (sent < data.length) {
      const w = client.write(data.subarray(sent, Math.min(data.length, sent + 65536)));
      if (typeof w !== 'number' || w === 0) break;
      sent += w;
    }
    for (;;) {
      const r = server.read({ maxBytes: 1 << 20 });
      if (r instanceof NetError || r.data.length === 0) break;
      chunks.push(r.data.slice());
      got += r.data.length;
    }
    if (got < data.length) clock.advance(1);
  }
  const out = new Uint8Array(got);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return { out, sizes, la, a, b };
}

t.test('TCP over a gso channel, 4 MiB → super-frames on the wire, TSO counted, every byte as sent', (t) => {
  const data = new Uint8Array(4 << 20).map((_, i) => (i * 131 + (i >>> 11)) & 0xff);
  const { out, sizes, la, a, b } = transfer(true, data);
  t.equal(out.length, data.length, 'all bytes read');
  t.ok(Buffer.compare(Buffer.from(out), Buffer.from(data)) === 0, 'byte-exact');
  const big = sizes.filter((n) => n > 1514).length;
  t.ok(big > 0, `frames larger than the MTU left A (${big} of ${sizes.length})`);
  t.ok(la.gsoFramesSent > 0, `gsoFramesSent ${la.gsoFramesSent}`);
  t.equal(a.stack.stats.snapshot()['link.txGsoFrames'], la.gsoFramesSent);
  t.ok(b.stack.stats.snapshot()['link.rxGsoFrames']! > 0, 'B counted received super-frames');
  t.ok(sizes.length < data.length / 1448 / 4, `far fewer frames than MSS-sized segments (${sizes.length})`);
  t.end();
});

t.test('TCP over a plain channel, 1 MiB → no frame above the MTU, every byte as sent', (t) => {
  const data = new Uint8Array(1 << 20).map((_, i) => (i * 7 + (i >>> 9)) & 0xff);
  const { out, sizes, la } = transfer(false, data);
  t.equal(out.length, data.length);
  t.ok(Buffer.compare(Buffer.from(out), Buffer.from(data)) === 0, 'byte-exact');
  t.equal(sizes.filter((n) => n > 1514).length, 0);
  t.equal(la.gsoFramesSent, 0);
  t.end();
});
