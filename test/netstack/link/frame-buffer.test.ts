/**
 * LinkEndpoint.frameBuffer end to end: TCP builds its segments in the link's send memory (Route.packetBuffer),
 * over a test link that hands out ONE reused buffer, so a frame kept past the link's next call would be
 * overwritten and stale bytes would show. Every run is compared byte for byte with a run over the same link
 * without frameBuffer (allocPacket, zero-filled), on the same seeds and virtual clock.
 */
import t from 'tap';
import { type Address, parseAddress, parseSubnet } from '../../../netstack/addr.ts';
import { VirtualClock } from '../../../netstack/clock.ts';
import { Err, NetError } from '../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import type { GsoOptions, LinkCapabilities, LinkDispatcher, LinkEndpoint } from '../../../netstack/link/endpoint.ts';
import { Netstack } from '../../../netstack/netstack.ts';
import type { Endpoint } from '../../../netstack/socket.ts';

type Mode = 'alloc' | 'inplace' | 'poison';

interface Written {
  bytes: Uint8Array;
  inPlace: boolean;
}

/**
 * Wraps a ChannelEndpoint and, unless mode is 'alloc', offers frameBuffer: always the start of one ArrayBuffer,
 * filled with 0xff first in 'poison' mode. Records a copy of every frame written and whether it came in place
 * (the view handed out by the last frameBuffer, with no other call of the link in between).
 */
class FrameBufferLink implements LinkEndpoint {
  readonly written: Written[] = [];
  readonly frameBuffer?: (length: number) => Uint8Array | null;
  private readonly mem = new ArrayBuffer(70_000);
  private handed: Uint8Array | null = null;

  constructor(
    private readonly inner: ChannelEndpoint,
    mode: Mode,
  ) {
    if (mode !== 'alloc') {
      this.frameBuffer = (length: number) => {
        this.handed = null;
        if (length > this.mem.byteLength) return null;
        const view = new Uint8Array(this.mem, 0, length);
        if (mode === 'poison') view.fill(0xff);
        this.handed = view;
        return view;
      };
    }
  }

  get mtu(): number {
    return this.inner.mtu;
  }

  get macAddress(): Uint8Array {
    return this.inner.macAddress;
  }

  get capabilities(): LinkCapabilities | undefined {
    return this.inner.capabilities;
  }

  attach(d: LinkDispatcher | null): void {
    this.handed = null;
    this.inner.attach(d);
  }

  writeFrame(frame: Uint8Array): boolean {
    const bytes = this.record(frame);
    return this.inner.writeFrame(bytes);
  }

  writeGso(frame: Uint8Array, o: GsoOptions): boolean {
    const bytes = this.record(frame);
    return this.inner.writeGso(bytes, o);
  }

  flush(): void {
    this.handed = null;
    this.inner.flush();
  }

  close(): void {
    this.handed = null;
    this.inner.close();
  }

  private record(frame: Uint8Array): Uint8Array {
    const h = this.handed;
    this.handed = null;
    const inPlace = h !== null && frame.buffer === h.buffer && frame.byteOffset === h.byteOffset && frame.length <= h.length;
    const bytes = frame.slice();
    this.written.push({ bytes, inPlace });
    return bytes;
  }
}

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;

/** Whether a written frame is a TCP segment (IPv4 protocol 6 or IPv6 next header 6). */
function isTcp(f: Uint8Array): boolean {
  const et = (f[12]! << 8) | f[13]!;
  if (et === ETH_IPV4) return f[23] === 6;
  if (et === ETH_IPV6) return f[20] === 6;
  return false;
}

/** A deterministic byte pattern (an LCG), so a misplaced or stale byte cannot pass for the right one. */
function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

interface RunResult {
  received: Uint8Array;
  written: Written[];
  /** How many frames had been written when the neighbour entry was dropped (phase 2 starts there). */
  phase2: number;
}

const DATA = pattern(300_000);

/**
 * Connects A (on the FrameBufferLink) to B, sends half of DATA, drops A's neighbour entry for B so the next
 * 6000 bytes' segments wait for ARP/NDP resolution, sends the rest, and closes; returns what B read and what A's link saw.
 */
