// Gather sends on the scripted-peer harness: a route that gathers (CaptureNet.gather, as a packet socket with
// offloads) gets large data segments as their header plus views of the send buffer and joins them as a link's
// sendmmsg would. What it sends is segment for segment, byte for byte what the copying route sends; small segments,
// bare ACKs and segments with SACK blocks are built whole as before.
import t, { type Test } from 'tap';
import { TCP_ACK } from '../../../../netstack/wire/tcp.ts';
import { Harness, describe, pattern } from './helper.ts';

const MSS = 1448;

/** A harness on a TSO route, gathering or not. */
function harness(gather: boolean): Harness {
  const h = new Harness();
  h.net.gsoMax = 65535;
  h.net.gather = gather;
  return h;
}

/** Every segment the stack sent so far, described with its payload, removed from the capture. */
function drain(h: Harness): string[] {
  const out: string[] = [];
  while (h.pending > 0) {
    const r = h.next();
    out.push(`${describe(r)} ${Buffer.from(r.payload).toString('hex')}`);
  }
  return out;
}

/** The same exchange on a route: 60 MSS written (kept, or copied into the queue), ACKed in three steps. */
function exchange(t: Test, gather: boolean, keep: boolean): { h: Harness; sent: string[]; data: Uint8Array } {
  const h = harness(gather);
  const ep = h.connect();
  const data = pattern(60 * MSS + 500);
  const sent: string[] = [];
  t.equal(ep.write(data, keep ? { keep: true } : undefined), data.length, `all written (${gather ? 'gathering' : 'copying'})`);
  sent.push(...drain(h));
  for (const k of [10, 30, 60]) {
    h.send({ flags: TCP_ACK, ack: h.iss + 1 + k * MSS, options: { tsVal: 300 + k, tsEcr: 0 } });
    sent.push(...drain(h));
  }
  return { h, sent, data };
}

for (const keep of [false, true]) {
  t.test(`ESTABLISHED write 60 MSS ${keep ? 'kept' : 'copied'} on a route that gathers → the copying route's segments byte for byte, payloads as views of the send buffer`, (t) => {
    const copied = exchange(t, false, keep);
    const gathered = exchange(t, true, keep);
    t.ok(copied.sent.length > 60, `${copied.sent.length} segments`);
    t.same(gathered.sent, copied.sent, 'same segments, same bytes');
    t.equal(copied.h.net.gathered.length, 0, 'the copying route got no gather payload');
    const views = gathered.h.net.gathered;
    t.equal(views.length, gathered.h.net.gsoSent.length + gathered.h.net.partialSent, 'every data segment gathered');
    if (keep) t.ok(views.every((v) => v.every((p) => p.buffer === gathered.data.buffer)), 'views of the very array written');
    else t.ok(views.every((v) => v.every((p) => p.buffer !== gathered.data.buffer)), 'views of the queue\'s own chunks');
    t.end();
  });
}

t.test('ESTABLISHED route that gathers, TCP_NODELAY, 1000 bytes → one segment built whole (below the gather threshold)', (t) => {
  const h = harness(true);
  const ep = h.connect();
  ep.setOption('TCP_NODELAY', 1);
  ep.write(pattern(1000));
  t.equal(h.net.partialSent, 1, 'sent with a partial checksum');
  t.equal(h.net.gathered.length, 0, 'copied, not gathered');
  h.expect({ len: 1000, payload: pattern(1000) });
  t.end();
});
