// RX_LOAN through a whole stack: TCP queues a lent frame's payload as a view (no copy) until the link ends the
// loans, then copies what is still unread, so the link may reuse the memory; readers see exact bytes either way.
import t from 'tap';
import { tcpPair } from '../../bench/micro/pair.ts';
import { NetError } from '../../netstack/errors.ts';
import { type LinkDispatcher, type LinkEndpoint, RX_LOAN } from '../../netstack/link/endpoint.ts';
import { pattern } from './transport/tcp/helper.ts';

/**
 * Delivers each frame from memory of its own, lent (RX_LOAN), as a packet ring's slot is; `endLoans` asks the
 * stack to copy what it holds and then overwrites every lent frame, as a ring's kernel reuses its slots.
 */
class LendingLink implements LinkEndpoint {
  private dispatcher: LinkDispatcher | null = null;
  private readonly lent: Uint8Array[] = [];
  constructor(private readonly inner: LinkEndpoint) {}
  get mtu(): number {
    return this.inner.mtu;
  }
  get macAddress(): Uint8Array {
    return this.inner.macAddress;
  }
  attach(d: LinkDispatcher | null): void {
    this.dispatcher = d;
    this.inner.attach(
      d && {
        deliverFrame: (f, fl) => {
          const slot = f.slice(); // the inner link lends its frame for the call only
          this.lent.push(slot);
          d.deliverFrame(slot, (fl ?? 0) | RX_LOAN);
        },
        deliverBatchEnd: () => d.deliverBatchEnd?.(),
      },
    );
  }
  /** The frames lent and not yet given back. */
  get lentFrames(): readonly Uint8Array[] {
    return this.lent;
  }
  endLoans(): void {
    this.dispatcher?.returnLoans?.();
    for (const f of this.lent) f.fill(0xa5);
    this.lent.length = 0;
  }
  writeFrame(frame: Uint8Array): boolean {
    return this.inner.writeFrame(frame);
  }
  flush(): void {
    this.inner.flush();
  }
  close(): void {
    this.inner.close();
  }
}

function pair() {
  let link: LendingLink | undefined;
  const p = tcpPair(1500, { wrapServerLink: (l) => (link = new LendingLink(l)) });
  return { ...p, link: link! };
}

t.test('lent segments → queued as views of the lent frames; read before the loans end → exact bytes, nothing copied', (t) => {
  const p = pair();
  p.link.endLoans(); // the handshake's frames
  const data = pattern(4000);
  t.equal(p.client.write(data), 4000);
  p.clock.advance(1);
  t.equal(p.server.inQueue(), 4000, 'all arrived');
  t.ok(p.link.lentFrames.length > 0, 'frames are out on loan');
  // The queue holds the lent memory itself: a change to it shows in what is read (no copy was made).
  const first = p.link.lentFrames.find((f) => f.length > 1000)!;
  const at = first.length - 1; // the segment's last payload byte
  const was = first[at]!;
  first[at] = was ^ 0xff;
  const peeked = p.server.read({ peek: true, maxBytes: 4000 });
  if (peeked instanceof NetError) throw new Error(peeked.kind);
  first[at] = was;
  const changed = [...peeked.data].findIndex((b, i) => b !== data[i]);
  t.ok(changed >= 0, `the lent frame's change was read (byte ${changed})`);
  t.same([...peeked.data].filter((b, i) => b !== data[i]).length, 1, 'only that byte');
  const buf = new Uint8Array(4000);
  const r = p.server.read({ into: buf });
  if (r instanceof NetError) throw new Error(r.kind);
  t.same(Buffer.from(r.data), Buffer.from(data), 'read whole and exact');
  p.link.endLoans();
  t.end();
});

t.test('lent segments unread when the loans end → copied then: the link reuses the memory, reads stay exact', (t) => {
  const p = pair();
  p.link.endLoans();
  const data = pattern(200_000);
  const buf = new Uint8Array(data.length);
  let sent = 0;
  let got = 0;
  for (let i = 0; i < 3000 && got < data.length; i++) {
    if (sent < data.length) {
      const w = p.client.write(data.subarray(sent));
      if (typeof w === 'number') sent += w;
    }
    p.clock.advance(1);
    // Read a part of what waits (a part of the first lent segment among it), then end the loans: the rest is
    // read only after the link overwrote every frame it lent.
    const part = p.server.read({ into: buf.subarray(got, got + 700) });
    if (!(part instanceof NetError)) got += part.data.length;
    p.link.endLoans();
    for (;;) {
      const r = p.server.read({ into: buf.subarray(got, Math.min(data.length, got + 3000)) });
      if (r instanceof NetError || r.data.length === 0) break;
      got += r.data.length;
      if (r.data.length < 3000) break;
    }
  }
  t.equal(got, data.length, 'every byte');
  t.same(Buffer.from(buf), Buffer.from(data), 'exact, though each lent frame was overwritten after its loan');
  t.end();
});