function run(family: 4 | 6, gso: boolean, mode: Mode): RunResult {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, gso });
  const link = new FrameBufferLink(la, mode);
  const a = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  const b = new Netstack({ clock, seed: 2, dadTransmits: 0 });
  const nicA = a.stack.addNic(link);
  const [addrA, addrB] = family === 4 ? ['198.18.0.1/24', '198.18.0.2/24'] : ['fd74:7376::1/64', 'fd74:7376::2/64'];
  a.stack.addAddress(nicA, parseSubnet(addrA)!);
  b.stack.addAddress(b.stack.addNic(lb), parseSubnet(addrB)!);
  const remote: Address = parseAddress(addrB.split('/')[0]!)!;
  const listener = b.socket(family, 'stream') as Endpoint;
  listener.bind({ address: new Uint8Array(family === 4 ? 4 : 16), port: 5001 });
  listener.listen(8);
  const client = a.socket(family, 'stream') as Endpoint;
  if (client.connect({ address: remote, port: 5001 }) !== Err.ConnectStarted) throw new Error('connect');
  let server: Endpoint | null = null;
  for (let i = 0; i < 1000 && !server; i++) {
    clock.advance(1);
    const r = listener.accept();
    if (!(r instanceof NetError)) server = r.endpoint;
  }
  if (!server) throw new Error('no connection');
  const chunks: Uint8Array[] = [];
  let got = 0;
  const pump = (upTo: number) => {
    let sent = got;
    for (let step = 0; got < upTo; step++) {
      if (step > 100_000) throw new Error(`stalled at ${got} of ${upTo}`);
      while (sent < upTo) {
        const w = client.write(DATA.subarray(sent, upTo));
        if (typeof w !== 'number' || w === 0) break;
        sent += w;
      }
      for (;;) {
        const r = server!.read({ maxBytes: 1 << 20 });
        if (r instanceof NetError || r.data.length === 0) break;
        chunks.push(r.data.slice());
        got += r.data.length;
      }
      if (got < upTo) clock.advance(1);
    }
  };
  pump(DATA.length / 2);
  clock.advance(50);
  const phase2 = link.written.length;
  const nic = a.stack.nic(nicA)!;
  (family === 4 ? nic.arp : nic.ndp).remove(remote);
  // A few segments' worth first, so they wait for resolution while the rest go out once it is done.
  pump(DATA.length / 2 + 6000);
  pump(DATA.length);
  client.close();
  clock.advance(1000);
  const received = new Uint8Array(got);
  let at = 0;
  for (const c of chunks) {
    received.set(c, at);
    at += c.length;
  }
  return { received, written: link.written, phase2 };
}

/** Index of the first frame that differs between two runs, or -1 when every frame is byte-identical. */
function firstDifference(x: Written[], y: Written[]): number {
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (!x[i] || !y[i] || Buffer.compare(x[i]!.bytes, y[i]!.bytes) !== 0) return i;
  }
  return -1;
}

const cases: [4 | 6, boolean][] = [
  [4, false],
  [6, false],
  [4, true],
  [6, true],
];

for (const [family, gso] of cases) {
  const name = `IPv${family}${gso ? ' with TSO' : ''}`;
  const plain = run(family, gso, 'alloc');

  t.test(`${name}: link offers frameBuffer, bulk transfer → byte-exact data, TCP frames built in place`, async (t) => {
    const r = run(family, gso, 'inplace');
    t.equal(r.received.length, DATA.length);
    t.ok(Buffer.compare(r.received, DATA) === 0, 'received data identical to what was written');
    const tcp = r.written.filter((w) => isTcp(w.bytes));
    // Only frames held while resolving were copied: the SYN, then the segments after the entry was dropped.
    const runs = tcp.map((w) => (w.inPlace ? 'P' : 'c')).join('');
    t.match(runs, /^cP+c+P+$/, `in place (P) or copied (c): ${runs}`);
    t.equal(plain.written.filter((w) => w.inPlace).length, 0, 'the allocPacket run wrote nothing in place');
  });

  t.test(`${name}: segments queued while the neighbour is resolved → arrive intact, as allocPacket builds them`, async (t) => {
    const r = run(family, gso, 'inplace');
    // The segments that waited in the neighbour queue are the TCP frames of phase 2 that did not come in place.
    const queued = r.written.slice(r.phase2).filter((w) => isTcp(w.bytes) && !w.inPlace);
    t.ok(queued.length >= (gso ? 1 : 2), `${queued.length} segments were queued while resolving`);
    t.ok(Buffer.compare(r.received, DATA) === 0, 'received data identical');
    t.equal(r.written.length, plain.written.length, 'same number of frames as the allocPacket run');
    t.equal(firstDifference(r.written, plain.written), -1, 'every frame byte-identical to the allocPacket run');
  });

  t.test(`${name}: slot filled with 0xff before each frameBuffer → no stale byte leaks into any frame`, async (t) => {
    const r = run(family, gso, 'poison');
    t.ok(r.written.filter((w) => w.inPlace).length > 5, 'frames built in the poisoned memory');
    t.equal(r.written.length, plain.written.length, 'same number of frames as the allocPacket run');
    t.equal(firstDifference(r.written, plain.written), -1, 'every frame byte-identical to the allocPacket run');
    t.ok(Buffer.compare(r.received, DATA) === 0, 'received data identical');
  });
}
