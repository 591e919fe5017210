// A receive batch a link flags RX_MORE (a packet ring's) takes the stack's time once, not once per frame: the frames
// were all received when the link read the batch. The time moves on again after the batch ends.
import t from 'tap';
import { countedStacks } from '../../bench/micro/counted.ts';
import { parseAddress } from '../../netstack/addr.ts';
import { Err, NetError } from '../../netstack/errors.ts';
import { type LinkDispatcher, type LinkEndpoint, RX_MORE } from '../../netstack/link/endpoint.ts';
import type { Endpoint } from '../../netstack/socket.ts';

const CONNS = 32;

/**
 * Passes the channel's batches through, every frame but a batch's last flagged RX_MORE as a packet ring does;
 * records each batch's frame count.
 */
class RingLike implements LinkEndpoint {
  batches: number[] = [];
  private pending: Uint8Array[] = [];
  private flags: number[] = [];
  constructor(private readonly inner: LinkEndpoint) {}
  get mtu(): number {
    return this.inner.mtu;
  }
  get macAddress(): Uint8Array {
    return this.inner.macAddress;
  }
  get capabilities() {
    return this.inner.capabilities;
  }
  attach(d: LinkDispatcher | null): void {
    this.inner.attach(
      d && {
        // The channel hands frames one by one and then ends its batch: kept (copied) until then.
        deliverFrame: (f, fl) => {
          this.pending.push(f.slice());
          this.flags.push(fl ?? 0);
        },
        deliverBatchEnd: () => {
          const frames = this.pending;
          const flags = this.flags;
          this.pending = [];
          this.flags = [];
          for (let i = 0; i < frames.length; i++) d.deliverFrame(frames[i]!, flags[i]! | (i < frames.length - 1 ? RX_MORE : 0));
          this.batches.push(frames.length);
          d.deliverBatchEnd?.();
        },
      },
    );
  }
  writeFrame(frame: Uint8Array): boolean {
    return this.inner.writeFrame(frame);
  }
  writeGso(frame: Uint8Array, o: Parameters<NonNullable<LinkEndpoint['writeGso']>>[1]): boolean {
    return this.inner.writeGso!(frame, o);
  }
  flush(): void {
    this.inner.flush();
  }
  close(): void {
    this.inner.close();
  }
}

t.test('32 requests in one RX_MORE batch: one clock read for the batch, and the clock moves again after it', (t) => {
  let ring: RingLike | undefined;
  const { clock, counting, client, server } = countedStacks({ wrapServerLink: (l) => (ring = new RingLike(l)) });
  const l = server.socket(4, 'stream') as Endpoint;
  l.bind({ address: new Uint8Array(4), port: 80 });
  l.listen(64);
  const eps: Endpoint[] = [];
  for (let i = 0; i < CONNS; i++) {
    const c = client.socket(4, 'stream') as Endpoint;
    t.equal(c.connect({ address: parseAddress('198.18.0.2')!, port: 80 }), Err.ConnectStarted);
    eps.push(c);
  }
  const accepted: Endpoint[] = [];
  for (let i = 0; i < 20; i++) {
    clock.advance(1);
    for (let r = l.accept(); !(r instanceof NetError); r = l.accept()) accepted.push(r.endpoint);
  }
  t.equal(accepted.length, CONNS, 'every connection accepted');
  const request = new Uint8Array(100).fill(0x61);
  const response = new Uint8Array(500).fill(0x62);
  // Request/response rounds, every connection's request in one batch; the last round's batch is measured.
  let reads = 0;
  for (let round = 0; round < 5; round++) {
    for (const c of eps) c.write(request);
    const before = counting.nows;
    const batches = ring!.batches.length;
    clock.advance(0.025);
    reads = counting.nows - before;
    t.same(ring!.batches.slice(batches), [CONNS], `round ${round}: the requests came in one batch`);
    for (const ep of accepted) {
      const r = ep.read();
      if (r instanceof NetError || r.data.length !== 100) throw new Error('request missing');
      ep.write(response);
    }
    clock.advance(0.025);
    for (const c of eps) {
      const r = c.read();
      if (r instanceof NetError || r.data.length !== 500) throw new Error('response missing');
    }
  }
  t.equal(reads, 1, `a batch of ${CONNS} requests: one clock read (one per request before)`);
  // After the batch the time is read afresh: a write now stamps the present, not the batch's time.
  clock.advance(5);
  const before = counting.nows;
  accepted[0]!.write(response);
  t.equal(counting.nows - before, 1, 'a write after the batch reads the clock');
  for (const e of [...eps, ...accepted]) e.close();
  l.close();
  clock.advance(100);
  t.end();
});
