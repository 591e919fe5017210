// RX_MORE through a whole stack: ACKs due while a link's batch goes on wait for deliverBatchEnd, a link that
// flags RX_MORE but never ends its batch still gets them out at the next clock tick, and a link that promises to
// end its batches (endsBatches) costs no such tick.
import t from 'tap';
import { tcpPair } from '../../bench/micro/pair.ts';
import type { VirtualClock } from '../../netstack/clock.ts';
import { NetError } from '../../netstack/errors.ts';
import { type LinkDispatcher, type LinkEndpoint, RX_MORE } from '../../netstack/link/endpoint.ts';
import type { Endpoint } from '../../netstack/socket.ts';
import { pattern } from './transport/tcp/helper.ts';

/** Passes frames through, flagging each RX_MORE, and forwards deliverBatchEnd only when `batchEnds` is set. */
class MoreLink implements LinkEndpoint {
  batchEnds = true;
  /** LinkEndpoint.endsBatches, as a packet ring declares it. */
  endsBatches = false;
  /** Frames delivered up, and ACK-only frames the stack wrote, in the order they happened. */
  readonly log: string[] = [];
  constructor(private readonly inner: LinkEndpoint) {}
  get mtu(): number {
    return this.inner.mtu;
  }
  get macAddress(): Uint8Array {
    return this.inner.macAddress;
  }
  attach(d: LinkDispatcher | null): void {
    this.inner.attach(
      d && {
        deliverFrame: (f, fl) => {
          this.log.push('rx');
          d.deliverFrame(f, (fl ?? 0) | RX_MORE);
        },
        deliverBatchEnd: () => {
          if (!this.batchEnds) return;
          this.log.push('end');
          d.deliverBatchEnd?.();
        },
      },
    );
  }
  writeFrame(frame: Uint8Array): boolean {
    // IPv4 + TCP without payload: 14 + 20 + TCP header length.
    const tcpLen = frame.length - 34;
    if (frame[23] === 6 && tcpLen === (frame[46]! >>> 4) * 4) this.log.push('ack');
    return this.inner.writeFrame(frame);
  }
  flush(): void {
    this.inner.flush();
  }
  close(): void {
    this.inner.close();
  }
}

/** Runs the clock until the server has read `n` bytes (or `ms` passed); returns the bytes read. */
function readAll(clock: VirtualClock, server: Endpoint, n: number, ms: number): number {
  const sink = new Uint8Array(65536);
  let got = 0;
  for (let i = 0; i < ms && got < n; i++) {
    clock.advance(1);
    for (;;) {
      const r = server.read({ into: sink });
      if (r instanceof NetError || r.data.length === 0) break;
      got += r.data.length;
    }
  }
  return got;
}

function pair(endsBatches = false) {
  let more: MoreLink | undefined;
  const p = tcpPair(1500, {
    wrapServerLink: (l) => {
      more = new MoreLink(l);
      more.endsBatches = endsBatches;
      return more;
    },
  });
  return { clock: p.clock, more: more!, client: p.client, server: p.server };
}

/** Clock timers scheduled (by both stacks) while 200,000 bytes go from client to server and are read. */
function timersForTransfer(endsBatches: boolean): { timers: number; batches: number; between: number } {
  const { clock, more, client, server } = pair(endsBatches);
  const schedule = clock.schedule.bind(clock);
  let timers = 0;
  clock.schedule = (ms, fn) => {
    timers++;
    return schedule(ms, fn);
  };
  more.log.length = 0;
  client.write(pattern(200_000));
  if (readAll(clock, server, 200_000, 1000) !== 200_000) throw new Error('transfer did not complete');
  const between = more.log.findIndex((e, i) => e === 'ack' && more.log[i - 1] === 'rx');
  return { timers, batches: more.log.filter((e) => e === 'end').length, between };
}

t.test('link flags every frame RX_MORE and ends its batches → B ACKs only after a batch end, never between frames', (t) => {
  const { clock, more, client, server } = pair();
  more.log.length = 0;
  t.equal(client.write(pattern(200_000)), 200_000);
  t.equal(readAll(clock, server, 200_000, 1000), 200_000, 'everything arrived');
  const acks = more.log.filter((e) => e === 'ack').length;
  t.ok(acks > 0, `${acks} ACKs`);
  const between = more.log.findIndex((e, i) => e === 'ack' && more.log[i - 1] === 'rx');
  t.equal(between, -1, `no ACK written between two deliveries of a batch (log: ${more.log.slice(0, 40).join(' ')} …)`);
  t.end();
});

t.test('link flags RX_MORE and never ends a batch → the ACKs still go out, at the next tick', (t) => {
  const { clock, more, client, server } = pair();
  more.batchEnds = false;
  more.log.length = 0;
  // Within the receive window and unread: only B's own ACKs (no window updates) can empty A's send queue.
  t.equal(client.write(pattern(50_000)), 50_000);
  clock.advance(100);
  t.equal(server.inQueue(), 50_000, 'everything arrived');
  t.equal(client.outQueue(), 0, 'and was acknowledged well before any retransmission timer');
  t.ok(more.log.includes('ack'), 'ACKs were written');
  t.end();
});

t.test('link ends its batches and says so (endsBatches) → no clock tick per batch, ACKs still wait for the batch end', (t) => {
  const without = timersForTransfer(false);
  const withIt = timersForTransfer(true);
  t.ok(without.batches >= 4, `${without.batches} batches`);
  t.equal(withIt.batches, without.batches, 'the same batches');
  t.equal(withIt.between, -1, 'no ACK written between two deliveries of a batch');
  t.equal(without.timers - withIt.timers, without.batches, `one timer less per batch (${withIt.timers} against ${without.timers})`);
  t.end();
});
