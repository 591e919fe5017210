// TCP_NOTSENT_LOWAT and net.ipv4.tcp_notsent_lowat as Linux's tcp_stream_memory_free applies them (upstream
// notsent_lowat/notsent-lowat-{setsockopt,sysctl}): a write stops at the first new skb the unsent bytes reach the
// mark, POLLOUT (and its wake-up) needs them below half of it, and sending is what frees the space.
import t from 'tap';
import * as seq from '../../../../netstack/seqnum.ts';
import { EventOut } from '../../../../netstack/waiter.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import type { TcpConfig } from '../../../../netstack/transport/tcp/protocol.ts';
import { TCP_ACK, TCP_PSH } from '../../../../netstack/wire/tcp.ts';
import { Harness, pattern } from './helper.ts';

/** A passive connection as the upstream scripts open it: MSS 1000, SACK, wscale 7, window 257 (32896 bytes). */
function open(config?: Partial<TcpConfig>): { h: Harness; ep: TcpEndpoint; snd: number } {
  const h = new Harness(config);
  h.peerWindow = 257;
  const ep = h.accept(h.listen(), { mss: 1000, sackPermitted: true, wscale: 7 });
  return { h, ep, snd: seq.add(h.iss, 1) };
}

/** Takes every segment sent now and returns the bytes they carry and whether the last one had PSH. */
function drain(h: Harness): { bytes: number; psh: boolean } {
  let bytes = 0;
  let psh = false;
  while (h.pending > 0) {
    const r = h.next();
    bytes += r.payload.length;
    psh = (r.flags & TCP_PSH) !== 0;
  }
  return { bytes, psh };
}

for (const how of ['setsockopt', 'sysctl'] as const) {
  t.test(`ESTABLISHED not-sent mark 4000 (${how}), write 59000 → 26000 queued, writable only once under 2000 unsent`, async (t) => {
    const { h, ep, snd } = how === 'sysctl' ? open({ notsentLowat: 4000 }) : open();
    if (how === 'setsockopt') {
      t.equal(ep.getOption('TCP_NOTSENT_LOWAT'), 0, 'unset: the sysctl applies');
      t.equal(ep.setOption('TCP_NOTSENT_LOWAT', 4000), undefined);
      t.equal(ep.getOption('TCP_NOTSENT_LOWAT'), 4000);
    } else {
      t.equal(ep.getOption('TCP_NOTSENT_LOWAT'), 0, 'the option stays apart from the sysctl');
    }
    let woken = 0;
    ep.waiter.subscribe(EventOut, () => woken++);
    // The first 16000-byte skb (half the peer's window) goes out as far as IW10 allows; the 6000 left of it take
    // 10000 more without a check; the next skb would start with 16000 unsent, at the mark or above: stop there.
    t.equal(ep.write(pattern(59000)), 26000);
    t.same(drain(h), { bytes: 10000, psh: true }, 'IW10 sent');
    t.equal(ep.readiness(EventOut), 0, 'not writable: 16000 unsent');
    let acked = 0;
    for (const step of [1, 2, 3]) {
      acked += 2000;
      h.send({ flags: TCP_ACK, ack: seq.add(snd, acked) });
      t.same(drain(h), { bytes: 4000, psh: true }, `ACK ${step}: slow start sends 4000`);
      t.equal(ep.readiness(EventOut), 0, `ACK ${step}: ${16000 - 4000 * step} unsent, not under 2000`);
    }
    woken = 0;
    acked += 2000;
    h.send({ flags: TCP_ACK, ack: seq.add(snd, acked) });
    t.same(drain(h), { bytes: 4000, psh: true });
    t.equal(ep.readiness(EventOut), EventOut, 'all sent: writable');
    t.ok(woken > 0, 'the sending that emptied the queue woke the writer');
  });
}

t.test('ESTABLISHED no not-sent mark (Linux default) → write takes what the buffer holds', async (t) => {
  const { h, ep } = open();
  t.equal(ep.write(pattern(59000)), 59000);
  t.equal(drain(h).bytes, 10000);
  t.equal(ep.readiness(EventOut), EventOut);
});

t.test('TCP_NOTSENT_LOWAT -1 → read back as -1 (a u32 kept), no mark in effect', async (t) => {
  const { ep } = open();
  t.equal(ep.setOption('TCP_NOTSENT_LOWAT', -1), undefined);
  t.equal(ep.getOption('TCP_NOTSENT_LOWAT'), -1);
  t.equal(ep.write(pattern(59000)), 59000);
});
