// Header prediction (input.ts predictedArrives) against the full path: the same transfer, both ways at once
// through loss, reordering and duplication, run with prediction on and off must put the very same frames on the
// wire at the very same (virtual) times and deliver the same bytes; and prediction must have taken its share.
import { createHash } from 'node:crypto';
import t from 'tap';
import { parseAddress, parseSubnet } from '../../../../netstack/addr.ts';
import { VirtualClock } from '../../../../netstack/clock.ts';
import { Err } from '../../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../../netstack/link/channel.ts';
import { ImpairEndpoint, type ImpairSpec } from '../../../../netstack/link/impair.ts';
import { SnifferEndpoint } from '../../../../netstack/link/sniffer.ts';
import { ShutdownWrite } from '../../../../netstack/socket.ts';
import { Stack } from '../../../../netstack/stack.ts';
import { PortManager } from '../../../../netstack/transport/ports.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { type TcpConfig, TcpProtocol } from '../../../../netstack/transport/tcp/protocol.ts';
import { seededBytes } from './helper.ts';

interface Outcome {
  wire: string;
  frames: number;
  up: string;
  down: string;
  predicted: number;
  received: number;
  retransmits: number;
  gsoFrames: number;
}

/** Moves `upN` bytes a → b and `downN` bytes b → a at once over an impaired 1 ms channel; both then close. */
function run(impair: Partial<ImpairSpec>, config: Partial<TcpConfig>, upN: number, downN: number, gso = false): Outcome {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu: 1500, latencyMs: 1, gso });
  const wire = createHash('sha256');
  let frames = 0;
  const linkA = new SnifferEndpoint(new ImpairEndpoint(la, clock, impair), {
    clock,
    out: {
      write(time, frame) {
        frames++;
        wire.update(`${time}:`).update(frame);
      },
    },
  });
  const a = new Stack({ clock, seed: 11, dadTransmits: 0 });
  const b = new Stack({ clock, seed: 22, dadTransmits: 0 });
  a.addAddress(a.addNic(linkA), parseSubnet('198.18.0.1/24')!);
  b.addAddress(b.addNic(lb), parseSubnet('198.18.0.2/24')!);
  const ta = new TcpProtocol(a, new PortManager(a), config);
  const tb = new TcpProtocol(b, new PortManager(b), config);
  a.registerTransport(ta);
  b.registerTransport(tb);

  const listener = tb.newEndpoint(4);
  listener.bind({ address: new Uint8Array(4), port: 5001 });
  listener.listen(4);
  const client = ta.newEndpoint(4);
  if (client.connect({ address: parseAddress('198.18.0.2')!, port: 5001 }) !== Err.ConnectStarted) throw new Error('connect');
  const up = seededBytes(upN, 1);
  const down = seededBytes(downN, 2);
  let server: TcpEndpoint | null = null;
  const sides = [
    { ep: (): TcpEndpoint | null => client, out: up, sent: 0, shut: false, hash: createHash('sha256'), got: 0, eof: false },
    { ep: (): TcpEndpoint | null => server, out: down, sent: 0, shut: false, hash: createHash('sha256'), got: 0, eof: false },
  ];
  for (let ms = 0; ms < 300_000 && !(sides[0]!.eof && sides[1]!.eof); ms++) {
    clock.advance(1);
    if (!server) {
      const r = listener.accept();
      if (!('errno' in r)) server = r.endpoint as TcpEndpoint;
    }
    for (const s of sides) {
      const ep = s.ep();
      if (!ep) continue;
      while (s.sent < s.out.length) {
        const n = ep.write(s.out.subarray(s.sent, Math.min(s.out.length, s.sent + 20_000)));
        if (typeof n !== 'number') break;
        s.sent += n;
      }
      // Close only once everything both ways is acknowledged: prediction serves ESTABLISHED alone, as Linux's, so
      // data that went on arriving after the other side's FIN would take the full path and say nothing of it.
      const allDone = sides.every((x) => x.sent === x.out.length && x.ep()?.outQueue() === 0);
      if (allDone && !s.shut) {
        ep.shutdown(ShutdownWrite);
        s.shut = true;
      }
      // Reads of odd sizes keep the receive queue partly full, so the window moves.
      for (;;) {
        const r = ep.read({ maxBytes: 7000 });
        if ('errno' in r) break;
        if (r.data.length === 0) {
          s.eof = true;
          break;
        }
        s.hash.update(r.data);
        s.got += r.data.length;
      }
    }
  }
  return {
    wire: wire.digest('hex'),
    frames,
    // The client reads what the server sent, and the other way round.
    down: sides[0]!.hash.digest('hex'),
    up: sides[1]!.hash.digest('hex'),
    predicted: ta.stats.headerPredicted + tb.stats.headerPredicted,
    received: ta.stats.segmentsReceived + tb.stats.segmentsReceived,
    retransmits: ta.stats.retransmits + tb.stats.retransmits,
    gsoFrames: la.gsoFramesSent + lb.gsoFramesSent,
  };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const cases: { name: string; impair: Partial<ImpairSpec>; config: Partial<TcpConfig>; gso?: boolean }[] = [
  { name: 'clean, cubic', impair: {}, config: {} },
  { name: 'loss 3%, reorder 3%, dup 1%, cubic', impair: { loss: 0.03, reorder: 0.03, dup: 0.01, seed: 5 }, config: {} },
  { name: 'loss 3%, reorder 3%, dup 1%, reno, no timestamps', impair: { loss: 0.03, reorder: 0.03, dup: 0.01, seed: 9 }, config: { congestion: 'reno', timestamps: false } },
  { name: 'loss 2%, no SACK', impair: { loss: 0.02, seed: 4 }, config: { sack: false } },
  { name: 'TSO/GRO link, clean', impair: {}, config: {}, gso: true },
  { name: 'TSO/GRO link, loss 3%, reorder 3%, dup 1%', impair: { loss: 0.03, reorder: 0.03, dup: 0.01, seed: 7 }, config: {}, gso: true },
];

for (const c of cases) {
  t.test(`ESTABLISHED both ways, ${c.name}: header prediction on ≡ off → same frames, same bytes`, (t) => {
    const upN = 600_000;
    const downN = 250_000;
    const on = run(c.impair, { ...c.config, headerPrediction: true }, upN, downN, c.gso);
    const off = run(c.impair, { ...c.config, headerPrediction: false }, upN, downN, c.gso);
    if (c.gso) t.ok(on.gsoFrames > 0, `${on.gsoFrames} super-frames went out`);
    t.equal(on.up, sha(seededBytes(upN, 1)), 'a → b byte-exact');
    t.equal(on.down, sha(seededBytes(downN, 2)), 'b → a byte-exact');
    t.equal(off.up, on.up);
    t.equal(off.down, on.down);
    t.equal(off.frames, on.frames, 'as many frames');
    t.equal(off.wire, on.wire, 'the same frames at the same times');
    t.equal(off.predicted, 0);
    // Out-of-order data and SACK-carrying ACKs take the full path, so under impairment both paths run a lot.
    const share = c.impair.loss ? 0.1 : 0.7;
    t.ok(on.predicted > on.received * share, `prediction took ${on.predicted} of ${on.received} segments`);
    if (c.impair.loss) t.ok(on.retransmits > 0, 'the impairment exercised recovery');
    t.end();
  });
}
